"""`--param NAME=VALUE` arguments."""

from __future__ import annotations

from typing import Any


def parse_params(items: list[str]) -> dict[str, Any]:
    """`k=v` strings to a dict: ints, floats, true/false, otherwise the text (enum variants)."""
    out: dict[str, Any] = {}
    for item in items or []:
        if "=" not in item:
            raise ValueError(f"--param takes NAME=VALUE, not {item!r}")
        key, raw = item.split("=", 1)
        key, raw = key.strip(), raw.strip()
        value: Any
        if raw.lower() in ("true", "false"):
            value = raw.lower() == "true"
        else:
            try:
                value = int(raw)
            except ValueError:
                try:
                    value = float(raw)
                except ValueError:
                    value = raw
        out[key] = value
    return out
