"""Random playouts draw by rejection through the generated `draw_allowed`, which meets the
families' structure: the index-free prefix of a guard once, unswitched `if`s, memoised
calls, and for several families a prefix kept per family. Whatever the path, the first
action of a playout is uniform over the legal ids and never an illegal one.

Each env records the action it took in `chosen` and observes it, so one random step in
each of many envs is a sample of the draw."""

from __future__ import annotations

import textwrap

import numpy as np
import pytest

import twisterl

MARKS = "[[1, 0, 1, 1, 0, 1], [0, 1, 1, 0, 1, 0], [1, 1, 0, 1, 1, 0], [0, 0, 1, 1, 0, 1], " \
        "[1, 0, 0, 1, 1, 1], [0, 1, 0, 0, 1, 0]]"

# One family: `m != 2` reads no index (tested once; with m = 2 nothing is legal), the `if`
# is unswitched, `marked` loops (so playouts draw by rejection first) and `bias()` reads
# no index (memoised over the draws).
ONE = f"""\
env OneFamily
param n: int in 1..7 = 5
param mode: int in 0..3 = 0
const marks = {MARKS}
state m: int in 0..3
state chosen: int in 0..64
fn marked(r: int, c: int) -> bool {{ return any(marks[r][k] == 1 for k in 0..n where k == c) }}
fn bias() -> int {{ return count(marks[k][k] == 1 for k in 0..n) + m }}
action cell(r in 0..n, c in 0..n) when chosen == 0 and m != 2 and bias() >= 0
    and (if m == 0 then marked(r, c) else marked(c, r) and r % 2 == 0) {{
    chosen = r * n + c + 1
}}
reset {{ m = mode; chosen = 0 }}
observe onehot(chosen)
"""

# Several families: an index-free action, a family with no guard that params leave
# empty or not, and families whose prefixes differ by mode.
MANY = f"""\
env ManyFamilies
param n: int in 1..7 = 5
param mode: int in 0..3 = 0
param free: int in 0..3 = 1
const marks = {MARKS}
state m: int in 0..3
state chosen: int in 0..64
fn marked(r: int, c: int) -> bool {{ return any(marks[r][k] == 1 for k in 0..n where k == c) }}
action cell(r in 0..n, c in 0..n) when chosen == 0 and m != 1 and marked(r, c) {{ chosen = r * n + c + 1 }}
action pass when chosen == 0 and m == 1 {{ chosen = 37 }}
action any_of(k in 0..free) {{ chosen = 38 + k }}
action diag(k in 0..n) when chosen == 0 and m != 0 and marks[k][k] == 1 {{ chosen = 41 + k }}
reset {{ m = mode; chosen = 0 }}
observe onehot(chosen)
"""

# Three indices (a param range, a literal one that starts at 1, one of params plus one),
# three index-free `if`s (one on a view, so not unswitched but memoised; the others nest).
NESTED = """\
env Nested
param n: int in 1..5 = 3
param mode: int in 0..8 = 0
state m: int in 0..8
state chosen: int in 0..80
let low = m % 2 == 0
fn hit(a: int, b: int, k: int) -> bool { return any(j == (a + b + k) % 3 for j in 0..n) }
action put(a in 0..n, b in 1..4, k in 0..n + 1) when chosen == 0 and hit(a, b, k)
    and (if low then a <= b else a >= b - 1)
    and (if m / 2 % 2 == 0 then k != 1 else k != 0)
    and (if m / 4 == 0 then (a + k) % 2 == 0 else true) {
    chosen = 1 + (a * 3 + b - 1) * 6 + k
}
reset { m = mode; chosen = 0 }
observe onehot(chosen)
"""


def _sample(cls, params: dict, envs: int = 3000) -> tuple[list[int], np.ndarray]:
    """The legal ids at reset, and the action each of `envs` envs took in one random step."""
    probe = cls(**params)
    _, info = probe.reset(seed=0)
    legal = np.flatnonzero(info["action_mask"]).tolist()
    vec = cls.vector(envs, seed=7, **params)
    vec.reset()
    vec.random_steps(1, seed=11)
    obs = vec.observe()
    chosen = obs.argmax(axis=1)  # 0: no action was legal
    return legal, chosen


def _labels(cls, params: dict, legal: list[int]) -> dict[int, int]:
    """The `chosen` value of each legal id: step it in a fresh env and observe."""
    out = {}
    for a in legal:
        env = cls(**params)
        env.reset(seed=0)
        obs, *_ = env.step(a)
        out[int(np.argmax(obs))] = a
    return out


def _assert_uniform(legal: list[int], chosen: np.ndarray, labels: dict[int, int]) -> None:
    if not legal:
        assert (chosen == 0).all()
        return
    taken = [labels.get(int(c)) for c in chosen]
    assert None not in taken, "a playout took an action the mask forbids"
    counts = np.array([taken.count(a) for a in legal])
    p = 1 / len(legal)
    sigma = np.sqrt(len(chosen) * p * (1 - p))
    assert np.all(np.abs(counts - len(chosen) * p) < 5 * sigma + 1), (legal, counts.tolist())


@pytest.mark.parametrize("n", [1, 3, 6])
@pytest.mark.parametrize("mode", [0, 1, 2])
def test_one_family_draws_are_uniform_over_the_legal_ids(tmp_path, n, mode):
    path = tmp_path / "one_family.twl"
    path.write_text(ONE)
    cls = twisterl.compile(str(path))
    params = {"n": n, "mode": mode}
    legal, chosen = _sample(cls, params)
    assert (mode == 2) == (not legal)
    _assert_uniform(legal, chosen, _labels(cls, params, legal))


@pytest.mark.parametrize("mode, free", [(0, 0), (1, 0), (2, 0), (2, 2), (1, 1)])
@pytest.mark.parametrize("n", [1, 4])
def test_draws_over_several_families_are_uniform_over_the_legal_ids(tmp_path, mode, free, n):
    path = tmp_path / "many_families.twl"
    path.write_text(MANY)
    cls = twisterl.compile(str(path))
    params = {"n": n, "mode": mode, "free": free}
    legal, chosen = _sample(cls, params)
    assert legal
    _assert_uniform(legal, chosen, _labels(cls, params, legal))


@pytest.mark.parametrize("mode", range(8))
@pytest.mark.parametrize("n", [1, 4])
def test_draws_over_three_indices_and_nested_ifs_are_uniform(tmp_path, mode, n):
    path = tmp_path / "nested.twl"
    path.write_text(NESTED)
    cls = twisterl.compile(str(path))
    params = {"n": n, "mode": mode}
    legal, chosen = _sample(cls, params)
    _assert_uniform(legal, chosen, _labels(cls, params, legal))


def test_generated_draws_test_the_index_free_prefix_once():
    """In the code: the one family's prefix wraps the draw loop, each branch of the `if`
    has a loop of its own, and `bias()` is memoised; with several families, each prefix
    is kept in an `Option` the first draw into the family fills."""
    from twisterl.codegen.emit import emit_rust
    from twisterl.dsl import check_source

    def draw_code(source: str) -> str:
        result = check_source(source)
        assert result.ok, [d.message for d in result.errors]
        text = emit_rust(result.env, "draws.twl")
        return text[text.index("fn draw_allowed("):text.index("fn apply(")]

    one = draw_code(ONE)
    assert one.count("for _ in 0..draws") == 2 and one.count("self.state.m != 2") == 2
    assert "__memo" in one and one.count("fn_bias()") == 2  # once per branch, memoised
    many = draw_code(MANY)
    assert many.count("for _ in 0..draws") == 1 and many.count("__outer") >= 6
