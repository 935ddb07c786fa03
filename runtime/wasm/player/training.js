// The player's Train panel: starts the trainer worker (train-worker.js), draws the learning
// curve as iterations come in, and hands each new policy to the page, so the agent, its
// thoughts and its searches use what was learnt so far.

const $ = (id) => document.getElementById(id);

export class TrainingPanel {
  // `bundle` is bundle.json; `onPolicy(bytes, progress)` gets each new policy file.
  constructor(bundle, onPolicy) {
    this.bundle = bundle;
    this.onPolicy = onPolicy;
    this.worker = null;
    this.running = false;
    this.history = [];
    window.__training = this.history; // for tests and for the console
    $("training").hidden = false;
    $("train").addEventListener("click", () => this.toggle());
    const cfg = bundle.train.config;
    $("train-note").textContent = `PPO in this page (a Web Worker): ${cfg.num_envs} envs x ${cfg.num_steps} steps per `
      + `iteration, difficulty ${cfg.difficulty} to ${cfg.diff_max}.`
      + (bundle.train.notes.length ? ` Note: ${bundle.train.notes.join("; ")}.` : "");
    this.draw();
  }

  toggle() {
    if (this.worker === null) {
      this.start();
    } else if (this.running) {
      this.worker.postMessage({ type: "pause" });
      this.setRunning(false);
    } else {
      this.worker.postMessage({ type: "resume" });
      this.setRunning(true);
    }
  }

  start() {
    this.worker = new Worker(new URL("train-worker.js", location.href), { type: "module" });
    this.worker.onmessage = (event) => this.receive(event.data);
    this.worker.onerror = (event) => this.fail(event.message || "the trainer worker failed to start");
    const url = (path) => new URL(path, location.href).href;
    this.worker.postMessage({ type: "start", module: url(this.bundle.module), wasm: url(this.bundle.wasm),
      config: {}, params: {} });
    this.startedAt = performance.now();
    this.setRunning(true);
  }

  setRunning(running) {
    this.running = running;
    $("train").textContent = running ? "Pause training" : (this.history.length ? "Resume training" : "Train");
    document.body.dataset.training = running ? "running" : this.history.length ? "paused" : "idle";
  }

  receive(msg) {
    if (msg.type === "progress") {
      const p = msg.progress;
      p.elapsed = (performance.now() - this.startedAt) / 1000;
      this.history.push(p);
      document.body.dataset.trainIteration = String(p.iteration);
      document.body.dataset.trainDifficulty = String(p.nextDifficulty);
      const rate = Number.isNaN(p.successRate) ? "no episode ended" : `success ${(100 * p.successRate).toFixed(0)}%`;
      $("train-status").textContent = `iteration ${p.iteration + 1}, difficulty ${p.difficulty}: ${rate}, `
        + `${p.totalEnvSteps.toLocaleString()} env steps in ${p.elapsed.toFixed(0)} s`;
      this.draw();
      this.onPolicy(msg.policy, p);
    } else if (msg.type === "finished") {
      this.setRunning(false);
      $("train").disabled = true;
      $("train").textContent = "Training finished";
      document.body.dataset.training = "finished";
    } else if (msg.type === "error") {
      this.fail(msg.message);
    }
  }

  fail(message) {
    this.setRunning(false);
    document.body.dataset.training = "failed";
    $("train-status").textContent = `Training stopped: ${message}`;
  }

  // The learning curve: success rate (line) and difficulty (steps, scaled to diff_max) over env steps.
  draw() {
    const canvas = $("curve");
    const g = canvas.getContext("2d");
    const { width: w, height: h } = canvas;
    g.clearRect(0, 0, w, h);
    g.strokeStyle = "#ccc";
    g.strokeRect(0.5, 0.5, w - 1, h - 1);
    const points = this.history;
    if (points.length === 0) return;
    const maxX = points[points.length - 1].totalEnvSteps;
    const dmax = Math.max(1, this.bundle.train.config.diff_max);
    const x = (p) => 4 + (w - 8) * (p.totalEnvSteps / maxX);
    const line = (value, color) => {
      g.strokeStyle = color;
      g.lineWidth = 2;
      g.beginPath();
      let first = true;
      for (const p of points) {
        const v = value(p);
        if (Number.isNaN(v)) continue;
        const y = h - 4 - (h - 8) * Math.min(1, Math.max(0, v));
        if (first) g.moveTo(x(p), y); else g.lineTo(x(p), y);
        first = false;
      }
      g.stroke();
    };
    line((p) => p.successRate, "#2a7");
    line((p) => p.difficulty / dmax, "#36c");
  }
}
