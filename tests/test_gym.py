"""The Gymnasium hooks: registration, `check_env`, and the vector adapter."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

gymnasium = pytest.importorskip("gymnasium")
from gymnasium.utils.env_checker import check_env  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("name", ["puzzle", "cartpole", "pendulum", "connect4", "maze"])
def test_check_env_passes(build_cache, name):
    import twisterl
    env = twisterl.compile(ROOT / "examples" / f"{name}.twl")(illegal_action="noop", difficulty=3)
    check_env(env, skip_render_check=True)


@pytest.mark.parametrize("path", sorted((ROOT / "examples").glob("*.twl")), ids=lambda p: p.stem)
def test_check_env_passes_through_registration(build_cache, path):
    """The way docs/runtime.md gives: `gymnasium.make(twisterl.gym.register(path))`."""
    import twisterl
    check_env(gymnasium.make(twisterl.gym.register(path)).unwrapped)


def _scrambled(env):
    """Reset until the start is not solved already, so that a no-op step does not end it."""
    for seed in range(20):
        obs, info = env.reset(seed=seed)
        if not info["success"]:
            return obs, info
    raise AssertionError("every start was solved")


def test_registered_envs_take_masked_actions_as_noops(build_cache):
    import twisterl
    env_id = twisterl.gym.register(ROOT / "examples" / "puzzle.twl")
    env = gymnasium.make(env_id, difficulty=3)
    obs, info = _scrambled(env)
    again, _, terminated, _, _ = env.step(int(np.flatnonzero(~info["action_mask"])[0]))
    assert (again == obs).all() and not terminated
    strict = gymnasium.make(env_id, difficulty=3, illegal_action="raise")
    obs, info = _scrambled(strict)
    with pytest.raises(twisterl.EnvError, match="not legal"):
        strict.step(int(np.flatnonzero(~info["action_mask"])[0]))


def test_register_and_make(build_cache):
    import twisterl.gym
    env_id = twisterl.gym.register(ROOT / "examples" / "puzzle.twl")
    assert env_id == "twisterl/SlidingPuzzle-v0"
    env = gymnasium.make(env_id, difficulty=2)
    obs, info = env.reset(seed=0)
    assert obs.shape == (81,) and info["action_mask"].dtype == bool


def test_vector_adapter(build_cache):
    import twisterl.gym
    vec = twisterl.gym.make_vec(ROOT / "examples" / "cartpole.twl", num_envs=8, seed=1)
    obs, info = vec.reset()
    assert obs.shape == (8, 4) and vec.action_space.shape == (8,)
    for _ in range(100):
        obs, reward, term, trunc, info = vec.step(vec.action_space.sample())
    assert obs.shape == (8, 4) and reward.shape == (8,)
