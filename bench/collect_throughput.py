"""P3: rollout collection with policy inference, ours against TwisteRL 0.5.1's `collect`.

    python bench/collect_throughput.py      # needs bench/setup_anchors.sh twisterl

Both use the 8-puzzle, the same randomly initialised 512/256 network and 2 cores. Ours:
`twisterl._core.collect` over 256 envs x 64 steps (batched inference, masked sampling,
GAE, all in Rust). TwisteRL: `algorithm.collect()` (1024 episodes per call). Prints
env-steps/s for both and the ratio, and ours against two peaks: the issue's nominal one
(about 190 GFLOP/s of f32 FMA on 2 cores, 700k steps/s for this network) and, when
`bench/learner_engines/peak` is built, this machine's measured FMA peak on 2 threads (its
widest kernel) over the network's 2 × (512 × 256 + 256 × 5) FLOP per step.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from harness import machine, rate  # noqa: E402

import twisterl  # noqa: E402
from twisterl import _core  # noqa: E402
from twisterl.train.nets import BasicPolicy, to_rust  # noqa: E402

CONFIG = Path(os.environ.get("TWISTERL_ANCHOR_CONFIG", HERE.parents[1] / "shared" / "anchors" / "ppo_puzzle8_v1.json"))
PEAK_STEPS = 700_000
FLOP_PER_STEP = 2 * (512 * 256 + 256 * 5)
FMA_PEAK = HERE / "learner_engines" / "peak" / "target" / "release" / "fma-peak"


def measured_peak_steps() -> float | None:
    """Steps/s at this machine's measured 2-thread f32 FMA peak (best kernel), if `fma-peak` is built."""
    if not FMA_PEAK.exists():
        return None
    out = subprocess.run([str(FMA_PEAK), "--threads", "2"], capture_output=True, text=True, check=True).stdout
    rows = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    gflops = max(r["gflops"] for r in rows if r["threads"] == 2 and r["chains"] > 1)
    print(f"# measured peak: {gflops:.1f} GFLOP/s on 2 threads = {gflops * 1e9 / FLOP_PER_STEP:,.0f} steps/s")
    return gflops * 1e9 / FLOP_PER_STEP


def ours(difficulty: int) -> float:
    cls = twisterl.compile(HERE.parent / "examples" / "puzzle.twl")
    vec = cls.vector(256, seed=0, num_threads=2, difficulty=difficulty)
    vec.reset()
    policy = to_rust(BasicPolicy(81, 4, 512, [256]))
    state = {"seed": 0}

    def chunk() -> int:
        state["seed"] += 1
        data = _core.collect(vec._batch, policy, 64, state["seed"])
        return data["actions"].size

    return rate(chunk)


def theirs(difficulty: int) -> float | None:
    venv = Path(os.environ.get("BENCH_VENVS", Path.home() / ".cache" / "twisterl-bench")) / "twisterl"
    if not (venv / "bin" / "python").exists():
        print(f"TwisteRL venv missing at {venv}: run bench/setup_anchors.sh twisterl", file=sys.stderr)
        return None
    # The anchor's venv has its own packages: a PYTHONPATH meant for ours must not reach it.
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    out = subprocess.run([str(venv / "bin" / "python"), str(HERE / "anchor_twisterl_collect.py"), str(CONFIG),
                          str(difficulty)], capture_output=True, text=True, cwd=HERE, check=True, env=env).stdout
    return float(out.split()[-1])


def main() -> None:
    print(f"# P3: 8-puzzle collection with a 512/256 policy, 2 cores ({machine()})")
    peak = measured_peak_steps()
    print(f"{'difficulty':>10}{'ours steps/s':>16}{'TwisteRL steps/s':>18}{'ratio':>8}{'of 700k':>9}"
          f"{'of measured':>13}")
    for d in (1, 32):
        mine, other = ours(d), theirs(d)
        ratio = f"{mine / other:.2f}x" if other else "-"
        of_measured = f"{mine / peak:.0%}" if peak else "-"
        print(f"{d:>10}{mine:>16,.0f}{(f'{other:,.0f}' if other else '-'):>18}{ratio:>8}{mine / PEAK_STEPS:>8.0%}"
              f"{of_measured:>13}")


if __name__ == "__main__":
    main()
