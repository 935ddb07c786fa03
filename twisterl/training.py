"""`twisterl train` and `twisterl eval`: runs in a run dir, configs, evaluation."""

from __future__ import annotations

import json
import time
from dataclasses import fields
from pathlib import Path
from typing import Any, Optional, TextIO

import numpy as np

from .rundir import CheckpointError, RunDir, find_run

# TwisteRL's JSON config keys -> ours.
_TWISTERL_KEYS = {
    ("algorithm", "collecting", "lambda"): "gae_lambda",
    ("algorithm", "collecting", "gamma"): "gamma",
    ("algorithm", "training", "num_epochs"): "update_epochs",
    ("algorithm", "training", "vf_coef"): "vf_coef",
    ("algorithm", "training", "ent_coef"): "ent_coef",
    ("algorithm", "training", "clip_ratio"): "clip_coef",
    ("algorithm", "training", "normalize_advantage"): "norm_adv",
    ("algorithm", "learning", "diff_threshold"): "diff_threshold",
    ("algorithm", "learning", "diff_max"): "diff_max",
    ("algorithm", "learning", "diff_metric"): "diff_metric",
    ("algorithm", "evals"): "evals",
    ("algorithm", "optimizer", "lr"): "learning_rate",
    ("policy", "embedding_size"): "embedding_size",
    ("policy", "common_layers"): "common_layers",
    ("env", "difficulty"): "difficulty",
}


def load_config(path: Optional[str]) -> dict:
    """Our flat keys, or TwisteRL's nested JSON config (its known keys are mapped)."""
    if not path:
        return {}
    text = Path(path).read_text()
    if path.endswith(".toml"):
        import tomllib
        data = tomllib.loads(text)
    else:
        data = json.loads(text)
    if "algorithm" in data or "policy" in data:
        flat = {}
        for keys, ours in _TWISTERL_KEYS.items():
            node: Any = data
            for k in keys:
                node = node.get(k) if isinstance(node, dict) else None
            if node is not None:
                flat[ours] = node
        return flat
    return data


# Defaults for envs with continuous actions (PPO's usual settings for small control tasks:
# separate 64x64 tanh actor and critic, short horizon, normalised rewards).
CONTINUOUS_DEFAULTS = {
    "num_envs": 64, "num_steps": 256, "gamma": 0.9, "gae_lambda": 0.95, "update_epochs": 10,
    "num_minibatches": 32, "clip_coef": 0.2, "vf_coef": 0.5, "ent_coef": 0.0, "learning_rate": 1e-3,
    "embedding_size": 64, "common_layers": [64], "norm_reward": True, "max_env_steps": 1_000_000,
}


