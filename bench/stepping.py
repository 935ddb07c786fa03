"""Batched random legal-action stepping, 1 thread: ours against EnvPool 1.2.5, one run.

    python bench/stepping.py            # needs bench/setup_anchors.sh envpool

Both sides run the same loop from Python: draw uniform random legal actions with numpy
from the current mask, then step the whole batch. EnvPool runs in its own venv as a
subprocess, timed by the same harness. Prints env-steps/s and the ratio.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from harness import machine, random_vector_loop, rate  # noqa: E402

import twisterl  # noqa: E402

CASES = [("cartpole", "CartPole-v1", 64), ("cartpole", "CartPole-v1", 4096),
         ("connect4", "ConnectFour-v1", 64), ("connect4", "ConnectFour-v1", 4096)]


def ours(name: str, n: int) -> float:
    cls = twisterl.compile(HERE.parent / "examples" / f"{name}.twl")
    return rate(random_vector_loop(cls.vector(n, seed=0, num_threads=1), 20))


def anchor(cases: list[str]) -> dict[tuple[str, int], float]:
    venv = Path(os.environ.get("BENCH_VENVS", Path.home() / ".cache" / "twisterl-bench")) / "envpool"
    python = venv / "bin" / "python"
    if not python.exists():
        print(f"EnvPool venv missing at {venv}: run bench/setup_anchors.sh envpool", file=sys.stderr)
        return {}
    out = subprocess.run([str(python), str(HERE / "anchor_envpool.py"), *cases], capture_output=True,
                         text=True, cwd=HERE, check=True).stdout
    result = {}
    for line in out.splitlines():
        env_id, n, r = line.split()
        result[(env_id, int(n))] = float(r)
    return result


def main() -> None:
    print(f"# batched random legal-action stepping, 1 thread ({machine()})")
    theirs = anchor([f"{env_id}:{n}" for _, env_id, n in CASES])
    print(f"{'env':<16}{'N':>6}{'twisterl steps/s':>20}{'EnvPool steps/s':>20}{'ratio':>8}")
    for name, env_id, n in CASES:
        mine = ours(name, n)
        other = theirs.get((env_id, n))
        ratio = f"{mine / other:.2f}x" if other else "-"
        other_text = f"{other:,.0f}" if other else "-"
        print(f"{env_id:<16}{n:>6}{mine:>20,.0f}{other_text:>20}{ratio:>8}", flush=True)


if __name__ == "__main__":
    main()
