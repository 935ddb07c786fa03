"""Evaluating a policy: episodes played in Rust-stepped envs with the Rust policy.

An evaluation plays `episodes` episodes at one difficulty, acting greedily
(`deterministic`) or by sampling. With `tries` > 1, each episode is played `tries` times
from the same start state and counts as a success if any try succeeds (TwisteRL's
`num_searches`); its return and length are those of its best try. With a twist group
(see `twisterl.symmetry`), the policy's distribution is averaged over the twists.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np

from .twists import Twist, TwistAveraged, softmax


@dataclass
class EvalSpec:
    """One named evaluation, as in TwisteRL's `evals` config."""

    num_episodes: int = 100
    deterministic: bool = False
    num_searches: int = 1

    @classmethod
    def from_dict(cls, name: str, data: dict) -> "EvalSpec":
        """The eval `name` of a config, every key checked (a ValueError names the bad one)."""
        if not isinstance(data, dict):
            raise ValueError(f"eval {name!r} must be an object, not {data!r}")
        unknown = set(data) - {"num_episodes", "deterministic", "num_searches", "num_mcts_searches"}
        if unknown:
            raise ValueError(f"eval {name!r}: unknown key(s) {', '.join(sorted(unknown))}; "
                             "known: num_episodes, deterministic, num_searches")
        for key in ("num_episodes", "num_searches", "num_mcts_searches"):
            value = data.get(key, 1 if key != "num_mcts_searches" else 0)
            low = 0 if key == "num_mcts_searches" else 1
            if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= 1_000_000:
                raise ValueError(f"eval {name!r}: {key} must be an int between {low} and 1000000, not {value!r}")
        if not isinstance(data.get("deterministic", False), bool):
            raise ValueError(f"eval {name!r}: deterministic must be true or false, not {data['deterministic']!r}")
        if data.get("num_mcts_searches", 0):
            raise ValueError(f"eval {name!r}: evals with MCTS (num_mcts_searches > 0) are not available with PPO")
        return cls(data.get("num_episodes", 100), data.get("deterministic", False), data.get("num_searches", 1))


def evaluate_policy(cls, rust_policy, episodes: int, deterministic: bool, difficulty: int, seed: int,
                    params: dict, tries: int = 1, twists: Optional[Sequence[Twist]] = None,
                    log_std: Optional[np.ndarray] = None, max_steps: int = 100_000,
                    deadline: Optional[float] = None, max_episode_steps: int = 0) -> dict:
    """Success rate, mean return and mean length of `episodes` episodes (see the module doc),
    and each try's success and return (`try_success`, `try_return`: [episodes, tries]).

    With a `deadline` (a `time.perf_counter()` time) that passes before every episode is
    over, play stops there and the rates are NaN (`cut_short` is True).

    For continuous actions the policy acts with the Gaussian's mean, or with a draw using
    `log_std` when not deterministic."""
    if tries < 1 or episodes < 1:
        raise ValueError("episodes and tries must be at least 1")
    n = episodes * tries
    vec = cls.vector(n, seed=seed, difficulty=difficulty, max_episode_steps=max_episode_steps, **params)
    obs, info = vec.reset()
    for e in range(episodes):  # every try of an episode starts from its first try's state
        for k in range(1, tries):
            vec.batch.copy_env(e * tries, vec.batch, e * tries + k)
    obs, info = vec.observe(), vec._info()
    sparse = cls.spec["observation"]["kind"] == "sparse"
    averaged = TwistAveraged(rust_policy, twists) if twists else None
    rng = np.random.default_rng(seed)
    finished = np.zeros(n, dtype=bool)
    success = np.zeros(n, dtype=bool)
    returns = np.zeros(n)
    lengths = np.zeros(n)
    for _ in range(max_steps):
        actions = _act(cls, rust_policy, averaged, vec, obs, info, sparse, deterministic, rng, log_std)
        obs, reward, term, trunc, info = vec.step(actions)
        live = ~finished
        returns[live] += reward[live]
        lengths[live] += 1
        ended = live & (term | trunc)
        success[ended] = info["success"][ended]
        finished |= ended
        if finished.all():
            break
        if deadline is not None and time.perf_counter() >= deadline:
            nan = float("nan")
            return {"success": nan, "return": nan, "length": nan, "episodes": episodes, "tries": tries,
                    "cut_short": True}
    # The best try of each episode: a success first, then the higher return.
    score = success.reshape(episodes, tries) * 1e18 + returns.reshape(episodes, tries)
    best = score.argmax(axis=1) + np.arange(episodes) * tries
    return {"success": float(success[best].mean()), "return": float(returns[best].mean()),
            "length": float(lengths[best].mean()), "episodes": episodes, "tries": tries, "cut_short": False,
            "try_success": success.reshape(episodes, tries), "try_return": returns.reshape(episodes, tries)}


def _act(cls, policy, averaged: Optional[TwistAveraged], vec, obs, info, sparse: bool, deterministic: bool,
         rng: np.random.Generator, log_std: Optional[np.ndarray]) -> np.ndarray:
    n = vec.num_envs
    if sparse:
        idx, counts = vec.observe_indices()
    if cls.continuous:
        mean, _ = policy.forward_sparse(idx, counts) if sparse else policy.forward_dense(obs.reshape(n, -1))
        if deterministic or log_std is None:
            return mean
        return mean + np.exp(log_std) * rng.standard_normal(mean.shape)
    mask = info["action_mask"]
    if averaged is not None:
        probs = averaged.probs_sparse(idx, counts, mask) if sparse else \
            averaged.probs_dense(np.ascontiguousarray(obs.reshape(n, -1)), mask)
    else:
        logits, _ = policy.forward_sparse(idx, counts) if sparse else policy.forward_dense(obs.reshape(n, -1))
        probs = softmax(logits, mask)
    if deterministic:
        return np.where(mask, probs, -1.0).argmax(axis=1)
    draws = (probs.cumsum(axis=1) > rng.random((n, 1)))
    draws &= mask  # rounding never picks a masked action
    return np.where(draws.any(axis=1), draws.argmax(axis=1), np.where(mask, probs, -1.0).argmax(axis=1))
