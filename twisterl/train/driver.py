"""One training run in a run dir, for either learner: a new run or `--resume` of one, its
metrics, its `last` and `best` checkpoints and its time limit.

What differs between PPO and AlphaZero (the config, what the best checkpoint is, the
closing line) is a `Recipe`; the rest (run-dir setup, resume, saving) is shared.
"""

from __future__ import annotations

import dataclasses
import io
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Optional, Protocol, TextIO

import numpy as np

from .checkpoints import (CONTINUOUS_DEFAULTS, check_network, env_checker, make_az_config, make_ppo_config,
                          run_config, run_env)
from .config import LEARNERS, MAX_SEED, load_config
from .ray_config import RayConfig, make_ray_config
from .rundir import CheckpointError, RunDir, check_env, env_identity, find_run, restore_optimizer


@dataclass
class TrainResult:
    """What a run did: its folder, one stats row per iteration, its time and its closing line."""
    run: Path
    algo: str
    history: list
    seconds: float
    summary: str


class _Silent(io.TextIOBase):
    """Where a run's progress goes when the caller gives no stream."""

    def write(self, text: str) -> int:
        return len(text)


def check_limits(iterations: Optional[int], time_limit: Optional[float], seed: Optional[int] = None) -> None:
    """`--iterations` must be at least 1, `--time-limit` a positive number of seconds and
    `--seed` within the seeds configs take."""
    if seed is not None and not 0 <= seed <= MAX_SEED:
        raise ValueError(f"--seed must be between 0 and {MAX_SEED}, not {seed}")
    if iterations is not None and iterations < 1:
        raise ValueError(f"--iterations must be at least 1, not {iterations}")
    if time_limit is not None and not (time_limit > 0 and math.isfinite(time_limit)):
        raise ValueError(f"--time-limit must be a positive number of seconds, not {time_limit}")


def finished_line(history: list, seconds: float, path: Path) -> str:
    """The last line of a puzzle's training run: how far it got."""
    if not history:
        return (f"stopped at the time limit after {seconds:.1f} s, before the first iteration finished; "
                f"checkpoint in {path}")
    last = history[-1]
    how = "no episode finished" if math.isnan(last.success_rate) else f"success {last.success_rate:.2f}"
    return (f"done after {len(history)} iterations, {seconds:.1f} s: difficulty {last.difficulty}, {how}; "
            f"checkpoints in {path}")


class Recipe(Protocol):
    """What one learner brings to a run: its config, its learner, what its best checkpoint
    is (`best`, the score of the best so far) and its lines."""
    algo: str
    best: Any
    record: dict
    """what config.json keeps besides the config (the auto config's reasons and probe)"""

    def configure(self, overrides: dict, cls, where: str, params: dict, stream: TextIO): ...
    def learner(self, cls, cfg, params: dict): ...
    def run_name(self, cls) -> str: ...
    def obs_size(self, learner) -> int: ...
    def resumed(self, run: RunDir, learner, state: dict, check) -> None: ...
    def resume_line(self, run: RunDir, state: dict) -> str: ...
    def header(self, cls, cfg, learner, run: RunDir) -> str: ...
    def row(self, stats, learner) -> dict: ...
    def save(self, stats, learner, cfg, run: RunDir, meta: dict, monitor) -> None: ...
    def initial_state(self, learner) -> dict: ...
    def summary(self, history: list, seconds: float, run: RunDir, learner) -> str: ...


