"""Faults around the build cache: damaged entries are rebuilt, unusable cache folders and
failed builds are reported as what they are, and the documented API surfaces work.

Every load of a damaged entry runs in a subprocess, so a crash shows up as a negative
return code and fails the test instead of killing pytest.
"""

from __future__ import annotations

import errno
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from twisterl.build import cache as build_mod
from twisterl import BuildError, CacheError
from twisterl.build import cache_key

ROOT = Path(__file__).resolve().parents[1]
PUZZLE = ROOT / "examples" / "puzzle.twl"
TICTACTOE = ROOT / "examples" / "tictactoe.twl"

# Compile, make an env, step it; print its name and library.
STEP = ("import sys, twisterl\n"
        "for path in sys.argv[1:]:\n"
        "    cls = twisterl.compile(path)\n"
        "    env = cls(seed=0, illegal_action='noop'); env.reset(seed=0); env.step(0)\n"
        "    print(cls.name, cls.library)\n")


def _python(cache: Path, script: str, *args: object) -> subprocess.CompletedProcess:
    env = dict(os.environ, TWISTERL_CACHE_DIR=str(cache))
    return subprocess.run([sys.executable, "-c", script, *map(str, args)], capture_output=True, text=True,
                          env=env, timeout=300)


def _folder(cache: Path, source: Path) -> Path:
    return cache / "envs" / cache_key(source.read_text())


def _manifest(folder: Path) -> dict:
    return json.loads((folder / "manifest.json").read_text())


@pytest.fixture(scope="module")
def built(build_cache) -> tuple[Path, dict[str, Path]]:
    """The session's build cache with the puzzle and tic-tac-toe in it, and their entries'
    folders by env name. Each test leaves the entries as it found them: working."""
    result = _python(build_cache, STEP, PUZZLE, TICTACTOE)
    assert result.returncode == 0, result.stderr
    return build_cache, {name: Path(library).parent
                         for name, library in map(str.split, result.stdout.splitlines())}


@pytest.fixture
def cache(built) -> Path:
    return built[0]


@pytest.fixture
def entries(built) -> dict[str, Path]:
    return built[1]


# ---------------------------------------------------------------- damaged entries
# Damaged files are written as new files renamed over the old: a plugin this pytest
# process has loaded keeps its pages, so only the subprocesses see the damage.


def _replace(path: Path, data: bytes) -> None:
    path.with_name(".damage").write_bytes(data)
    os.replace(path.with_name(".damage"), path)


