"""Building a checked env into a native plugin, with a content-addressed cache.

    check (dsl) -> emit Rust (codegen) -> cargo build (cdylib) -> cache -> load

The cache key hashes the `.twl` source, the code generator's version, the plugin ABI and
runtime core versions, the core's own sources and the Rust compiler's version. Builds of
the same key are serialised with a file lock, and the finished library is moved into
place with an atomic rename, so concurrent compiles never see a half-written file.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Optional

from typing import TYPE_CHECKING

from .codegen.version import GENERATOR_VERSION

if TYPE_CHECKING:
    from .dsl import ir


class BuildError(RuntimeError):
    """The Rust toolchain is missing, or failed to build generated code (a twisterl bug)."""


@dataclass(frozen=True)
class Built:
    """A compiled plugin: where it is, its cache key, and whether it came from the cache."""

    library: Path
    key: str
    cached: bool
    seconds: float


def cache_dir() -> Path:
    """`$TWISTERL_CACHE_DIR`, else `$XDG_CACHE_HOME/twisterl`, else `~/.cache/twisterl`."""
    if os.environ.get("TWISTERL_CACHE_DIR"):
        return Path(os.environ["TWISTERL_CACHE_DIR"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(Path.home(), ".cache")
    return Path(base) / "twisterl"


def core_source_dir() -> Path:
    """The runtime core's Rust sources: the repository's, or the copy inside the wheel."""
    here = Path(__file__).resolve().parent
    for candidate in (here.parent / "runtime" / "core", here / "_runtime_core"):
        if (candidate / "Cargo.toml").is_file():
            return candidate
    raise BuildError("the runtime core sources are missing from this installation; reinstall twisterl")


@lru_cache(maxsize=1)
def _core_digest() -> str:
    root = core_source_dir()
    h = hashlib.sha256()
    for path in sorted([root / "Cargo.toml", *(root / "src").glob("*.rs")]):
        h.update(path.name.encode())
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
    from . import _core
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


def cached_library(source_text: str) -> Optional[Path]:
    """The plugin already built from `source_text`, if the cache has it."""
    path = cache_dir() / "envs" / cache_key(source_text) / _lib_name("env")
    return path if path.is_file() else None


def build(env: ir.Env, source_text: str, *, emit_dir: Optional[Path] = None, quiet: bool = True) -> Built:
    """Compile `env` (checked from `source_text`) into a plugin, or find it in the cache."""
    from .codegen.emit import cargo_toml, emit_rust
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
    final = root / "envs" / key / _lib_name("env")
    if final.is_file():
        return Built(final, key, True, time.perf_counter() - start)
    (root / "locks").mkdir(parents=True, exist_ok=True)
    with open(root / "locks" / f"{key}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if final.is_file():  # another process built it while we waited
            return Built(final, key, True, time.perf_counter() - start)
        crate = _crate_name(env, key)
        rust = rust if rust is not None else emit_rust(env)
        src = root / "src" / key
        (src / "src").mkdir(parents=True, exist_ok=True)
        (src / "Cargo.toml").write_text(cargo_toml(crate, core_source_dir()))
        (src / "src" / "lib.rs").write_text(rust)
        target = root / "target"
        _cargo_build(src, target, quiet)
        produced = target / "release" / _lib_name(crate)
        final.parent.mkdir(parents=True, exist_ok=True)
        staging = final.parent / f".{os.getpid()}.tmp"
        shutil.copy2(produced, staging)
        os.replace(staging, final)
    return Built(final, key, False, time.perf_counter() - start)


def _crate_name(env: ir.Env, key: str) -> str:
    stem = "".join(ch if ch.isalnum() else "_" for ch in env.name.lower())
    return f"twl_{stem}_{key[:12]}"


def _cargo_build(crate_dir: Path, target: Path, quiet: bool) -> None:
    cargo = shutil.which("cargo")
    if cargo is None:
        raise BuildError("`cargo` was not found; install Rust (https://rustup.rs) to compile environments")
    cmd = [cargo, "build", "--release", "--lib", "--manifest-path", str(crate_dir / "Cargo.toml"),
           "--target-dir", str(target)]
    if quiet:
        cmd.append("--quiet")
    env = dict(os.environ)
    env.setdefault("CARGO_TERM_COLOR", "never")
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        raise BuildError("the generated Rust failed to build. This is a bug in twisterl, not in your "
                         f"file; please report it with the output below.\n{proc.stderr[-4000:]}")
