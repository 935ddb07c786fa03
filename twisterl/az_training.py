"""`twisterl train --algo az` and `twisterl eval` of AlphaZero runs.

The run dir has the same format as PPO's (config.json with `"algo": "az"`, env.twl,
metrics.csv, tensorboard/, progress.png, last/best checkpoints), so `--resume`,
`twisterl eval` and `twisterl play --policy` work the same way.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Optional, TextIO

import numpy as np

from .rundir import CheckpointError, RunDir, find_run


def make_az_config(overrides: dict, where: str = "the config"):
    """The AlphaZero config: the defaults, then `overrides`, every field checked (a
    `ConfigError` names `where` and the field)."""
    from .learners.alphazero import make_config
    return make_config(overrides, where)


def train_alphazero(path: Optional[str], out: Optional[str], config_path: Optional[str], params: dict,
                    seed: Optional[int], iterations: Optional[int], time_limit: Optional[float], stream: TextIO,
                    resume: Optional[str] = None) -> int:
    """`twisterl train --algo az` (see `twisterl.training.train`, whose time limit this shares)."""
    import twisterl
    from .learners.alphazero import AlphaZero
    from .monitor import Monitor
    from .rundir import check_env, env_identity, restore_optimizer
    from .training import check_limits, check_network, env_checker, finished_line, load_config, run_config, run_env
    check_limits(iterations, time_limit, seed)
    if resume is not None:
        run = find_run(resume)
        saved, cfg = run_config(run)
        if saved.get("algo") != "az":
            raise CheckpointError(f"{run.path} is not an AlphaZero run")
        cls, source = run_env(run)
        params = saved.get("params", {})
        check_env(saved, cls, params, source, run.path / "config.json", str(run.path / "env.twl"))
        check = env_checker(cls, params, source, cfg, str(run.path / "env.twl"))
        az = AlphaZero(cls, cfg, params)
        check_network(saved, az.policy_desc, run)
        meta = {"env": cls.name, "obs_size": az.obs_size, "num_actions": az.num_actions,
                "env_id": env_identity(cls, params, source)}
        state = run.load("last", az.policy, {}, check)
        restore_optimizer(az.optimizer, state)
        az.resume(state)
        if (run.path / "best.safetensors").exists():
            run.load("best", az.best, {}, check)
        else:
            az.best.load_state_dict(az.policy.state_dict())
        best = (state.get("best_difficulty", 0), state.get("best_success", -1.0))
        print(f"resuming {run.path} after iteration {state['iteration']}", file=stream)
    else:
        if path is None:
            raise ValueError("give a .twl file to train, or --resume RUN_DIR")
        overrides = load_config(config_path)
        if seed is not None:
            overrides["seed"] = seed
        cfg = make_az_config(overrides, config_path or "the config")
        cls = twisterl.compile(path)
        source = Path(path).read_text()
        run = RunDir(Path(out) if out else Path("runs") / f"{cls.name}-az-{time.strftime('%Y%m%d-%H%M%S')}")
        az = AlphaZero(cls, cfg, params)
        identity = env_identity(cls, params, source)
        meta = {"env": cls.name, "obs_size": az.obs_size, "num_actions": az.num_actions}
        run.create({"algo": "az", "env_file": str(path), "params": params, "config": az.config_dict(),
                    "policy": az.policy_desc, "env_id": identity, **meta}, source)
        meta["env_id"] = identity
        best = (-1, -1.0)
    print(f"training {cls.name} with AlphaZero: {cfg.num_games} self-play games x {cfg.num_simulations} "
          f"simulations per move per iteration; run dir {run.path}", file=stream)
    monitor = Monitor(run, stream, time_limit, cfg.diff_max if az.players == 1 else 1)
    start = time.perf_counter()

    def on_iteration(s) -> None:
        nonlocal best
        row = dict(s.__dict__)
        row.update({"elapsed": round(time.perf_counter() - start, 3), "total_env_steps": az.env_steps})
        monitor.record(row)
        for key in ("arena_score", "vs_random", "vs_mcts", "sims_per_second"):
            if np.isfinite(row[key]):
                monitor.writer.add_scalar(f"search/{key}", row[key], az.env_steps)
        # `best`: puzzles, the highest (difficulty, success); two players, the arena's champion.
        if az.players == 1:
            improved = not np.isnan(s.success_rate) and (s.difficulty, s.success_rate) > best
            if improved:
                best = (s.difficulty, s.success_rate)
        else:
            improved = s.best_updated or not (run.path / "best.safetensors").exists()
        if improved:
            net = az.policy if az.players == 1 else az.best
            run.save("best", net, {**meta, **az.progress(), "success_rate": s.success_rate,
                                   "difficulty": s.difficulty})
        state = {**meta, **az.progress(), "success_rate": s.success_rate, "best_difficulty": best[0],
                 "best_success": best[1]}
        run.save("last", az.policy, state, az.optimizer)

    try:
        history = az.train(iterations=iterations, time_limit=time_limit, on_iteration=on_iteration)
        if not history and not (run.path / "last.safetensors").exists():
            # The time limit came before the first iteration finished: the initial network, to resume from.
            run.save("last", az.policy, {**meta, **az.progress(), "success_rate": float("nan"),
                                         "best_difficulty": best[0], "best_success": best[1]}, az.optimizer)
    finally:
        monitor.close()
    seconds = time.perf_counter() - start
    if not history or az.players == 1:
        print(finished_line(history, seconds, run.path), file=stream)
        return 0
    last = history[-1]
    print(f"done after {len(history)} iterations, {seconds:.1f} s: score vs random {last.vs_random:.2f}, "
          f"vs pure MCTS {last.vs_mcts:.2f}; checkpoints in {run.path}", file=stream)
    return 0


def evaluate_alphazero(run_path: str, episodes: int, difficulty: Optional[int], seed: int, stream: TextIO,
                       tries: int = 1, simulations: Optional[int] = None, opponent: str = "all") -> int:
    """Two-player runs: the best net with search against random play and pure MCTS, each
    side half the games. Puzzles: the success rate of search with the best net, with
    `tries` tries per scramble."""
    import twisterl
    from .search import agent, play_games
    from .nets import export
    from .training import load_policy
    from .training import run_config, run_env
    run = find_run(run_path)
    _, conf = run_config(run)
    cls, source = run_env(run)
    net, meta, cfg = load_policy(run, cls=cls, source=source, what=str(run.path / "env.twl"))
    params = cfg.get("params", {})
    sims = simulations or conf.num_simulations
    group = None
    if conf.average_twists:
        from .search import symmetry_group
        group = symmetry_group(cls(**params))
    me = agent(export(net), simulations=sims, c_puct=conf.c_puct, twists=group)
    if cls.players == 1:
        diff = meta["difficulty"] if difficulty is None else difficulty
        data = play_games(cls, params, [me], episodes, seed=seed, num_threads=conf.num_threads, difficulty=diff,
                          temperature=0.0, tries=tries, max_moves=conf.max_moves)
        solved = data["success"].reshape(episodes, tries).any(axis=1)
        print(f"{cls.name} at difficulty {diff}, {episodes} episodes (MCTS, {sims} simulations per move, "
              f"{tries} tries): success {solved.mean():.3f}, mean length {data['lengths'].mean():.1f}", file=stream)
        return 0
    opponents = {"random": agent(random=True), "mcts": agent(None, simulations=conf.pure_simulations or 200)}
    for name, opp in opponents.items():
        if opponent not in ("all", name):
            continue
        data = play_games(cls, params, [me, opp], episodes, seed=seed, num_threads=conf.num_threads,
                          temperature=1.0, temp_moves=conf.arena_temp_moves, max_moves=conf.max_moves)
        mine = (data["returns"] * (data["seats"] == 0)).sum(1)
        w, d, l = int((mine > 0).sum()), int((mine == 0).sum()), int((mine < 0).sum())
        label = "random play" if name == "random" else f"pure MCTS ({opp['simulations']} simulations)"
        print(f"{cls.name}: AlphaZero ({sims} simulations) vs {label}, {episodes} games: "
              f"{w} wins, {d} draws, {l} losses (score {(w + 0.5 * d) / episodes:.3f})", file=stream)
    return 0
