"""Learner configs: reading a `--config` file (ours, or TwisteRL's JSON), and checking
every field's type and range, unknown keys with a did-you-mean. The same checks apply to a `--config` file and to a run dir's config.json,
so a bad value is refused before training (or loading) starts, naming the file and field.
"""

from __future__ import annotations

import difflib
import json
import math
import re
from dataclasses import fields
from pathlib import Path
from typing import Any, Callable, Optional

# The highest difficulty any config or checkpoint may hold (the runtime's difficulty is an
# i64; no curriculum comes near this).
MAX_DIFFICULTY = 2**31 - 1
# The highest seed: seeds are mixed into u64 RNG streams (seed * 1_000_003 + iteration).
MAX_SEED = 2**32 - 1
MAX_COUNT = 2**53


class ConfigError(ValueError):
    """A config (a `--config` file or a run dir's config.json) with a bad key or value."""


def _kind(value: Any) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "a bool", type(None): "null",
            int: "an int", float: "a number"}.get(type(value), type(value).__name__)


def value_error(value: Any, kind: str, lo: Optional[float] = None, hi: Optional[float] = None,
                nan_ok: bool = False) -> Optional[str]:
    """Why `value` is not a `kind` ("int", "float", "bool", "str") within [lo, hi], or None."""
    if kind == "bool":
        return None if isinstance(value, bool) else f"must be true or false, not {_kind(value)} {value!r}"
    if kind == "str":
        return None if isinstance(value, str) else f"must be a string, not {_kind(value)} {value!r}"
    if kind == "int":
        if isinstance(value, bool) or not isinstance(value, int):
            return f"must be an int, not {_kind(value)} {value!r}"
    elif kind == "float":
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return f"must be a number, not {_kind(value)} {value!r}"
        if math.isnan(value):
            return None if nan_ok else "must be a number, not NaN"
        if math.isinf(value):
            return f"must be finite, not {value}"
    else:
        raise AssertionError(f"unknown kind {kind}")
    if lo is not None and hi is not None and not lo <= value <= hi:
        return f"must be between {lo:g} and {hi:g}, not {value:g}" if kind == "float" else \
            f"must be between {lo} and {hi}, not {value}"
    if lo is not None and value < lo:
        return f"must be at least {lo}, not {value}"
    if hi is not None and value > hi:
        return f"must be at most {hi}, not {value}"
    return None


Check = Callable[[Any], Optional[str]]


def number(kind: str, lo: Optional[float] = None, hi: Optional[float] = None, positive: bool = False) -> Check:
    """A check for an int or a float within [lo, hi] (`positive`: strictly above 0)."""
    def check(value: Any) -> Optional[str]:
        error = value_error(value, kind, lo, hi)
        if error is None and positive and value <= 0:
            return f"must be above 0, not {value}"
        return error
    return check


def optional(check: Check) -> Check:
    """`check`, or null (None) for "not set"."""
    return lambda value: None if value is None else check(value)


def choice(*options: str) -> Check:
    """A check for one of `options`."""
    def check(value: Any) -> Optional[str]:
        if isinstance(value, str) and value in options:
            return None
        return f"must be one of {', '.join(repr(o) for o in options)}, not {_kind(value)} {value!r}"
    return check


MAX_WIDTH = 1 << 16
"""The widest layer a config may ask for."""


def sizes(value: Any) -> Optional[str]:
    """A check for a list of layer sizes (ints between 1 and `MAX_WIDTH`)."""
    if not isinstance(value, list) or any(value_error(v, "int", 1, MAX_WIDTH) for v in value):
        return f"must be a list of ints between 1 and {MAX_WIDTH}, not {value!r}"
    return None


def device(value: Any) -> Optional[str]:
    """A check for a torch device name."""
    if isinstance(value, str) and re.fullmatch(r"cpu|auto|mps|cuda(:\d+)?", value):
        return None
    return f"must be \"cpu\", \"cuda\", \"cuda:N\", \"mps\" or \"auto\", not {value!r}"


