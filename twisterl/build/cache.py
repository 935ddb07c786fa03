"""Building a checked env into a native plugin, with a content-addressed cache.

    check (dsl) -> emit Rust (codegen) -> cargo build (cdylib) -> cache -> load

The cache key hashes the `.twl` source, the code generator's version and files, the plugin
ABI and runtime core versions, the core's own sources and the platform. Builds of the same
key are serialised with a file lock. Each entry `envs/KEY/` holds the library, named by its
own content hash, and `manifest.json`, written after the library is in place, with the
library's sha256 and size, the env's name and the sha256 of its spec. A library is used
only when it matches its manifest; a damaged entry is discarded and rebuilt.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import json
import logging
import os
import re
import shutil
import subprocess
import sys
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Iterator, Optional

from ..codegen.version import GENERATOR_VERSION

if TYPE_CHECKING:
    from ..dsl import ir


class BuildError(RuntimeError):
    """A plugin could not be built; the message says why and whose problem it is."""


class CacheError(BuildError):
    """The build cache cannot be used: it is not writable, not a folder, or its disk is full."""


MANIFEST = "manifest.json"
_MANIFEST_FORMAT = 1


@dataclass(frozen=True)
class Manifest:
    """What a cache entry's plugin must be: written at build time, checked before every load."""

    key: str
    library: str  # the file's name inside envs/KEY
    sha256: str
    size: int
    env: str
    spec_sha256: str


@dataclass(frozen=True)
class Built:
    """A compiled plugin: where it is, its cache key, whether it came from the cache, its manifest."""

    library: Path
    key: str
    cached: bool
    seconds: float
    manifest: Manifest


