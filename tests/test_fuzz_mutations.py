"""Random mutations of the examples never cause an internal error: only clean
diagnostics or success."""

from __future__ import annotations

from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from twisterl.cli.check import describe_env as _describe_env
from twisterl.dsl import check_source
from twisterl.dsl.api import check_bytes

EXAMPLES = sorted(Path(__file__).resolve().parents[1].joinpath("examples").glob("*.twl"))
SOURCES = [p.read_text() for p in EXAMPLES]
FRAGMENTS = [
    "(", ")", "[", "]", "{", "}", ",", ";", "\n", " = ", " == ", " + ", " - ", " * ", " / ", " % ",
    " ** ", "..", "..=", " -> ", " <-> ", ":", ".", " and ", " or ", " not ", " if ", " then ",
    " else ", " for ", " in ", " where ", " while ", " limit ", " let ", " return ", " reward ",
    "reward[", " when ", " advise ", " true ", " false ", "0", "1", "-1", "2.5", "1e400", "9" * 30,
    '"x"', '"""', "int", "float", "bool", "[int; 3]", "[[bool; 2]; 2]", "int in 0..4",
    "player", "players", "difficulty", "steps", "pi", "onehot(", "planes(", "as seen by player",
    "max(", "min(", "sum(", "all(", "any(", "count(", "choice(", "uniform(0.0, 1.0)",
    "randint(0, 3)", "random_action()", "act(0)", "next_player()", "shuffle(", "f32(", "float(",
    "int(", "abs(", "map \"\"\"\n#.\n\"\"\" with { \"#\": 1, \".\": 0 }", "env X", "param p = 3",
    "const k = 2", "state s: int in 0..3", "action a { }", "fn f(x: int) -> int { return x }",
    "reset { }", "observe s", "symmetry m { s -> s }", "render line \"{s}\"", "\t", "#", "\\\n",
    "enum E { A, B }", "E.A", "A", "x", "board", "grid", "line", "mark",
]


@st.composite
def mutated(draw):
    text = draw(st.sampled_from(SOURCES))
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["delete", "insert", "duplicate", "swap", "truncate"]))
        n = len(text)
        i = draw(st.integers(0, max(n - 1, 0)))
        if kind == "delete":
            j = draw(st.integers(i, min(n, i + 40)))
            text = text[:i] + text[j:]
        elif kind == "insert":
            text = text[:i] + draw(st.sampled_from(FRAGMENTS)) + text[i:]
        elif kind == "duplicate":
            lines = text.split("\n")
            k = draw(st.integers(0, len(lines) - 1))
            lines.insert(k, lines[k])
            text = "\n".join(lines)
        elif kind == "swap":
            lines = text.split("\n")
            a = draw(st.integers(0, len(lines) - 1))
            b = draw(st.integers(0, len(lines) - 1))
            lines[a], lines[b] = lines[b], lines[a]
            text = "\n".join(lines)
        else:
            text = text[:i]
    return text


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(mutated())
def test_mutations_never_crash(text):
    result = check_source(text, "mutant.twl")
    for d in result.diagnostics:
        assert d.message
        assert d.span.line >= 1 and d.span.col >= 1
    if result.ok:
        assert _describe_env(result.env).startswith("env ")  # the `twisterl check` summary
    else:
        assert result.env is None


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.binary(max_size=300))
def test_random_bytes_never_crash(raw):
    result = check_bytes(raw, "garbage.twl")
    assert result.ok or result.errors
