"""Self-play PPO for two-player zero-sum games: the sign-chained GAE, the opponent's rows,
single-player collection unchanged, and a short tic-tac-toe run by the CLI that learns to
beat random play."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import twisterl  # noqa: E402
from twisterl import _core  # noqa: E402
from twisterl.train.ppo import PPO, Config, join_rollouts  # noqa: E402
from twisterl.train.ppo_config import make_config  # noqa: E402
from twisterl.train.nets import BasicPolicy, to_rust  # noqa: E402
from twl_games import THREE_PLAYERS  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]

# Two players; a move either passes the turn (k = 0: t + 1, k = 2: t + 2) or keeps it (k = 1:
# t + 1), so both signs occur. The mover gets +0.1 t, the other -0.1 t (zero-sum); episodes
# end at t >= 6 (terminated) or after 4 moves (truncated).
SIGN_GAME = """
env SignChain
players 2
state t: int
state last: int
action move(k in 0..3) {
    last = player
    t = t + (if k == 2 then 2 else 1)
    if k != 1 { next_player() }
}
reset {
    t = 0
    last = 0
}
done t >= 6
truncate steps >= 4
reward[p] if p == last then 0.1 * float(t) else -0.1 * float(t)
observe f32([float(t), float(player)])
"""



def _compile(tmp_path: Path, name: str, source: str):
    path = tmp_path / f"{name}.twl"
    path.write_text(source)
    return twisterl.compile(path)


def _check_sign_chained_gae(data: dict, net, gamma: float, lam: float) -> None:
    """Recompute the advantages of a SIGN_GAME rollout by hand from its rewards, values,
    dones, actions and players (all rows but the last, whose bootstrap state is not in it)."""
    obs, actions, player = data["obs"], data["actions"], data["player"]
    r, v, d = data["rewards"], data["values"], data["dones"]
    adv, ret = data["advantages"], data["returns"]
    steps = r.shape[0]
    assert data["learn"].all()  # no opponent: every move is the learner's
    # The mover is the one the observation names, and its reward is its own (+0.1 t after the move).
    np.testing.assert_array_equal(player, obs[..., 1].astype(np.int64))
    t_after = obs[..., 0] + np.where(actions == 2, 2, 1)
    np.testing.assert_allclose(r, 0.1 * t_after, rtol=1e-6)
    # The next mover after each step: the same player after k = 1, the other otherwise.
    sign = np.where(actions == 1, 1.0, -1.0)
    seen = d[:-1] == 0
    np.testing.assert_array_equal(sign[:-1][seen], np.where(player[1:] == player[:-1], 1.0, -1.0)[seen])
    terminated = t_after >= 6
    truncated = d & ~terminated
    assert terminated.any() and truncated.any() and (sign > 0).any() and (sign < 0).any()
    # A truncated episode bootstraps from the learner's value of its final state, from the
    # next mover's view (the state before the reset: t_after and the next player).
    final_obs = np.stack([t_after, np.where(actions == 1, player, 1 - player)], axis=-1).astype(np.float32)
    with torch.no_grad():
        final_v = net(torch.from_numpy(final_obs.reshape(-1, 2)))[1].numpy().reshape(steps, -1)
    for k in range(r.shape[1]):
        for t in range(steps - 2, -1, -1):
            if terminated[t, k]:
                expected = r[t, k] - v[t, k]
            elif truncated[t, k]:
                expected = r[t, k] + gamma * sign[t, k] * final_v[t, k] - v[t, k]
            else:
                delta = r[t, k] + gamma * sign[t, k] * v[t + 1, k] - v[t, k]
                expected = delta + gamma * lam * sign[t, k] * adv[t + 1, k]
            assert adv[t, k] == pytest.approx(expected, abs=2e-5), (t, k)
    np.testing.assert_allclose(ret, adv + v, atol=1e-6)


def test_two_player_gae_chains_with_the_sign_of_the_next_mover(tmp_path, build_cache):
    cls = _compile(tmp_path, "sign_chain", SIGN_GAME)
    vec = cls.vector(8, seed=3)
    vec.reset()
    torch.manual_seed(0)
    net = BasicPolicy(2, 3, 16, (16,))
    gamma, lam, steps = 0.9, 0.7, 30
    _check_sign_chained_gae(_core.collect(vec._batch, to_rust(net), steps, 5, gamma, lam), net, gamma, lam)
    # Consecutive collections joined into one rollout (as a time-limited iteration does) chain
    # across their boundaries with the sign too.
    parts = [_core.collect(vec._batch, to_rust(net), n, 9 + n, gamma, lam) for n in (7, 5, 11)]
    _check_sign_chained_gae(join_rollouts(parts, gamma, lam), net, gamma, lam)
    # The return of a whole terminated episode, chained by hand: G_t = r_t + gamma s_t G_{t+1}.
    with_lam1 = _core.collect(vec._batch, to_rust(net), steps, 6, gamma, 1.0)
    r1, d1, a1 = with_lam1["rewards"], with_lam1["dones"], with_lam1["actions"]
    o1 = with_lam1["obs"]
    term1 = (o1[..., 0] + np.where(a1 == 2, 2, 1)) >= 6
    checked = 0
    for k in range(r1.shape[1]):
        ends = np.flatnonzero(d1[:, k])
        starts = [0, *(ends[:-1] + 1)]
        for s0, e in zip(starts, ends):
            if s0 == 0 or not term1[e, k]:
                continue  # a whole episode, ended by termination
            g = 0.0
            for t in range(e, s0 - 1, -1):
                g = r1[t, k] + (gamma * (1.0 if a1[t, k] == 1 else -1.0) * g if t < e else 0.0)
                assert with_lam1["returns"][t, k] == pytest.approx(g, abs=2e-5)
                checked += 1
    assert checked > 0


def test_opponent_rows_are_not_learnt_from(compiled):
    cls = compiled("tictactoe")
    n = 16
    vec = cls.vector(n, seed=1)
    vec.reset()
    torch.manual_seed(1)
    learner = BasicPolicy(27, 9, 32, (32,))
    opponent = BasicPolicy(27, 9, 32, (32,))
    with torch.no_grad():  # the opponent always plays the lowest legal cell
        opponent.policy_head[-1].weight.zero_()
        opponent.policy_head[-1].bias.copy_(-10.0 * torch.arange(9.0))
    seats = np.array([k % 2 for k in range(n)], dtype=np.int64)
    first = seats.copy()
    data = _core.collect(vec._batch, to_rust(learner), 40, 2, 0.99, 0.95, deterministic=True,
                         opponent=to_rust(opponent), seats=seats, pool_prob=1.0)
    learn, player, dones, actions, masks = data["learn"], data["player"], data["dones"], data["actions"], data["masks"]
    assert set(np.unique(seats)) <= {0, 1}
    lowest = masks.argmax(-1)
    for k in range(n):
        ends = np.flatnonzero(dones[:, k])
        starts = [0, *(ends + 1)]
        for i, s0 in enumerate(starts):
            e = ends[i] + 1 if i < len(ends) else dones.shape[0]
            if s0 >= e:
                continue
            ln, pl = learn[s0:e, k], player[s0:e, k]
            seat = first[k] if i == 0 else pl[ln][0] if ln.any() else 1 - pl[0]
            # Only the learner's seat is learnt from, within the whole episode.
            np.testing.assert_array_equal(ln, pl == seat)
            np.testing.assert_array_equal(actions[s0:e, k][~ln], lowest[s0:e, k][~ln])
    assert (~learn).any() and learn.any()
    assert (actions[learn] != lowest[learn]).any()  # the learner is not the opponent
    # Without the pool's draw (pool_prob 0) every new episode is self-play.
    seats = np.zeros(n, dtype=np.int64)
    data = _core.collect(vec._batch, to_rust(learner), 40, 3, 0.99, 0.95, opponent=to_rust(opponent), seats=seats,
                         pool_prob=0.0)
    assert (seats == -1).all()
    later = np.cumsum(data["dones"], axis=0) > 0
    assert data["learn"][1:][later[:-1]].all()


def test_single_player_collection_is_the_usual_gae(compiled):
    """Players 1: sign +1 everywhere, so advantages are exactly the usual GAE (the same float32
    operations in the same order), every row is learnt from and player 0 moves."""
    cls = compiled("puzzle")
    vec = cls.vector(16, seed=0, difficulty=4)
    vec.reset()
    torch.manual_seed(0)
    net = BasicPolicy(81, 4, 32, (32,))
    data = _core.collect(vec._batch, to_rust(net), 60, 7, 0.9, 0.8, twists=list(vec.twists().values()))
    assert data["learn"].all() and (data["player"] == 0).all()
    r, v, d, adv = data["rewards"], data["values"], data["dones"], data["advantages"]
    g, gl = np.float32(0.9), np.float32(0.9) * np.float32(0.8)
    for t in range(r.shape[0] - 2, -1, -1):
        delta = np.where(d[t], r[t] + g * np.float32(0.0) - v[t], r[t] + g * v[t + 1] - v[t])
        expected = np.where(d[t], delta, delta + gl * adv[t + 1]).astype(np.float32)
        np.testing.assert_array_equal(adv[t], expected)
    with pytest.raises(ValueError, match="two-player"):
        _core.collect(vec._batch, to_rust(net), 2, 0, opponent=to_rust(net))


def test_games_of_more_than_two_players_are_refused(tmp_path, build_cache):
    cls = _compile(tmp_path, "three_way", THREE_PLAYERS)
    with pytest.raises(ValueError, match="3 players.*not games of more players"):
        PPO(cls, Config(num_envs=4, num_steps=4, embedding_size=8, common_layers=[8]))
    vec = cls.vector(2, seed=0)
    vec.reset()
    with pytest.raises(ValueError, match="3 players"):
        _core.collect(vec._batch, to_rust(BasicPolicy(1, 2, 8, (8,))), 2, 0)


def test_the_pool_keeps_the_last_snapshots(compiled):
    cls = compiled("tictactoe")
    ppo = PPO(cls, Config(num_envs=8, num_steps=4, update_epochs=1, embedding_size=16, common_layers=[16],
                          pool_every=2, pool_size=2, arena_games=4, pure_simulations=5, arena_every=2))
    history = ppo.train(iterations=7)
    assert len(ppo.pool) == 2  # snapshots at iterations 0, 2, 4, 6: the last two are kept
    assert all(set(s.arena) >= {"vs_random", "vs_mcts", "vs_random_win", "vs_mcts_loss"} for s in history)
    assert not np.isnan(history[0].arena["vs_mcts"]) and np.isnan(history[1].arena["vs_mcts"])
    s = history[0].arena
    assert s["vs_random_win"] + s["vs_random_draw"] + s["vs_random_loss"] == pytest.approx(1.0)
    assert history[0].success_rate == s["vs_random"]
    # With pool_prob 1 every new episode is against a pool policy: half its moves are not learnt from.
    ppo.cfg.pool_prob, ppo.cfg.num_steps = 1.0, 60
    ppo.collect()  # every episode started in it is against the pool
    data = ppo.collect()
    assert set(np.unique(ppo.seats)) <= {0, 1}
    assert 0.3 < data["learn"].mean() < 0.8


def test_the_arena_takes_at_most_its_share_of_the_run(compiled):
    """Arenas are skipped while they took more than `arena_share` of the run; the first
    iteration always has one. Measured: an arena here takes about as long as an iteration's
    collection and update, so about every other one runs at a share of 0.3."""
    cls = compiled("tictactoe")
    small = dict(num_envs=64, num_steps=8, update_epochs=1, embedding_size=16, common_layers=[16], arena_games=8,
                 pure_simulations=30)
    ppo = PPO(cls, Config(**small, arena_share=0.3))
    history = ppo.train(iterations=20)
    ran = [not np.isnan(s.arena["vs_mcts"]) for s in history]
    assert ran[0] and 1 < sum(ran) < len(ran), ran
    # The share is checked before each arena, so the last one may overshoot it by its own length.
    per_arena = ppo.arena_seconds / sum(ran)
    assert ppo.arena_seconds <= 0.3 * ppo.seconds + 1.5 * per_arena, (ppo.arena_seconds, ppo.seconds)
    everything = PPO(cls, Config(**small, arena_share=1.0))
    assert all(not np.isnan(s.arena["vs_mcts"]) for s in everything.train(iterations=4))
    with pytest.raises(ValueError, match="arena_share"):
        make_config({"arena_share": 0}, "a test")


def _cli(*args, cwd):
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.run([sys.executable, "-m", "twisterl", *args], capture_output=True, text=True, timeout=300,
                          env=env, cwd=cwd)


def test_cli_self_play_learns_to_beat_random_play(tmp_path, build_cache):
    """`twisterl train` of tic-tac-toe (PPO by self-play, a small network: about 0.25 s an
    iteration on two busy cores), then `twisterl eval` of the run. Measured: against random
    play 0.65 after the first iteration, 0.94-0.96 by iterations 35-39; against pure MCTS
    (100 simulations) about 0.1 at first, 0.5-0.57 (mostly draws) by iterations 35-39."""
    cfg = tmp_path / "small.json"
    cfg.write_text(json.dumps(SMALL))
    run = tmp_path / "run"
    r = _cli("train", str(ROOT / "examples/tictactoe.twl"), "--config", str(cfg), "--out", str(run),
             "--iterations", str(CLI_ITERATIONS), cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "by self-play" in r.stdout and "vs pure MCTS" in r.stdout
    with open(run / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == CLI_ITERATIONS
    assert {"vs_mcts", "vs_random_win", "vs_random_draw", "vs_random_loss", "vs_mcts_win"} <= set(rows[0])
    vs_random = np.array([float(row["vs_random"]) for row in rows])
    vs_mcts = np.array([float(row["vs_mcts"]) for row in rows])
    # A random network, after one update, scores about 0.65 against random play.
    assert vs_random[0] < 0.8, vs_random
    assert vs_random[-5:].mean() >= 0.85, vs_random
    assert vs_random[-5:].mean() >= vs_random[0] + 0.15, vs_random
    assert vs_mcts[-5:].mean() >= vs_mcts[:3].mean() + 0.2, vs_mcts
    assert (run / "best.safetensors").exists()
    r = _cli("eval", str(run), "--episodes", "20", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "vs random play, 20 games" in r.stdout and "vs pure MCTS" in r.stdout
    r = _cli("eval", str(run), "--episodes", "4", "--mcts-simulations", "30", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "vs pure MCTS (30 simulations), 4 games" in r.stdout
    r = _cli("eval", str(run), "--mcts-simulations", "0", cwd=tmp_path)
    assert r.returncode != 0 and "--mcts-simulations must be between 1" in r.stderr
    # With search on its priors and values, the policy still beats random play.
    r = _cli("eval", str(run), "--episodes", "10", "--simulations", "40", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    line = next(x for x in r.stdout.splitlines() if "vs random play" in x)
    assert "PPO policy with search (40 simulations)" in line
    assert float(line.split("score ")[1].rstrip(")")) >= 0.8, line


# arena_share 1: an arena every iteration, whatever it costs, so the curve has every point.
SMALL = {"num_envs": 256, "num_steps": 32, "embedding_size": 128, "common_layers": [128], "learning_rate": 1e-3,
         "arena_share": 1.0,
         "clip_coef": 0.2, "twists": True, "ent_coef": 0.03}
CLI_ITERATIONS = 40
