// Searches through an exported wasm-pack package, for the search parity tests.
//
//   node search.mjs JOB.json   ->  prints a JSON result on stdout
//
// JOB: {module, wasm, cases: [{seed, difficulty, actions: [...], options: {...}}]}
// For each case: a new Env with the seed and difficulty, reset, the actions stepped, then
// `env.search(options)`: its action, visits, value, priors and q (NaN as null), and the
// state afterwards (the search must leave the env unchanged).
import { readFileSync } from "node:fs";
import { pathToFileURL } from "node:url";

const job = JSON.parse(readFileSync(process.argv[2], "utf8"));
const mod = await import(pathToFileURL(job.module).href);
mod.initSync({ module: readFileSync(job.wasm) });

const finite = (xs) => Array.from(xs, (x) => (Number.isFinite(x) ? x : null));
const results = [];
for (const c of job.cases) {
  const env = new mod.Env({ seed: c.seed, difficulty: c.difficulty });
  env.reset();
  for (const a of c.actions) {
    env.step(a).free();
  }
  const before = Array.from(env.state);
  const found = env.search(c.options);
  results.push({
    action: found.action, visits: Array.from(found.visits), value: found.value,
    priors: Array.from(found.priors), q: finite(found.q), before, after: Array.from(env.state),
  });
  found.free();
  env.free();
}
process.stdout.write(JSON.stringify(results));
