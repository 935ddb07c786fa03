"""The auto config's rules (on synthetic probes and on real envs), its printout and record
in config.json, resume without re-deriving, observation normalisation, and intrinsic
rewards: the bonuses' mechanics, that they stay out of reported returns, and that they
make a sparse env learnable."""

from __future__ import annotations

import io
import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from twisterl.train import auto  # noqa: E402
from twisterl.train.auto import Facts, run_rules  # noqa: E402
from twisterl.train.checkpoints import make_ppo_config  # noqa: E402
from twisterl.train.driver import train  # noqa: E402
from twisterl.train.intrinsic import CountBonus, RNDBonus, intrinsic_advantages  # noqa: E402
from twisterl.train.nets import build_policy, describe_policy, to_rust  # noqa: E402
from twisterl.train.probe import Profile  # noqa: E402
from twisterl.train.ppo import PPO  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]

# A corridor whose only reward is at its far end: random walks almost never reach it
# within the step limit (a sparse-reward env nobody tuned for).
CHAIN = """
env Chain
param length: int = 16
state pos: int in 0..length
action left  { pos = max(pos - 1, 0) }
action right { pos = min(pos + 1, length - 1) }
success  pos == length - 1
done     pos == length - 1
truncate steps >= 2 * length
reward   if pos == length - 1 then 1.0 else 0.0
observe onehot(pos)
"""


def profile(**kw) -> Profile:
    """A synthetic probe: a dense, well-rewarded env unless `kw` says otherwise."""
    base = dict(name="Synthetic", obs_kind="dense", obs_size=4, obs_ones=0, num_actions=2, continuous=False,
                players=1, has_truncate=True, has_success=False, difficulty=1, episodes=64, mean_length=20.0,
                running=0, success_rate=float("nan"), distinct_returns=0.9, reward_max_abs=1.0, step_reward=1.0,
                step_reward_share=1.0, end_reward_only=False, distinct_obs=1.0, obs_scale=(0.5, 2.0))
    return Profile(**{**base, **kw})


def chosen(facts: Facts, overrides: dict | None = None, base: dict | None = None) -> dict:
    return {k: v for c in run_rules(facts, overrides or {}, base or {}) for k, v in c.values.items()}


def test_rules_on_synthetic_probes():
    dense = chosen(Facts(profile()))
    assert dense["network"] == "actor_critic" and dense["embedding_size"] == 64 and "intrinsic" not in dense
    assert dense["num_envs"] * dense["num_steps"] == auto.SMALL_BATCH and "norm_reward" not in dense
    # Longer episodes, a higher gamma; rewards only at the end, the highest.
    gammas = [chosen(Facts(profile(mean_length=h)))["gamma"] for h in (10, 60, 300)]
    assert gammas == sorted(gammas) and gammas[0] < gammas[-1] <= auto.GAMMA_RANGE[1]
    assert chosen(Facts(profile(end_reward_only=True, step_reward=0.0)))["gamma"] == auto.GAMMA_RANGE[1]
    # Sparse rewards: a count bonus where states recur, RND where they do not.
    table = profile(obs_kind="sparse", obs_size=64, obs_ones=1, has_success=True, success_rate=0.0,
                    distinct_obs=0.02)
    assert chosen(Facts(table))["intrinsic"] == "count"
    assert chosen(Facts(replace(table, obs_ones=9, distinct_obs=0.6)))["intrinsic"] == "rnd"
    assert chosen(Facts(profile(distinct_returns=0.0)))["intrinsic"] == "rnd"
    # A table whose states recur gets the count bonus even where rewards are not sparse; a
    # table whose states do not recur, or any other observation, does not.
    assert chosen(Facts(replace(table, success_rate=0.3)))["intrinsic"] == "count"
    assert "intrinsic" not in chosen(Facts(replace(table, success_rate=0.3, distinct_obs=0.5)))
    assert "intrinsic" not in chosen(Facts(replace(table, success_rate=0.3, obs_ones=9)))
    assert "intrinsic" not in chosen(Facts(profile(success_rate=0.3)))
    assert "intrinsic" not in chosen(Facts(replace(table, players=2)))
    # Combinatorial one-hots: 4 units a feature, 64 to 512 (81 features: the 512/[256] default).
    puzzle_like = replace(table, obs_size=81, obs_ones=9, success_rate=0.3)
    assert (chosen(Facts(puzzle_like))["embedding_size"], chosen(Facts(puzzle_like))["common_layers"]) == (512, [256])
    assert chosen(Facts(replace(puzzle_like, obs_size=50)))["embedding_size"] == 256
    assert "num_envs" not in chosen(Facts(puzzle_like))  # a large network keeps the large batch
    # Large rewards are normalised; badly scaled dense features too.
    assert chosen(Facts(profile(reward_max_abs=20.0)))["norm_reward"] is True
    assert chosen(Facts(profile(obs_scale=(0.005, 0.05))))["norm_obs"] is True
    # Entropy: 0.01 per ln 4 nats.
    assert chosen(Facts(profile(num_actions=4)))["ent_coef"] == pytest.approx(0.01)
    assert chosen(Facts(profile(num_actions=16)))["ent_coef"] == pytest.approx(0.005)
    # A curriculum's horizon is its hardest level's.
    hard = chosen(Facts(puzzle_like, replace(puzzle_like, mean_length=300.0)))["gamma"]
    assert hard > chosen(Facts(puzzle_like))["gamma"]


