"""MCTS in Rust: forced wins, masks, value signs across turns, determinism, pure MCTS
against random play, networks with batched leaves, and clear errors."""

import functools
import os

import numpy as np
import pytest

import twisterl
from twisterl.search import agent, play_games

ROOT = os.path.join(os.path.dirname(__file__), "..")
X, O = 1, 2


@pytest.fixture(scope="module")
def ttt():
    return twisterl.compile(os.path.join(ROOT, "examples/tictactoe.twl"))


@pytest.fixture(scope="module")
def c4():
    return twisterl.compile(os.path.join(ROOT, "examples/connect4.twl"))


def ttt_state(board: str) -> np.ndarray:
    """A tic-tac-toe state from 9 characters (X, O, .), row by row; X moves first."""
    cells = [{"." : 0, "X": X, "O": O}[ch] for ch in board]
    xs, os_ = cells.count(X), cells.count(O)
    return np.array(cells + [0, xs - os_ if xs >= os_ else 0, xs + os_], dtype=np.float64) if xs - os_ in (0, 1) \
        else None


@functools.lru_cache(maxsize=None)
def minimax(cells: tuple, player: int) -> int:
    """The value of a tic-tac-toe position for `player` to move, under perfect play."""
    lines = [(0, 1, 2), (3, 4, 5), (6, 7, 8), (0, 3, 6), (1, 4, 7), (2, 5, 8), (0, 4, 8), (2, 4, 6)]
    for a, b, c in lines:
        if cells[a] and cells[a] == cells[b] == cells[c]:
            return 1 if cells[a] == player + 1 else -1
    if all(cells):
        return 0
    best = -2
    for k in range(9):
        if not cells[k]:
            nxt = cells[:k] + (player + 1,) + cells[k + 1:]
            best = max(best, -minimax(nxt, 1 - player))
    return best


def winning_moves(board: str, player: int) -> set:
    cells = tuple({"." : 0, "X": X, "O": O}[ch] for ch in board)
    return {k for k in range(9) if not cells[k]
            and -minimax(cells[:k] + (player + 1,) + cells[k + 1:], 1 - player) == 1}


def test_finds_a_win_in_one_move(ttt):
    env = ttt()
    env.reset(seed=0)
    state = ttt_state("XX.OO....")
    for seed in range(3):
        r = twisterl.mcts(env, state=state, simulations=300, seed=seed)
        assert r.action == 2
        assert r.q[2] == pytest.approx(1.0)
        assert r.value > 0.5, "X to move wins: the value is good for the player to move"


def test_finds_a_forced_win_in_two_moves(ttt):
    env = ttt()
    env.reset(seed=0)
    board = "X.O" "O.." "X.."
    wins = winning_moves(board, 0)
    assert wins and all(board[k] == "." for k in wins)
    cells = tuple({".": 0, "X": X, "O": O}[ch] for ch in board)
    for k in wins:  # none of them wins at once: the win takes two moves
        after = cells[:k] + (X,) + cells[k + 1:]
        assert minimax(after, 1) == -1 and not any(all(after[i] == X for i in line) for line in
                                                    [(0, 1, 2), (3, 4, 5), (6, 7, 8), (0, 3, 6), (1, 4, 7), (2, 5, 8),
                                                     (0, 4, 8), (2, 4, 6)])
    r = twisterl.mcts(env, state=ttt_state(board), simulations=3000, seed=0)
    assert r.action in wins, (r.action, wins, r.visits)


def test_connect4_win_in_one_and_block(c4):
    env = c4()
    env.reset(seed=0)
    # First player (X) has three in column 3; X to move: drop(3) wins.
    for a in [3, 0, 3, 0, 3, 1]:
        env.step(a)
    r = twisterl.mcts(env, simulations=400, seed=0)
    assert r.action == 3 and r.value > 0.5
    # Now the second player must block column 3, or lose at once.
    env.reset(seed=0)
    for a in [3, 0, 3, 0, 3]:
        env.step(a)
    r = twisterl.mcts(env, simulations=2000, seed=0)
    assert r.action == 3, r.visits


