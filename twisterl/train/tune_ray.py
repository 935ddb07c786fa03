"""`twisterl tune --ray`: each trial a Ray task on a cluster, `jobs` at a time.

The driver keeps the Optuna study and asks it for each trial's hyperparameters (Optuna's
ask-and-tell); the task (`tune.ray_trial`) builds the env from the driver's (its plugin's
bytes, or its source) and trains. Trials are not pruned (a task cannot hear Optuna's
verdict while it runs): each reports its intermediate values when it ends, and a trial
whose worker died is retried by Ray (a task's `max_retries`)."""

from __future__ import annotations

import time
from typing import Callable, Optional

from .distributed import _reason, connect, env_message
from .ray_config import make_ray_config


def cluster_jobs(address: Optional[str]) -> int:
    """The CPUs of the cluster at `address` (or of a new local one): trials at a time."""
    ray = connect(make_ray_config({}, "--ray", address))
    return max(1, int(ray.cluster_resources().get("CPU", 1)))


def run_trials(study, trials: int, jobs: int, trial_config: Callable, task: Callable, record: type, cls, source: str,
               params: dict, seconds: float, address: Optional[str], on_trial: Optional[Callable] = None) -> list:
    """`trials` trials of `study`, `jobs` at a time as Ray tasks running `task`; one `record`
    (a `tune.TrialRecord`) per trial, by number, each also given to `on_trial` as it ends."""
    import optuna
    ray = connect(make_ray_config({}, "--ray", address))
    env, plugin = env_message(ray, cls, source, params, ship=True)
    remote = ray.remote(num_cpus=1, max_retries=2)(task)
    pending: dict = {}
    rows: dict = {}
    started = 0
    while started < trials or pending:
        while started < trials and len(pending) < jobs:
            trial = study.ask()
            sampled, data = trial_config(trial)
            ref = remote.remote(env, plugin, data, params, seconds, f"trial {trial.number}")
            pending[ref] = (trial, sampled, time.perf_counter())
            started += 1
        ready, _ = ray.wait(list(pending), num_returns=1)
        trial, sampled, start = pending.pop(ready[0])
        try:
            result = ray.get(ready[0])
        except ray.exceptions.RayError as exc:
            result = {"value": None, "values": [], "iterations": 0, "error": f"the trial's task failed: {_reason(exc)}"}
        for step, value in enumerate(result["values"]):
            if value is not None:
                trial.report(value, step)
        if result["error"] is None:
            study.tell(trial, result["value"])
            state = "COMPLETE"
        else:
            study.tell(trial, state=optuna.trial.TrialState.FAIL)
            state = "FAIL"
        rec = record(number=trial.number, state=state, value=result["value"] if state == "COMPLETE" else None,
                     seconds=round(time.perf_counter() - start, 2), params=dict(sampled),
                     iterations=result["iterations"], error=result["error"] or "")
        rows[trial.number] = rec
        if on_trial:
            on_trial(rec)
    return [rows[k] for k in sorted(rows)]
