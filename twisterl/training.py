"""`twisterl train` and `twisterl eval`: runs in a run dir, configs, evaluation."""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any, Optional, TextIO

import numpy as np

from .learners.config import ConfigError
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
    """Our flat keys, or TwisteRL's nested JSON config (its known keys are mapped). A file that
    cannot be read or parsed, or holds no object, is a `ConfigError` naming it."""
    if not path:
        return {}
    try:
        text = Path(path).read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"--config {path} cannot be read: {getattr(exc, 'strerror', None) or exc}") from None
    try:
        if path.endswith(".toml"):
            import tomllib
            data = tomllib.loads(text)
        else:
            data = json.loads(text)
    except ValueError as exc:  # json.JSONDecodeError and tomllib.TOMLDecodeError
        raise ConfigError(f"{path} is not valid {'TOML' if path.endswith('.toml') else 'JSON'}: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path} must hold an object of config keys, not {type(data).__name__} {data!r:.40}")
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


def make_config(overrides: dict, cls=None, where: str = "the config"):
    """The PPO config: the defaults for the env's kind, then `overrides`, every field checked
    (a `ConfigError` names `where` and the field)."""
    from .learners.ppo import make_config as make_ppo_config
    base = dict(CONTINUOUS_DEFAULTS) if cls is not None and cls.continuous else {}
    return make_ppo_config(overrides, where, base)


# Random play that runs this long without ending means the env needs a step limit in training.
PROBE_EPISODES, PROBE_LENGTH = 64, 1_000


def auto_episode_limit(cls, params: dict, difficulty: int, seed: int) -> tuple[int, str]:
    """A training-time step limit for an env that declares no `truncate`, from a probe of
    random episodes: 0 when they all end within `PROBE_LENGTH` steps (the env ends its
    episodes itself), else 4x the mean length of the probe episodes that ended, at least
    100 and at most `PROBE_LENGTH` (which it is when none ended). Returns the limit and the reason, for the config
    printout; the config saved in the run dir holds the limit."""
    if cls.spec.get("has_truncate") or cls.players != 1 or cls.continuous:
        return 0, ""
    vec = cls.vector(min(PROBE_EPISODES, 64), seed=seed, difficulty=difficulty, **params)
    stats = vec.random_episodes(PROBE_EPISODES, seed=seed, max_length=PROBE_LENGTH)
    if not stats["cut"]:
        return 0, ""
    ended = stats["episodes"]
    mean = stats["length_sum"] / ended if ended else 0
    limit = int(min(PROBE_LENGTH, max(100, 4 * mean))) if ended else PROBE_LENGTH
    reason = (f"{cls.name} declares no `truncate` and {stats['cut']} of {PROBE_EPISODES} random episodes ran "
              f"{PROBE_LENGTH:,} steps without ending")
    return limit, reason


def check_limits(iterations: Optional[int], time_limit: Optional[float], seed: Optional[int] = None) -> None:
    """`--iterations` must be at least 1, `--time-limit` a positive number of seconds and
    `--seed` within the seeds configs take."""
    from .learners.config import MAX_SEED
    if seed is not None and not 0 <= seed <= MAX_SEED:
        raise ValueError(f"--seed must be between 0 and {MAX_SEED}, not {seed}")
    if iterations is not None and iterations < 1:
        raise ValueError(f"--iterations must be at least 1, not {iterations}")
    if time_limit is not None and not (time_limit > 0 and math.isfinite(time_limit)):
        raise ValueError(f"--time-limit must be a positive number of seconds, not {time_limit}")


def run_env(run: RunDir):
    """The env class compiled from the run's own env.twl, and that source."""
    import twisterl
    path = run.path / "env.twl"
    try:
        source = path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"{path} cannot be read: {getattr(exc, 'strerror', None) or exc}") from None
    try:
        return twisterl.compile(path), source
    except twisterl.CheckError as exc:
        raise CheckpointError(f"{path}, the source this run trained on, has errors:\n{exc}") from None


