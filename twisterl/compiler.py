"""`twisterl.compile`: a `.twl` file to a loaded, ready-to-use environment class."""

from __future__ import annotations

from pathlib import Path
from typing import Optional, Union

from . import _core
from .build import build
from .dsl import check_file
from .dsl.diagnostics import Diagnostic, render_text
from .envs import EnvClass


class CheckError(ValueError):
    """The `.twl` file has errors; `diagnostics` holds them, `str()` shows them like the CLI."""

    def __init__(self, text: str, diagnostics: list[Diagnostic]):
        super().__init__(text)
        self.diagnostics = diagnostics


_loaded: dict[str, EnvClass] = {}


def compile(path: Union[str, Path], *, emit_rust: Optional[Union[str, Path]] = None) -> EnvClass:
    """Check, generate, build (or fetch from the cache) and load the env in `path`.

    `emit_rust=DIR` also writes the generated crate to DIR for inspection.
    """
    result = check_file(path)
    if not result.ok:
        text = "\n\n".join(render_text(d, result.source) for d in result.errors)
        raise CheckError(text, result.errors)
    built = build(result.env, result.source.text, emit_dir=Path(emit_rust) if emit_rust else None)
    key = str(built.library)
    if key not in _loaded:
        plugin = _core.load_plugin(key)
        _loaded[key] = EnvClass(plugin, str(path), result.source.text, built.library)
    return _loaded[key]
