"""8-puzzle raw stepping, one env from Python: ours against TwisteRL 0.5.1, one run.

    python bench/puzzle_vs_twisterl.py      # needs bench/setup_anchors.sh twisterl

Both loops read the mask, pick a random legal action in Python, step, observe, read
the reward and the end flag, and reset at the end. TwisteRL runs in its own venv as a
subprocess. Also prints our batched rate (VectorEnv, 64 envs) for scale.
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from harness import machine, random_vector_loop, rate  # noqa: E402

import twisterl  # noqa: E402

DIFFICULTY = 8


def ours_single() -> float:
    env = twisterl.compile(HERE.parent / "examples" / "puzzle.twl")(difficulty=DIFFICULTY, seed=0)
    _, info = env.reset()
    rng = random.Random(0)
    state = {"info": info}

    def chunk() -> int:
        info = state["info"]
        for _ in range(2000):
            mask = info["action_mask"]
            _, _, term, trunc, info = env.step(rng.choice([i for i in range(4) if mask[i]]))
            if term or trunc:
                _, info = env.reset()
        state["info"] = info
        return 2000

    return rate(chunk)


def ours_batched(n: int = 64) -> float:
    vec = twisterl.compile(HERE.parent / "examples" / "puzzle.twl").vector(n, seed=0, difficulty=DIFFICULTY)
    return rate(random_vector_loop(vec, 50))


def theirs() -> float | None:
    venv = Path(os.environ.get("BENCH_VENVS", Path.home() / ".cache" / "twisterl-bench")) / "twisterl"
    python = venv / "bin" / "python"
    if not python.exists():
        print(f"TwisteRL venv missing at {venv}: run bench/setup_anchors.sh twisterl", file=sys.stderr)
        return None
    out = subprocess.run([str(python), str(HERE / "anchor_twisterl.py"), str(DIFFICULTY)], capture_output=True,
                         text=True, cwd=HERE, check=True).stdout
    return float(out.split()[-1])


def main() -> None:
    print(f"# 8-puzzle stepping from Python, random legal actions, difficulty {DIFFICULTY} ({machine()})")
    mine, other = ours_single(), theirs()
    print(f"twisterl (ours), one env:        {mine:>12,.0f} steps/s")
    if other:
        print(f"TwisteRL 0.5.1, one env:         {other:>12,.0f} steps/s   ratio {mine / other:.2f}x")
    print(f"twisterl (ours), 64 envs batched: {ours_batched():>11,.0f} steps/s")


if __name__ == "__main__":
    main()
