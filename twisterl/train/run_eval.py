"""`twisterl eval`: a run dir's best checkpoint, checked against the run's env.twl, on
fresh episodes (puzzles) or in matches against random play and pure MCTS (two players)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Union

import numpy as np

from .az_config import Config as AzConfig
from .checkpoints import load_policy, run_config, run_env
from .config import MAX_DIFFICULTY
from .rundir import find_run

SEARCH_C_PUCT = AzConfig.c_puct
"""PUCT's exploration constant when a PPO policy searches: AlphaZero's default"""


@dataclass
class PuzzleResult:
    """Episodes of a single-player env: the success rate and mean length (and, for PPO's
    policies, the mean return); `how` says how the agent acted."""
    env: str
    difficulty: int
    episodes: int
    how: str
    success: float
    mean_length: float
    mean_return: Optional[float] = None
    std_return: Optional[float] = None


@dataclass
class MatchResult:
    """Games of a two-player env between the run's agent (`player`) and an `opponent`,
    the seats alternating."""
    env: str
    player: str
    opponent: str
    games: int
    wins: int
    draws: int
    losses: int

    @property
    def score(self) -> float:
        return (self.wins + 0.5 * self.draws) / self.games


EvalResult = Union[PuzzleResult, MatchResult]


def evaluate_run(run_path: str, episodes: int = 100, deterministic: bool = False, difficulty: Optional[int] = None,
                 seed: int = 0, tries: int = 1, average_twists: bool = False,
                 mcts_simulations: Optional[int] = None, simulations: Optional[int] = None) -> list[EvalResult]:
    """The run's best checkpoint: a PPO policy acting on its own (sampled, or its most likely
    action when `deterministic`), an AlphaZero net with search. With `simulations`, either
    net searches (AlphaZero's PUCT on its priors and values) that many simulations a move.
    Puzzles play `episodes` episodes at `difficulty` (default: the checkpoint's), each a
    success if any of `tries` tries from the same start succeeds; two-player games play
    `episodes` games against each opponent, the pure-MCTS one with `mcts_simulations` per
    move (default: the run's `pure_simulations`)."""
    if difficulty is not None and not 0 <= difficulty <= MAX_DIFFICULTY:
        raise ValueError(f"--difficulty must be between 0 and {MAX_DIFFICULTY}, not {difficulty}")
    for flag, value in (("--mcts-simulations", mcts_simulations), ("--simulations", simulations)):
        if value is not None and not 1 <= value <= 1 << 24:
            raise ValueError(f"{flag} must be between 1 and {1 << 24}, not {value}")
    run = find_run(run_path)
    if run.config().get("algo") == "az":
        return evaluate_alphazero(run_path, episodes, difficulty, seed, tries, simulations=simulations,
                                  pure_simulations=mcts_simulations)
    from .evaluation import evaluate_policy
    from .networks import runtime_policy as to_rust
    from .twists import twist_group
    cls, source = run_env(run)
    net, meta, cfg = load_policy(run, cls=cls, source=source, what=str(run.path / "env.twl"))
    if difficulty is None:
        difficulty = meta["difficulty"]
    params = cfg.get("params", {})
    if simulations is not None and cls.continuous:
        raise ValueError(f"--simulations: {cls.name} has continuous actions, which search cannot branch on")
    if average_twists and not cls.spec.get("symmetries", []):
        raise ValueError(f"{cls.name} declares no symmetry to average over")
    if cls.players == 2 or simulations is not None:
        from ..search import symmetry_group
        twists = symmetry_group(cls(**params)) if average_twists else None
        if cls.players == 2:
            return _ppo_matches(cls, net, params, run_config(run)[1], episodes, seed, mcts_simulations, simulations,
                                twists)
        return [_ppo_search(cls, net, params, run_config(run)[1], episodes, difficulty, seed, tries, simulations,
                            twists)]
    group = None
    if average_twists:
        group = twist_group(list(cls.vector(1, seed=0, **params).twists().values()))
    limit = int(cfg.get("config", {}).get("max_episode_steps", 0) or 0)  # the step limit it trained with
    result = evaluate_policy(cls, to_rust(net), episodes, deterministic, difficulty, seed, params, tries=tries,
                             twists=group, log_std=_log_std(net), max_episode_steps=limit)
    how = "deterministic" if deterministic else "sampled"
    if tries > 1:
        how += f", best of {tries} tries"
    if group:
        how += f", averaged over {len(group)} twists"
    return [PuzzleResult(cls.name, difficulty, episodes, how, result["success"], result["length"], result["return"],
                         _std_return(result))]


def _std_return(result: dict) -> Optional[float]:
    """The standard deviation of each episode's best-try return (the tries `evaluate_policy` keeps)."""
    if "try_return" not in result:
        return None
    score = result["try_success"] * 1e18 + result["try_return"]
    best = result["try_return"][np.arange(len(score)), score.argmax(axis=1)]
    return float(best.std())


def _ppo_matches(cls, net, params: dict, config, games: int, seed: int,
                 sims: Optional[int] = None, search: Optional[int] = None, twists=None) -> list[EvalResult]:
    """A self-play PPO run's policy, playing its most likely legal move (no search), or the
    most visited after `search` PUCT simulations on its priors and values, against random
    play and pure MCTS (`sims` simulations a move; default the run's `pure_simulations`,
    or 100 if 0). With `twists` (a symmetry group), the net's outputs are averaged over it."""
    from ..search import agent, play_games
    from .networks import runtime_policy as to_rust
    me = agent(to_rust(net), simulations=search or 1, c_puct=SEARCH_C_PUCT, twists=twists)
    player = f"PPO policy with search ({search} simulations)" if search else "PPO policy (no search)"
    if twists:
        player += f", averaged over {len(twists)} twists"
    sims = sims or config.pure_simulations or 100
    out: list[EvalResult] = []
    for label, opp in (("random play", agent(random=True)),
                       (f"pure MCTS ({sims} simulations)", agent(None, simulations=sims))):
        data = play_games(cls, params, [me, opp], games, seed=seed, num_threads=config.num_threads, temperature=0.0)
        out.append(_match(cls.name, player, label, data))
    return out


def _ppo_search(cls, net, params: dict, config, episodes: int, difficulty: int, seed: int, tries: int,
                sims: int, twists=None) -> PuzzleResult:
    """A PPO run's policy and value guiding PUCT search (`sims` simulations a move) on a
    puzzle; with `twists` (a symmetry group), the net's outputs averaged over it."""
    from ..search import agent, play_games
    from .networks import runtime_policy as to_rust
    me = agent(to_rust(net), simulations=sims, c_puct=SEARCH_C_PUCT, twists=twists)
    limit = int(config.max_episode_steps or 0) or 100_000
    data = play_games(cls, params, [me], episodes, seed=seed, num_threads=config.num_threads, difficulty=difficulty,
                      temperature=0.0, tries=tries, max_moves=limit)
    solved = data["success"].reshape(episodes, tries).any(axis=1)
    returns = data["returns"].reshape(episodes, tries, -1)[:, :, 0].max(axis=1)
    how = f"PUCT search, {sims} simulations per move, {tries} tries"
    if twists:
        how += f", averaged over {len(twists)} twists"
    return PuzzleResult(cls.name, difficulty, episodes, how,
                        float(solved.mean()), float(data["lengths"].mean()), float(returns.mean()),
                        float(returns.std()))


def evaluate_alphazero(run_path: str, episodes: int, difficulty: Optional[int], seed: int, tries: int = 1,
                       simulations: Optional[int] = None, opponent: str = "all",
                       pure_simulations: Optional[int] = None) -> list[EvalResult]:
    """An AlphaZero run's best net with search. Two players: against random play and pure
    MCTS with `pure_simulations` a move (default: the run's, or 200; `opponent` picks one),
    each side moving first in half the games. Puzzles: the success rate of search, with
    `tries` tries per scramble."""
    from ..search import agent, play_games, symmetry_group
    from .networks import runtime_policy as to_rust
    run = find_run(run_path)
    _, conf = run_config(run)
    cls, source = run_env(run)
    net, meta, cfg = load_policy(run, cls=cls, source=source, what=str(run.path / "env.twl"))
    params = cfg.get("params", {})
    sims = simulations or conf.num_simulations
    group = symmetry_group(cls(**params)) if conf.average_twists else None
    me = agent(to_rust(net), simulations=sims, c_puct=conf.c_puct, twists=group)
    if cls.players == 1:
        diff = meta["difficulty"] if difficulty is None else difficulty
        data = play_games(cls, params, [me], episodes, seed=seed, num_threads=conf.num_threads, difficulty=diff,
                          temperature=0.0, tries=tries, max_moves=conf.max_moves)
        solved = data["success"].reshape(episodes, tries).any(axis=1)
        how = f"MCTS, {sims} simulations per move, {tries} tries"
        return [PuzzleResult(cls.name, diff, episodes, how, float(solved.mean()), float(data["lengths"].mean()))]
    out: list[EvalResult] = []
    opponents = {"random": agent(random=True), "mcts": agent(None, simulations=pure_simulations or conf.pure_simulations or 200)}
    for name, opp in opponents.items():
        if opponent not in ("all", name):
            continue
        data = play_games(cls, params, [me, opp], episodes, seed=seed, num_threads=conf.num_threads,
                          temperature=1.0, temp_moves=conf.arena_temp_moves, max_moves=conf.max_moves)
        label = "random play" if name == "random" else f"pure MCTS ({opp['simulations']} simulations)"
        out.append(_match(cls.name, f"AlphaZero ({sims} simulations)", label, data))
    return out


def _match(env: str, player: str, opponent: str, data: dict) -> MatchResult:
    """Wins, draws and losses of seat 0's agent in `play_games` data."""
    mine = (data["returns"] * (data["seats"] == 0)).sum(1)
    return MatchResult(env, player, opponent, len(mine), int((mine > 0).sum()), int((mine == 0).sum()),
                       int((mine < 0).sum()))


def _log_std(net) -> Optional[np.ndarray]:
    from .networks import log_std_of
    log_std = log_std_of(net)
    return None if log_std is None else log_std.astype(np.float64)