class PPORecipe:
    algo = "ppo"
    best: Any = None
    record: dict = {}
    """what config.json keeps of the auto config: each chosen key's reason, and the probe"""

    def configure(self, overrides, cls, where, params, stream):
        """The user's keys (checked first), over the auto config's choices for this env (see
        `twisterl.train.auto`), each printed with its reason."""
        from .auto import auto_config
        make_ppo_config(overrides, cls, where)
        base = dict(CONTINUOUS_DEFAULTS) if cls.continuous else {}
        chosen, choices, facts = auto_config(cls, params, overrides, base)
        for choice in choices:
            print(choice.line(), file=stream)
        self.record = {"auto": {key: c.reason for c in choices for key in c.values},
                       "probe": {"start": facts.start.to_dict(),
                                 "hardest": facts.hardest.to_dict() if facts.hardest else None}}
        return make_ppo_config({**chosen, **overrides}, cls, where)

    def learner(self, cls, cfg, params):
        from .ppo import PPO
        return PPO(cls, cfg, params)

    def run_name(self, cls) -> str:
        return f"{cls.name}-{time.strftime('%Y%m%d-%H%M%S')}"

    def obs_size(self, learner) -> int:
        return learner.policy.obs_size

    def resumed(self, run: RunDir, learner, state: dict, check) -> None:
        best = run.best_score()
        if best is not None and learner.players == 2:
            _, best_meta = run.read("best")
            best = (float(best_meta.get("vs_mcts", float("nan"))), float(best_meta.get("vs_random", float("nan"))))
            best = None if any(math.isnan(x) for x in best) else best
        self.best = best

    def resume_line(self, run: RunDir, state: dict) -> str:
        return f"resuming {run.path} after iteration {state['iteration']} at difficulty {state['difficulty']}"

    def header(self, cls, cfg, learner, run: RunDir) -> str:
        how = " by self-play" if learner.players == 2 else ""
        why = f" (auto: {learner.learner_reason})" if learner.learner_reason else ""
        return (f"training {cls.name} with PPO{how}: {cfg.num_envs} envs x {cfg.num_steps} steps per iteration, "
                f"updates in {learner.learner}{why}; run dir {run.path}")

    def row(self, s, learner) -> dict:
        row = {k: v for k, v in s.__dict__.items() if k not in ("evals", "arena")}
        row.update({f"eval_{name}": success for name, success in s.evals.items()})
        row.update(s.arena)
        return row

    def save(self, s, learner, cfg, run: RunDir, meta: dict, monitor) -> None:
        success = s.evals.get(cfg.diff_metric, s.success_rate)
        state = {**meta, **learner.progress(), "iteration": s.iteration, "success_rate": success,
                 "mean_return": s.mean_return}
        run.save("last", learner.policy, state, learner.optimizer)
        # The best checkpoint: the highest difficulty, then success, then mean return; two-player
        # games: the score against pure MCTS, then against random play.
        if learner.players == 2:
            score = (s.arena["vs_mcts"] if cfg.pure_simulations > 0 else 0.0, s.arena["vs_random"])
            if not any(math.isnan(x) for x in score) and (self.best is None or score > tuple(self.best)):
                self.best = score
                run.save("best", learner.policy, {**state, "vs_mcts": score[0], "vs_random": s.arena["vs_random"]})
            return
        score = (s.difficulty, success, s.mean_return)
        if s.episodes and not math.isnan(success) and (self.best is None or score > self.best):
            self.best = score
            run.save("best", learner.policy, {**state, "difficulty": s.difficulty})

    def initial_state(self, learner) -> dict:
        return {**learner.progress(), "iteration": learner.iteration - 1, "success_rate": float("nan"),
                "mean_return": float("nan")}

    def summary(self, history: list, seconds: float, run: RunDir, learner) -> str:
        if learner.players != 2 or not history:
            return finished_line(history, seconds, run.path)
        # The latest arena that ran (the last iteration's may have been skipped or cut short).
        arenas = [h.arena for h in history if not math.isnan(h.arena["vs_random"])]
        if arenas:
            how = f"score vs random {arenas[-1]['vs_random']:.2f}, vs pure MCTS {arenas[-1]['vs_mcts']:.2f}"
        else:
            how = "no arena ran"
        return f"done after {len(history)} iterations, {seconds:.1f} s: {how}; checkpoints in {run.path}"


