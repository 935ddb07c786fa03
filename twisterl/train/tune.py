"""`twisterl tune`: a hyperparameter search for PPO with Optuna.

Each trial draws PPO hyperparameters from `SEARCH_SPACE` (the keys a `--config` file sets
are fixed and not searched), trains a PPO learner in-process for `trial_seconds` seconds
and is scored by `score`. Trials run `jobs` at a time in threads of this process
(`study.optimize(..., n_jobs=jobs)`), each with one rollout thread and one torch thread.
Nothing here prints: `tune` returns a `TuneResult` and calls `on_trial` after each trial.

The objective (`score`), from the iterations a trial ran:

- an env that declares `success` (single-player): `difficulty + success_rate` of the
  last iteration in which an episode finished; for an env without a curriculum (its
  difficulty stays 1) this is 1 + the success rate;
- an env that declares no `success`: the mean return of that iteration;
- a two-player game (self-play PPO): the last arena's score against random play (win 1,
  draw 0.5, loss 0).

No iteration with a finished episode (or an arena): the trial fails (no value). The
same rule, on the iterations so far, is the intermediate value reported after every
iteration (`trial.report(value, iteration)`); Optuna's `MedianPruner`
(`n_startup_trials=2`) stops a trial whose value is below the median of the earlier
trials' at the same iteration.
"""

from __future__ import annotations

import csv
import json
import math
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

import optuna

# The search space: name -> ("log", low, high) for a log-uniform float or ("choice", values).
# `common_layer` is the width of the single common layer (`common_layers: [width]`).
SEARCH_SPACE: dict[str, tuple] = {
    "learning_rate": ("log", 1e-4, 3e-3),
    "ent_coef": ("log", 1e-4, 0.1),
    "gamma": ("choice", (0.9, 0.95, 0.99, 0.995, 0.999)),
    "gae_lambda": ("choice", (0.9, 0.95, 0.99)),
    "clip_coef": ("choice", (0.1, 0.2, 0.3)),
    "num_steps": ("choice", (32, 64, 128)),
    "num_envs": ("choice", (64, 128, 256)),
    "update_epochs": ("choice", (2, 4, 8)),
    "num_minibatches": ("choice", (2, 4, 8)),
    "embedding_size": ("choice", (64, 128, 256, 512)),
    "common_layer": ("choice", (64, 128, 256, 512)),
}
# The Config key each searched name sets (all but `common_layer` are Config keys themselves).
CONFIG_KEY = {"common_layer": "common_layers"}
# What every trial uses, so `jobs` trials share the cores (not written to best_config.json).
TRIAL_FIXED = {"num_threads": 1, "torch_threads": 1}


@dataclass
class TrialRecord:
    number: int
    state: str
    """COMPLETE, PRUNED or FAIL"""
    value: Optional[float]
    seconds: float
    params: dict
    """the sampled hyperparameters (search-space names)"""
    iterations: int = 0
    error: str = ""


@dataclass
class TuneResult:
    env: str
    out: Path
    trials: list[TrialRecord]
    best_value: Optional[float]
    best_trial: Optional[int]
    best_config: Optional[dict]
    """the fixed keys and the best trial's hyperparameters, as Config keys"""
    searched: list[str]
    fixed: dict
    trial_seconds: float
    objective: str
    """how trials are scored, in words"""
    failures: list[str] = field(default_factory=list)


def trial_seconds(time_limit: float, trials: int, jobs: int) -> float:
    """Each trial's training time: `time_limit / trials * jobs`, so that `trials` trials run
    `jobs` at a time take about `time_limit` in all (`jobs` counts at most `trials`)."""
    return time_limit / trials * min(jobs, trials)


def searched_names(fixed: dict) -> list[str]:
    """The search-space names whose Config key the fixed config does not set."""
    return [name for name in SEARCH_SPACE if CONFIG_KEY.get(name, name) not in fixed]


def sample(trial, names: list[str]) -> dict:
    """Draw the named hyperparameters for `trial`; returns them under their search-space names."""
    out = {}
    for name in names:
        spec = SEARCH_SPACE[name]
        if spec[0] == "log":
            out[name] = trial.suggest_float(name, spec[1], spec[2], log=True)
        else:
            out[name] = trial.suggest_categorical(name, list(spec[1]))
    return out


def to_config(params: dict) -> dict:
    """Sampled hyperparameters as Config keys."""
    return {CONFIG_KEY.get(k, k): ([v] if k == "common_layer" else v) for k, v in params.items()}


def objective_rule(cls) -> str:
    if cls.players == 2:
        return "the last arena's score against random play (self-play PPO)"
    if cls.spec.get("has_success"):
        return "difficulty + success rate of the last iteration with a finished episode"
    return "mean return of the last iteration with a finished episode (the env declares no success)"


