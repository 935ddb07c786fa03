"""Pendulum: mean return after 1M env steps of PPO with the defaults (target >= -250).

    python bench/train_pendulum.py [--seeds 0 1 2]

Each seed trains `examples/pendulum.twl` through the CLI with no config (the continuous
defaults stop at 1M steps), then `twisterl eval` plays 100 episodes with the Gaussian's
mean. Prints per seed: wall time, the mean return of the last iteration's training
episodes (sampled actions) and the evaluation's mean return (deterministic).
"""

from __future__ import annotations

import argparse
import csv
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def run(seed: int) -> dict:
    out = Path(tempfile.mkdtemp()) / f"pendulum-{seed}"
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "twisterl", "train", str(ROOT / "examples" / "pendulum.twl"),
                    "--out", str(out), "--seed", str(seed)], check=True, stdout=subprocess.DEVNULL)
    seconds = time.perf_counter() - start
    rows = list(csv.DictReader(open(out / "metrics.csv")))
    text = subprocess.run([sys.executable, "-m", "twisterl", "eval", str(out), "--episodes", "100",
                           "--deterministic"], check=True, capture_output=True, text=True).stdout
    evaluated = float(re.search(r"mean return ([-+0-9.]+)", text).group(1))
    return {"seed": seed, "seconds": seconds, "env_steps": int(rows[-1]["total_env_steps"]),
            "train_return": float(rows[-1]["mean_return"]), "eval_return": evaluated}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    args = parser.parse_args()
    results = [run(seed) for seed in args.seeds]
    print(f"{'seed':>4} {'seconds':>8} {'env steps':>10} {'train return':>13} {'eval return':>12}")
    for r in results:
        print(f"{r['seed']:>4} {r['seconds']:>8.1f} {r['env_steps']:>10} {r['train_return']:>13.1f} "
              f"{r['eval_return']:>12.1f}")
    mean = sum(r["eval_return"] for r in results) / len(results)
    print(f"mean eval return over {len(results)} seed(s): {mean:.1f} (target >= -250)")


if __name__ == "__main__":
    main()
