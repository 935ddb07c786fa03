"""The Rust learner against torch: one update on the same batch from the same weights gives
the same parameters (to 1e-5) for every network kind the exporters support, for PPO
(discrete and Gaussian, clipped value loss, frozen observation normaliser) and AlphaZero
(weight decay); Adam's state crosses between the learners; a run resumes across them; bad
input is a clear error."""

from __future__ import annotations

import csv
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402
from torch.nn import functional as F  # noqa: E402

from twisterl.train.nets import (ActorCritic, BasicPolicy, ConvPolicy, GaussianPolicy, ResidualBlock,  # noqa: E402
                                 SparseObs, policy_layers)
from twisterl.train.rust_learner import RustLearner, _torch_slots, choose_learner, rust_supports  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
TOL = 1e-5


class ResidualNet(nn.Module):
    """A custom network of every flat layer kind: linear, LayerNorm, GELU, tanh, a residual block."""

    def __init__(self, obs_size: int, num_actions: int):
        super().__init__()
        self.obs_size, self.num_actions = obs_size, num_actions
        self.trunk = nn.Sequential(nn.Linear(obs_size, 24), nn.LayerNorm(24), nn.GELU(approximate="tanh"),
                                   ResidualBlock(24, "tanh"), nn.ReLU())
        self.policy_head = nn.Sequential(nn.Linear(24, 12), nn.Tanh(), nn.Linear(12, num_actions))
        self.value_head = nn.Linear(24, 1)

    def forward(self, obs):
        h = self.trunk(obs)
        return self.policy_head(h), self.value_head(h).squeeze(-1)


def batch(rng, n: int, obs_size: int, a: int, sparse: bool, continuous: bool = False, nnz: int = 5) -> dict:
    data = {}
    if sparse:
        data["obs_indices"] = np.stack([rng.choice(obs_size, nnz, replace=False) for _ in range(n)]).astype(np.uint32)
        data["obs_counts"] = rng.integers(1, nnz + 1, n).astype(np.uint32)
    else:
        data["obs"] = rng.normal(size=(n, obs_size)).astype(np.float32)
    if continuous:
        data["action_values"] = rng.normal(size=(n, a)).astype(np.float32)
    else:
        masks = rng.random((n, a)) < 0.6
        masks[np.arange(n), rng.integers(0, a, n)] = True
        masks[0] = False  # a row with no legal action: no gradient, as torch
        data["masks"] = masks
        data["actions"] = np.array([rng.choice(np.flatnonzero(m)) if m.any() else 0 for m in masks], np.int64)
    data["logp"] = rng.normal(-1.2, 0.3, n).astype(np.float32)
    data["advantages"] = rng.normal(size=n).astype(np.float32)
    data["returns"] = rng.normal(size=n).astype(np.float32)
    data["values"] = rng.normal(size=n).astype(np.float32)
    return data


def observations(net, data: dict, rows: np.ndarray):
    if "obs_indices" in data:
        return SparseObs(torch.from_numpy(data["obs_indices"][rows].astype(np.int64)),
                         torch.from_numpy(data["obs_counts"][rows].astype(np.int64)))
    return torch.from_numpy(data["obs"][rows])


