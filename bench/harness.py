"""Timing for the benchmarks: the median rate over several timed windows.

Each window calls `chunk()` (which does some work and returns how many units it did)
until `min_seconds` have passed. Shared by every script here and by the anchor
subprocesses, so both sides of a ratio are measured the same way.
"""

from __future__ import annotations

import os
import platform
import statistics
import time
from typing import Callable

REPEATS = int(os.environ.get("BENCH_REPEATS", 5))
MIN_SECONDS = float(os.environ.get("BENCH_MIN_SECONDS", 1.0))


def rate(chunk: Callable[[], int], repeats: int = REPEATS, min_seconds: float = MIN_SECONDS) -> float:
    """Median units per second over `repeats` windows (after one warm-up window)."""
    rates = []
    for window in range(repeats + 1):
        units, start = 0, time.perf_counter()
        while True:
            units += chunk()
            elapsed = time.perf_counter() - start
            if elapsed >= (min_seconds if window else min_seconds / 2):
                break
        if window:
            rates.append(units / elapsed)
    return statistics.median(rates)


def machine() -> str:
    return f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"


def random_vector_loop(vec, steps: int, seed: int = 0) -> Callable[[], int]:
    """A `chunk` for `rate`: `steps` batched steps with uniform random legal actions drawn
    in numpy from the current mask (works for twisterl and EnvPool-style info dicts)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    n = vec.num_envs
    state = {"info": vec.reset()[1]}

    def chunk() -> int:
        info = state["info"]
        for _ in range(steps):
            mask = info["action_mask"]
            _, _, _, _, info = vec.step(np.argmax(rng.random(mask.shape) * mask, axis=1))
        state["info"] = info
        return steps * n

    return chunk
