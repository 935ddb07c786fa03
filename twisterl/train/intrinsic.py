"""Exploration bonuses for sparse rewards: count-based and random network distillation.

Both score the observation each step leads to; PPO adds `intrinsic_coef` times the score
to the rewards it learns from (never to the returns it reports). Since GAE is linear in
the rewards, adding a bonus `b` to the rewards adds GAE(b) computed with zero values to
the advantages: `intrinsic_advantages` gives that term, so the env's own rewards and the
critic's bootstraps stay as the Rust collection computed them.

- `CountBonus` (Bellemare et al. 2016; Strehl and Littman's MBIE-EB): `1 / sqrt(n)`,
  with `n` the visits of that exact observation so far. For envs whose states recur
  (tables, small grids); the bonus fades as every state gets visited.
- `RNDBonus` (Burda et al. 2018, as CleanRL's ppo_rnd_envpool): the squared error of a
  trained predictor of a fixed, random network's features of the (normalised)
  observation, divided by the running std of the bonus. For large or continuous state
  spaces, where the predictor generalises between similar observations.

Neither is saved in checkpoints: a resumed run starts with fresh counts (or networks).
"""

from __future__ import annotations

import time
from typing import Optional

import numpy as np

from .stats import RunningMeanVar, RunningVariance


def next_observation_rows(dones: np.ndarray) -> np.ndarray:
    """For each step `[T, N]`, whether the rollout holds the observation it led to: the next
    row of the same env, unless the episode ended there or the rollout did."""
    has_next = np.zeros(dones.shape, dtype=bool)
    has_next[:-1] = ~dones[:-1]
    return has_next


def intrinsic_advantages(bonus: np.ndarray, dones: np.ndarray, gamma: float, lam: float) -> np.ndarray:
    """GAE(lambda) of the rewards `bonus [T, N]` with zero values: `A_t = b_t + gamma lam A_{t+1}`,
    the chain cut where an episode ended (and at the rollout's end)."""
    adv = np.zeros_like(bonus, dtype=np.float32)
    running = np.zeros(bonus.shape[1], dtype=np.float64)
    for t in range(bonus.shape[0] - 1, -1, -1):
        running = bonus[t] + gamma * lam * running * ~dones[t]
        adv[t] = running
    return adv


def _sparse(data: dict) -> bool:
    """Whether the rollout's observations came as one-hot indices (`_core.collect` gives
    both arrays; the unused one is empty)."""
    return data.get("obs_indices") is not None and data["obs_indices"].size > 0


def dense_rows(data: dict, obs_size: int) -> np.ndarray:
    """The rollout's observations `[T * N, obs_size]` as float rows (sparse one-hot ones
    scattered into zeros)."""
    if _sparse(data):
        idx = data["obs_indices"].reshape(-1, data["obs_indices"].shape[-1]).astype(np.int64)
        counts = data["obs_counts"].reshape(-1)
        out = np.zeros((idx.shape[0], obs_size), dtype=np.float32)
        keep = np.arange(idx.shape[1])[None, :] < counts[:, None]
        rows = np.broadcast_to(np.arange(idx.shape[0])[:, None], idx.shape)
        np.add.at(out, (rows[keep], idx[keep]), 1.0)
        return out
    return data["obs"].reshape(-1, data["obs"].shape[-1]).astype(np.float32)


