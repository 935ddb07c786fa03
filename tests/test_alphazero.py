"""AlphaZero: a small tic-tac-toe run that clearly improves against perfect play, the
puzzle with the curriculum and `solve`, and the CLI (train, resume, eval, play)."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import twisterl  # noqa: E402
from twisterl.train.alphazero import AlphaZero, Config  # noqa: E402
from twisterl.train.nets import to_rust  # noqa: E402

ROOT = os.path.join(os.path.dirname(__file__), "..")
from minimax import play_vs_minimax  # noqa: E402  (tests/minimax.py: perfect tic-tac-toe)

SMALL = {"num_games": 32, "num_simulations": 25, "train_steps": 60, "arena_games": 8, "pure_simulations": 0,
         "embedding_size": 64, "common_layers": [64], "replay_size": 5000}


def test_tictactoe_training_clearly_improves_against_perfect_play():
    ttt = twisterl.compile(os.path.join(ROOT, "examples/tictactoe.twl"))
    az = AlphaZero(ttt, Config(**{**SMALL, "num_games": 64, "num_simulations": 32, "train_steps": 100}, seed=0))

    def losses() -> int:
        # The raw policy (one simulation: the most likely legal move) against minimax.
        p = to_rust(az.policy)
        return play_vs_minimax(ttt, lambda env: twisterl.mcts(env, p, simulations=1).action, 25, seed=1)["losses"]

    before = losses()
    history = az.train(iterations=16)
    after = losses()
    assert before >= 30 and after <= before // 4, (before, after)
    assert history[-1].buffer_rows > 0 and np.isfinite(history[-1].policy_loss)
    assert history[-1].vs_random > 0.8


def test_puzzle_alphazero_with_the_curriculum_and_solve():
    puzzle = twisterl.compile(os.path.join(ROOT, "examples/puzzle.twl"))
    az = AlphaZero(puzzle, Config(**{**SMALL, "num_games": 16, "arena_games": 10}, difficulty=1, seed=0))
    az.train(iterations=4)
    assert az.difficulty >= 3, "the curriculum moves on when search solves the scrambles"
    env = puzzle(difficulty=6)
    env.reset(seed=3)
    solved, actions = twisterl.solve(env, az.policy, num_mcts_searches=50, tries=3, max_steps=100)
    assert solved and len(actions) > 0
    for a in actions:  # the plan really solves this scramble
        _, _, term, _, info = env.step(a)
    assert term and info["success"]
    # Pure MCTS (no network) solves an easy one too.
    env.reset(seed=4)
    env2 = puzzle(difficulty=2)
    env2.reset(seed=4)
    assert twisterl.solve(env2, None, num_mcts_searches=200, tries=2, max_steps=20)[0]


def cli(*args, stdin=None, cwd=None):
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.run([sys.executable, "-m", "twisterl", *args], input=stdin, capture_output=True, text=True,
                          timeout=300, env=env, cwd=cwd)


def run_main(monkeypatch, capsys, *args, stdin=""):
    """The CLI in this process (no torch import per call): (exit code, stdout, stderr)."""
    import io
    from twisterl.cli import main
    monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_train_resume_eval_and_play(tmp_path, monkeypatch, capsys):
    cfg = tmp_path / "az.json"
    cfg.write_text(json.dumps({**SMALL, "num_games": 8, "train_steps": 5, "arena_games": 4,
                               "pure_simulations": 20}))
    run = tmp_path / "run"
    ttt = os.path.join(ROOT, "examples/tictactoe.twl")
    r = cli("train", ttt, "--algo", "az", "--config", str(cfg), "--out", str(run), "--iterations", "2")
    assert r.returncode == 0, r.stderr
    assert "AlphaZero" in r.stdout
    for name in ("config.json", "env.twl", "metrics.csv", "last.safetensors", "best.safetensors", "progress.png"):
        assert (run / name).exists(), name
    assert json.loads((run / "config.json").read_text())["algo"] == "az"
    code, out, err = run_main(monkeypatch, capsys, "train", "--resume", str(run), "--iterations", "1")
    assert code == 0, err
    assert "resuming" in out
    assert len((run / "metrics.csv").read_text().strip().splitlines()) == 1 + 3
    code, out, err = run_main(monkeypatch, capsys, "eval", str(run), "--episodes", "4")
    assert code == 0, err
    assert "vs random play" in out and "vs pure MCTS" in out
    # A human (scripted) moving second against the agent.
    code, out, err = run_main(monkeypatch, capsys, "play", ttt, "--policy", str(run), "--as", "second",
                              "--simulations", "10", stdin="0\n1\n2\n3\n4\n5\n6\n7\n8\nq\n")
    assert code == 0, err
    assert "agent plays" in out and "you are player 2" in out and "your move" in out
    # A run for another env is refused clearly.
    code, out, err = run_main(monkeypatch, capsys, "play", os.path.join(ROOT, "examples/connect4.twl"),
                              "--policy", str(run))
    assert code != 0 and "trained on TicTacToe" in err
    code, out, err = run_main(monkeypatch, capsys, "play", os.path.join(ROOT, "examples/puzzle.twl"), "--as", "first")
    assert code == 2 and "--as is for two-player envs" in err
    # Without a run, the opponent is pure MCTS.
    code, out, err = run_main(monkeypatch, capsys, "play", ttt, "--as", "first", "--simulations", "50",
                              stdin="4\n0\n1\n2\n3\n5\n6\n7\n8\nq\n")
    assert code == 0 and "agent plays" in out, err
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"num_simulation": 3}))
    code, out, err = run_main(monkeypatch, capsys, "train", ttt, "--algo", "az", "--config", str(bad),
                              "--out", str(tmp_path / "x"))
    assert code == 1 and "num_simulations" in err
