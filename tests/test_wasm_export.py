"""`twisterl export --wasm`: the package, its sizes, and parity with the native runtime.

For every example, one seeded trajectory of random legal actions (with resets) is played
natively, then replayed in node through the wasm-pack package and in wasmtime through the
raw C-ABI module: observations, rewards, endings, renders and states must be identical.

The one documented exception: `sin`, `cos`, `tan`, `exp`, `log`, `atan2` and float `**`
come from the platform's libm natively (glibc) and from Rust's port of musl's libm in
WebAssembly. Both are within an ulp, but not always the same ulp, so envs that use them
may differ in the last bits of their f64 rewards and state (docs/wasm.md). Their float32
observations, endings, successes and renders must still be identical.
"""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from wasm_support import EXAMPLES, NODE_PRELUDE, ROOT, RawEnv, exported, node, require_tools, trained_puzzle

REPLAY = ROOT / "tests" / "wasm" / "replay.mjs"
STEPS = 150
LIBM = re.compile(r"\b(sin|cos|tan|exp|log|atan2)\s*\(|\*\*")


def uses_libm(name: str) -> bool:
    return bool(LIBM.search((ROOT / "examples" / f"{name}.twl").read_text()))


def assert_floats_match(name: str, got: list, want: list, what: str) -> None:
    """Identical, or for an env that uses libm functions, within a few ulps."""
    if got == want:
        return
    assert uses_libm(name), f"{what} differs, and {name} uses no libm function"
    np.testing.assert_allclose(np.array(got, dtype=float), np.array(want, dtype=float), rtol=1e-12, atol=1e-12,
                               err_msg=what)


@pytest.fixture(scope="module")
def tools(build_cache):
    return require_tools()


def _clean(values):
    """NaN and infinities as JSON gives them back from JavaScript (null)."""
    return [None if isinstance(v, float) and not math.isfinite(v) else v for v in values]


def record(cls, name: str, seed: int = 3):
    """A native trajectory: the events, and what each produced."""
    difficulty = 3
    env = cls(seed=seed, difficulty=difficulty)
    rng = np.random.default_rng(seed)
    obs, info = env.reset()
    events, out = [["reset"]], {"obs": [_clean(obs.ravel().astype(float).tolist())], "rewards": [],
                                 "terminated": [], "truncated": [], "success": [], "renders": [env.render()]}
    done = False
    for _ in range(STEPS):
        if done:
            obs, info = env.reset()
            events.append(["reset"])
            done = False
        else:
            if cls.continuous:
                space = env.action_space
                action = rng.uniform(space.low, space.high).astype(float).tolist()
            else:
                action = int(rng.choice(np.flatnonzero(info["action_mask"])))
            obs, reward, term, trunc, info = env.step(action)
            events.append(["step", action])
            out["rewards"].append(reward)
            out["terminated"].append(term)
            out["truncated"].append(trunc)
            out["success"].append(info["success"])
            done = term or trunc
        out["obs"].append(_clean(obs.ravel().astype(float).tolist()))
        out["renders"].append(env.render())
    out["state"] = env.get_state().tolist()
    return {"params": {}, "seed": seed, "difficulty": difficulty, "events": events}, out


@pytest.fixture(scope="module")
def trajectories(compiled):
    return {name: record(compiled(name), name) for name in EXAMPLES}


@pytest.fixture(scope="module")
def bundles(tools):
    return {name: exported(name) for name in EXAMPLES}


def test_cli_export_writes_the_package_the_player_and_the_raw_module(tools, tmp_path):
    out = tmp_path / "puzzle"
    proc = subprocess.run([sys.executable, "-m", "twisterl", "export", str(ROOT / "examples" / "puzzle.twl"),
                           "--wasm", str(out), "--search"], capture_output=True, text=True, timeout=900,
                          env=dict(os.environ, TWISTERL_WASM_TOOLCHAIN=tools.toolchain))
    assert proc.returncode == 0, proc.stderr
    assert "pkg/env_bg.wasm" in proc.stdout and "http.server" in proc.stdout
    for name in ("env_bg.wasm", "env.js", "env.d.ts", "package.json"):
        assert (out / "pkg" / name).is_file(), name
    for name in ("index.html", "player.js", "player.css", "bundle.json"):
        assert (out / name).is_file(), name
    manifest = json.loads((out / "pkg" / "package.json").read_text())
    assert manifest["name"] == "twisterl-slidingpuzzle"
    types = (out / "pkg" / "env.d.ts").read_text()
    for api in ("class Env", "class VecEnv", "stepMany(", "agentStep(", "actionMask(", "actionNames(",
                "observation(", "render(", "state: Float64Array", "interface EnvOptions"):
        assert api in types, api
    assert "class Policy" not in types          # no policy exported: no policy code in the module
    assert "search(" in types                   # --search: pure MCTS in the browser
    bundle = json.loads((out / "bundle.json").read_text())
    assert bundle["policy"] is None and bundle["module"] == "pkg/env.js"
    raw = (out / bundle["raw"]).read_bytes()
    assert raw[:4] == b"\0asm" and b"twl_step_observe" in raw
    # No JavaScript glue and no wasm-bindgen imports in the raw module.
    assert b"__wbindgen" not in raw