def run_config(run: RunDir):
    """config.json of a run (checked by `RunDir.config`), its network description and its
    learner config, every field checked as a `--config` file's would be."""
    from .nets import check_description
    saved = run.config()
    path = run.path / "config.json"
    if "policy" in saved:
        try:
            check_description(saved["policy"])
        except ValueError as exc:
            raise CheckpointError(f"{path}: the field `policy` describes no network this version can build: "
                                  f"{exc}") from None
    where = f"{path}: config"
    try:
        if saved.get("algo") == "az":
            from .az_training import make_az_config
            return saved, make_az_config(saved["config"], where)
        return saved, make_config(saved["config"], None, where)
    except ConfigError as exc:
        raise CheckpointError(str(exc)) from None


def check_network(saved: dict, desc: dict, run: RunDir) -> None:
    """The network a run's config gives must be the one its config.json records."""
    if "policy" in saved and saved["policy"] != desc:
        raise CheckpointError(f"{run.path / 'config.json'}: the field `policy` ({saved['policy']}) is not the "
                              f"network its `config` gives ({desc})")


def env_checker(cls, params: dict, source: Optional[str] = None, config=None, what: Optional[str] = None):
    """A `check` for `RunDir.load`: the checkpoint was made for `cls` with `params` (and
    `source`), and its difficulty is one the run's `config` can reach. `what` names the
    env's file in messages (default: the file `cls` was first compiled from)."""
    from .rundir import check_env

    def check(meta: dict, path: Path) -> None:
        check_env(meta, cls, params, source, path, what or cls.source_path)
        if config is not None and meta["difficulty"] > max(config.difficulty, config.diff_max):
            raise CheckpointError(f"{path}: the metadata field `difficulty` is {meta['difficulty']}, above the "
                                  f"run's diff_max ({config.diff_max})")
    return check


