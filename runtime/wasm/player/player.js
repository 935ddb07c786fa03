// The TwisteRL browser player: play an exported env by hand, or watch its bundled policy
// (and see what it thinks of each state: its action probabilities and value), and, when the
// package can search (`Env.search`), see the visit counts of a search.
// It reads bundle.json (written by `twisterl export --wasm`), loads the wasm-pack package
// it names, and drives its `Env` class. A package exported with --train also gets the
// Train panel (training.js), whose policy the agent then plays. Plain ES modules, no build step.

import { TrainingPanel } from "./training.js";

const $ = (id) => document.getElementById(id);

const KEYS = { ArrowLeft: "left", ArrowRight: "right", ArrowUp: "up", ArrowDown: "down" };
const EMPTY_CELLS = new Set([".", "_", "·"]);

const ui = {
  mod: null,        // the wasm-pack module
  bundle: null,     // bundle.json
  spec: null,       // the env's spec
  env: null,        // the current Env
  policy: null,     // a Policy, or null
  names: [],        // action names
  timer: null,      // the agent's play loop
  episodes: 0,
  solved: 0,
  counted: false,   // the current episode's end was counted
  trained: null,    // the last progress of training in this page, or null
  searches: 0,      // searches so far: the seed of the next one
};

const canSearch = () => ui.env && typeof ui.env.search === "function";

// Search from the current state; show each action's visits on its button. Returns the
// most visited action, or -1.
function search() {
  const env = ui.env;
  if (!canSearch() || env.done) return -1;
  const simulations = Math.max(1, Math.floor(Number($("simulations").value) || 1));
  let found;
  try {
    found = env.search({ simulations, seed: ui.searches++ });
  } catch (e) {
    showError(`The search failed: ${e.message}`);
    return -1;
  }
  const visits = Array.from(found.visits);
  const action = found.action;
  const value = found.value;
  found.free();
  for (const b of $("actions").querySelectorAll("button[data-action]")) {
    const a = Number(b.dataset.action);
    b.textContent = `${ui.names[a]} · ${visits[a]}`;
    b.classList.toggle("best", a === action);
  }
  $("search-note").textContent = `${simulations} simulations: value ${value.toFixed(3)} for the player to move; `
    + `the numbers are each action's visits.`;
  return action;
}

function clearVisits() {
  for (const b of $("actions").querySelectorAll("button[data-action]")) {
    if (b.dataset.action !== "values") b.textContent = ui.names[Number(b.dataset.action)];
    b.classList.remove("best");
  }
  $("search-note").textContent = "";
}

function showError(message) {
  const box = $("error");
  box.textContent = message;
  box.hidden = false;
}

function clearError() {
  $("error").hidden = true;
}

async function load() {
  if (location.protocol === "file:") {
    throw new Error("This page must be served over HTTP: browsers do not load WebAssembly modules from file://.\n"
      + "Serve the folder, for example: python -m http.server --directory THIS_FOLDER, then open http://localhost:8000/");
  }
  const response = await fetch("bundle.json", { cache: "no-cache" });
  if (!response.ok) {
    throw new Error(`bundle.json could not be loaded (HTTP ${response.status}). Is this the folder written by `
      + "`twisterl export --wasm`?");
  }
  ui.bundle = await response.json();
  try {
    ui.mod = await import(new URL(ui.bundle.module, location.href).href);
  } catch (e) {
    throw new Error(`the JavaScript glue ${ui.bundle.module} could not be loaded (${e.message})`);
  }
  try {
    await ui.mod.default({ module_or_path: new URL(ui.bundle.wasm, location.href) });
  } catch (e) {
    throw new Error(`the module ${ui.bundle.wasm} is missing or is not valid WebAssembly (${e.message})`);
  }
  const info = ui.bundle.policy;
  if (info && info.embedded) {
    ui.policy = ui.mod.Policy.bundled() || null;
  } else if (info && info.file) {
    const weights = await fetch(info.file, { cache: "no-cache" });
    if (!weights.ok) {
      throw new Error(`the policy file ${info.file} could not be loaded (HTTP ${weights.status})`);
    }
    ui.policy = ui.mod.Policy.fromSafetensors(new Uint8Array(await weights.arrayBuffer()));
  }
}

