"""`twisterl train`, `twisterl eval` and `twisterl tune`: the training commands, which
print what the library returns."""

from __future__ import annotations

import argparse
import json
import os
import sys

from .params import parse_params


def _needs_training() -> None:
    """The training commands need safetensors (a base dependency; torch is needed only for
    learner "torch", which says so itself)."""
    try:
        import safetensors  # noqa: F401
    except ImportError as exc:
        raise RuntimeError(f"this command needs {exc.name}, which is not installed: pip install 'twisterl[train]'") \
            from None


def _tuning():
    """`twisterl tune` needs the training extras and Optuna (the `tune` extra)."""
    _needs_training()
    try:
        from ..train import tune
    except ImportError as exc:
        if exc.name == "optuna":
            raise RuntimeError("this command needs Optuna (optuna is not installed): "
                               "pip install 'twisterl[tune]'") from None
        raise RuntimeError(f"this command needs the training extras ({exc.name} is not installed): "
                           "pip install 'twisterl[train]'") from None
    return tune


def cmd_tune(args: argparse.Namespace) -> int:
    tune = _tuning()
    use_ray = args.ray is not None
    if args.jobs is not None:
        jobs = args.jobs
    elif use_ray:
        from ..train.tune_ray import cluster_jobs
        jobs = cluster_jobs(args.ray or None)
    else:
        jobs = min(2, os.cpu_count() or 1)
    tune.check_inputs(args.trials, args.time_limit, jobs, args.seed)
    params = parse_params(args.param)
    where = " as Ray tasks" if use_ray else ""
    print(f"tuning {args.file}: {args.trials} trials, {min(jobs, args.trials)} at a time{where}, "
          f"{tune.trial_seconds(args.time_limit, args.trials, jobs):.1f} s each", file=sys.stderr)

    def on_trial(r) -> None:
        value = "" if r.value is None else f" value {r.value:.4f}"
        why = f" ({r.error})" if r.error else ""
        print(f"trial {r.number}: {r.state}{value} after {r.iterations} iterations, {r.seconds:.1f} s{why}",
              file=sys.stderr)

    result = tune.tune(args.file, args.trials, args.time_limit, jobs, args.seed, args.out, args.config, params,
                       on_trial, ray=use_ray, ray_address=args.ray or None)
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


def cmd_train(args: argparse.Namespace) -> int:
    _needs_training()
    from ..train.driver import train
    train(args.file, args.out, args.config, parse_params(args.param), args.seed, args.iterations, args.time_limit,
          sys.stdout, args.resume, args.algo, learner=args.learner, ray=args.ray is not None,
          ray_address=args.ray or None)
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    _needs_training()
    from ..train.run_eval import MatchResult, evaluate_run
    from .hub import run_ref
    results = evaluate_run(run_ref(args.run_dir), args.episodes, args.deterministic, args.difficulty, args.seed, args.tries,
                           args.average_twists, mcts_simulations=args.mcts_simulations,
                           simulations=args.simulations)
    for r in results:
        if isinstance(r, MatchResult):
            print(f"{r.env}: {r.player} vs {r.opponent}, {r.games} games: {r.wins} wins, {r.draws} draws, "
                  f"{r.losses} losses (score {r.score:.3f})")
            continue
        shown = f"success {r.success:.3f}"
        if r.mean_return is not None:
            shown += f", mean return {r.mean_return:+.3f}"
        print(f"{r.env} at difficulty {r.difficulty}, {r.episodes} episodes ({r.how}): {shown}, "
              f"mean length {r.mean_length:.1f}")
    return 0
