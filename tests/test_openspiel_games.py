"""The OpenSpiel ports in examples/ play exactly as pyspiel does, step for step.

pyspiel plays random games in the OpenSpiel venv (bench/setup_anchors.sh openspiel;
`$BENCH_VENVS/openspiel`, default ~/.cache/twisterl-bench/openspiel), through
tests/openspiel_trace.py; each game is replayed here in our env, and at every step the
legal action ids, the player to move, termination and the returns must be the same. For
the first games the whole board is compared too, against pyspiel's observation tensor.
Each game's trace must also show its rare rules (passes, multi-jumps, extra turns...),
so the comparison covers them. Without the OpenSpiel venv the tests skip.
"""

from __future__ import annotations

import functools
import json
import os
import subprocess
from pathlib import Path
from typing import Callable

import numpy as np
import pytest

HERE = Path(__file__).resolve().parent
VENV = Path(os.environ.get("BENCH_VENVS", Path.home() / ".cache" / "twisterl-bench")) / "openspiel"
PYTHON = VENV / "bin" / "python"

pytestmark = pytest.mark.usefixtures("build_cache")

GAMES_PER_PORT = 200
BOARDS = 20  # games whose boards are compared at every step


@functools.cache
def openspiel_missing() -> str:
    if not PYTHON.exists():
        return f"no OpenSpiel venv at {VENV} (run bench/setup_anchors.sh openspiel)"
    probe = subprocess.run([str(PYTHON), "-c", "import pyspiel"], capture_output=True, text=True)
    if probe.returncode != 0:
        return f"pyspiel does not import in {VENV}: {probe.stderr.strip().splitlines()[-1:]}"
    return ""


def need_openspiel() -> None:
    if openspiel_missing():
        pytest.skip(openspiel_missing())


def trace(game: str, params: dict, games: int, seed: int, boards: int) -> list[dict]:
    out = subprocess.run([str(PYTHON), str(HERE / "openspiel_trace.py"), game, json.dumps(params), str(games),
                          str(seed), str(boards)], capture_output=True, text=True, timeout=300)
    if out.returncode != 0:
        raise RuntimeError(f"openspiel_trace.py {game} failed:\n{out.stderr}")
    return [json.loads(line) for line in out.stdout.splitlines()]


def tensor_set(items: list) -> set:
    """pyspiel's nonzero observation entries as a set of (index, value)."""
    return {(i, 1.0) if isinstance(i, int) else (i[0], float(i[1])) for i in items}


def ones(indices) -> set:
    return {(int(i), 1.0) for i in indices}


# --- our state, written as pyspiel's observation tensor (player 0's) -----------------

def planes(cells: np.ndarray, plane_of: dict) -> set:
    """One-hot planes [k, cells]: cell i with value v is on in plane plane_of[v]."""
    n = cells.size
    return ones(plane_of[int(v)] * n + i for i, v in enumerate(cells.reshape(-1)))


def breakthrough_board(s: dict, params: dict) -> set:
    return planes(np.asarray(s["board"]), {1: 0, 2: 1, 0: 2})


def othello_board(s: dict, params: dict) -> set:
    return planes(np.asarray(s["board"]), {0: 0, 1: 1, 2: 2})


def clobber_board(s: dict, params: dict) -> set:
    return planes(np.asarray(s["board"]), {1: 0, 2: 1, 0: 2})


def hex_board(s: dict, params: dict) -> set:
    board, edge = np.asarray(s["board"]), np.asarray(s["edge"])
    n = board.size
    black = {0: 1, 1: 3, 2: 2, 3: 4}  # OpenSpiel's kBlack, kBlackNorth, kBlackSouth, kBlackWin
    white = {0: -1, 1: -3, 2: -2, 3: -4}
    cell = [0 if b == 0 else black[int(e)] if b == 1 else white[int(e)] for b, e in zip(board, edge)]
    return ones((v + 4) * n + i for i, v in enumerate(cell))


