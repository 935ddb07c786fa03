"""The runtime core's own Rust unit tests (checked ops, RNG, faults), run through cargo."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.skipif(shutil.which("cargo") is None, reason="cargo is not installed")
def test_core_unit_tests_pass():
    proc = subprocess.run(["cargo", "test", "--quiet", "-p", "twisterl-core"], cwd=ROOT, capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "test result: ok" in proc.stdout
