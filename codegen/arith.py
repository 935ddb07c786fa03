"""Small rewrites of Rust expression text: arithmetic folded where operands are literals,
negated tests, a function's tail value.

The code generator builds sizes, offsets and action counts out of pieces that are often
literals (`0 + 3`, `1 * cells`, `(6 - 0).max(0)`). These helpers write what a person
would: the sum, the product, or the other operand, so the generated code carries no
`x + 0` or `0 * y`."""

from __future__ import annotations

import re
from typing import Optional

_INT = re.compile(r"\(?(-?\d+)(?:i64|usize|u32|i32)?\)?")


def literal(code: str) -> Optional[int]:
    """The value of `code` when it is an integer literal (`3`, `3i64`, `(3)`), else None."""
    m = _INT.fullmatch(code.strip())
    return int(m.group(1)) if m else None


def _top_level(code: str, ops: tuple[str, ...]) -> bool:
    """Whether one of `ops` (spaced binary operators) appears outside all brackets."""
    return bool(top_level_at(code, ops))


def operand(code: str) -> str:
    """`code` as an operand of `*` or `as`: parenthesised when a sum or difference."""
    return f"({code})" if _top_level(code, (" + ", " - ")) else code


def as_usize(code: str) -> str:
    """`code` cast to `usize` (a literal stays a literal)."""
    return code if literal(code) is not None and literal(code) >= 0 else f"{operand(code)} as usize"


def plus(a: str, b: str) -> str:
    x, y = literal(a), literal(b)
    if x is not None and y is not None:
        return str(x + y)
    if x == 0:
        return b
    if y == 0:
        return a
    return f"{a} + {b}"


def minus(a: str, b: str) -> str:
    """`a - b`, parenthesised when it is left as a subtraction (it is often an operand)."""
    x, y = literal(a), literal(b)
    if x is not None and y is not None:
        return str(x - y)
    if y == 0:
        return a
    return f"({a} - {operand(b)})"


def times(a: str, b: str) -> str:
    x, y = literal(a), literal(b)
    if x is not None and y is not None:
        return str(x * y)
    if x == 0 or y == 0:
        return "0"
    if x == 1:
        return b
    if y == 1:
        return a
    return f"{operand(a)} * {operand(b)}"


def span(lo: str, hi: str) -> str:
    """How many integers `lo..hi` holds, as a `usize` (0 when `hi <= lo`)."""
    x, y = literal(lo), literal(hi)
    if x is not None and y is not None:
        return str(max(0, y - x))
    if x == 0:
        return f"({hi}).max(0) as usize"
    return f"({hi} - {lo}).max(0) as usize"


def tail_value(code: str) -> str:
    """A function's value `Ok(x?)` written as `x` when `x` is one call or method chain
    (`f(a)?`, `self.rng.draw(n).ok_or(e)?`): both are the same `R<T>`."""
    if code.startswith("Ok(") and code.endswith("?)"):
        chain = code[3:-2]
        if _balanced(chain) and chain.endswith(")") and (chain[0].isalnum() or chain[0] == "_") \
                and not top_level_at(chain, (" ", "\n")):
            return chain
    return code


def _balanced(code: str) -> bool:
    """Whether every bracket in `code` closes inside it, in order."""
    depth = 0
    for ch in code:
        if ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
            if depth < 0:
                return False
    return depth == 0


def negate(code: str) -> str:
    """`!code`, written `a != b` for `a == b` and the reverse (exact for every type, NaN
    included; ordering tests keep the `!`, which NaN makes differ from the flipped test)."""
    inner = code
    while one_group(inner):
        inner = inner[1:-1]
    if inner.startswith("!") and (re.fullmatch(r"[\w.]+", inner[1:]) or one_group(inner[1:])):
        return inner[1:]
    if not _top_level(inner, (" && ", " || ", " as ")):
        at = top_level_at(inner, (" == ", " != "))
        if len(at) == 1:
            i = at[0]
            flipped = " != " if inner.startswith(" == ", i) else " == "
            return f"({inner[:i]}{flipped}{inner[i + 4:]})"
    return f"!({code})"


def top_level_at(code: str, ops: tuple[str, ...]) -> list[int]:
    """Where `ops` occur outside all brackets."""
    depth, found = 0, []
    for i, ch in enumerate(code):
        if ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        elif depth == 0 and any(code.startswith(op, i) for op in ops):
            found.append(i)
    return found


def one_group(code: str) -> bool:
    """Whether `code` is one parenthesised group: `(a, b)`, `(x + 1)`."""
    return code.startswith("(") and code.endswith(")") and _balanced(code[1:-1])
