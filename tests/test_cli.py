"""`twisterl check` as a user runs it: a subprocess, exit codes, output format, and no
traceback on any input."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = sorted(ROOT.joinpath("examples").glob("*.twl"))


def twisterl(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "twisterl", *args], capture_output=True, text=True,
                          timeout=timeout, cwd=ROOT)


def assert_no_traceback(proc: subprocess.CompletedProcess) -> None:
    assert "Traceback" not in proc.stderr and "Traceback" not in proc.stdout
    assert "internal error" not in proc.stderr


def test_examples_check_clean():
    proc = twisterl("check", *map(str, EXAMPLES))
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.count(": ok") == len(EXAMPLES)
    assert "error" not in proc.stderr


def test_error_format_is_path_line_col(tmp_path: Path):
    f = tmp_path / "bad.twl"
    f.write_text("env T\nstate blank: int in 0..9\naction left when blnk > 0 { blank -= 1 }\n"
                 "observe onehot(blank)\n")
    proc = twisterl("check", "--color", "never", str(f))
    assert proc.returncode == 1
    lines = proc.stderr.splitlines()
    assert lines[0] == f"{f}:3:18: error: I cannot find a name `blnk`"
    assert lines[2] == "3 | action left when blnk > 0 { blank -= 1 }"
    assert lines[3] == "  |                  ^^^^ not defined"
    assert "hint: did you mean `blank`?" in proc.stderr
    assert_no_traceback(proc)


def test_several_errors_in_one_run(tmp_path: Path):
    f = tmp_path / "many.twl"
    f.write_text("env T\nstate x: int in 0..3\naction a { x = y }\naction b { x = z }\n"
                 "action c { x = true }\nobserve onehot(x)\n")
    proc = twisterl("check", str(f))
    assert proc.returncode == 1
    assert "3 errors" in proc.stderr
    for where in (":3:16:", ":4:16:", ":5:16:"):
        assert where in proc.stderr


def test_several_syntax_errors_in_one_run(tmp_path: Path):
    f = tmp_path / "syntax.twl"
    f.write_text("env T\nstate x: int in 0..3\naction a { x = = 1 }\naction b { x = ) }\n"
                 "observe onehot(x)\n")
    proc = twisterl("check", str(f))
    assert proc.returncode == 1
    assert ":3:16: error" in proc.stderr and ":4:16: error" in proc.stderr


def test_json_format(tmp_path: Path):
    f = tmp_path / "bad.twl"
    f.write_text("env T\nstate x: int in 0..3\naction a { x = 7 }\nobserve onehot(x)\n")
    proc = twisterl("check", "--format", "json", str(f))
    assert proc.returncode == 1
    [entry] = json.loads(proc.stdout)
    assert entry["ok"] is False
    [diag] = entry["diagnostics"]
    assert (diag["line"], diag["col"], diag["severity"]) == (3, 16, "error")
    assert "outside the declared range" in diag["message"]


def test_dump_ir(tmp_path: Path):
    proc = twisterl("check", "--dump-ir", str(ROOT / "examples" / "puzzle.twl"))
    assert proc.returncode == 0
    data = json.loads(proc.stdout)
    assert data["node"] == "Env" and data["name"] == "SlidingPuzzle"
    assert [a["name"] for a in data["actions"]] == ["left", "up", "right", "down"]


def test_warnings_do_not_fail(tmp_path: Path):
    f = tmp_path / "warn.twl"
    f.write_text("env T\nstate x: int in 0..3\nstate unused: bool\naction a when 1 > 2 { x = 1 }\n"
                 "action b { unused = true }\nobserve onehot(x)\n")
    proc = twisterl("check", str(f))
    assert proc.returncode == 0, proc.stderr
    assert "warning: the state `unused` is never read" in proc.stderr
    assert "warning: the action `a` can never be taken" in proc.stderr


def test_missing_file():
    proc = twisterl("check", "no/such/file.twl")
    assert proc.returncode == 1
    assert "no/such/file.twl:1:1: error: I cannot read this file" in proc.stderr
    assert_no_traceback(proc)


def test_no_arguments_is_a_usage_error():
    proc = twisterl("check")
    assert proc.returncode == 2
    assert "usage:" in proc.stderr
    assert_no_traceback(proc)


@pytest.mark.parametrize("name, content, message", [
    ("empty.twl", b"", "this file is empty"),
    ("spaces.twl", b"   \n\n  # only a comment\n", "this file is empty"),
    ("latin1.twl", "env T\nstate caf\xe9: bool\n".encode("latin-1"), "not valid UTF-8"),
    ("binary.twl", bytes(range(256)) * 4, "not valid UTF-8"),
    ("nul.twl", b"env T\x00\n", "NUL byte"),
    ("elf.twl", b"\x7fELF\x02\x01\x01" + b"\x00" * 64, "NUL byte"),
])
def test_pathological_bytes(tmp_path: Path, name: str, content: bytes, message: str):
    f = tmp_path / name
    f.write_bytes(content)
    proc = twisterl("check", str(f))
    assert proc.returncode == 1
    assert message in proc.stderr
    assert_no_traceback(proc)


def test_huge_file_is_refused_quickly(tmp_path: Path):
    f = tmp_path / "huge.twl"
    f.write_text("env T\n" + "# padding\n" * 400_000)
    proc = twisterl("check", str(f), timeout=30)
    assert proc.returncode == 1
    assert "limited to 2,000,000 bytes" in proc.stderr


@pytest.mark.parametrize("expr", [
    "-" * 10_000 + "1",
    "(" * 10_000 + "1" + ")" * 10_000,
    "[" * 10_000 + "1" + "]" * 10_000,
    "not " * 10_000 + "true",
    "0" + " + 1" * 10_000,
    "if true then " * 5_000 + "1" + " else 2" * 5_000,
])
def test_deep_nesting_is_clean(tmp_path: Path, expr: str):
    f = tmp_path / "deep.twl"
    f.write_text(f"env T\nstate x: int in 0..3\naction a {{ x = {expr} }}\nobserve onehot(x)\n")
    proc = twisterl("check", str(f), timeout=60)
    assert proc.returncode in (0, 1)
    assert_no_traceback(proc)


def test_absurd_array_is_refused_without_allocating(tmp_path: Path):
    f = tmp_path / "absurd.twl"
    f.write_text("env T\nparam n: int = 1000000\nstate g: [[float; n]; n]\n"
                 "action a { g[0][0] = 1.0 }\nobserve g\n")
    proc = twisterl("check", str(f), timeout=30)
    assert proc.returncode == 1
    assert "beyond the limit of 100,000,000" in proc.stderr


def test_without_torch_check_and_train_work_and_learner_torch_says_what_to_install(tmp_path):
    # `sys.modules["torch"] = None` makes `import torch` fail, as on a base install.
    script = ("import sys; sys.modules['torch'] = None; from twisterl.cli import main; "
              "sys.exit(main(sys.argv[1:]))")
    check = subprocess.run([sys.executable, "-c", script, "check", "examples/puzzle.twl"], cwd=ROOT,
                           capture_output=True, text=True, timeout=60)
    assert check.returncode == 0, check.stderr
    train = subprocess.run([sys.executable, "-c", script, "train", "examples/puzzle.twl", "--iterations", "1",
                            "--out", str(tmp_path / "run")], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert train.returncode == 0, train.stderr
    assert "updates in rust" in train.stdout
    train = subprocess.run([sys.executable, "-c", script, "train", "examples/puzzle.twl", "--learner", "torch",
                            "--out", str(tmp_path / "run2")], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert train.returncode != 0
    assert "pip install 'twisterl[train]'" in train.stderr and "Traceback" not in train.stderr
