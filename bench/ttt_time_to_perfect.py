"""Tic-tac-toe: how long AlphaZero trains (default config, 2 threads) before its agent
stops losing against a perfect minimax player, 100 games per side.

After each iteration the current network, with the search it trains with, plays 100
games as X and 100 as O against minimax (which picks at random among its optimal moves).
Prints the training time (evaluation excluded) when it first loses none, and goes on
until three iterations in a row lose none (so a lucky iteration does not count alone).

    python bench/ttt_time_to_perfect.py [MAX_ITERATIONS]
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import twisterl
from harness import machine

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from minimax import play_vs_minimax  # noqa: E402  (the tests' perfect player)
from twisterl.train.alphazero import AlphaZero, Config
from twisterl.train.nets import to_rust

HERE = Path(__file__).parent


def main() -> None:
    max_iterations = int(sys.argv[1]) if len(sys.argv) > 1 else 60
    cls = twisterl.compile(HERE.parent / "examples" / "tictactoe.twl")
    cfg = Config(seed=0)
    az = AlphaZero(cls, cfg)
    print(f"# tic-tac-toe, AlphaZero defaults ({cfg.num_games} games x {cfg.num_simulations} simulations per "
          f"iteration, {cfg.num_threads} threads; {machine()})")
    trained, first, streak = 0.0, None, 0
    for it in range(1, max_iterations + 1):
        start = time.perf_counter()
        az.iterate()
        trained += time.perf_counter() - start
        p = to_rust(az.policy)
        r = play_vs_minimax(cls, lambda env: twisterl.mcts(env, p, simulations=cfg.num_simulations,
                                                           c_puct=cfg.c_puct).action, 100, seed=it)
        raw = play_vs_minimax(cls, lambda env: twisterl.mcts(env, p, simulations=1).action, 100, seed=it)
        print(f"iteration {it:3d}  {trained:6.1f} s trained  with search: {r}  raw policy: {raw}", flush=True)
        streak = streak + 1 if r["losses"] == 0 else 0
        if streak == 1:
            first = (it, trained)
        if streak == 3:
            print(f"no loss in 200 games against minimax from iteration {first[0]} ({first[1]:.1f} s of training) "
                  f"on, three iterations in a row")
            return
    print(f"still losing after {max_iterations} iterations ({trained:.1f} s)")


if __name__ == "__main__":
    main()
