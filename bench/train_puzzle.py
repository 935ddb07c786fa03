"""P1: 8-puzzle curriculum, wall time from difficulty 1 to 32, ours against TwisteRL 0.5.1.

    python bench/train_puzzle.py [rust] [torch]   # needs bench/setup_anchors.sh twisterl

Both learn with the same network (512 embedding, 256 common) on this machine's 2 cores:
TwisteRL with its own `ppo_puzzle8_v1.json` (num_cores = 2), ours with its defaults and
each learner named (default: both, `--learner rust` and `--learner torch`).
Each runs as a subprocess; the script notes the wall time at which each first reaches
every difficulty, then evaluates our final policy on 100 fresh sampled single-try
episodes at difficulty 32 (TwisteRL's `ppo_1`).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
LIMIT = float(os.environ.get("BENCH_TRAIN_SECONDS", 300))
CONFIG = Path(os.environ.get("TWISTERL_ANCHOR_CONFIG", ROOT.parent / "shared" / "anchors" / "ppo_puzzle8_v1.json"))


def timed_lines(cmd: list[str], pattern: str, env: dict | None = None, cwd: Path = ROOT) -> dict[int, float]:
    """Run `cmd`, returning {difficulty: seconds} for each line matching `pattern`."""
    reached: dict[int, float] = {}
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, cwd=cwd)
    try:
        for line in proc.stdout:
            m = re.search(pattern, line)
            if m:
                d = int(m.group(1))
                reached.setdefault(d, time.perf_counter() - start)
                if d >= 32 and "Diff increased" in line:
                    break
            if time.perf_counter() - start > LIMIT:
                break
    finally:
        proc.kill()
        proc.wait()
    return reached


def theirs() -> dict[int, float] | None:
    venv = Path(os.environ.get("BENCH_VENVS", Path.home() / ".cache" / "twisterl-bench")) / "twisterl"
    if not (venv / "bin" / "python").exists():
        print(f"TwisteRL venv missing at {venv}: run bench/setup_anchors.sh twisterl", file=sys.stderr)
        return None
    cfg = json.loads(CONFIG.read_text())
    cfg["algorithm"]["collecting"]["num_cores"] = 2
    tmp = Path(tempfile.mkdtemp())
    (tmp / "cfg.json").write_text(json.dumps(cfg))
    return timed_lines([str(venv / "bin" / "python"), "-m", "twisterl.train", "--config", str(tmp / "cfg.json"),
                        "--run_path", str(tmp / "run")], r"Diff increased to (\d+)",
                       env=dict(os.environ, PYTHONPATH=""), cwd=tmp)  # not ROOT: our package would shadow theirs


def ours(run: Path, learner: str) -> dict[int, float]:
    return timed_lines([sys.executable, "-m", "twisterl", "train", "examples/puzzle.twl", "--out", str(run),
                        "--time-limit", str(LIMIT), "--learner", learner], r"difficulty\s+(\d+)")


TARGETS = {"rust": 0.2, "torch": 0.5}


def main() -> None:
    learners = sys.argv[1:] or ["rust", "torch"]
    mine, evaluation = {}, {}
    for learner in learners:
        run = Path(tempfile.mkdtemp()) / "run"
        mine[learner] = ours(run, learner)
        evaluation[learner] = subprocess.run([sys.executable, "-m", "twisterl", "eval", str(run), "--episodes", "100",
                                              "--difficulty", "32"], capture_output=True, text=True,
                                             cwd=ROOT).stdout.strip()
    other = theirs()
    print("# P1: 8-puzzle curriculum, seconds to first reach each difficulty (2 cores)")
    print(f"{'difficulty':>10}" + "".join(f"{'ours, ' + name:>16}" for name in learners) + f"{'TwisteRL 0.5.1':>16}")
    for d in (8, 16, 20, 24, 28, 30, 32):
        cells = [f"{mine[name][d]:.1f}" if d in mine[name] else "-" for name in learners]
        b = f"{other[d]:.1f}" if other and d in other else "-"
        print(f"{d:>10}" + "".join(f"{c:>16}" for c in cells) + f"{b:>16}")
    for name in learners:
        if other and 32 in mine[name] and 32 in other:
            print(f"ratio at difficulty 32, learner {name}: {mine[name][32] / other[32]:.2f}x "
                  f"(target <= {TARGETS.get(name, 0.5)}x)")
        print(f"our final policy, learner {name}: {evaluation[name]}")


if __name__ == "__main__":
    main()
