"""The `twisterl` command line.

    twisterl check FILE...           parse and type-check .twl files, report diagnostics
    twisterl compile FILE...         build .twl files into native env plugins (cached)
    twisterl run FILE                random legal-action rollouts: episode stats and steps/s
    twisterl play FILE               play an env in the terminal (or watch/face a trained policy)
    twisterl train [FILE]            train a policy with PPO (or AlphaZero: --algo az), or --resume a run
    twisterl eval RUN_DIR            evaluate a trained policy
    twisterl tune FILE               search PPO hyperparameters with Optuna (needs twisterl[tune])
    twisterl export FILE --wasm DIR  export an env (and a policy) to WebAssembly with a browser player
    twisterl push RUN_DIR --repo U/N upload a run to the Hugging Face Hub (model card, player, checksums)
    twisterl pull U/N                download a run from the Hub and check it (then eval hf://U/N ...)
    twisterl doctor --wasm           check the tools an export needs
"""

from __future__ import annotations

import argparse
import os
import sys
import traceback
from typing import Optional, Sequence

from .check import cmd_check
from .compile import compile_files
from .export import cmd_doctor, cmd_export
from .hub import cmd_pull, cmd_push, run_ref, source_ref
from .params import parse_params
from .play import play as play_env
from .run import run as run_random
from .train import cmd_eval, cmd_train, cmd_tune


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
    comp.set_defaults(run=lambda a: compile_files(a.files, a.emit_rust, sys.stdout))

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
    run.set_defaults(run=lambda a: run_random(a.file, a.episodes, a.seed, parse_params(a.param),
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
    tr.add_argument("--learner", choices=["auto", "rust", "torch"],
                    help="where updates run: rust (twisterl's own), torch, or auto (the default: rust on the CPU "
                    "for the networks it trains); over the config's `learner`, also when resuming")
    tr.add_argument("--ray", nargs="?", const="", metavar="ADDRESS",
                    help="collect rollouts (self-play games) on Ray workers: join the cluster at ADDRESS "
                    "(\"auto\", HOST:PORT), or start a local one; needs twisterl[ray] (see docs/distributed.md)")
    tr.set_defaults(run=cmd_train)

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
    tu.add_argument("--ray", nargs="?", const="", metavar="ADDRESS",
                    help="run each trial as a Ray task (JOBS at a time, default: the cluster's CPUs) on the "
                    "cluster at ADDRESS, or on a local one; needs twisterl[ray]")
    tu.set_defaults(run=cmd_tune)

    ev = sub.add_parser("eval", help="evaluate a trained policy")
    ev.add_argument("run_dir", metavar="RUN_DIR", help="a run dir, a bundle folder or hf://USER/NAME[@REVISION]")
    ev.add_argument("--episodes", type=int, default=100)
    ev.add_argument("--deterministic", action="store_true")
    ev.add_argument("--difficulty", type=int)
    ev.add_argument("--seed", type=int, default=0)
    ev.add_argument("--tries", type=int, default=1, metavar="N",
                    help="play each episode N times from the same start; a success if any try succeeds")
    ev.add_argument("--mcts-simulations", type=int, metavar="N",
                    help="two-player games: simulations per move of the pure-MCTS opponent (default: the run's "
                         "`pure_simulations`)")
    ev.add_argument("--simulations", type=int, metavar="N",
                    help="search with the policy: PUCT on its priors and values, N simulations a move (AlphaZero "
                         "runs: default their `num_simulations`; PPO runs: default none, the policy acts alone)")
    ev.add_argument("--average-twists", action="store_true",
                    help="average the policy over the env's symmetries (an equivariant policy)")
    ev.set_defaults(run=cmd_eval)

    play = sub.add_parser("play", help="play an env yourself in the terminal")
    play.add_argument("file", metavar="FILE")
    play.add_argument("--seed", type=int, default=None)
    play.add_argument("--param", action="append", default=[], metavar="NAME=VALUE")
    play.add_argument("--difficulty", type=int, default=0)
    play.add_argument("--policy", metavar="RUN_DIR", help="watch a trained agent play, step by step (a run dir or hf://USER/NAME)")
    play.add_argument("--as", dest="side", choices=["first", "second"],
                      help="two-player envs: play against the agent of --policy (without it, pure MCTS), "
                      "moving first or second")
    play.add_argument("--simulations", type=int, metavar="N",
                      help="MCTS simulations per agent move (default: the run's, or 1000 for pure MCTS)")
    play.set_defaults(run=lambda a: play_env(source_ref(a.file), a.seed, parse_params(a.param), a.difficulty,
                                                  sys.stdin, sys.stdout, run_ref(a.policy), a.side, a.simulations))

    # WebAssembly: `export` (twisterl/wasm/export.py) and `doctor --wasm`.
    exp = sub.add_parser("export", help="export an env (and a trained policy) to WebAssembly with a browser player",
                         description="Build FILE into a wasm-pack package (OUT_DIR/pkg), a raw C-ABI module "
                         "(OUT_DIR/raw) and a static browser player (OUT_DIR/index.html).")
    exp.add_argument("file", metavar="FILE")
    exp.add_argument("--wasm", metavar="OUT_DIR", required=True, help="the folder to write")
    exp.add_argument("--policy", metavar="RUN_DIR", help="bundle the policy of a training run (a run dir or hf://USER/NAME)")
    exp.add_argument("--weights", choices=["auto", "embed", "beside"], default="auto",
                     help="policy weights inside the module, or beside it as policy.safetensors (auto: by size)")
    exp.add_argument("--no-opt", action="store_true", help="skip wasm-opt (faster builds, bigger and slower modules)")
    exp.add_argument("--search", action="store_true",
                     help="give the package's Env search(...) even without a policy (pure MCTS; about 60 KB more)")
    exp.add_argument("--train", action="store_true",
                     help="give the package a Trainer and the player a Train button: PPO in the page, with the "
                     "config `twisterl train` would use")
    exp.add_argument("--config", metavar="CFG", help="with --train: the training config, as `twisterl train --config`")
    exp.add_argument("--seed", type=int, help="with --train: the seed of the starting weights and of training")
    exp.set_defaults(run=cmd_export)
    doc = sub.add_parser("doctor", help="check the tools an export needs")
    doc.add_argument("--wasm", action="store_true", help="the WebAssembly tools (the only check so far)")
    doc.set_defaults(run=cmd_doctor)

    # The Hugging Face Hub (twisterl/hub/): RUN_DIR arguments above also take hf://USER/NAME[@REVISION].
    push = sub.add_parser("push", help="upload a training run to the Hugging Face Hub",
                          description="Upload RUN_DIR as a bundle to the model repo USER/NAME (created if needed): "
                          "env.twl, config.json, the best policy (safetensors), metrics, a model card with an "
                          "evaluation, the WebAssembly player, and a manifest of every file's sha256. The token is "
                          "huggingface_hub's (hf auth login, or HF_TOKEN).")
    push.add_argument("run_dir", metavar="RUN_DIR")
    push.add_argument("--repo", required=True, metavar="USER/NAME", help="the model repo")
    push.add_argument("--private", action="store_true", help="create the repo (and Space) private")
    push.add_argument("--revision", metavar="BRANCH", help="push to this branch (created if needed; default main)")
    push.add_argument("--space", nargs="?", const=True, metavar="USER/NAME",
                      help="also create a static Space serving the player (default: the repo's name)")
    push.add_argument("--no-player", action="store_true", help="leave out the WebAssembly player (no wasm tools needed)")
    push.add_argument("--eval-episodes", type=int, default=100, metavar="N",
                      help="episodes (games) of the evaluation in the model card; 0 skips it (default 100)")
    push.set_defaults(run=cmd_push)
    pull = sub.add_parser("pull", help="download a run from the Hugging Face Hub and check it",
                          description="Download the bundle USER/NAME (into huggingface_hub's cache, or --out) and "
                          "check it: the manifest's format and checksums, file names, types and sizes, the env.twl "
                          "(compiled locally) and the policy's shapes. HF_HUB_OFFLINE=1 reads the cache only.")
    pull.add_argument("repo", metavar="USER/NAME", help="the model repo (or hf://USER/NAME[@REVISION])")
    pull.add_argument("--revision", metavar="REV", help="a branch, tag or commit (default main)")
    pull.add_argument("--out", metavar="DIR", help="download into DIR (a run dir) instead of the cache")
    pull.set_defaults(run=cmd_pull)

    return parser


def _bad_file(exc: Exception) -> bool:
    """Whether `exc` is about a file's content (a config, a run dir, a checkpoint): exit 1,
    as for any failure; other ValueErrors and TypeErrors are usage errors (exit 2)."""
    from ..train.config import ConfigError
    rundir = sys.modules.get("twisterl.train.rundir")  # only loaded (with torch) by the commands that read run dirs
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
