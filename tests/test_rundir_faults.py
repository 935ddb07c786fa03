"""Faults around run dirs and the training loop, one class per test: a checkpoint for
another env, bad config files and config.json, bad checkpoint metadata, files that are no
checkpoint, flipped bytes, the time limit, and iterations in which no episode finished.
Every refusal is a clean error (exit 1) that names the file and the field."""

from __future__ import annotations

import io
import json
import math
import re
import shutil
import time
from dataclasses import fields
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from safetensors.torch import load_file, save_file  # noqa: E402

from twisterl.train.config import ConfigError  # noqa: E402
from twisterl.train.rundir import CheckpointError, read_header, tensor_digest  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
PUZZLE = ROOT / "examples" / "puzzle.twl"
GRID = ROOT / "examples" / "gridworld.twl"
TTT = ROOT / "examples" / "tictactoe.twl"
TINY = {"num_envs": 16, "num_steps": 8, "num_threads": 1, "embedding_size": 16, "common_layers": [16],
        "update_epochs": 1, "num_minibatches": 2, "difficulty": 2}
DROP = object()


def cli(capsys, *args, stdin: str = "") -> tuple[int, str, str]:
    """The CLI in this process: (exit code, stdout, stderr)."""
    import sys

    from twisterl.cli import main
    old = sys.stdin
    sys.stdin = io.StringIO(stdin)
    try:
        code = main([str(a) for a in args])
    finally:
        sys.stdin = old
    out, err = capsys.readouterr()
    return code, out, err


def refused(result: tuple[int, str, str], *words: str) -> str:
    """Assert a clean refusal (exit 1, no internal error) whose message has every word."""
    code, out, err = result
    assert code == 1, (code, out, err)
    for bad in ("internal error", "Traceback", "a bug in twisterl"):
        assert bad not in err, err
    for word in words:
        assert word in err, (word, err)
    return err


def rewrite(path: Path, **changes) -> None:
    """Change a checkpoint's metadata (DROP removes a field) and give it a valid checksum,
    as a checkpoint written with bad values would be."""
    tensors = load_file(str(path))
    meta = {k: v for k, v in read_header(path)["__metadata__"].items() if k != "sha256"}
    for key, value in changes.items():
        if value is DROP:
            meta.pop(key, None)
        else:
            meta[key] = json.dumps(value)
    meta["sha256"] = tensor_digest(tensors, meta)
    save_file(tensors, str(path), metadata=meta)


@pytest.fixture(scope="module")
def trained(tmp_path_factory, build_cache) -> Path:
    """A two-iteration PPO run on the 8-puzzle with a tiny network."""
    from twisterl.train.driver import train
    out = tmp_path_factory.mktemp("runs") / "puzzle"
    cfg = out.parent / "tiny.json"
    cfg.write_text(json.dumps(TINY))
    assert train(str(PUZZLE), str(out), str(cfg), {}, None, 2, None, io.StringIO()).run.is_dir()
    return out


@pytest.fixture
def run(trained, tmp_path) -> Path:
    """A private copy of the trained run, to damage."""
    return Path(shutil.copytree(trained, tmp_path / "run", ignore=shutil.ignore_patterns("tensorboard")))


# ---------------------------------------------------------------- class 1: the env a checkpoint was made for


def test_eval_refuses_an_env_twl_for_another_env(run, capsys):
    assert cli(capsys, "eval", run, "--episodes", "4")[0] == 0
    shutil.copy(GRID, run / "env.twl")
    refused(cli(capsys, "eval", run, "--episodes", "4"), "best.safetensors", "trained on SlidingPuzzle",
            "not on GridWorld")
    shutil.copy(TTT, run / "env.twl")  # another game: refused before any array is built
    refused(cli(capsys, "eval", run), "trained on SlidingPuzzle", "not on TicTacToe")


def test_eval_and_resume_refuse_an_edited_env_twl(run, capsys):
    source = (run / "env.twl").read_text()
    (run / "env.twl").write_text(source.replace("param size: int in 2..9 = 3", "param size: int in 2..9 = 4"))
    err = refused(cli(capsys, "eval", run), "observation shape [81] in best.safetensors, [256]", "params")
    assert "source sha256" in err
    refused(cli(capsys, "train", "--resume", run, "--iterations", "1"), "config.json", "[256]")
    (run / "env.twl").write_text(source + "\n# edited after training\n")
    refused(cli(capsys, "eval", run), "source sha256")