def test_values_are_for_the_player_to_move(ttt):
    env = ttt()
    env.reset(seed=0)
    # O to move with a win available: good for O (the player to move).
    r = twisterl.mcts(env, state=ttt_state("XX.OO.X.."), simulations=500, seed=0)
    assert r.action == 5 and r.value > 0.5
    # X to move, but O has two threats and X cannot win: bad for X.
    # X to move can win at once in the middle row, though O threatens the top row.
    r = twisterl.mcts(env, state=np.array([O, 0, O, X, 0, X, 0, 0, 0, 0, 0, 4], float), simulations=2000, seed=0)
    assert r.action == 4 and r.value > 0.5
    r = twisterl.mcts(env, state=np.array([O, 0, O, X, O, X, X, 0, 0, 0, 0, 6], float), simulations=2000, seed=0)
    assert minimax((O, 0, O, X, O, X, X, 0, 0), 0) == -1
    assert r.value < -0.5, "a lost position is bad for the player to move"


def test_masks_are_respected(ttt, c4):
    env = ttt()
    env.reset(seed=0)
    state = ttt_state("XO.OX..X.")
    r = twisterl.mcts(env, state=state, simulations=200, seed=0)
    occupied = [k for k, ch in enumerate("XO.OX..X.") if ch != "."]
    assert (r.visits[occupied] == 0).all() and r.visits.sum() > 0
    assert (r.priors[occupied] == 0).all()
    # Full column: never searched.
    e = c4()
    e.reset(seed=0)
    for a in [0, 0, 0, 0, 0, 0]:
        e.step(a)
    r = twisterl.mcts(e, simulations=300, seed=0)
    assert r.visits[0] == 0


def test_the_same_seed_gives_the_same_search(c4):
    env = c4()
    env.reset(seed=0)
    env.step(3)
    a = twisterl.mcts(env, simulations=500, seed=7)
    b = twisterl.mcts(env, simulations=500, seed=7)
    c = twisterl.mcts(env, simulations=500, seed=8)
    assert np.array_equal(a.visits, b.visits) and a.value == b.value
    assert not np.array_equal(a.visits, c.visits)
    # The env itself is untouched by the search.
    assert env.get_state()[-1] == 1


def test_network_search_with_batched_leaves(c4):
    import torch
    from twisterl.train.nets import BasicPolicy
    torch.manual_seed(0)
    env = c4()
    env.reset(seed=0)
    net = BasicPolicy(env.observation_space.shape[0], 7, 32, [32])
    one = twisterl.mcts(env, net, simulations=64, seed=3)
    eight = twisterl.mcts(env, net, simulations=64, seed=3, leaf_batch=8)
    assert one.visits.sum() == 63 and eight.visits.sum() >= 56  # the root's own evaluation is one simulation
    again = twisterl.mcts(env, net, simulations=64, seed=3, leaf_batch=8)
    assert np.array_equal(eight.visits, again.visits)
    assert np.allclose(one.priors.sum(), 1.0, atol=1e-5)


def test_pure_mcts_beats_random_play(ttt, c4):
    for cls, games in ((ttt, 40), (c4, 20)):
        data = play_games(cls, {}, [agent(None, simulations=200), agent(random=True)], games, seed=1,
                          num_threads=2, temperature=0.0)
        mine = (data["returns"] * (data["seats"] == 0)).sum(1)
        assert (mine < 0).sum() == 0 if cls is ttt else (mine > 0).mean() >= 0.9, mine
        assert set(data["seats"][:, 0]) == {0, 1}, "each agent plays both sides"


