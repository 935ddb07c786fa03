"""Random games of an OpenSpiel game, step by step, as JSON: the reference that
tests/test_openspiel_games.py replays in our `.twl` ports.

Run by the OpenSpiel venv's interpreter (pyspiel is not in the project's venv):

    python tests/openspiel_trace.py GAME PARAMS_JSON GAMES SEED [BOARDS]

Prints one JSON object per game, one a line:
  actions  the actions taken, in order
  steps    for every state before an action and for the last one:
           [current player, sorted legal action ids, returns, terminal]
  boards   for the first BOARDS games only: per state, the indices of the nonzero
           entries of pyspiel's observation tensor for player 0 (with their values
           where they are not 1), so the test can compare whole boards.
"""

from __future__ import annotations

import json
import random
import sys

import pyspiel


def tensor(state) -> list:
    values = state.observation_tensor(0)
    return [i if v == 1.0 else [i, v] for i, v in enumerate(values) if v != 0.0]


def main() -> None:
    name, params, games, seed = sys.argv[1], json.loads(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    boards = int(sys.argv[5]) if len(sys.argv) > 5 else 0
    game = pyspiel.load_game(name, params)
    rng = random.Random(seed)
    out = sys.stdout
    for g in range(games):
        state = game.new_initial_state()
        actions, steps, seen = [], [], []
        while True:
            terminal = state.is_terminal()
            legal = [] if terminal else sorted(state.legal_actions())
            player = -1 if terminal else state.current_player()
            steps.append([player, legal, list(state.returns()), terminal])
            if g < boards:
                seen.append(tensor(state))
            if terminal:
                break
            a = rng.choice(legal)
            actions.append(a)
            state.apply_action(a)
        record = {"actions": actions, "steps": steps}
        if g < boards:
            record["boards"] = seen
        out.write(json.dumps(record, separators=(",", ":")) + "\n")


if __name__ == "__main__":
    main()
