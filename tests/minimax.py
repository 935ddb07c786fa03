"""A perfect tic-tac-toe player (minimax over the whole game), for benchmarks and tests.

`perfect_moves(cells, player)` lists every optimal move; `play_vs_minimax` plays an agent
against it, the minimax side picking at random among its optimal moves so games differ.
"""

from __future__ import annotations

import functools

import numpy as np

LINES = [(0, 1, 2), (3, 4, 5), (6, 7, 8), (0, 3, 6), (1, 4, 7), (2, 5, 8), (0, 4, 8), (2, 4, 6)]


@functools.lru_cache(maxsize=None)
def value(cells: tuple, player: int) -> int:
    """+1, 0 or -1 for `player` (0 is X, 1 is O) to move, under perfect play."""
    for a, b, c in LINES:
        if cells[a] and cells[a] == cells[b] == cells[c]:
            return 1 if cells[a] == player + 1 else -1
    if all(cells):
        return 0
    return max(-value(cells[:k] + (player + 1,) + cells[k + 1:], 1 - player) for k in range(9) if not cells[k])


def perfect_moves(cells: tuple, player: int) -> list[int]:
    scores = {k: -value(cells[:k] + (player + 1,) + cells[k + 1:], 1 - player) for k in range(9) if not cells[k]}
    best = max(scores.values())
    return [k for k, v in scores.items() if v == best]


def play_vs_minimax(cls, choose, games_per_side: int = 100, seed: int = 0) -> dict:
    """`choose(env) -> action` plays `games_per_side` games as X and as O against minimax.
    Returns wins, draws and losses of the agent."""
    rng = np.random.default_rng(seed)
    out = {"wins": 0, "draws": 0, "losses": 0}
    env = cls()
    for side in (0, 1):
        for _ in range(games_per_side):
            env.reset(seed=int(rng.integers(2**31)))
            info = {"player": 0}
            total = np.zeros(2)
            while True:
                if info["player"] == side:
                    action = choose(env)
                else:
                    cells = tuple(int(v) for v in env.get_state()[:9])
                    action = int(rng.choice(perfect_moves(cells, info["player"])))
                _, _, term, trunc, info = env.step(action)
                total += info["rewards"]
                if term or trunc:
                    break
            mine = total[side]
            out["wins" if mine > 0 else "losses" if mine < 0 else "draws"] += 1
    return out