def make_config(overrides: dict, cls=None):
    """The PPO config: the defaults for the env's kind, then `overrides`."""
    from .learners.ppo import Config
    known = {f.name for f in fields(Config)}
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise ValueError(f"unknown config key(s): {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    base = dict(CONTINUOUS_DEFAULTS) if cls is not None and cls.continuous else {}
    return Config(**{**base, **overrides})


def train(path: Optional[str], out: Optional[str], config_path: Optional[str], params: dict, seed: Optional[int],
          iterations: Optional[int], time_limit: Optional[float], stream: TextIO, resume: Optional[str] = None,
          algo: str = "ppo") -> int:
    if algo == "az" or (resume is not None and find_run(resume).config().get("algo") == "az"):
        from .az_training import train_alphazero
        return train_alphazero(path, out, config_path, params, seed, iterations, time_limit, stream, resume)
    import twisterl
    from .learners.ppo import PPO
    from .rundir import restore_optimizer
    if resume is not None:
        run = find_run(resume)
        saved = run.config()
        cls = twisterl.compile(run.path / "env.twl")
        cfg = make_config(saved["config"], cls)
        params = saved.get("params", {})
        ppo = PPO(cls, cfg, params)
        meta = {"env": cls.name, "obs_size": ppo.policy.obs_size, "num_actions": ppo.num_actions}
        state = run.load("last", ppo.policy, meta)
        restore_optimizer(ppo.optimizer, state)
        ppo.resume(state)
        best = run.best_score()
        print(f"resuming {run.path} after iteration {state['iteration']} at difficulty {state['difficulty']}",
              file=stream)
    else:
        if path is None:
            raise ValueError("give a .twl file to train, or --resume RUN_DIR")
        cls = twisterl.compile(path)
        overrides = load_config(config_path)
        if seed is not None:
            overrides["seed"] = seed
        cfg = make_config(overrides, cls)
        run = RunDir(Path(out) if out else Path("runs") / f"{cls.name}-{time.strftime('%Y%m%d-%H%M%S')}")
        ppo = PPO(cls, cfg, params)
        meta = {"env": cls.name, "obs_size": ppo.policy.obs_size, "num_actions": ppo.num_actions}
        run.create({"env_file": str(path), "params": params, "config": ppo.config_dict(), "policy": ppo.policy_desc,
                    **meta}, Path(path).read_text())
        best = None
    start = time.perf_counter()
    print(f"training {cls.name} with PPO: {cfg.num_envs} envs x {cfg.num_steps} steps per iteration; "
          f"run dir {run.path}", file=stream)
    from .monitor import Monitor
    monitor = Monitor(run, stream, time_limit, cfg.diff_max)

    def on_iteration(s) -> None:
        nonlocal best
        row = {k: v for k, v in s.__dict__.items() if k != "evals"}
        row.update({f"eval_{name}": success for name, success in s.evals.items()})
        monitor.record({**row, "elapsed": round(time.perf_counter() - start, 3), "total_env_steps": ppo.env_steps})
        success = s.evals.get(cfg.diff_metric, s.success_rate)
        state = {**meta, **ppo.progress(), "iteration": s.iteration, "success_rate": success,
                 "mean_return": s.mean_return}
        run.save("last", ppo.policy, state, ppo.optimizer)
        # The best checkpoint: the highest difficulty, then success, then mean return.
        score = (s.difficulty, success, s.mean_return)
        if s.episodes and (best is None or score > best):
            best = score
            run.save("best", ppo.policy, {**state, "difficulty": s.difficulty})

    try:
        history = ppo.train(iterations=iterations, time_limit=time_limit, on_iteration=on_iteration)
    finally:
        monitor.close()
    last = history[-1]
    print(f"done after {len(history)} iterations, {time.perf_counter() - start:.1f} s: difficulty "
          f"{last.difficulty}, success {last.success_rate:.2f}; checkpoints in {run.path}", file=stream)
    return 0


def load_policy(run: RunDir, which: str = "best"):
    """The torch network of a run, with the weights of checkpoint `which`."""
    from .nets import build_policy
    cfg = run.config()
    desc = cfg.get("policy") or {"kind": "basic", "obs_size": cfg["obs_size"], "num_actions": cfg["num_actions"],
                                 "embedding_size": cfg["config"]["embedding_size"],
                                 "common_layers": cfg["config"]["common_layers"]}
    try:
        net = build_policy(desc)
    except (KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(f"{run.path}/config.json describes no network this version can build: {exc}") from None
    meta = run.load(which, net, {"env": cfg["env"], "obs_size": cfg["obs_size"], "num_actions": cfg["num_actions"]})
    return net, meta, cfg


def evaluate(run_path: str, episodes: int, deterministic: bool, difficulty: Optional[int], seed: int,
             stream: TextIO, tries: int = 1, average_twists: bool = False) -> int:
    import twisterl
    from .evaluation import evaluate_policy
    from .nets import export
    from .symmetry import twist_group
    run = find_run(run_path)
    if run.config().get("algo") == "az":
        from .az_training import evaluate_alphazero
        return evaluate_alphazero(run_path, episodes, difficulty, seed, stream, tries)
    net, meta, cfg = load_policy(run)
    cls = twisterl.compile(run.path / "env.twl")
    if difficulty is None:
        difficulty = int(meta.get("difficulty", 0))
    meta.pop("_tensors", None)
    params = cfg.get("params", {})
    group = None
    if average_twists:
        names = cls.spec.get("symmetries", [])
        if not names:
            raise ValueError(f"{cls.name} declares no symmetry to average over")
        group = twist_group(list(cls.vector(1, seed=0, **params).twists().values()))
    result = evaluate_policy(cls, export(net), episodes, deterministic, difficulty, seed, params, tries=tries,
                             twists=group, log_std=_log_std(net))
    how = "deterministic" if deterministic else "sampled"
    if tries > 1:
        how += f", best of {tries} tries"
    if group:
        how += f", averaged over {len(group)} twists"
    print(f"{cls.name} at difficulty {difficulty}, {episodes} episodes ({how}): success {result['success']:.3f}, "
          f"mean return {result['return']:+.3f}, mean length {result['length']:.1f}", file=stream)
    return 0


def _log_std(net) -> Optional[np.ndarray]:
    log_std = getattr(net, "log_std", None)
    return None if log_std is None else log_std.detach().numpy().astype(np.float64)
