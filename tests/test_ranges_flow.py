"""Ranges of fn parameters (from their call sites) and of mutable locals (a flow analysis
over assignments, branches and loops) in codegen/ranges.py and RustWriter.

Soundness first: what the analysis claims of a fn's results holds for every params the
env accepts (a property test over generated fns with counters, branches, loops and
breaks, against the reference evaluator). Then the checks it drops where a proof exists,
and keeps, with their `.twl` lines, where none does: a parameter one call site passes out
of range, a counter that can pass its array, a counter that can overflow, a test whose
local was assigned since."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from twisterl.codegen.emit import emit_rust
from twisterl.codegen.lower import lowered
from twisterl.codegen.ranges import Interval
from twisterl.dsl import check_source
from twisterl.dsl.consteval import EvalError, default_values

# ---------------------------------------------------------------- soundness


def _stmts(depth: int, in_loop: bool):
    small = st.integers(-3, 9).map(str)
    simple = st.one_of(
        small.map(lambda k: f"x += {k}"),
        small.map(lambda k: f"x -= {k}"),
        small.map(lambda k: f"y = x % {abs(int(k)) + 2}"),
        small.map(lambda k: f"x = y + {k}"),
        st.just("x = (x + 1) % 7"),
        st.just("x *= 2"),
        st.just("y += x"),
        st.just("x = max(x, y)"),
    )
    if in_loop:
        simple = simple | small.map(lambda k: f"if x > {k} {{ break }}") | small.map(
            lambda k: f"if y == {k} {{ continue }}")
    if depth == 0:
        return simple
    inner = st.lists(_stmts(depth - 1, in_loop), min_size=1, max_size=3).map("\n".join)
    loop_inner = st.lists(_stmts(depth - 1, True), min_size=1, max_size=3).map("\n".join)
    compound = st.one_of(
        st.tuples(small, inner, inner).map(lambda t: f"if x < {t[0]} {{\n{t[1]}\n}} else {{\n{t[2]}\n}}"),
        st.tuples(inner).map(lambda t: f"if x == y {{\n{t[0]}\n}}"),
        st.tuples(st.integers(0, 6), loop_inner).map(lambda t: f"repeat {t[0]} {{\n{t[1]}\n}}"),
        st.tuples(small, st.integers(0, 12), loop_inner).map(
            lambda t: f"while x < {t[0]} limit {t[1]} {{\n{t[2]}\n}}"),
        st.tuples(st.integers(0, 5), loop_inner).map(lambda t: f"for i in 0..{t[0]} {{\nx += i\n{t[1]}\n}}"),
    )
    return simple | compound


def _program(body: str) -> str:
    return (f"env T\nparam a: int in -7..12 = 3\n"
            f"fn f(p: int) -> int {{\nlet x = p\nlet y = 0\n{body}\nreturn x\n}}\n"
            f"const c = f(a)\nconst d = f(2 * a - 3)\n"
            "state s: int in 0..3\naction go { s = 1 }\nobserve onehot(s)\n")


@settings(max_examples=250, deadline=None)
@given(st.lists(_stmts(2, False), min_size=1, max_size=4).map("\n".join), st.integers(-7, 11))
def test_every_claimed_result_interval_holds(body, a):
    result = check_source(_program(body))
    if not result.ok:  # e.g. a loop past its limit, or an overflow, with the defaults
        return
    env = result.env
    _, facts = lowered(env, "t.twl")
    claimed = facts.returns.get("f")
    param = facts.params.get("f", [None])[0]
    try:
        values = default_values(env, {"a": a})
    except EvalError:  # f faults for this `a` (overflow, a loop past its limit)
        return
    for value, arg in ((values["c"], a), (values["d"], 2 * a - 3)):
        if claimed is not None:
            assert claimed.lo <= value <= claimed.hi, (body, a, value, claimed)
        if param is not None and param.values is not None:
            assert param.values.lo <= arg <= param.values.hi, (body, a, param)


def test_the_result_intervals_are_tight_where_the_flow_is_simple():
    cases = {
        "x = 0\nrepeat 5 { x += 2 }": Interval(0, 10),  # a counter: bounded by the trip count
        "x = 0\nwhile x < 7 limit 100 { x += 1 }": Interval(0, 7),  # the loop's test bounds it
        "x = 3\nrepeat 40 { x = (x + 1) % 7 }": Interval(0, 6),  # a fixed point after one run
        "x = 0\nif p > 4 { x = 9 } else { x = -2 }": Interval(-2, 9),
        "x = p % 4\nif x == 3 { x += 10 }": Interval(0, 13),
    }
    for body, expected in cases.items():
        result = check_source(_program(body))
        assert result.ok, [d.message for d in result.errors]
        _, facts = lowered(result.env, "t.twl")
        assert facts.returns["f"] == expected, (body, facts.returns["f"])
        assert facts.params["f"][0].values == Interval(-17, 19)  # f(a) and f(2 * a - 3)


# ---------------------------------------------------------------- what stays and what goes

GAME = """env Flow
param n: int in 2..9 = 4
const cells = 8
state a: [int in 0..5; n]
state b: [int in 0..5; cells]
state t: int in 0..100

