"""`twisterl export FILE.twl [--policy RUN_DIR] --wasm OUT_DIR`: a WebAssembly bundle.

    OUT_DIR/pkg/          the wasm-pack package: env_bg.wasm, env.js, env.d.ts, package.json
    OUT_DIR/raw/NAME.wasm the raw C-ABI module (no JavaScript glue), for wasmtime and others
    OUT_DIR/index.html    the browser player (with player.js, player.css)
    OUT_DIR/bundle.json   what the player needs to know: files, env, policy, params
    OUT_DIR/policy.safetensors   the policy, when it ships beside the module

check -> codegen/wasm.py writes the crates -> wasm-pack (--no-opt) builds the package ->
cargo builds the raw module -> wasm-opt -O3 optimises both. The tools are found (or
reported missing, with the command that installs each) by `find_tools`.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from ..build import BuildError, cache_dir, core_source_dir
from ..codegen.wasm import WASM_BINDGEN_VERSION, crate_stem, write_wasm_crates
from .policy_file import save_policy

TARGET = "wasm32-unknown-unknown"
WASM_PACK_VERSION = "0.15.1"
WASM_RUSTFLAGS = "-C target-feature=+simd128"
# Policies up to this size go inside the module (one download, ready at once); bigger
# ones ship beside it as policy.safetensors, fetched by the page.
EMBED_LIMIT = 8 * 1024 * 1024


class ExportError(RuntimeError):
    """A tool is missing, the input is wrong, or a build failed; the message says which."""


# ---------------------------------------------------------------- the tools


@dataclass
class Tools:
    toolchain: Optional[str] = None
    wasm_bindgen: Optional[str] = None
    wasm_pack: Optional[str] = None
    wasm_opt: Optional[str] = None
    problems: list[str] = field(default_factory=list)

    def require(self, *names: str) -> "Tools":
        missing = [p for p in self.problems if p.split(":", 1)[0] in names]
        if missing:
            raise ExportError("the WebAssembly export needs tools that are missing:\n  - "
                              + "\n  - ".join(missing)
                              + "\n`runtime/wasm/setup-toolchain.sh` and `runtime/wasm/setup-tools.sh` "
                              "install all of them.")
        return self


def _run(cmd: list[str], **kw) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, **kw)


def _has_wasm_std(toolchain: str) -> bool:
    try:
        proc = _run(["rustup", "run", toolchain, "rustc", "--print", "target-libdir", "--target", TARGET],
                    timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return proc.returncode == 0 and any(Path(proc.stdout.strip()).glob("libstd-*.rlib"))


def _which(name: str) -> Optional[str]:
    found = shutil.which(name)
    if found:
        return found
    cargo_bin = Path(os.environ.get("CARGO_HOME", Path.home() / ".cargo")) / "bin" / name
    return str(cargo_bin) if cargo_bin.is_file() else None


def _version(exe: str) -> str:
    try:
        proc = _run([exe, "--version"], timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    match = re.search(r"(\d+\.\d+\.\d+)", proc.stdout + proc.stderr)
    return match.group(1) if match else ""


def find_tools() -> Tools:
    """Look for each tool the export needs; `problems` says what is missing and how to get it."""
    tools = Tools()
    named = os.environ.get("TWISTERL_WASM_TOOLCHAIN")
    if shutil.which("rustup") is None:
        tools.problems.append("toolchain: rustup is not installed (https://rustup.rs)")
    else:
        for tc in [named] if named else ["stable", "web"]:
            if _has_wasm_std(tc):
                tools.toolchain = tc
                break
        if tools.toolchain is None:
            which = f"the toolchain '{named}' (TWISTERL_WASM_TOOLCHAIN)" if named else "no Rust toolchain"
            tools.problems.append(f"toolchain: {which} has a {TARGET} std; run `rustup target add {TARGET}`, "
                                  "or offline `runtime/wasm/setup-toolchain.sh` (Debian's rustc-web route)")
    exe = _which("wasm-bindgen")
    if exe is None or _version(exe) != WASM_BINDGEN_VERSION:
        have = f"version {_version(exe)} is installed" if exe else "it is not installed"
        tools.problems.append(f"wasm-bindgen: the CLI must be version {WASM_BINDGEN_VERSION} ({have}); "
                              f"cargo install wasm-bindgen-cli --version {WASM_BINDGEN_VERSION} --locked")
    else:
        tools.wasm_bindgen = exe
    exe = _which("wasm-pack")
    if exe is None or _version(exe) != WASM_PACK_VERSION:
        have = f"version {_version(exe)} is installed" if exe else "it is not installed"
        tools.problems.append(f"wasm-pack: version {WASM_PACK_VERSION} is needed ({have}); "
                              f"cargo install wasm-pack --version {WASM_PACK_VERSION} --locked")
    else:
        tools.wasm_pack = exe
    exe = shutil.which("wasm-opt")
    if exe is None:
        tools.problems.append("wasm-opt: binaryen is not installed; apt-get install binaryen "
                              "(or any binaryen release on PATH)")
    else:
        tools.wasm_opt = exe
    return tools


# ---------------------------------------------------------------- the policy


def write_policy_file(run_dir: str, env_name: str, path: Path, source_path: Optional[str] = None) -> dict:
    """The run's best (else last) checkpoint as a policy file for the wasm runtime; returns
    its metadata. With `source_path`, the checkpoint must have been made for the env that
    file compiles to, with the run's params (its name, observation and actions). The format
    is in runtime/wasm/src/agent.rs."""
    try:
        import safetensors  # noqa: F401  (save_policy writes with it)

        from ..train.checkpoints import load_policy
        from ..train.rundir import CheckpointError, find_run
    except ImportError as exc:
        raise ExportError(f"--policy needs the training extras ({exc.name} is not installed): "
                          "pip install 'twisterl[train]'") from None
    try:
        run = find_run(run_dir)
        which = "best" if (run.path / "best.safetensors").exists() else "last"
        cls = None
        if source_path is not None:
            from ..envs import compile as compile_env
            cls = compile_env(source_path)
        net, meta, cfg = load_policy(run, which, cls=cls, what=source_path)
    except CheckpointError as exc:
        raise ExportError(f"--policy {run_dir}: {exc}") from None
    if cfg.get("env") != env_name:
        raise ExportError(f"--policy {run_dir} was trained on env {cfg.get('env')!r}, not {env_name!r}")
    info = {"format": "twisterl-policy-v1", "env": env_name, "checkpoint": which,
            "params": json.dumps(cfg.get("params", {}), sort_keys=True),
            "difficulty": str(int(meta.get("difficulty", 0))),
            "success_rate": str(meta.get("success_rate", "")), "iteration": str(meta.get("iteration", ""))}
    try:
        return save_policy(net, path, info)
    except TypeError as exc:
        raise ExportError(f"--policy {run_dir}: {exc}") from None


# ---------------------------------------------------------------- the build


@dataclass
class Exported:
    """What an export wrote: the folder, the two modules, how the policy travels ("embedded",
    "beside" or None), the seconds it took, each file's size and the env's name."""
    out_dir: Path
    wasm: Path
    raw: Path
    policy: Optional[str]
    seconds: float
    sizes: dict[str, int]
    env: str
    notes: tuple[str, ...] = ()
    """what the page's trainer leaves out for this env (with `train`)"""


