"""The observation: its parts, their encodings, and the overall layout and size."""

from __future__ import annotations

from typing import Optional

from . import ast, ir
from .checker_state import CheckerState
from .exprs import article
from .scope import Context
from .types import INT, add, array_dims, is_err, mul, scalar_of, sub


class ObserveChecker(CheckerState):
    def observation(self) -> Optional[ir.Observation]:
        d: Optional[ast.ObserveDecl] = self.singles.get("observe")
        if d is None:
            return None
        ctx = Context("pure", "the observation", "observe")
        parts: list[ir.ObsPart] = []
        ok = True
        for p in d.parts:
            seen_by = None
            if p.seen_by is not None:
                if self.players < 2:
                    self.report.error(p.seen_by.span, "`as seen by` relabels players' marks, but this env has one player",
                                      hints=["declare `players 2` for a two-player game"])
                    ok = False
                    continue
                seen_by = self.expr(p.seen_by, ctx)
                if not self.expect(seen_by, INT, "the player after `as seen by`", p.seen_by.span):
                    ok = False
                    continue
            made = self.obs_part(p.expr, seen_by, ctx)
            if made is None:
                ok = False
            else:
                parts.extend(made)
        if not ok or not parts:
            return None
        return self.layout(parts, d)

    def obs_part(self, e: ast.Expr, seen_by, ctx: Context) -> Optional[list[ir.ObsPart]]:
        if isinstance(e, ast.Call) and e.func in ("onehot", "planes"):
            if len(e.args) != 1 or e.comprehension is not None:
                self.report.error(e.span, f"`{e.func}` takes one value: `{e.func}(board)`")
                return None
            arg = e.args[0]
            if e.func == "onehot" and isinstance(arg, (ast.ListLit, ast.TupleLit)):
                out = []
                for item in arg.items:
                    made = self.encoded(item, "onehot", seen_by, ctx)
                    if made is None:
                        return None
                    out.append(made)
                return out
            made = self.encoded(arg, e.func, seen_by, ctx)
            return None if made is None else [made]
        made = self.encoded(e, "dense", seen_by, ctx)
        return None if made is None else [made]

    def encoded(self, e: ast.Expr, how: str, seen_by, ctx: Context) -> Optional[ir.ObsPart]:
        value = self.expr(e, ctx)
        t = value.type
        if is_err(t):
            return None
        if isinstance(t, (ir.TupleType, ir.StrType, ir.UnitType)):
            self.report.error(e.span, f"an observation part must be numbers, bools or enums, not {article(t)}",
                              hints=["list the items: `onehot([r, c])`"] if isinstance(t, ir.TupleType) else [])
            return None
        scalar = scalar_of(t)
        dims = array_dims(t)
        span = e.span
        if seen_by is not None:
            if not (isinstance(scalar, ir.EnumType) or (isinstance(scalar, ir.IntType) and scalar.bounded)):
                self.report.error(e.span, "`as seen by` relabels player marks, so the part must hold bounded ints or enums",
                                  hints=[f"this is {article(t)}"])
                return None
            value = ir.SeenBy(value, seen_by, t, span)
        cells: ir.Expr = ir.Lit(1, INT, span)
        for n in dims:
            cells = mul(cells, n, span)
        cells = self.fold(cells)
        lo: Optional[ir.Expr] = None
        if how in ("onehot", "planes") and not isinstance(scalar, ir.FloatType):
            if isinstance(scalar, ir.BoolType):
                lo, width = ir.Lit(0, INT, span), ir.Lit(2, INT, span)
                if how == "planes":
                    width = ir.Lit(1, INT, span)
            elif isinstance(scalar, ir.EnumType):
                lo, width = ir.Lit(0, INT, span), ir.Lit(len(scalar.variants), INT, span)
            elif isinstance(scalar, ir.IntType) and scalar.bounded:
                if not (self.is_static(scalar.lo) and self.is_static(scalar.hi)):
                    self.report.error(e.span, "the range of this value depends on the state, so its one-hot "
                                      "width is not fixed", hints=["declare its range: `let v: int in 0..n = ...`"])
                    return None
                lo, width = scalar.lo, self.fold(sub(scalar.hi, scalar.lo, span))
            else:
                self.report.error(e.span, f"`{how}` needs values with a known range, but this is {article(t)}",
                                  "range unknown",
                                  ["give it a range: state `x: int in 0..n`, a fn returning `-> int in 0..n`, "
                                   "or `let v: [int in 0..4; n] = ...`"])
                return None
        elif how == "onehot":
            self.report.error(e.span, "`onehot` needs ints with a range, bools or enums, but this is "
                              f"{article(t)}", hints=["observe floats directly, without `onehot`"])
            return None
        else:
            width = ir.Lit(1, INT, span)
        if how == "planes":
            if len(dims) != 2:
                self.report.error(e.span, f"`planes` needs a 2-D array, but this is {article(t)}")
                return None
            encoding = "planes"
            shape = (width, dims[0], dims[1])
        elif how == "onehot":
            encoding = "onehot"
            shape = tuple(dims) + (width,)
        else:
            if isinstance(scalar, ir.EnumType):
                self.report.error(e.span, "an enum has no numeric value to observe",
                                  hints=["observe it with `onehot(...)`, or convert it with `int(...)`"])
                return None
            encoding = "bool" if isinstance(scalar, ir.BoolType) else "dense"
            shape = tuple(dims)
        size = self.fold(mul(cells, width, span))
        return ir.ObsPart(encoding, value, lo, width, cells, size, shape, span)

    def layout(self, parts: list[ir.ObsPart], d: ast.ObserveDecl) -> Optional[ir.Observation]:
        span = d.span
        planes = [p for p in parts if p.encoding == "planes"]
        if planes:
            others = [p for p in parts if p.encoding != "planes"]
            if others:
                self.report.error(others[0].span, "an observation made of `planes` cannot also have flat parts",
                                  hints=["make this a plane too, or observe everything flat"])
                return None
            hw = [(self.static_value(p.shape[1]), self.static_value(p.shape[2])) for p in planes]
            if len(set(hw)) > 1:
                self.report.error(planes[1].span, f"these planes are {hw[1][0]}x{hw[1][1]}, but the first "
                                  f"are {hw[0][0]}x{hw[0][1]}", hints=["all planes must have the same rows and cols"])
                return None
            channels: ir.Expr = ir.Lit(0, INT, span)
            for p in planes:
                channels = add(channels, p.width, span)
            channels = self.fold(channels)
            size = self.fold(mul(mul(channels, planes[0].shape[1], span), planes[0].shape[2], span))
            return ir.Observation("planes", tuple(parts), size, (channels, planes[0].shape[1], planes[0].shape[2]), span)
        kind = "sparse" if all(p.encoding in ("onehot", "bool") for p in parts) else "dense"
        size: ir.Expr = ir.Lit(0, INT, span)
        for p in parts:
            size = add(size, p.size, span)
        size = self.fold(size)
        n = self.static_value(size)
        if isinstance(n, int) and n > 100_000_000:
            self.report.error(span, f"the observation has {n:,} features with the default params, beyond the "
                              "limit of 100,000,000")
            return None
        return ir.Observation(kind, tuple(parts), size, (size,), span)