class AlphaZeroRecipe:
    algo = "az"
    best = (-1, -1.0)
    record: dict = {}

    def configure(self, overrides, cls, where, params, stream):
        return make_az_config(overrides, where)

    def learner(self, cls, cfg, params):
        from .alphazero import AlphaZero
        return AlphaZero(cls, cfg, params)

    def run_name(self, cls) -> str:
        return f"{cls.name}-az-{time.strftime('%Y%m%d-%H%M%S')}"

    def obs_size(self, learner) -> int:
        return learner.obs_size

    def resumed(self, run: RunDir, learner, state: dict, check) -> None:
        if (run.path / "best.safetensors").exists():
            run.load("best", learner.best, {}, check)
        else:
            learner.best.load_state_dict(learner.policy.state_dict())
        self.best = (state.get("best_difficulty", 0), state.get("best_success", -1.0))

    def resume_line(self, run: RunDir, state: dict) -> str:
        return f"resuming {run.path} after iteration {state['iteration']}"

    def header(self, cls, cfg, learner, run: RunDir) -> str:
        return (f"training {cls.name} with AlphaZero: {cfg.num_games} self-play games x {cfg.num_simulations} "
                f"simulations per move per iteration, updates in {learner.learner}"
                + (f" (auto: {learner.learner_reason})" if learner.learner_reason else "") + f"; run dir {run.path}")

    def row(self, s, learner) -> dict:
        return dict(s.__dict__)

    def save(self, s, learner, cfg, run: RunDir, meta: dict, monitor) -> None:
        for key in ("arena_score", "vs_random", "vs_mcts", "sims_per_second"):
            value = getattr(s, key)
            if np.isfinite(value):
                monitor.writer.add_scalar(f"search/{key}", value, learner.env_steps)
        # `best`: puzzles, the highest (difficulty, success); two players, the arena's champion.
        if learner.players == 1:
            improved = not np.isnan(s.success_rate) and (s.difficulty, s.success_rate) > self.best
            if improved:
                self.best = (s.difficulty, s.success_rate)
        else:
            improved = s.best_updated or not (run.path / "best.safetensors").exists()
        if improved:
            net = learner.policy if learner.players == 1 else learner.best
            run.save("best", net, {**meta, **learner.progress(), "success_rate": s.success_rate,
                                   "difficulty": s.difficulty})
        state = {**meta, **learner.progress(), "success_rate": s.success_rate, "best_difficulty": self.best[0],
                 "best_success": self.best[1]}
        run.save("last", learner.policy, state, learner.optimizer)

    def initial_state(self, learner) -> dict:
        return {**learner.progress(), "success_rate": float("nan"), "best_difficulty": self.best[0],
                "best_success": self.best[1]}

    def summary(self, history: list, seconds: float, run: RunDir, learner) -> str:
        if not history or learner.players == 1:
            return finished_line(history, seconds, run.path)
        last = history[-1]
        return (f"done after {len(history)} iterations, {seconds:.1f} s: score vs random {last.vs_random:.2f}, "
                f"vs pure MCTS {last.vs_mcts:.2f}; checkpoints in {run.path}")


def _require_ray(cfg: Optional[RayConfig]) -> None:
    """A run on Ray needs Ray installed: a `RuntimeError` saying how, before anything starts."""
    if cfg is not None:
        from .distributed import require_ray
        require_ray()


def _attach(cfg: Optional[RayConfig], learner, algo: str, cls, source: str, params: dict, run: RunDir,
            stream: TextIO):
    """The Ray session whose workers collect for `learner` (None without `cfg`); its lines
    (a worker replaced) go to `stream`."""
    if cfg is None:
        return None
    from .distributed import attach
    return attach(learner, algo, cls, source, params, cfg, run.path.name, lambda line: print(line, file=stream))


RECIPES: dict[str, type[Recipe]] = {"ppo": PPORecipe, "az": AlphaZeroRecipe}


