"""Generated env crates and the runtime core build for wasm32-unknown-unknown.

The toolchain comes from `runtime/wasm/setup-toolchain.sh` (rustup's target, or the
offline route through Debian's rustc-web); `.ci/run` runs it and passes its name in
TWISTERL_WASM_TOOLCHAIN. Elsewhere the test looks for a toolchain with a wasm32 std and
skips when there is none, unless TWISTERL_REQUIRE_WASM=1.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from twisterl.build import core_source_dir
from twisterl.codegen import write_crate
from twisterl.dsl import check_file

ROOT = Path(__file__).resolve().parents[1]
TARGET = "wasm32-unknown-unknown"
EXAMPLES = sorted(p.stem for p in ROOT.joinpath("examples").glob("*.twl"))


def has_wasm_std(toolchain: str) -> bool:
    proc = subprocess.run(["rustup", "run", toolchain, "rustc", "--print", "target-libdir", "--target", TARGET],
                          capture_output=True, text=True)
    return proc.returncode == 0 and any(Path(proc.stdout.strip()).glob("libstd-*.rlib"))


@pytest.fixture(scope="module")
def toolchain() -> str:
    named = os.environ.get("TWISTERL_WASM_TOOLCHAIN")
    candidates = [named] if named else ["stable", "web"]
    if shutil.which("rustup"):
        for tc in candidates:
            if has_wasm_std(tc):
                return tc
    if os.environ.get("TWISTERL_REQUIRE_WASM"):
        pytest.fail("no Rust toolchain with a wasm32 std; run runtime/wasm/setup-toolchain.sh")
    pytest.skip("no Rust toolchain with a wasm32 std (runtime/wasm/setup-toolchain.sh makes one)")


@pytest.mark.parametrize("name", EXAMPLES)
def test_generated_crate_builds_for_wasm32(toolchain, tmp_path_factory, name):
    env = check_file(ROOT / "examples" / f"{name}.twl").env
    crate = write_crate(env, tmp_path_factory.mktemp(name), core_source_dir())
    target = tmp_path_factory.getbasetemp() / "wasm-target"
    proc = subprocess.run(["cargo", f"+{toolchain}", "build", "--release", "--quiet", "--target", TARGET,
                           "--manifest-path", str(crate / "Cargo.toml"), "--target-dir", str(target)],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    [wasm] = (target / TARGET / "release").glob(f"twl_{env.name.lower()}.wasm")
    data = wasm.read_bytes()
    assert data[:4] == b"\0asm"
    assert b"twisterl_plugin_v1" in data
