"""The text-level rewrites of generated Rust (codegen/arith.py, codegen/tidy.py) keep the
meaning of what they rewrite: checked on random integer expressions, whose Rust and Python
readings agree (`+ - *`, comparisons, `and`-free tests, parentheses and tuples)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from twisterl.codegen.arith import minus, negate, plus, span, tail_value, times
from twisterl.codegen.tidy import drop_double_parens

ENV = {"a": 3, "b": -2, "c": 7}
atoms = st.sampled_from(["0", "1", "2", "-1", "a", "b", "c", "(a)", "(0)", "3i64"])


def _py(code: str) -> int:
    return eval(code.replace("i64", ""), {}, dict(ENV))  # noqa: S307 - test-made arithmetic only


def exprs():
    return st.recursive(atoms, lambda inner: st.one_of(
        st.tuples(inner, inner).map(lambda t: plus(*t)),
        st.tuples(inner, inner).map(lambda t: minus(*t)),
        st.tuples(inner, inner).map(lambda t: times(*t)),
        inner.map(lambda x: f"({x})"),
        inner.map(lambda x: f"(({x}))"),
    ), max_leaves=8)


def _reference(op, x: str, y: str) -> int:
    return {"plus": _py(x) + _py(y), "minus": _py(x) - _py(y), "times": _py(x) * _py(y)}[op]


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(["plus", "minus", "times"]), exprs(), exprs())
def test_folded_arithmetic_means_the_same(op, x, y):
    code = {"plus": plus, "minus": minus, "times": times}[op](x, y)
    assert _py(code) == _reference(op, x, y), (x, y, code)
    assert not code.endswith((" + 0", " - 0", " * 1")) and not code.startswith(("0 + ", "0 * ", "1 * "))


@settings(max_examples=300, deadline=None)
@given(exprs(), exprs(), st.sampled_from(["==", "!="]))
def test_negated_equalities_are_the_opposite_test(x, y, op):
    test = f"({x} {op} {y})"
    assert eval(negate(test).replace("!(", "not (").replace("i64", ""), {}, dict(ENV)) == (not _py(test))


@settings(max_examples=300, deadline=None)
@given(exprs(), exprs())
def test_dropping_double_parentheses_keeps_values_and_tuples(x, y):
    code = f"f((({x})), (({x}, {y})), (()))"
    tidy = drop_double_parens(code)
    call = lambda *args: args  # noqa: E731
    assert eval(tidy.replace("i64", ""), {"f": call}, dict(ENV)) == eval(code.replace("i64", ""), {"f": call}, dict(ENV))
    assert tidy.count("(") < code.count("(") and "(())" in tidy  # the grouping went; the unit stayed


def test_literal_spans_and_tail_values():
    assert span("0", "6i64") == "6" and span("3", "1") == "0" and span("lo", "hi") == "(hi - lo).max(0) as usize"
    assert tail_value("Ok(self.fn_x(a, b)?)") == "self.fn_x(a, b)"
    assert tail_value("Ok(x(1)? + y(2)?)") == "Ok(x(1)? + y(2)?)"  # two calls: not one value
    assert tail_value("Ok(self.rng.draw(2).ok_or(e)?)") == "self.rng.draw(2).ok_or(e)"  # a method chain
    assert tail_value("Ok(-f(x)?)") == "Ok(-f(x)?)" and tail_value("Ok((a + b)?)") == "Ok((a + b)?)"
    assert negate("!(x)") == "(x)" and negate("(a < b)") == "!((a < b))"  # ordering keeps its `!` (NaN)
