"""The generated Rust of three examples, as reviewed snapshots: a change to code
generation shows up in review as a diff of `tests/snapshots/rust/*.rs`. After an intended
change, refresh them with `TWISTERL_UPDATE_SNAPSHOTS=1 pytest tests/test_codegen_snapshots.py`
and read the diff."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from twisterl.codegen.emit import emit_rust
from twisterl.dsl import check_file

ROOT = Path(__file__).resolve().parents[1]
SNAPSHOTS = ROOT / "tests" / "snapshots" / "rust"


@pytest.mark.parametrize("name", ["puzzle", "connect4", "cartpole"])
def test_generated_rust_matches_its_snapshot(name):
    result = check_file(ROOT / "examples" / f"{name}.twl")
    assert result.ok
    rust = emit_rust(result.env)
    snap = SNAPSHOTS / f"{name}.rs"
    if os.environ.get("TWISTERL_UPDATE_SNAPSHOTS"):
        snap.parent.mkdir(parents=True, exist_ok=True)
        snap.write_text(rust)
    assert snap.exists(), f"no Rust snapshot for {name}; create it with TWISTERL_UPDATE_SNAPSHOTS=1"
    assert rust == snap.read_text(), f"the Rust generated for {name} changed; review it, then refresh the snapshot"
