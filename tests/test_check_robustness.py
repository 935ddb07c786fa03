"""The checker's answers to inputs at its limits: names in every role, long chains of
definitions, constants computed at check time (loops, arrays, failures, the step budget),
and the CLI's summary and closed pipes. Each problem is a located diagnostic, never an
internal error."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
import time
from pathlib import Path

import pytest

from twisterl.cli.check import describe_env as _describe_env
from twisterl.dsl import check_source, ir
from twisterl.dsl.consteval import default_values
from twisterl.dsl.scope import BUILTIN_VALUES, RESERVED

ROOT = Path(__file__).resolve().parents[1]
HEADER = "env T\nstate x: int in 0..3\naction a { x = 1 }\nobserve onehot(x)\n"

ROLES = {
    "fn": "fn {n}() {{ }}",
    "fn parameter": "fn f({n}: int) -> int {{ return {n} }}",
    "param": "param {n} = 1",
    "const": "const {n} = 1",
    "state": "state {n}: int in 0..3",
    "view": "let {n} = x",
    "enum": "enum {n} {{ P, Q }}",
    "variant": "enum E {{ {n}, Q }}",
    "action": "action {n} {{ }}",
    "action index": "action b({n} in 0..2) {{ x = 1 }}",
    "local": "fn f() -> int {{\n    let {n} = 1\n    return {n}\n}}",
    "loop variable": "fn f() -> int {{\n    let s = 0\n    for {n} in 0..3 {{ s += {n} }}\n    return s\n}}",
    "comprehension": "const c = sum({n} for {n} in 0..3)",
    "reward player": "players 2\nreward[{n}] 1.0",
    "symmetry variable": "state g: [int in 0..2; 3]\nsymmetry m {{ g[{n}] -> g[2 - {n}] }}",
}
NAMES = ["for", "if", "state", "limit", "grid", "player", "pi", "steps", "onehot", "max", "sum", "len",
         "next_player", "shuffle", "self", "Self", "match", "loop", "crate", "__x"]
BUILTIN_FUNCTIONS = {"onehot", "max", "sum", "len", "next_player", "shuffle"}


@pytest.mark.parametrize("role", ROLES)
def test_any_name_in_any_role_is_refused_or_accepted_cleanly(role):
    for name in NAMES:
        result = check_source(HEADER + ROLES[role].format(n=name) + "\n")
        refused = name in RESERVED or name in BUILTIN_VALUES or name.startswith("__") \
            or (role == "fn" and name in BUILTIN_FUNCTIONS)
        if refused:
            assert not result.ok, (role, name)
        if result.ok:
            _describe_env(result.env)
        for d in result.errors:
            assert d.span.line >= 5 or d.message.startswith("I did not expect"), (role, name, d)


def test_values_named_like_built_in_statements_do_not_hide_them():
    result = check_source("env T\nplayers 2\nstate next_player: int in 0..3\nstate shuffle: [int; 3]\n"
                          "action a { next_player()\n shuffle(shuffle)\n next_player = 1 }\n"
                          "observe onehot(next_player)\n")
    assert result.ok, [d.message for d in result.errors]
    body = result.env.actions[0].body
    assert isinstance(body[0], ir.NextPlayer) and isinstance(body[1], ir.Shuffle)


def test_a_variant_in_two_enums_is_ambiguous_bare_and_fine_qualified():
    text = HEADER + "enum A { RED, GREEN }\nenum B { RED, BLUE }\n"
    bad = check_source(text + "state c: A = RED\n")
    (error,) = bad.errors
    assert "`RED` is a variant of several enums: `A`, `B`" in error.message
    assert [n for n, _ in error.notes] == ["a variant of `A`", "a variant of `B`"]
    assert check_source(text + "state c: A = A.RED\nstate d: B = B.RED\n").ok


@pytest.mark.parametrize("kind", ["const", "view"])
def test_long_chains_of_definitions_check(kind):
    n = 3000
    word = "const" if kind == "const" else "let"
    last = "1" if kind == "const" else "x"
    chain = "".join(f"{word} c{i} = c{i + 1} + 1\n" for i in range(n)) + f"{word} c{n} = {last}\n"
    result = check_source(HEADER + chain)
    assert result.ok, [d.message for d in result.errors][:3]
    if kind == "const":
        assert default_values(result.env)["c0"] == n + 1


def test_a_long_cycle_of_definitions_is_an_error():
    n = 3000
    result = check_source(HEADER + "".join(f"const c{i} = c{(i + 1) % n} + 1\n" for i in range(n)))
    assert not result.ok
    assert any("chain of more than" in d.message or "defined in terms of itself" in d.message
               for d in result.errors)


def test_a_long_chain_of_calls_checks_but_is_not_computed_at_check_time():
    n = 2000
    fns = "".join(f"fn g{i}() -> int {{ return g{i + 1}() }}\n" for i in range(n)) + f"fn g{n}() -> int {{ return 1 }}\n"
    assert check_source(HEADER + fns + "action b { x = g0() % 3 }\n").ok
    result = check_source(HEADER + fns + "const k = g0()\n")
    (error,) = result.errors
    assert "function calls nest more than 100 levels deep" in error.message
    assert error.notes[0][0] == "while computing the const `k`"


def test_consts_computed_by_functions_with_loops_and_array_writes():
    result = check_source(HEADER + """
