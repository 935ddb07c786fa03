"""Compile latency of the 8-puzzle: cold (empty cache) and warm (cache hit, new process).

    python bench/compile_latency.py

Targets: warm <= 0.2 s, cold <= 10 s on 2 cores. Each measurement is a fresh process
running `twisterl.compile`, so imports and loading are included.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PROBE = ("import time; t = time.perf_counter(); import twisterl, twisterl.envs.compiler; "
         "c = time.perf_counter(); twisterl.compile({path!r}); e = time.perf_counter(); "
         "print(e - c, e - t)")


def once(cache: str, path: Path) -> tuple[float, float]:
    """(the compile call alone, import + compile), in a fresh process."""
    env = dict(os.environ, TWISTERL_CACHE_DIR=cache)
    out = subprocess.run([sys.executable, "-c", PROBE.format(path=str(path))], env=env, capture_output=True,
                         text=True, check=True).stdout
    call, total = out.strip().splitlines()[-1].split()
    return float(call), float(total)


def main() -> None:
    path = ROOT / "examples" / "puzzle.twl"
    colds, warms = [], []
    for _ in range(3):
        with tempfile.TemporaryDirectory() as cache:
            colds.append(once(cache, path))
            warms += [once(cache, path) for _ in range(3)]
    print("# compile latency, 8-puzzle, a fresh process each time")
    print(f"{'':<20}{'compile() call':>16}{'import + compile':>18}")
    for label, runs in (("cold (empty cache)", colds), ("warm (cache hit)", warms)):
        call = statistics.median(r[0] for r in runs)
        total = statistics.median(r[1] for r in runs)
        print(f"{label:<20}{call:>15.3f}s{total:>17.3f}s")


if __name__ == "__main__":
    main()
