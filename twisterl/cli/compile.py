"""`twisterl compile FILE...`: check and build each file into a cached plugin."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional, TextIO


def compile_files(files: list[str], emit_rust: Optional[str], out: TextIO) -> int:
    """Build every file that checks (reporting the others' diagnostics); 1 if any failed."""
    from ..build import build
    from ..dsl import check_file
    from ..dsl.diagnostics import render_text
    status = 0
    for path in files:
        result = check_file(path)
        for d in result.diagnostics:
            print(render_text(d, result.source), file=sys.stderr)
        if not result.ok:
            print(f"{path}: {len(result.errors)} error(s); nothing was built", file=sys.stderr)
            status = 1
            continue
        emit = Path(emit_rust) / Path(path).stem if emit_rust and len(files) > 1 else emit_rust
        built = build(result.env, result.source.text, emit_dir=Path(emit) if emit else None)
        how = "from the cache" if built.cached else "built"
        print(f"{path}: env {result.env.name} {how} in {built.seconds:.2f} s -> {built.library}", file=out)
        if emit:
            print(f"  Rust written to {Path(emit) / 'src' / 'lib.rs'}", file=out)
    return status
