"""Evaluation: several tries per episode, named evals driving the curriculum, and
policies averaged over the env's symmetries, which are exactly equivariant."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from twisterl.train.evaluation import evaluate_policy  # noqa: E402
from twisterl.train.ppo import PPO, Config  # noqa: E402
from twisterl.train.nets import BasicPolicy, to_rust  # noqa: E402
from twisterl.train.twists import TwistAveraged, softmax, twist_dense, twist_group, twist_indices  # noqa: E402
from twisterl.train.config import load_config  # noqa: E402
from twisterl.train.checkpoints import make_ppo_config as make_config  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def _compose(g, h):
    return (h[0][g[0]], h[1][g[1]])


@pytest.mark.parametrize("name", ["puzzle", "gridworld", "tictactoe", "connect4"])
def test_twist_groups_are_closed_under_composition(compiled, name):
    vec = compiled(name).vector(1, seed=0)
    group = twist_group(list(vec.twists().values()))
    keys = {(g[0].tobytes(), g[1].tobytes()) for g in group}
    assert len(keys) == len(group) >= 2
    for g in group:
        for h in group:
            c = _compose(g, h)
            assert (c[0].tobytes(), c[1].tobytes()) in keys


def _states(cls, n=24, difficulty=4, seed=3):
    vec = cls.vector(n, seed=seed, difficulty=difficulty)
    vec.reset()
    vec.random_steps(3, seed=seed)
    idx, counts = vec.observe_indices()
    return vec, idx, counts, vec._info()["action_mask"]


@pytest.mark.parametrize("name", ["puzzle", "gridworld", "tictactoe"])
def test_the_twist_averaged_policy_is_equivariant(compiled, name):
    cls = compiled(name)
    vec, idx, counts, mask = _states(cls)
    obs_size = vec.single_observation_space.shape[0]
    torch.manual_seed(0)
    net = BasicPolicy(obs_size, mask.shape[1], 64, [64])
    with torch.no_grad():
        for p in net.parameters():
            p.mul_(4.0)  # sharper distributions make asymmetry visible
    rust = to_rust(net)
    group = twist_group(list(vec.twists().values()))
    averaged = TwistAveraged(rust, group)
    base = averaged.probs_sparse(idx, counts, mask)
    np.testing.assert_allclose(base.sum(axis=1), 1.0, atol=1e-9)
    assert (base[~mask] == 0).all()
    plain = softmax(rust.forward_sparse(idx, counts)[0], mask)
    plain_gap = 0.0
    for perm, act in group:
        t_idx, t_mask = twist_indices(idx, counts, perm), twist_dense(mask, act)
        twisted = averaged.probs_sparse(t_idx, counts, t_mask)
        # Twisting the state twists the distribution: p'(act[a]) = p(a).
        np.testing.assert_allclose(twisted[:, act], base, atol=1e-6)
        plain_twisted = softmax(rust.forward_sparse(t_idx, counts)[0], t_mask)
        plain_gap = max(plain_gap, float(np.abs(plain_twisted[:, act] - plain).max()))
        # The dense path gives the same distribution.
        dense = np.zeros((len(counts), obs_size), np.float32)
        for b in range(len(counts)):
            dense[b, t_idx[b, :counts[b]]] = 1.0
        np.testing.assert_allclose(averaged.probs_dense(dense, t_mask)[:, act], base, atol=1e-6)
    assert plain_gap > 1e-3, "the plain network is not equivariant, so the test has teeth"


def test_more_tries_never_lower_success_and_start_from_the_same_state(compiled):
    cls = compiled("puzzle")
    torch.manual_seed(1)
    rust = to_rust(BasicPolicy(81, 4, 32, [32]))
    one = evaluate_policy(cls, rust, 60, False, 4, seed=5, params={})
    ten = evaluate_policy(cls, rust, 60, False, 4, seed=5, params={}, tries=10)
    assert ten["tries"] == 10 and ten["success"] > one["success"]
    # A deterministic policy on a deterministic env repeats itself: every try is the same.
    det = evaluate_policy(cls, rust, 30, True, 4, seed=5, params={}, tries=5)
    assert (det["try_return"] == det["try_return"][:, :1]).all()
    assert 0 < det["try_success"][:, 0].mean() < 1  # the episodes differ; their tries do not
    with pytest.raises(ValueError, match="at least 1"):
        evaluate_policy(cls, rust, 10, False, 1, seed=0, params={}, tries=0)


def test_named_evals_drive_the_curriculum(compiled):
    cls = compiled("puzzle")
    evals = {"ppo_1": {"num_episodes": 20, "deterministic": False, "num_searches": 1},
             "ppo_5": {"num_episodes": 20, "deterministic": False, "num_searches": 5}}
    ppo = PPO(cls, Config(num_envs=32, num_steps=8, num_threads=1, embedding_size=32, common_layers=[32],
                          evals=evals, diff_metric="ppo_5", diff_threshold=0.0, diff_max=3))
    first = ppo.iterate()
    assert set(first.evals) == {"ppo_1", "ppo_5"} and 0.0 <= first.evals["ppo_1"] <= 1.0
    assert ppo.difficulty == 2  # threshold 0: the eval always passes
    with pytest.raises(ValueError, match="diff_metric 'ppo_9'"):
        PPO(cls, Config(num_envs=8, evals=evals, diff_metric="ppo_9"))
    with pytest.raises(ValueError, match="unknown key"):
        PPO(cls, Config(num_envs=8, evals={"x": {"num_epsiodes": 3}}))


def test_twisterl_shaped_configs_map_evals_and_the_metric(tmp_path):
    cfg_path = tmp_path / "tw.json"
    cfg_path.write_text("""{"policy": {"embedding_size": 64, "common_layers": [32]},
        "algorithm": {"learning": {"diff_threshold": 0.8, "diff_max": 8, "diff_metric": "ppo_10"},
                      "optimizer": {"lr": 0.0002},
                      "evals": {"ppo_10": {"num_episodes": 50, "deterministic": false, "num_searches": 10}}}}""")
    cfg = make_config(load_config(str(cfg_path)))
    assert cfg.diff_metric == "ppo_10" and cfg.evals["ppo_10"]["num_searches"] == 10
    assert cfg.learning_rate == 0.0002 and cfg.embedding_size == 64 and cfg.diff_max == 8


def _one_iteration_of_the_gridworld(build_cache, tmp_path):
    """A PPO run of the gridworld, one iteration of a tiny network: the CLI's environment and the run dir."""
    env = dict(os.environ, TWISTERL_CACHE_DIR=str(build_cache))
    out = tmp_path / "run"
    cfg = tmp_path / "cfg.json"
    cfg.write_text('{"num_envs": 16, "num_steps": 8, "num_threads": 1, "embedding_size": 16, "common_layers": [16]}')
    subprocess.run([sys.executable, "-m", "twisterl", "train", "examples/gridworld.twl", "--out", str(out),
                    "--config", str(cfg), "--iterations", "1"], cwd=ROOT, env=env, check=True, capture_output=True)
    return env, out