def torch_ppo_step(net, opt, data: dict, rows: np.ndarray, clip: float, vf: float, ent: float, clip_vloss: bool,
                   max_norm: float) -> None:
    """The torch learner's minibatch step (`twisterl.train.ppo.PPO.update`), written out."""
    out, values = net(observations(net, data, rows))
    t = lambda key: torch.from_numpy(data[key][rows])  # noqa: E731
    if "action_values" in data:
        dist = torch.distributions.Normal(out, net.log_std.exp())
        new_logp = dist.log_prob(t("action_values")).sum(-1)
        entropy = dist.entropy().sum(-1).mean()
    else:
        mask = t("masks")
        logp_all = torch.log_softmax(out.masked_fill(~mask, -1e9), dim=-1)
        new_logp = logp_all.gather(1, t("actions")[:, None]).squeeze(1)
        entropy = -(logp_all.exp() * logp_all).masked_fill(~mask, 0.0).sum(-1).mean()
    adv = t("advantages")
    adv = (adv - adv.mean()) / (adv.std() + 1e-8)
    ratio = (new_logp - t("logp")).exp()
    pg = torch.max(-adv * ratio, -adv * ratio.clamp(1 - clip, 1 + clip)).mean()
    v_loss = 0.5 * (values - t("returns")) ** 2
    if clip_vloss:
        old = t("values")
        clipped = old + (values - old).clamp(-clip, clip)
        v_loss = torch.max(v_loss, 0.5 * (clipped - t("returns")) ** 2)
    loss = pg + vf * v_loss.mean() - ent * entropy
    opt.zero_grad()
    loss.backward()
    nn.utils.clip_grad_norm_(net.parameters(), max_norm)
    opt.step()


def assert_same_weights(net, rust: RustLearner) -> None:
    theirs = [p.detach().clone() for p in net.parameters()]
    rust.push()
    for k, (before, after) in enumerate(zip(theirs, net.parameters())):
        diff = float((before - after.detach()).abs().max())
        assert diff < TOL, f"parameter {k} of {type(net).__name__}: torch and Rust differ by {diff}"


NETWORKS = {
    "basic, sparse": (lambda: BasicPolicy(30, 6, 32, [16]), True, False),
    "basic, dense, tanh, two common layers": (lambda: BasicPolicy(12, 5, 20, [16, 8], activation="tanh"), False,
                                               False),
    "actor-critic with a frozen ObsNorm": (lambda: ActorCritic(10, 4, (16, 16), "tanh", norm_obs=True), False, False),
    "gaussian": (lambda: GaussianPolicy(7, 3, (16, 16), init_log_std=-0.5), False, True),
    "conv": (lambda: ConvPolicy((2, 4, 5), 6, (4, 3), (16,)), False, False),
    "custom residual, LayerNorm, GELU": (lambda: ResidualNet(9, 4), False, False),
}


@pytest.mark.parametrize("name", list(NETWORKS))
@pytest.mark.parametrize("clip_vloss", [False, True])
def test_one_ppo_update_gives_the_same_parameters_in_both_learners(name, clip_vloss):
    make, sparse, continuous = NETWORKS[name]
    torch.manual_seed(3)
    net = make()
    for module in net.modules():  # a normaliser with real statistics, which neither learner may change
        if hasattr(module, "set_stats"):
            module.set_stats(np.linspace(-1, 1, module.mean.numel()), np.linspace(0.5, 2, module.mean.numel()))
    rng = np.random.default_rng(7)
    obs_size = int(np.prod(net.obs_shape)) if hasattr(net, "obs_shape") else net.obs_size
    a = net.num_actions
    data = batch(rng, 96, obs_size, a, sparse, continuous)
    rust = RustLearner(net, lr=3e-3, eps=1e-5, max_grad_norm=0.5, threads=2)
    opt = torch.optim.Adam(net.parameters(), lr=3e-3, eps=1e-5)
    for step in range(3):  # Adam's moments and bias corrections matter from the second step on
        rows = rng.permutation(96)[:64]
        torch_ppo_step(net, opt, data, rows, 0.2, 0.8, 0.01, clip_vloss, 0.5)
        out = rust.ppo_step(rust.ppo_batch(data, sparse), rows, clip_coef=0.2, vf_coef=0.8, ent_coef=0.01,
                            norm_adv=True, clip_vloss=clip_vloss)
        assert all(math.isfinite(v) for v in out.values())
        assert_same_weights(net, rust)


