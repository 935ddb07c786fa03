"""Stepping through the Python API against the same step loop run entirely in Rust.

    python bench/python_vs_rust.py

At batch 4096 on 1 thread: `VectorEnv.step` with random legal actions drawn in numpy,
against `VectorEnv.random_steps(observe=True)`, where the plugin draws the actions,
steps and observes in Rust (the limit). Both produce an observation and a mask per step. Prints both rates and the ratio (target >= 0.5x).
"""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from harness import machine, random_vector_loop, rate  # noqa: E402

import twisterl  # noqa: E402

N = 4096


def main() -> None:
    print(f"# stepping at batch {N}, 1 thread: Python API vs the loop inside Rust ({machine()})")
    print(f"{'env':<14}{'Python API steps/s':>20}{'Rust loop steps/s':>20}{'ratio':>8}")
    for name in ("cartpole", "connect4", "puzzle"):
        cls = twisterl.compile(HERE.parent / "examples" / f"{name}.twl")
        vec = cls.vector(N, seed=0, num_threads=1, difficulty=8)
        api = random_vector_loop(vec, 10)

        def inside() -> int:
            return vec.random_steps(10, seed=1, observe=True)["steps"]

        a, b = rate(api), rate(inside)
        print(f"{cls.name:<14}{a:>20,.0f}{b:>20,.0f}{a / b:>7.2f}x", flush=True)


if __name__ == "__main__":
    main()
