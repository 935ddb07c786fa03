"""The runtime core's search and networks in WebAssembly: the same as natively.

`Env.search` in the JavaScript package is the core's search driver on a statically linked
env, so for the same state and seed it must visit exactly what `twisterl.mcts` visits
natively: pure MCTS on a two-player game and on a game with chance (open-loop replays
reseeded per simulation), and AlphaZero's PUCT on a trained puzzle policy. And every
network `twisterl.train.nets.to_rust` takes must run in the package's `Policy` with the native
logits and values (to 1e-5): embedding bag, conv, residual blocks, LayerNorm, GELU,
actor-critic and Gaussian.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from wasm_support import ROOT, exported, node, require_tools, trained_puzzle

SEARCH = ROOT / "tests" / "wasm" / "search.mjs"
LOGITS = ROOT / "tests" / "wasm" / "logits.mjs"


@pytest.fixture(scope="module")
def tools(build_cache):
    return require_tools()


def played(cls, seed: int, moves: int, difficulty: int = 0):
    """A native env after `moves` random legal moves from a seeded reset, and the moves."""
    env = cls(seed=seed, difficulty=difficulty)
    _, info = env.reset()
    rng = np.random.default_rng(seed)
    actions = []
    for _ in range(moves):
        action = int(rng.choice(np.flatnonzero(info["action_mask"])))
        _, _, term, trunc, info = env.step(action)
        actions.append(action)
        assert not (term or trunc), "pick fewer moves: the episode ended"
    return env, actions


def run_search(b, cases, tmp_path) -> list:
    job = tmp_path / "search.json"
    job.write_text(json.dumps({"module": str(b.out_dir / "pkg" / "env.js"), "wasm": str(b.wasm), "cases": cases}))
    return json.loads(node(SEARCH, str(job)))


def assert_same_search(got: dict, native, tolerance: float = 0.0) -> None:
    """The same visits and action; values and priors the same to `tolerance` (network
    outputs differ in float rounding: the native kernels use AVX2 and FMA)."""
    assert got["visits"] == native.visits.tolist()
    assert got["action"] == native.action
    assert got["value"] == pytest.approx(native.value, rel=0, abs=tolerance)
    np.testing.assert_allclose(got["priors"], native.priors, atol=tolerance)
    q = [math.nan if v is None else v for v in got["q"]]
    np.testing.assert_allclose(q, native.q, atol=tolerance)
    assert got["before"] == got["after"], "the search changed the env"


@pytest.mark.parametrize("name, moves", [("tictactoe", 2), ("game2048", 5)])
def test_pure_mcts_in_wasm_visits_what_native_visits(tools, compiled, tmp_path, name, moves):
    import twisterl
    b = exported(name, search=True)
    assert "search(" in (b.out_dir / "pkg" / "env.d.ts").read_text()
    cls = compiled(name)
    cases, natives = [], []
    for seed, sims, leaf in [(0, 60, 1), (7, 150, 4)]:
        env, actions = played(cls, seed, moves)
        natives.append(twisterl.mcts(env, simulations=sims, seed=seed + 100, leaf_batch=leaf))
        cases.append({"seed": seed, "difficulty": 0, "actions": actions,
                      "options": {"kind": "rollout", "simulations": sims, "seed": seed + 100, "leafBatch": leaf}})
    for got, native in zip(run_search(b, cases, tmp_path), natives):
        assert sum(got["visits"]) > 0
        assert_same_search(got, native)


def test_alphazero_search_in_wasm_visits_what_native_visits(tools, compiled, tmp_path):
    pytest.importorskip("torch")
    import twisterl
    run = trained_puzzle()
    b = exported("puzzle", run)
    cls = compiled("puzzle")
    env, actions = played(cls, 3, 1, difficulty=4)
    native = twisterl.mcts(env, policy=str(run), simulations=80, seed=5, dirichlet_frac=0.25)
    [got] = run_search(b, [{"seed": 3, "difficulty": 4, "actions": actions,
                            "options": {"simulations": 80, "seed": 5, "dirichletFrac": 0.25}}], tmp_path)
    assert_same_search(got, native, tolerance=1e-5)


def networks():
    """One of each network kind `to_rust` takes, with random weights: (name, net, sparse)."""
    import torch
    from torch import nn

    from twisterl.train.nets import ActorCritic, BasicPolicy, ConvPolicy, GaussianPolicy, ResidualBlock

    class Custom(nn.Module):
        def __init__(self, trunk, width, actions, obs_size=None, obs_shape=None):
            super().__init__()
            self.trunk, self.obs_size, self.obs_shape = trunk, obs_size, obs_shape
            self.policy_head = nn.Sequential(ResidualBlock(width, "tanh"), nn.Linear(width, actions))
            self.value_head = nn.Linear(width, 1)

    torch.manual_seed(0)
    gaussian = GaussianPolicy(5, 2, hidden=(8, 8))
    with torch.no_grad():
        gaussian.log_std.copy_(torch.tensor([-0.5, 0.3]))
    strided = nn.Sequential(nn.Conv2d(2, 3, kernel_size=(3, 2), stride=(1, 2), padding=(1, 0)), nn.ReLU(),
                            nn.Flatten(), nn.Linear(3 * 4 * 2, 6), nn.GELU(approximate="tanh"))
    normed = nn.Sequential(nn.Linear(7, 8), nn.LayerNorm(8), ResidualBlock(8, "gelu"), nn.Tanh())
    return [
        ("embedding bag", BasicPolicy(20, 4, embedding_size=16, common_layers=(12,)), True),
        ("basic, gelu", BasicPolicy(9, 3, embedding_size=8, common_layers=(8, 8), activation="gelu"), False),
        ("conv", ConvPolicy((2, 4, 4), 5, channels=(4, 3), common_layers=(8,)), False),
        ("strided conv", Custom(strided, 6, 3, obs_shape=(2, 4, 4)), False),
        ("layernorm, residual", Custom(normed, 8, 4, obs_size=7), False),
        ("actor-critic", ActorCritic(6, 3, hidden=(8, 8)), False),
        ("gaussian", gaussian, False),
    ]


def test_every_exportable_network_runs_in_wasm_with_native_logits(tools, tmp_path):
    pytest.importorskip("torch")
    from twisterl.train.nets import policy_layers, to_rust
    from twisterl.wasm.export import save_policy
    b = exported("puzzle", trained_puzzle())
    rng = np.random.default_rng(0)
    jobs, natives = [], []
    for k, (name, net, sparse) in enumerate(networks()):
        inputs = policy_layers(net)[0]
        path = tmp_path / f"net{k}.safetensors"
        save_policy(net, path, {"env": name})
        rust = to_rust(net)
        if sparse:
            dense = (rng.random((6, inputs)) < 0.2).astype(np.float32)
            counts = dense.sum(1).astype(np.uint32)
            idx = np.zeros((6, max(1, int(counts.max()))), dtype=np.uint32)
            for r, row in enumerate(dense):
                ones = np.flatnonzero(row)
                idx[r, :len(ones)] = ones
            logits, values = rust.forward_sparse(idx, counts)
        else:
            dense = rng.normal(size=(6, inputs)).astype(np.float32)
            logits, values = rust.forward_dense(dense)
        gaussian = getattr(net, "log_std", None) is not None
        jobs.append({"file": str(path), "obs": dense.tolist(), "values": gaussian})
        natives.append((name, logits, values))
    job = tmp_path / "logits.json"
    job.write_text(json.dumps({"module": str(b.out_dir / "pkg" / "env.js"), "wasm": str(b.wasm), "policies": jobs}))
    results = json.loads(node(LOGITS, str(job)))
    for (name, logits, values), got in zip(natives, results):
        np.testing.assert_allclose(got["logits"], logits, rtol=1e-5, atol=1e-5, err_msg=name)
        np.testing.assert_allclose(got["values"], values, rtol=1e-5, atol=1e-5, err_msg=name)
        if "actValues" in got:
            np.testing.assert_allclose(got["actValues"], logits, rtol=1e-5, atol=1e-5, err_msg=name)


def test_a_package_without_policy_or_search_has_no_search(tools):
    b = exported("puzzle")
    assert "search(" not in (b.out_dir / "pkg" / "env.d.ts").read_text()
