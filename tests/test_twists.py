"""Symmetries as permutations ("twists"), checked against the dynamics: playing mirrored
moves from a mirrored start gives the permuted observation, step after step."""

from __future__ import annotations

import numpy as np
import pytest


def permute(obs: np.ndarray, perm: np.ndarray) -> np.ndarray:
    out = np.empty_like(obs)
    out[perm] = obs
    return out


def assert_permutation(perm: np.ndarray) -> None:
    assert sorted(perm.tolist()) == list(range(len(perm)))


@pytest.mark.parametrize("name, symmetry, moves, params", [
    ("connect4", "mirror", [3, 0, 6, 2, 2, 5, 1, 1, 4], {}),
    ("connect4", "mirror", [0, 1, 2, 3, 4], {"cols": 5, "rows": 4}),   # overridden params
    ("tictactoe", "rotate", [0, 4, 8, 1, 7], {}),
    ("tictactoe", "mirror", [2, 4, 6, 5], {}),
    ("puzzle", "transpose", [2, 3, 0, 3, 2, 1, 2], {}),
    ("puzzle", "transpose", [2, 3, 3, 2, 0, 3], {"size": 4}),
])
def test_twists_commute_with_the_dynamics(compiled, name, symmetry, moves, params):
    cls = compiled(name)
    a, b = cls(seed=0, **params), cls(seed=0, **params)
    obs_a, _ = a.reset()
    obs_b, _ = b.reset()
    obs_perm, act_perm = a.twists()[symmetry]
    assert_permutation(obs_perm)
    assert_permutation(act_perm)
    np.testing.assert_array_equal(obs_b, permute(obs_a, obs_perm))  # the start is symmetric
    for move in moves:
        obs_a, ra, ta, *_ = a.step(move)
        obs_b, rb, tb, *_ = b.step(int(act_perm[move]))
        np.testing.assert_array_equal(obs_b, permute(obs_a, obs_perm))
        assert (ra, ta) == (rb, tb)
        if ta:
            break


def test_envs_without_symmetries_have_no_twists(compiled):
    env = compiled("cartpole")(seed=0)
    assert env.twists() == {}
