"""Every example checks clean, and its IR is stable (a snapshot per example).

Regenerate the snapshots after an intended IR change with
`TWISTERL_UPDATE_SNAPSHOTS=1 pytest tests/test_examples.py`.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from twisterl.dsl import check_file, ir
from twisterl.dsl.consteval import Evaluator, default_values

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = sorted(ROOT.joinpath("examples").glob("*.twl"))
SNAPSHOTS = Path(__file__).parent / "snapshots"
IDS = [p.stem for p in EXAMPLES]


def test_the_required_examples_exist():
    names = {p.stem for p in EXAMPLES}
    assert {"puzzle", "gridworld", "cartpole", "pendulum", "connect4", "tictactoe"} <= names


@pytest.mark.parametrize("path", EXAMPLES, ids=IDS)
def test_example_checks_clean(path: Path):
    result = check_file(path)
    assert result.diagnostics == [], [d.message for d in result.diagnostics]
    assert result.env is not None


@pytest.mark.parametrize("path", EXAMPLES, ids=IDS)
def test_example_ir_snapshot(path: Path):
    env = check_file(path).env
    data = ir.to_data(env)
    data["path"] = path.name  # independent of where the checkout lives
    text = json.dumps(data, indent=1, sort_keys=True) + "\n"
    snap = SNAPSHOTS / f"{path.stem}.json"
    if os.environ.get("TWISTERL_UPDATE_SNAPSHOTS"):
        SNAPSHOTS.mkdir(exist_ok=True)
        snap.write_text(text)
    assert snap.exists(), f"no IR snapshot for {path.name}; create it with TWISTERL_UPDATE_SNAPSHOTS=1"
    assert text == snap.read_text(), f"the IR of {path.name} changed; see the module docstring"


def test_ir_is_deterministic():
    first = [json.dumps(ir.to_data(check_file(p).env), sort_keys=True) for p in EXAMPLES]
    second = [json.dumps(ir.to_data(check_file(p).env), sort_keys=True) for p in EXAMPLES]
    assert first == second


def sizes(path: Path) -> dict:
    env = check_file(ROOT / "examples" / path).env
    ev = Evaluator(default_values(env))
    return {
        "actions": ev.eval(env.action_space.n),
        "obs": ev.eval(env.observation.size),
        "kind": env.observation.kind,
        "players": env.players,
    }


@pytest.mark.parametrize("name, expected", [
    ("puzzle.twl", {"actions": 4, "obs": 81, "kind": "sparse", "players": 1}),
    ("gridworld.twl", {"actions": 4, "obs": 100, "kind": "sparse", "players": 1}),
    ("cartpole.twl", {"actions": 2, "obs": 4, "kind": "dense", "players": 1}),
    ("pendulum.twl", {"actions": 1, "obs": 3, "kind": "dense", "players": 1}),
    ("connect4.twl", {"actions": 7, "obs": 126, "kind": "sparse", "players": 2}),
    ("tictactoe.twl", {"actions": 9, "obs": 27, "kind": "sparse", "players": 2}),
    ("maze.twl", {"actions": 4, "obs": 18, "kind": "sparse", "players": 1}),
])
def test_example_spaces(name, expected):
    assert sizes(Path(name)) == expected


def test_param_override_changes_sizes_without_rechecking():
    env = check_file(ROOT / "examples" / "puzzle.twl").env
    ev = Evaluator(default_values(env, {"size": 4}))
    assert ev.eval(env.observation.size) == 256
    env = check_file(ROOT / "examples" / "connect4.twl").env
    ev = Evaluator(default_values(env, {"rows": 5, "cols": 5}))
    assert ev.eval(env.action_space.n) == 5
    assert ev.eval(env.observation.size) == 75
