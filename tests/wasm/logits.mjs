// Runs policy files through an exported package's `Policy` class, for the network tests.
//
//   node logits.mjs JOB.json   ->  prints a JSON result on stdout
//
// JOB: {module, wasm, policies: [{file, obs: [[...], ...], values: bool}]}
// For each policy and observation: the logits and the value, and with `values` the
// deterministic action values of a Gaussian policy.
import { readFileSync } from "node:fs";
import { pathToFileURL } from "node:url";

const job = JSON.parse(readFileSync(process.argv[2], "utf8"));
const mod = await import(pathToFileURL(job.module).href);
mod.initSync({ module: readFileSync(job.wasm) });

const results = [];
for (const p of job.policies) {
  const policy = mod.Policy.fromSafetensors(readFileSync(p.file));
  const obs = p.obs.map((row) => Float32Array.from(row));
  const out = {
    logits: obs.map((o) => Array.from(policy.logits(o))),
    values: obs.map((o) => policy.value(o)),
  };
  if (p.values) {
    out.actValues = obs.map((o) => Array.from(policy.actValues(o, { deterministic: true })));
  }
  results.push(out);
  policy.free();
}
process.stdout.write(JSON.stringify(results));