def test_play_export_and_the_python_api_check_the_env(run, capsys, tmp_path):
    import twisterl
    from twisterl.wasm.export import ExportError, write_policy_file
    refused(cli(capsys, "play", GRID, "--policy", run), "trained on SlidingPuzzle", "not on GridWorld")
    refused(cli(capsys, "play", PUZZLE, "--policy", run, "--param", "size=4"), "params", "[256]")
    code, out, _ = cli(capsys, "play", PUZZLE, "--policy", run, "--seed", "1", stdin="\n\nq\n")
    assert code == 0 and "agent plays" in out
    with pytest.raises(CheckpointError, match="trained on SlidingPuzzle, not on GridWorld"):
        twisterl.mcts(twisterl.compile(GRID)(), str(run), simulations=4)
    big = twisterl.compile(PUZZLE)(size=4, difficulty=2)
    big.reset(seed=0)
    with pytest.raises(CheckpointError, match="params"):
        twisterl.solve(big, str(run), num_mcts_searches=4)
    with pytest.raises(ExportError, match="trained on SlidingPuzzle, not on GridWorld"):
        write_policy_file(str(run), "GridWorld", tmp_path / "policy.safetensors", str(GRID))
    info = write_policy_file(str(run), "SlidingPuzzle", tmp_path / "policy.safetensors", str(PUZZLE))
    assert info["env"] == "SlidingPuzzle"


# ---------------------------------------------------------------- class 2: configs, field by field


@pytest.mark.parametrize("damage, words", [
    (lambda cfg: [1, 2], ["config.json must hold a JSON object, not a list"]),
    (lambda cfg: None, ["config.json must hold a JSON object, not null"]),
    (lambda cfg: "runs", ["config.json must hold a JSON object, not a string"]),
    (lambda cfg: {k: v for k, v in cfg.items() if k != "config"}, ["config.json", "`config` is missing"]),
    (lambda cfg: {**cfg, "policy": "junk"}, ["config.json", "`policy`"]),
    (lambda cfg: {**cfg, "policy": {**cfg["policy"], "embedding_size": -3}}, ["config.json", "embedding_size"]),
    (lambda cfg: {**cfg, "config": {**cfg["config"], "num_minibatches": 0}},
     ["config.json: config", "`num_minibatches` must be between 1"]),
    (lambda cfg: {**cfg, "config": {**cfg["config"], "gamma": "high"}}, ["config.json: config", "`gamma`"]),
    (lambda cfg: {**cfg, "config": {**cfg["config"], "num_env": 3}}, ["config.json", "did you mean `num_envs`"]),
    (lambda cfg: {**cfg, "params": [3]}, ["config.json", "`params` must be an object"]),
    (lambda cfg: {**cfg, "algo": "dqn"}, ["config.json", "`algo`"]),
])
def test_a_bad_config_json_is_refused_naming_the_field(run, capsys, damage, words):
    path = run / "config.json"
    path.write_text(json.dumps(damage(json.loads(path.read_text()))))
    refused(cli(capsys, "eval", run, "--episodes", "4"), *words)
    refused(cli(capsys, "train", "--resume", run, "--iterations", "1"), *words)


def test_config_files_are_checked_field_by_field(tmp_path, capsys, build_cache):
    cases = {"list.json": ("[1]", "must hold an object of config keys"),
             "zero.json": ('{"num_minibatches": 0}', "`num_minibatches` must be between 1"),
             "typo.json": ('{"num_minibatch": 2}', "did you mean `num_minibatches`"),
             "bool.json": ('{"num_envs": true}', "`num_envs` must be an int"),
             "broken.json": ('{"num_envs": ', "is not valid JSON"),
             "metric.json": ('{"diff_metric": "ppo_1"}', "`diff_metric`")}
    for name, (text, message) in cases.items():
        (tmp_path / name).write_text(text)
        refused(cli(capsys, "train", PUZZLE, "--config", tmp_path / name, "--out", tmp_path / "x"), name, message)
    refused(cli(capsys, "train", PUZZLE, "--config", tmp_path / "missing.json"), "missing.json", "cannot be read")
    (tmp_path / "az.json").write_text('{"num_simulations": 0}')
    refused(cli(capsys, "train", TTT, "--algo", "az", "--config", tmp_path / "az.json"), "az.json",
            "`num_simulations`")
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize("algo", ["ppo", "az"])
def test_every_config_field_has_a_type_and_range_check(algo):
    if algo == "ppo":
        from twisterl.train.ppo_config import CHECKS, Config, make_config
    else:
        from twisterl.train.az_config import CHECKS, Config, make_config
    names = {f.name for f in fields(Config)}
    assert set(CHECKS) == names
    make_config({}, "cfg.json")  # the defaults pass
    for name in sorted(names):
        wrong = 5 if isinstance(getattr(Config(), name), str) else "five"
        with pytest.raises(ConfigError, match=f"cfg.json: `{name}`"):
            make_config({name: wrong}, "cfg.json")


# ---------------------------------------------------------------- class 2: checkpoint metadata and foreign files


