// Loads each .wasm given, stubs its function imports (candle's module keeps wasm-bindgen
// placeholders that this path never calls; a call would throw), and runs
// train_step(seed 0, batch 64): the loss should equal the native binary's first loss for
// the same seed and batch (candle-learner-bench --batch 64 --seed 0: "loss_first").
//   node check.mjs a.wasm [b.wasm ...]
import { readFileSync } from "node:fs";
for (const path of process.argv.slice(2)) {
  const bytes = readFileSync(path);
  const mod = await WebAssembly.compile(bytes);
  const stubs = {};
  const imports = WebAssembly.Module.imports(mod);
  for (const i of imports) {
    if (i.kind !== "function") throw new Error(`cannot stub ${i.kind} import ${i.module}.${i.name}`);
    (stubs[i.module] ??= {})[i.name] = () => { throw new Error(`stub ${i.module}.${i.name} called`); };
  }
  const { exports } = await WebAssembly.instantiate(mod, stubs);
  const t = performance.now();
  const loss = exports.train_step(0, 64);
  const ms = performance.now() - t;
  console.log(`${path}: ${bytes.length} bytes, ${imports.length} imports; ` +
    `train_step(0, 64) = ${loss.toFixed(6)} (${ms.toFixed(1)} ms incl. init)`);
}
