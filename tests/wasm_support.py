"""What the WebAssembly tests share: the tool check, exports built once per session, a
tiny trained puzzle policy, and a wasmtime host for the raw module.

The tools come from runtime/wasm/setup-toolchain.sh and setup-tools.sh; `.ci/run` runs
both and sets TWISTERL_REQUIRE_WASM=1, so there a missing tool fails instead of skipping.
"""

from __future__ import annotations

import json
import os
import shutil
import struct
import subprocess
import tempfile
from pathlib import Path
from typing import Optional

import pytest

from twisterl.wasm.export import Exported, export_wasm, find_tools

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = sorted(p.stem for p in ROOT.joinpath("examples").glob("*.twl"))

_state: dict = {}


def require_tools():
    tools = find_tools()
    problems = list(tools.problems)
    if shutil.which("node") is None:
        problems.append("node: not installed (the package tests run in node 18+)")
    if problems:
        message = "WebAssembly tools missing:\n" + "\n".join(problems)
        if os.environ.get("TWISTERL_REQUIRE_WASM"):
            pytest.fail(message)
        pytest.skip(message)
    return tools


def workdir() -> Path:
    """One folder for the session's exports and their shared cargo target dir."""
    if "dir" not in _state:
        _state["dir"] = Path(tempfile.mkdtemp(prefix="twisterl-wasm-"))
    return _state["dir"]


def target_dir() -> Path:
    return Path(os.environ.get("TWISTERL_TEST_WASM_TARGET") or workdir() / "target")


def exported(name: str, run_dir: Optional[Path] = None, weights: str = "auto", search: bool = False,
             train: Optional[dict] = None) -> Exported:
    """examples/NAME.twl exported once per session (with the policy of `run_dir`, or with
    `Env.search` and no policy; with `train`, a config, the package can train)."""
    key = (name, str(run_dir), weights, search, json.dumps(train, sort_keys=True))
    if key not in _state:
        require_tools()
        out = workdir() / f"{name}-{len(_state)}"
        config = None
        if train is not None:
            config = workdir() / f"train-{len(_state)}.json"
            config.write_text(json.dumps(train))
        _state[key] = export_wasm(str(ROOT / "examples" / f"{name}.twl"), str(out),
                                  str(run_dir) if run_dir else None, weights=weights, target_dir=target_dir(),
                                  search=search, train=train is not None,
                                  config_path=None if config is None else str(config))
    return _state[key]


# A small 8-puzzle recipe for tests: difficulty 8 in a few seconds of training.
SMALL_PUZZLE_TRAINING = {"num_envs": 128, "num_steps": 32, "embedding_size": 64, "common_layers": [64],
                         "learning_rate": 1e-3, "diff_max": 8, "seed": 0}


def trained_puzzle() -> Path:
    """A tiny PPO run on the 8-puzzle at difficulty 1 (a few seconds), once per session."""
    if "run" not in _state:
        pytest.importorskip("torch")
        from twisterl.train.driver import train
        run = workdir() / "puzzle-run"
        config = workdir() / "tiny.json"
        config.write_text(json.dumps({"num_envs": 64, "num_steps": 16, "num_threads": 1, "embedding_size": 32,
                                      "common_layers": [32], "learning_rate": 2e-3, "difficulty": 1,
                                      "diff_max": 1, "seed": 0}))
        with open(os.devnull, "w") as sink:
            train(str(ROOT / "examples" / "puzzle.twl"), str(run), str(config), {}, 0, 40, None, sink)
        _state["run"] = run
    return _state["run"]


# What node test scripts start with: load the package (argv: the glue, the module) as `mod`,
# and `attempt(name, f)`, which records in `out[name]` what `f` threw.
NODE_PRELUDE = r"""
import { readFileSync } from "node:fs";
import { pathToFileURL } from "node:url";
const [module, wasm] = process.argv.slice(2);
const mod = await import(pathToFileURL(module).href);
mod.initSync({ module: readFileSync(wasm) });
const out = {};
function attempt(name, f) {
  try { f(); out[name] = "no error"; }
  catch (e) { out[name] = (e instanceof Error ? "Error: " : "not an Error: ") + e.message; }
}
"""


