"""A condition split into the tests it makes, seen through the functions it calls.

Masks (`masks.py`) and the `any`/`all`/`count` aggregates hoist each conjunct of a
condition to the outermost loop that binds what it reads. A conjunct hidden in a
function is invisible to that: `can_jump(player, r, c, d)` reads `d`, so it stays in the
innermost loop, though its first test, `board[r][c] == p + 1`, reads only the square.
`Splitter.conjuncts` opens such calls, so that the tests inside hoist like the guard's
own:

- **Inlining.** A call of a pure function whose body is one `return e`, with scalar
  parameters and arguments that cannot fault (`Ranges.total`), means `e` with the
  arguments put for the parameters: evaluating a total argument once or several times
  or not at all is the same. Only calls that read a loop variable are opened; a call
  that reads none is the same for every member and stays one call (masks memoise it).
- **Common tests of both branches.** `if t then a and x else a and y` with a total `t`
  is `a and (if t then x else y)`: either branch tests `a` first.

Each conjunct keeps the spans of the `.twl` text it came from (a test inlined from a
function keeps the function's lines), so every fault is still located where it was.
"""

from __future__ import annotations

from typing import Optional

from twisterl.dsl import ir
from twisterl.dsl.effects import walk
from twisterl.dsl.types import same_expr

from .ranges import Ranges

MAX_DEPTH = 4  # how deep calls are opened inside opened calls


def reads(e: ir.Expr, names: set[str]) -> set[str]:
    """Which of the local `names` (loop variables, action indices) `e` reads."""
    return {n.name for n in walk(e) if isinstance(n, ir.Ref) and n.kind in ("action_param", "loop", "local")
            and n.name in names}


class Splitter:
    """Splits conditions of one env into conjuncts, opening calls that read `names`."""

    def __init__(self, env: ir.Env, ranges: Ranges):
        self.ranges = ranges

    def opened(self, call: ir.Call) -> Optional[ir.Expr]:
        """The body of `call`'s function with the arguments in, when that means the same."""
        if not all(self.ranges.total(a) for a in call.args):
            return None  # a total argument may be evaluated once, several times or never
        return self.ranges.opened(call)

    def conjuncts(self, e: ir.Expr, names: set[str], depth: int = 0) -> list[ir.Expr]:
        """`e` as the tests `a and b and ...` makes, in evaluation order."""
        if isinstance(e, ir.Binary) and e.op == "and":
            return self.conjuncts(e.left, names, depth) + self.conjuncts(e.right, names, depth)
        if isinstance(e, ir.Call) and depth < MAX_DEPTH and reads(e, names):
            body = self.opened(e)
            if body is not None:
                return self.conjuncts(body, names, depth + 1)
        if isinstance(e, ir.Cond) and self.ranges.total(e.cond):
            then = self.conjuncts(e.then, names, depth)
            else_ = self.conjuncts(e.else_, names, depth)
            k = 0
            while k < min(len(then), len(else_)) - 1 and same_expr(then[k], else_[k]):
                k += 1
            if k:
                rest = ir.Cond(e.cond, conjoin(then[k:], e.span), conjoin(else_[k:], e.span), e.type, e.span)
                return then[:k] + [rest]
        return [e]


def conjoin(parts: list[ir.Expr], span) -> ir.Expr:
    """`a and b and ...` (parts non-empty)."""
    out = parts[0]
    for p in parts[1:]:
        out = ir.Binary("and", out, p, ir.BoolType(), span)
    return out
