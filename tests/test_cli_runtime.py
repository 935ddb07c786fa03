"""`twisterl compile`, `run` and `play` as a user runs them: subprocesses."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def twisterl(cache: Path, *args: str, stdin: str = "", timeout: float = 300) -> subprocess.CompletedProcess:
    env = dict(os.environ, TWISTERL_CACHE_DIR=str(cache))
    return subprocess.run([sys.executable, "-m", "twisterl", *args], capture_output=True, text=True,
                          input=stdin, timeout=timeout, cwd=ROOT, env=env)


def test_compile_emits_formatted_rust(build_cache, tmp_path):
    proc = twisterl(build_cache, "compile", "examples/connect4.twl", "--emit-rust", str(tmp_path / "c4"))
    assert proc.returncode == 0, proc.stderr
    assert "env ConnectFour" in proc.stdout
    text = (tmp_path / "c4" / "src" / "lib.rs").read_text()
    assert "// line" in text and "impl Env for ConnectFour" in text
    again = twisterl(build_cache, "compile", "examples/connect4.twl")
    assert "from the cache" in again.stdout


def test_compile_reports_check_errors(build_cache, tmp_path):
    bad = tmp_path / "bad.twl"
    bad.write_text("env B\nstate x: int in 0..3\naction a { x = q }\nobserve onehot(x)\n")
    proc = twisterl(build_cache, "compile", str(bad))
    assert proc.returncode == 1
    assert f"{bad}:3:16: error: I cannot find a name `q`" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_run_prints_stats(build_cache):
    proc = twisterl(build_cache, "run", "examples/gridworld.twl", "--episodes", "50", "--param", "width=6",
                    "--difficulty", "3")
    assert proc.returncode == 0, proc.stderr
    assert "env GridWorld:" in proc.stdout and "steps/s" in proc.stdout and "success rate" in proc.stdout


def test_run_rejects_bad_params(build_cache):
    proc = twisterl(build_cache, "run", "examples/puzzle.twl", "--param", "sise=3")
    assert proc.returncode == 2
    assert "no param `sise`; did you mean `size`?" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_play_in_the_terminal(build_cache):
    moves = "\n".join(["3", "3", "4", "4", "5", "5", "6", "q"]) + "\n"
    proc = twisterl(build_cache, "play", "examples/connect4.twl", "--seed", "0", stdin=moves)
    assert proc.returncode == 0, proc.stderr
    assert "legal: 0:drop(0)" in proc.stdout
    assert "episode over: return +1.000, -1.000" in proc.stdout


def test_play_handles_nonsense_and_eof(build_cache):
    proc = twisterl(build_cache, "play", "examples/puzzle.twl", "--difficulty", "3", stdin="banana\n99\n")
    assert proc.returncode == 0, proc.stderr
    assert "`banana` is not an action" in proc.stdout
    assert "outside the action space" in proc.stdout
