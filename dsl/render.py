"""Render blocks: grids with glyph maps and marks, and text lines with interpolation."""

from __future__ import annotations

import re
from typing import Optional, Union

from lark.exceptions import UnexpectedInput

from . import ast, ir
from .checker_state import CheckerState
from .diagnostics import Span, TwlError
from .exprs import article
from .scope import Context
from .types import INT, STR, array_dims, is_err, is_int, scalar_of

_FORMAT = re.compile(r"^[<>^]?[0-9]*(\.[0-9]+)?[dfeg%]?$")


class RenderChecker(CheckerState):
    def render(self) -> tuple:
        d: Optional[ast.RenderDecl] = self.singles.get("render")
        if d is None:
            return ()
        out = []
        for item in d.items:
            made = self.render_grid(item) if isinstance(item, ast.RenderGrid) else self.render_line(item)
            if made is not None:
                out.append(made)
        return tuple(out)

    def render_grid(self, g: ast.RenderGrid) -> Optional[ir.RenderGrid]:
        ctx = Context("pure", "a render block", "render")
        array = self.expr(g.array, ctx)
        if is_err(array.type):
            return None
        dims = array_dims(array.type)
        width = None
        if g.width is not None:
            width = self.expr(g.width, ctx)
            if not self.expect(width, INT, "the width of a grid", g.width.span):
                return None
            if len(dims) != 1:
                self.report.error(g.width.span, "a width is only needed for a 1-D array; this one is "
                                  f"{len(dims)}-D")
                return None
        elif len(dims) != 2:
            self.report.error(g.array.span, f"`grid` draws a 2-D array, but this is {article(array.type)}",
                              hints=["for a 1-D array give the row width: `grid(board, size)`"] if len(dims) == 1 else [])
            return None
        elem = scalar_of(array.type)
        if not isinstance(elem, (ir.IntType, ir.EnumType, ir.BoolType)):
            self.report.error(g.array.span, f"`grid` draws ints, enums or bools, but this holds {article(elem)}")
            return None
        glyphs = []
        seen = set()
        for key, glyph in (g.glyphs.entries if g.glyphs else ()):
            k = self.expr(key, Context("static", "a glyph key", "render"), elem)
            v = self.expr(glyph, Context("pure", "a glyph", "render"))
            if is_err(k.type) or is_err(v.type):
                continue
            if not self.expect(k, elem, "a glyph key", key.span):
                continue
            kv = self.static_value(k)
            if kv in seen:
                self.report.error(key.span, "this value already has a glyph")
                continue
            seen.add(kv)
            if not self.expect(v, STR, "a glyph", glyph.span):
                continue
            glyphs.append(ir.Glyph(k, v, key.span.to(glyph.span)))
        marks = []
        for m in g.marks:
            pos = self.expr(m.pos, ctx)
            glyph = self.expr(m.glyph, Context("pure", "a glyph", "render"))
            if is_err(pos.type) or is_err(glyph.type):
                continue
            if len(dims) == 2:
                if not (isinstance(pos.type, ir.TupleType) and len(pos.type.items) == 2
                        and all(is_int(t) for t in pos.type.items)):
                    self.report.error(m.pos.span, f"a mark on a 2-D grid is a (row, col) pair, but this is {article(pos.type)}")
                    continue
                row = ir.TupleGet(pos, 0, INT, m.pos.span)
                col = ir.TupleGet(pos, 1, INT, m.pos.span)
            else:
                if not self.expect(pos, INT, "a mark's cell", m.pos.span):
                    continue
                row, col = ir.Lit(-1, INT, m.pos.span), pos
            if not self.expect(glyph, STR, "a glyph", m.glyph.span):
                continue
            marks.append(ir.RenderMark(row, col, glyph, m.span))
        return ir.RenderGrid(array, width, tuple(glyphs), tuple(marks), g.span)

    def render_line(self, item: ast.RenderLine) -> Optional[ir.RenderLine]:
        text = item.text
        if not isinstance(text, ast.StrLit):
            self.report.error(text.span, "`line` takes a string, like `line \"x = {x:.2f}\"`")
            return None
        segments: list[Union[str, ir.Interp]] = []
        s = text.value
        i = 0
        literal = []
        while i < len(s):
            ch = s[i]
            if ch in "{}" and s[i:i + 2] in ("{{", "}}"):
                literal.append(ch)
                i += 2
                continue
            if ch == "}":
                self.report.error(self._at(text, i), "a `}` without its `{`", hints=["write `}}` for a literal brace"])
                return None
            if ch != "{":
                literal.append(ch)
                i += 1
                continue
            end = s.find("}", i + 1)
            if end < 0:
                self.report.error(self._at(text, i), "this `{` is never closed", hints=["write `{{` for a literal brace"])
                return None
            if literal:
                segments.append("".join(literal))
                literal = []
            inner = s[i + 1:end]
            expr_text, fmt = inner, ""
            colon = _format_colon(inner)
            if colon >= 0:
                expr_text, fmt = inner[:colon], inner[colon + 1:]
                if not _FORMAT.match(fmt):
                    self.report.error(self._at(text, i + 1 + colon), f"`{fmt}` is not a format I know",
                                      hints=["formats look like `.3f`, `5d`, `>4` or `e`"])
                    return None
            span = self._at(text, i + 1, len(expr_text) or 1)
            if not expr_text.strip():
                self.report.error(span, "an empty `{}` in a render line", hints=["write `{{}}` for literal braces"])
                return None
            try:
                parsed = self.parse_interp(expr_text, span)
            except (UnexpectedInput, TwlError):
                self.report.error(span, f"I cannot read `{expr_text}` as an expression")
                return None
            value = self.expr(parsed, Context("pure", "a render line", "render"))
            if is_err(value.type):
                return None
            if not isinstance(value.type, (ir.IntType, ir.FloatType, ir.BoolType, ir.EnumType, ir.StrType)):
                self.report.error(span, f"a render line shows numbers, bools, enums and text, not {article(value.type)}")
                return None
            if fmt and fmt[-1:] in "feg%" and not isinstance(value.type, ir.FloatType):
                self.report.error(span, f"the format `{fmt}` is for floats, but this is {article(value.type)}",
                                  hints=["convert it with `float(...)`"])
                return None
            if fmt.endswith("d") and not isinstance(value.type, ir.IntType):
                self.report.error(span, f"the format `{fmt}` is for ints, but this is {article(value.type)}")
                return None
            segments.append(ir.Interp(value, fmt, span))
            i = end + 1
        if literal:
            segments.append("".join(literal))
        return ir.RenderLine(tuple(segments), item.span)

    def parse_interp(self, text: str, span: Span):
        from .parse import parse_expression_text
        return parse_expression_text(text, span.line, span.col)

    def _at(self, text: ast.StrLit, offset: int, length: int = 1) -> Span:
        line = text.content_line or text.span.line
        col = (text.content_col or text.span.col + 1) + offset
        return Span(line, col, line, col + length)


def _format_colon(inner: str) -> int:
    depth = 0
    for k, ch in enumerate(inner):
        if ch in "([":
            depth += 1
        elif ch in ")]":
            depth -= 1
        elif ch == ":" and depth == 0:
            return k
    return -1
