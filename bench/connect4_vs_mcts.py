"""Connect Four: the win rate of a trained AlphaZero run against pure MCTS with 1,000
random-rollout simulations per move (each side half the games, the first two moves of
each game sampled from the visit counts so that games differ).

    twisterl train examples/connect4.twl --algo az --config bench/configs/connect4_az.json \\
        --time-limit 1800 --out runs/c4
    python bench/connect4_vs_mcts.py runs/c4 [GAMES] [AZ_SIMULATIONS...]
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

import twisterl
from harness import machine
from twisterl.search import agent, play_games, rust_policy

HERE = Path(__file__).parent


def main() -> None:
    run = sys.argv[1]
    games = int(sys.argv[2]) if len(sys.argv) > 2 else 100
    az_sims = [int(x) for x in sys.argv[3:]] or [100, 400]
    cls = twisterl.compile(HERE.parent / "examples" / "connect4.twl")
    policy = rust_policy(run, cls)
    pure = agent(None, simulations=1000)
    print(f"# Connect Four: {run} (best checkpoint) vs pure MCTS, 1000 simulations ({machine()})")
    for sims in az_sims:
        start = time.perf_counter()
        data = play_games(cls, {}, [agent(policy, simulations=sims), pure], games, seed=0, num_threads=2,
                          temperature=1.0, temp_moves=2)
        mine = (data["returns"] * (data["seats"] == 0)).sum(1)
        first = data["seats"][:, 0] == 0
        w, d, l = int((mine > 0).sum()), int((mine == 0).sum()), int((mine < 0).sum())
        print(f"AlphaZero {sims:4d} simulations: {w} wins, {d} draws, {l} losses of {games} "
              f"(win rate {w / games:.2f}; moving first {np.mean(mine[first] > 0):.2f}, second "
              f"{np.mean(mine[~first] > 0):.2f}) in {time.perf_counter() - start:.0f} s", flush=True)


if __name__ == "__main__":
    main()