def player_dir() -> Path:
    """The browser player's files: the repository's, or the copy inside the wheel."""
    here = Path(__file__).resolve().parents[1]  # the twisterl package
    for candidate in (here.parent / "runtime" / "wasm" / "player", here / "_runtime_wasm" / "player"):
        if (candidate / "index.html").is_file():
            return candidate
    raise ExportError("the browser player's files are missing from this installation; reinstall twisterl")


def wasm_runtime_dir() -> Path:
    """The `twisterl-wasm` crate's sources: the repository's, or the copy inside the wheel."""
    here = Path(__file__).resolve().parents[1]  # the twisterl package
    for candidate in (here.parent / "runtime" / "wasm", here / "_runtime_wasm"):
        if (candidate / "Cargo.toml").is_file():
            return candidate
    raise ExportError("the twisterl-wasm crate is missing from this installation; reinstall twisterl")


def _runtime_crate() -> Path:
    """The `twisterl-wasm` crate, where generated crates can use it: a copy in the build
    cache whose `twisterl-core` dependency points at this installation's core (in a wheel
    the two are not side by side as in the repository). Files are rewritten only when they
    change, so cargo does not rebuild it for nothing."""
    src = wasm_runtime_dir()
    dest = cache_dir() / "wasm-runtime"
    manifest = (src / "Cargo.toml").read_text()
    core_line = 'twisterl-core = { path = "../core" }'
    if core_line not in manifest:
        raise ExportError(f"{src / 'Cargo.toml'} does not name the runtime core as expected; reinstall twisterl")
    files = {"Cargo.toml": manifest.replace(core_line, f"twisterl-core = {{ path = {json.dumps(str(core_source_dir()))} }}")}
    for rs in sorted((src / "src").glob("*.rs")):
        files[f"src/{rs.name}"] = rs.read_text()
    for rel, text in files.items():
        target = dest / rel
        if not target.is_file() or target.read_text() != text:
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
            tmp.write_text(text)
            os.replace(tmp, target)
    for stale in (dest / "src").glob("*.rs"):
        if f"src/{stale.name}" not in files:
            stale.unlink()
    return dest


