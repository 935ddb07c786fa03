"""P5: env steps/s in node (the wasm-pack package's batched `VecEnv.stepMany`) against
the native runtime (`VectorEnv.step`), one thread, one run.

    python bench/wasm_node.py            # exports the examples to a temporary folder first

Both sides run the same loop: draw uniform random legal actions from the current masks
(numpy natively, a JavaScript loop in node), then step the whole batch, which also
observes every env and computes its mask. A second table compares the same random legal
steps run entirely inside the module (`randomSteps` / `random_steps`): the engine alone.
Prints steps/s and the ratio wasm/native (the target is at least 0.7).
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from harness import MIN_SECONDS, REPEATS, machine, random_vector_loop, rate  # noqa: E402

import twisterl  # noqa: E402
from twisterl.wasm.export import export_wasm  # noqa: E402

CASES = [("puzzle", 4096), ("cartpole", 4096), ("connect4", 4096), ("puzzle", 64)]
STEPS = 20

NODE = r"""
import { readFileSync } from "node:fs";
import { pathToFileURL } from "node:url";
const [module, wasm, n, steps, repeats, minSeconds, mode] = process.argv.slice(2)
  .map((x, i) => i < 2 || i === 6 ? x : Number(x));
const mod = await import(pathToFileURL(module).href);
mod.initSync({ module: readFileSync(wasm) });
const vec = new mod.VecEnv({ numEnvs: n, seed: 0 });
vec.reset();
const A = vec.numActions;
const actions = new Int32Array(n);
let seed = 0;
function chunk() {
  if (mode === "engine") {
    vec.randomSteps(steps, seed++);
    return steps * n;
  }
  for (let t = 0; t < steps; t++) {
    const masks = vec.masks();
    for (let i = 0; i < n; i++) {        // argmax of uniform noise over the legal actions
      let best = 0, top = -1;
      for (let a = 0; a < A; a++) {
        const u = masks[i * A + a] ? Math.random() : -1;
        if (u > top) { top = u; best = a; }
      }
      actions[i] = best;
    }
    vec.stepMany(actions);
  }
  return steps * n;
}
// The harness's method: a warm-up window, then the median of `repeats` windows.
const rates = [];
for (let w = 0; w <= repeats; w++) {
  let units = 0;
  const start = performance.now();
  let elapsed = 0;
  do {
    units += chunk();
    elapsed = (performance.now() - start) / 1000;
  } while (elapsed < (w ? minSeconds : minSeconds / 2));
  if (w) rates.push(units / elapsed);
}
rates.sort((a, b) => a - b);
process.stdout.write(JSON.stringify(rates[Math.floor(rates.length / 2)]));
"""


def node_rate(out: Path, n: int, mode: str, script: Path) -> float:
    proc = subprocess.run(["node", str(script), str(out / "pkg" / "env.js"), str(out / "pkg" / "env_bg.wasm"),
                           str(n), str(STEPS), str(REPEATS), str(MIN_SECONDS), mode],
                          capture_output=True, text=True, check=True)
    return float(json.loads(proc.stdout))


def native_rate(name: str, n: int, mode: str) -> float:
    cls = twisterl.compile(HERE.parent / "examples" / f"{name}.twl")
    vec = cls.vector(n, seed=0, num_threads=1)
    if mode == "engine":
        vec.reset()
        seeds = iter(range(10**9))
        return rate(lambda: vec.random_steps(STEPS, next(seeds))["steps"])
    return rate(random_vector_loop(vec, STEPS))


def main() -> None:
    node_version = subprocess.run(["node", "--version"], capture_output=True, text=True).stdout.strip()
    work = Path(tempfile.mkdtemp(prefix="twisterl-bench-wasm-"))
    script = work / "bench.mjs"
    script.write_text(NODE)
    exports = {}
    for name in sorted({name for name, _ in CASES}):
        exports[name] = export_wasm(str(HERE.parent / "examples" / f"{name}.twl"), str(work / name)).out_dir
    print(f"# P5: env steps/s, node {node_version} (wasm, batched) vs native, 1 thread ({machine()})")
    for mode, title in (("host", "random legal actions drawn by the host, then stepMany / VectorEnv.step"),
                        ("engine", "random legal steps inside the module (randomSteps / random_steps)")):
        print(f"\n## {title}")
        print(f"{'env':<10}{'N':>6}{'native steps/s':>18}{'node steps/s':>18}{'ratio':>8}")
        for name, n in CASES:
            native = native_rate(name, n, mode)
            wasm = node_rate(exports[name], n, mode, script)
            print(f"{name:<10}{n:>6}{native:>18,.0f}{wasm:>18,.0f}{wasm / native:>7.2f}x", flush=True)


if __name__ == "__main__":
    main()
