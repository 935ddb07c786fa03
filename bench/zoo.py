"""The zoo: every example env PPO can train, trained by the default `twisterl train` (no
config: the auto config chooses) with a fixed budget, then evaluated on fresh episodes.

    python bench/zoo.py                         # every env, its own budget
    python bench/zoo.py --only cartpole --budget 60
    python bench/zoo.py --threads 2 --out runs/zoo --json zoo.json

Each row: the env, the budget (seconds, and env steps where the target counts them), the
final evaluation of the run's best checkpoint (`evaluate_run`, 1,000 episodes, greedy: the
policy's most likely action; two-player games: 100 games against random play and pure
MCTS, by the policy alone and by the policy guiding PUCT search with AlphaZero's default
simulations, as AlphaZero runs are judged), the target of issue 13, the published reference where one exists and the optimum
where it is known. Run it on a quiet machine: the budgets are wall-clock seconds.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from twisterl.train.az_config import Config as AzConfig

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class ZooEnv:
    name: str
    file: str
    budget: float
    """seconds of training"""
    metric: str
    """what the eval reports: "return" (mean return), "success" (success rate) or "vs_mcts" (score)"""
    target: Optional[float] = None
    """the issue's target for `metric` (at least this), None when it has none"""
    params: dict = field(default_factory=dict)
    max_env_steps: int = 0
    """a target that counts env steps: training stops after the first iteration past them"""
    reference: str = ""
    optimum: str = ""
    deterministic: bool = True
    mcts_simulations: Optional[int] = None
    """two-player games: the pure-MCTS opponent's simulations a move (None: the run's own)"""


CLEANRL = "CleanRL ppo.py, 500k steps (docs.cleanrl.dev)"
# Episodes an eval plays: a mean return over start states varies by several units between
# starts (Taxi: about 4), so 100 episodes leave a standard error near 0.4; 1,000 near 0.13.
# Two-player games play GAMES games against each opponent (pure MCTS is the slow one).
EPISODES, GAMES = 1000, 100
# Two-player games are also judged with the policy guiding search, as AlphaZero runs are.
SEARCH_SIMULATIONS = AzConfig.num_simulations
ZOO = [
    ZooEnv("cartpole", "cartpole.twl", 120, "return", 500, max_env_steps=100_000,
           reference=f"~492 ({CLEANRL})", optimum="500"),
    ZooEnv("acrobot", "acrobot.twl", 300, "return", -100, reference=f"~-90 ({CLEANRL})", optimum="about -60"),
    ZooEnv("mountaincar", "mountaincar.twl", 300, "return", -120,
           reference=f"-200, unsolved ({CLEANRL}); about -110 for SB3's tuned PPO (rl-baselines3-zoo)",
           optimum="about -100"),
    ZooEnv("pendulum", "pendulum.twl", 300, "return", -200,
           reference="about -200 for SB3's tuned PPO (rl-baselines3-zoo)", optimum="about -140"),
    ZooEnv("cliffwalking", "cliffwalking.twl", 60, "return", -13, reference="no published PPO number",
           optimum="-13"),
    ZooEnv("frozenlake8x8", "frozenlake.twl", 300, "success", 0.70, params={"map_name": "MAP_8X8"},
           reference="no published PPO number", optimum="about 0.74 (value iteration)"),
    ZooEnv("frozenlake", "frozenlake.twl", 60, "success", None, reference="no published PPO number",
           optimum="about 0.74 (value iteration)"),
    ZooEnv("taxi", "taxi.twl", 300, "return", 7.5, reference="no published PPO number",
           optimum="about 7.9 (mean over start states)"),
    ZooEnv("puzzle", "puzzle.twl", 120, "success", None,
           reference="P1: see bench/train_puzzle.py, bench/puzzle_vs_twisterl.py", optimum="1.0"),
    ZooEnv("maze", "maze.twl", 60, "success", None, optimum="1.0"),
    ZooEnv("gridworld", "gridworld.twl", 60, "success", None, optimum="1.0"),
    ZooEnv("blackjack", "blackjack.twl", 60, "return", None, reference="no published PPO number",
           optimum="about -0.05 (basic strategy)"),
    ZooEnv("game2048", "game2048.twl", 120, "return", None),
    ZooEnv("tictactoe", "tictactoe.twl", 300, "vs_mcts", None, reference="self-play PPO", optimum="draws"),
    ZooEnv("connect4", "connect4.twl", 1800, "vs_mcts", 0.5, mcts_simulations=1000,
           reference="self-play PPO; the target is against pure MCTS with 1,000 simulations"),
]


