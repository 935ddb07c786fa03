"""What a short probe of random play tells training about an env it knows nothing else of."""

from __future__ import annotations

# Random play that runs this long without ending means the env needs a step limit in training.
PROBE_EPISODES, PROBE_LENGTH = 64, 1_000


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
