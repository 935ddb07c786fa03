// The player's trainer, in a Web Worker so the page stays responsive: it loads the same
// wasm-pack package as the page, runs `Trainer.iterate()` in a loop, and after each
// iteration posts the progress and the current policy (a policy file's bytes) back.
//
// Messages in:  {type: "start", module, wasm, config, params}, {type: "pause"}, {type: "resume"}
// Messages out: {type: "progress", progress, policy}, {type: "finished"}, {type: "error", message}

let trainer = null;
let running = false;

const FIELDS = ["iteration", "difficulty", "successRate", "meanReturn", "meanLength", "episodes", "envSteps",
  "totalEnvSteps", "policyLoss", "valueLoss", "entropy", "approxKl", "clipfrac", "explainedVariance",
  "intrinsic", "nextDifficulty", "finished"];

async function start({ module, wasm, config, params }) {
  const mod = await import(module);
  await mod.default({ module_or_path: wasm });
  trainer = new mod.Trainer({ config, params });
  running = true;
  loop();
}

function loop() {
  if (!running || trainer === null) return;
  let message;
  try {
    const started = performance.now();
    const p = trainer.iterate();
    const progress = Object.fromEntries(FIELDS.map((k) => [k, p[k]]));
    progress.seconds = (performance.now() - started) / 1000;
    p.free();
    const policy = trainer.policyBytes();
    message = { type: "progress", progress, policy };
    postMessage(message, [policy.buffer]);
    if (progress.finished) {
      running = false;
      postMessage({ type: "finished" });
      return;
    }
  } catch (e) {
    running = false;
    postMessage({ type: "error", message: e instanceof Error ? e.message : String(e) });
    return;
  }
  // Yield between iterations, so that a pause message is seen.
  setTimeout(loop, 0);
}

onmessage = (event) => {
  const msg = event.data;
  if (msg.type === "start") {
    start(msg).catch((e) => postMessage({ type: "error", message: e instanceof Error ? e.message : String(e) }));
  } else if (msg.type === "pause") {
    running = false;
  } else if (msg.type === "resume") {
    if (!running) {
      running = true;
      loop();
    }
  }
};
