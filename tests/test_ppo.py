"""PPO end to end on small budgets: collection, masks, GAE, curriculum, checkpoints, CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from twisterl import _core  # noqa: E402
from twisterl.train.ppo import PPO, Config  # noqa: E402
from twisterl.train.nets import BasicPolicy, to_rust  # noqa: E402
from twisterl.train.rundir import CheckpointError, RunDir  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def test_collection_gives_the_same_bits_whatever_the_thread_count(compiled):
    # Batched inference packs the weights and splits the envs between threads; each row's
    # sums are made in the same order however the rows are split, so every array is equal
    # bit for bit (a float's sign of zero included). 37 envs split unevenly over 3 threads.
    cls = compiled("gridworld")
    policy = to_rust(BasicPolicy(100, 4, 160, (96,)))
    runs = []
    for threads in (1, 2, 3):
        vec = cls.vector(37, seed=5, num_threads=threads, difficulty=3)
        vec.reset()
        runs.append([_core.collect(vec._batch, policy, 24, seed) for seed in (1, 2)])
    def bits(a):
        return a.view(f"u{a.itemsize}") if isinstance(a, np.ndarray) and a.dtype.kind == "f" else a

    assert runs[0][0]["episodes"] > 0
    for other in runs[1:]:
        for mine, theirs in zip(runs[0], other):
            assert mine.keys() == theirs.keys()
            for key, value in mine.items():
                assert np.array_equal(bits(value), bits(theirs[key])), key


def test_collection_respects_masks_and_computes_gae(compiled):
    cls = compiled("gridworld")
    vec = cls.vector(32, seed=0, difficulty=3)
    vec.reset()
    net = BasicPolicy(100, 4, 32, (32,))
    gamma, lam = 0.9, 0.8
    data = _core.collect(vec._batch, to_rust(net), 40, 1, gamma, lam)
    actions, masks = data["actions"], data["masks"]
    assert masks[np.arange(40)[:, None], np.arange(32)[None, :], actions].all()
    # GAE by hand for env 0 (no truncation in this env before 64 steps).
    r, v, d = data["rewards"][:, 0], data["values"][:, 0], data["dones"][:, 0]
    adv = data["advantages"][:, 0]
    for t in range(38, -1, -1):
        if d[t]:
            expected = r[t] - v[t]
        else:
            expected = r[t] + gamma * v[t + 1] - v[t] + gamma * lam * adv[t + 1]
        assert adv[t] == pytest.approx(expected, abs=1e-5)
    np.testing.assert_allclose(data["returns"], data["advantages"] + data["values"], atol=1e-6)
    assert data["episodes"] > 0


def test_training_improves_the_grid_world(compiled):
    cls = compiled("gridworld")
    ppo = PPO(cls, Config(num_envs=64, num_steps=32, num_threads=1, difficulty=3, diff_max=3, embedding_size=64,
                          common_layers=[64], learning_rate=1e-3, seed=1))
    history = ppo.train(iterations=25)
    first = np.mean([s.mean_return for s in history[:3]])
    last = np.mean([s.mean_return for s in history[-3:]])
    assert last > first + 0.3, (first, last)


def test_curriculum_raises_difficulty_only_past_the_threshold(compiled):
    cls = compiled("puzzle")
    ppo = PPO(cls, Config(num_envs=64, num_steps=16, num_threads=1, difficulty=1, diff_threshold=0.0,
                          diff_max=3, embedding_size=32, common_layers=[32]))
    stats = ppo.iterate()
    assert stats.episodes >= 100 and ppo.difficulty == 2      # any success rate passes a 0 threshold
    ppo.cfg.diff_threshold = 1.1                              # an unreachable threshold
    ppo.iterate()
    assert ppo.difficulty == 2
    ppo.cfg.diff_threshold, ppo.cfg.min_episodes = 0.0, 10**9  # too few episodes to judge
    ppo.iterate()
    assert ppo.difficulty == 2
    ppo.cfg.min_episodes = 0
    ppo.iterate()
    ppo.iterate()
    assert ppo.difficulty == 3                                # never past diff_max


def test_checkpoints_round_trip_and_refuse_mismatches(tmp_path):
    run = RunDir(tmp_path / "run")
    run.create({"env": "X"}, "env X\n")
    net = BasicPolicy(10, 3, 16, (8,))
    run.save("last", net, {"env": "X", "obs_size": 10, "difficulty": 1, "iteration": 0})
    other = BasicPolicy(10, 3, 16, (8,))
    run.load("last", other, {"env": "X"})
    for a, b in zip(net.state_dict().values(), other.state_dict().values()):
        assert torch.equal(a, b)
    with pytest.raises(CheckpointError, match="trained for env = 'X', not 'Y'"):
        run.load("last", other, {"env": "Y"})
    with pytest.raises(CheckpointError, match="does not fit this network"):
        run.load("last", BasicPolicy(10, 3, 32, (8,)), {"env": "X"})
    (tmp_path / "run" / "last.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{garbage")
    with pytest.raises(CheckpointError, match="not a readable checkpoint"):
        run.load("last", other, {})
    with pytest.raises(CheckpointError, match="does not exist"):
        run.load("best", other, {})


def test_train_and_eval_from_the_cli(build_cache, tmp_path):
    env = dict(os.environ, TWISTERL_CACHE_DIR=str(build_cache))
    out = tmp_path / "run"
    cfg = tmp_path / "cfg.json"
    cfg.write_text(json.dumps({"num_envs": 32, "num_steps": 16, "num_threads": 1, "embedding_size": 32,
                               "common_layers": [32], "difficulty": 2}))
    proc = subprocess.run([sys.executable, "-m", "twisterl", "train", "examples/puzzle.twl", "--out", str(out),
                           "--config", str(cfg), "--iterations", "3"], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "difficulty" in proc.stdout and (out / "best.safetensors").exists()
    rows = (out / "metrics.csv").read_text().strip().splitlines()
    assert len(rows) == 4 and rows[0].startswith("iteration,")
    proc = subprocess.run([sys.executable, "-m", "twisterl", "eval", str(out), "--episodes", "20"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "20 episodes (sampled): success" in proc.stdout
    proc = subprocess.run([sys.executable, "-m", "twisterl", "play", "examples/puzzle.twl", "--policy", str(out),
                           "--difficulty", "2", "--seed", "1"], cwd=ROOT, env=env, input="\n" * 6 + "q\n",
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "agent plays" in proc.stdout
    assert (out / "progress.png").read_bytes()[:4] == b"\x89PNG"
    assert list((out / "tensorboard").glob("events.out.tfevents.*"))
    proc = subprocess.run([sys.executable, "-m", "twisterl", "eval", str(tmp_path)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1 and "not a training run" in proc.stderr and "Traceback" not in proc.stderr


def test_twisterl_json_configs_are_accepted(tmp_path):
    """TwisteRL's nested JSON config (the shape of its own examples): its keys map to ours."""
    from twisterl.train.checkpoints import make_ppo_config as make_config
    from twisterl.train.config import load_config
    path = tmp_path / "ppo_puzzle8.json"
    path.write_text(json.dumps({
        "env_cls": "twisterl.envs.Puzzle", "env": {"difficulty": 2, "height": 3, "width": 3},
        "policy_cls": "twisterl.nn.BasicPolicy",
        "policy": {"embedding_size": 96, "common_layers": [48], "policy_layers": [], "value_layers": []},
        "algorithm": {"collecting": {"num_cores": 32, "lambda": 0.97, "gamma": 0.98},
                      "training": {"num_epochs": 7, "vf_coef": 0.6, "ent_coef": 0.02, "clip_ratio": 0.15,
                                   "normalize_advantage": False},
                      "learning": {"diff_threshold": 0.8, "diff_max": 12, "diff_metric": "ppo_1"},
                      "optimizer": {"lr": 0.00042},
                      "evals": {"ppo_1": {"num_episodes": 50, "deterministic": False, "num_searches": 1}}}}))
    cfg = make_config(load_config(str(path)))
    assert (cfg.embedding_size, cfg.common_layers, cfg.difficulty) == (96, [48], 2)
    assert (cfg.gae_lambda, cfg.gamma, cfg.update_epochs, cfg.vf_coef, cfg.ent_coef, cfg.clip_coef) == \
        (0.97, 0.98, 7, 0.6, 0.02, 0.15)
    assert (cfg.norm_adv, cfg.diff_threshold, cfg.diff_max, cfg.diff_metric, cfg.learning_rate) == \
        (False, 0.8, 12, "ppo_1", 0.00042)
    assert cfg.evals["ppo_1"]["num_episodes"] == 50
    with pytest.raises(ValueError, match="unknown config key"):
        make_config({"learning_rat": 1e-3})


