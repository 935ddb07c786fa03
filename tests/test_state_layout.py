"""State arrays of rows sized by params live in one row-major buffer (`Grid` in the
generated Rust). Every way the language uses such an array is exercised here against a
Python model: element reads and writes, a whole-grid assignment, a row assignment, rows
passed to fns and iterated, `shuffle` of the rows, bools, negative ranges, `get_state` /
`set_state` (with its range check) and the default picture; a kept check still faults at
its `.twl` line."""

from __future__ import annotations

import random

import pytest

from twisterl.codegen.emit import emit_rust
from twisterl.dsl import check_source

SOURCE = """env Layout
param rows: int in 1..6 = 3
param cols: int in 1..6 = 4
players 1
state g: [[int in -300..300; cols]; rows]
state flags: [[bool; cols]; rows]
state last: int in -10000..10000

fn row_sum(row: [int in -300..300; cols]) -> int {
    return sum(row[c] for c in 0..cols)
}

fn all_sum(b: [[int in -300..300; cols]; rows]) -> int {
    return sum(b[r][c] for r in 0..rows for c in 0..cols)
}

action put(r in 0..rows, c in 0..cols, v in -3..4) {
    g[r][c] = v * 50
    flags[r][c] = not flags[r][c]
}
action fill(v in -2..3) {
    let t = [[v; cols]; rows]
    g = t
}
action ramp(r in 0..rows) {
    g[r] = [c * 2 - 3 for c in 0..cols]
}
action copy_first(r in 0..rows) {
    g[r] = g[0]
}
action bump(r in 0..rows, c in 0..cols) {
    g[r][c] += 170
}
action sums {
    let total = 0
    for row in g { total += row_sum(row) }
    last = total - all_sum(g) + row_sum(g[0])
}
action mix { shuffle(g) }

done false
reward 0.0
observe g
"""


def test_param_sized_rows_are_one_grid_in_the_generated_rust():
    result = check_source(SOURCE, "layout.twl")
    assert result.ok, result.errors
    rust = emit_rust(result.env)
    assert "pub g: Grid<i64>," in rust
    assert "pub flags: Grid<bool>," in rust
    assert "Grid::filled(0, consts.cols, consts.rows, at(5, 1))?" in rust
    assert ".assign_rows(" in rust and "grid::copy_row(" in rust


@pytest.fixture(scope="module")
def layout(build_cache, tmp_path_factory):
    import twisterl
    path = tmp_path_factory.mktemp("layout") / "layout.twl"
    path.write_text(SOURCE)
    return twisterl.compile(path)


class Model:
    def __init__(self, rows, cols):
        self.rows, self.cols = rows, cols
        self.g = [[0] * cols for _ in range(rows)]
        self.flags = [[False] * cols for _ in range(rows)]
        self.last = 0

    def state(self):
        flat = [x for row in self.g for x in row] + [int(x) for row in self.flags for x in row]
        return flat + [self.last]


@pytest.mark.parametrize("rows,cols", [(3, 4), (1, 5), (5, 1), (4, 4)])
def test_every_use_of_a_grid_matches_a_model(layout, rows, cols):
    env = layout(rows=rows, cols=cols)
    names = env.action_names()
    env.reset(seed=0)
    m = Model(rows, cols)
    rng = random.Random(rows * 10 + cols)
    for _ in range(200):
        kind = rng.choice(["put", "fill", "ramp", "copy_first", "bump", "sums"])
        if kind == "put":
            r, c, v = rng.randrange(rows), rng.randrange(cols), rng.randrange(-3, 4)
            name = f"put({r}, {c}, {v})"
            m.g[r][c] = v * 50
            m.flags[r][c] = not m.flags[r][c]
        elif kind == "fill":
            v = rng.randrange(-2, 3)
            name = f"fill({v})"
            m.g = [[v] * cols for _ in range(rows)]
        elif kind == "ramp":
            r = rng.randrange(rows)
            name = f"ramp({r})"
            m.g[r] = [c * 2 - 3 for c in range(cols)]
        elif kind == "copy_first":
            r = rng.randrange(rows)
            name = f"copy_first({r})"
            m.g[r] = list(m.g[0])
        elif kind == "bump":
            r, c = rng.randrange(rows), rng.randrange(cols)
            if m.g[r][c] + 170 >= 300:
                continue
            name = f"bump({r}, {c})"
            m.g[r][c] += 170
        else:
            name = "sums"
            total = sum(map(sum, m.g))
            m.last = total - total + sum(m.g[0])
        env.step(names.index(name))
        state = env.get_state()
        assert list(state[:-2]) == m.state(), name
    assert f"g = {m.g}" in env.render()