fn get(i: int) -> int {
    let v = a[i]
    return v
}

fn outer(i: int) -> int {
    let w = get(i)
    return w
}

fn picky(i: int) -> int {
    let v = a[i]
    return v
}

fn counted(top: int) -> int {
    let k = 0
    while k < top limit 100 { k += 1 }
    return b[k]
}

action go(j in 0..n) {
    t = outer(j)
    t = picky(j)
    t = picky(j + 1)
}

action count {
    t = counted(7)
}

action overrun {
    t = counted(8)
}

action sow(pit in 0..cells) {
    let at = pit
    repeat b[pit] {
        at = (at + 1) % cells
        if at == 3 { at += 1 }
        b[at] = 1
    }
}

action grow {
    let big = 1
    repeat t { big += 4611686018427387904 }
    t = big % 100
}

action forget {
    let j = t
    if j < 8 {
        b[j] = 1
        j = t
        b[j] = 2
    }
}

action scan {
    let k = 0
    while b[k] == 0 limit 20 { k += 1 }
    t = k
}

action total { t = sum(b[i] for i in 0..cells) }
action heavy { t = sum(b[i] * 30 for i in 0..cells) }

action hide {
    let x = t
    if x < cells {
        b[x] = 1
        if t > 0 {
            let x = t
            b[x] = 2
        }
    }
}

