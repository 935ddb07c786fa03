"""`twisterl run FILE`: random legal-action episodes, their stats and the steps per second."""

from __future__ import annotations

import time
from typing import TextIO


def run(path: str, episodes: int, seed: int, params: dict, difficulty: int, num_envs: int, threads: int,
        out: TextIO, max_length: int = 100_000) -> int:
    """Exactly `episodes` episodes of random legal actions, each from a reset; an episode
    still going after `max_length` steps is cut and reported, so the command always ends."""
    from ..envs import compile
    cls = compile(path)
    if episodes < 1 or max_length < 1:
        print("error: --episodes and --max-length must be at least 1", file=out)
        return 1
    vec = cls.vector(min(num_envs, episodes), seed=seed, num_threads=threads, difficulty=difficulty, **params)
    start = time.perf_counter()
    stats = vec.random_episodes(episodes, seed=seed, max_length=max_length)
    seconds = max(time.perf_counter() - start, 1e-9)
    ended = stats["episodes"]
    print(f"env {cls.name}: {_count(ended, 'episode')}, {stats['steps']:,} steps of random legal actions", file=out)
    if stats["cut"]:
        print(f"  {_count(stats['cut'], 'episode')} did not end within {max_length:,} steps and "
              f"{'was' if stats['cut'] == 1 else 'were'} cut (--max-length); they are not counted below", file=out)
    if ended:
        returns = stats["returns"]
        shown = (f"mean return {returns[0] / ended:.4f}" if cls.players == 1 else
                 "mean return " + ", ".join(f"player {p} {r / ended:+.4f}" for p, r in enumerate(returns)))
        line = f"  {shown}, mean length {stats['length_sum'] / ended:.1f}"
        if cls.spec.get("has_success"):
            line += f", success rate {stats['successes'] / ended:.3f}"
        print(line, file=out)
    print(f"  {stats['steps'] / seconds:,.0f} steps/s on {threads} thread(s), {vec.num_envs} env(s)", file=out)
    return 0


def _count(n: int, noun: str) -> str:
    return f"{n:,} {noun}{'' if n == 1 else 's'}"
