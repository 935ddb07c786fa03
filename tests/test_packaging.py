"""The wheel carries every source file the generated crates build against: each file of
the runtime crates' sources (any depth) and of the language's grammar and templates
matches a `package-data` pattern of pyproject.toml. (An install from a wheel compiles
envs against these copies; a file left out breaks every compile, not one test.)"""

from __future__ import annotations

import glob
import subprocess
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# The files each shipped folder must carry: (package, folder, the suffixes the build reads).
NEEDED = [
    ("twisterl._runtime_core", "runtime/core", (".rs", "Cargo.toml")),
    ("twisterl._runtime_wasm", "runtime/wasm", (".rs", "Cargo.toml")),
    ("twisterl.dsl", "dsl", (".lark",)),
    ("twisterl.codegen", "codegen", (".j2",)),
]


def _tracked(folder: str) -> set[str]:
    """The folder's files under version control (every file, outside a git checkout)."""
    try:
        out = subprocess.run(["git", "ls-files", folder], cwd=ROOT, capture_output=True, text=True, check=True).stdout
        return {line for line in out.splitlines() if line}
    except (OSError, subprocess.CalledProcessError):
        return {str(p.relative_to(ROOT)) for p in (ROOT / folder).rglob("*") if p.is_file() and "target" not in p.parts}


def test_every_runtime_and_language_source_is_package_data():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    data, dirs = config["package-data"], config["package-dir"]
    for package, folder, suffixes in NEEDED:
        assert dirs[package] == folder
        shipped = {str(Path(folder) / Path(p).relative_to(ROOT / folder))
                   for pattern in data[package] for p in glob.glob(str(ROOT / folder / pattern), recursive=True)}
        needed = {f for f in _tracked(folder) if f.endswith(suffixes) and "/tests/" not in f and
                  "/examples/" not in f and "/benches/" not in f}
        missing = sorted(needed - shipped)
        assert not missing, f"pyproject.toml's package-data for {package} leaves out {missing}"