function paramInputs() {
  const box = $("params");
  box.replaceChildren();
  const preset = (ui.bundle.policy && ui.bundle.policy.params) || {};
  for (const p of ui.spec.params) {
    const label = document.createElement("label");
    label.textContent = `${p.name} `;
    let input;
    if (p.type.startsWith("enum:")) {
      input = document.createElement("select");
      for (const v of p.type.slice(5).split(",")) {
        const option = document.createElement("option");
        option.value = option.textContent = v;
        input.append(option);
      }
    } else if (p.type === "bool") {
      input = document.createElement("input");
      input.type = "checkbox";
    } else {
      input = document.createElement("input");
      input.type = "number";
      input.step = p.type === "int" ? "1" : "any";
      if (p.lo !== null) input.min = p.lo;
    }
    const value = p.name in preset ? preset[p.name] : p.default;
    if (input.type === "checkbox") input.checked = Boolean(value);
    else input.value = value;
    input.dataset.param = p.name;
    input.dataset.kind = p.type;
    label.append(input);
    box.append(label);
  }
}

function readParams() {
  const params = {};
  for (const input of $("params").querySelectorAll("[data-param]")) {
    const kind = input.dataset.kind;
    if (kind === "bool") params[input.dataset.param] = input.checked;
    else if (kind.startsWith("enum:")) params[input.dataset.param] = input.value;
    else params[input.dataset.param] = Number(input.value);
  }
  return params;
}

function newEnv(keepPlaying = false) {
  if (!keepPlaying) stopAgent();
  clearError();
  const seed = Number($("seed").value);
  const difficulty = Number($("difficulty").value);
  let env;
  try {
    env = new ui.mod.Env({ params: readParams(), seed, difficulty });
    env.reset();
  } catch (e) {
    showError(`Could not start the environment: ${e.message}`);
    return;
  }
  if (ui.env) ui.env.free();
  ui.env = env;
  ui.counted = false;
  ui.agentProblem = null;
  if (ui.policy) {
    try {
      env.setPolicy(ui.policy);
    } catch (e) {
      ui.agentProblem = e.message;
    }
  }
  ui.names = env.actionNames();
  buildActions();
  $("search-controls").hidden = !canSearch() || ui.names.length === 0;
  $("search-note").textContent = "";
  draw();
}

function buildActions() {
  const box = $("actions");
  box.replaceChildren();
  const env = ui.env;
  if (ui.names.length === 0) {
    // A continuous action: one slider per value, then a step button.
    const bounds = env.valueBounds;
    const n = bounds.length / 2;
    for (let k = 0; k < n; k++) {
      const label = document.createElement("label");
      label.textContent = `value ${k} `;
      const input = document.createElement("input");
      input.type = "range";
      input.min = bounds[k];
      input.max = bounds[n + k];
      input.step = "any";
      input.value = (bounds[k] + bounds[n + k]) / 2;
      input.dataset.value = String(k);
      label.append(input);
      box.append(label);
    }
    const step = document.createElement("button");
    step.type = "button";
    step.textContent = "Step";
    step.dataset.action = "values";
    step.addEventListener("click", () => {
      const values = [...box.querySelectorAll("[data-value]")].map((i) => Number(i.value));
      humanStep(values);
    });
    box.append(step);
    $("keys-hint").textContent = "";
    return;
  }
  ui.names.forEach((name, a) => {
    const b = document.createElement("button");
    b.type = "button";
    b.textContent = name;
    b.dataset.action = String(a);
    b.addEventListener("click", () => humanStep(a));
    box.append(b);
  });
  const arrows = ui.names.filter((n) => Object.values(KEYS).includes(n));
  $("keys-hint").textContent = arrows.length
    ? "Keys: the arrow keys, or 1-9 for the first nine actions."
    : "Keys: 1-9 for the first nine actions.";
}

function humanStep(action) {
  stopAgent();
  if (ui.env.done) return;
  clearVisits();
  try {
    const result = ui.env.step(action);
    result.free();
    clearError();
  } catch (e) {
    showError(e.message);
  }
  draw();
}

function agentStep() {
  const env = ui.env;
  if (env.done) {
    if (!$("auto-reset").checked) {
      stopAgent();
      return;
    }
    $("seed").value = String(Number($("seed").value) + 1);
    newEnv(true);   // the play loop goes on with the next puzzle
    return;
  }
  try {
    const searched = $("play-search").checked ? search() : -1;
    const result = searched >= 0 ? env.step(searched) : env.agentStep({ deterministic: $("deterministic").checked });
    result.free();
  } catch (e) {
    stopAgent();
    showError(`The agent could not play: ${e.message}`);
  }
  draw();
}

let playing = false;