def score(history: list, two_player: bool, has_success: bool) -> Optional[float]:
    """The objective from a trial's iterations (see the module docstring); None when no
    iteration had a finished episode (or, for games, an arena)."""
    for s in reversed(history):
        if two_player:
            value = s.arena.get("vs_random", float("nan"))
            if not math.isnan(value):
                return float(value)
            continue
        if not s.episodes or math.isnan(s.success_rate if has_success else s.mean_return):
            continue
        return float(s.difficulty + s.success_rate) if has_success else float(s.mean_return)
    return None


def report(trial, value: Optional[float], step: int) -> bool:
    """Report an intermediate value (skipped when None) and say whether to prune."""
    if value is not None:
        trial.report(value, step)
    return trial.should_prune()


def make_study(seed: int, direction: str = "maximize"):
    """A study with a seeded TPE sampler and the median pruner (2 startup trials)."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna.create_study(direction=direction, sampler=optuna.samplers.TPESampler(seed=seed),
                               pruner=optuna.pruners.MedianPruner(n_startup_trials=2))


def check_inputs(trials: int, time_limit: float, jobs: int, seed: int) -> None:
    from .config import MAX_SEED
    if trials < 1:
        raise ValueError(f"--trials must be at least 1, not {trials}")
    if not (time_limit > 0 and math.isfinite(time_limit)):
        raise ValueError(f"--time-limit must be a positive number of seconds, not {time_limit}")
    if jobs < 1:
        raise ValueError(f"--jobs must be at least 1, not {jobs}")
    if not 0 <= seed <= MAX_SEED - trials:
        raise ValueError(f"--seed must be between 0 and {MAX_SEED - trials} (trial k uses seed + k), not {seed}")


def tune(path: str, trials: int, time_limit: float, jobs: int = 2, seed: int = 0, out: Optional[str] = None,
         config_path: Optional[str] = None, params: Optional[dict] = None,
         on_trial: Optional[Callable[[TrialRecord], None]] = None, ray: bool = False,
         ray_address: Optional[str] = None) -> TuneResult:
    """`twisterl tune`: `trials` trials, `jobs` at a time, each training PPO for
    `trial_seconds(time_limit, trials, jobs)` seconds; writes best_config.json and
    trials.csv to `out` and returns the result. With `ray`, each trial is a Ray task on
    the cluster at `ray_address` (or a local one), unpruned (see `twisterl.train.tune_ray`)."""
    from ..envs import compile
    from .checkpoints import make_ppo_config as make_config
    from .config import load_config
    from .ppo import PPO
    from .probe import auto_episode_limit
    check_inputs(trials, time_limit, jobs, seed)
    params = dict(params or {})
    fixed = load_config(config_path)
    fixed.pop("ray", None)  # how trials run, not what they train with
    where = config_path or "the config"
    for key in TRIAL_FIXED:
        fixed.pop(key, None)  # every trial uses one thread of each kind; training keeps its own
    fixed.pop("seed", None)  # trial k uses seed + k
    cls = compile(path)
    if cls.players > 2:
        raise ValueError(f"{cls.name} has {cls.players} players; PPO (and so tune) trains single-player envs and "
                         "two-player zero-sum games")
    if cls.players == 2 and cls.continuous:
        raise ValueError(f"{cls.name}: self-play PPO needs discrete actions")
    base = make_config({**fixed, **TRIAL_FIXED, "seed": seed}, cls, where=where)  # checks the fixed keys
    if "max_episode_steps" not in fixed:
        limit, _ = auto_episode_limit(cls, params, base.difficulty, seed)
        if limit:
            fixed["max_episode_steps"] = limit
    vec_check = cls.vector(1, seed=0, **params)  # a bad --param fails here, before any trial
    del vec_check
    names = searched_names(fixed)
    seconds = trial_seconds(time_limit, trials, jobs)
    two, has_success = cls.players == 2, bool(cls.spec.get("has_success"))
    out_dir = Path(out) if out else Path("runs") / f"tune-{cls.name}-{time.strftime('%Y%m%d-%H%M%S')}"
    out_dir.mkdir(parents=True, exist_ok=True)
    records: dict[int, TrialRecord] = {}
    lock = threading.Lock()

    def trial_config(trial) -> tuple[dict, dict]:
        sampled = sample(trial, names)
        return sampled, {**fixed, **to_config(sampled), **TRIAL_FIXED, "seed": seed + trial.number}

    if ray:
        from .tune_ray import run_trials
        study = make_study(seed)
        rows = run_trials(study, trials, jobs, trial_config, ray_trial, TrialRecord, cls, Path(path).read_text(),
                          params, seconds, ray_address, on_trial)
        return finish(rows, cls, fixed, names, seconds, out_dir)

    def objective(trial) -> float:
        _, data = trial_config(trial)
        cfg = make_config(data, cls, where=f"trial {trial.number}")

        def on_iteration(history: list) -> None:
            trial.set_user_attr("iterations", len(history))
            if report(trial, score(history, two, has_success), len(history) - 1):
                raise optuna.TrialPruned()

        history = train_trial(PPO(cls, cfg, params), seconds, on_iteration)
        return trial_value(history, two, has_success, seconds)

    def callback(study, frozen) -> None:
        rec = TrialRecord(number=frozen.number, state=frozen.state.name, value=frozen.value,
                          seconds=round((frozen.datetime_complete - frozen.datetime_start).total_seconds(), 2)
                          if frozen.datetime_complete and frozen.datetime_start else 0.0,
                          params=dict(frozen.params), iterations=int(frozen.user_attrs.get("iterations", 0)),
                          error=str(frozen.user_attrs.get("error", "")))
        with lock:
            records[frozen.number] = rec
            if on_trial:
                on_trial(rec)

    class Catch(Exception):
        pass

    def guarded(trial) -> float:
        try:
            return objective(trial)
        except optuna.TrialPruned:
            raise
        except (RuntimeError, ValueError, MemoryError) as exc:
            trial.set_user_attr("error", f"{type(exc).__name__}: {exc}")
            raise Catch(str(exc)) from None

    study = make_study(seed)
    study.optimize(guarded, n_trials=trials, n_jobs=min(jobs, trials), catch=(Catch,), callbacks=[callback])
    return finish([records[k] for k in sorted(records)], cls, fixed, names, seconds, out_dir)


def train_trial(ppo, seconds: float, on_iteration: Optional[Callable[[list], None]] = None) -> list:
    """A trial's training: `ppo` iterated for `seconds` (or until its curriculum or step
    budget is done); `on_iteration` sees the history after each iteration (and may prune)."""
    cfg = ppo.cfg
    history: list = []
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        stats = ppo.iterate(deadline)
        if stats is None:
            break
        history.append(stats)
        if on_iteration:
            on_iteration(history)
        if stats.difficulty >= cfg.diff_max and ppo.solved(stats):
            break
        if cfg.max_env_steps and ppo.env_steps >= cfg.max_env_steps:
            break
    return history


def ray_trial(env: dict, plugin, data: dict, params: dict, seconds: float, where: str) -> dict:
    """One trial as a Ray task (see `twisterl.train.tune_ray`): the env built from the
    driver's (`ray_workers.load_env`), PPO trained for `seconds` with the config `data`.
    Its value, its intermediate values, its iterations, and the error that stopped it."""
    from .checkpoints import make_ppo_config
    from .ppo import PPO
    from .ray_workers import load_env
    cls, _ = load_env(env, plugin)
    two, has_success = cls.players == 2, bool(cls.spec.get("has_success"))
    history: list = []
    try:
        history = train_trial(PPO(cls, make_ppo_config(data, cls, where), params), seconds)
        value, error = trial_value(history, two, has_success, seconds), None
    except (RuntimeError, ValueError, MemoryError) as exc:
        value, error = None, f"{type(exc).__name__}: {exc}"
    values = [score(history[:n], two, has_success) for n in range(1, len(history) + 1)]
    return {"value": value, "values": values, "iterations": len(history), "error": error}


def trial_value(history: list, two: bool, has_success: bool, seconds: float) -> float:
    """The trial's objective, or a `RuntimeError` saying why it has none."""
    value = score(history, two, has_success)
    if value is None:
        raise RuntimeError(f"no episode finished in {len(history)} iterations ({seconds:.1f} s)"
                           if not two else f"no arena ran in {len(history)} iterations ({seconds:.1f} s)")
    return value