def test_explicit_keys_win_and_every_choice_has_a_reason():
    facts = Facts(profile(distinct_returns=0.0, obs_scale=(0.005, 0.05)))
    choices = run_rules(facts, {"gamma": 0.9, "intrinsic": "none", "embedding_size": 32}, {})
    keys = {k for c in choices for k in c.values}
    assert not keys & {"gamma", "intrinsic", "embedding_size"} and "network" in keys
    for c in choices:
        line = c.line()
        assert line.startswith("auto: ") and " because " in line and len(c.reason) > 30
    # An explicit `network` other than actor_critic: no norm_obs (it needs that network).
    assert "norm_obs" not in chosen(facts, {"network": "auto"})


def test_real_envs_get_the_rules_their_probes_call_for(compiled):
    frozen = compiled("frozenlake")
    cart = compiled("cartpole")
    chosen_f, _, facts_f = auto.auto_config(frozen, {"map_name": "MAP_8X8"}, {}, {})
    chosen_c, _, facts_c = auto.auto_config(cart, {}, {}, {})
    assert facts_f.start.signal < auto.SPARSE_SIGNAL and chosen_f["intrinsic"] == "count"
    assert chosen_f["gamma"] == auto.GAMMA_RANGE[1]  # its only reward is the goal's
    assert "intrinsic" not in chosen_c and chosen_c["gamma"] < chosen_f["gamma"]
    assert chosen_c["network"] == "actor_critic" and chosen_c["norm_obs"] is True
    puzzle = compiled("puzzle")
    chosen_p, _, facts_p = auto.auto_config(puzzle, {}, {}, {})
    assert facts_p.hardest is not None  # random play differs at diff_max: a curriculum
    defaults = make_ppo_config({})
    # The 8-puzzle keeps the config it was measured with (P1).
    assert make_ppo_config(chosen_p) == defaults


def test_train_prints_saves_and_resume_does_not_rederive(build_cache, tmp_path, monkeypatch):
    stream = io.StringIO()
    run = tmp_path / "run"
    eight = {"map_name": "MAP_8X8"}
    train(str(ROOT / "examples" / "frozenlake.twl"), out=str(run), params=eight, iterations=1, stream=stream)
    text = stream.getvalue()
    assert "auto: intrinsic count because only " in text and "auto: gamma 0.999 because" in text
    saved = json.loads((run / "config.json").read_text())
    assert saved["config"]["intrinsic"] == "count" and saved["config"]["gamma"] == 0.999
    assert "sparse rewards" in saved["auto"]["intrinsic"] and saved["probe"]["start"]["episodes"] > 0
    # An explicit key wins, and is not printed as a choice.
    cfg = tmp_path / "cfg.json"
    cfg.write_text('{"gamma": 0.9, "intrinsic": "none"}')
    stream = io.StringIO()
    train(str(ROOT / "examples" / "frozenlake.twl"), out=str(tmp_path / "mine"), config_path=str(cfg),
          params=eight, iterations=1, stream=stream)
    mine = json.loads((tmp_path / "mine" / "config.json").read_text())
    assert mine["config"]["gamma"] == 0.9 and mine["config"]["intrinsic"] == "none"
    assert "auto: gamma" not in stream.getvalue() and "auto: intrinsic" not in stream.getvalue()
    assert "gamma" not in mine["auto"]

    # Resume: the saved config, no probe.
    def no_probe(*args, **kwargs):
        raise AssertionError("resume must not probe the env")
    monkeypatch.setattr(auto, "probe_env", no_probe)
    result = train(None, resume=str(run), iterations=1)
    assert len(result.history) == 1
    assert json.loads((run / "config.json").read_text())["config"] == saved["config"]


