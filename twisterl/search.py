"""Monte Carlo tree search from Python: one search on a state, whole games, puzzle solving.

    import twisterl
    TicTacToe = twisterl.compile("examples/tictactoe.twl")
    env = TicTacToe(); env.reset(seed=0)
    result = twisterl.mcts(env, simulations=400)              # pure MCTS (random rollouts)
    result = twisterl.mcts(env, policy="runs/ttt", simulations=100)   # AlphaZero's PUCT
    result.action, result.visits, result.value

The search itself runs in Rust (`twisterl._core.search` and `twisterl._core.play`) with
the GIL released; see docs/alphazero.md for how leaves are reached and evaluated.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Sequence, Union

import numpy as np

from . import _core

PolicyLike = Union[None, str, Path, Any]


@dataclass
class SearchResult:
    """What one search found at its root (arrays have one entry per action)."""
    action: int            # the most visited action
    visits: np.ndarray     # visit counts (0 for illegal actions)
    policy: np.ndarray     # visits normalised: the AlphaZero policy target
    value: float           # the root's value for the player to move
    priors: np.ndarray     # the priors used (after any root noise)
    q: np.ndarray          # each action's mean value for the player to move (NaN if unvisited)


def rust_policy(policy: PolicyLike, cls=None, params: Optional[dict] = None):
    """A `_core.Policy` from a run dir, a torch module or a `_core.Policy`; None stays None.
    A run dir's checkpoint must have been made for `cls` (when given) with `params`
    (default: the run's): a `CheckpointError` says what differs."""
    if policy is None or isinstance(policy, _core.Policy):
        return policy
    if isinstance(policy, (str, Path)):
        from .train.checkpoints import load_policy
        from .train.rundir import find_run
        policy, _, _ = load_policy(find_run(str(policy)), cls=cls, params=params)
    from .train.networks import runtime_policy
    return runtime_policy(policy)


def agent(policy: PolicyLike = None, *, simulations: int = 100, c_puct: float = 1.5, uct_c: float = 2.0,
          fpu: float = 0.0, leaf_batch: int = 1, dirichlet_alpha: float = 0.3, dirichlet_frac: float = 0.0,
          rollout_limit: int = 100_000, random: bool = False, cls=None, twists=None,
          params: Optional[dict] = None) -> dict:
    """Search options for `_core.play`/`_core.search`: with a policy, AlphaZero's PUCT on its
    priors and values; without, pure MCTS (UCT with random rollouts); `random=True`
    plays uniformly random legal moves. `twists` (a list of (observation permutation,
    action permutation), such as `twisterl.symmetry.twist_group(...)`, identity included)
    averages the network's priors and values over them at every leaf. A run dir's policy
    is checked against `cls` with `params` (see `rust_policy`)."""
    if isinstance(simulations, bool) or not isinstance(simulations, (int, np.integer)) or simulations < 1:
        raise ValueError(f"simulations must be an int of at least 1, not {simulations!r}")
    if isinstance(leaf_batch, bool) or not isinstance(leaf_batch, (int, np.integer)) or leaf_batch < 1:
        raise ValueError(f"leaf_batch must be an int of at least 1, not {leaf_batch!r}")
    if random:
        return {"kind": "random", "simulations": 1}
    p = rust_policy(policy, cls, params)
    d = {"kind": "net" if p is not None else "rollout", "simulations": int(simulations), "c_puct": float(c_puct),
         "uct_c": float(uct_c), "fpu": float(fpu), "leaf_batch": int(leaf_batch),
         "dirichlet_alpha": float(dirichlet_alpha), "dirichlet_frac": float(dirichlet_frac),
         "rollout_limit": int(rollout_limit)}
    if p is not None:
        d["policy"] = p
        if twists:
            d["twists"] = [(np.asarray(o).tolist(), np.asarray(a).tolist()) for o, a in twists]
    return d


def symmetry_group(env) -> list:
    """The env's symmetries closed under composition (identity included); [] if none."""
    from .train.twists import twist_group
    twists = list(env.twists().values())
    if not twists:
        raise ValueError(f"{env.cls.name} declares no symmetry to average over")
    return twist_group(twists)


def _root_batch(env, state: Optional[Sequence[float]]):
    """The batch holding the root: the env's own, or a private one set to `state`."""
    if state is None:
        return env.batch
    arr = np.ascontiguousarray(state, dtype=np.float64).reshape(-1)
    expected = env.batch.sizes[4]
    if arr.shape[0] != expected:
        raise ValueError(f"a state of {arr.shape[0]} values was given, but {env.cls.name} needs {expected}")
    batch = env.cls.create(env.params, 1, 0, 1)
    batch.set_difficulty(0)
    env._call(batch.set_state, 0, arr)
    return batch


def mcts(env, policy: PolicyLike = None, *, state: Optional[Sequence[float]] = None, simulations: int = 100,
         seed: int = 0, average_twists: bool = False, **options) -> SearchResult:
    """Search from `env`'s current state (or from `state`, as `env.set_state` takes it) and
    return the root's visit counts, value and best action. `env` is left unchanged.

    Without `policy`, pure MCTS: UCT (`uct_c`) with one random rollout per leaf. With a
    policy (a run dir, a torch network or a `_core.Policy`), AlphaZero's PUCT (`c_puct`).
    `leaf_batch` leaves are evaluated per forward pass (virtual loss); `dirichlet_frac`
    mixes Dirichlet(`dirichlet_alpha`) noise into the root's priors. The same seed gives
    the same search. `average_twists` averages the network over the env's symmetries."""
    if getattr(env.cls, "continuous", False):
        raise ValueError(f"{env.cls.name} has continuous actions; MCTS needs discrete ones")
    if average_twists:
        if policy is None:
            raise ValueError("average_twists needs a policy (pure MCTS has no network to average)")
        options["twists"] = symmetry_group(env)
    opts = agent(policy, simulations=simulations, cls=env.cls, params=env.params, **options)
    root = _root_batch(env, state)
    scratch = env.cls.create(env.params, opts.get("leaf_batch", 1), 0, 1)
    visits, value, action, priors, q = env._call(_core.search, root, 0, scratch, opts, int(seed))
    total = visits.sum()
    return SearchResult(int(action), visits, visits / total if total else visits, float(value), priors, q)


def play_games(cls, params: dict, agents: Sequence[dict], num_games: int, *, seed: int = 0, num_threads: int = 1,
               difficulty: int = 0, temperature: float = 1.0, temp_moves: int = 0, record: bool = False,
               max_moves: int = 100_000, tries: int = 1, retry_temperature: float = 1.0,
               start_state: Optional[Sequence[float]] = None, concurrent: Optional[int] = None) -> dict:
    """Play `num_games` games (x `tries` for puzzles) in Rust with search on every move.

    With one agent it plays every seat; with one per player, seats rotate with the game
    number (game 0: agent 0 moves first). `concurrent` games run at once per call (default
    8 per thread), their leaves evaluated together. See `_core.play` for the result."""
    if num_games < 1:
        raise ValueError(f"num_games must be at least 1, not {num_games}")
    slots = concurrent or max(1, min(num_games * tries, 8 * num_threads))
    leaf = max(int(a.get("leaf_batch", 1)) for a in agents)
    games = cls.create(params, slots, seed, num_threads)
    games.set_difficulty(int(difficulty))
    scratch = cls.create(params, slots * leaf, seed, 1)
    state = None if start_state is None else [float(x) for x in start_state]
    try:
        return _core.play(games, scratch, list(agents), int(num_games), int(seed), float(temperature), int(temp_moves),
                          bool(record), int(max_moves), int(tries), float(retry_temperature), state)
    except RuntimeError as exc:
        raise cls.translate(exc) from None


def solve(env, policy: PolicyLike = None, *, num_mcts_searches: int = 100, tries: int = 1, max_steps: int = 1000,
          state: Optional[Sequence[float]] = None, seed: int = 0, **options) -> tuple[bool, list[int]]:
    """Solve a single-player puzzle from `env`'s current state (or `state`) by searching
    `num_mcts_searches` simulations before each move, as TwisteRL's `solve` does. The first
    try takes the most visited action; further tries sample by visit counts. Returns
    (solved, actions) of the first successful try, or of the last one."""
    if env.cls.players != 1:
        raise ValueError(f"solve is for single-player puzzles; {env.cls.name} has {env.cls.players} players")
    if tries < 1 or max_steps < 1:
        raise ValueError("tries and max_steps must be at least 1")
    start = env.get_state() if state is None else np.asarray(state, dtype=np.float64)
    opts = agent(policy, simulations=num_mcts_searches, cls=env.cls, params=env.params, **options)
    out = play_games(env.cls, env.params, [opts], 1, seed=seed, temperature=0.0, tries=tries, max_moves=max_steps,
                     start_state=start, retry_temperature=1.0, concurrent=tries)
    for k in range(tries):
        if out["success"][k]:
            return True, list(out["actions"][k])
    return False, list(out["actions"][tries - 1])
