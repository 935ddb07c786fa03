"""PPO beyond discrete one-hot envs: continuous actions (Gaussian policy) and 2-D planes
(conv policy), from collection in Rust to learning in torch."""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import twisterl  # noqa: E402
from twisterl import _core  # noqa: E402
from twisterl.train.ppo import PPO, Config  # noqa: E402
from twisterl.train.nets import ConvPolicy, GaussianPolicy, to_rust  # noqa: E402
from twisterl.train.checkpoints import make_ppo_config as make_config  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def test_gaussian_collection_records_unclipped_draws_and_their_logprobs(compiled):
    cls = compiled("pendulum")
    vec = cls.vector(16, seed=0)
    vec.reset()
    torch.manual_seed(0)
    net = GaussianPolicy(3, 1, hidden=(16, 16))
    log_std = np.array([0.7], np.float32)  # std 2.0 > the torque bound, so draws leave [-2, 2]
    data = _core.collect(vec._batch, to_rust(net), 30, 5, 0.9, 0.95, log_std=log_std)
    values = data["action_values"]
    assert values.shape == (30, 16, 1) and data["masks"].shape == (30, 16, 0)
    assert (np.abs(values) > 2.0).any(), "the recorded draws are the unclipped ones"
    obs = torch.from_numpy(data["obs"].reshape(-1, 3))
    mean, value = net(obs)
    dist = torch.distributions.Normal(mean, torch.from_numpy(log_std).exp())
    expected = dist.log_prob(torch.from_numpy(values.reshape(-1, 1))).sum(-1).detach().numpy()
    np.testing.assert_allclose(data["logp"].reshape(-1), expected, atol=1e-4)
    np.testing.assert_allclose(data["values"].reshape(-1), value.detach().numpy(), atol=1e-5)
    # Deterministic collection acts with the mean.
    det = _core.collect(vec._batch, to_rust(net), 5, 5, deterministic=True, log_std=log_std)
    mean, _ = net(torch.from_numpy(det["obs"].reshape(-1, 3)))
    np.testing.assert_allclose(det["action_values"].reshape(-1), mean.detach().numpy().reshape(-1), atol=1e-5)


def test_gaussian_collection_refuses_bad_arguments(compiled):
    pend, grid = compiled("pendulum"), compiled("gridworld")
    vec = pend.vector(4, seed=0)
    vec.reset()
    policy = to_rust(GaussianPolicy(3, 1))
    with pytest.raises(ValueError, match="give log_std"):
        _core.collect(vec._batch, policy, 4, 0)
    with pytest.raises(ValueError, match="1 finite values"):
        _core.collect(vec._batch, policy, 4, 0, log_std=np.array([0.0, 0.0], np.float32))
    with pytest.raises(ValueError, match="reward_scale"):
        _core.collect(vec._batch, policy, 4, 0, log_std=np.zeros(1, np.float32), reward_scale=0.0)
    gvec = grid.vector(4, seed=0)
    gvec.reset()
    with pytest.raises(ValueError, match="log_std is for envs with continuous actions"):
        _core.collect(gvec._batch, to_rust(twisterl.train.nets.BasicPolicy(100, 4, 8, [8])), 4, 0,
                      log_std=np.zeros(4, np.float32))


def test_ppo_improves_pendulum(compiled):
    cls = compiled("pendulum")
    cfg = make_config({"num_envs": 32, "num_steps": 200, "num_threads": 1, "seed": 3}, cls)
    assert cfg.norm_reward and cfg.embedding_size == 64  # the continuous defaults
    ppo = PPO(cls, cfg)
    assert ppo.policy_desc["kind"] == "gaussian" and ppo.learner == "rust"
    history = ppo.train(iterations=25)
    first = np.mean([s.mean_return for s in history[:3]])
    last = np.mean([s.mean_return for s in history[-3:]])
    assert last > first + 200, (first, last)
    assert ppo.reward_scale != 1.0


PLANES = """
let rows: [[int in 0..4; width]; height] = [[view[r * width + c] for c in 0..width] for r in 0..height]
observe planes(rows)
"""


@pytest.fixture(scope="module")
def grid_planes(build_cache, tmp_path_factory):
    """The grid world observed as four 5x5 planes instead of a one-hot vector."""
    text = (ROOT / "examples" / "gridworld.twl").read_text()
    text = text.replace("observe onehot(view)", PLANES)
    text = re.sub(r"symmetry mirror \{.*?\n\}\n", "", text, flags=re.S)
    path = tmp_path_factory.mktemp("planes") / "gridplanes.twl"
    path.write_text(text)
    return twisterl.compile(path)


def test_planes_train_a_conv_policy(grid_planes):
    assert grid_planes.spec["observation"]["kind"] == "planes"
    ppo = PPO(grid_planes, Config(num_envs=64, num_steps=32, num_threads=1, difficulty=3, diff_max=3,
                                  conv_channels=[8], common_layers=[64], learning_rate=1e-3, seed=1))
    assert ppo.policy_desc["kind"] == "conv" and ppo.policy.obs_shape == (4, 5, 5)
    history = ppo.train(iterations=25)
    first = np.mean([s.mean_return for s in history[:3]])
    last = np.mean([s.mean_return for s in history[-3:]])
    assert last > first + 0.3, (first, last)
    assert math.isfinite(history[-1].policy_loss)


