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
    legal = text[text.index("fn legal("):text.index("fn allowed(")]
    assert legal.count("self.fn_ones()") == 1 and "__memo" in legal  # computed once per mask
    assert "below0 > 0" in legal  # `a[i] == 1` tested once per i, only if some j exists