@pytest.mark.parametrize("changes, words", [
    ({"difficulty": DROP}, ["best.safetensors", "`difficulty` is missing"]),
    ({"difficulty": 10**30}, ["best.safetensors", "`difficulty` must be between 0 and"]),
    ({"difficulty": 40}, ["best.safetensors", "`difficulty` is 40, above the run's diff_max"]),
    ({"iteration": "7"}, ["best.safetensors", "`iteration` must be an int"]),
    ({"success_rate": 3.5}, ["best.safetensors", "`success_rate`"]),
    ({"env_id": [1]}, ["best.safetensors", "`env_id` must be an object"]),
])
def test_bad_checkpoint_metadata_is_refused_naming_the_field(run, capsys, changes, words):
    rewrite(run / "best.safetensors", **changes)
    refused(cli(capsys, "eval", run, "--episodes", "4"), *words)
    rewrite(run / "last.safetensors", **changes)
    refused(cli(capsys, "train", "--resume", run, "--iterations", "1"), *[w.replace("best", "last") for w in words])


def test_files_that_are_no_checkpoint_are_refused_before_reading_them(run, capsys):
    torch.save({"weight": torch.zeros(4)}, run / "best.safetensors")  # a zip: its first 8 bytes claim a huge header
    refused(cli(capsys, "train", "--resume", run, "--iterations", "1"), "best.safetensors",
            "not a readable checkpoint", "does not fit the file")
    refused(cli(capsys, "eval", run), "best.safetensors", "not a readable checkpoint")
    (run / "best.safetensors").write_bytes((run / "last.safetensors").read_bytes()[:100])  # truncated
    refused(cli(capsys, "eval", run), "best.safetensors", "not a readable checkpoint")


# ---------------------------------------------------------------- class 3: checksums


def test_flipped_bytes_in_the_tensors_are_detected(run, capsys):
    path = run / "best.safetensors"
    data = bytearray(path.read_bytes())
    for k in range(-40, 0, 8):  # inside the tensor data, at the end of the file
        data[k] ^= 0x10
    path.write_bytes(bytes(data))
    refused(cli(capsys, "eval", run, "--episodes", "4"), "best.safetensors is corrupt", "sha256")
    # A checkpoint from before checksums (no `sha256`) loads, unchecked.
    shutil.copy(run / "last.safetensors", path)
    tensors = load_file(str(path))
    meta = {k: v for k, v in read_header(path)["__metadata__"].items() if k != "sha256"}
    save_file(tensors, str(path), metadata=meta)
    assert cli(capsys, "eval", run, "--episodes", "4")[0] == 0


# ---------------------------------------------------------------- class 4: the time limit


# After the deadline a run still saves its checkpoints, draws progress.png and closes
# TensorBoard: well under a second, but a fair share of these tests' short limits.
MARGIN = 0.8


def _timed_train(tmp_path, env: Path, config: dict, limit: float, algo: str = "ppo") -> tuple[float, float, str]:
    """(wall seconds of the whole call, loading the compiled env and building the learner
    included, but not what the first training of a process pays once: imports of
    TensorBoard and matplotlib, torch's first optimizer; the training seconds it reports,
    from the start of the first iteration to the end; its output)."""
    import matplotlib.figure  # noqa: F401
    from torch.utils.tensorboard import SummaryWriter  # noqa: F401

    import twisterl
    from twisterl.train.driver import train
    twisterl.compile(env)
    torch.optim.Adam([torch.zeros(1, requires_grad=True)])
    cfg = tmp_path / f"{algo}.json"
    cfg.write_text(json.dumps(config))
    stream = io.StringIO()
    start = time.perf_counter()
    assert train(str(env), str(tmp_path / algo), str(cfg), {}, None, None, limit, stream, algo=algo).run.is_dir()
    wall = time.perf_counter() - start
    found = re.search(r"(?:done after \d+ iterations, |stopped at the time limit after )([\d.]+) s", stream.getvalue())
    reported = float(found.group(1))
    return wall, reported, stream.getvalue()


def test_the_time_limit_stops_a_long_ppo_update(tmp_path, build_cache):
    # One iteration would take far longer than the limit: a million epochs of updates (4000 ran
    # in under 5 s once the Rust learner was the default).
    limit = 5.0
    wall, reported, out = _timed_train(tmp_path, GRID, {**TINY, "num_envs": 64, "num_steps": 32,
                                                        "update_epochs": 1_000_000}, limit)
    assert limit <= reported <= limit * 1.03 + MARGIN, out
    assert wall <= limit + 2.0, (wall, out)
    assert "cut short by the time limit" in out
    from twisterl.train.rundir import RunDir
    assert RunDir(tmp_path / "ppo").read("last")[1]["iteration"] == 0