def test_resume_after_sigkill_loses_at_most_one_iteration(build_cache, tmp_path):
    import signal
    import time
    env = dict(os.environ, TWISTERL_CACHE_DIR=str(build_cache))
    out = tmp_path / "run"
    cfg = tmp_path / "cfg.json"
    cfg.write_text(json.dumps({"num_envs": 32, "num_steps": 16, "num_threads": 1, "embedding_size": 32,
                               "common_layers": [32], "diff_threshold": 0.0, "min_episodes": 1, "diff_max": 100}))
    proc = subprocess.Popen([sys.executable, "-m", "twisterl", "train", "examples/puzzle.twl", "--out", str(out),
                             "--config", str(cfg), "--iterations", "100000"], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    metrics = out / "metrics.csv"
    deadline = time.time() + 120
    while time.time() < deadline and (not metrics.exists() or len(metrics.read_text().splitlines()) < 6):
        time.sleep(0.2)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    rows_before = metrics.read_text().strip().splitlines()
    last_iteration = int(rows_before[-1].split(",")[0])
    # Every checkpoint still loads.
    from twisterl.train.checkpoints import load_policy
    net, meta, _ = load_policy(RunDir(out), "last")
    assert meta["iteration"] >= last_iteration - 1
    resumed = subprocess.run([sys.executable, "-m", "twisterl", "train", "--resume", str(out), "--iterations", "2"],
                             cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming" in resumed.stdout
    rows = metrics.read_text().strip().splitlines()
    first_new = int(rows[len(rows_before)].split(",")[0])
    assert last_iteration - 1 <= first_new <= last_iteration + 1
    difficulty_before = int(rows_before[-1].split(",")[1])
    assert int(rows[-1].split(",")[1]) >= difficulty_before


def test_collection_with_twists_and_training_still_improves(compiled):
    cls = compiled("gridworld")
    vec = cls.vector(16, seed=0, difficulty=3)
    vec.reset()
    twists = list(vec.twists().values())
    assert len(twists) == 1
    data = _core.collect(vec._batch, to_rust(BasicPolicy(100, 4, 32, (32,))), 40, 1, twists=twists)
    actions, masks = data["actions"], data["masks"]
    assert masks[np.arange(40)[:, None], np.arange(16)[None, :], actions].all()  # in the twisted frame
    with pytest.raises(ValueError, match="permutation"):
        _core.collect(vec._batch, to_rust(BasicPolicy(100, 4, 32, (32,))), 4, 1,
                      twists=[(np.zeros(100, np.uint32), np.arange(4, dtype=np.uint32))])
    ppo = PPO(cls, Config(num_envs=64, num_steps=32, num_threads=1, difficulty=3, diff_max=3, embedding_size=64,
                          common_layers=[64], learning_rate=1e-3, seed=1, twists=True))
    history = ppo.train(iterations=25)
    first = np.mean([s.mean_return for s in history[:3]])
    last = np.mean([s.mean_return for s in history[-3:]])
    assert last > first + 0.3, (first, last)


def test_learner_diagnostics_are_logged_and_target_kl_stops_epochs(compiled):
    """approx_kl, clipfrac and explained variance, as CleanRL logs them; `target_kl` ends
    an update's epochs early and `clip_vloss` clips the value loss."""
    from twisterl.train.ppo import PPO, Config, explained_variance
    cls = compiled("gridworld")
    base = dict(num_envs=16, num_steps=32, embedding_size=32, common_layers=[32], update_epochs=8,
                num_minibatches=2, learning_rate=0.01, seed=3)
    free = PPO(cls, Config(**base)).iterate()
    assert free.approx_kl > 0 and 0 <= free.clipfrac <= 1 and np.isfinite(free.explained_variance)
    tight = PPO(cls, Config(**base, target_kl=1e-9, clip_vloss=True)).iterate()
    assert tight.approx_kl < free.approx_kl  # one epoch only: the policy moved less
    assert explained_variance(np.array([1.0, 2.0, 3.0]), np.array([1.0, 2.0, 3.0])) == 1.0
    assert explained_variance(np.zeros(3), np.array([1.0, 2.0, 3.0])) < 0.5


CHAIN = """
env Chain
param length: int = 6
state pos: int in 0..length
action left  { pos = max(pos - 1, 0) }
action right { pos = min(pos + 1, length - 1) }
reset { pos = START }
success  pos == length - 1
done     pos == length - 1
truncate steps >= 4 * length
reward   if pos == length - 1 then 1.0 else 0.0
observe onehot(pos)
render { line "at {pos} (difficulty {difficulty})" }
"""


@pytest.mark.parametrize("start, climbs", [("0", False), ("min(difficulty, length - 2)", True)])
def test_only_an_env_that_reads_difficulty_has_a_curriculum(build_cache, tmp_path, start, climbs):
    """The difficulty climbs, and a solved `diff_max` ends the run, only where the dynamics
    read `difficulty` (a render that shows it does not count)."""
    import twisterl
    path = tmp_path / "chain.twl"
    path.write_text(CHAIN.replace("START", start))
    cls = twisterl.compile(path)
    assert cls.spec["curriculum"] is climbs and cls.curriculum is climbs
    ppo = PPO(cls, Config(num_envs=16, num_steps=32, num_threads=1, difficulty=1, diff_threshold=0.0,
                          min_episodes=1, diff_max=3, embedding_size=16, common_layers=[16]))
    history = ppo.train(iterations=5)
    assert [s.difficulty for s in history] == ([1, 2, 3] if climbs else [1] * 5)
    assert ppo.difficulty == (3 if climbs else 1)