@pytest.mark.parametrize("name", ["basic, sparse", "conv", "custom residual, LayerNorm, GELU"])
def test_one_alphazero_update_gives_the_same_parameters_in_both_learners(name):
    make, sparse, _ = NETWORKS[name]
    torch.manual_seed(5)
    net = make()
    rng = np.random.default_rng(11)
    obs_size = int(np.prod(net.obs_shape)) if hasattr(net, "obs_shape") else net.obs_size
    a = net.num_actions
    data = batch(rng, 80, obs_size, a, sparse)
    target = rng.random((80, a)).astype(np.float32) * data["masks"]
    target /= np.maximum(target.sum(1, keepdims=True), 1e-9)
    z = rng.choice([-1.0, 0.0, 1.0], 80).astype(np.float32)
    rust = RustLearner(net, lr=1e-3, eps=1e-8, weight_decay=1e-4, threads=2)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3, weight_decay=1e-4)
    for _ in range(2):
        rows = rng.integers(0, 80, 48)
        logits, values = net(observations(net, data, rows))
        logp = F.log_softmax(logits.masked_fill(~torch.from_numpy(data["masks"][rows]), -1e9), dim=-1)
        loss = -(torch.from_numpy(target[rows]) * logp).sum(-1).mean() + \
            1.5 * F.mse_loss(values, torch.from_numpy(z[rows]))
        opt.zero_grad()
        loss.backward()
        opt.step()
        obs = data["obs_indices"] if sparse else data["obs"]
        rust.az_step(obs, data.get("obs_counts"), data["masks"], target, z, rows, 1.5)
        assert_same_weights(net, rust)


def test_adam_state_crosses_between_the_learners():
    torch.manual_seed(1)
    net = BasicPolicy(20, 4, 16, [8])
    rng = np.random.default_rng(2)
    data = batch(rng, 64, 20, 4, True)
    rust = RustLearner(net, lr=1e-2, eps=1e-5, max_grad_norm=0.5)
    rust.ppo_step(rust.ppo_batch(data, True), np.arange(64), clip_coef=0.2, vf_coef=0.5, ent_coef=0.0, norm_adv=True,
                  clip_vloss=False)
    rust.push()
    opt = torch.optim.Adam(net.parameters(), lr=1e-2, eps=1e-5)
    rust.write_optimizer(opt)
    # torch continues from Rust's first step; Rust continues too; both must agree.
    twin = RustLearner(net, lr=1e-2, eps=1e-5, max_grad_norm=0.5)
    twin.read_optimizer(opt)
    rows = np.arange(32)
    torch_ppo_step(net, opt, data, rows, 0.2, 0.5, 0.0, False, 0.5)
    twin.ppo_step(twin.ppo_batch(data, True), rows, clip_coef=0.2, vf_coef=0.5, ent_coef=0.0, norm_adv=True,
                  clip_vloss=False)
    assert_same_weights(net, twin)
    assert twin.learner.steps == 2


def test_the_rust_learner_maps_every_parameter_and_refuses_what_it_cannot_train():
    for name, (make, _, _) in NETWORKS.items():
        net = make()
        indexed = [s.index for s in _torch_slots(net) if s.index is not None]
        assert sorted(indexed) == list(range(len(list(net.parameters())))), name
        assert rust_supports(net) is None

    class Odd(BasicPolicy):
        def __init__(self):
            super().__init__(4, 2, 8, [8])
            self.temperature = nn.Parameter(torch.ones(1))

    why = rust_supports(Odd())
    assert why and "parameters" in why
    with pytest.raises(TypeError, match="use learner \"torch\""):
        RustLearner(Odd(), lr=1e-3, eps=1e-5)
    assert choose_learner("auto", "cpu") == "rust"
    assert choose_learner("auto", "cuda:1") == "torch"
    assert choose_learner("torch", "cpu") == "torch"
    with pytest.raises(ValueError, match="runs on the CPU"):
        choose_learner("rust", "cuda")


