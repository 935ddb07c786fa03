"""`twisterl export FILE --wasm DIR` and `twisterl doctor --wasm`."""

from __future__ import annotations

import argparse


def cmd_export(args: argparse.Namespace) -> int:
    from ..wasm.export import export_wasm
    from .hub import run_ref, source_ref
    import sys
    done = export_wasm(source_ref(args.file), args.wasm, run_ref(args.policy), weights=args.weights,
                       optimize=not args.no_opt, search=args.search, train=args.train, config_path=args.config,
                       seed=args.seed, stream=sys.stdout)
    policy = {None: "no policy", "embedded": "policy embedded",
              "beside": "policy beside it (policy.safetensors)"}[done.policy]
    print(f"{args.file}: env {done.env} exported to {done.out_dir} in {done.seconds:.1f} s ({policy})")
    for name, size in done.sizes.items():
        print(f"  {name}: {size / 1024:.1f} KiB")
    if args.train:
        print("  the page can train: its Train button, or `new Trainer()` from pkg/env.js")
    for note in done.notes:
        print(f"  note: {note}")
    print(f"  serve it: python -m http.server --directory {done.out_dir}  (then open http://localhost:8000/)")
    return 0


def cmd_doctor(args: argparse.Namespace) -> int:
    """Which tools an export needs are there, and how to get the others."""
    from ..codegen.wasm import WASM_BINDGEN_VERSION
    from ..wasm.export import WASM_PACK_VERSION, find_tools
    tools = find_tools()
    rows = [("Rust toolchain with a wasm32 std", tools.toolchain), ("wasm-bindgen " + WASM_BINDGEN_VERSION,
            tools.wasm_bindgen), ("wasm-pack " + WASM_PACK_VERSION, tools.wasm_pack), ("wasm-opt", tools.wasm_opt)]
    for what, found in rows:
        print(f"{'ok' if found else 'MISSING':8} {what}" + (f": {found}" if found else ""))
    for problem in tools.problems:
        print(f"  - {problem}")
    if tools.problems:
        print("runtime/wasm/setup-toolchain.sh and runtime/wasm/setup-tools.sh install everything.")
    return 1 if tools.problems else 0
