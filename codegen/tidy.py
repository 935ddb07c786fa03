"""A last pass over the generated Rust: parentheses that group nothing are taken out.

Each expression writer parenthesises what it returns, so that any caller may use it as an
operand; where a caller already brackets it (`Ok((a > 0))`, `((x + 1))`), one pair of
parentheses is left doing nothing. This pass removes such a pair when it fills another
pair exactly and holds something but no top-level comma (so `()` and tuples stay). It skips
string and character literals and comments, and changes nothing else."""

from __future__ import annotations

from .arith import top_level_at


def drop_double_parens(text: str) -> str:
    pairs = _paren_pairs(text)
    close_of = dict(pairs)
    drop: set[int] = set()
    for open_, close in pairs:
        inner = open_ + 1
        content = text[inner + 1:close - 1]
        if close_of.get(inner) == close - 1 and content and not top_level_at(content, (",",)):
            drop.update((inner, close - 1))
    return "".join(ch for i, ch in enumerate(text) if i not in drop)


def _paren_pairs(text: str) -> list[tuple[int, int]]:
    """(open, close) positions of every parenthesis pair outside literals and comments."""
    pairs, stack = [], []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch == "/" and text.startswith("//", i):
            i = text.find("\n", i)
            if i < 0:
                break
        elif ch == '"':
            i += 1
            while i < n and text[i] != '"':
                i += 2 if text[i] == "\\" else 1
        elif ch == "'" and i + 2 < n and (text[i + 2] == "'" or text[i + 1] == "\\"):
            i = text.find("'", i + 2 if text[i + 1] == "\\" else i + 1) if text[i + 1] == "\\" else i + 2
        elif ch == "(":
            stack.append(i)
        elif ch == ")" and stack:
            pairs.append((stack.pop(), i))
        i += 1
    return pairs