def dots_and_boxes_board(s: dict, params: dict) -> set:
    rows, cols = params.get("num_rows", 2), params.get("num_cols", 2)
    n = (rows + 1) * (cols + 1)  # OpenSpiel's cells: one per dot, each with h, v and box parts
    state = np.zeros((n, 3), dtype=int)
    h = np.asarray(s["h"]).reshape(rows + 1, cols)
    v = np.asarray(s["v"]).reshape(rows, cols + 1)
    box = np.asarray(s["box"]).reshape(rows, cols)
    for r in range(rows + 1):
        for c in range(cols + 1):
            cell = r * (cols + 1) + c
            state[cell] = [h[r, c] if c < cols else 0, v[r, c] if r < rows else 0,
                           box[r, c] if r < rows and c < cols else 0]
    return ones(state[cell, part] * n * 3 + cell * 3 + part for cell in range(n) for part in range(3))


def mancala_board(s: dict, params: dict) -> set:
    values = [*s["board"], s["player"], s["moves"]]  # OpenSpiel's: the pits, player, move number
    return {(i, float(v)) for i, v in enumerate(values) if v != 0}


def checkers_board(s: dict, params: dict) -> set:
    # OpenSpiel's planes: white man, white king, black man, black king, empty
    cells = [4 if b == 0 else (b - 1) * 2 + int(k) for b, k in zip(s["board"], s["king"])]
    return ones(v * len(cells) + i for i, v in enumerate(cells))


def amazons_board(s: dict, params: dict) -> set:
    return planes(np.asarray(s["board"]), {0: 0, 1: 2, 2: 1, 3: 3})  # OpenSpiel: empty, O, X, arrow


PORTS: dict[str, dict] = {
    "breakthrough": dict(twl="breakthrough", params={}, board=breakthrough_board),
    "othello": dict(twl="othello", params={}, board=othello_board),
    "clobber": dict(twl="clobber", params={}, board=clobber_board),
    "hex": dict(twl="hex", params={}, board=hex_board),
    "dots_and_boxes": dict(twl="dots_and_boxes", params={}, board=dots_and_boxes_board),
    "mancala": dict(twl="mancala", params={}, board=mancala_board),
    "checkers": dict(twl="checkers", params={}, board=checkers_board),
    "amazons": dict(twl="amazons", params={}, board=amazons_board),
}


def replay(port: str, games: int = GAMES_PER_PORT, seed: int = 0, boards: int = BOARDS,
           ospiel_params: dict | None = None, twl_params: dict | None = None) -> list[dict]:
    """Replays pyspiel's random games in our env, asserting agreement at every step.
    Returns the traces (for the rare-rule checks)."""
    import twisterl

    need_openspiel()
    spec = PORTS[port]
    ospiel_params = spec["params"] if ospiel_params is None else ospiel_params
    twl_params = spec.get("twl_params", {}) if twl_params is None else twl_params
    records = trace(spec.get("game", port), ospiel_params, games, seed, boards)
    cls = twisterl.compile(HERE.parent / "examples" / f"{spec['twl']}.twl")
    env = cls(**twl_params)
    board: Callable | None = spec.get("board")
    for g, rec in enumerate(records):
        _, info = env.reset(seed=g)
        returns = np.zeros(2)
        done = False
        for k, (player, legal, want_returns, terminal) in enumerate(rec["steps"]):
            where = f"{port} game {g} step {k} after {rec['actions'][:k]}"
            assert done == terminal, where
            np.testing.assert_allclose(returns, want_returns, err_msg=where)
            if not terminal:
                assert info["player"] == player, where
                assert np.flatnonzero(info["action_mask"]).tolist() == legal, where
            if board is not None and "boards" in rec:
                assert board(env.get_state(named=True), ospiel_params) == tensor_set(rec["boards"][k]), where
            if terminal:
                break
            _, _, term, trunc, info = env.step(rec["actions"][k])
            assert not trunc, where
            returns += info["rewards"]
            done = term
    return records


def same_player_runs(rec: dict) -> list[int]:
    """Lengths of the runs of consecutive moves by one player."""
    players = [s[0] for s in rec["steps"] if not s[3]]
    runs, n = [], 1
    for a, b in zip(players, players[1:]):
        if a == b:
            n += 1
        else:
            runs.append(n)
            n = 1
    runs.append(n)
    return runs


def finished(records: list[dict]) -> None:
    """Every game went to its end, and both players won some."""
    assert all(r["steps"][-1][3] for r in records)
    outcomes = {tuple(r["steps"][-1][2]) for r in records}
    assert (1.0, -1.0) in outcomes and (-1.0, 1.0) in outcomes, outcomes