def test_eval_cli_with_tries_and_twist_averaging(build_cache, tmp_path):
    env, out = _one_iteration_of_the_gridworld(build_cache, tmp_path)
    proc = subprocess.run([sys.executable, "-m", "twisterl", "eval", str(out), "--episodes", "10", "--tries", "3",
                           "--average-twists"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "best of 3 tries, averaged over 2 twists" in proc.stdout


def test_eval_cli_searches_with_a_ppo_policy(build_cache, tmp_path):
    """`twisterl eval --simulations N` on a PPO run: PUCT on the policy's priors and values.
    One iteration's policy alone reaches a distant goal in about 40% of episodes; with 64
    simulations a move (the tree finds the goal's reward) in about 85%."""
    env, out = _one_iteration_of_the_gridworld(build_cache, tmp_path)

    def evaluate(*args):
        proc = subprocess.run([sys.executable, "-m", "twisterl", "eval", str(out), "--episodes", "20",
                               "--difficulty", "8", *args], cwd=ROOT, env=env, capture_output=True, text=True,
                              timeout=300)
        return proc

    searched = evaluate("--simulations", "64")
    assert searched.returncode == 0, searched.stderr
    assert "PUCT search, 64 simulations per move, 1 tries" in searched.stdout
    alone = evaluate()
    assert alone.returncode == 0, alone.stderr

    def success(proc):
        return float(proc.stdout.split("success ")[1].split(",")[0])

    assert success(searched) >= 0.7 and success(searched) > success(alone) + 0.2, (searched.stdout, alone.stdout)
    averaged = evaluate("--simulations", "64", "--average-twists")  # the gridworld's mirror and its identity
    assert averaged.returncode == 0, averaged.stderr
    assert "PUCT search, 64 simulations per move, 1 tries, averaged over 2 twists" in averaged.stdout
    assert success(averaged) >= 0.7, averaged.stdout
    bad = evaluate("--simulations", "0")
    assert bad.returncode != 0 and "--simulations must be between 1" in bad.stderr