observe onehot(a), onehot(b)
"""


def _rust(source: str) -> str:
    result = check_source(source)
    assert result.ok, [d.message for d in result.errors]
    return emit_rust(result.env, "flow.twl")


def _method(text: str, name: str) -> str:
    start = text.index(f"fn {name}(")
    return text[start:text.index("\n    }\n", start)]


def test_parameters_take_the_facts_of_every_call_site():
    text = _rust(GAME)
    # `j` is below `n` at the only call of `outer`, and so is `outer`'s `i` at `get`'s.
    assert "ops::ix" not in _method(text, "fn_get") and "ops::ix" not in _method(text, "fn_outer")
    # `get`'s result is an element of `a` (0..5): `t = outer(j)` needs no range check.
    assert "ops::range" not in _method(text, "do_go").split("picky")[0]
    # One call passes `j + 1`, which may be `n`: `picky` keeps its check, at its line.
    assert re.search(r"ops::ix\(i_, \(self\.consts\.n\) as usize, at\(19, ", _method(text, "fn_picky"))


def test_counters_are_bounded_by_their_loops():
    text = _rust(GAME)
    counted = _method(text, "fn_counted")
    # `counted` is called with 7 and 8, so `k` can reach 8 = cells: `b[k]` stays checked.
    assert re.search(r"ops::ix\(k_, 8, at\(26, ", counted), counted
    assert "ops::add" not in counted  # k <= 8: no overflow
    sow = _method(text, "do_sow")
    assert "ops::" not in sow.replace("ops::poll", ""), sow  # `at` stays in 0..8; the count in 0..5
    grow = _method(text, "do_grow")
    assert "ops::add(big_" in grow  # 99 steps of 2^62 overflow: checked


def test_an_assignment_forgets_what_a_test_said():
    forget = _method(_rust(GAME), "do_forget")
    first, second = forget.split("j_ = ")[0], forget.split("j_ = ")[-1]
    assert "ops::ix" not in first
    assert re.search(r"ops::ix\(j_, 8, at\(63, ", second), second


def test_a_loop_test_is_written_with_the_head_facts():
    """`b[k]` in a `while` test runs after `k += 1`: at the head, `k` is 0 to 20."""
    scan = _method(_rust(GAME), "do_scan")
    assert re.search(r"ops::ix\(k_, 8, at\(69, ", scan), scan
    assert "ops::range" not in scan  # t = k: k <= 20 < 100


def test_sums_of_known_lengths_need_no_overflow_checks():
    text = _rust(GAME)
    assert "ops::" not in _method(text, "do_total").replace("ops::poll", "")  # at most 8 * 4 = 32, within t's 0..100
    heavy = _method(text, "do_heavy")
    assert "ops::add" not in heavy and re.search(r"ops::range\(.*at\(74, ", heavy, re.S)  # up to 960


def test_a_new_local_of_a_tested_name_is_not_the_tested_one():
    hide = _method(_rust(GAME), "do_hide")
    outer, inner = hide.split("let x_")[1], hide.split("let x_")[2]
    assert "ops::ix" not in outer.split("// line 80")[0]  # b[x] after x < cells
    assert re.search(r"ops::ix\(x_, 8, at\(82, ", inner), inner  # a new x, from t: 0..100


def test_the_counter_alone_decides_the_check():
    """Counting only to 7 proves `b[k]`; counting to 8 does not."""
    text = _rust(GAME.replace("t = counted(8)", "t = counted(6)"))
    assert "ops::ix" not in _method(text, "fn_counted")


@pytest.fixture(scope="module")
def flow(build_cache, tmp_path_factory):
    import twisterl
    path = tmp_path_factory.mktemp("flow") / "flow.twl"
    path.write_text(GAME)
    return twisterl.compile(path)


def test_the_kept_checks_fault_where_the_rules_say(flow):
    import twisterl
    env = flow(n=3)
    names = env.action_names()
    env.reset(seed=0)
    env.step(names.index("go(1)"))  # picky(2) reads a[2]: fine
    env.step(names.index("count"))  # b[7]
    with pytest.raises(twisterl.EnvError, match=r"flow.twl:19:"):
        env.step(names.index("go(2)"))  # picky(3) with n = 3: out of bounds
    env.reset(seed=0)
    with pytest.raises(twisterl.EnvError, match=r"flow.twl:26:"):
        env.step(names.index("overrun"))  # b[8]
    env.reset(seed=0)
    env.step(names.index("grow"))  # t == 0: no step
    env.set_state({"t": 2, "a": [0, 0, 0], "b": [0] * 8})
    with pytest.raises(twisterl.EnvError, match=r"flow.twl:54:"):
        env.step(names.index("grow"))  # 1 + 2 * 2^62 overflows


def test_the_unchecked_code_computes_what_the_rules_say(flow):
    """`sow`, free of checks, matches a Python model of its loop."""
    env = flow(n=4)
    names = env.action_names()
    for pit in range(8):
        for stones in range(5):
            b = [(pit * 3 + k) % 5 for k in range(8)]
            b[pit] = stones
            env.reset(seed=0)
            env.set_state({"t": 0, "a": [0] * 4, "b": b})
            env.step(names.index(f"sow({pit})"))
            at = pit
            for _ in range(stones):
                at = (at + 1) % 8
                if at == 3:
                    at += 1
                b[at] = 1
            assert list(env.get_state(named=True)["b"]) == b