def train(path: Optional[str], out: Optional[str] = None, config_path: Optional[str] = None,
          params: Optional[dict] = None, seed: Optional[int] = None, iterations: Optional[int] = None,
          time_limit: Optional[float] = None, stream: Optional[TextIO] = None, resume: Optional[str] = None,
          algo: str = "ppo", learner: Optional[str] = None, ray: bool = False,
          ray_address: Optional[str] = None) -> TrainResult:
    """A new run of `algo` ("ppo" or "az") on the env at `path`, or `resume` of a run dir
    (its own algo, env, params and config). Progress goes to `stream` (default: nowhere).
    The time limit counts from the start of the first iteration (after compiling the env
    and building the learner) and covers everything after it: rollouts, updates, evals,
    checkpoints. `learner` ("auto", "rust" or "torch") is where updates run, over the
    config's (also when resuming: a run resumes across learners)."""
    check_limits(iterations, time_limit, seed)
    if learner is not None and learner not in LEARNERS:
        raise ValueError(f"learner must be one of {', '.join(LEARNERS)}, not {learner!r}")
    if algo not in RECIPES:
        raise ValueError(f"algo must be one of {', '.join(RECIPES)}, not {algo!r}")
    stream = stream or _Silent()
    params = dict(params or {})
    if resume is not None:
        run = find_run(resume)
        saved, cfg = run_config(run)
        if learner is not None:
            cfg = dataclasses.replace(cfg, learner=learner)
        recipe = RECIPES[saved.get("algo", "ppo")]()
        cls, source = run_env(run)
        params = saved.get("params", {})
        check_env(saved, cls, params, source, run.path / "config.json", str(run.path / "env.twl"))
        check = env_checker(cls, params, source, cfg, str(run.path / "env.twl"))
        learner = recipe.learner(cls, cfg, params)
        check_network(saved, learner.policy_desc, run)
        meta = {"env": cls.name, "obs_size": recipe.obs_size(learner), "num_actions": learner.num_actions,
                "env_id": env_identity(cls, params, source)}
        state = run.load("last", learner.policy, {}, check)
        restore_optimizer(learner.optimizer, state)
        ray_cfg = make_ray_config(saved.get("ray"), f"{run.path / 'config.json'}: `ray`", ray_address) \
            if ray else None
        _require_ray(ray_cfg)
        session = _attach(ray_cfg, learner, recipe.algo, cls, source, params, run, stream)
        learner.resume(state)
        recipe.resumed(run, learner, state, check)
        print(recipe.resume_line(run, state), file=stream)
    else:
        if path is None:
            raise ValueError("give a .twl file to train, or --resume RUN_DIR")
        from ..envs import compile
        recipe = RECIPES[algo]()
        overrides = load_config(config_path)
        section = overrides.pop("ray", None)
        ray_cfg = make_ray_config(section, f"{config_path or 'the config'}: `ray`", ray_address) \
            if ray or section is not None else None
        _require_ray(ray_cfg)
        if seed is not None:
            overrides["seed"] = seed
        if learner is not None:
            overrides["learner"] = learner
        cls = compile(path)
        cfg = recipe.configure(overrides, cls, config_path or "the config", params, stream)
        source = Path(path).read_text()
        run = RunDir(Path(out) if out else Path("runs") / recipe.run_name(cls))
        learner = recipe.learner(cls, cfg, params)
        identity = env_identity(cls, params, source)
        meta = {"env": cls.name, "obs_size": recipe.obs_size(learner), "num_actions": learner.num_actions}
        algo_field = {"algo": "az"} if recipe.algo == "az" else {}
        ray_field = {"ray": asdict(ray_cfg)} if ray_cfg is not None else {}
        run.create({**algo_field, **recipe.record, "env_file": str(path), "params": params, "config": learner.config_dict(),
                    "policy": learner.policy_desc, "env_id": identity, **meta, **ray_field}, source)
        meta["env_id"] = identity
        session = _attach(ray_cfg, learner, recipe.algo, cls, source, params, run, stream)
    print(recipe.header(cls, cfg, learner, run), file=stream)
    if learner.players == 1 and not learner.curriculum:
        print(f"no curriculum: {cls.name} does not read `difficulty`, so the difficulty stays at "
              f"{learner.difficulty} and the run ends at --time-limit, --iterations or `max_env_steps` "
              "(or Ctrl-C; the checkpoints are kept)", file=stream)
    if session is not None:
        print(session.line, file=stream)
    from .monitor import Monitor
    try:
        monitor = Monitor(run, stream, time_limit, cfg.diff_max if learner.curriculum else 1)
    except BaseException:
        if session is not None:
            session.close()
        raise
    start = time.perf_counter()

    def on_iteration(s) -> None:
        row = recipe.row(s, learner)
        monitor.record({**row, "elapsed": round(time.perf_counter() - start, 3),
                        "total_env_steps": learner.env_steps})
        recipe.save(s, learner, cfg, run, meta, monitor)

    try:
        history = learner.train(iterations=iterations, time_limit=time_limit, on_iteration=on_iteration)
        if not history and not (run.path / "last.safetensors").exists():
            # The time limit came before the first iteration finished: the initial network, to resume from.
            run.save("last", learner.policy, {**meta, **recipe.initial_state(learner)}, learner.optimizer)
    finally:
        monitor.close()
        seconds = time.perf_counter() - start
        if session is not None:
            session.close()  # not counted: stopping the workers (and a local Ray) is not training
    summary = recipe.summary(history, seconds, run, learner)
    print(summary, file=stream)
    return TrainResult(run.path, recipe.algo, history, seconds, summary)


__all__ = ["TrainResult", "train", "check_limits", "finished_line", "CheckpointError"]
