"""Every malformed file gives its expected diagnostics: severity, line, column and message.

Each file in tests/malformed/ ends with `# expect: SEVERITY LINE:COL MESSAGE` lines.
The checker must report exactly those errors (warnings listed are required too), and
`twisterl check` must exit with code 1.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from twisterl.dsl import check_file

CASES = sorted(Path(__file__).parent.joinpath("malformed").glob("*.twl"))
EXPECT = re.compile(r"^# expect: (error|warning) (\d+):(\d+) (.+)$", re.M)


def expectations(path: Path):
    return [(sev, int(line), int(col), msg.strip()) for sev, line, col, msg in EXPECT.findall(path.read_text())]


def test_corpus_is_large_enough():
    assert len(CASES) >= 40


@pytest.mark.parametrize("path", CASES, ids=[p.stem for p in CASES])
def test_malformed_file(path: Path):
    expected = expectations(path)
    assert expected, f"{path.name} has no `# expect:` lines"
    result = check_file(path)
    assert not result.ok
    got = [(d.severity, d.span.line, d.span.col, d.message) for d in result.diagnostics]
    for sev, line, col, msg in expected:
        assert any(g[0] == sev and g[1] == line and g[2] == col and msg in g[3] for g in got), \
            f"missing {sev} {line}:{col} {msg!r}; got {got}"
    n_errors = sum(1 for e in expected if e[0] == "error")
    assert len(result.errors) == n_errors, f"expected {n_errors} errors, got {got}"