def test_the_8_puzzle_module_is_small(bundles):
    sizes = bundles["puzzle"].sizes
    print(f"8-puzzle sizes: {sizes}")
    assert sizes["pkg/env_bg.wasm"] <= 100 * 1024, sizes
    assert sizes["raw/slidingpuzzle.wasm"] <= 100 * 1024, sizes


@pytest.mark.parametrize("name", EXAMPLES)
def test_node_replays_native_trajectories_exactly(bundles, trajectories, tmp_path, name):
    case, native = trajectories[name]
    b = bundles[name]
    job = tmp_path / "job.json"
    job.write_text(json.dumps({"module": str(b.out_dir / "pkg" / "env.js"), "wasm": str(b.wasm), "cases": [case]}))
    [got] = json.loads(node(REPLAY, str(job)))
    for key in ("terminated", "truncated", "success", "renders"):
        assert got[key] == native[key], key
    assert len(got["obs"]) == len(native["obs"])
    for t, (a, b_) in enumerate(zip(got["obs"], native["obs"])):
        assert a == b_, f"observation after event {t}"
    assert_floats_match(name, got["rewards"], native["rewards"], "rewards")
    assert_floats_match(name, got["state"], native["state"], "final state")


@pytest.mark.parametrize("name", EXAMPLES)
def test_wasmtime_replays_native_trajectories_exactly(bundles, trajectories, compiled, name):
    pytest.importorskip("wasmtime")
    case, native = trajectories[name]
    cls = compiled(name)
    env = RawEnv(bundles[name].raw, cls.param_vector({}), case["seed"])
    assert env.spec()["name"] == cls.name
    env.set_difficulty(case["difficulty"])
    rewards, term, trunc, obs = [], [], [], []
    for event in case["events"]:
        if event[0] == "reset":
            env.reset()
        else:
            actor = env.player()
            r, te, tr = env.step(event[1])
            rewards.append(r[actor])
            term.append(te)
            trunc.append(tr)
        obs.append(_clean(env.observation()))
    assert term == native["terminated"] and trunc == native["truncated"]
    assert obs == native["obs"]
    assert env.render() == native["renders"][-1]
    assert_floats_match(name, rewards, native["rewards"], "rewards")
    assert_floats_match(name, env.state(), native["state"], "final state")


def test_raw_module_reports_faults_instead_of_trapping(bundles, compiled):
    pytest.importorskip("wasmtime")
    from wasm_support import RawFault
    cls = compiled("puzzle")
    env = RawEnv(bundles["puzzle"].raw, cls.param_vector({}), 0)
    env.reset()
    with pytest.raises(RawFault) as err:
        env.step(99)
    assert err.value.kind == "BadAction"
    with pytest.raises(RawFault) as err:
        RawEnv(bundles["puzzle"].raw, [42.0], 0)
    assert err.value.kind == "BadParam"


NODE_ERRORS = NODE_PRELUDE + r"""
attempt("unknown param", () => new mod.Env({ params: { sise: 3 } }));
attempt("param out of range", () => new mod.Env({ params: { size: 42 } }));
attempt("param of the wrong type", () => new mod.Env({ params: { size: "big" } }));
attempt("unknown option", () => new mod.Env({ sed: 1 }));
attempt("bad seed", () => new mod.Env({ seed: -1 }));
attempt("step before reset", () => new mod.Env().step(0));
const env = new mod.Env({ seed: 0 });
env.reset();
const illegal = Array.from(env.actionMask()).indexOf(0);
attempt("illegal action", () => env.step(illegal));
attempt("action outside the space", () => env.step(7));
attempt("fractional action", () => env.step(1.5));
attempt("state of the wrong length", () => { env.state = [1, 2]; });
attempt("state out of range", () => { const s = env.state; s[0] = 99; env.state = s; });
attempt("agent without policy", () => env.agentStep());
attempt("vec: wrong number of actions", () => { const v = new mod.VecEnv({ numEnvs: 4 }); v.reset(); v.stepMany(new Int32Array(3)); });
out.still_works = env.actionNames()[env.actionMask().indexOf(1)];
process.stdout.write(JSON.stringify(out));
"""


