"""The range analysis that drops checks from the generated Rust (codegen/ranges.py).

Soundness first: every interval it claims holds for every params the env accepts (a
property test against the reference evaluator), and a check it cannot prove stays, with
its `.twl` line, in a compiled env. Then the checks it must drop: indices that run over
an array's own dimension, arithmetic on bounded values."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from twisterl.codegen.emit import emit_rust
from twisterl.codegen.ranges import Interval, Ranges
from twisterl.dsl import check_source
from twisterl.dsl.consteval import EvalError, Evaluator, default_values

HEADER = "env T\nparam a: int in -7..12 = 3\nparam b: int in 1..5 = 2\nparam big: int in 0..4611686018427387904 = 9\n"
FOOTER = "state x: int in 0..3\naction go { x = 1 }\nobserve onehot(x)\n"


def _env(body: str):
    result = check_source(HEADER + body + FOOTER)
    assert result.ok, [d.message for d in result.errors]
    return result.env


# ---------------------------------------------------------------- soundness


def _exprs():
    leaves = st.sampled_from(["a", "b", "big", "0", "1", "-3", "17", "2"])

    def extend(inner):
        binary = st.tuples(inner, st.sampled_from(["+", "-", "*", "%", "/"]), inner).map(lambda t: f"({t[0]} {t[1]} {t[2]})")
        calls = st.tuples(st.sampled_from(["min", "max"]), inner, inner).map(lambda t: f"{t[0]}({t[1]}, {t[2]})")
        cond = st.tuples(inner, inner, inner).map(lambda t: f"(if {t[0]} > {t[1]} then {t[1]} else {t[2]})")
        neg = inner.map(lambda e: f"(-{e})")
        return binary | calls | cond | neg

    return st.recursive(leaves, extend, max_leaves=8)


@settings(max_examples=300, deadline=None)
@given(_exprs(), st.integers(-7, 11), st.integers(1, 4), st.sampled_from([0, 1, 5, 2**62 - 1, 2**61]))
def test_every_claimed_interval_holds(expr, a, b, big):
    result = check_source(HEADER + f"const c = {expr}\n" + FOOTER)
    if not result.ok:  # e.g. a constant that overflows at the defaults, or `% 0`
        return
    env = result.env
    const = next(c for c in env.consts if c.name == "c")
    claimed = Ranges(env).interval(const.value)
    if claimed is None:
        return
    try:
        values = default_values(env, {"a": a, "b": b, "big": big})
        value = Evaluator(values, {}).eval(const.value)
    except EvalError:  # the expression faults for these params (overflow, modulo by 0)
        return
    assert claimed.lo <= value <= claimed.hi, (expr, a, b, big, value, claimed)


def test_intervals_of_params_consts_and_state():
    env = _env("const n = a * b + 1\nstate y: int in 0..a + 20\n")
    r = Ranges(env)
    ref = {c.name: c.value for c in env.consts}
    assert r.interval(ref["n"]) == Interval(-7 * 4 + 1, 11 * 4 + 1)
    y = next(s for s in env.state if s.name == "y")
    assert r._declared(y.type) == Interval(0, 30)
    assert r._declared(next(p for p in env.params if p.name == "big").type) == Interval(0, 2**62 - 1)


# ---------------------------------------------------------------- what stays and what goes

GAME = """env Board
param rows: int in 2..9 = 4
param cols: int in 2..9 = 5
state grid: [[int in 0..3; cols]; rows]
state count: int in 0..10
state total: int in 0..1000
action put(r in 0..rows, c in 0..cols) when grid[r][c] == 0 {
    grid[r][c] = player + 1
    let top = max(k in 0..rows where grid[k][c] != 0)
    grid[top][c] = 2
}
action shifted(r in 0..rows + 1) { grid[r][0] = 1 }
action bump { count += 4 }
action walk(s in 0..3) {
    let k = 0
    while k < s limit 5 { k += 1 }
    grid[k][0] = 1
    total = total + rows * cols
}
observe onehot(grid)
"""


def _rust(source: str) -> str:
    result = check_source(source)
    assert result.ok, [d.message for d in result.errors]
    return emit_rust(result.env, "board.twl")


def _method(text: str, name: str) -> str:
    start = text.index(f"fn {name}(")
    return text[start:text.index("\n    }\n", start)]


def test_indices_over_their_own_dimension_are_not_checked():
    put = _method(_rust(GAME), "do_put")
    guard = _method(_rust(GAME), "guard_put")
    assert "ops::ix" not in guard and "ops::ix" not in put
    assert "ops::range" not in put  # player + 1 is within 0..3
    assert "ops::add" not in put


def test_checks_that_cannot_be_proven_stay_with_their_lines():
    text = _rust(GAME)
    shifted = _method(text, "do_shifted")
    assert re.search(r"ops::ix\(r_, \(self\.consts\.rows\) as usize, at\(12, ", shifted), shifted  # r may be rows
    bump = _method(text, "do_bump")
    assert "ops::range(" in bump and "at(13, " in bump  # count + 4 may pass 10
    walk = _method(text, "do_walk")
    assert "ops::ix(k_" in walk  # a mutable local: nothing is assumed
    assert "ops::range(" in walk  # total + rows * cols may pass 1000


@pytest.fixture(scope="module")
def board(build_cache, tmp_path_factory):
    import twisterl
    path = tmp_path_factory.mktemp("ranges") / "board.twl"
    path.write_text(GAME)
    return twisterl.compile(path)


def test_the_kept_checks_still_fault_at_run_time(board):
    import twisterl
    env = board(rows=3, cols=4)
    env.reset(seed=0)
    names = env.action_names()
    with pytest.raises(twisterl.EnvError, match=r"board.twl:12:41: index 3 is out of bounds"):
        env.step(names.index("shifted(3)"))  # r == rows: out of range
    env.reset(seed=0)
    env.step(names.index("bump"))
    env.step(names.index("bump"))
    with pytest.raises(twisterl.EnvError, match=r"board.twl:13:"):
        env.step(names.index("bump"))  # 12 is outside 0..10


def test_the_unchecked_code_computes_what_the_rules_say(board):
    """Random play, where the proven-safe checks are gone, matches a Python model of the
    rules step by step."""
    import numpy as np
    env = board(rows=3, cols=4)
    rng = np.random.default_rng(0)
    names = env.action_names()
    puts = {a: tuple(map(int, re.findall(r"\d+", n))) for a, n in enumerate(names) if n.startswith("put")}
    steps = 0
    for episode in range(20):
        _, info = env.reset(seed=episode)
        grid = np.zeros((3, 4), int)
        for _ in range(8):
            legal = [a for a in np.flatnonzero(info["action_mask"]) if a in puts]
            assert sorted(legal) == sorted(a for a, (r, c) in puts.items() if grid[r][c] == 0)
            if not legal:
                break
            a = int(rng.choice(legal))
            r, c = puts[a]
            _, _, _, _, info = env.step(a)
            grid[r][c] = 1  # player + 1, one player
            top = max(k for k in range(3) if grid[k][c] != 0)
            grid[top][c] = 2
            assert np.array_equal(env.get_state(named=True)["grid"].reshape(3, 4), grid)
            steps += 1
    assert steps > 50