def test_shuffle_permutes_the_rows(layout):
    env = layout(rows=5, cols=3)
    names = env.action_names()
    env.reset(seed=3)
    for r in range(5):
        env.step(names.index(f"put({r}, 0, {r - 2})"))
        env.step(names.index(f"put({r}, 2, 1)"))
    before = env.get_state()[:15]
    rows_before = sorted(tuple(before[i * 3:i * 3 + 3]) for i in range(5))
    for _ in range(6):
        env.step(names.index("mix"))
    after = env.get_state()[:15]
    assert sorted(tuple(after[i * 3:i * 3 + 3]) for i in range(5)) == rows_before


def test_set_state_checks_grid_elements_and_overflow_faults_at_its_line(layout):
    import twisterl
    env = layout(rows=2, cols=2)
    names = env.action_names()
    env.reset(seed=0)
    good = {"g": [[-299, 299], [0, 5]], "flags": [[True, False], [False, True]], "last": -7}
    env.set_state(good)
    assert list(env.get_state()[:9]) == [-299, 299, 0, 5, 1, 0, 0, 1, -7]
    with pytest.raises(Exception, match="300"):
        env.set_state({**good, "g": [[300, 0], [0, 0]]})
    with pytest.raises(Exception, match="-301"):
        env.set_state({**good, "g": [[0, 0], [-301, 0]]})
    env.set_state(good)
    env.step(names.index("bump(1, 1)"))        # 5 + 170 = 175: fine
    with pytest.raises(twisterl.EnvError, match=r"layout.twl:32:"):
        env.step(names.index("bump(1, 1)"))    # 345: outside -300..300


RESETS = """env Resets
state a: int in 0..10 = 4
state b: int in 0..10 = 7
state c: [int in 0..10; 3]
state d: int in 0..10 = 5
action bump { a = min(9, a + 1)
    b = 0
    c[0] = 9
    d = 1 }
reset {
    c = [1, 2, 3]
    a = c[1] + 1
    b = min(9, b + 1)
    d = 2
}
done false
reward 0.0
observe onehot(c)
"""


def test_reset_skips_only_the_initialisers_it_overwrites_first(tmp_path, build_cache):
    """`c` and `a` are set by `reset` before anything reads them, so their initialisers are
    not run; `b`'s is, because `reset` reads `b`; and so is `d`'s, which comes after."""
    import twisterl

    result = check_source(RESETS, "resets.twl")
    assert result.ok, result.errors
    rust = emit_rust(result.env)
    assert "line 4: c, set first by `reset`" in rust and "line 2: a, set first by `reset`" in rust
    assert "line 3: b, set first" not in rust and "line 5: d, set first" not in rust
    path = tmp_path / "resets.twl"
    path.write_text(RESETS)
    env = twisterl.compile(path)()
    for _ in range(3):
        env.reset(seed=0)
        assert {k: list(v) if hasattr(v, "__len__") else v for k, v in env.get_state(named=True).items()
                if k in "abcd"} == {"a": 3, "b": 8, "c": [1, 2, 3], "d": 2}
        env.step(0)