def finish(rows: list[TrialRecord], cls, fixed: dict, names: list[str], seconds: float, out_dir: Path) -> TuneResult:
    """The best trial's config written to best_config.json, every trial to trials.csv."""
    from .checkpoints import make_ppo_config as make_config
    complete = [r for r in rows if r.state == "COMPLETE"]
    best = max(complete, key=lambda r: (r.value, -r.number)) if complete else None
    best_config = None
    if best is not None:
        best_config = {**fixed, **to_config(best.params)}
        make_config(best_config, cls, where="best_config.json")  # what train --config will accept
        (out_dir / "best_config.json").write_text(json.dumps(best_config, indent=2) + "\n")
    write_csv(out_dir / "trials.csv", rows, fixed)
    return TuneResult(env=cls.name, out=out_dir, trials=rows, best_value=best.value if best else None,
                      best_trial=best.number if best else None, best_config=best_config, searched=names,
                      fixed=fixed, trial_seconds=seconds, objective=objective_rule(cls),
                      failures=[f"trial {r.number}: {r.error}" for r in rows if r.state == "FAIL"])


def write_csv(path: Path, rows: list[TrialRecord], fixed: dict) -> None:
    """One row per trial: number, state, value, seconds, iterations and a column for every
    search-space name: the trial's draw, or the fixed config's value when it was not searched."""
    def fixed_value(name: str):
        value = fixed[CONFIG_KEY.get(name, name)]
        return json.dumps(value) if isinstance(value, (list, dict)) else value

    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["number", "state", "value", "seconds", "iterations", *SEARCH_SPACE])
        for r in rows:
            w.writerow([r.number, r.state, "" if r.value is None else r.value, r.seconds, r.iterations,
                        *[r.params[n] if n in r.params else fixed_value(n) for n in SEARCH_SPACE]])