def test_javascript_errors_are_readable_and_leave_the_env_usable(bundles, tmp_path):
    b = bundles["puzzle"]
    script = tmp_path / "errors.mjs"
    script.write_text(NODE_ERRORS)
    out = json.loads(node(script, str(b.out_dir / "pkg" / "env.js"), str(b.wasm)))
    expected = {
        "unknown param": "no param `sise`", "param out of range": "`size`", "param of the wrong type": "an int",
        "unknown option": "unknown option `sed`", "bad seed": "seed", "step before reset": "reset()",
        "illegal action": "not legal", "action outside the space": "not in the action space",
        "fractional action": "must be an int", "state of the wrong length": "values",
        "state out of range": "not an int in the declared range", "agent without policy": "--policy",
        "vec: wrong number of actions": "one action per env",
    }
    for name, fragment in expected.items():
        assert out[name].startswith("Error: "), (name, out[name])
        assert fragment in out[name], (name, out[name])
    assert out["still_works"] in ("left", "up", "right", "down")


NODE_BATCH = r"""
import { readFileSync } from "node:fs";
import { pathToFileURL } from "node:url";
const [module, wasm, n, steps] = process.argv.slice(2).map((x, i) => i < 2 ? x : Number(x));
const mod = await import(pathToFileURL(module).href);
mod.initSync({ module: readFileSync(wasm) });
const vec = new mod.VecEnv({ numEnvs: n, seed: 5, difficulty: 4 });
vec.reset();
const A = vec.numActions;
const actions = new Int32Array(n);
const rewards = [], terminated = [];
for (let t = 0; t < steps; t++) {
  const masks = vec.masks();
  for (let i = 0; i < n; i++) {       // the first legal action, rotating with t
    for (let k = 0; k < A; k++) { const a = (t + k) % A; if (masks[i * A + a]) { actions[i] = a; break; } }
  }
  vec.stepMany(actions);
  rewards.push(Array.from(vec.rewards()));
  terminated.push(Array.from(vec.terminated()));
}
process.stdout.write(JSON.stringify({ rewards, terminated, obs: Array.from(vec.observations()) }));
"""


def test_step_many_matches_the_native_vector_env(bundles, compiled, tmp_path):
    n, steps = 8, 60
    b = bundles["puzzle"]
    script = tmp_path / "batch.mjs"
    script.write_text(NODE_BATCH)
    got = json.loads(node(script, str(b.out_dir / "pkg" / "env.js"), str(b.wasm), str(n), str(steps)))
    vec = compiled("puzzle").vector(n, seed=5, difficulty=4)
    obs, info = vec.reset()
    A = info["action_mask"].shape[1]
    for t in range(steps):
        masks = info["action_mask"]
        actions = np.array([next((t + k) % A for k in range(A) if masks[i, (t + k) % A]) for i in range(n)])
        obs, reward, term, trunc, info = vec.step(actions)
        assert reward.tolist() == got["rewards"][t]
        assert term.astype(int).tolist() == got["terminated"][t]
    assert obs.reshape(-1).astype(float).tolist() == got["obs"]


NODE_POLICY = r"""
import { readFileSync } from "node:fs";
import { pathToFileURL } from "node:url";
const [module, wasm] = process.argv.slice(2);
const mod = await import(pathToFileURL(module).href);
mod.initSync({ module: readFileSync(wasm) });
const policy = mod.Policy.bundled();
const env = new mod.Env({ seed: 11, difficulty: 1 });
env.reset();
const obs = env.observation();
const out = { logits: Array.from(policy.logits(obs)), value: policy.value(obs), meta: JSON.parse(policy.meta),
              act: policy.act(obs, env.actionMask(), { deterministic: true }), obs: Array.from(obs) };
try { mod.Policy.fromSafetensors(new Uint8Array([1, 2, 3])); out.corrupt = "no error"; }
catch (e) { out.corrupt = e.message; }
let solved = 0;
for (let seed = 0; seed < 20; seed++) {
  env.reset(seed);
  for (let t = 0; t < 20 && !env.done; t++) env.agentStep({ deterministic: true });
  solved += env.success ? 1 : 0;
}
out.solved = solved;
process.stdout.write(JSON.stringify(out));
"""


