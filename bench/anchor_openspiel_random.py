"""OpenSpiel's side of bench/games_vs_openspiel.py, run in OpenSpiel's own venv.

For one game, prints three numbers: random-playout steps/s of OpenSpiel's C++ rollouts
(`RandomRolloutEvaluator`, run by a one-simulation `MCTSBot.mcts_search`, which
evaluates the initial state with 16 rollouts; counted as rollouts/s times the mean game
length), steps/s of a random-play loop in Python over pyspiel (legal_actions,
a uniform choice, apply_action), and that mean game length.
Usage: anchor_openspiel_random.py GAME PARAMS_JSON
"""

import json
import random
import sys

import pyspiel

from harness import rate


def main() -> None:
    game = pyspiel.load_game(sys.argv[1], json.loads(sys.argv[2]))
    rng = random.Random(0)
    lengths = []

    def python_loop() -> int:
        state = game.new_initial_state()
        n = 0
        while not state.is_terminal():
            state.apply_action(rng.choice(state.legal_actions()))
            n += 1
        lengths.append(n)
        return n

    loop = rate(python_loop)
    mean = sum(lengths) / len(lengths)
    rollouts_per_search = 16
    bot = pyspiel.MCTSBot(game, pyspiel.RandomRolloutEvaluator(rollouts_per_search, 0), 2.0, 1, 10_000, False, 0,
                          False)
    start = game.new_initial_state()

    def rollouts() -> int:
        bot.mcts_search(start)
        return rollouts_per_search

    print(f"{rate(rollouts) * mean:.1f} {loop:.1f} {mean:.2f}")


if __name__ == "__main__":
    main()