def _truncate(lib: Path, other: Path) -> None:
    _replace(lib, lib.read_bytes()[: lib.stat().st_size // 3])


def _flip_bytes(lib: Path, other: Path) -> None:
    data = bytearray(lib.read_bytes())
    middle = len(data) // 2
    data[middle:middle + 256] = bytes(b ^ 0xFF for b in data[middle:middle + 256])
    _replace(lib, bytes(data))


def _junk(lib: Path, other: Path) -> None:
    _replace(lib, b"\x7fELF" + bytes(range(256)) * 64)


def _other_env_library(lib: Path, other: Path) -> None:
    _replace(lib, (other / _manifest(other)["library"]).read_bytes())


def _directory(lib: Path, other: Path) -> None:
    lib.unlink()
    (lib / "inner").mkdir(parents=True)


def _other_entry(lib: Path, other: Path) -> None:
    """The whole entry of another env, manifest included, under this key."""
    folder = lib.parent
    shutil.rmtree(folder)
    shutil.copytree(other, folder)


def _forged_manifest(lib: Path, other: Path) -> None:
    """Another env's library with a manifest that matches its bytes but names this env."""
    manifest, theirs = _manifest(lib.parent), _manifest(other)
    lib.unlink()
    shutil.copyfile(other / theirs["library"], lib.parent / theirs["library"])
    manifest.update(library=theirs["library"], sha256=theirs["sha256"], size=theirs["size"])
    (lib.parent / "manifest.json").write_text(json.dumps(manifest))


def _manifest_junk(lib: Path, other: Path) -> None:
    (lib.parent / "manifest.json").write_bytes(b"{\"format\": 1, \"sha256\": tru")


def _manifest_missing(lib: Path, other: Path) -> None:
    (lib.parent / "manifest.json").unlink()


def _legacy_layout(lib: Path, other: Path) -> None:
    """An entry from before manifests: only `libenv.so`. Not damage: rebuilt silently."""
    data = lib.read_bytes()
    shutil.rmtree(lib.parent)
    lib.parent.mkdir()
    (lib.parent / "libenv.so").write_bytes(data)


@pytest.mark.parametrize("damage", [_truncate, _flip_bytes, _junk, _other_env_library, _directory, _other_entry,
                                    _forged_manifest, _manifest_junk, _manifest_missing, _legacy_layout],
                         ids=lambda f: f.__name__.strip("_"))
def test_a_damaged_entry_is_rebuilt(cache, entries, damage):
    folder, other = entries["SlidingPuzzle"], entries["TicTacToe"]
    damage(folder / _manifest(folder)["library"], other)
    result = _python(cache, STEP, PUZZLE)
    assert result.returncode == 0, f"exit {result.returncode}: {result.stderr}"
    name, library = result.stdout.split()
    assert name == "SlidingPuzzle" and Path(library).parent == folder
    warnings = result.stderr.strip().splitlines()
    if damage is _legacy_layout:
        assert warnings == []
    else:
        assert len(warnings) == 1 and "discarding the damaged build-cache entry" in warnings[0], result.stderr
    manifest, problem = build_mod._read_entry(folder, folder.name)
    assert problem is None and manifest.env == "SlidingPuzzle"
    assert sorted(p.name for p in folder.iterdir()) == sorted([manifest.library, "manifest.json"])


def test_processes_finding_the_same_damage_rebuild_once(cache, entries):
    folder = entries["SlidingPuzzle"]
    _junk(folder / _manifest(folder)["library"], None)
    env = dict(os.environ, TWISTERL_CACHE_DIR=str(cache))
    procs = [subprocess.Popen([sys.executable, "-c", STEP, str(PUZZLE)], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, env=env) for _ in range(3)]
    outs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], [err for _, err in outs]
    assert len({out for out, _ in outs}) == 1
    assert sum(err.count("discarding the damaged") for _, err in outs) == 1


def test_a_process_that_loaded_another_env_is_not_fooled(cache, entries):
    """In one process: tic-tac-toe is loaded, then the puzzle's entry names its library."""
    folder = entries["SlidingPuzzle"]
    _forged_manifest(folder / _manifest(folder)["library"], entries["TicTacToe"])
    result = _python(cache, STEP, TICTACTOE, PUZZLE)
    assert result.returncode == 0, result.stderr
    assert [line.split()[0] for line in result.stdout.splitlines()] == ["TicTacToe", "SlidingPuzzle"]


def test_an_entry_damaged_after_loading_is_rebuilt_in_the_same_process(cache, entries):
    folder = entries["SlidingPuzzle"]
    script = STEP + (
        "import os\n"
        "lib = cls.library\n"
        "with open(str(lib) + '.junk', 'wb') as f: f.write(b'junk')\n"
        "os.replace(str(lib) + '.junk', lib)  # a new file: the loaded one stays intact\n"
        "again = twisterl.compile(sys.argv[1])\n"
        "env = again(seed=0, illegal_action='noop'); env.reset(seed=0); env.step(0)\n"
        "print(again.name, again.library)\n")
    result = _python(cache, script, PUZZLE)
    assert result.returncode == 0, result.stderr
    assert [line.split()[0] for line in result.stdout.splitlines()] == ["SlidingPuzzle"] * 2
    assert result.stderr.count("discarding the damaged build-cache entry") == 1
    assert build_mod._read_entry(folder, folder.name)[1] is None


def test_warm_compile_stays_fast(cache, entries):
    script = ("import sys, time, twisterl\n"
              "twisterl.compile(sys.argv[1])\n"
              "start = time.perf_counter()\n"
              "for _ in range(20): twisterl.compile(sys.argv[1])\n"
              "print((time.perf_counter() - start) / 20)\n")
    result = _python(cache, script, PUZZLE)
    assert result.returncode == 0, result.stderr
    assert float(result.stdout) < 0.02


# ---------------------------------------------------------------- unusable cache folders


def _variant(tmp_path: Path, text: str = "") -> Path:
    """A copy of the puzzle with its own cache key."""
    path = tmp_path / "puzzle.twl"
    path.write_text(PUZZLE.read_text() + f"\n# variant {tmp_path.name} {text}\n")
    return path


def test_a_cache_path_that_is_a_file(tmp_path, monkeypatch):
    blocker = tmp_path / "cache"
    blocker.write_text("not a folder")
    monkeypatch.setenv("TWISTERL_CACHE_DIR", str(blocker))
    import twisterl
    with pytest.raises(CacheError, match=f"{re.escape(str(blocker))} is a file where a folder should be"):
        twisterl.compile(PUZZLE)
    cli = subprocess.run([sys.executable, "-m", "twisterl", "compile", str(PUZZLE)], capture_output=True,
                         text=True, env=dict(os.environ), timeout=120)
    assert cli.returncode == 1
    assert cli.stderr.startswith("twisterl compile: error: the build cache") and "TWISTERL_CACHE_DIR" in cli.stderr
    assert "internal error" not in cli.stderr and "bug" not in cli.stderr


def test_a_read_only_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("TWISTERL_CACHE_DIR", str(tmp_path / "cache"))
    if os.geteuid() != 0:
        (tmp_path / "cache").mkdir(mode=0o555)
    else:  # root writes anywhere: the OS's refusal is simulated
        def refuse(self, *args, **kwargs):
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(self))
        monkeypatch.setattr(Path, "mkdir", refuse)
    import twisterl
    with pytest.raises(CacheError, match=r"is not writable .*set TWISTERL_CACHE_DIR to a writable folder"):
        twisterl.compile(_variant(tmp_path))