LEARNERS = ("auto", "rust", "torch")
"""Where the updates run: the Rust learner, torch, or "auto" (see `twisterl.train.rust_learner.pick_learner`)."""

COMMON: dict[str, Check] = {
    "learner": choice(*LEARNERS),
    "num_threads": number("int", 1, 1024),
    "torch_threads": number("int", 0, 1024),
    "learning_rate": number("float", 0, 10, positive=True),
    "embedding_size": number("int", 1, MAX_WIDTH),
    "common_layers": sizes,
    "conv_channels": sizes,
    "twists": number("bool"),
    "difficulty": number("int", 0, MAX_DIFFICULTY),
    "diff_threshold": number("float", 0, 1),
    "diff_max": number("int", 0, MAX_DIFFICULTY),
    "seed": number("int", 0, MAX_SEED),
}


def build_config(config_cls, data: Any, where: str, checks: dict[str, Check], base: Optional[dict] = None):
    """`config_cls(**base, **data)` after checking `data` is an object whose keys are fields of
    `config_cls` and whose values pass `checks` (by name), else a `ConfigError` that names
    `where` (the file, and the key path inside it) and the field."""
    if not isinstance(data, dict):
        raise ConfigError(f"{where} must be an object of config keys, not {_kind(data)}")
    known = [f.name for f in fields(config_cls)]
    for key in data:
        if key not in known:
            close = difflib.get_close_matches(str(key), known, n=1)
            hint = f"; did you mean `{close[0]}`?" if close else ""
            raise ConfigError(f"{where}: unknown config key `{key}`{hint} (known: {', '.join(sorted(known))})")
    for key, value in data.items():
        error = checks[key](value) if key in checks else None
        if error:
            raise ConfigError(f"{where}: `{key}` {error}")
    return config_cls(**{**(base or {}), **data})


# TwisteRL's JSON config keys -> ours.
_TWISTERL_KEYS = {
    ("algorithm", "collecting", "lambda"): "gae_lambda",
    ("algorithm", "collecting", "gamma"): "gamma",
    ("algorithm", "training", "num_epochs"): "update_epochs",
    ("algorithm", "training", "vf_coef"): "vf_coef",
    ("algorithm", "training", "ent_coef"): "ent_coef",
    ("algorithm", "training", "clip_ratio"): "clip_coef",
    ("algorithm", "training", "normalize_advantage"): "norm_adv",
    ("algorithm", "learning", "diff_threshold"): "diff_threshold",
    ("algorithm", "learning", "diff_max"): "diff_max",
    ("algorithm", "learning", "diff_metric"): "diff_metric",
    ("algorithm", "evals"): "evals",
    ("algorithm", "optimizer", "lr"): "learning_rate",
    ("policy", "embedding_size"): "embedding_size",
    ("policy", "common_layers"): "common_layers",
    ("env", "difficulty"): "difficulty",
}


def load_config(path: Optional[str]) -> dict:
    """Our flat keys, or TwisteRL's nested JSON config (its known keys are mapped). A file that
    cannot be read or parsed, or holds no object, is a `ConfigError` naming it."""
    if not path:
        return {}
    try:
        text = Path(path).read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"--config {path} cannot be read: {getattr(exc, 'strerror', None) or exc}") from None
    try:
        if path.endswith(".toml"):
            import tomllib
            data = tomllib.loads(text)
        else:
            data = json.loads(text)
    except ValueError as exc:  # json.JSONDecodeError and tomllib.TOMLDecodeError
        raise ConfigError(f"{path} is not valid {'TOML' if path.endswith('.toml') else 'JSON'}: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path} must hold an object of config keys, not {type(data).__name__} {data!r:.40}")
    if "algorithm" in data or "policy" in data:
        flat = {}
        for keys, ours in _TWISTERL_KEYS.items():
            node: Any = data
            for k in keys:
                node = node.get(k) if isinstance(node, dict) else None
            if node is not None:
                flat[ours] = node
        return flat
    return data