def _build(cmd: list[str], env: dict, what: str, cwd: Optional[Path] = None) -> None:
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=cwd)
    if proc.returncode != 0:
        raise BuildError(f"{what} failed. This is a bug in twisterl, not in your file; please report it with "
                         f"the output below.\n$ {' '.join(cmd)}\n{(proc.stdout + proc.stderr)[-4000:]}")


def _optimize(wasm_opt: str, path: Path, env: dict) -> None:
    tmp = path.with_name(path.name + ".opt")
    _build([wasm_opt, "--all-features", "-O3", str(path), "-o", str(tmp)], env, f"wasm-opt on {path.name}")
    tmp.write_bytes(repair_table_exports(path.read_bytes(), tmp.read_bytes()))
    os.replace(tmp, path)


# ---------------------------------------------------------------- a binaryen 108 workaround
#
# Debian's binaryen 108 (the wasm-opt the project uses) writes every exported table as
# table 0 when a module has two tables, as wasm-bindgen's do (functions, and its externref
# table `__wbindgen_externrefs`). JavaScript then grows the wrong table and `init()` fails.
# `repair_table_exports` points each table export back at the table of the type it had
# before wasm-opt. Newer binaryen releases do not need it, and it then changes nothing.


def repair_table_exports(before: bytes, after: bytes) -> bytes:
    """`after` (wasm-opt's output) with its table exports pointing at the tables they
    pointed at in `before`, matched by table type."""
    types_before, types_after = _tables(before), _tables(after)
    exports_before = _table_exports(before)
    fixed = bytearray(after)
    for name, (offset, length, index) in _table_exports(after).items():
        if name not in exports_before:
            continue
        want = _same_type(types_before[exports_before[name][2]])
        if _same_type(types_after[index]) == want:
            continue
        matches = [k for k, ty in enumerate(types_after) if _same_type(ty) == want]
        if not matches:  # the limits changed: match the element type alone
            matches = [k for k, ty in enumerate(types_after) if _same_type(ty)[0] == want[0]]
        if len(matches) != 1 or matches[0] >= 0x80 or length != 1:
            raise BuildError(f"wasm-opt changed the table export {name} and it cannot be repaired; "
                             "use a newer binaryen, or export with --no-opt")
        fixed[offset] = matches[0]
    return bytes(fixed)


def _same_type(table: bytes) -> bytes:
    # binaryen may write externref (0x6f) as anyref (0x6e) when GC is enabled.
    return bytes([0x6F if table[0] == 0x6E else table[0]]) + table[1:]


def _leb(data, i):
    result = shift = 0
    while True:
        byte = data[i]
        i += 1
        result |= (byte & 0x7F) << shift
        shift += 7
        if byte < 0x80:
            return result, i


def _sections(data):
    i = 8
    while i < len(data):
        sid = data[i]
        size, body = _leb(data, i + 1)
        yield sid, i, body, body + size
        i = body + size