def run_one(env: ZooEnv, budget: float, out: Path, threads: int, seed: int) -> dict:
    """Train `env` with no config for `budget` seconds, evaluate the best checkpoint."""
    from twisterl.train.driver import train
    from twisterl.train.run_eval import MatchResult, evaluate_run
    log = out / f"{env.name}.log"
    run_dir = out / env.name
    iterations = None
    if env.max_env_steps:
        iterations = _iterations_for(env, seed)
    start = time.perf_counter()
    with open(log, "w") as stream:
        result = train(str(ROOT / "examples" / env.file), out=str(run_dir), params=env.params, seed=seed,
                       time_limit=budget, iterations=iterations, stream=stream)
    seconds = time.perf_counter() - start
    episodes = GAMES if env.metric == "vs_mcts" else EPISODES
    evals = evaluate_run(str(run_dir), episodes=episodes, deterministic=env.deterministic, seed=seed + 1,
                         mcts_simulations=env.mcts_simulations)
    row = {"env": env.name, "budget_s": budget, "trained_s": round(result.seconds, 1), "wall_s": round(seconds, 1),
           "env_steps": sum(h.env_steps for h in result.history), "iterations": len(result.history),
           "threads": threads, "target": env.target, "reference": env.reference, "optimum": env.optimum,
           "metric": env.metric}
    first = evals[0]
    if isinstance(first, MatchResult):
        searched = evaluate_run(str(run_dir), episodes=episodes, seed=seed + 1, mcts_simulations=env.mcts_simulations,
                                simulations=SEARCH_SIMULATIONS)
        for suffix, results in (("", evals), ("_search", searched)):
            for r in results:
                row[f"vs_{r.opponent.split()[0].lower()}{suffix}"] = round(r.score, 3)
        row["search_simulations"] = SEARCH_SIMULATIONS
        row["result"] = row["vs_pure"]
        row["result_search"] = row["vs_pure_search"]
    else:
        row.update(success=first.success, mean_return=first.mean_return, mean_length=first.mean_length,
                   episodes=episodes)
        row["result"] = first.success if env.metric == "success" else first.mean_return
    row["met"] = None if env.target is None or row["result"] is None else bool(row["result"] >= env.target)
    if "result_search" in row and env.target is not None:
        row["met_search"] = bool(row["result_search"] >= env.target)
    row["auto"] = json.loads((run_dir / "config.json").read_text()).get("auto", {})
    return row


def _iterations_for(env: ZooEnv, seed: int) -> int:
    """Iterations of the auto config's batch that stay within `max_env_steps`."""
    from twisterl.envs import compile
    from twisterl.train.auto import auto_config
    from twisterl.train.checkpoints import CONTINUOUS_DEFAULTS
    from twisterl.train.ppo_config import Config
    cls = compile(str(ROOT / "examples" / env.file))
    chosen, _, _ = auto_config(cls, env.params, {"seed": seed}, dict(CONTINUOUS_DEFAULTS) if cls.continuous else {})
    per = chosen.get("num_envs", Config.num_envs) * chosen.get("num_steps", Config.num_steps)
    return max(1, env.max_env_steps // per)


def markdown(rows: list[dict]) -> str:
    lines = ["| env | budget | env steps | result | target | met | reference | optimum |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        result = r["result"]
        shown = "nan" if result is None or (isinstance(result, float) and math.isnan(result)) else f"{result:.3g}"
        what = {"success": "success", "return": "return", "vs_mcts": "vs MCTS"}[r["metric"]]
        met = "" if r["met"] is None else ("yes" if r["met"] else "no")
        if "result_search" in r:
            shown += f" alone, {r['result_search']:.3g} with search ({r['search_simulations']} simulations)"
            met += "" if "met_search" not in r else f" alone, {'yes' if r['met_search'] else 'no'} with search"
        target = "" if r["target"] is None else f"{r['target']:g}"
        lines.append(f"| {r['env']} | {r['budget_s']:g} s | {r['env_steps']:,} | {what} {shown} | {target} | {met} | "
                     f"{r['reference']} | {r['optimum']} |")
    return "\n".join(lines)


def main(argv: Optional[list[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--only", action="append", help="run only this env (repeatable)")
    ap.add_argument("--budget", type=float, help="seconds of training per env (default: each env's own)")
    ap.add_argument("--threads", type=int, default=2, help="cores to use (torch and rollouts)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="runs/zoo")
    ap.add_argument("--json", help="write the rows here")
    args = ap.parse_args(argv)
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))
    envs = [e for e in ZOO if not args.only or e.name in args.only]
    unknown = set(args.only or []) - {e.name for e in ZOO}
    if unknown:
        ap.error(f"unknown env(s) {', '.join(sorted(unknown))}; known: {', '.join(e.name for e in ZOO)}")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for env in envs:
        row = run_one(env, args.budget or env.budget, out, args.threads, args.seed)
        rows.append(row)
        print(json.dumps({k: v for k, v in row.items() if k != "auto"}), flush=True)
        if args.json:
            Path(args.json).write_text(json.dumps(rows, indent=1) + "\n")
    print(markdown(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
