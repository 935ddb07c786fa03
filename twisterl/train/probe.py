"""What a short probe of random play tells training about an env it knows nothing else of.

`auto_episode_limit` picks a training step limit for envs that never end; `probe_env`
measures what the auto config's rules (`twisterl.train.auto`) choose from: the spec's
kinds and sizes, and random play's episode lengths, reward scale and sparsity.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

# Random play that runs this long without ending means the env needs a step limit in training.
PROBE_EPISODES, PROBE_LENGTH = 64, 1_000
# The stepped probe: this many envs for at most this many steps each, or until
# `STEP_EPISODES` episodes ended (enough that a 3% signal is rarely a fluke); under a second
# for the examples.
STEP_ENVS, STEP_LENGTH, STEP_EPISODES = 64, 1_000, 256


def auto_episode_limit(cls, params: dict, difficulty: int, seed: int) -> tuple[int, str]:
    """A training-time step limit for an env that declares no `truncate`, from a probe of
    random episodes: 0 when they all end within `PROBE_LENGTH` steps (the env ends its
    episodes itself), else 4x the mean length of the probe episodes that ended, at least
    100 and at most `PROBE_LENGTH` (which it is when none ended). Returns the limit and the
    reason, for the config printout; the config saved in the run dir holds the limit."""
    if cls.spec.get("has_truncate") or cls.players != 1 or cls.continuous:
        return 0, ""
    vec = cls.vector(min(PROBE_EPISODES, 64), seed=seed, difficulty=difficulty, **params)
    stats = vec.random_episodes(PROBE_EPISODES, seed=seed, max_length=PROBE_LENGTH)
    if not stats["cut"]:
        return 0, ""
    ended = stats["episodes"]
    mean = stats["length_sum"] / ended if ended else 0
    limit = int(min(PROBE_LENGTH, max(100, 4 * mean))) if ended else PROBE_LENGTH
    reason = (f"{cls.name} declares no `truncate` and {stats['cut']} of {PROBE_EPISODES} random episodes ran "
              f"{PROBE_LENGTH:,} steps without ending")
    return limit, reason


@dataclass
class Profile:
    """An env as the auto config sees it: from the spec, and from random play at one
    difficulty (`episodes` ended within `STEP_LENGTH` steps, the rest were still running)."""
    name: str
    obs_kind: str
    """"sparse" (one-hot features, sent as indices), "dense" or "planes\""""
    obs_size: int
    obs_ones: int
    """sparse observations: the most ones one observation has (1: the observation is one of
    `obs_size` states, a table)"""
    num_actions: int
    continuous: bool
    players: int
    has_truncate: bool
    has_success: bool
    difficulty: int
    episodes: int
    mean_length: float
    """the mean length of the episodes that ended (NaN when none did)"""
    running: int
    """envs whose episode had not ended when the probe stopped"""
    success_rate: float
    """the fraction of ended episodes that succeeded (NaN without a `success` or episodes)"""
    distinct_returns: float
    """the fraction of ended episodes whose return differs from the most common one"""
    reward_max_abs: float
    """the largest |reward| of a step"""
    step_reward: float
    """the most common reward of a step"""
    step_reward_share: float
    """the fraction of steps whose reward is `step_reward`"""
    end_reward_only: bool
    """every step's reward but an episode's last is `step_reward`, which is 0"""
    distinct_obs: float
    """distinct observations seen / steps (near 0: few states, often revisited)"""
    obs_scale: tuple = (1.0, 1.0)
    """dense observations: the smallest and largest per-feature standard deviation"""
    symmetries: int = 0
    """the symmetries the env declares (`symmetry` blocks)"""

    @property
    def horizon(self) -> float:
        """Random play's typical episode length: the mean of ended episodes, weighed with
        the episodes still running at the probe's full length."""
        ended = 0.0 if np.isnan(self.mean_length) else self.mean_length * self.episodes
        total = self.episodes + self.running
        return (ended + self.running * STEP_LENGTH) / total if total else float("nan")

    @property
    def signal(self) -> float:
        """How often random play's outcome carries a learning signal: the success rate for
        envs that declare `success`, else the share of episodes whose return is not the
        most common one."""
        return self.success_rate if self.has_success and not np.isnan(self.success_rate) else self.distinct_returns

    def to_dict(self) -> dict:
        """The fields as JSON values (NaN as None)."""
        def plain(v):
            if isinstance(v, tuple):
                return list(v)
            return None if isinstance(v, float) and np.isnan(v) else v
        return {k: plain(v) for k, v in asdict(self).items()}