def cache_dir() -> Path:
    """`$TWISTERL_CACHE_DIR`, else `$XDG_CACHE_HOME/twisterl`, else `~/.cache/twisterl`."""
    if os.environ.get("TWISTERL_CACHE_DIR"):
        return Path(os.environ["TWISTERL_CACHE_DIR"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(Path.home(), ".cache")
    return Path(base) / "twisterl"


def core_source_dir() -> Path:
    """The runtime core's Rust sources: the repository's, or the copy inside the wheel."""
    here = Path(__file__).resolve().parents[1]  # the twisterl package
    for candidate in (here.parent / "runtime" / "core", here / "_runtime_core"):
        if (candidate / "Cargo.toml").is_file():
            return candidate
    raise BuildError("the runtime core sources are missing from this installation; reinstall twisterl")


@lru_cache(maxsize=1)
def _core_digest() -> str:
    root = core_source_dir()
    h = hashlib.sha256()
    for path in sorted([root / "Cargo.toml", *(root / "src").rglob("*.rs")]):
        h.update(str(path.relative_to(root)).encode())
        h.update(path.read_bytes())
    return h.hexdigest()


@lru_cache(maxsize=1)
def _generator_digest() -> str:
    """A digest of the front end and code generator themselves, templates included."""
    import importlib.util
    h = hashlib.sha256()
    for package in ("twisterl.dsl", "twisterl.codegen"):
        # Find the package's folder without importing it (that would cost ~0.1 s).
        spec = importlib.util.find_spec(package)
        real = Path(next(iter(spec.submodule_search_locations)))
        for path in sorted(list(real.rglob("*.py")) + list(real.rglob("*.j2")) + list(real.rglob("*.lark"))):
            h.update(path.name.encode())
            h.update(path.read_bytes())
    return h.hexdigest()


def cache_key(source_text: str) -> str:
    """The build's identity: the `.twl` source, the generator, the ABI and the runtime core."""
    from .. import _core
    h = hashlib.sha256()
    for part in (source_text, GENERATOR_VERSION, _generator_digest(), str(_core.ABI_VERSION),
                 _core.CORE_VERSION, _core_digest(), sys.platform):
        h.update(part.encode())
        h.update(b"\0")
    return h.hexdigest()[:20]


def _lib_name(crate: str) -> str:
    if sys.platform == "darwin":
        return f"lib{crate}.dylib"
    if sys.platform == "win32":
        return f"{crate}.dll"
    return f"lib{crate}.so"


def spec_sha256(spec: str) -> str:
    """The hash of a plugin's JSON spec string, as recorded in its manifest."""
    return hashlib.sha256(spec.encode()).hexdigest()


# ---------------------------------------------------------------- cache entries


def _read_entry(folder: Path, key: str) -> tuple[Optional[Manifest], Optional[str]]:
    """The manifest of entry `folder` if its library matches it, else (None, why it is unusable).

    (None, None) means there is no entry at all: nothing to warn about.
    """
    try:
        data = json.loads((folder / MANIFEST).read_bytes())
    except FileNotFoundError:
        # Nothing, a crashed build's temporary files, or a plugin from before manifests
        # (`libenv.so`): rebuilt without a warning.
        try:
            names = {p.name for p in folder.iterdir() if not p.name.startswith(".")}
        except OSError:
            names = set()
        return None, ("it has no manifest" if names - {_lib_name("env")} else None)
    except NotADirectoryError:
        return None, ("it is a file, not a folder" if folder.exists() else None)
    except (OSError, ValueError) as exc:
        return None, f"its manifest cannot be read ({getattr(exc, 'strerror', None) or exc})"
    try:
        if data.pop("format") != _MANIFEST_FORMAT:
            return None, "its manifest has another format"
        manifest = Manifest(**data)
    except (AttributeError, KeyError, TypeError):
        return None, "its manifest is malformed"
    if not (isinstance(manifest.library, str) and isinstance(manifest.size, int)):
        return None, "its manifest is malformed"
    if manifest.key != key or os.path.basename(manifest.library) != manifest.library:
        return None, "its manifest belongs to another entry"
    try:
        with open(folder / manifest.library, "rb") as f:
            content = f.read()
    except OSError as exc:
        return None, f"its library cannot be read ({exc.strerror or exc})"
    if len(content) != manifest.size or hashlib.sha256(content).hexdigest() != manifest.sha256:
        return None, "its library does not match its manifest: it was damaged or replaced"
    return manifest, None


def lookup(source_text: str) -> Optional[Built]:
    """The verified plugin already built from `source_text`, if the cache has one (no lock)."""
    start = time.perf_counter()
    key = cache_key(source_text)
    folder = cache_dir() / "envs" / key
    manifest, _ = _read_entry(folder, key)
    if manifest is None:
        return None
    return Built(folder / manifest.library, key, True, time.perf_counter() - start, manifest)


def cached_library(source_text: str) -> Optional[Path]:
    """The plugin already built from `source_text`, if the cache has a verified one."""
    built = lookup(source_text)
    return built.library if built else None


_log = logging.getLogger("twisterl.build")


def _warn(message: str) -> None:
    """A warning through `logging` (shown on stderr unless the application configures logging)."""
    _log.warning("twisterl: warning: %s", message)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


def _write_atomic(path: Path, data: bytes) -> None:
    """Write `data` to `path` under a temporary name, then rename it into place."""
    staging = path.parent / f".{path.name}.{os.getpid()}.tmp"
    try:
        staging.write_bytes(data)
        os.replace(staging, path)
    finally:
        if staging.exists():
            staging.unlink()


def _write_if_changed(path: Path, text: str) -> None:
    if not path.is_file() or path.read_text() != text:
        path.write_text(text)


def _blocking_file(path: Path) -> Optional[Path]:
    """The file, if any, standing where `path` or one of its folders should be."""
    try:
        for p in (path, *path.parents):
            if p.exists() or p.is_symlink():
                return None if p.is_dir() else p
    except OSError:
        pass
    return None


def _cache_error(root: Path, exc: OSError) -> CacheError:
    what = f"{exc.strerror or exc}" + (f": {exc.filename}" if exc.filename else "")
    hint = "set TWISTERL_CACHE_DIR to another folder"
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return CacheError(f"the build cache {root} is not writable ({what}); "
                          "set TWISTERL_CACHE_DIR to a writable folder")
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return CacheError(f"the disk holding the build cache {root} is full ({what}); free some space, "
                          "or set TWISTERL_CACHE_DIR to a folder on another disk")
    if exc.errno in (errno.ENOTDIR, errno.EEXIST) and exc.filename:
        blocker = _blocking_file(Path(exc.filename))
        if blocker is not None:
            return CacheError(f"the build cache {root} cannot be used: {blocker} is a file where a folder "
                              f"should be; remove it, or {hint}")
    if exc.errno == errno.EISDIR:
        return CacheError(f"the build cache {root} cannot be used: {exc.filename} is a folder where a file "
                          f"should be; remove it, or {hint}")
    return CacheError(f"the build cache {root} cannot be used ({what}); {hint}")


@contextmanager
def _cache_io(root: Path) -> Iterator[None]:
    """Report the OS refusing a cache operation as a `CacheError` that says what to do."""
    try:
        yield
    except CacheError:
        raise
    except OSError as exc:
        raise _cache_error(root, exc) from exc


def build(env: ir.Env, source_text: str, *, emit_dir: Optional[Path] = None, quiet: bool = True,
          reject: Optional[tuple[str, str]] = None) -> Built:
    """Compile `env` (checked from `source_text`) into a plugin, or find it in the cache.

    `reject=(sha256, why)` discards the cached library with that hash (it failed its check
    after loading) and rebuilds it, unless another process already has.
    """
    from ..codegen.emit import cargo_toml, emit_rust
    start = time.perf_counter()
    rust = None
    if emit_dir is not None:
        rust = emit_rust(env)
        emit_dir = Path(emit_dir)
        (emit_dir / "src").mkdir(parents=True, exist_ok=True)
        (emit_dir / "src" / "lib.rs").write_text(rust)
        (emit_dir / "Cargo.toml").write_text(cargo_toml(_crate_name(env, "emitted"), core_source_dir()))
    key = cache_key(source_text)
    root = cache_dir()
    folder = root / "envs" / key
    if reject is None:
        manifest, _ = _read_entry(folder, key)
        if manifest is not None:
            return Built(folder / manifest.library, key, True, time.perf_counter() - start, manifest)
    with _cache_io(root):
        (root / "locks").mkdir(parents=True, exist_ok=True)
        lock = open(root / "locks" / f"{key}.lock", "w")
    with lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        manifest, problem = _read_entry(folder, key)
        if manifest is not None and (reject is None or manifest.sha256 != reject[0]):
            # Another process built (or rebuilt) it while we waited.
            return Built(folder / manifest.library, key, True, time.perf_counter() - start, manifest)
        if manifest is not None:
            problem = reject[1]
        with _cache_io(root):
            if problem is not None:
                _warn(f"discarding the damaged build-cache entry {folder} ({problem}); rebuilding it")
            if folder.exists() or folder.is_symlink():
                _remove(folder)
        crate = _crate_name(env, key)
        rust = rust if rust is not None else emit_rust(env)
        src = root / "src" / key
        with _cache_io(root):
            (src / "src").mkdir(parents=True, exist_ok=True)
            _write_if_changed(src / "Cargo.toml", cargo_toml(crate, core_source_dir()))
            # Always rewritten: a new modification time makes cargo relink from scratch.
            (src / "src" / "lib.rs").write_text(rust)
        target = root / "target"
        _cargo_build(src, target, crate, quiet)
        with _cache_io(root):
            content = (target / "release" / _lib_name(crate)).read_bytes()
            digest = hashlib.sha256(content).hexdigest()
            manifest = Manifest(key=key, library=f"env-{digest[:16]}{Path(_lib_name('env')).suffix}",
                                sha256=digest, size=len(content), env=env.name,
                                spec_sha256=spec_sha256(_spec_json(env)))
            folder.mkdir(parents=True, exist_ok=True)
            _write_atomic(folder / manifest.library, content)
            record = {"format": _MANIFEST_FORMAT, **asdict(manifest)}
            _write_atomic(folder / MANIFEST, (json.dumps(record, indent=1) + "\n").encode())
    return Built(folder / manifest.library, key, False, time.perf_counter() - start, manifest)


def _spec_json(env: ir.Env) -> str:
    """The spec string code generation embeds in the plugin."""
    from ..codegen.lower import lower
    return lower(env, Path(env.path).name).spec_json


def _crate_name(env: ir.Env, key: str) -> str:
    stem = "".join(ch if ch.isalnum() else "_" for ch in env.name.lower())
    return f"twl_{stem}_{key[:12]}"


# ---------------------------------------------------------------- cargo and its failures


def _cargo_build(crate_dir: Path, target: Path, crate: str, quiet: bool) -> None:
    cargo = shutil.which("cargo")
    if cargo is None:
        raise BuildError("`cargo` was not found; install Rust (https://rustup.rs) to compile environments")
    cmd = [cargo, "build", "--release", "--lib", "--manifest-path", str(crate_dir / "Cargo.toml"),
           "--target-dir", str(target)]
    if quiet:
        cmd.append("--quiet")
    env = dict(os.environ, CARGO_TERM_COLOR="never")  # the output is parsed, never shown raw
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        raise cargo_failure(proc.stderr, crate_dir, crate, target.parent)


_ERROR_START = re.compile(r"^error(\[E\d+\])?:")
_SUMMARY = re.compile(r"^error: (aborting due to|could not compile)")


def _first_error(stderr: str) -> tuple[str, int]:
    """The first error diagnostic in cargo's output, in full, and how many more follow."""
    blocks = [b.strip("\n") for b in re.split(r"\n[ \t]*\n", stderr.replace("\r\n", "\n")) if b.strip()]
    starts = [i for i, b in enumerate(blocks) if _ERROR_START.match(b) and not _SUMMARY.match(b)]
    if not starts:
        starts = [i for i, b in enumerate(blocks) if _ERROR_START.match(b)]
    if not starts:
        tail = stderr.strip()[-2000:]
        return (tail[tail.find("\n") + 1:] if len(stderr.strip()) > 2000 else tail), 0
    first = [blocks[starts[0]]]
    for b in blocks[starts[0] + 1:]:  # cargo's "Caused by:" chain belongs to its error
        if not b.startswith("Caused by:"):
            break
        first.append(b)
    return "\n\n".join(first), len(starts) - 1


def cargo_failure(stderr: str, crate_dir: Path, crate: str, root: Path) -> BuildError:
    """The error for a failed `cargo build` of the generated crate, worded by whose problem it is."""
    error, more = _first_error(stderr)
    shown = error + (f"\n\n(and {more} more error{'s' if more != 1 else ''})" if more else "")
    where = (f"The generated crate is in {crate_dir}; to reproduce:\n"
             f"    cargo build --release --lib --manifest-path {crate_dir / 'Cargo.toml'}")
    low = stderr.lower()
    if "no space left on device" in low or "disk quota exceeded" in low:
        return CacheError(f"the disk holding the build cache {root} is full: cargo could not write its "
                          "output (No space left on device). Free some space, or set TWISTERL_CACHE_DIR "
                          f"to a folder on another disk.\n\n{shown}")
    if "permission denied" in low or "read-only file system" in low:
        return CacheError(f"cargo was refused access to a file while building the plugin (permission "
                          f"denied). Check that the build cache {root} and ~/.cargo are writable, or set "
                          f"TWISTERL_CACHE_DIR to a writable folder.\n\n{shown}")
    if re.search(r"linker `[^`]*` not found|linking with `[^`]*` failed", stderr):
        return BuildError("the plugin could not be linked: the system's C linker is missing or failed. "
                          "This is a problem with the toolchain, not with your file; install a C compiler "
                          f"and linker (e.g. gcc or clang).\n\n{shown}\n\n{where}")
    if re.search(r"no default toolchain|toolchain '[^']*' is not installed|rustup could not choose", stderr):
        return BuildError("the Rust toolchain is not set up (try `rustup default stable`).\n\n"
                          f"{shown}")
    if f"could not compile `{crate}`" in stderr:
        return BuildError("the Rust generated from your file failed to compile. Your file passed "
                          "`twisterl check`, so this is a bug in twisterl; please report it with the error "
                          f"below.\n\n{shown}\n\n{where}")
    return BuildError(f"cargo could not build the plugin (this is not an error in your file; the first "
                      f"error is below).\n\n{shown}\n\n{where}")
