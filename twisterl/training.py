"""`twisterl train` and `twisterl eval`: runs in a run dir, configs, evaluation."""

from __future__ import annotations

import json
import time
from dataclasses import fields
from pathlib import Path
from typing import Any, Optional, TextIO

import numpy as np

from .rundir import RunDir, find_run

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


def make_config(overrides: dict):
    from .learners.ppo import Config
    known = {f.name for f in fields(Config)}
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise ValueError(f"unknown config key(s): {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    return Config(**overrides)


def train(path: Optional[str], out: Optional[str], config_path: Optional[str], params: dict, seed: Optional[int],
          iterations: Optional[int], time_limit: Optional[float], stream: TextIO, resume: Optional[str] = None) -> int:
    import twisterl
    from .learners.ppo import PPO
    from .rundir import restore_optimizer
    if resume is not None:
        run = find_run(resume)
        saved = run.config()
        cls = twisterl.compile(run.path / "env.twl")
        cfg = make_config(saved["config"])
        params = saved.get("params", {})
        ppo = PPO(cls, cfg, params)
        meta = {"env": cls.name, "obs_size": ppo.policy.obs_size, "num_actions": ppo.num_actions}
        state = run.load("last", ppo.policy, meta)
        restore_optimizer(ppo.optimizer, state)
        ppo.resume(state)
        best = (int(state["difficulty"]), float(state["success_rate"]))
        print(f"resuming {run.path} after iteration {state['iteration']} at difficulty {state['difficulty']}",
              file=stream)
    else:
        if path is None:
            raise ValueError("give a .twl file to train, or --resume RUN_DIR")
        cls = twisterl.compile(path)
        overrides = load_config(config_path)
        if seed is not None:
            overrides["seed"] = seed
        cfg = make_config(overrides)
        run = RunDir(Path(out) if out else Path("runs") / f"{cls.name}-{time.strftime('%Y%m%d-%H%M%S')}")
        ppo = PPO(cls, cfg, params)
        meta = {"env": cls.name, "obs_size": ppo.policy.obs_size, "num_actions": ppo.num_actions}
        run.create({"env_file": str(path), "params": params, "config": ppo.config_dict(), **meta},
                   Path(path).read_text())
        best = (-1, -1.0)
    start = time.perf_counter()
    print(f"training {cls.name} with PPO: {cfg.num_envs} envs x {cfg.num_steps} steps per iteration; "
          f"run dir {run.path}", file=stream)
    from .monitor import Monitor
    monitor = Monitor(run, stream, time_limit, cfg.diff_max)

    def on_iteration(s) -> None:
        nonlocal best
        monitor.record({**s.__dict__, "elapsed": round(time.perf_counter() - start, 3),
                        "total_env_steps": ppo.env_steps})
        state = {**meta, **ppo.progress(), "iteration": s.iteration, "success_rate": s.success_rate}
        run.save("last", ppo.policy, state, ppo.optimizer)
        if s.episodes and (s.difficulty, s.success_rate) > best:
            best = (s.difficulty, s.success_rate)
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
    from .nets import BasicPolicy
    cfg = run.config()
    net = BasicPolicy(cfg["obs_size"], cfg["num_actions"], cfg["config"]["embedding_size"],
                      cfg["config"]["common_layers"])
    meta = run.load(which, net, {"env": cfg["env"], "obs_size": cfg["obs_size"], "num_actions": cfg["num_actions"]})
    return net, meta, cfg


def evaluate(run_path: str, episodes: int, deterministic: bool, difficulty: Optional[int], seed: int,
             stream: TextIO) -> int:
    import twisterl
    from .nets import export
    run = find_run(run_path)
    net, meta, cfg = load_policy(run)
    cls = twisterl.compile(run.path / "env.twl")
    if difficulty is None:
        difficulty = int(meta.get("difficulty", 0))
    meta.pop("_tensors", None)
    result = evaluate_policy(cls, export(net), episodes, deterministic, difficulty, seed, cfg.get("params", {}))
    how = "deterministic" if deterministic else "sampled"
    print(f"{cls.name} at difficulty {difficulty}, {episodes} episodes ({how}): success {result['success']:.3f}, "
          f"mean return {result['return']:+.3f}, mean length {result['length']:.1f}", file=stream)
    return 0


def evaluate_policy(cls, rust_policy, episodes: int, deterministic: bool, difficulty: int, seed: int,
                    params: dict, max_steps: int = 100_000) -> dict:
    """Play one episode in each of `episodes` envs with the Rust policy."""
    vec = cls.vector(episodes, seed=seed, difficulty=difficulty, **params)
    obs, info = vec.reset()
    sparse = cls.spec["observation"]["kind"] == "sparse"
    rng = np.random.default_rng(seed)
    finished = np.zeros(episodes, dtype=bool)
    success = np.zeros(episodes, dtype=bool)
    returns = np.zeros(episodes)
    lengths = np.zeros(episodes)
    for _ in range(max_steps):
        if sparse:
            idx, counts = vec.observe_indices()
            logits, _ = rust_policy.forward_sparse(idx, counts)
        else:
            logits, _ = rust_policy.forward_dense(obs.reshape(episodes, -1))
        logits = np.where(info["action_mask"], logits, -np.inf)
        if deterministic:
            actions = logits.argmax(axis=1)
        else:
            p = np.exp(logits - logits.max(axis=1, keepdims=True))
            p /= p.sum(axis=1, keepdims=True)
            actions = (p.cumsum(axis=1) > rng.random((episodes, 1))).argmax(axis=1)
        obs, reward, term, trunc, info = vec.step(actions)
        live = ~finished
        returns[live] += reward[live]
        lengths[live] += 1
        ended = live & (term | trunc)
        success[ended] = info["success"][ended]
        finished |= ended
        if finished.all():
            break
    return {"success": float(success.mean()), "return": float(returns.mean()), "length": float(lengths.mean())}