fn squares(n: int) -> [int; 4] {
    let a = [0; 4]
    for i in 0..n { a[i] = i * i }
    let b = a
    b[0] = 99
    a[3] += b[0]
    return a
}
fn tri() -> int {
    let t = 0
    let k = 0
    repeat 5 { k += 1; t += k }
    let (p, q) = (t, k)
    (p, q) = (q, p)
    return p * 100 + q
}
const sq = squares(4)
const tr = tri()
const g = [[0; 2]; 2]
fn touch(m: [[int; 2]; 2]) -> int {
    let c = m
    c[0][1] = 5
    return m[0][1] + c[0][1]
}
const touched = touch(g)
""")
    assert result.ok, [d.message for d in result.errors]
    values = default_values(result.env)
    assert values["sq"] == [0, 1, 4, 108]
    assert values["tr"] == 515
    assert values["touched"] == 5 and values["g"] == [[0, 0], [0, 0]]


@pytest.mark.parametrize("item, message", [
    ("const k = -(2 ** 62) * 4", "overflows a 64-bit int"),
    ("param n = 62\nconst k = 2 ** n * 2", "overflows a 64-bit int"),
    ("param n = 0\nconst k = 7 / n", "division by zero"),
    ("param n = 0.0\nconst k = 1.0 / n", "division by zero"),
    ("const k = 1e308 * 10.0", "is infinite"),
    ("const k = sqrt(-1.0)", "has no finite value"),
    ("const k = int(1e300)", "outside the 64-bit int range"),
    ("const k = [1, 2][2]", "out of bounds"),
    ("param n = -1\nconst k = [0; n]", "sizes cannot be negative"),
    ("fn f() -> int { let i: int in 0..3 = 5\n return i }\nconst k = f()", "outside the declared range"),
    ("fn f() -> int { let s = 0\n repeat 2000000 { s += 1 }\n return s }\nconst k = f()", "takes too long"),
    ("state s: [int; sum(i for i in 0..2000000)]", "takes too long"),
    ("state s: int = 9223372036854775807 + 1", "overflows a 64-bit int"),
    ("param n = 9223372036854775807\nstate s: int = n + 1", "overflows a 64-bit int"),
])
def test_constants_that_fail_are_located_errors(item, message):
    start = time.perf_counter()
    result = check_source(HEADER + item + "\n")
    assert time.perf_counter() - start < 5
    assert any(message in d.message for d in result.errors), [d.message for d in result.diagnostics]
    assert all(d.span.line >= 5 for d in result.errors)


def test_level_legend_values_may_be_computed():
    result = check_source(HEADER + 'enum Cell { WALL, DOOR }\nconst level = map """\n#D\n""" with '
                          '{ "#": WALL, "D": [DOOR; 2][1] }\n')
    assert result.ok, [d.message for d in result.errors]
    assert default_values(result.env)["level"] == [[0, 1]]


def test_summary_never_raises():
    result = check_source(HEADER + "param n: int = 2\nconst k = 10 / n\n")
    assert result.ok
    assert _describe_env(result.env) == "env T: 1 action, sparse observation of 3"
    const = result.env.consts[0]
    broken = ir.Binary("div", const.value.left, ir.Lit(0, ir.IntType(), const.span), ir.IntType(), const.span)
    env = dataclasses.replace(result.env, consts=(dataclasses.replace(const, value=broken),))
    assert _describe_env(env).startswith("env T:")


def test_a_closed_pipe_ends_the_cli_quietly():
    files = [str(p) for p in sorted(ROOT.joinpath("examples").glob("*.twl"))]
    cmd = [sys.executable, "-m", "twisterl", "check", "--dump-ir", *files]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT)
    proc.stdout.readline()
    proc.stdout.close()
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=60) in (0, 141)
    assert "Traceback" not in err and "internal error" not in err and "Exception ignored" not in err
