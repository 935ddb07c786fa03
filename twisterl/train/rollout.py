"""PPO's collection on one batch of envs, without torch: what a local learner and a Ray
rollout worker both run, so that the same seeds give the same rollout wherever it runs.

`collect_rollout` is `_core.collect` (GAE per env, in Rust), in deadline-checked chunks
joined by `join_rollouts`; `join_envs` puts the rollouts of disjoint batches side by side
along the env axis (each env's GAE is its own, so the result is one valid rollout).
"""

from __future__ import annotations

import time
from typing import Optional

import numpy as np

from .. import _core

# Added to a seed (mod 2**64) to derive the seed of the k-th chunk or shard.
GOLDEN = 0x9E3779B97F4A7C15
SUMS = ("episodes", "successes", "return_sum", "length_sum")


def derived_seed(seed: int, k: int) -> int:
    """The k-th seed derived from `seed` (k = 0 is `seed` itself)."""
    return (seed + k * GOLDEN) % 2**64


def collect_rollout(batch, policy, num_envs: int, num_steps: int, seed: int, gamma: float, lam: float,
                    chunk: int, deadline: Optional[float] = None, **options) -> Optional[dict]:
    """`num_steps` transitions from each of the `num_envs` envs of `batch` (`_core.collect`
    with `options`). With a `deadline` (a `time.perf_counter()` time), in chunks of about
    `chunk` env steps, checking it between them: None once it has passed."""
    def run(steps: int, chunk_seed: int) -> dict:
        return _core.collect(batch, policy, steps, chunk_seed, gamma, lam, **options)

    if deadline is None:
        return run(num_steps, seed)
    per = max(1, chunk // num_envs)
    parts = []
    for k, first in enumerate(range(0, num_steps, per)):
        if time.perf_counter() >= deadline:
            return None
        parts.append(run(min(per, num_steps - first), derived_seed(seed, k)))
    return join_rollouts(parts, gamma, lam)


def join_envs(parts: list[dict]) -> dict:
    """The rollouts of disjoint batches over the same steps as one: arrays side by side along
    the env axis (axis 1), episode counts and sums added."""
    data = {key: np.concatenate([p[key] for p in parts], axis=1) for key, value in parts[0].items()
            if isinstance(value, np.ndarray)}
    for key in SUMS:
        data[key] = sum(p[key] for p in parts)
    return data


def join_rollouts(parts: list[dict], gamma: float, lam: float) -> dict:
    """The rollouts of consecutive `_core.collect` calls on the same envs as one rollout.

    Each call ended with the advantage of its last step bootstrapped from the value of the
    next state alone; over the whole rollout that step also carries the discounted
    advantage that follows, so the last step of each part but the last is recomputed and
    the change is carried back through that part (until an episode boundary). In two-player
    games each link carries the sign of the next mover (+1 the same player, -1 the other)."""
    data = {key: np.concatenate([p[key] for p in parts]) for key, value in parts[0].items()
            if isinstance(value, np.ndarray)}
    for key in SUMS:
        data[key] = sum(p[key] for p in parts)
    adv, values, rewards, dones = data["advantages"], data["values"], data["rewards"], data["dones"]
    # The sign linking row t to row t + 1 (where row t is no episode's last).
    player = data.get("player")
    sign = np.ones_like(adv) if player is None else \
        np.where(np.roll(player, -1, axis=0) == player, 1.0, -1.0).astype(adv.dtype)
    ends = np.cumsum([len(p["rewards"]) for p in parts])
    for first, end in reversed(list(zip([0, *ends[:-2]], ends[:-1]))):
        t = end - 1
        whole = rewards[t] + gamma * sign[t] * values[t + 1] - values[t] + gamma * lam * sign[t] * adv[t + 1]
        change = np.where(dones[t], 0.0, whole - adv[t]).astype(adv.dtype)
        for row in range(t, first - 1, -1):
            adv[row] += change
            if row > first:
                change = change * np.float32(gamma * lam) * sign[row - 1] * ~dones[row - 1]
    data["returns"] = adv + values
    return data


