"""Grammar-aware mutations of the examples (see twl_mutants.py: names swapped for other
names, keywords, built-ins and Rust words; declarations duplicated, moved and renamed;
extreme literals; nested expressions; inserted loops and items) never cause an internal
error or a long check, and every accepted mutant gets the `twisterl check` summary.
About 30 seconds."""

from __future__ import annotations

import time

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from twl_mutants import EXAMPLES, mutate

from twisterl.cli.check import describe_env as _describe_env
from twisterl.dsl import check_source

SOURCES = [p.read_text() for p in EXAMPLES]


@settings(max_examples=1200, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.sampled_from(SOURCES), st.randoms(use_true_random=False))
def test_grammar_mutations_never_crash(text, rng):
    mutant = mutate(text, rng)
    start = time.perf_counter()
    result = check_source(mutant, "mutant.twl")
    elapsed = time.perf_counter() - start
    n_lines = mutant.count("\n") + 1
    for d in result.diagnostics:
        assert d.message
        assert 1 <= d.span.line <= n_lines and d.span.col >= 1, (d, mutant)
    if result.ok:
        assert _describe_env(result.env).startswith(f"env {result.env.name}:")
    else:
        assert result.env is None
    assert elapsed < 10, f"checking took {elapsed:.1f} s:\n{mutant}"
