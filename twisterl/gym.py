"""Gymnasium hooks: registration under `twisterl/NAME-v0` and a `gymnasium.vector` adapter.

    import gymnasium, twisterl
    env_id = twisterl.gym.register("examples/puzzle.twl")   # "twisterl/SlidingPuzzle-v0"
    env = gymnasium.make(env_id, difficulty=3)
    vec = twisterl.gym.make_vec("examples/puzzle.twl", num_envs=64)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional, Union

import gymnasium
import numpy as np
from gymnasium.vector import AutoresetMode, VectorEnv

from .envs import Env
from .envs import compile as compile_env


def _make(path: str, illegal_action: str = "noop", render_mode: Optional[str] = None, **kwargs: Any) -> Env:
    # `render_mode` is Gymnasium's: an env always renders its text picture ("ansi").
    if render_mode not in (None, "ansi"):
        raise ValueError(f"twisterl envs render only as text: render_mode must be 'ansi', not {render_mode!r}")
    return compile_env(path)(illegal_action=illegal_action, **kwargs)


def register(path: Union[str, Path], env_id: Optional[str] = None, version: int = 0,
             max_episode_steps: Optional[int] = None) -> str:
    """Compile `path` and register it with Gymnasium; returns the id for `gymnasium.make`.

    Envs made from the id treat a masked-out action as a step that does nothing
    (`illegal_action="noop"`), as Gymnasium's tools sample actions without masks; pass
    `illegal_action="raise"` to `gymnasium.make` to get an `EnvError` instead.
    """
    cls = compile_env(path)
    env_id = env_id or f"twisterl/{cls.name}-v{version}"
    if env_id not in gymnasium.registry:
        gymnasium.register(id=env_id, entry_point=_make, kwargs={"path": str(path)},
                           max_episode_steps=max_episode_steps, disable_env_checker=False)
    return env_id


class TwlVectorEnv(VectorEnv):
    """A `gymnasium.vector.VectorEnv` over a compiled env batch (same-step auto-reset)."""

    metadata = {"autoreset_mode": AutoresetMode.SAME_STEP, "render_modes": ["ansi"]}

    def __init__(self, path: Union[str, Path], num_envs: int, *, seed: int = 0, num_threads: int = 1,
                 difficulty: int = 0, **params: Any):
        self.cls = compile_env(path)
        self._vec = self.cls.vector(num_envs, seed=seed, num_threads=num_threads, difficulty=difficulty,
                                    **params)
        self.num_envs = num_envs
        self.single_action_space = self._vec.single_action_space
        self.single_observation_space = self._vec.single_observation_space
        self.action_space = gymnasium.vector.utils.batch_space(self.single_action_space, num_envs)
        self.observation_space = gymnasium.vector.utils.batch_space(self.single_observation_space, num_envs)
        self.render_mode = "ansi"

    def reset(self, *, seed: Optional[Union[int, list]] = None, options: Optional[dict] = None):
        if isinstance(seed, list):
            seed = seed[0]
        if options and "difficulty" in options:
            self._vec.set_difficulty(options["difficulty"])
        return self._vec.reset(seed=seed)

    def step(self, actions):
        obs, reward, term, trunc, info = self._vec.step(np.asarray(actions))
        return obs, reward, term, trunc, info

    def render(self):
        return tuple(self._vec.render(i) for i in range(self.num_envs))

    def close_extras(self, **kwargs: Any) -> None:
        pass


def make_vec(path: Union[str, Path], num_envs: int, **kwargs: Any) -> TwlVectorEnv:
    """A `TwlVectorEnv` of `num_envs` envs compiled from `path`."""
    return TwlVectorEnv(path, num_envs, **kwargs)