def test_bundled_policy_matches_the_native_policy_and_solves(tools, tmp_path):
    torch = pytest.importorskip("torch")
    from twisterl.train.nets import to_rust
    from twisterl.train.rundir import RunDir
    from twisterl.train.checkpoints import load_policy
    run = trained_puzzle()
    b = exported("puzzle", run)
    print(f"8-puzzle with policy: {b.sizes}")
    assert b.policy == "embedded"
    assert b.sizes["pkg/env_bg.wasm"] <= 2 * 1024 * 1024 + (run / "best.safetensors").stat().st_size
    script = tmp_path / "policy.mjs"
    script.write_text(NODE_POLICY)
    got = json.loads(node(script, str(b.out_dir / "pkg" / "env.js"), str(b.wasm)))
    net, meta, cfg = load_policy(RunDir(run))
    obs = np.array([got["obs"]], dtype=np.float32)
    logits, value = to_rust(net).forward_dense(obs)
    np.testing.assert_allclose(got["logits"], logits[0], rtol=1e-5, atol=1e-5)
    assert got["value"] == pytest.approx(float(value[0]), abs=1e-5)
    with torch.no_grad():
        torch_logits, _ = net(torch.from_numpy(obs))
    np.testing.assert_allclose(got["logits"], torch_logits[0].numpy(), rtol=1e-4, atol=1e-4)
    assert got["meta"]["env"] == "SlidingPuzzle" and got["meta"]["format"] == "twisterl-policy-v1"
    assert got["solved"] >= 18, got["solved"]
    assert "safetensors" in got["corrupt"]
    assert "class Policy" in (b.out_dir / "pkg" / "env.d.ts").read_text()


def test_weights_can_ship_beside_the_module(tools):
    run = trained_puzzle()
    beside = exported("puzzle", run, weights="beside")
    embedded = exported("puzzle", run)
    assert beside.policy == "beside" and (beside.out_dir / "policy.safetensors").is_file()
    bundle = json.loads((beside.out_dir / "bundle.json").read_text())
    assert bundle["policy"]["file"] == "policy.safetensors" and not bundle["policy"]["embedded"]
    # The weights are most of the embedded module.
    weights = (beside.out_dir / "policy.safetensors").stat().st_size
    assert embedded.sizes["pkg/env_bg.wasm"] > beside.sizes["pkg/env_bg.wasm"] + 0.9 * weights


def _cli(*args: str, env=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "twisterl", *args], capture_output=True, text=True, timeout=600,
                          env=env)


def test_export_reports_bad_input_clearly(tools, tmp_path):
    bad = _cli("export", str(tmp_path / "missing.twl"), "--wasm", str(tmp_path / "o"))
    assert bad.returncode == 1 and "does not exist" in bad.stderr
    broken = tmp_path / "broken.twl"
    broken.write_text("env Broken\nstate x: int in 0..3\naction go { x = y }\nreward 0.0\nobserve onehot(x)\n")
    bad = _cli("export", str(broken), "--wasm", str(tmp_path / "o"))
    assert bad.returncode == 1 and "broken.twl:3" in bad.stderr
    bad = _cli("export", str(ROOT / "examples" / "puzzle.twl"), "--wasm", str(tmp_path / "o"),
               "--policy", str(tmp_path))
    assert bad.returncode == 1 and "not a training run" in bad.stderr
    no_tools = dict(os.environ, TWISTERL_WASM_TOOLCHAIN="no-such-toolchain")
    bad = _cli("export", str(ROOT / "examples" / "puzzle.twl"), "--wasm", str(tmp_path / "o"), env=no_tools)
    assert bad.returncode == 1 and "no-such-toolchain" in bad.stderr and "setup-toolchain.sh" in bad.stderr
    doctor = _cli("doctor", "--wasm", env=no_tools)
    assert doctor.returncode == 1 and "MISSING" in doctor.stdout
    assert _cli("doctor", "--wasm").returncode == 0


def test_a_policy_from_another_env_is_refused(tools, tmp_path):
    run = trained_puzzle()
    bad = _cli("export", str(ROOT / "examples" / "gridworld.twl"), "--wasm", str(tmp_path / "o"),
               "--policy", str(run))
    assert bad.returncode == 1 and "was trained on SlidingPuzzle, not on GridWorld" in bad.stderr


def test_the_wasm_runtime_unit_tests_pass():
    """runtime/wasm's own Rust tests (params, the JSON reader, policy files, training
    recipes), natively, with every feature but the JavaScript bindings."""
    from wasm_support import target_dir
    proc = subprocess.run(["cargo", "test", "--quiet", "--features", "train", "--manifest-path",
                           str(ROOT / "runtime" / "wasm" / "Cargo.toml"), "--target-dir", str(target_dir())],
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "test result: ok" in proc.stdout and "0 failed" in proc.stdout
