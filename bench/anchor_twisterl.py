"""TwisteRL 0.5.1's side of bench/puzzle_vs_twisterl.py, run in its own venv.

Prints `RATE` lines: the 8-puzzle stepped from Python, random legal actions, with
masks, observe, reward and is_final each step (TwisteRL's own loop).
"""

import random
import sys

import twisterl.envs  # noqa: F401  (TwisteRL 0.5.1, not ours)

from harness import rate

difficulty = int(sys.argv[1]) if len(sys.argv) > 1 else 8
env = twisterl.envs.Puzzle(width=3, height=3, difficulty=difficulty, depth_slope=2, max_depth=256)
env.reset()
rng = random.Random(0)


def chunk() -> int:
    for _ in range(2000):
        m = env.masks()
        env.step(rng.choice([i for i in range(4) if m[i]]))
        env.observe()
        env.reward()
        if env.is_final():
            env.reset()
    return 2000


print(rate(chunk), flush=True)