def test_breakthrough():
    records = replay("breakthrough")
    finished(records)
    # captures (odd ids) and wins by reaching the far row and by taking every piece
    assert any(a % 2 == 1 for r in records for a in r["actions"])


def test_breakthrough_small_board():
    replay("breakthrough", games=50, ospiel_params={"rows": 5, "columns": 4}, twl_params={"rows": 5, "cols": 4})


def test_othello():
    records = replay("othello")
    finished(records)
    assert any(r["steps"][-1][2] == [0.0, 0.0] for r in records)  # draws
    passes = sum(r["actions"].count(64) for r in records)
    assert passes > 0


def test_clobber():
    finished(replay("clobber"))


def test_clobber_other_boards():
    for rows, cols in ((4, 4), (3, 7)):
        finished(replay("clobber", games=60, ospiel_params={"rows": rows, "columns": cols},
                        twl_params={"rows": rows, "cols": cols}))


def test_hex():
    finished(replay("hex", games=100, boards=10))


def test_hex_other_boards():
    finished(replay("hex", games=100, ospiel_params={"board_size": 5}, twl_params={"rows": 5, "cols": 5}))
    finished(replay("hex", games=50, ospiel_params={"num_rows": 4, "num_cols": 7},
                    twl_params={"rows": 4, "cols": 7}))


def test_dots_and_boxes():
    records = replay("dots_and_boxes")
    finished(records)
    assert max(max(same_player_runs(r)) for r in records) >= 3  # chained box completions


def test_dots_and_boxes_bigger_boards_and_margins():
    records = replay("dots_and_boxes", games=100, ospiel_params={"num_rows": 3, "num_cols": 4},
                     twl_params={"num_rows": 3, "num_cols": 4})
    finished(records)
    assert max(max(same_player_runs(r)) for r in records) >= 5
    records = replay("dots_and_boxes", games=100, ospiel_params={"num_rows": 3, "num_cols": 3, "utility_margin": True},
                     twl_params={"num_rows": 3, "num_cols": 3, "utility_margin": True})
    assert len({r["steps"][-1][2][0] for r in records}) >= 5  # margins, not just wins


def mancala_captures(rec: dict) -> int:
    """Moves that end in an empty pit of the mover's own, opposite a full pit, from the boards."""
    n = 0
    for k, a in enumerate(rec["actions"]):
        before = dict(tensor_set(rec["boards"][k]))
        after = dict(tensor_set(rec["boards"][k + 1]))
        p = 0 if a < 7 else 1
        home = 7 if p == 0 else 0
        sown = int(before.get(a, 0))
        n += after.get(home, 0) - before.get(home, 0) > (sown + 12) // 13  # more than sowing gives
    return n


def test_mancala():
    records = replay("mancala", boards=50)
    finished(records)
    assert any(r["steps"][-1][2] == [0.0, 0.0] for r in records)  # draws
    assert max(max(same_player_runs(r)) for r in records) >= 3  # extra turns, chained
    assert sum(mancala_captures(r) for r in records[:50]) > 20

 

def test_checkers():
    records = replay("checkers")
    finished(records)
    assert any(r["steps"][-1][2] == [0.0, 0.0] for r in records)  # draws by 40 quiet moves
    jumps = multi = forced = kings = 0
    for r in records:
        for k, a in enumerate(r["actions"]):
            player, legal = r["steps"][k][0], r["steps"][k][1]
            if a % 2 == 1:
                jumps += 1
                multi += r["steps"][k + 1][0] == player  # the same piece jumps again
            forced += all(x % 2 == 1 for x in legal)
        kings += any(i // 64 in (1, 3) for b in r.get("boards", []) for i in b)
    assert jumps > 100 and multi > 10 and forced > 100 and kings > 2, (jumps, multi, forced, kings)


def test_amazons():
    records = replay("amazons", games=100, boards=10)
    finished(records)
    assert all(len(r["actions"]) % 3 == 0 for r in records)  # whole turns: pick, move, shoot


def test_amazons_small_boards():
    for size in (6, 8):
        finished(replay("amazons", games=100, ospiel_params={"board_size": size}, twl_params={"size": size}))