def train(path: Optional[str], out: Optional[str], config_path: Optional[str], params: dict, seed: Optional[int],
          iterations: Optional[int], time_limit: Optional[float], stream: TextIO, resume: Optional[str] = None,
          algo: str = "ppo") -> int:
    """`twisterl train`: a new PPO (or AlphaZero) run, or `--resume` of one. The time limit
    counts from the start of the first iteration (after compiling the env and building
    the learner) and covers everything after it: rollouts, updates, evals, checkpoints."""
    check_limits(iterations, time_limit, seed)
    if algo == "az" or (resume is not None and find_run(resume).config().get("algo") == "az"):
        from .az_training import train_alphazero
        return train_alphazero(path, out, config_path, params, seed, iterations, time_limit, stream, resume)
    import twisterl
    from .learners.ppo import PPO
    from .rundir import check_env, env_identity, restore_optimizer
    if resume is not None:
        run = find_run(resume)
        saved, cfg = run_config(run)
        cls, source = run_env(run)
        params = saved.get("params", {})
        check_env(saved, cls, params, source, run.path / "config.json", str(run.path / "env.twl"))
        check = env_checker(cls, params, source, cfg, str(run.path / "env.twl"))
        ppo = PPO(cls, cfg, params)
        check_network(saved, ppo.policy_desc, run)
        meta = {"env": cls.name, "obs_size": ppo.policy.obs_size, "num_actions": ppo.num_actions,
                "env_id": env_identity(cls, params, source)}
        state = run.load("last", ppo.policy, {}, check)
        restore_optimizer(ppo.optimizer, state)
        ppo.resume(state)
        best = run.best_score()
        if best is not None and ppo.players == 2:
            _, best_meta = run.read("best")
            best = (float(best_meta.get("vs_mcts", float("nan"))), float(best_meta.get("vs_random", float("nan"))))
            best = None if any(math.isnan(x) for x in best) else best
        print(f"resuming {run.path} after iteration {state['iteration']} at difficulty {state['difficulty']}",
              file=stream)
    else:
        if path is None:
            raise ValueError("give a .twl file to train, or --resume RUN_DIR")
        overrides = load_config(config_path)
        if seed is not None:
            overrides["seed"] = seed
        cls = twisterl.compile(path)
        cfg = make_config(overrides, cls, where=config_path or "the config")
        if "max_episode_steps" not in overrides:
            limit, reason = auto_episode_limit(cls, params, cfg.difficulty, cfg.seed)
            if limit:
                print(f"auto: max_episode_steps {limit} because {reason} (set max_episode_steps to choose)",
                      file=stream)
                cfg = make_config({**overrides, "max_episode_steps": limit}, cls, where=config_path or "the config")
        source = Path(path).read_text()
        run = RunDir(Path(out) if out else Path("runs") / f"{cls.name}-{time.strftime('%Y%m%d-%H%M%S')}")
        ppo = PPO(cls, cfg, params)
        identity = env_identity(cls, params, source)
        meta = {"env": cls.name, "obs_size": ppo.policy.obs_size, "num_actions": ppo.num_actions}
        run.create({"env_file": str(path), "params": params, "config": ppo.config_dict(), "policy": ppo.policy_desc,
                    "env_id": identity, **meta}, source)
        meta["env_id"] = identity
        best = None
    two = ppo.players == 2
    how = " by self-play" if two else ""
    print(f"training {cls.name} with PPO{how}: {cfg.num_envs} envs x {cfg.num_steps} steps per iteration; "
          f"run dir {run.path}", file=stream)
    from .monitor import Monitor
    monitor = Monitor(run, stream, time_limit, 1 if two else cfg.diff_max)
    start = time.perf_counter()

    def on_iteration(s) -> None:
        nonlocal best
        row = {k: v for k, v in s.__dict__.items() if k not in ("evals", "arena")}
        row.update({f"eval_{name}": success for name, success in s.evals.items()})
        row.update(s.arena)
        monitor.record({**row, "elapsed": round(time.perf_counter() - start, 3), "total_env_steps": ppo.env_steps})
        success = s.evals.get(cfg.diff_metric, s.success_rate)
        state = {**meta, **ppo.progress(), "iteration": s.iteration, "success_rate": success,
                 "mean_return": s.mean_return}
        run.save("last", ppo.policy, state, ppo.optimizer)
        # The best checkpoint: the highest difficulty, then success, then mean return; two-player
        # games: the score against pure MCTS, then against random play.
        if two:
            score = (s.arena["vs_mcts"] if cfg.pure_simulations > 0 else 0.0, s.arena["vs_random"])
            if not any(math.isnan(x) for x in score) and (best is None or score > tuple(best)):
                best = score
                run.save("best", ppo.policy, {**state, "vs_mcts": score[0],
                                              "vs_random": s.arena["vs_random"]})
            return
        score = (s.difficulty, success, s.mean_return)
        if s.episodes and not math.isnan(success) and (best is None or score > best):
            best = score
            run.save("best", ppo.policy, {**state, "difficulty": s.difficulty})

    try:
        history = ppo.train(iterations=iterations, time_limit=time_limit, on_iteration=on_iteration)
        if not history and not (run.path / "last.safetensors").exists():
            # The time limit came before the first iteration finished: the initial network, to resume from.
            run.save("last", ppo.policy, {**meta, **ppo.progress(), "iteration": ppo.iteration - 1,
                                          "success_rate": float("nan"), "mean_return": float("nan")}, ppo.optimizer)
    finally:
        monitor.close()
    seconds = time.perf_counter() - start
    if two and history:
        # The latest arena that ran (the last iteration's may have been skipped or cut short).
        arenas = [h.arena for h in history if not math.isnan(h.arena["vs_random"])]
        if arenas:
            how = f"score vs random {arenas[-1]['vs_random']:.2f}, vs pure MCTS {arenas[-1]['vs_mcts']:.2f}"
        else:
            how = "no arena ran"
        print(f"done after {len(history)} iterations, {seconds:.1f} s: {how}; checkpoints in {run.path}", file=stream)
        return 0
    print(finished_line(history, seconds, run.path), file=stream)
    return 0


def finished_line(history: list, seconds: float, path: Path) -> str:
    """The last line of a training run: how far it got (PPO and AlphaZero puzzles)."""
    if not history:
        return (f"stopped at the time limit after {seconds:.1f} s, before the first iteration finished; "
                f"checkpoint in {path}")
    last = history[-1]
    how = "no episode finished" if math.isnan(last.success_rate) else f"success {last.success_rate:.2f}"
    return (f"done after {len(history)} iterations, {seconds:.1f} s: difficulty {last.difficulty}, {how}; "
            f"checkpoints in {path}")


