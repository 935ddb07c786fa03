"""Source positions, diagnostics as data, and the one place that renders them.

A `Diagnostic` is plain data (severity, message, span, label, hints). `render_text`
prints it the way rustc and Elm do:

    examples/puzzle.twl:14:18: error: I cannot find a name `blnk`
       |
    14 | action left when blnk % size > 0 { slide(blank - 1) }
       |                  ^^^^ not defined here
       = hint: did you mean `blank`?

`render_json` gives the same data for tools and the browser player.
"""

from __future__ import annotations

import difflib
import json
from dataclasses import dataclass, field
from typing import Iterable, Optional


@dataclass(frozen=True, order=True)
class Span:
    """A region of one source file: 1-based line and column, end column exclusive."""

    line: int
    col: int
    end_line: int
    end_col: int

    @staticmethod
    def point(line: int, col: int) -> "Span":
        return Span(line, col, line, col + 1)

    def to(self, other: "Span") -> "Span":
        """The span from the start of `self` to the end of `other`."""
        return Span(self.line, self.col, other.end_line, other.end_col)

    def __str__(self) -> str:
        return f"{self.line}:{self.col}"


@dataclass(frozen=True)
class Source:
    """A source file's path and text, for rendering snippets."""

    path: str
    text: str

    @property
    def lines(self) -> list[str]:
        return self.text.split("\n")


@dataclass(frozen=True)
class Diagnostic:
    severity: str  # "error" or "warning"
    message: str
    span: Span
    label: str = ""
    hints: tuple[str, ...] = ()
    notes: tuple[tuple[str, Span], ...] = ()  # secondary spans ("first defined here")
    code: str = ""

    @property
    def is_error(self) -> bool:
        return self.severity == "error"


class TwlError(Exception):
    """Raised to stop a stage; carries the diagnostics found so far."""

    def __init__(self, diagnostics: list[Diagnostic]):
        super().__init__("\n".join(d.message for d in diagnostics))
        self.diagnostics = diagnostics


@dataclass
class Reporter:
    """Collects diagnostics during a stage, so many independent errors show in one run."""

    diagnostics: list[Diagnostic] = field(default_factory=list)

    def error(self, span: Span, message: str, label: str = "", hints: Iterable[str] = (),
              notes: Iterable[tuple[str, Span]] = (), code: str = "") -> None:
        self.diagnostics.append(
            Diagnostic("error", message, span, label, tuple(hints), tuple(notes), code))

    def warning(self, span: Span, message: str, label: str = "", hints: Iterable[str] = (),
                code: str = "") -> None:
        self.diagnostics.append(Diagnostic("warning", message, span, label, tuple(hints), (), code))

    @property
    def has_errors(self) -> bool:
        return any(d.is_error for d in self.diagnostics)


def suggest(name: str, candidates: Iterable[str], limit: int = 4) -> list[str]:
    """Up to `limit` candidates close to `name` by edit distance, best first."""
    pool = sorted(set(c for c in candidates if c != name))
    close = difflib.get_close_matches(name, pool, n=limit, cutoff=0.6)
    lowered = [c for c in pool if c.lower() == name.lower() and c not in close]
    return (lowered + close)[:limit]


def did_you_mean(name: str, candidates: Iterable[str]) -> list[str]:
    found = suggest(name, candidates)
    if not found:
        return []
    if len(found) == 1:
        return [f"did you mean `{found[0]}`?"]
    return ["did you mean one of " + ", ".join(f"`{c}`" for c in found) + "?"]


# ---------------------------------------------------------------- rendering

_COLORS = {"error": "\x1b[1;31m", "warning": "\x1b[1;33m", "hint": "\x1b[1;36m",
           "bold": "\x1b[1m", "blue": "\x1b[1;34m", "reset": "\x1b[0m"}


def _paint(text: str, style: str, color: bool) -> str:
    return f"{_COLORS[style]}{text}{_COLORS['reset']}" if color else text


def _expand_tabs(line: str) -> str:
    return line.replace("\t", "    ")


def _visual_col(line: str, col: int) -> int:
    """The display column (0-based) of 1-based character column `col`, tabs as 4 spaces."""
    return len(_expand_tabs(line[: max(col - 1, 0)]))


def _snippet(source: Source, span: Span, label: str, style: str, color: bool,
             gutter: int) -> list[str]:
    lines = source.lines
    out = []
    bar = _paint(" " * gutter + " |", "blue", color)
    last = min(span.end_line, span.line + 3, len(lines))
    for n in range(span.line, max(last, span.line) + 1):
        if n < 1 or n > len(lines):
            continue
        text = lines[n - 1]
        shown = _expand_tabs(text)
        if len(shown) > 200:
            shown = shown[:200] + " ..."
        out.append(_paint(f"{n:>{gutter}} |", "blue", color) + (" " + shown if shown else ""))
        start = _visual_col(text, span.col) if n == span.line else len(shown) - len(shown.lstrip())
        if n == span.end_line:
            end = _visual_col(text, span.end_col)
        else:
            end = len(_expand_tabs(text))
        start = min(start, 200)
        end = min(max(end, start + 1), 201)
        underline = " " * start + "^" * (end - start)
        if n == last:
            underline += (" " + label) if label else ""
        out.append(bar + " " + _paint(underline, style, color))
    return out


def render_text(diag: Diagnostic, source: Source, color: bool = False) -> str:
    """Render one diagnostic as `path:line:col: severity: message`, a snippet and hints."""
    span = diag.span
    gutter = len(str(max(span.end_line, span.line, *(s.end_line for _, s in diag.notes)) if diag.notes
                     else max(span.end_line, span.line)))
    head = f"{source.path}:{span.line}:{span.col}: "
    out = [_paint(head, "bold", color) + _paint(f"{diag.severity}:", diag.severity, color)
           + " " + _paint(diag.message, "bold", color)]
    out.append(_paint(" " * gutter + " |", "blue", color))
    out.extend(_snippet(source, span, diag.label, diag.severity, color, gutter))
    for note, note_span in diag.notes:
        out.append(_paint(" " * gutter + " |", "blue", color))
        out.append(_paint(" " * gutter + " = ", "blue", color) + f"note: {note} ({source.path}:{note_span})")
        out.extend(_snippet(source, note_span, "", "hint", color, gutter))
    for hint in diag.hints:
        out.append(_paint(" " * gutter + " = ", "blue", color) + _paint("hint:", "hint", color)
                   + " " + hint)
    return "\n".join(out)


def to_dict(diag: Diagnostic, source: Optional[Source] = None) -> dict:
    """The diagnostic as JSON-ready data."""
    data = {
        "severity": diag.severity,
        "message": diag.message,
        "line": diag.span.line,
        "col": diag.span.col,
        "end_line": diag.span.end_line,
        "end_col": diag.span.end_col,
        "label": diag.label,
        "hints": list(diag.hints),
        "notes": [{"message": m, "line": s.line, "col": s.col} for m, s in diag.notes],
    }
    if source is not None:
        data["path"] = source.path
    return data


def render_json(diags: Iterable[Diagnostic], source: Source) -> str:
    return json.dumps([to_dict(d, source) for d in diags], indent=2)