def test_learner_device_is_checked(compiled):
    cls = compiled("gridworld")
    small = dict(num_envs=8, num_steps=4, num_threads=1, embedding_size=8, common_layers=[8])
    ppo = PPO(cls, Config(device="auto", learner="torch", **small))
    assert ppo.device.type == ("cuda" if torch.cuda.is_available() else "cpu")
    ppo.iterate()
    # learner "auto" learns in Rust on the CPU, in torch on a GPU
    assert PPO(cls, Config(device="auto", **small)).learner == ("torch" if torch.cuda.is_available() else "rust")
    assert PPO(cls, Config(device="cpu", **small)).learner == "rust"
    with pytest.raises(ValueError, match="learner \"rust\" runs on the CPU"):
        PPO(cls, Config(device="cuda", learner="rust", **small))
    with pytest.raises(ValueError, match="not a torch device"):
        PPO(cls, Config(device="gpu7", **small))
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="sees no CUDA device"):
            PPO(cls, Config(device="cuda", **small))


REACH = """
env Reach2D

state x: float
state y: float

action move(dx: float in -1.0..1.0, dy: float in -0.5..0.5) {
    x = clamp(x + 0.1 * dx, -2.0, 2.0)
    y = clamp(y + 0.1 * dy, -2.0, 2.0)
}

reset {
    x = uniform(-1.0, 1.0)
    y = uniform(-1.0, 1.0)
}

truncate steps >= 50
reward -(x * x + y * y)
observe [x, y]
"""


def test_vector_continuous_actions_train(build_cache, tmp_path):
    path = tmp_path / "reach.twl"
    path.write_text(REACH)
    cls = twisterl.compile(path)
    ppo = PPO(cls, make_config({"num_envs": 16, "num_steps": 100, "num_threads": 1, "seed": 0, "update_epochs": 4,
                                "num_minibatches": 4}, cls))
    assert ppo.num_actions == 2 and ppo.policy.log_std.shape == (2,)
    history = ppo.train(iterations=12)
    assert history[-1].mean_return > history[0].mean_return


def test_learning_rate_annealing_and_activation(compiled):
    cls = compiled("gridworld")
    small = dict(num_envs=8, num_steps=8, num_threads=1, embedding_size=8, common_layers=[8])
    with pytest.raises(ValueError, match="anneal_lr needs max_env_steps"):
        PPO(cls, Config(anneal_lr=True, **small))
    with pytest.raises(ValueError, match="activation must be one of"):
        PPO(cls, Config(activation="swish", **small))
    for learner in ("torch", "rust"):
        ppo = PPO(cls, Config(anneal_lr=True, max_env_steps=256, learning_rate=1e-3, activation="tanh",
                              learner=learner, **small))
        assert ppo.policy_desc["activation"] == "tanh"
        if learner == "torch":
            assert isinstance(ppo.policy.activation, torch.nn.Tanh)
        rates = []
        for _ in range(3):
            ppo.iterate()
            rates.append(ppo.optimizer.param_groups[0]["lr"] if learner == "torch" else ppo.rust.lr)
        assert rates == pytest.approx([1e-3, 1e-3 * 0.75, 1e-3 * 0.5]), learner


def test_best_checkpoint_follows_the_return_when_nothing_succeeds(build_cache, tmp_path):
    import csv
    import os
    import subprocess
    import sys

    from twisterl.train.rundir import RunDir

    out, cfg = tmp_path / "run", tmp_path / "cfg.json"
    cfg.write_text('{"num_envs": 8, "num_steps": 200, "num_threads": 1, "update_epochs": 2, "num_minibatches": 2}')
    proc = subprocess.run([sys.executable, "-m", "twisterl", "train", "examples/pendulum.twl", "--out", str(out),
                           "--config", str(cfg), "--iterations", "4"], cwd=ROOT, capture_output=True, text=True,
                          env=dict(os.environ, TWISTERL_CACHE_DIR=str(build_cache)), timeout=300)
    assert proc.returncode == 0, proc.stderr
    returns = [float(row["mean_return"]) for row in csv.DictReader(open(out / "metrics.csv"))]
    assert RunDir(out).best_score() == (1, 0.0, pytest.approx(max(returns)))
    proc = subprocess.run([sys.executable, "-m", "twisterl", "eval", str(out), "--episodes", "5", "--deterministic"],
                          cwd=ROOT, capture_output=True, text=True,
                          env=dict(os.environ, TWISTERL_CACHE_DIR=str(build_cache)), timeout=300)
    assert proc.returncode == 0 and "5 episodes (deterministic)" in proc.stdout, proc.stderr


def test_actor_critic_network_learns_cartpole(compiled):
    cls = compiled("cartpole")
    cfg = Config(num_envs=4, num_steps=128, num_threads=1, gamma=0.99, gae_lambda=0.95, network="actor_critic",
                 embedding_size=64, common_layers=[64], activation="tanh", learning_rate=2.5e-4, clip_coef=0.2,
                 vf_coef=0.5, diff_max=0, min_episodes=1_000_000, seed=1)
    ppo = PPO(cls, cfg)
    history = ppo.train(iterations=60)
    returns = [s.mean_return for s in history if s.episodes]
    assert np.mean(returns[-5:]) > np.mean(returns[:5]) + 30, (returns[:5], returns[-5:])