def _tables(data):
    """Each table's type as (elem type byte, limits bytes)."""
    out = []
    for sid, _, body, end in _sections(data):
        if sid == 2:  # imported tables come first
            count, j = _leb(data, body)
            for _ in range(count):
                for _ in range(2):
                    n, j = _leb(data, j)
                    j += n
                kind = data[j]
                j += 1
                if kind == 0:
                    _, j = _leb(data, j)
                elif kind == 1:
                    start = j
                    flags = data[j + 1]
                    j += 2
                    _, j = _leb(data, j)
                    if flags & 1:
                        _, j = _leb(data, j)
                    out.append(bytes(data[start:j]))
                elif kind == 2:
                    flags = data[j]
                    j += 1
                    _, j = _leb(data, j)
                    if flags & 1:
                        _, j = _leb(data, j)
                else:
                    j += 2
        if sid == 4:
            count, j = _leb(data, body)
            for _ in range(count):
                start = j
                flags = data[j + 1]
                j += 2
                _, j = _leb(data, j)
                if flags & 1:
                    _, j = _leb(data, j)
                out.append(bytes(data[start:j]))
    return out


def _table_exports(data):
    """name -> (offset of the index LEB, its length, index)."""
    out = {}
    for sid, _, body, _ in _sections(data):
        if sid == 7:
            count, j = _leb(data, body)
            for _ in range(count):
                n, j = _leb(data, j)
                name = bytes(data[j:j + n]).decode()
                j += n
                kind = data[j]
                j += 1
                start = j
                index, j = _leb(data, j)
                if kind == 1:
                    out[name] = (start, j - start, index)
    return out


def export_wasm(path: str, out_dir: str, run_dir: Optional[str] = None, *, weights: str = "auto",
                optimize: bool = True, target_dir: Optional[Path] = None, search: bool = False,
                train: bool = False, config_path: Optional[str] = None, seed: Optional[int] = None,
                stream=None) -> Exported:
    """Export the env in `path` (and the policy of `run_dir`) as a WebAssembly bundle. With
    a policy, or with `search`, the package's `Env` can `search(...)` (pure MCTS without a
    policy); without either the module stays small. With `train`, the package also has a
    `Trainer` (PPO in the page) for the config at `config_path` and `seed`, resolved as
    `twisterl train` would; the auto config's choices are printed to `stream`."""
    from ..dsl import check_file
    from ..dsl.diagnostics import render_text
    start = time.perf_counter()
    if weights not in ("auto", "embed", "beside"):
        raise ExportError(f"--weights must be auto, embed or beside, not {weights!r}")
    if not Path(path).is_file():
        raise ExportError(f"{path} does not exist")
    result = check_file(path)
    if not result.ok:
        raise ExportError("\n\n".join(render_text(d, result.source) for d in result.errors))
    env = result.env
    if (config_path is not None or seed is not None) and not train:
        raise ExportError("--config and --seed are for --train (the page's training recipe)")
    tools = find_tools().require("toolchain", "wasm-bindgen", "wasm-pack", "wasm-opt" if optimize else "-")
    training = None
    if train:
        from .training import TrainingRecipeError, browser_training
        try:
            training = browser_training(path, config_path, seed, stream)
        except TrainingRecipeError as exc:
            raise ExportError(str(exc)) from None
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise ExportError(f"{out} exists and is not a folder")
    out.mkdir(parents=True, exist_ok=True)
    stem = crate_stem(env)
    # Exports of the same env share a source folder (so cargo rebuilds only what changed);
    # a lock keeps two of them from writing it at once.
    (cache_dir() / "locks").mkdir(parents=True, exist_ok=True)
    with open(cache_dir() / "locks" / f"wasm-{stem}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        return _export_locked(env, path, out, stem, run_dir, weights, optimize, target_dir, tools, start, search,
                              training)


