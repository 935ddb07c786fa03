// Instantiate each size-probe .wasm with no imports, list what it imports and exports,
// and call forward_puzzle(seed, batch): ours and candle should return the same sum
// (to float rounding), showing both modules really run the network. Function imports
// (candle's module keeps wasm-bindgen placeholders, never called on this path) are given
// stubs that throw, so the raw cargo output can run without wasm-bindgen's JS glue.
//   node wasm_check.mjs a.wasm b.wasm ...
import { readFileSync } from "node:fs";
for (const path of process.argv.slice(2)) {
  const bytes = readFileSync(path);
  const mod = await WebAssembly.compile(bytes);
  const imports = WebAssembly.Module.imports(mod).map((i) => `${i.module}.${i.name}`);
  const exports = WebAssembly.Module.exports(mod).map((e) => e.name);
  const stubs = {};
  for (const i of WebAssembly.Module.imports(mod)) {
    if (i.kind !== "function") throw new Error(`cannot stub ${i.kind} import ${i.module}.${i.name}`);
    (stubs[i.module] ??= {})[i.name] = () => { throw new Error(`stub ${i.module}.${i.name} called`); };
  }
  let result;
  {
    const ex = (await WebAssembly.instantiate(mod, stubs)).exports;
    const t = performance.now();
    const r = ex.forward_puzzle(7, 64);
    result = `forward_puzzle(7, 64) = ${r.toFixed(4)} (${(performance.now() - t).toFixed(1)} ms, incl. weight init)`;
  }
  const shown = exports.filter((e) => !e.startsWith("__wbindgen_describe"));
  const described = exports.length - shown.length;
  console.log(`${path}: ${bytes.length} bytes; ${imports.length} imports [${imports.join(", ")}]; ` +
    `exports [${shown.join(", ")}${described ? `, and ${described} __wbindgen_describe_*` : ""}]; ${result}`);
}
