"""The WebAssembly crates of an env: its generated crate plus two thin binding crates.

    OUT/env/   the generated env crate (`write_crate`), used without its native plugin table
    OUT/js/    wasm-bindgen classes `Env`, `VecEnv`, `Policy` (built by wasm-pack)
    OUT/raw/   the plugin ABI under flat export names, for non-JS hosts

Both binding crates depend on the runtime's `twisterl-wasm` crate (`runtime/wasm`), which
does the work; the templates only name the env's type and the bundled policy file.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Optional

import jinja2

from twisterl.dsl import ir

from .emit import rustfmt, write_crate
from .lower import spec, type_name
from .rust import float_lit, rust_str
from .version import GENERATOR_VERSION

# The wasm-bindgen crate and CLI must have exactly the same version.
WASM_BINDGEN_VERSION = "0.2.127"

# Size first, then speed: one codegen unit and LTO let the optimizer see the whole module;
# wasm32-unknown-unknown has no unwinding, so a panic (a twisterl bug) traps.
_PROFILE = """[profile.release]
opt-level = 3
lto = true
codegen-units = 1
panic = "abort"
strip = "debuginfo"
"""


@dataclass(frozen=True)
class WasmCrates:
    env: Path
    js: Path
    raw: Path
    js_crate: str
    raw_crate: str


def crate_stem(env: ir.Env) -> str:
    return "".join(ch if ch.isalnum() else "_" for ch in env.name.lower())


def _template(name: str) -> jinja2.Template:
    text = resources.files(__package__).joinpath(f"templates/{name}").read_text(encoding="utf-8")
    return jinja2.Environment(undefined=jinja2.StrictUndefined, keep_trailing_newline=True,
                              autoescape=False).from_string(text)


def _bound(v) -> str:
    return "None" if v is None else f"Some({float_lit(float(v))})"


def param_specs(env: ir.Env) -> list[dict[str, str]]:
    """Each param as the pieces of a `twisterl_wasm::ParamSpec` literal."""
    out = []
    for p in spec(env)["params"]:
        ty = p["type"]
        if ty.startswith("enum:"):
            kind = "ParamKind::Enum(&[" + ", ".join(rust_str(v) for v in ty[5:].split(",")) + "])"
        elif ty == "bool":
            kind = "ParamKind::Bool"
        elif ty == "int":
            kind = f"ParamKind::Int {{ lo: {_bound(p['lo'])}, hi: {_bound(p['hi'])} }}"
        else:
            kind = f"ParamKind::Float {{ lo: {_bound(p['lo'])}, hi: {_bound(p['hi'])} }}"
        out.append({"name": rust_str(p["name"]), "kind": kind, "default": float_lit(float(p["default"]))})
    return out


def _manifest(crate: str, description: str, deps: list[str], features: str = "") -> str:
    return "\n".join([
        "[package]",
        f'name = "{crate}"',
        'version = "0.1.0"',
        'edition = "2021"',
        f"description = {json.dumps(description)}",
        'license = "Apache-2.0"',
        "publish = false",
        "",
        "[lib]",
        'path = "src/lib.rs"',
        'crate-type = ["cdylib"]',
        "",
        "[dependencies]",
        *deps,
        "",
        features,
        _PROFILE,
        "[workspace]",
        "",
    ])


def write_wasm_crates(env: ir.Env, out_dir: Path, core_path: Path, wasm_runtime_path: Path,
                      policy_file: Optional[Path] = None, with_policy: bool = False,
                      with_search: bool = False, training: Optional[tuple[str, bytes]] = None) -> WasmCrates:
    """Write the env crate and both binding crates under `out_dir`. `with_policy` gives the
    JavaScript package its `Policy` class (and `Env.search`); `policy_file` (a policy
    safetensors file) is also embedded in it. `with_search` gives a package without a
    policy `Env.search` (pure MCTS). `training` (the recipe's JSON and the starting weights
    as a policy file) gives it the `Trainer` class."""
    out_dir = Path(out_dir)
    stem = crate_stem(env)
    env_crate = f"twl_{stem}"
    # Only the rlib: the bindings link it into their own module.
    env_dir = write_crate(env, out_dir / "env", core_path, env_crate, crate_types=("rlib",))
    env_dep = f'{env_crate} = {{ path = {json.dumps(str(env_dir))}, default-features = false }}'
    runtime = json.dumps(str(wasm_runtime_path))
    source = Path(env.path).name
    ctx = {"version": GENERATOR_VERSION, "source": source, "env_name": env.name, "env_crate": env_crate,
           "type_name": type_name(env.name)}

    js_crate = f"twl_{stem}_js"
    js_dir = out_dir / "js"
    (js_dir / "src").mkdir(parents=True, exist_ok=True)
    bundled = "None"
    if policy_file is not None:
        (js_dir / "policy.safetensors").write_bytes(Path(policy_file).read_bytes())
        bundled = 'Some(include_bytes!("../policy.safetensors"))'
        with_policy = True
    # The `policy` feature (the Policy class, a working agentStep, search) only when a policy
    # is exported, `search` alone when asked for: without them the module has no safetensors
    # reader, no forward pass and no search, and stays small.
    if training is not None:
        recipe, start = training
        (js_dir / "train.json").write_text(recipe)
        (js_dir / "start.safetensors").write_bytes(start)
    default = ["train"] if training else ["policy"] if with_policy else ["search"] if with_search else []
    features = "\n".join(["[features]", f"default = {json.dumps(default)}",
                          'policy = ["twisterl-wasm/policy", "search"]', "search = []",
                          'train = ["twisterl-wasm/train", "policy"]', ""])
    (js_dir / "Cargo.toml").write_text(_manifest(
        js_crate, f"The JavaScript package of the {env.name} environment (generated by twisterl).",
        [env_dep, f'twisterl-wasm = {{ path = {runtime}, features = ["js"] }}',
         f'wasm-bindgen = "={WASM_BINDGEN_VERSION}"'], features))
    text = _template("wasm_js.rs.j2").render(bundled_policy=bundled, params=param_specs(env),
                                             name_literal=rust_str(env.name), source_literal=rust_str(source), **ctx)
    (js_dir / "src" / "lib.rs").write_text(rustfmt(text))

    raw_crate = f"twl_{stem}_raw"
    raw_dir = out_dir / "raw"
    (raw_dir / "src").mkdir(parents=True, exist_ok=True)
    (raw_dir / "Cargo.toml").write_text(_manifest(
        raw_crate, f"The raw WebAssembly module of the {env.name} environment (generated by twisterl).",
        [env_dep, f"twisterl-wasm = {{ path = {runtime} }}"]))
    (raw_dir / "src" / "lib.rs").write_text(rustfmt(_template("wasm_raw.rs.j2").render(**ctx)))
    return WasmCrates(env_dir, js_dir, raw_dir, js_crate, raw_crate)