def test_self_play_records_targets(ttt):
    import torch
    from twisterl.train.nets import BasicPolicy
    torch.manual_seed(0)
    net = BasicPolicy(27, 9, 16, [16])
    data = play_games(ttt, {}, [agent(net, simulations=16, dirichlet_frac=0.25)], 6, seed=0, num_threads=2,
                      record=True, temp_moves=4)
    n = int(data["lengths"].sum())
    assert data["policy"].shape == (n, 9) and np.allclose(data["policy"].sum(1), 1.0, atol=1e-5)
    assert not (data["policy"] * ~data["masks"]).any(), "no visit to an illegal action"
    for g in range(6):
        rows = data["game"] == g
        players, values = data["player"][rows], data["value"][rows]
        outcome = data["returns"][g]
        assert np.allclose(values, outcome[players]), "value target: the outcome for the player to move"
    again = play_games(ttt, {}, [agent(net, simulations=16, dirichlet_frac=0.25)], 6, seed=0, num_threads=2,
                       record=True, temp_moves=4)
    assert np.array_equal(data["policy"], again["policy"])


def test_bad_input_is_a_clear_error(ttt):
    env = ttt()
    env.reset(seed=0)
    with pytest.raises(ValueError, match="simulations"):
        twisterl.mcts(env, simulations=0)
    with pytest.raises(ValueError, match="state of 3 values"):
        twisterl.mcts(env, state=[0, 0, 0])
    over = ttt_state("XO.XO.X..")  # X has the left column
    over[9] = X  # the winner
    with pytest.raises(ValueError, match="episode is over"):
        twisterl.mcts(env, state=over)
    with pytest.raises(ValueError, match="single-player"):
        twisterl.solve(env)
    import torch
    from twisterl.train.nets import BasicPolicy
    with pytest.raises(ValueError, match="features"):
        twisterl.mcts(env, BasicPolicy(10, 9, 8, [8]))
    scratch = ttt.create({}, 1, 0, 1)
    with pytest.raises(ValueError, match="unknown search option"):
        twisterl._core.search(env._batch, 0, scratch, {"kind": "rollout", "bogus": 1}, 0)
    with pytest.raises(ValueError, match="another batch"):
        twisterl._core.search(env._batch, 0, env._batch, {"kind": "rollout"}, 0)


def test_averaging_over_symmetries_makes_the_search_equivariant(ttt):
    import torch
    from twisterl.train.nets import BasicPolicy
    torch.manual_seed(0)
    net = BasicPolicy(27, 9, 16, [16])
    env = ttt()
    env.reset(seed=0)
    plain = twisterl.mcts(env, net, simulations=1)
    averaged = twisterl.mcts(env, net, simulations=1, average_twists=True)
    corners, edges = averaged.priors[[0, 2, 6, 8]], averaged.priors[[1, 3, 5, 7]]
    assert np.ptp(corners) < 1e-6 and np.ptp(edges) < 1e-6, averaged.priors
    assert np.ptp(plain.priors[[0, 2, 6, 8]]) > 1e-4, "the raw network is not symmetric"
    # A twisted position gets the twisted priors.
    state = np.array([X, 0, 0, 0, O, 0, 0, 0, 0, 0, 0, 2], float)
    rotated = np.array([0, 0, X, 0, O, 0, 0, 0, 0, 0, 0, 2], float)  # rotate: (r, c) -> (c, 2 - r)
    a = twisterl.mcts(env, net, state=state, simulations=1, average_twists=True).priors
    b = twisterl.mcts(env, net, state=rotated, simulations=1, average_twists=True).priors
    rot = [2, 5, 8, 1, 4, 7, 0, 3, 6]  # cell k = (r, c) goes to (c, 2 - r)
    assert np.allclose(b[rot], a, atol=1e-6)
    with pytest.raises(ValueError, match="permutation"):
        twisterl._core.search(env._batch, 0, ttt.create({}, 1, 0, 1),
                              {"kind": "net", "policy": twisterl.search.rust_policy(net), "twists": [([0], [0])]}, 0)