function schedule() {
  clearTimeout(ui.timer);
  const rate = Number($("speed").value);
  ui.timer = setTimeout(() => {
    if (!playing) return;
    agentStep();
    if (playing) schedule();
  }, 1000 / rate);
}

function stopAgent() {
  playing = false;
  clearTimeout(ui.timer);
  $("play").textContent = "Play";
}

function togglePlay() {
  if (playing) {
    stopAgent();
    return;
  }
  playing = true;
  $("play").textContent = "Pause";
  schedule();
}

// A render block's `grid(...)` lines are cells padded to one width and joined by single
// spaces (trailing blanks trimmed). Find that width, or null when the text is not a grid.
function gridCells(text) {
  const lines = text.replace(/\s+$/, "").split("\n");
  if (lines.length < 2) return null;
  const length = Math.max(...lines.map((l) => l.length));
  for (let w = 1; w <= 6; w++) {
    if ((length + 1) % (w + 1) !== 0) continue;
    const cols = (length + 1) / (w + 1);
    if (cols < 2) break;
    const rows = lines.map((l) => l.padEnd(length));
    const separated = rows.every((r) => {
      for (let c = 0; c < cols - 1; c++) if (r[c * (w + 1) + w] !== " ") return false;
      return true;
    });
    if (separated) return rows.map((r) => Array.from({ length: cols }, (_, c) => r.slice(c * (w + 1), c * (w + 1) + w).trim()));
  }
  return null;
}

function drawBoard(text) {
  const board = $("board");
  const cells = gridCells(text);
  if (!cells) {
    const pre = document.createElement("pre");
    pre.textContent = text;
    board.replaceChildren(pre);
    return;
  }
  const table = document.createElement("table");
  for (const row of cells) {
    const tr = document.createElement("tr");
    for (const token of row) {
      const td = document.createElement("td");
      const empty = token === "" || EMPTY_CELLS.has(token);
      td.textContent = empty ? "" : token;
      if (empty) td.className = "empty";
      tr.append(td);
    }
    table.append(tr);
  }
  board.replaceChildren(table);
}

// The policy's view of the current state, in watch and play mode alike: each legal action's
// probability (the softmax of the logits over the legal actions; for continuous actions, the
// Gaussian's means) and the value estimate, as bars. The value bar is scaled by the largest
// value seen so far and grows left of its middle for negative values.
function think() {
  const box = $("thinking");
  if (!ui.policy || ui.agentProblem) {
    box.hidden = true;
    return;
  }
  let logits, value;
  try {
    const obs = ui.env.observation();
    logits = Array.from(ui.policy.logits(obs));
    value = ui.policy.value(obs);
  } catch (e) {
    box.hidden = true;
    return;
  }
  box.hidden = false;
  const rows = [];
  const bar = (label, fraction, text) => {
    const row = document.createElement("div");
    row.className = "think-row";
    const name = document.createElement("span");
    name.className = "think-label";
    name.textContent = label;
    const track = document.createElement("span");
    track.className = "think-bar";
    const fill = document.createElement("span");
    fill.style.width = `${Math.max(0, Math.min(1, fraction)) * 100}%`;
    track.append(fill);
    const number = document.createElement("b");
    number.textContent = text;
    row.append(name, track, number);
    rows.push(row);
  };
  if (ui.names.length) {
    const mask = Array.from(ui.env.actionMask());
    const legal = logits.map((l, a) => (mask[a] ? l : -Infinity));
    const max = Math.max(...legal);
    const weights = legal.map((l) => (Number.isFinite(l) && Number.isFinite(max) ? Math.exp(l - max) : 0));
    const total = weights.reduce((sum, w) => sum + w, 0);
    weights.forEach((w, a) => {
      const p = total > 0 ? w / total : 0;
      bar(ui.names[a], p, `${(p * 100).toFixed(1)}%`);
    });
    $("thinking-note").textContent = "Each bar: the probability the policy gives the action (illegal ones get none).";
  } else {
    const scale = Math.max(1e-9, ...logits.map(Math.abs));
    logits.forEach((mean, k) => bar(`value ${k}`, Math.abs(mean) / scale, mean.toFixed(3)));
    $("thinking-note").textContent = "Each bar: the mean of the policy's Gaussian for that action value.";
  }
  $("probs").replaceChildren(...rows);
  ui.valueScale = Math.max(ui.valueScale || 1e-9, Math.abs(value));
  const fill = $("value-bar");
  const half = (Math.abs(value) / ui.valueScale) * 50;
  fill.style.left = value >= 0 ? "50%" : `${50 - half}%`;
  fill.style.width = `${half}%`;
  $("value-text").textContent = value.toFixed(3);
}

