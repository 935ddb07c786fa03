"""The `twisterl` command line.

    twisterl check FILE...           parse and type-check .twl files, report diagnostics
    twisterl compile FILE...         build .twl files into native env plugins (cached)
    twisterl run FILE                random legal-action rollouts: episode stats and steps/s
    twisterl play FILE               play an env in the terminal (or watch/face a trained policy)
    twisterl train [FILE]            train a policy with PPO (or AlphaZero: --algo az), or --resume a run
    twisterl eval RUN_DIR            evaluate a trained policy
    twisterl tune FILE               search PPO hyperparameters with Optuna (needs twisterl[tune])
    twisterl export FILE --wasm DIR  export an env (and a policy) to WebAssembly with a browser player
    twisterl doctor --wasm           check the tools an export needs
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import traceback
from typing import Optional, Sequence

from . import commands
from .dsl import api, ir
from .dsl.consteval import Evaluator, default_values, try_eval
from .dsl.diagnostics import render_text, to_dict


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
                summary += f" - {_describe_env(result.env)}"
            print(summary, file=sys.stderr)
        else:
            print(f"{path}: {n_err} error{'s' if n_err != 1 else ''}"
                  + (f", {n_warn} warning{'s' if n_warn != 1 else ''}" if n_warn else ""), file=sys.stderr)
        if args.dump_ir and result.env is not None:
            print(json.dumps(ir.to_data(result.env), indent=1))
    if args.format == "json":
        print(json.dumps(report, indent=2))
    return 1 if failed else 0


def _describe_env(env: ir.Env) -> str:
    """The summary after `ok`; a size that cannot be computed shows as `?` (never raises)."""
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


def _training():
    """The training commands need PyTorch, which the base install does not bring."""
    try:
        from . import training
    except ImportError as exc:
        raise RuntimeError(f"this command needs the training extras ({exc.name} is not installed): "
                           "pip install 'twisterl[train]'") from None
    return training


def _tuning():
    """`twisterl tune` needs the training extras and Optuna (the `tune` extra)."""
    _training()
    try:
        from . import tune
    except ImportError as exc:
        if exc.name == "optuna":
            raise RuntimeError("this command needs Optuna (optuna is not installed): "
                               "pip install 'twisterl[tune]'") from None
        raise RuntimeError(f"this command needs the training extras ({exc.name} is not installed): "
                           "pip install 'twisterl[train]'") from None
    return tune


def cmd_tune(args: argparse.Namespace) -> int:
    tune = _tuning()
    jobs = args.jobs if args.jobs is not None else min(2, os.cpu_count() or 1)
    tune.check_inputs(args.trials, args.time_limit, jobs, args.seed)
    params = commands.parse_params(args.param)
    print(f"tuning {args.file}: {args.trials} trials, {min(jobs, args.trials)} at a time, "
          f"{tune.trial_seconds(args.time_limit, args.trials, jobs):.1f} s each", file=sys.stderr)

    def on_trial(r) -> None:
        value = "" if r.value is None else f" value {r.value:.4f}"
        why = f" ({r.error})" if r.error else ""
        print(f"trial {r.number}: {r.state}{value} after {r.iterations} iterations, {r.seconds:.1f} s{why}",
              file=sys.stderr)

    result = tune.tune(args.file, args.trials, args.time_limit, jobs, args.seed, args.out, args.config, params,
                       on_trial)
    states = [r.state for r in result.trials]
    print(f"{result.env}: {states.count('COMPLETE')} complete, {states.count('PRUNED')} pruned, "
          f"{states.count('FAIL')} failed; objective: {result.objective}")
    if result.best_config is None:
        print(f"twisterl tune: error: no trial completed; trials in {result.out / 'trials.csv'}", file=sys.stderr)
        return 1
    print(f"best: trial {result.best_trial}, value {result.best_value:.4f}")
    print(f"config: {json.dumps(result.best_config)}")
    print(f"wrote {result.out / 'best_config.json'} and {result.out / 'trials.csv'}; "
          f"train with: twisterl train {args.file} --config {result.out / 'best_config.json'}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="twisterl", description="Reinforcement-learning environments "
                                     "written in the .twl language.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    check = sub.add_parser("check", help="parse and type-check .twl files",
                           description="Parse and type-check .twl files. Exit code 0 when every file "
                           "is free of errors, 1 otherwise.")
    check.add_argument("files", nargs="+", metavar="FILE")
    check.add_argument("--format", choices=["text", "json"], default="text",
                       help="diagnostics as text (default) or JSON on stdout")
    check.add_argument("--color", choices=["auto", "always", "never"], default="auto")
    check.add_argument("--dump-ir", action="store_true", help="print the typed IR as JSON")
    check.add_argument("-q", "--quiet", action="store_true", help="shorter summaries")
    check.set_defaults(run=cmd_check)

    comp = sub.add_parser("compile", help="build .twl files into native env plugins (cached)",
                          description="Check, generate Rust, and build each file into a plugin in the "
                          "build cache ($TWISTERL_CACHE_DIR or ~/.cache/twisterl).")
    comp.add_argument("files", nargs="+", metavar="FILE")
    comp.add_argument("--emit-rust", metavar="DIR", help="also write the generated Rust crate to DIR")
    comp.set_defaults(run=lambda a: commands.compile_files(a.files, a.emit_rust, sys.stdout))

    run = sub.add_parser("run", help="random legal-action rollouts: episode stats and steps/s")
    run.add_argument("file", metavar="FILE")
    run.add_argument("--episodes", type=int, default=100)
    run.add_argument("--seed", type=int, default=0)
    run.add_argument("--param", action="append", default=[], metavar="NAME=VALUE")
    run.add_argument("--difficulty", type=int, default=0)
    run.add_argument("--num-envs", type=int, default=64)
    run.add_argument("--threads", type=int, default=1)
    run.add_argument("--max-length", type=int, default=100_000, metavar="STEPS",
                     help="cut (and report) an episode still going after STEPS steps")
    run.set_defaults(run=lambda a: commands.run(a.file, a.episodes, a.seed, commands.parse_params(a.param),
                                                a.difficulty, a.num_envs, a.threads, sys.stdout, a.max_length))

    tr = sub.add_parser("train", help="train a policy with PPO, with the difficulty curriculum")
    tr.add_argument("file", metavar="FILE", nargs="?")
    tr.add_argument("--out", metavar="RUN_DIR", help="where to write the run (default runs/NAME-TIME)")
    tr.add_argument("--resume", metavar="RUN_DIR", help="continue a run from its last checkpoint")
    tr.add_argument("--config", metavar="CFG", help="JSON or TOML: our keys, or a TwisteRL config")
    tr.add_argument("--param", action="append", default=[], metavar="NAME=VALUE")
    tr.add_argument("--seed", type=int)
    tr.add_argument("--iterations", type=int)
    tr.add_argument("--time-limit", type=float, metavar="SECONDS")
    tr.add_argument("--algo", choices=["ppo", "az"], default="ppo",
                    help="ppo (default) or az: AlphaZero self-play with MCTS (discrete actions)")
    tr.set_defaults(run=lambda a: _training().train(a.file, a.out, a.config, commands.parse_params(a.param), a.seed,
                                                 a.iterations, a.time_limit, sys.stdout, a.resume, a.algo))

    tu = sub.add_parser("tune", help="search PPO hyperparameters with Optuna",
                        description="Search PPO hyperparameters with Optuna: TRIALS trials, JOBS at a time, each "
                        "training for SECONDS / TRIALS * JOBS seconds. Writes best_config.json and trials.csv.")
    tu.add_argument("file", metavar="FILE")
    tu.add_argument("--trials", type=int, required=True, metavar="N")
    tu.add_argument("--time-limit", type=float, required=True, metavar="SECONDS",
                    help="for the whole search (each trial trains SECONDS / N * JOBS seconds)")
    tu.add_argument("--jobs", type=int, metavar="J", help="trials at a time (default: 2 or the cores, fewer)")
    tu.add_argument("--seed", type=int, default=0, metavar="K", help="trial k trains with seed K + k")
    tu.add_argument("--out", metavar="DIR", help="where to write (default runs/tune-NAME-TIME)")
    tu.add_argument("--config", metavar="CFG", help="base config: its keys are fixed, not searched")
    tu.add_argument("--param", action="append", default=[], metavar="NAME=VALUE")
    tu.set_defaults(run=cmd_tune)

    ev = sub.add_parser("eval", help="evaluate a trained policy")
    ev.add_argument("run_dir", metavar="RUN_DIR")
    ev.add_argument("--episodes", type=int, default=100)
    ev.add_argument("--deterministic", action="store_true")
    ev.add_argument("--difficulty", type=int)
    ev.add_argument("--seed", type=int, default=0)
    ev.add_argument("--tries", type=int, default=1, metavar="N",
                    help="play each episode N times from the same start; a success if any try succeeds")
    ev.add_argument("--average-twists", action="store_true",
                    help="average the policy over the env's symmetries (an equivariant policy)")
    ev.set_defaults(run=lambda a: _training().evaluate(a.run_dir, a.episodes, a.deterministic, a.difficulty, a.seed,
                                                    sys.stdout, a.tries, a.average_twists))

    play = sub.add_parser("play", help="play an env yourself in the terminal")
    play.add_argument("file", metavar="FILE")
    play.add_argument("--seed", type=int, default=None)
    play.add_argument("--param", action="append", default=[], metavar="NAME=VALUE")
    play.add_argument("--difficulty", type=int, default=0)
    play.add_argument("--policy", metavar="RUN_DIR", help="watch a trained agent play, step by step")
    play.add_argument("--as", dest="side", choices=["first", "second"],
                      help="two-player envs: play against the agent of --policy (without it, pure MCTS), "
                      "moving first or second")
    play.add_argument("--simulations", type=int, metavar="N",
                      help="MCTS simulations per agent move (default: the run's, or 1000 for pure MCTS)")
    play.set_defaults(run=lambda a: commands.play(a.file, a.seed, commands.parse_params(a.param), a.difficulty,
                                                  sys.stdin, sys.stdout, a.policy, a.side, a.simulations))

    # WebAssembly: `export` (twisterl/export.py) and `doctor --wasm`.
    exp = sub.add_parser("export", help="export an env (and a trained policy) to WebAssembly with a browser player",
                         description="Build FILE into a wasm-pack package (OUT_DIR/pkg), a raw C-ABI module "
                         "(OUT_DIR/raw) and a static browser player (OUT_DIR/index.html).")
    exp.add_argument("file", metavar="FILE")
    exp.add_argument("--wasm", metavar="OUT_DIR", required=True, help="the folder to write")
    exp.add_argument("--policy", metavar="RUN_DIR", help="bundle the policy of a training run")
    exp.add_argument("--weights", choices=["auto", "embed", "beside"], default="auto",
                     help="policy weights inside the module, or beside it as policy.safetensors (auto: by size)")
    exp.add_argument("--no-opt", action="store_true", help="skip wasm-opt (faster builds, bigger and slower modules)")
    exp.set_defaults(run=lambda a: _wasm_export().main_export(a.file, a.wasm, a.policy, a.weights, not a.no_opt,
                                                              sys.stdout))
    doc = sub.add_parser("doctor", help="check the tools an export needs")
    doc.add_argument("--wasm", action="store_true", help="the WebAssembly tools (the only check so far)")
    doc.set_defaults(run=lambda a: _wasm_export().doctor(sys.stdout))

    def _wasm_export():
        from . import export
        return export
    return parser


def _bad_file(exc: Exception) -> bool:
    """Whether `exc` is about a file's content (a config, a run dir, a checkpoint): exit 1,
    as for any failure; other ValueErrors and TypeErrors are usage errors (exit 2)."""
    from .learners.config import ConfigError
    rundir = sys.modules.get("twisterl.rundir")  # only loaded (with torch) by the commands that read run dirs
    return isinstance(exc, ConfigError) or (rundir is not None and isinstance(exc, rundir.CheckpointError))


def main(argv: Optional[Sequence[str]] = None) -> int:
    try:
        code = _main(argv)
        sys.stdout.flush()  # a closed pipe shows here, not in Python's exit
        return code
    except BrokenPipeError:
        # The reader went away (`twisterl check --dump-ir F | head -1`): stop quietly, like
        # other Unix tools, and keep Python from complaining about the unflushed stream.
        for stream in (sys.stdout, sys.stderr):
            try:
                os.dup2(os.open(os.devnull, os.O_WRONLY), stream.fileno())
            except (OSError, ValueError):
                pass
        return 141  # 128 + SIGPIPE, as a shell reports a tool killed by the closed pipe


def _main(argv: Optional[Sequence[str]]) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.run(args)
    except BrokenPipeError:
        raise
    except (TypeError, ValueError) as exc:
        print(f"twisterl {args.command}: error: {exc}", file=sys.stderr)
        return 1 if _bad_file(exc) else 2
    except RuntimeError as exc:  # CheckError is a ValueError; EnvError, BuildError, CacheError land here
        print(f"twisterl {args.command}: error: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:  # the system refused a file operation: a missing file, no space, no permission
        print(f"twisterl {args.command}: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except MemoryError:
        print(f"twisterl {args.command}: error: out of memory (a smaller config, fewer envs or steps, "
              "or a smaller network needs less)", file=sys.stderr)
        return 1
    except Exception as exc:  # an internal error: a bug in twisterl, never the user's fault
        if os.environ.get("TWISTERL_DEBUG"):
            traceback.print_exc()
        print(f"twisterl: internal error: {type(exc).__name__}: {exc}\n"
              "This is a bug in twisterl, not in your file. Set TWISTERL_DEBUG=1 for the traceback "
              "and please report it.", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
