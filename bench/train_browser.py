"""Training speed in WebAssembly against native, side by side in one run (issue 14).

The 8-puzzle with `twisterl train`'s resolved default config (256 envs x 64 steps, the
512/256 embedding network), from the same starting weights and seed:

* native: the Python driver's PPO with the Rust learner (`twisterl.train.ppo.PPO`), on one
  thread and on two;
* wasm: the package's `Trainer` (`twisterl export --train`) in node, one thread, 128-bit SIMD.

Both iterate until the curriculum reaches `--difficulty` (default 8). Printed: env steps
per second of training (collection and updates together), the wasm/native ratio, and the
time and iterations to the difficulty. Also the module sizes: the learner's code is the
difference between a `--train` package (less its starting weights) and a `--search` one.

    python bench/train_browser.py [--difficulty 8] [--max-iterations 40]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PUZZLE = str(ROOT / "examples" / "puzzle.twl")

NODE = r"""
import { readFileSync } from "node:fs";
import { pathToFileURL } from "node:url";
const [module, wasm, target, most] = process.argv.slice(2);
const mod = await import(pathToFileURL(module).href);
mod.initSync({ module: readFileSync(wasm) });
const t = new mod.Trainer();
const rows = [];
while (rows.length < Number(most)) {
  const t0 = performance.now();
  const p = t.iterate();
  rows.push({ seconds: (performance.now() - t0) / 1000, steps: p.envSteps, difficulty: p.difficulty,
              next: p.nextDifficulty, success: p.successRate });
  if (p.nextDifficulty >= Number(target) || p.finished) break;
}
process.stdout.write(JSON.stringify(rows));
"""


def native(threads: int, target: int, most: int) -> list[dict]:
    from twisterl.envs import compile as compile_env
    from twisterl.train.driver import PPORecipe
    from twisterl.train.ppo import PPO

    class Sink:
        def write(self, text: str) -> int:
            return len(text)

    cls = compile_env(PUZZLE)
    cfg = PPORecipe().configure({"learner": "rust", "num_threads": threads, "seed": 0}, cls, "bench", {}, Sink())
    ppo = PPO(cls, cfg, {})
    rows = []
    while len(rows) < most:
        start = time.perf_counter()
        s = ppo.iterate()
        rows.append({"seconds": time.perf_counter() - start, "steps": s.env_steps, "difficulty": s.difficulty,
                     "next": ppo.difficulty, "success": s.success_rate})
        if ppo.difficulty >= target:
            break
    return rows


def summary(name: str, rows: list[dict], target: int) -> dict:
    seconds = sum(r["seconds"] for r in rows)
    steps = sum(r["steps"] for r in rows)
    reached = rows[-1]["next"] >= target
    return {"name": name, "steps_per_s": steps / seconds, "seconds": seconds, "iterations": len(rows),
            "reached": reached, "per_iteration": seconds / len(rows)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--difficulty", type=int, default=8)
    ap.add_argument("--max-iterations", type=int, default=40)
    args = ap.parse_args()
    from twisterl.wasm.export import export_wasm

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        train = export_wasm(PUZZLE, str(tmp / "train"), train=True)
        search = export_wasm(PUZZLE, str(tmp / "search"), search=True)
        script = tmp / "train.mjs"
        script.write_text(NODE)
        out = subprocess.run(["node", str(script), str(train.out_dir / "pkg" / "env.js"), str(train.wasm),
                              str(args.difficulty), str(args.max_iterations)], capture_output=True, text=True,
                             check=True).stdout
        results = [summary("wasm (node), 1 thread", json.loads(out), args.difficulty)]
        for threads in (1, 2):
            results.append(summary(f"native, {threads} thread{'s' if threads > 1 else ''}",
                                   native(threads, args.difficulty, args.max_iterations), args.difficulty))
        wasm_train, wasm_search = train.wasm.stat().st_size, search.wasm.stat().st_size
        from twisterl.wasm.training import browser_training
        start = len(browser_training(PUZZLE).start)
    base = results[1]["steps_per_s"]
    print(f"8-puzzle, default config, to difficulty {args.difficulty} (seed 0)\n")
    print(f"| learner | env steps/s of training | ratio to native 1 thread | s per iteration | "
          f"iterations | seconds to difficulty {args.difficulty} |")
    print("|---|---|---|---|---|---|")
    for r in results:
        reached = f"{r['seconds']:.1f}" if r["reached"] else f"not reached in {r['seconds']:.1f}"
        print(f"| {r['name']} | {r['steps_per_s']:,.0f} | {r['steps_per_s'] / base:.2f}x | {r['per_iteration']:.2f} | "
              f"{r['iterations']} | {reached} |")
    print(f"\nmodule sizes: --train {wasm_train / 1024:.1f} KiB (of which starting weights {start / 1024:.1f} KiB), "
          f"--search {wasm_search / 1024:.1f} KiB: the learner and the PPO loop add "
          f"{(wasm_train - start - wasm_search) / 1024:.1f} KiB")


if __name__ == "__main__":
    sys.exit(main())