def test_a_folder_where_a_file_should_be(tmp_path, monkeypatch):
    source = _variant(tmp_path)
    monkeypatch.setenv("TWISTERL_CACHE_DIR", str(tmp_path / "cache"))
    (tmp_path / "cache" / "locks" / f"{cache_key(source.read_text())}.lock").mkdir(parents=True)
    import twisterl
    with pytest.raises(CacheError, match="is a folder where a file should be; remove it"):
        twisterl.compile(source)


def test_a_full_disk_leaves_no_entry_behind(cache, tmp_path, monkeypatch):
    monkeypatch.setenv("TWISTERL_CACHE_DIR", str(cache))
    source = _variant(tmp_path)
    real_write = build_mod._write_atomic

    def full(path, data):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
    monkeypatch.setattr(build_mod, "_write_atomic", full)
    import twisterl
    with pytest.raises(CacheError, match=r"^the disk holding the build cache .* is full \(No space left on device"):
        twisterl.compile(source)
    assert not (_folder(cache, source) / "manifest.json").exists()
    monkeypatch.setattr(build_mod, "_write_atomic", real_write)
    cls = twisterl.compile(source)
    assert cls.name == "SlidingPuzzle" and cls(seed=0).reset(seed=0)[0].any()


# ---------------------------------------------------------------- failed Rust builds


def test_a_generated_crate_that_fails_to_compile(cache, tmp_path, monkeypatch):
    from twisterl.codegen import emit
    real = emit.emit_rust
    monkeypatch.setattr(emit, "emit_rust", lambda env: real(env) + (
        "\npub fn twl_broken_a() -> u32 { twl_undefined_a }\npub fn twl_broken_b() -> u32 { twl_undefined_b }\n"))
    monkeypatch.setenv("TWISTERL_CACHE_DIR", str(cache))
    import twisterl
    with pytest.raises(BuildError) as info:
        twisterl.compile(_variant(tmp_path, "broken"))
    message = str(info.value)
    assert "passed `twisterl check`, so this is a bug in twisterl" in message
    first = re.search(r"^error\[E0425\]: cannot find value `twl_undefined_a`.*?(?=\n\n)", message, re.S | re.M)
    assert first and "--> src/lib.rs:" in first.group() and "^" in first.group()
    assert "twl_undefined_b" not in message and "(and 1 more error)" in message
    crate = Path(re.search(r"--manifest-path (\S+)", message).group(1))
    assert crate.is_file() and "twl_undefined_a" in (crate.parent / "src" / "lib.rs").read_text()
    assert not isinstance(info.value, CacheError)


ENOSPC_STDERR = """\
warning: unused variable: `x`
 --> src/lib.rs:1:5

error: failed to write /cache/target/release/deps/libtwl.rlib

Caused by:
  No space left on device (os error 28)
"""

LINKER_STDERR = """\
error: linker `cc` not found
  |
  = note: No such file or directory (os error 2)

error: could not compile `twl_puzzle_0123456789ab` (lib) due to 1 previous error
"""


def test_toolchain_and_disk_failures_are_not_called_bugs(tmp_path):
    crate = tmp_path / "src" / "KEY"
    full = build_mod.cargo_failure(ENOSPC_STDERR, crate, "twl_puzzle_0123456789ab", tmp_path)
    assert isinstance(full, CacheError) and "is full" in str(full).splitlines()[0]
    assert "Caused by:\n  No space left on device" in str(full) and "unused variable" not in str(full)
    linker = build_mod.cargo_failure(LINKER_STDERR, crate, "twl_puzzle_0123456789ab", tmp_path)
    assert "linker" in str(linker).splitlines()[0] and "error: linker `cc` not found" in str(linker)
    for error in (full, linker):
        assert "bug" not in str(error)


# ---------------------------------------------------------------- documented API surfaces


def test_documented_submodules_work_after_a_bare_import(cache):
    docs = [*sorted((ROOT / "docs").glob("*.md")), ROOT / "README.md"]
    used = sorted({m.groups() for doc in docs
                   for m in re.finditer(r"\btwisterl\.(_?[a-z]\w*)\.([A-Za-z_]\w*)", doc.read_text())})
    assert ("gym", "register") in used
    script = ("import sys, twisterl\n"
              "assert 'gymnasium' not in sys.modules and 'twisterl.envs.compiler' not in sys.modules\n"
              f"for sub, name in {used!r}:\n"
              "    getattr(getattr(twisterl, sub), name)\n"
              "print(twisterl.gym.register(sys.argv[1]))\n")
    result = _python(cache, script, TICTACTOE)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "twisterl/TicTacToe-v0"
