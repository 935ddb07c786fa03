"""The generated Rust passes `cargo clippy -D warnings`, with only the lints the template
allows and says why (codegen/templates/env.rs.j2): every example, and programs from the
grammar-based generator (twl_programs.py). TWL_CLIPPY_N changes how many generated
programs are linted (default 6)."""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
from pathlib import Path

import pytest
from twl_programs import generate

from twisterl.codegen.emit import write_crate
from twisterl.dsl import check_file, check_source

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = sorted(p.stem for p in (ROOT / "examples").glob("*.twl"))
GENERATED = int(os.environ.get("TWL_CLIPPY_N", "6"))


def _clippy_available() -> bool:
    cargo = shutil.which("cargo")
    return cargo is not None and subprocess.run([cargo, "clippy", "--version"], capture_output=True).returncode == 0


pytestmark = pytest.mark.skipif(not _clippy_available(), reason="cargo clippy is not installed "
                                "(`rustup component add clippy`; .ci/run installs it)")


# Lints that fire on what a `.twl` program itself says, and would fire the same on
# hand-written Rust of that program: the generator writes `if c then x else x`, `x = x`,
# stores never read and `0 * k` on purpose. The examples get none of these either.
USERS_OWN = """if_same_then_else needless_bool almost_swapped nonminimal_bool eq_op overly_complex_bool_expr
    ifs_same_cond unnecessary_min_or_max bool_comparison just_underscores_and_digits identity_op modulo_one
    erasing_op const_is_empty needless_ifs self_assignment absurd_extreme_comparisons int_plus_one
    double_comparisons neg_multiply precedence""".split()


def _lints(env, crate_dir: Path, target: Path, allow: tuple[str, ...] = ()) -> list[str]:
    """Each clippy or rustc diagnostic on the generated `lib.rs`, as `line: [code] message`."""
    write_crate(env, crate_dir, ROOT / "runtime" / "core")
    allowed = [arg for lint in allow for arg in ("-A", lint)]
    proc = subprocess.run(["cargo", "clippy", "--release", "--lib", "--message-format=json", "--manifest-path",
                           str(crate_dir / "Cargo.toml"), "--", "-D", "warnings", *allowed],
                          capture_output=True, text=True, timeout=600, env={**os.environ, "CARGO_TARGET_DIR": str(target)})
    found = []
    for line in proc.stdout.splitlines():
        msg = json.loads(line)
        if msg.get("reason") != "compiler-message":
            continue
        m = msg["message"]
        spans = [s for s in m["spans"] if s["is_primary"] and s["file_name"].endswith("lib.rs")]
        if spans:
            code = (m.get("code") or {}).get("code", "")
            found.append(f"{spans[0]['line_start']}: [{code}] {m['message']}")
    assert found or proc.returncode == 0, proc.stderr[-3000:]
    return found


@pytest.fixture(scope="module")
def target(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("clippy-target")


def test_every_example_is_clippy_clean(tmp_path, target):
    dirty = {}
    for name in EXAMPLES:
        env = check_file(ROOT / "examples" / f"{name}.twl").env
        lints = _lints(env, tmp_path / name, target)
        if lints:
            dirty[name] = lints[:5]
    assert not dirty, "\n".join(f"{name}: {lints}" for name, lints in dirty.items())


def test_generated_programs_are_clippy_clean(tmp_path, target):
    rng = random.Random(2026)
    linted, dirty = 0, []
    while linted < GENERATED:
        text = generate(rng, rich=linted % 2 == 1)
        result = check_source(text, "generated.twl")
        if not result.ok:
            continue
        lints = _lints(result.env, tmp_path / f"p{linted}", target,
                       tuple(f"clippy::{x}" for x in USERS_OWN) + ("unused_assignments", "unused_variables"))
        if lints:
            dirty.append(f"{lints[:5]}\n{text}")
        linted += 1
    assert not dirty, "\n\n".join(dirty[:2])