function draw() {
  const env = ui.env;
  try {
    drawBoard(env.render());
  } catch (e) {
    showError(`render failed: ${e.message}`);
  }
  $("return").textContent = (Math.round(env.episodeReturn * 1000) / 1000).toString();
  $("steps").textContent = String(env.steps);
  $("player").textContent = ui.spec.players > 1 ? `player ${env.player} to move` : "";
  const outcome = $("outcome");
  const success = env.success;
  if (env.done && !ui.counted) {
    ui.counted = true;
    ui.episodes += 1;
    if (success) ui.solved += 1;
    $("episodes").textContent = String(ui.episodes);
    $("solved").textContent = String(ui.solved);
  }
  outcome.className = "outcome" + (success ? " success" : env.done ? " over" : "");
  outcome.textContent = success ? "✔ solved" : env.done ? "episode over" : "";
  const mask = ui.names.length ? env.actionMask() : null;
  for (const b of $("actions").querySelectorAll("button[data-action]")) {
    const a = b.dataset.action;
    b.disabled = env.done || (mask !== null && a !== "values" && !mask[Number(a)]);
  }
  const agentReady = (ui.policy && !ui.agentProblem) || (canSearch() && $("play-search").checked);
  $("agent-step").disabled = !agentReady;
  $("play").disabled = !agentReady;
  const trained = ui.trained;
  $("agent-note").textContent = !ui.policy
    ? "No policy in this bundle: human play only (export with --policy RUN_DIR to watch an agent"
      + (ui.bundle.train ? ", or press Train)." : ").")
    : ui.agentProblem
      ? `The policy cannot play these params: ${ui.agentProblem}`
      : trained
        ? `The policy trained in this page (iteration ${trained.iteration + 1}, difficulty ${trained.difficulty}).`
        : `A trained policy is bundled (${ui.bundle.policy.checkpoint} checkpoint).`;
  think();
}

function onKey(event) {
  if (!ui.env || event.target.closest("input, select, textarea")) return;
  let action = -1;
  if (KEYS[event.key]) action = ui.names.indexOf(KEYS[event.key]);
  else if (/^[1-9]$/.test(event.key)) action = Number(event.key) - 1;
  if (action >= 0 && action < ui.names.length) {
    event.preventDefault();
    if (ui.env.actionMask()[action]) humanStep(action);
  }
}

// A policy trained in the page: the agent plays it from now on (the episode goes on).
function usePolicy(bytes, progress) {
  let policy;
  try {
    policy = ui.mod.Policy.fromSafetensors(bytes);
  } catch (e) {
    showError(`The trained policy could not be read: ${e.message}`);
    return;
  }
  if (ui.policy) ui.policy.free();
  ui.policy = policy;
  ui.trained = progress;
  ui.agentProblem = null;
  try {
    ui.env.setPolicy(policy);
  } catch (e) {
    ui.agentProblem = e.message;
  }
  draw();
}

async function main() {
  try {
    await load();
  } catch (e) {
    $("subtitle").textContent = "The environment could not be loaded.";
    showError(`Could not load the environment: ${e.message}`);
    document.body.dataset.state = "failed";
    return;
  }
  const probe = new ui.mod.Env();
  ui.spec = JSON.parse(probe.spec);
  probe.free();
  document.title = `${ui.spec.name}: TwisteRL player`;
  $("title").textContent = ui.spec.name;
  $("subtitle").textContent = `from ${ui.spec.source}` + (ui.policy ? ", with a trained policy" : "");
  if (ui.bundle.policy) $("difficulty").value = String(Math.max(1, ui.bundle.policy.difficulty));
  paramInputs();
  $("settings").addEventListener("submit", (e) => {
    e.preventDefault();
    newEnv();
  });
  $("next").addEventListener("click", () => {
    $("seed").value = String(Number($("seed").value) + 1);
    newEnv();
  });
  $("agent-step").addEventListener("click", () => {
    stopAgent();
    agentStep();
  });
  $("play").addEventListener("click", togglePlay);
  $("search").addEventListener("click", () => {
    stopAgent();
    search();
  });
  $("play-search").addEventListener("change", draw);
  $("speed").addEventListener("input", () => {
    $("speed-value").textContent = $("speed").value;
  });
  document.addEventListener("keydown", onKey);
  if (ui.bundle.train) new TrainingPanel(ui.bundle, usePolicy);
  $("app").hidden = false;
  newEnv();
  document.body.dataset.state = "ready";
}

main();