def test_bad_batches_are_clear_errors_not_crashes():
    from twisterl import _core
    net = BasicPolicy(10, 3, 8, [8])
    learner = _core.Learner(*policy_layers(net))
    n = 8
    idx, counts = np.zeros((n, 2), np.uint32), np.ones(n, np.uint32)
    f = np.zeros(n, np.float32)
    masks, acts, none = np.ones((n, 3), bool), np.zeros(n, np.int64), np.zeros((0, 3), np.float32)
    kw = dict(clip_coef=0.2, vf_coef=0.5, ent_coef=0.0)
    with pytest.raises(ValueError, match="row 8 is out of range"):
        learner.ppo_step(idx, counts, acts, none, masks, f, f, f, f, np.array([0, 8]), **kw)
    with pytest.raises(ValueError, match="at least one row"):
        learner.ppo_step(idx, counts, acts, none, masks, f, f, f, f, np.zeros(0, np.int64), **kw)
    with pytest.raises(ValueError, match="took action 5"):
        learner.ppo_step(idx, counts, acts + 5, none, masks, f, f, f, f, np.arange(n), **kw)
    with pytest.raises(ValueError, match="advantages has 3 rows"):
        learner.ppo_step(idx, counts, acts, none, masks, f, f[:3], f, f, np.arange(n), **kw)
    with pytest.raises(ValueError, match="negative"):
        learner.ppo_step(idx, counts, acts, none, masks, f, f, f, f, np.array([-1]), **kw)
    with pytest.raises(ValueError, match="features"):
        learner.ppo_step(np.zeros((n, 4), np.float32), None, acts, none, masks, f, f, f, f, np.arange(n), **kw)
    with pytest.raises(ValueError, match="max_grad_norm"):
        _core.Learner(*policy_layers(net), max_grad_norm=-1.0)
    with pytest.raises(ValueError, match="learning rate"):
        _core.Learner(*policy_layers(net), lr=float("nan"))
    with pytest.raises(ValueError, match="parameter tensors"):
        learner.set_parameters([np.zeros(3, np.float32)])
    before = [np.asarray(v).copy() for v in learner.parameters()]
    with pytest.raises(ValueError, match="parameter tensor"):
        learner.load_layers(*policy_layers(BasicPolicy(10, 3, 16, [8])))
    with pytest.raises(ValueError, match="log_std must be given exactly"):
        learner.load_layers(*policy_layers(net), log_std=[0.0, 0.0, 0.0])
    assert all(np.array_equal(a, np.asarray(b)) for a, b in zip(before, learner.parameters()))
    # Nothing above changed the learner: it still steps.
    out = learner.ppo_step(idx, counts, acts, none, masks, f, f, f, f, np.arange(n), **kw)
    assert math.isfinite(out["value_loss"])


def _train(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "twisterl", "train", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=600)


def test_a_run_resumes_across_learners_from_the_cli(tmp_path):
    """Two iterations with one learner, then two more resumed with the same learner or with
    the other: the same run, to float rounding (a resumed run resets its envs, so it is
    compared with a resumed run)."""
    cfg = tmp_path / "small.json"
    cfg.write_text('{"num_envs": 32, "num_steps": 16, "embedding_size": 32, "common_layers": [32], '
                   '"update_epochs": 2, "num_minibatches": 2}')
    env = ROOT / "examples" / "puzzle.twl"
    for first, then in (("rust", "torch"), ("torch", "rust")):
        curves = []
        for after in (first, then):
            run = tmp_path / f"{first}-{after}"
            r = _train(str(env), "--config", str(cfg), "--iterations", "2", "--learner", first, "--out", str(run),
                       cwd=tmp_path)
            assert r.returncode == 0, r.stderr
            assert f"updates in {first}" in r.stdout
            r = _train("--resume", str(run), "--iterations", "2", "--learner", after, cwd=tmp_path)
            assert r.returncode == 0, r.stderr
            assert f"updates in {after}" in r.stdout and "resuming" in r.stdout
            curves.append(list(csv.DictReader((run / "metrics.csv").open())))
        a, b = curves
        assert len(a) == len(b) == 4
        for x, y in zip(a, b):
            assert x["iteration"] == y["iteration"] and x["difficulty"] == y["difficulty"]
            for key in ("policy_loss", "value_loss", "entropy"):
                assert abs(float(x[key]) - float(y[key])) < 1e-4, (first, then, x["iteration"], key)
    r = _train(str(env), "--learner", "jax", cwd=tmp_path)
    assert r.returncode != 0 and "invalid choice: 'jax'" in r.stderr