def _export_locked(env, path: str, out: Path, stem: str, run_dir: Optional[str], weights: str, optimize: bool,
                   target_dir: Optional[Path], tools: Tools, start: float, search: bool, training) -> Exported:
    work = cache_dir() / "wasm-src" / stem
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)

    policy_info = None
    policy_embedded = False
    stale_policy = out / "policy.safetensors"
    if stale_policy.exists():
        stale_policy.unlink()
    if run_dir is not None:
        policy_path = work / "policy.safetensors"
        policy_info = write_policy_file(run_dir, env.name, policy_path, path)
        size = policy_path.stat().st_size
        policy_embedded = weights == "embed" or (weights == "auto" and size <= EMBED_LIMIT)
        if not policy_embedded:
            shutil.copy2(policy_path, out / "policy.safetensors")
    crates = write_wasm_crates(env, work, core_source_dir(), _runtime_crate(),
                               work / "policy.safetensors" if policy_embedded else None,
                               with_policy=policy_info is not None, with_search=search,
                               training=None if training is None else (training.recipe, training.start))

    target = Path(target_dir) if target_dir else cache_dir() / "wasm-target"
    build_env = dict(os.environ, RUSTUP_TOOLCHAIN=tools.toolchain, CARGO_TARGET_DIR=str(target),
                     CARGO_TERM_COLOR="never", WASM_PACK_DISABLE_UPDATE_CHECK="1")
    # 128-bit SIMD (every current browser, node 16.4+ and wasmtime have it): the learner's and
    # the forward pass's loops vectorise four floats at a time.
    build_env["RUSTFLAGS"] = " ".join(filter(None, [os.environ.get("RUSTFLAGS", ""), WASM_RUSTFLAGS]))
    # wasm-pack finds wasm-bindgen on PATH when the versions match.
    build_env["PATH"] = os.pathsep.join([str(Path(tools.wasm_bindgen).parent), build_env.get("PATH", "")])
    pkg = out / "pkg"
    if pkg.exists():
        shutil.rmtree(pkg)
    _build([tools.wasm_pack, "--quiet", "build", str(crates.js), "--release", "--no-opt", "--mode", "no-install",
            "--target", "web", "--out-dir", str(pkg.resolve()), "--out-name", "env"], build_env, "wasm-pack build")
    (pkg / ".gitignore").unlink(missing_ok=True)
    manifest = json.loads((pkg / "package.json").read_text())
    manifest["name"] = f"twisterl-{stem.replace('_', '-')}"
    manifest["description"] = f"The {env.name} environment ({Path(env.path).name}), compiled by twisterl"
    (pkg / "package.json").write_text(json.dumps(manifest, indent=2) + "\n")
    wasm = pkg / "env_bg.wasm"

    _build(["cargo", "build", "--release", "--quiet", "--target", TARGET, "--manifest-path",
            str(crates.raw / "Cargo.toml")], build_env, "cargo build of the raw module")
    raw = out / "raw" / f"{stem}.wasm"
    raw.parent.mkdir(exist_ok=True)
    shutil.copy2(target / TARGET / "release" / f"{crates.raw_crate}.wasm", raw)
    if optimize:
        _optimize(tools.wasm_opt, wasm, build_env)
        _optimize(tools.wasm_opt, raw, build_env)

    for item in player_dir().iterdir():
        if item.is_file():
            shutil.copy2(item, out / item.name)
    sizes = {"pkg/env_bg.wasm": wasm.stat().st_size, f"raw/{stem}.wasm": raw.stat().st_size}
    if (out / "policy.safetensors").exists():
        sizes["policy.safetensors"] = (out / "policy.safetensors").stat().st_size
    bundle = {
        "env": env.name, "source": Path(env.path).name, "module": "pkg/env.js", "wasm": "pkg/env_bg.wasm",
        "raw": f"raw/{stem}.wasm", "sizes": sizes,
        "policy": None if policy_info is None else {
            "embedded": policy_embedded, "file": None if policy_embedded else "policy.safetensors",
            "params": json.loads(policy_info["params"]), "difficulty": int(policy_info["difficulty"]),
            "checkpoint": policy_info["checkpoint"]},
        "train": None if training is None else {"config": training.settings(), "notes": list(training.notes)},
    }
    (out / "bundle.json").write_text(json.dumps(bundle, indent=2) + "\n")
    seconds = time.perf_counter() - start
    return Exported(out, wasm, raw, None if policy_info is None else ("embedded" if policy_embedded else "beside"),
                    seconds, sizes, env.name, () if training is None else training.notes)