def load_policy(run: RunDir, which: str = "best", cls=None, params: Optional[dict] = None,
                source: Optional[str] = None, what: Optional[str] = None):
    """The torch network of a run, with the weights of checkpoint `which`, its metadata and
    the run's config.json. With `cls`, the checkpoint must have been made for that env with
    `params` (default: the run's) and, when `source` is given, from that source; what
    differs is a `CheckpointError` (`what` names the env's file)."""
    from .nets import build_policy
    cfg, config = run_config(run)
    desc = cfg.get("policy") or {"kind": "basic", "obs_size": cfg["obs_size"], "num_actions": cfg["num_actions"],
                                 "embedding_size": config.embedding_size, "common_layers": config.common_layers}
    try:
        net = build_policy(desc)
    except (KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(f"{run.path / 'config.json'}: the field `policy` describes no network this version "
                              f"can build: {exc}") from None
    check = None
    if cls is not None:
        check = env_checker(cls, cfg.get("params", {}) if params is None else params, source, config, what)
    meta = run.load(which, net, {"env": cfg["env"], "obs_size": cfg["obs_size"], "num_actions": cfg["num_actions"]},
                    check)
    return net, meta, cfg


def evaluate(run_path: str, episodes: int, deterministic: bool, difficulty: Optional[int], seed: int,
             stream: TextIO, tries: int = 1, average_twists: bool = False) -> int:
    """`twisterl eval`: the run's best checkpoint on fresh episodes, checked against the
    run's env.twl first."""
    from .evaluation import evaluate_policy
    from .learners.config import MAX_DIFFICULTY
    from .nets import export
    from .symmetry import twist_group
    if difficulty is not None and not 0 <= difficulty <= MAX_DIFFICULTY:
        raise ValueError(f"--difficulty must be between 0 and {MAX_DIFFICULTY}, not {difficulty}")
    run = find_run(run_path)
    if run.config().get("algo") == "az":
        from .az_training import evaluate_alphazero
        return evaluate_alphazero(run_path, episodes, difficulty, seed, stream, tries)
    cls, source = run_env(run)
    net, meta, cfg = load_policy(run, cls=cls, source=source, what=str(run.path / "env.twl"))
    if difficulty is None:
        difficulty = meta["difficulty"]
    meta.pop("_tensors", None)
    params = cfg.get("params", {})
    if cls.players == 2:
        return evaluate_two_player(cls, net, params, run_config(run)[1], episodes, seed, stream)
    group = None
    if average_twists:
        names = cls.spec.get("symmetries", [])
        if not names:
            raise ValueError(f"{cls.name} declares no symmetry to average over")
        group = twist_group(list(cls.vector(1, seed=0, **params).twists().values()))
    limit = int(cfg.get("config", {}).get("max_episode_steps", 0) or 0)  # the step limit it trained with
    result = evaluate_policy(cls, export(net), episodes, deterministic, difficulty, seed, params, tries=tries,
                             twists=group, log_std=_log_std(net), max_episode_steps=limit)
    how = "deterministic" if deterministic else "sampled"
    if tries > 1:
        how += f", best of {tries} tries"
    if group:
        how += f", averaged over {len(group)} twists"
    print(f"{cls.name} at difficulty {difficulty}, {episodes} episodes ({how}): success {result['success']:.3f}, "
          f"mean return {result['return']:+.3f}, mean length {result['length']:.1f}", file=stream)
    return 0


def evaluate_two_player(cls, net, params: dict, config, games: int, seed: int, stream: TextIO) -> int:
    """`twisterl eval` of a self-play PPO run: the best checkpoint, playing its most likely
    legal move (no search), against random play and pure MCTS (the run's `pure_simulations`,
    or 100 if 0), `games` games each, the seats alternating."""
    from .nets import export
    from .search import agent, play_games
    me = agent(export(net), simulations=1)
    sims = config.pure_simulations or 100
    for label, opp in (("random play", agent(random=True)),
                       (f"pure MCTS ({sims} simulations)", agent(None, simulations=sims))):
        data = play_games(cls, params, [me, opp], games, seed=seed, num_threads=config.num_threads, temperature=0.0)
        mine = (data["returns"] * (data["seats"] == 0)).sum(1)
        w, d, l = int((mine > 0).sum()), int((mine == 0).sum()), int((mine < 0).sum())
        print(f"{cls.name}: PPO policy (no search) vs {label}, {games} games: {w} wins, {d} draws, {l} losses "
              f"(score {(w + 0.5 * d) / games:.3f})", file=stream)
    return 0


def _log_std(net) -> Optional[np.ndarray]:
    log_std = getattr(net, "log_std", None)
    return None if log_std is None else log_std.detach().numpy().astype(np.float64)
