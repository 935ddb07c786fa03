"""`twisterl.compile`: a `.twl` file to a loaded, ready-to-use environment class."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional, Union

from .. import _core
from ..build import BuildError, Built, Manifest, build, lookup, spec_sha256
from .env import EnvClass


class CheckError(ValueError):
    """The `.twl` file has errors; `diagnostics` holds them, `str()` shows them like the CLI."""

    def __init__(self, text: str, diagnostics: list):
        super().__init__(text)
        self.diagnostics = diagnostics


# Loaded plugins by their library's sha256, with the spec hash they were checked against.
# A library is named by its content, so a rebuilt entry never reuses a stale loaded object.
_loaded: dict[str, tuple[EnvClass, str]] = {}


def compile(path: Union[str, Path], *, emit_rust: Optional[Union[str, Path]] = None) -> EnvClass:
    """Check, generate, build (or fetch from the cache) and load the env in `path`.

    `emit_rust=DIR` also writes the generated crate to DIR for inspection. A cached plugin
    is loaded only if it matches the hash its build recorded, and kept only if it is the
    env its manifest names; otherwise it is rebuilt.
    """
    try:
        raw = Path(path).read_bytes()
        text = raw.decode("utf-8").removeprefix("\ufeff")
    except (OSError, UnicodeDecodeError):
        text = None
    # A cache hit needs no checking: the key covers the source and the whole front end.
    built = lookup(text) if text is not None and emit_rust is None else None
    checked = None
    reject: Optional[tuple[str, str]] = None
    for _ in range(3):
        if built is None:
            if checked is None:
                checked = _check(path)
                text = checked.source.text
            built = build(checked.env, text, emit_dir=Path(emit_rust) if emit_rust else None, reject=reject)
        problem, cls = _load(built, str(path), text)
        if cls is not None:
            return cls
        if reject is not None and not built.cached:
            raise BuildError(f"{built.library}, just built, {problem}. This is a bug in twisterl; please "
                             "report it.")
        reject = (built.manifest.sha256, problem) if built.library.is_file() else None
        built = None
    raise BuildError(f"the cached plugin for {path} kept changing while it was loaded; try again")


def _check(path: Union[str, Path]):
    from ..dsl import check_file
    from ..dsl.diagnostics import render_text
    result = check_file(path)
    if not result.ok:
        rendered = "\n\n".join(render_text(d, result.source) for d in result.errors)
        raise CheckError(rendered, result.errors)
    return result


def _load(built: Built, path: str, text: str) -> tuple[Optional[str], Optional[EnvClass]]:
    """The env class of a verified library, or (why it is not the env its manifest names, None)."""
    manifest = built.manifest
    if manifest.sha256 in _loaded:
        cls, spec_hash = _loaded[manifest.sha256]
        problem = _mismatch(cls.name, spec_hash, manifest)
        return (problem, None) if problem else (None, cls)
    try:
        plugin = _core.load_plugin(str(built.library))
    except (OSError, ValueError) as exc:
        return f"cannot be loaded ({exc})", None
    try:
        name = json.loads(plugin.spec).get("name")
    except (ValueError, AttributeError):
        name = None
    spec_hash = spec_sha256(plugin.spec)
    problem = _mismatch(name, spec_hash, manifest)
    if problem is not None:
        return problem, None
    cls = EnvClass(plugin, path, text, built.library)
    _loaded[manifest.sha256] = (cls, spec_hash)
    return None, cls


def _mismatch(name: Optional[str], spec_hash: str, manifest: Manifest) -> Optional[str]:
    if name != manifest.env:
        return f"is the plugin of env {name}, not of {manifest.env} as its manifest says"
    if spec_hash != manifest.spec_sha256:
        return "has another spec than the one its manifest records"
    return None


def spec_hash(cls: EnvClass) -> str:
    """The hash of `cls`'s plugin spec, as `load_built` checks it."""
    return spec_sha256(cls._plugin.spec)


def load_built(library: Union[str, Path], source_text: str, source_path: str, env: str, spec_hash: str) -> EnvClass:
    """The env class of a plugin built elsewhere (such as one a Ray driver sent its workers),
    checked to be env `env` with the spec of hash `spec_hash`: a `BuildError` otherwise."""
    library = Path(library)
    try:
        plugin = _core.load_plugin(str(library))
    except (OSError, ValueError) as exc:
        raise BuildError(f"{library} cannot be loaded ({exc})") from None
    try:
        name = json.loads(plugin.spec).get("name")
    except (ValueError, AttributeError):
        name = None
    if name != env or spec_sha256(plugin.spec) != spec_hash:
        raise BuildError(f"{library} is not the plugin of env {env} it was sent as")
    return EnvClass(plugin, source_path, source_text, library)
