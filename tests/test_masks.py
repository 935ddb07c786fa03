"""Masks computed along a family's structure (codegen/masks.py) mean what the per-id guard
means: the same legal ids as a Python model of the guard on random states, the same
faults (none where no id would evaluate the guard, the guard's own line where one
would), conjuncts never tested before those to their left, and memoised calls."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

GAME = """env Grid
param n: int in 1..6 = 3
param m: int in 0..5 = 2
state a: [int in 0..3; n]
state t: int in 0..4
fn ones() -> int { return count(a[k] == 1 for k in 0..n) }
action pick(i in 0..n, j in 0..m) when j <= t and a[i] == 1 and ones() >= 1 { a[i] = 2 }
action order(i in 0..n, j in 0..m) when j == t and a[i] == 0 { t = 0 }
action deep(i in 0..n, j in 0..m) when a[(i + 3 * m) % (n + 3)] == 0 and j == 0 { t = 1 }
action noop { t = 0 }
observe onehot(a), onehot(t)
"""


def model(a: list[int], t: int, n: int, m: int) -> list[bool]:
    """The guards of GAME, id by id (row-major, the last index fastest)."""
    ones = sum(x == 1 for x in a)
    pick = [j <= t and a[i] == 1 and ones >= 1 for i, j in itertools.product(range(n), range(m))]
    order = [j == t and a[i] == 0 for i, j in itertools.product(range(n), range(m))]
    deep = [a[(i + 3 * m) % (n + 3)] == 0 and j == 0 for i, j in itertools.product(range(n), range(m))]
    return pick + order + deep + [True]


@pytest.fixture(scope="module")
def grid(build_cache, tmp_path_factory):
    import twisterl
    path = tmp_path_factory.mktemp("masks") / "grid.twl"
    path.write_text(GAME)
    return twisterl.compile(path)


# Sizes where `deep`'s index (i + 3m) mod (n + 3) stays on the board.
@pytest.mark.parametrize("n, m", [(3, 2), (3, 4), (1, 4)])
def test_masks_equal_the_guards_on_random_states(grid, n, m):
    env = grid(n=n, m=m)
    env.reset(seed=0)
    rng = np.random.default_rng(n * 10 + m)
    for _ in range(60):
        a = [int(x) for x in rng.integers(0, 3, n)]
        t = int(rng.integers(0, 4))
        env.set_state({"a": a, "t": t})
        assert list(map(bool, env.action_mask())) == model(a, t, n, m), (a, t)


def test_no_fault_where_no_id_evaluates_the_guard(grid):
    """With m = 0 the families are empty: the conjunct that would read past the board is
    never evaluated, hoisted or not."""
    env = grid(n=3, m=0)
    _, info = env.reset(seed=0)
    assert list(info["action_mask"]) == [True]


def test_a_reachable_fault_keeps_the_guards_line(grid):
    import twisterl
    env = grid(n=2, m=1)  # (i + 3) mod 5 reaches 3 and 4, past a board of 2
    with pytest.raises(twisterl.EnvError, match=r"grid.twl:9:"):
        env.reset(seed=0)


def test_the_mask_code_hoists_and_memoises():
    from twisterl.codegen.emit import emit_rust
    from twisterl.dsl import check_source
    result = check_source(GAME)
    assert result.ok, [d.message for d in result.errors]
    text = emit_rust(result.env, "grid.twl")
    # The mask, and the list of legal ids made in the same walk.
    for legal in (text[text.index("fn legal("):text.index("fn legal_ids(")],
                  text[text.index("fn legal_ids("):text.index("fn allowed(")]):
        assert legal.count("self.fn_ones()") == 1 and "__memo" in legal  # computed once per mask
        assert "below0 > 0" in legal  # `a[i] == 1` tested once per i, only if some j exists


# Each family exercises one rewrite: `step` an index-free `if` (unswitched: its own loops
# per branch), `ray` a fn with `let`s (opened into the guard, `from / n` hoisted), `twice`
# a call on an aggregate's own loop variable (never memoised as if it read no local), and
# `table` a literal const table indexed by the family's index.
REWRITES = """env Rewrites
param n: int in 2..7 = 4
const w = 3
const dr = [1, 0, -1, 0]
state a: [int in 0..3; n]
state phase: int in 0..3
state from: int in 0..n * w
fn hit(j: int) -> bool {
    let k = 0
    for q in 0..1 { if a[j] == 1 { k += 1 } }
    return k > 0
}
fn ray(s: int, r: int, c: int) -> bool {
    let dr0 = r - s / w
    let dc0 = c - s % w
    return (dr0 != 0 or dc0 != 0) and (dr0 == 0 or dc0 == 0)
}
action step(i in 0..n) when if phase == 0 then a[i] == 1 else a[i] == 2 and phase == 1 { phase = 0 }
action cell(r in 0..n, c in 0..w) when phase != 2 and ray(from, r, c) { phase = 2 }
action twice(i in 0..2) when count(hit(j) for j in 0..n) >= 2 + i { phase = 0 }
action table(d in 0..4) when 0 <= d + dr[d] < n and a[d + dr[d]] == 0 { phase = 1 }
observe onehot(a), onehot(phase)
"""


def rewrites_model(a: list[int], phase: int, frm: int, n: int) -> list[bool]:
    step = [a[i] == 1 if phase == 0 else (a[i] == 2 and phase == 1) for i in range(n)]
    cell = []
    for r, c in itertools.product(range(n), range(3)):
        d0, d1 = r - frm // 3, c - frm % 3
        cell.append(phase != 2 and (d0 != 0 or d1 != 0) and (d0 == 0 or d1 == 0))
    hits = sum(x == 1 for x in a)
    twice = [hits >= 2 + i for i in range(2)]
    dr = [1, 0, -1, 0]
    table = [0 <= d + dr[d] < n and a[d + dr[d]] == 0 for d in range(4)]
    return step + cell + twice + table


@pytest.mark.parametrize("n", [4, 6])
def test_unswitched_opened_and_table_masks_equal_the_guards(build_cache, tmp_path, n):
    import twisterl
    path = tmp_path / "rewrites.twl"
    path.write_text(REWRITES)
    env = twisterl.compile(path)(n=n)
    env.reset(seed=0)
    rng = np.random.default_rng(n)
    for _ in range(80):
        a = [int(x) for x in rng.integers(0, 3, n)]
        phase, frm = int(rng.integers(0, 3)), int(rng.integers(0, n * 3))
        env.set_state({"a": a, "phase": phase, "from": frm})
        assert list(map(bool, env.action_mask())) == rewrites_model(a, phase, frm, n), (a, phase, frm)


def test_the_rewrites_show_in_the_mask_code():
    from twisterl.codegen.emit import emit_rust
    from twisterl.dsl import check_source
    result = check_source(REWRITES)
    assert result.ok, [d.message for d in result.errors]
    text = emit_rust(result.env, "rewrites.twl")
    legal = text[text.index("fn legal("):text.index("fn legal_ids(")]
    assert legal.startswith("fn legal(") and "if (self.state.phase == 0) {" in legal  # unswitched
    # opened, with `w` a literal and `from / w` computed once before the loops
    assert "self.fn_ray(" not in legal and "let __inv1: i64 = (self.state.from / 3i64);" in legal
    assert legal.count("self.fn_hit(j_)") == 1 and "__memo" not in legal  # per member, not memoised
    assert "(&[1i64, 0i64, -1i64, 0i64])" in legal and "self.consts.dr" not in legal
