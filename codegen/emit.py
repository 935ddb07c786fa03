"""Render the generated crate for an env: jinja2 templates, then rustfmt.

`emit_rust(env)` returns the formatted `lib.rs` text; the same IR always gives the same
bytes. `write_crate(env, dir, core_path)` writes a complete crate.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from functools import lru_cache
from importlib import resources
from pathlib import Path

import jinja2

from twisterl.dsl import ir

from .rust import rust_str
from .tidy import drop_double_parens
from .version import GENERATOR_VERSION


@lru_cache(maxsize=1)
def _templates() -> jinja2.Environment:
    text = {name: resources.files(__package__).joinpath(f"templates/{name}").read_text(encoding="utf-8")
            for name in ("env.rs.j2",)}
    return jinja2.Environment(loader=jinja2.DictLoader(text), undefined=jinja2.StrictUndefined,
                              keep_trailing_newline=True, autoescape=False)


def emit_rust(env: ir.Env, source_name: str = "") -> str:
    """The generated, rustfmt-formatted Rust source of `env`."""
    from .lower import lower
    ctx = lower(env, source_name or Path(env.path).name)
    text = _templates().get_template("env.rs.j2").render(ctx=ctx, version=GENERATOR_VERSION,
                                                         spec_literal=rust_str(ctx.spec_json))
    return rustfmt(drop_double_parens(text))


def rustfmt(text: str) -> str:
    """Format with rustfmt when it is installed (it ships with every rustup toolchain)."""
    exe = shutil.which("rustfmt")
    if exe is None:
        return text
    proc = subprocess.run([exe, "--edition", "2021", "--emit", "stdout", "--quiet"], input=text,
                          capture_output=True, text=True, timeout=60)
    if proc.returncode != 0:
        # Unformatted but valid code still builds; the build reports real errors.
        return text
    return proc.stdout


def cargo_toml(crate: str, core_path: Path, crate_types: tuple[str, ...] = ("rlib", "cdylib")) -> str:
    return "\n".join([
        "[package]",
        f'name = "{crate}"',
        'version = "0.1.0"',
        'edition = "2021"',
        "publish = false",
        "",
        "[lib]",
        'path = "src/lib.rs"',
        f"crate-type = {json.dumps(list(crate_types))}",
        "",
        "[dependencies]",
        f"twisterl-core = {{ path = {json.dumps(str(core_path))} }}",
        "",
        "[features]",
        "# The native plugin table; the WebAssembly bindings build without it.",
        'default = ["plugin"]',
        "plugin = []",
        "",
        "[profile.release]",
        "opt-level = 3",
        "# One unit, so the env's own fns inline into its masks and steps (across units they",
        "# cannot); the runtime core, built once, keeps four.",
        "codegen-units = 1",
        "panic = \"unwind\"",
        "",
        "[profile.release.package.twisterl-core]",
        "codegen-units = 4",
        "",
        "[workspace]",
        "",
    ])


def write_crate(env: ir.Env, out_dir: Path, core_path: Path, crate: str = "",
                crate_types: tuple[str, ...] = ("rlib", "cdylib")) -> Path:
    """Write `Cargo.toml` and `src/lib.rs` for `env` into `out_dir`."""
    crate = crate or f"twl_{env.name.lower()}"
    src = out_dir / "src"
    src.mkdir(parents=True, exist_ok=True)
    (out_dir / "Cargo.toml").write_text(cargo_toml(crate, core_path, crate_types))
    (src / "lib.rs").write_text(emit_rust(env))
    return out_dir
