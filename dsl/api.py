"""The front end in one call: read, parse, check; never raises on bad input."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from . import ir
from .check import check_module
from .diagnostics import Diagnostic, Source, Span, TwlError
from .parse import decode, parse


@dataclass
class CheckResult:
    """What checking one file produced: diagnostics, and the IR when there were no errors."""

    source: Source
    diagnostics: list[Diagnostic] = field(default_factory=list)
    env: Optional[ir.Env] = None

    @property
    def ok(self) -> bool:
        return not any(d.is_error for d in self.diagnostics)

    @property
    def errors(self) -> list[Diagnostic]:
        return [d for d in self.diagnostics if d.is_error]

    @property
    def warnings(self) -> list[Diagnostic]:
        return [d for d in self.diagnostics if not d.is_error]


def check_source(text: str, path: str = "<input>") -> CheckResult:
    """Check `.twl` source text."""
    return _check(Source(path, text))


def check_bytes(raw: bytes, path: str) -> CheckResult:
    """Check raw file contents, refusing non-UTF-8 and oversized input cleanly."""
    try:
        source = decode(raw, path)
    except TwlError as exc:
        return CheckResult(Source(path, ""), list(exc.diagnostics))
    return _check(source)


def check_file(path: str | Path) -> CheckResult:
    """Read and check one `.twl` file."""
    p = Path(path)
    try:
        raw = p.read_bytes()
    except OSError as exc:
        reason = exc.strerror or str(exc)
        return CheckResult(Source(str(path), ""), [
            Diagnostic("error", f"I cannot read this file: {reason}", Span.point(1, 1))])
    return check_bytes(raw, str(path))


def _check(source: Source) -> CheckResult:
    try:
        module = parse(source)
    except TwlError as exc:
        return CheckResult(source, sorted(exc.diagnostics, key=_order))
    diagnostics, env = check_module(module, source)
    return CheckResult(source, sorted(diagnostics, key=_order), env)


def _order(d: Diagnostic):
    return (d.span.line, d.span.col, d.severity != "error")
