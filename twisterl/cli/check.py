"""`twisterl check FILE...`: parse and type-check, report diagnostics as text or JSON."""

from __future__ import annotations

import argparse
import json
import os
import sys

from ..dsl import api, ir
from ..dsl.consteval import Evaluator, default_values, try_eval
from ..dsl.diagnostics import render_text, to_dict


def _use_color(choice: str, stream) -> bool:
    if choice == "always":
        return True
    if choice == "never" or os.environ.get("NO_COLOR"):
        return False
    return hasattr(stream, "isatty") and stream.isatty()


def cmd_check(args: argparse.Namespace) -> int:
    color = _use_color(args.color, sys.stderr)
    failed = False
    report = []
    for path in args.files:
        result = api.check_file(path)
        failed = failed or not result.ok
        if args.format == "json":
            entry = {"path": path, "ok": result.ok,
                     "diagnostics": [to_dict(d, result.source) for d in result.diagnostics]}
            if args.dump_ir and result.env is not None:
                entry["ir"] = ir.to_data(result.env)
            report.append(entry)
            continue
        for d in result.diagnostics:
            print(render_text(d, result.source, color), file=sys.stderr)
            print(file=sys.stderr)
        n_err, n_warn = len(result.errors), len(result.warnings)
        if result.ok:
            summary = f"{path}: ok" + (f" ({n_warn} warning{'s' if n_warn != 1 else ''})" if n_warn else "")
            if result.env is not None and not args.quiet:
                summary += f" - {describe_env(result.env)}"
            print(summary, file=sys.stderr)
        else:
            print(f"{path}: {n_err} error{'s' if n_err != 1 else ''}"
                  + (f", {n_warn} warning{'s' if n_warn != 1 else ''}" if n_warn else ""), file=sys.stderr)
        if args.dump_ir and result.env is not None:
            print(json.dumps(ir.to_data(result.env), indent=1))
    if args.format == "json":
        print(json.dumps(report, indent=2))
    return 1 if failed else 0


def describe_env(env: ir.Env) -> str:
    """The summary after `ok`: players, actions and observation; a size that cannot be computed shows as `?` (never raises)."""
    try:
        values = default_values(env)
    except Exception:  # the checker computes every const; this is only a safety net
        values = {p.name: p.default for p in env.params}
    evaluator = Evaluator(values, {f.name: f for f in env.functions})

    def size(e) -> str:
        value = try_eval(evaluator, e)
        return "?" if value is None else str(value)

    space = env.action_space
    n = size(space.n)
    actions = (_counted(n, "action") if space.kind == "discrete"
               else f"a continuous action of {_counted(n, 'value')}")
    obs = env.observation
    shape = " x ".join(size(s) for s in obs.shape)
    who = f"{env.players} players, " if env.players > 1 else ""
    return f"env {env.name}: {who}{actions}, {obs.kind} observation of {shape}"


def _counted(n: str, noun: str) -> str:
    """`1 action`, `4 actions`, `? actions`."""
    return f"{n} {noun}" if n == "1" else f"{n} {noun}s"
