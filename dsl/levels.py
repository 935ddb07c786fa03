"""Level literals: `map \"\"\" ... \"\"\" with { "#": WALL, ".A": FLOOR }` -> a 2-D array."""

from __future__ import annotations

import textwrap
from typing import Optional

from . import ast, ir
from .checker_state import CheckerState
from .diagnostics import Span
from .exprs import article
from .scope import Context
from .types import INT, is_err


class LevelChecker(CheckerState):
    def level_literal(self, e: ast.MapLit, ctx: Context, const_name: Optional[str] = None) -> ir.Expr:
        legend: dict[str, object] = {}  # character -> the value it stands for
        key_spans: dict[str, Span] = {}
        ok = True
        sctx = Context("static", "a level legend", ctx.owner)
        elem_t = None
        for key, value in e.legend.entries:
            if not isinstance(key, ast.StrLit) or not key.value:
                self.report.error(key.span, "a legend key is a string of one or more characters, like \"#\"")
                ok = False
                continue
            v = self.expr(value, sctx)
            if is_err(v.type):
                ok = False
                continue
            known, failed = self.eval_reporting(v, "a legend value") \
                if isinstance(v.type, (ir.IntType, ir.EnumType, ir.BoolType)) else (None, False)
            if failed:
                ok = False
                continue
            if known is None:
                self.report.error(value.span, "a legend maps characters to enum variants, ints or bools",
                                  hints=[f"this is {article(v.type)}"])
                ok = False
                continue
            if elem_t is None:
                elem_t = v.type
            elif self.unify(ir.Lit(0, elem_t, value.span), v, value.span, "the values of a legend") is None:
                ok = False
                continue
            else:
                elem_t = self.hull(elem_t, v.type, value.span)
            for ch in key.value:
                if ch in legend:
                    self.report.error(key.span, f"the legend maps {ch!r} twice",
                                      notes=[("first mapped here", key_spans[ch])])
                    ok = False
                legend[ch] = known
                key_spans[ch] = key.span
        if not ok or elem_t is None:
            if elem_t is None and ok:
                self.report.error(e.legend.span, "a level needs a legend that maps its characters to values")
            return self.err(e.span)

        raw_lines = e.text.value.split("\n")
        first = 0
        while first < len(raw_lines) and not raw_lines[first].strip():
            first += 1
        last = len(raw_lines)
        while last > first and not raw_lines[last - 1].strip():
            last -= 1
        body = raw_lines[first:last]
        if not body:
            self.report.error(e.text.span, "this level is empty")
            return self.err(e.span)
        dedented = textwrap.dedent("\n".join(body)).split("\n")
        indent = len(body[0]) - len(body[0].lstrip()) - (len(dedented[0]) - len(dedented[0].lstrip()))
        width = max(len(r) for r in dedented)
        rows = []
        for k, row in enumerate(dedented):
            raw_index = first + k
            line = e.text.content_line + raw_index
            col0 = (e.text.content_col if raw_index == 0 else 1) + indent
            if len(row) < width:
                if " " in legend:
                    row = row + " " * (width - len(row))
                else:
                    self.report.error(Span(line, col0, line, col0 + max(len(row), 1)),
                                      f"row {k + 1} of this level has {len(row)} characters, but the widest has {width}",
                                      hints=["levels are rectangles; add \" \" to the legend to pad short rows"])
                    return self.err(e.span)
            for c, ch in enumerate(row):
                if ch not in legend:
                    self.report.error(Span(line, col0 + c, line, col0 + c + 1),
                                      f"the character {ch!r} is not in the level's legend", "not in the legend",
                                      [f"add it to the legend: `\"{ch}\": ...`"] if ch != "\t" else
                                      ["use spaces, not tabs, inside levels"])
                    return self.err(e.span)
            rows.append(row)
        if const_name is not None:
            self.levels[const_name] = rows
        n_cols = ir.Lit(width, INT, e.span)
        row_t = ir.ArrayType(elem_t, n_cols)
        out_rows = []
        for k, row in enumerate(rows):
            items = tuple(ir.Lit(legend[ch], elem_t, e.span) for ch in row)
            out_rows.append(ir.ArrayLit(items, row_t, e.span))
        return ir.ArrayLit(tuple(out_rows), ir.ArrayType(row_t, ir.Lit(len(rows), INT, e.span)), e.span)