def node(script: Path, *args: str, timeout: float = 300) -> str:
    proc = subprocess.run(["node", str(script), *args], capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


# ---------------------------------------------------------------- the raw module in wasmtime

FAULT_KINDS = ["IndexOutOfBounds", "OutOfRange", "Overflow", "DivisionByZero", "Empty", "LoopLimit",
               "NegativeExponent", "BadConversion", "BadParam", "BadAction", "IllegalAction", "BadState",
               "EpisodeOver", "Panic", "Interrupted", "LoopTooLong", "TooLarge", "BadStateValue", "LengthMismatch"]


class RawFault(RuntimeError):
    def __init__(self, kind: str, line: int, col: int, a: int):
        super().__init__(f"{kind} at line {line}:{col} (a={a})")
        self.kind = kind


class RawEnv:
    """One env of a raw module, driven through its flat C ABI from wasmtime (the way a
    non-JS host would): buffers live in the module's memory, from `twl_alloc`."""

    def __init__(self, wasm: Path, params: list[float], seed: int):
        import wasmtime
        self.store = wasmtime.Store()
        module = wasmtime.Module.from_file(self.store.engine, str(wasm))
        self.inst = wasmtime.Instance(self.store, module, [])
        ex = self.inst.exports(self.store)
        self.memory = ex["memory"]
        self.fn = {name: ex[name] for name in ("twl_alloc", "twl_free", "twl_create", "twl_sizes", "twl_reset",
                                                "twl_step", "twl_step_values", "twl_observe", "twl_render",
                                                "twl_get_state", "twl_set_difficulty", "twl_status",
                                                "twl_masks", "twl_spec_ptr", "twl_spec_len", "twl_players",
                                                "twl_continuous", "twl_abi_version")}
        self.players = self.call("twl_players")
        self.fault = self.alloc(48)
        p = self.alloc(8 * max(1, len(params)))
        # 8 bytes per param: an i64 for ints (bools, enum variants), an f64 for floats.
        self.write(p, b"".join(struct.pack("<d" if isinstance(v, float) else "<q", v) for v in params))
        self.handle = self.call("twl_create", p, len(params), 1, seed, self.fault)
        if not self.handle:
            self.raise_fault()
        sizes = self.alloc(32)
        self.call("twl_sizes", self.handle, sizes)
        values = struct.unpack("<8I", self.read(sizes, 32))
        _, self.num_actions, self.obs_size, _, self.state_len = values[:5]
        self.obs_shape = values[5:]
        self.buf = self.alloc(max(64, 8 * (self.obs_size + self.state_len + self.num_actions + self.players + 8)))
        self.text = self.alloc(1 << 16)

    def call(self, name: str, *args):
        return self.fn[name](self.store, *args)

    def alloc(self, n: int) -> int:
        return self.call("twl_alloc", n)

    def read(self, ptr: int, n: int) -> bytes:
        return bytes(self.memory.read(self.store, ptr, ptr + n))

    def write(self, ptr: int, data: bytes) -> None:
        self.memory.write(self.store, data, ptr)

    def spec(self) -> dict:
        return json.loads(self.read(self.call("twl_spec_ptr"), self.call("twl_spec_len")))

    def raise_fault(self):
        kind, line, col, _pad, a = struct.unpack("<IIIIq", self.read(self.fault, 24))
        raise RawFault(FAULT_KINDS[kind] if kind < len(FAULT_KINDS) else "Panic", line, col, a)

    def check(self, status: int) -> None:
        if status != 0:
            self.raise_fault()

    def set_difficulty(self, d: int) -> None:
        self.call("twl_set_difficulty", self.handle, 0, 1, d)

    def reset(self) -> None:
        self.check(self.call("twl_reset", self.handle, 0, 1, self.fault))

    def step(self, action) -> tuple[float, bool, bool]:
        """Returns (each player's rewards, terminated, truncated)."""
        b = self.buf
        rewards, term, trunc = b + 8 * 8, b + 8 * (8 + self.players), b + 8 * (8 + self.players) + 1
        if isinstance(action, list):
            self.write(b, struct.pack(f"<{len(action)}d", *action))
            status = self.call("twl_step_values", self.handle, 0, 1, b, rewards, term, trunc, 0, self.fault)
        else:
            self.write(b, struct.pack("<q", action))
            status = self.call("twl_step", self.handle, 0, 1, b, rewards, term, trunc, 0, self.fault)
        self.check(status)
        r = struct.unpack(f"<{self.players}d", self.read(rewards, 8 * self.players))
        return list(r), self.read(term, 1) == b"\1", self.read(trunc, 1) == b"\1"

    def observation(self) -> list[float]:
        self.check(self.call("twl_observe", self.handle, 0, 1, self.buf, self.fault))
        return list(struct.unpack(f"<{self.obs_size}f", self.read(self.buf, 4 * self.obs_size)))

    def player(self) -> int:
        b = self.buf
        self.check(self.call("twl_status", self.handle, 0, 1, b, b + 8, b + 16, b + 24, self.fault))
        return struct.unpack("<q", self.read(b + 8, 8))[0]

    def render(self) -> str:
        n = self.alloc(8)
        self.check(self.call("twl_render", self.handle, 0, self.text, 1 << 16, n, self.fault))
        length = struct.unpack("<I", self.read(n, 4))[0]
        return self.read(self.text, length).decode()

    def state(self) -> list[float]:
        self.check(self.call("twl_get_state", self.handle, 0, self.buf, self.fault))
        return list(struct.unpack(f"<{self.state_len}d", self.read(self.buf, 8 * self.state_len)))
