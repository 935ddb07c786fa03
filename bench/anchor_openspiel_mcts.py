"""OpenSpiel's side of bench/mcts_vs_openspiel.py, run in OpenSpiel's own venv.

OpenSpiel's C++ `MCTSBot` (UCT, one random rollout per leaf, no solver) searches each
position of the shared list (move sequences given on stdin, one per line); prints the
simulations per second. Usage: anchor_openspiel_mcts.py SIMULATIONS [GAME] < positions
(GAME: an OpenSpiel game name, default connect_four, with its default params)
"""

import sys

import pyspiel

from harness import rate


def main() -> None:
    sims = int(sys.argv[1])
    game = pyspiel.load_game(sys.argv[2] if len(sys.argv) > 2 else "connect_four")
    positions = []
    for line in sys.stdin.read().splitlines():
        state = game.new_initial_state()
        for a in line.split():
            state.apply_action(int(a))
        positions.append(state)
    evaluator = pyspiel.RandomRolloutEvaluator(1, 0)
    bot = pyspiel.MCTSBot(game, evaluator, 2.0, sims, 10_000, False, 0, False)
    turn = {"k": 0}

    def chunk() -> int:
        state = positions[turn["k"] % len(positions)]
        turn["k"] += 1
        bot.step(state)
        return sims

    print(f"{rate(chunk):.1f}")


if __name__ == "__main__":
    main()