class CountBonus:
    """`1 / sqrt(visits)` of each observation, the visits counted over the whole run (this
    batch's included). Observations are keyed by a 64-bit hash of their features."""

    def __init__(self, obs_size: int, seed: int = 0):
        self.weights = np.random.default_rng([seed, 0xC0047]).integers(1, 2**63, size=obs_size, dtype=np.uint64)
        self.counts: dict[int, int] = {}

    def keys(self, data: dict) -> np.ndarray:
        """A hash of each row's observation: the sum of a random odd weight per one (sparse)
        or of the weights times the features' bits (dense); equal observations, equal keys."""
        if _sparse(data):
            idx = data["obs_indices"].reshape(-1, data["obs_indices"].shape[-1]).astype(np.int64)
            counts = data["obs_counts"].reshape(-1)
            keep = np.arange(idx.shape[1])[None, :] < counts[:, None]
            w = np.where(keep, self.weights[np.minimum(idx, len(self.weights) - 1)], np.uint64(0))
            return w.sum(1, dtype=np.uint64)
        bits = data["obs"].reshape(-1, data["obs"].shape[-1]).astype(np.float32).view(np.uint32)
        return (bits.astype(np.uint64) * self.weights[None, :]).sum(1, dtype=np.uint64)

    def score(self, data: dict) -> np.ndarray:
        """Each row's observation's bonus `[T * N]`, after counting this batch's visits."""
        keys = self.keys(data)
        unique, inverse, seen = np.unique(keys, return_inverse=True, return_counts=True)
        totals = np.empty(len(unique), dtype=np.float64)
        for k, (key, n) in enumerate(zip(unique.tolist(), seen.tolist())):
            totals[k] = self.counts[key] = self.counts.get(key, 0) + n
        return 1.0 / np.sqrt(totals[inverse])

    def learn(self, data: dict, deadline: Optional[float] = None) -> None:
        """Counting is all a count bonus learns (done in `score`)."""


class RNDBonus:
    """Random network distillation: a fixed random `target` MLP and a trained `predictor`
    over the observation normalised by its running mean and std (clipped to [-5, 5]);
    the bonus is the predictor's squared error, divided by its running std."""

    def __init__(self, obs_size: int, seed: int = 0, width: int = 64, features: int = 64,
                 learning_rate: float = 1e-4, device=None):
        try:
            import torch
            from torch import nn
        except ImportError:
            raise ValueError("intrinsic \"rnd\" trains its predictor in torch, which is not installed: "
                             "pip install 'twisterl[train]', or use intrinsic \"count\"") from None
        device = device if device is not None else torch.device("cpu")
        gen = torch.Generator().manual_seed(seed ^ 0x52D)

        def net(sizes):
            layers: list[nn.Module] = []
            for k, (a, b) in enumerate(zip(sizes, sizes[1:])):
                layer = nn.Linear(a, b)
                nn.init.orthogonal_(layer.weight, np.sqrt(2), generator=gen)
                nn.init.zeros_(layer.bias)
                layers += [layer] + ([nn.LeakyReLU()] if k < len(sizes) - 2 else [])
            return nn.Sequential(*layers).to(device)

        self.obs_size, self.device = obs_size, device
        self.target = net([obs_size, width, features]).requires_grad_(False)
        self.predictor = net([obs_size, width, width, features])
        self.optimizer = torch.optim.Adam(self.predictor.parameters(), lr=learning_rate)
        self.obs_stats = RunningMeanVar(obs_size)
        self.bonus_stats = RunningVariance()

    def _inputs(self, rows: np.ndarray) -> "torch.Tensor":
        import torch
        x = (rows - self.obs_stats.mean) / np.sqrt(self.obs_stats.var + 1e-8)
        return torch.from_numpy(np.clip(x, -5, 5).astype(np.float32)).to(self.device)

    def score(self, data: dict) -> np.ndarray:
        import torch
        rows = dense_rows(data, self.obs_size)
        self.obs_stats.update(rows)
        with torch.no_grad():
            x = self._inputs(rows)
            err = ((self.predictor(x) - self.target(x)) ** 2).mean(-1).cpu().numpy().astype(np.float64)
        self.bonus_stats.update(err)
        return err / np.sqrt(self.bonus_stats.var + 1e-8)

    def learn(self, data: dict, deadline: Optional[float] = None, minibatch: int = 1024) -> None:
        """One epoch of the predictor over the rollout's observations, in shuffled minibatches."""
        rows = dense_rows(data, self.obs_size)
        order = np.random.default_rng(int(self.obs_stats.count) % 2**32).permutation(rows.shape[0])
        for s in range(0, len(order), minibatch):
            if deadline is not None and time.perf_counter() >= deadline:
                return
            x = self._inputs(rows[order[s:s + minibatch]])
            loss = ((self.predictor(x) - self.target(x)) ** 2).mean()
            self.optimizer.zero_grad()
            loss.backward()
            self.optimizer.step()


def make_bonus(kind: str, obs_size: int, seed: int, device=None):
    """The bonus a config's `intrinsic` names (None for "none")."""
    if kind == "count":
        return CountBonus(obs_size, seed)
    if kind == "rnd":
        return RNDBonus(obs_size, seed, device=device)
    return None