def test_obs_norm_exports_and_trains(compiled):
    desc = describe_policy("dense", (3,), 2, False, 16, [16], activation="tanh", network="actor_critic", norm_obs=True)
    net = build_policy(desc)
    from twisterl.train.nets import ObsNorm
    [norm] = [m for m in net.modules() if isinstance(m, ObsNorm)]
    norm.set_stats(np.array([1.0, -2.0, 0.5]), np.array([4.0, 0.01, 1.0]))
    x = np.random.default_rng(0).normal(size=(7, 3)).astype(np.float32) * [2, 0.1, 1] + [1, -2, 0.5]
    t_logits, t_values = net(torch.from_numpy(x.astype(np.float32)))
    r_logits, r_values = to_rust(net).forward_dense(x.astype(np.float32))
    np.testing.assert_allclose(r_logits, t_logits.detach().numpy(), atol=1e-4)
    np.testing.assert_allclose(r_values, t_values.detach().numpy(), atol=1e-4)
    with pytest.raises(ValueError, match="norm_obs needs"):
        describe_policy("sparse", (81,), 4, False, 64, [64], norm_obs=True)
    cart = compiled("cartpole")
    cfg = make_ppo_config({"num_envs": 8, "num_steps": 32, "network": "actor_critic", "embedding_size": 16,
                           "common_layers": [16], "norm_obs": True})
    for learner in ("torch", "rust"):
        ppo = PPO(cart, make_ppo_config({**cfg.__dict__, "learner": learner}))
        ppo.iterate()
        inv_std = np.asarray(ppo.policy.state_dict()["trunk.0.inv_std"])
        assert not np.allclose(inv_std, 1.0) and ppo.progress()["obs_count"] > 200, learner
        # The runtime's twin normalises as the network does.
        x = np.random.default_rng(1).normal(size=(5, 4)).astype(np.float32)
        from twisterl.train.networks import runtime_policy
        np.testing.assert_allclose(ppo.runtime_policy().forward_dense(x)[0], runtime_policy(ppo.policy).forward_dense(x)[0],
                                   atol=1e-6)


def test_bonuses_fade_with_visits():
    count = CountBonus(4, seed=0)
    rows = {"obs_indices": np.array([[[1]], [[1]], [[2]]], dtype=np.uint32),
            "obs_counts": np.ones((3, 1), dtype=np.uint32)}
    first = count.score(rows)
    assert first[0] == first[1] == pytest.approx(1 / np.sqrt(2)) and first[2] == 1.0
    again = count.score(rows)
    assert np.all(again < first) and again[2] == pytest.approx(1 / np.sqrt(2))
    rnd = RNDBonus(3, seed=0)
    familiar = {"obs": np.tile(np.array([[0.5, -1.0, 2.0]], dtype=np.float32), (256, 1))}
    before = rnd.score(familiar).mean()
    for _ in range(30):
        rnd.learn(familiar)
    assert rnd.score(familiar).mean() < 0.5 * before


def _gae(rewards, values, last_values, dones, gamma, lam):
    adv = np.zeros_like(rewards)
    running = np.zeros(rewards.shape[1])
    for t in range(rewards.shape[0] - 1, -1, -1):
        nxt = last_values if t == rewards.shape[0] - 1 else values[t + 1]
        delta = rewards[t] + gamma * nxt * ~dones[t] - values[t]
        running = delta + gamma * lam * running * ~dones[t]
        adv[t] = running
    return adv


def test_bonus_advantages_equal_gae_of_the_summed_rewards():
    rng = np.random.default_rng(3)
    r, v, b = rng.normal(size=(3, 20, 5))
    last, dones = rng.normal(size=5), rng.random((20, 5)) < 0.2
    whole = _gae(r + b, v, last, dones, 0.97, 0.9)
    np.testing.assert_allclose(whole, _gae(r, v, last, dones, 0.97, 0.9) + intrinsic_advantages(b, dones, 0.97, 0.9),
                               atol=1e-5)