def probe_env(cls, params: dict, difficulty: int, seed: int, max_episode_steps: int = 0) -> Profile:
    """Random legal play (uniform over the mask; uniform within the bounds for continuous
    actions) in `STEP_ENVS` envs for up to `STEP_LENGTH` steps, stopping once
    `STEP_EPISODES` episodes have ended: what it saw, with the spec's facts."""
    vec = cls.vector(STEP_ENVS, seed=seed, difficulty=difficulty, max_episode_steps=max_episode_steps, **params)
    rng = np.random.default_rng(seed)
    space = vec.single_action_space
    kind = cls.spec["observation"]["kind"]
    obs, info = vec.reset()
    returns, lengths, successes = [], [], []
    ep_return, ep_length = np.zeros(STEP_ENVS), np.zeros(STEP_ENVS, dtype=np.int64)
    rewards, last_steps, seen = [], [], set()
    obs_rows = []
    for _ in range(STEP_LENGTH):
        if kind == "sparse":
            indices, counts = vec.observe_indices()
            seen.update(row[:k].tobytes() for row, k in zip(indices, counts))
        else:
            flat = obs.reshape(STEP_ENVS, -1)
            seen.update(row.tobytes() for row in flat)
            if len(obs_rows) < 64:
                obs_rows.append(flat.astype(np.float64))
        if cls.continuous:
            actions = rng.uniform(space.low, space.high, size=(STEP_ENVS, *space.shape))
        else:
            # A uniform legal action: the highest of a random score per action, masked ones at -1.
            scores = rng.random(info["action_mask"].shape)
            scores[~info["action_mask"].astype(bool)] = -1.0
            actions = scores.argmax(1)
        obs, reward, term, trunc, info = vec.step(actions)
        ended = term | trunc
        rewards.append(reward.astype(np.float64))
        last_steps.append(ended)
        ep_return += reward
        ep_length += 1
        for i in np.flatnonzero(ended):
            returns.append(ep_return[i])
            lengths.append(ep_length[i])
            successes.append(bool(info["success"][i]))
        ep_return[ended], ep_length[ended] = 0.0, 0
        if len(returns) >= STEP_EPISODES:
            break
    r, last = np.concatenate(rewards), np.concatenate(last_steps)
    values, counts = np.unique(r, return_counts=True)
    mode = float(values[np.argmax(counts)])
    share = float(counts.max() / r.size)
    episodes = len(returns)
    if episodes:
        rounded = np.round(np.array(returns), 6)
        _, return_counts = np.unique(rounded, return_counts=True)
        distinct = 1.0 - return_counts.max() / episodes
    else:
        distinct = 0.0
    scale = (1.0, 1.0)
    if obs_rows:
        std = np.concatenate(obs_rows).std(0)
        scale = (float(std.min()), float(std.max()))
    obs_space = vec.single_observation_space
    ones = int(vec.observe_indices()[0].shape[1]) if kind == "sparse" else 0
    return Profile(
        name=cls.name, obs_kind=kind, obs_size=int(np.prod(obs_space.shape)), obs_ones=ones,
        num_actions=int(space.shape[0] if cls.continuous else space.n), continuous=bool(cls.continuous),
        players=int(cls.players), has_truncate=bool(cls.spec.get("has_truncate")),
        has_success=bool(cls.spec.get("has_success")), difficulty=difficulty, episodes=episodes,
        mean_length=float(np.mean(lengths)) if episodes else float("nan"),
        running=int((ep_length >= STEP_LENGTH).sum()),
        success_rate=float(np.mean(successes)) if episodes and cls.spec.get("has_success") else float("nan"),
        distinct_returns=float(distinct), reward_max_abs=float(np.abs(r).max()), step_reward=mode,
        step_reward_share=share, end_reward_only=mode == 0.0 and bool(np.all(r[~last] == 0.0)),
        distinct_obs=len(seen) / max(1, r.size), obs_scale=scale, symmetries=len(cls.spec.get("symmetries", [])))
