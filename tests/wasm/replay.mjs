// Replays recorded episodes through an exported wasm-pack package, for the parity tests.
//
//   node replay.mjs JOB.json   ->  prints a JSON result on stdout
//
// JOB: {module, wasm, cases: [{params, seed, difficulty, events: [["reset"] | ["step", action]]}]}
// For each case: after every event, the observation, and for steps the reward, terminated,
// truncated and success; at the end the render text and the state vector.
import { readFileSync } from "node:fs";
import { pathToFileURL } from "node:url";

const job = JSON.parse(readFileSync(process.argv[2], "utf8"));
const mod = await import(pathToFileURL(job.module).href);
mod.initSync({ module: readFileSync(job.wasm) });

const results = [];
for (const c of job.cases) {
  const env = new mod.Env({ params: c.params, seed: c.seed, difficulty: c.difficulty });
  const out = { obs: [], rewards: [], terminated: [], truncated: [], success: [], renders: [] };
  for (const [kind, action] of c.events) {
    if (kind === "reset") {
      env.reset();
    } else {
      const r = env.step(action);
      out.rewards.push(r.reward);
      out.terminated.push(r.terminated);
      out.truncated.push(r.truncated);
      out.success.push(r.success);
      r.free();
    }
    out.obs.push(Array.from(env.observation()));
    out.renders.push(env.render());
  }
  out.state = Array.from(env.state);
  results.push(out);
  env.free();
}
process.stdout.write(JSON.stringify(results));