def test_the_time_limit_stops_a_long_collection_and_resume_starts_over(tmp_path, build_cache, capsys):
    limit = 2.0
    wall, reported, out = _timed_train(tmp_path, GRID, {**TINY, "num_envs": 64, "num_steps": 400_000}, limit)
    assert limit <= reported <= limit * 1.03 + MARGIN and wall <= limit + 2.0, (wall, out)
    assert "before the first iteration finished" in out
    from twisterl.train.rundir import RunDir
    assert RunDir(tmp_path / "ppo").read("last")[1]["iteration"] == -1
    code, out, err = cli(capsys, "train", "--resume", tmp_path / "ppo", "--time-limit", "1")
    assert code == 0 and "resuming" in out, err


def test_the_time_limit_stops_alphazero_self_play_and_learning(tmp_path, build_cache):
    limit = 5.0
    config = {"num_games": 400, "num_simulations": 8, "concurrent_games": 2, "num_threads": 1,
              "embedding_size": 16, "common_layers": [16], "train_steps": 100_000, "batch_size": 8,
              "arena_games": 2, "pure_simulations": 0}
    wall, reported, out = _timed_train(tmp_path, TTT, config, limit, algo="az")
    assert limit <= reported <= limit * 1.03 + MARGIN and wall <= limit + 2.0, (wall, out)
    assert "cut short by the time limit" in out


# ---------------------------------------------------------------- class 5: no episode finished


def test_an_iteration_without_finished_episodes_says_so(tmp_path, build_cache):
    import csv

    from twisterl.train.driver import train
    cfg = tmp_path / "cfg.json"
    cfg.write_text(json.dumps({**TINY, "num_envs": 2, "num_steps": 1, "difficulty": 30}))
    stream = io.StringIO()
    assert train(str(PUZZLE), str(tmp_path / "run"), str(cfg), {}, None, 3, None, stream).run.is_dir()
    text = stream.getvalue()
    assert "nan" not in text and "no episode finished in this iteration" in text, text
    rows = list(csv.DictReader(open(tmp_path / "run" / "metrics.csv")))
    assert rows and all(r["episodes"] == "0" and r["success_rate"] == "nan" and r["mean_return"] == "nan"
                        for r in rows)
    assert all(math.isnan(float(r["mean_length"])) for r in rows)


def test_chunked_collection_keeps_the_gae_of_one_rollout(compiled):
    from twisterl.train.ppo import PPO, Config
    ppo = PPO(compiled("gridworld"), Config(**{**TINY, "num_envs": 8, "num_steps": 40}))
    import twisterl.train.ppo as ppo_module
    old, ppo_module.COLLECT_CHUNK = ppo_module.COLLECT_CHUNK, 8 * 7  # chunks of 7 steps
    try:
        data = ppo.collect(deadline=time.perf_counter() + 600)
    finally:
        ppo_module.COLLECT_CHUNK = old
    gamma, lam = ppo.cfg.gamma, ppo.cfg.gae_lambda
    r, v, d, adv = data["rewards"], data["values"], data["dones"], data["advantages"]
    assert r.shape == (40, 8)
    for t in range(39):  # the GAE recursion holds across the chunk ends (no truncation before 64 steps)
        expected = np.where(d[t], r[t] - v[t], r[t] + gamma * v[t + 1] - v[t] + gamma * lam * adv[t + 1])
        np.testing.assert_allclose(adv[t], expected, atol=1e-4)
    np.testing.assert_allclose(data["returns"], adv + v, atol=1e-6)


def test_metrics_csv_gains_new_columns_with_nan_in_older_rows(tmp_path):
    from twisterl.train.rundir import RunDir
    import csv
    run = RunDir(tmp_path)
    run.append_metrics({"iteration": 0, "success_rate": 0.5})  # a row from an older version
    run.append_metrics({"iteration": 1, "success_rate": float("nan"), "cut_short": True})
    run.append_metrics({"iteration": 2, "success_rate": None, "cut_short": False})
    rows = list(csv.DictReader(open(tmp_path / "metrics.csv")))
    assert [r["cut_short"] for r in rows] == ["nan", "True", "False"]
    assert [r["success_rate"] for r in rows] == ["0.5", "nan", "nan"]


def test_an_eval_the_deadline_stops_reports_nan(compiled):
    from twisterl.train.evaluation import evaluate_policy
    from twisterl.train.nets import BasicPolicy, to_rust
    cls = compiled("puzzle")
    policy = to_rust(BasicPolicy(81, 4, 16, (16,)))
    full = evaluate_policy(cls, policy, 8, False, 3, 0, {})
    assert not full["cut_short"] and 0 <= full["success"] <= 1
    cut = evaluate_policy(cls, policy, 8, False, 3, 0, {}, deadline=time.perf_counter())
    assert cut["cut_short"] and math.isnan(cut["success"]) and math.isnan(cut["return"])
