"""`twisterl tune`: an Optuna search over PPO hyperparameters (twisterl/train/tune.py)."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("torch")
optuna = pytest.importorskip("optuna")

from twisterl import cli  # noqa: E402
from twisterl.train import tune  # noqa: E402
from twl_games import THREE_PLAYERS  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
GRIDWORLD = str(ROOT / "examples" / "gridworld.twl")



def _cli(*args: str, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "twisterl", *args], capture_output=True, text=True, cwd=cwd,
                          env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=120)


def test_tune_gridworld_end_to_end(build_cache, tmp_path):
    base = tmp_path / "base.json"
    base.write_text(json.dumps({"gamma": 0.99, "embedding_size": 64, "common_layers": [64]}))
    out = tmp_path / "tune"
    r = _cli("tune", GRIDWORLD, "--trials", "4", "--time-limit", "12", "--jobs", "2", "--out", str(out),
             "--config", str(base))
    assert r.returncode == 0, r.stderr
    assert "best: trial" in r.stdout and "config:" in r.stdout
    with open(out / "trials.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 4
    assert [int(row["number"]) for row in rows] == [0, 1, 2, 3]
    assert {row["state"] for row in rows} <= {"COMPLETE", "PRUNED", "FAIL"}
    assert any(row["state"] == "COMPLETE" for row in rows)
    # The fixed keys are not searched: the same value in every row.
    assert {row["gamma"] for row in rows} == {"0.99"}
    assert {row["embedding_size"] for row in rows} == {"64"}
    assert {row["common_layer"] for row in rows} == {"[64]"}
    assert len({row["learning_rate"] for row in rows}) == 4  # searched: drawn anew each trial
    best = json.loads((out / "best_config.json").read_text())
    assert best["gamma"] == 0.99 and best["embedding_size"] == 64 and best["common_layers"] == [64]
    assert "num_threads" not in best and "torch_threads" not in best and "seed" not in best
    assert set(best) >= {"learning_rate", "ent_coef", "num_envs", "num_steps"}
    # best_config.json is a config `twisterl train` takes as it is.
    r = _cli("train", GRIDWORLD, "--config", str(out / "best_config.json"), "--iterations", "1",
             "--out", str(tmp_path / "run"))
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "run" / "last.safetensors").exists()


def test_tune_self_play(build_cache, tmp_path, capsys):
    """Two-player games tune by self-play PPO, scored against random play."""
    base = tmp_path / "base.json"
    base.write_text(json.dumps({"num_envs": 64, "num_steps": 32, "embedding_size": 64, "common_layers": [64],
                                "pure_simulations": 0, "arena_games": 20}))
    code = cli.main(["tune", str(ROOT / "examples" / "tictactoe.twl"), "--trials", "1", "--time-limit", "1.5",
                     "--jobs", "1", "--out", str(tmp_path / "t"), "--config", str(base)])
    out = capsys.readouterr()
    assert code == 0, out.err
    assert "against random play" in out.out
    assert (tmp_path / "t" / "best_config.json").exists()


@pytest.mark.parametrize("args, message", [
    (["--trials", "0", "--time-limit", "5"], "--trials must be at least 1"),
    (["--trials", "2", "--time-limit", "-1"], "--time-limit must be a positive"),
    (["--trials", "2", "--time-limit", "5", "--jobs", "0"], "--jobs must be at least 1"),
])
def test_bad_arguments(args, message, capsys, tmp_path):
    assert cli.main(["tune", GRIDWORLD, *args, "--out", str(tmp_path / "t")]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "t").exists()


def test_bad_files(build_cache, tmp_path, capsys):
    bad = tmp_path / "bad.twl"
    bad.write_text("env Bad\nstate x: int in 0..3\n")
    assert cli.main(["tune", str(bad), "--trials", "1", "--time-limit", "1", "--out", str(tmp_path / "t")]) == 2
    assert "error" in capsys.readouterr().err
    three = tmp_path / "three.twl"
    three.write_text(THREE_PLAYERS)
    assert cli.main(["tune", str(three), "--trials", "1", "--time-limit", "1", "--out", str(tmp_path / "t")]) == 2
    assert "3 players" in capsys.readouterr().err
    cfg = tmp_path / "cfg.json"
    cfg.write_text(json.dumps({"num_minibatch": 4}))
    assert cli.main(["tune", GRIDWORLD, "--trials", "1", "--time-limit", "1", "--config", str(cfg),
                     "--out", str(tmp_path / "t")]) == 1
    assert "did you mean `num_minibatches`" in capsys.readouterr().err
    assert cli.main(["tune", str(tmp_path / "missing.twl"), "--trials", "1", "--time-limit", "1"]) in (1, 2)
    assert "error" in capsys.readouterr().err
    assert not (tmp_path / "t").exists()


def test_without_optuna(monkeypatch, capsys, tmp_path):
    monkeypatch.setitem(sys.modules, "optuna", None)  # `import optuna` raises ImportError
    monkeypatch.delitem(sys.modules, "twisterl.train.tune")
    monkeypatch.delattr(sys.modules["twisterl.train"], "tune")
    assert cli.main(["tune", GRIDWORLD, "--trials", "1", "--time-limit", "1", "--out", str(tmp_path / "t")]) == 1
    assert "pip install 'twisterl[tune]'" in capsys.readouterr().err
    assert not (tmp_path / "t").exists()


def test_pruning_through_report():
    """The median pruner (2 startup trials) stops a trial that reports below the median."""
    study = tune.make_study(seed=0)
    values = {0: 2.0, 1: 3.0, 2: 0.5, 3: 5.0}
    steps_run = {}

    def objective(trial):
        for step in range(5):
            steps_run[trial.number] = step + 1
            if tune.report(trial, values[trial.number], step):
                raise optuna.TrialPruned()
        return values[trial.number]

    study.optimize(objective, n_trials=4)
    states = [t.state.name for t in study.trials]
    assert states == ["COMPLETE", "COMPLETE", "PRUNED", "COMPLETE"]
    assert steps_run[2] == 1  # stopped at its first report
    assert not tune.report(study.ask(), None, 0)  # nothing reported: nothing to prune on


def test_score_rule_and_split():
    from types import SimpleNamespace as S
    nan = float("nan")
    hist = [S(difficulty=3, success_rate=0.5, mean_return=1.0, episodes=10, arena={}),
            S(difficulty=4, success_rate=nan, mean_return=nan, episodes=0, arena={})]
    assert tune.score(hist, False, True) == 3.5  # the last iteration with a finished episode
    assert tune.score(hist, False, False) == 1.0
    assert tune.score(hist[1:], False, True) is None
    games = [S(arena={"vs_random": 0.75}), S(arena={"vs_random": nan})]
    assert tune.score(games, True, False) == 0.75
    assert tune.trial_seconds(60, 10, 2) == 12
    assert tune.trial_seconds(10, 1, 2) == 10  # no more jobs than trials
    assert "gamma" not in tune.searched_names({"gamma": 0.9})
    assert "common_layer" not in tune.searched_names({"common_layers": [32, 32]})
    assert tune.to_config({"common_layer": 128, "gamma": 0.9}) == {"common_layers": [128], "gamma": 0.9}