@pytest.fixture(scope="module")
def chain(build_cache, tmp_path_factory):
    import twisterl
    path = tmp_path_factory.mktemp("chain") / "chain.twl"
    path.write_text(CHAIN)
    return twisterl.compile(path)


def test_intrinsic_reward_stays_out_of_reported_returns(chain):
    base = {"num_envs": 16, "num_steps": 32, "embedding_size": 16, "common_layers": [16], "seed": 5}
    plain = PPO(chain, make_ppo_config(base)).iterate()
    bonus = PPO(chain, make_ppo_config({**base, "intrinsic": "count", "intrinsic_coef": 10.0})).iterate()
    # The same first rollout (same seed, same initial policy): the same reported results.
    assert (bonus.mean_return, bonus.success_rate, bonus.episodes) == \
        (plain.mean_return, plain.success_rate, plain.episodes)
    assert np.isnan(plain.intrinsic) and bonus.intrinsic > 0
    assert bonus.value_loss != plain.value_loss  # what was learnt from did change


def test_count_bonus_solves_a_sparse_corridor_plain_ppo_does_not(chain):
    # 32 cells and 64 steps: a random walk reaches the end in about 1 episode of 10,000, so
    # plain PPO almost never sees the reward, whatever its initial weights.
    cfg = {"num_envs": 32, "num_steps": 32, "embedding_size": 32, "common_layers": [32], "learning_rate": 1e-3,
           "gamma": 0.99, "gae_lambda": 0.95, "update_epochs": 4, "seed": 1}
    results = {}
    for intrinsic in ("none", "count"):
        ppo = PPO(chain, make_ppo_config({**cfg, "intrinsic": intrinsic}), {"length": 32})
        history = ppo.train(iterations=25)
        results[intrinsic] = np.nanmean([h.success_rate for h in history[-5:]])
    assert results["count"] >= 0.8 and results["count"] > results["none"] + 0.4, results


def test_large_tables_get_a_batch_that_visits_each_state():
    """A table of S states gets about 16 transitions a state an iteration (and the steadier
    rate that batch size needs); small tables keep the small batch."""
    def table(states):
        return profile(obs_kind="sparse", obs_size=states, obs_ones=1, has_success=True, success_rate=0.3,
                       mean_length=150.0)
    for states in (48, 64):
        small = chosen(Facts(table(states)))
        assert small["num_envs"] * small["num_steps"] == auto.SMALL_BATCH
        assert small["learning_rate"] == auto.SMALL_NET_UPDATE["learning_rate"]
    for states, rows in ((65, 2048), (500, 8192), (3000, 65536), (10 ** 6, auto.TABLE_BATCH_MAX)):
        big = chosen(Facts(table(states)))
        assert big["num_envs"] * big["num_steps"] == rows, states
        assert big["num_steps"] == 128 and big["learning_rate"] == auto.TABLE_RATE
        assert big["update_epochs"] == auto.SMALL_NET_UPDATE["update_epochs"]
    # Not a table: several ones per observation keep the embedding network's own batch.
    assert "num_envs" not in chosen(Facts(replace(table(500), obs_ones=9)))
    # The user's batch wins.
    assert chosen(Facts(table(500)), {"num_envs": 4})["num_steps"] == 128
    assert "num_envs" not in chosen(Facts(table(500)), {"num_envs": 4})


def test_self_play_keeps_its_policy_mixed_and_learns_from_symmetries():
    game = profile(obs_kind="sparse", obs_size=126, obs_ones=42, num_actions=7, players=2, symmetries=1)
    got = chosen(Facts(game))
    assert {k: got[k] for k in auto.SELF_PLAY_UPDATE} == auto.SELF_PLAY_UPDATE and got["twists"] is True
    assert "twists" not in chosen(Facts(replace(game, symmetries=0)))
    assert chosen(Facts(game), {"ent_coef": 0.0})["learning_rate"] == auto.SELF_PLAY_UPDATE["learning_rate"]
    assert "ent_coef" not in chosen(Facts(game), {"ent_coef": 0.0})
    # Single-player envs keep their own rules.
    assert chosen(Facts(replace(game, players=1)))["ent_coef"] != auto.SELF_PLAY_UPDATE["ent_coef"]
    assert "twists" not in chosen(Facts(replace(game, players=1)))
