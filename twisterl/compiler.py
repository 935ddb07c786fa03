"""`twisterl.compile`: a `.twl` file to a loaded, ready-to-use environment class."""

from __future__ import annotations

from pathlib import Path
from typing import Optional, Union

from . import _core
from .build import build, cached_library
from .envs import EnvClass


class CheckError(ValueError):
    """The `.twl` file has errors; `diagnostics` holds them, `str()` shows them like the CLI."""

    def __init__(self, text: str, diagnostics: list):
        super().__init__(text)
        self.diagnostics = diagnostics


_loaded: dict[str, EnvClass] = {}


def compile(path: Union[str, Path], *, emit_rust: Optional[Union[str, Path]] = None) -> EnvClass:
    """Check, generate, build (or fetch from the cache) and load the env in `path`.

    `emit_rust=DIR` also writes the generated crate to DIR for inspection.
    """
    try:
        raw = Path(path).read_bytes()
        text = raw.decode("utf-8").removeprefix("\ufeff")
    except (OSError, UnicodeDecodeError):
        text = None
    # A cache hit needs no checking: the key covers the source and the whole front end.
    library = cached_library(text) if text is not None and emit_rust is None else None
    if library is None:
        from .dsl import check_file
        from .dsl.diagnostics import render_text
        result = check_file(path)
        if not result.ok:
            rendered = "\n\n".join(render_text(d, result.source) for d in result.errors)
            raise CheckError(rendered, result.errors)
        text = result.source.text
        library = build(result.env, text, emit_dir=Path(emit_rust) if emit_rust else None).library
    key = str(library)
    if key not in _loaded:
        _loaded[key] = EnvClass(_core.load_plugin(key), str(path), text, library)
    return _loaded[key]