NO_TORCH = """
import sys
for name in ("torch", "matplotlib", "tensorboard", "rich"):  # what the train extra brings
    sys.modules[name] = None
from twisterl.cli import main
code = main(sys.argv[1:])
assert not [m for m in sys.modules if m.split(".")[0] == "torch" and sys.modules[m] is not None]
sys.exit(code)
"""


def test_the_8_puzzle_trains_to_difficulty_32_without_torch(tmp_path):
    """As `pip install twisterl` without the train extra: torch, TensorBoard, matplotlib and
    rich cannot be imported; the default run reaches difficulty 32, and `eval` reads it."""
    run = tmp_path / "run"
    r = subprocess.run([sys.executable, "-c", NO_TORCH, "train", str(ROOT / "examples" / "puzzle.twl"), "--out",
                        str(run), "--time-limit", "240"], cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr + r.stdout
    assert "updates in rust" in r.stdout
    rows = list(csv.DictReader((run / "metrics.csv").open()))
    assert int(rows[-1]["difficulty"]) == 32, r.stdout[-2000:]
    assert not (run / "tensorboard").exists() and not (run / "progress.png").exists()
    r = subprocess.run([sys.executable, "-c", NO_TORCH, "eval", str(run), "--episodes", "50", "--difficulty", "32"],
                       cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    assert "success" in r.stdout


def test_the_numpy_networks_are_torch_s_networks():
    """Names, shapes and forward passes of `NumpyPolicy` match the torch modules for every
    built-in kind, and fresh weights stay within torch's initialisation bounds."""
    from twisterl import _core
    from twisterl.train.nets import build_policy
    from twisterl.train.netspec import NumpyPolicy, describe_policy
    descs = [describe_policy("sparse", [30], 5, False, 32, [16, 8]),
             describe_policy("planes", [2, 4, 5], 6, False, 32, [16], [4, 3]),
             describe_policy("dense", [10], 4, False, 16, [16], network="actor_critic", activation="gelu",
                             norm_obs=True),
             describe_policy("dense", [7], 3, True, 16, [16], init_log_std=-0.5)]
    x = np.random.default_rng(0)
    for desc in descs:
        net, mine = build_policy(desc), NumpyPolicy(desc, seed=3)
        theirs = {k: v.detach().numpy() for k, v in net.state_dict().items()}
        assert list(theirs) == list(mine.state_dict()), desc["kind"]
        assert all(theirs[k].shape == mine.state[k].shape for k in theirs)
        for name, value in mine.state.items():
            if name.endswith(".weight") and desc["kind"] in ("basic", "conv"):
                fan_in = int(np.prod(value.shape[1:])) if value.ndim > 2 or name != "embedding.weight" \
                    else value.shape[0]
                assert np.abs(value).max() <= 1 / np.sqrt(fan_in) + 1e-7, name
        if desc["kind"] == "actor_critic":
            w = mine.state["policy_head.0.weight"]
            gram = w.T @ w if w.shape[0] >= w.shape[1] else w @ w.T
            assert np.allclose(gram, 2.0 * np.eye(gram.shape[0]), atol=1e-5)  # orthogonal, gain sqrt(2)
        mine.load_state_dict(theirs)
        obs = x.normal(size=(5, mine.obs_size)).astype(np.float32)
        a = _core.Policy(*policy_layers(net)).forward_dense(obs)
        b = _core.Policy(*mine.layers()).forward_dense(obs)
        assert all(np.array_equal(p, q) for p, q in zip(a, b)), desc["kind"]
    with pytest.raises(ValueError, match="do not fit"):
        NumpyPolicy(descs[0]).load_state_dict({"embedding.weight": np.zeros(3)})
