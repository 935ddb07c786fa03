"""Checking expressions: AST expression -> typed IR expression.

A mixin of `Checker` (check.py); it relies on `self.report`, `self.resolve_global`
and `self.effects_of`.
"""

from __future__ import annotations

import math
from typing import Optional

from . import ast, ir
from .checker_state import CheckerState
from .diagnostics import Span
from .scope import BUILTIN_VALUES, Context, Local
from .types import (BOOL, ERR, FLOAT, INT, STR, add, describe, int_lit, is_err, is_float,
                    is_int, is_numeric, maximum, minimum, same_kind, sub)

MATH_FLOAT1 = {"sin", "cos", "tan", "sqrt", "exp", "log", "floor", "ceil", "round"}
RANDOM = {"uniform", "randint", "choice", "shuffle", "random_action", "act"}
AGGREGATES = {"all", "any", "sum", "count", "min", "max", "choice"}
STATEMENT_BUILTINS = {"shuffle", "random_action", "next_player"}
OBSERVE_ONLY = {"onehot", "planes"}
BUILTIN_FUNCTIONS = (MATH_FLOAT1 | RANDOM | AGGREGATES | STATEMENT_BUILTINS | OBSERVE_ONLY
                     | {"abs", "min", "max", "clamp", "atan2", "sign", "float", "int", "f32", "len",
                        "rows", "cols", "find"})
_BINOPS = {"+": "add", "-": "sub", "*": "mul", "/": "div", "%": "mod", "**": "pow"}
_CMPOPS = {"==": "eq", "!=": "ne", "<": "lt", "<=": "le", ">": "gt", ">=": "ge"}
I64_MAX = 2**63 - 1


def _is_int_literal(e: ir.Expr) -> bool:
    if isinstance(e, ir.Lit) and isinstance(e.value, int) and not isinstance(e.value, bool):
        return True
    return isinstance(e, ir.Unary) and e.op == "neg" and _is_int_literal(e.operand)


def to_float_literal(e: ir.Expr) -> ir.Expr:
    if isinstance(e, ir.Lit):
        return ir.Lit(float(e.value), FLOAT, e.span)
    assert isinstance(e, ir.Unary)
    return ir.Unary("neg", to_float_literal(e.operand), FLOAT, e.span)


class ExprChecker(CheckerState):
    # ------------------------------------------------------------ entry points

    def expr(self, e: ast.Expr, ctx: Context, expected=None) -> ir.Expr:
        """Check `e`; when `expected` is float, int literals become floats."""
        method = getattr(self, "_e_" + type(e).__name__, None)
        if method is None:
            self.report.error(e.span, "this kind of expression is not allowed here")
            return self.err(e.span)
        out = method(e, ctx, expected)
        if expected is not None:
            out = self.coerce(out, expected)
        return out

    def err(self, span: Span) -> ir.Expr:
        return ir.Lit(0, ERR, span)

    def coerce(self, e: ir.Expr, expected) -> ir.Expr:
        """Int literals where floats are expected, element-wise in array literals."""
        if is_float(expected) and is_int(e.type) and _is_int_literal(e):
            return to_float_literal(e)
        if (isinstance(expected, ir.ArrayType) and isinstance(e, ir.ArrayLit)
                and isinstance(e.type, ir.ArrayType)):
            items = tuple(self.coerce(x, expected.elem) for x in e.items)
            if items != e.items:
                return ir.ArrayLit(items, ir.ArrayType(items[0].type, e.type.size), e.span)
        if isinstance(expected, ir.TupleType) and isinstance(e, ir.TupleLit) and len(e.items) == len(expected.items):
            items = tuple(self.coerce(x, t) for x, t in zip(e.items, expected.items))
            if items != e.items:
                return ir.TupleLit(items, ir.TupleType(tuple(x.type for x in items)), e.span)
        return e

    def expect(self, e: ir.Expr, want, what: str, span: Span) -> bool:
        """Report unless `e` has a type compatible with `want` (arrays of the same length)."""
        if same_kind(e.type, want):
            lengths = self.length_mismatch(e.type, want)
            if lengths is None:
                return True
            self.report.error(span, f"{what} must be {_a(want)}, but this is {_a(e.type)}",
                              f"{lengths[0]} items, not {lengths[1]}",
                              ["arrays have a fixed length: both sides need the same"])
            return False
        hints = []
        if is_float(want) and is_int(e.type):
            hints.append("convert it with `float(...)`; only integer literals become floats by themselves")
        if is_int(want) and is_float(e.type):
            hints.append("convert it with `int(...)` (truncates) or `int(round(...))`")
        if isinstance(want, ir.BoolType) and is_numeric(e.type):
            hints.append("compare it, for example `x != 0`")
        self.report.error(span, f"{what} must be {_a(want)}, but this is {_a(e.type)}",
                          f"this is {_a(e.type)}", hints)
        return False

    def length_mismatch(self, have, want) -> Optional[tuple[int, int]]:
        """(have, want): the first array lengths that differ with the default params."""
        while isinstance(have, ir.ArrayType) and isinstance(want, ir.ArrayType):
            a, b = self.static_value(have.size), self.static_value(want.size)
            if isinstance(a, int) and isinstance(b, int) and a != b:
                return a, b
            have, want = have.elem, want.elem
        if isinstance(have, ir.TupleType) and isinstance(want, ir.TupleType):
            for x, y in zip(have.items, want.items):
                found = self.length_mismatch(x, y)
                if found is not None:
                    return found
        return None

    # ------------------------------------------------------------ literals and names

    def _e_IntLit(self, e: ast.IntLit, ctx, expected):
        if e.value > I64_MAX:
            self.report.error(e.span, "this integer does not fit in 64 bits", "too large",
                              [f"ints range from {-I64_MAX - 1} to {I64_MAX}"])
            return self.err(e.span)
        return int_lit(e.value, e.span)

    def _e_FloatLit(self, e, ctx, expected):
        if not math.isfinite(e.value):
            self.report.error(e.span, "this float is too large for 64 bits", "too large",
                              ["floats range up to about 1.8e308"])
            return self.err(e.span)
        return ir.Lit(e.value, FLOAT, e.span)

    def _e_BoolLit(self, e, ctx, expected):
        return ir.Lit(e.value, BOOL, e.span)

    def _e_StrLit(self, e, ctx, expected):
        if ctx.what not in ("a glyph", "a render line"):
            self.report.error(e.span, "strings can only be used in `render` and in level legends",
                              "a string")
            return self.err(e.span)
        return ir.Lit(e.value, STR, e.span)

    def _e_Name(self, e: ast.Name, ctx: Context, expected):
        return self.name_ref(e.id, e.span, ctx)

    def name_ref(self, name: str, span: Span, ctx: Context) -> ir.Expr:
        local = ctx.lookup(name)
        if local is not None:
            local.used = True
            if ctx.mode == "static" and local.kind not in ("loop", "sym_var"):
                self.report.error(span, f"`{name}` is a local, and this must be known before the episode starts")
                return self.err(span)
            return ir.Ref(local.kind, name, local.type, span)
        sym = self.resolve_global(name, span)
        if sym is None:
            if name in BUILTIN_VALUES:
                return self.builtin_value(name, span, ctx)
            if name in BUILTIN_FUNCTIONS:
                self.report.error(span, f"`{name}` is a built-in function; call it with `(...)`")
                return self.err(span)
            self.report.error(span, f"I cannot find a name `{name}`", "not defined",
                              self.did_you_mean(name, lambda: self.visible_names(ctx)))
            return self.err(span)
        if sym.kind in ("fn", "action"):
            self.report.error(span, f"`{name}` is {'a function' if sym.kind == 'fn' else 'an action'}, not a value",
                              hints=[f"call it: `{name}(...)`"] if sym.kind == "fn" else [])
            return self.err(span)
        if sym.kind == "enum":
            self.report.error(span, f"`{name}` is an enum type, not a value",
                              hints=[f"name a variant: `{name}.{sym.decl.variants[0][0]}`"] if sym.decl.variants else [])
            return self.err(span)
        if sym.kind == "variant":
            if is_err(sym.type):
                return self.err(span)
            return ir.Lit(sym.type.variants.index(name), sym.type, span)
        if ctx.mode == "static" and sym.kind in ("state", "view"):
            self.report.error(span, f"`{name}` is {'state' if sym.kind == 'state' else 'a view of the state'}, "
                              f"but {ctx.what} must be known before the episode starts",
                              f"{sym.kind} read here", ["only params, consts and literals can be used here"])
            return self.err(span)
        if sym.kind == "state":
            self.note_state_read(name, ctx)
        if sym.kind == "view":
            self.effects_of(ctx.owner).calls.append(("view:" + name, span))
        if sym.type is None or is_err(sym.type):
            return ir.Ref(sym.kind, name, ERR, span)
        return ir.Ref(sym.kind, name, sym.type, span)

    def builtin_value(self, name: str, span: Span, ctx: Context) -> ir.Expr:
        if name == "pi":
            return ir.Ref("builtin", "pi", FLOAT, span)
        if name == "players":
            return int_lit(self.players, span)
        if ctx.mode == "static" and name != "num_actions":
            self.report.error(span, f"`{name}` changes during an episode, but {ctx.what} must be known before it starts")
            return self.err(span)
        if name == "player":
            t = ir.IntType(ir.Lit(0, INT, span), ir.Lit(self.players, INT, span))
            return ir.Ref("builtin", "player", t, span)
        if name == "difficulty":
            return ir.Ref("builtin", "difficulty", ir.IntType(ir.Lit(0, INT, span), None), span)
        return ir.Ref("builtin", name, INT, span)

    # ------------------------------------------------------------ operators

    def _e_Unary(self, e: ast.Unary, ctx, expected):
        operand = self.expr(e.operand, ctx, expected if e.op != "not" else None)
        t = operand.type
        if is_err(t):
            return self.err(e.span)
        if e.op == "not":
            if not self.expect(operand, BOOL, "the operand of `not`", e.operand.span):
                return self.err(e.span)
            return ir.Unary("not", operand, BOOL, e.span)
        if not is_numeric(t):
            self.report.error(e.span, f"`{e.op}` needs a number, but this is {_a(t)}", hints=(
                ["use `not` to negate a bool"] if isinstance(t, ir.BoolType) else []))
            return self.err(e.span)
        if e.op == "+":
            return operand
        if isinstance(operand, ir.Lit) and is_int(t):
            return int_lit(-operand.value, e.span)
        if isinstance(operand, ir.Lit) and is_float(t):
            return ir.Lit(-operand.value, FLOAT, e.span)
        if is_int(t) and isinstance(t, ir.IntType) and t.bounded:
            rt = ir.IntType(sub(ir.Lit(1, INT, e.span), t.hi, e.span), sub(ir.Lit(1, INT, e.span), t.lo, e.span))
            return ir.Unary("neg", operand, rt, e.span)
        return ir.Unary("neg", operand, INT if is_int(t) else FLOAT, e.span)

    def _e_Binary(self, e: ast.Binary, ctx, expected):
        if e.op in ("and", "or"):
            left = self.expr(e.left, ctx)
            right = self.expr(e.right, ctx)
            ok = self.expect(left, BOOL, f"the left side of `{e.op}`", e.left.span)
            ok = self.expect(right, BOOL, f"the right side of `{e.op}`", e.right.span) and ok
            if not ok:
                return self.err(e.span)
            return ir.Binary(e.op, left, right, BOOL, e.span)
        want = expected if is_float(expected) else None
        left = self.expr(e.left, ctx, want)
        right = self.expr(e.right, ctx, want)
        return self.arith(_BINOPS[e.op], left, right, e.span, e.op_span, e.op)

    def arith(self, op: str, left: ir.Expr, right: ir.Expr, span: Span, op_span: Span, sign: str) -> ir.Expr:
        lt, rt = left.type, right.type
        if is_err(lt) or is_err(rt):
            return self.err(span)
        if is_float(lt) and is_int(rt) and _is_int_literal(right):
            right, rt = to_float_literal(right), FLOAT
        elif is_int(lt) and is_float(rt) and _is_int_literal(left):
            left, lt = to_float_literal(left), FLOAT
        for side, t in (("left", lt), ("right", rt)):
            if not is_numeric(t):
                hint = []
                if isinstance(t, ir.EnumType):
                    hint = ["convert an enum to its number with `int(...)`"]
                elif isinstance(t, ir.ArrayType):
                    hint = ["arithmetic works on numbers; loop over the array or use `sum(...)`"]
                self.report.error(op_span, f"`{sign}` needs numbers, but its {side} side is {_a(t)}",
                                  f"{side} side is {_a(t)}", hint)
                return self.err(span)
        if is_int(lt) != is_int(rt):
            int_side = "left" if is_int(lt) else "right"
            self.report.error(op_span, f"`{sign}` mixes an int and a float",
                              "int and float", [f"convert the {int_side} side with `float(...)`; "
                                                "ints and floats never mix silently"])
            return self.err(span)
        if is_float(lt):
            return ir.Binary(op, left, right, FLOAT, span)
        if op == "pow" and isinstance(right, ir.Lit) and right.value < 0:
            self.report.error(right.span, "an int raised to a negative power is not an int",
                              hints=["use floats: `float(x) ** -1.0`"])
            return self.err(span)
        if op in ("div", "mod") and isinstance(right, ir.Lit) and right.value == 0:
            self.report.error(right.span, "division by zero" if op == "div" else "modulo by zero")
            return self.err(span)
        if isinstance(left, ir.Lit) and isinstance(right, ir.Lit):
            # Literals fold here; one that overflows would fault wherever it runs.
            from .consteval import EvalError
            from .consteval import arith as fold
            try:
                return int_lit(fold(op, left.value, right.value, span), span)
            except EvalError as exc:
                self.report.error(span, f"{exc.message}", "overflows",
                                  ["ints are 64-bit: they range from -9223372036854775808 to 9223372036854775807"])
                return self.err(span)
        return ir.Binary(op, left, right, self.int_result_type(op, lt, rt, right, span), span)

    def int_result_type(self, op, lt, rt, right, span):
        """Bounds of an int result, where simple interval arithmetic gives them."""
        lb = isinstance(lt, ir.IntType) and lt.bounded
        rb = isinstance(rt, ir.IntType) and rt.bounded
        if op == "add" and lb and rb:
            return ir.IntType(add(lt.lo, rt.lo, span), sub(add(lt.hi, rt.hi, span), ir.Lit(1, INT, span), span))
        if op == "sub" and lb and rb:
            return ir.IntType(sub(lt.lo, sub(rt.hi, ir.Lit(1, INT, span), span), span),
                              sub(lt.hi, rt.lo, span))
        if op == "mod" and isinstance(right, ir.Lit) and right.value > 0:
            return ir.IntType(ir.Lit(0, INT, span), ir.Lit(right.value, INT, span))
        if op == "mod" and rb and isinstance(rt.lo, ir.Lit) and rt.lo.value > 0:
            return ir.IntType(ir.Lit(0, INT, span), sub(rt.hi, ir.Lit(1, INT, span), span))
        return INT

    def _e_Compare(self, e: ast.Compare, ctx, expected):
        operands = [self.expr(x, ctx) for x in e.operands]
        ok = True
        for i, (op, span) in enumerate(zip(e.ops, e.op_spans)):
            a, b = operands[i], operands[i + 1]
            if is_err(a.type) or is_err(b.type):
                ok = False
                continue
            if is_float(a.type) and _is_int_literal(b):
                operands[i + 1] = b = to_float_literal(b)
            elif is_float(b.type) and _is_int_literal(a):
                operands[i] = a = to_float_literal(a)
            if op in ("==", "!="):
                comparable = same_kind(a.type, b.type) and not isinstance(a.type, (ir.StrType, ir.UnitType)) \
                    and self.length_mismatch(a.type, b.type) is None
            else:
                comparable = same_kind(a.type, b.type) and is_numeric(a.type)
            if not comparable:
                ok = False
                hints = []
                if is_int(a.type) and is_float(b.type) or is_float(a.type) and is_int(b.type):
                    hints.append("convert the int side with `float(...)`")
                elif isinstance(a.type, ir.EnumType) or isinstance(b.type, ir.EnumType):
                    hints.append("enums compare only with `==` and `!=`, against the same enum")
                self.report.error(span, f"I cannot compare {_a(a.type)} with {_a(b.type)} using `{op}`",
                                  "these do not compare", hints)
        if not ok:
            return self.err(e.span)
        return ir.Compare(tuple(operands), tuple(_CMPOPS[o] for o in e.ops), BOOL, e.span)

    def _e_IfExpr(self, e: ast.IfExpr, ctx, expected):
        cond = self.expr(e.cond, ctx)
        self.expect(cond, BOOL, "the condition of `if`", e.cond.span)
        then = self.expr(e.then, ctx, expected)
        else_ = self.expr(e.else_, ctx, expected)
        t = self.unify(then, else_, e.span, "the two branches of `if ... then ... else`")
        if t is None:
            return self.err(e.span)
        then, else_ = self.coerce(then, t), self.coerce(else_, t)
        return ir.Cond(cond, then, else_, t, e.span)

    def unify(self, a: ir.Expr, b: ir.Expr, span: Span, what: str):
        """The common type of two expressions, widening int bounds; None after an error."""
        ta, tb = a.type, b.type
        if is_err(ta):
            return tb
        if is_err(tb):
            return ta
        if is_float(ta) and _is_int_literal(b):
            return FLOAT
        if is_float(tb) and _is_int_literal(a):
            return FLOAT
        if not same_kind(ta, tb):
            self.report.error(span, f"{what} have different types: {describe(ta)} and {describe(tb)}",
                              hints=["convert one side with `float(...)` or `int(...)`"]
                              if is_numeric(ta) and is_numeric(tb) else [])
            return None
        lengths = self.length_mismatch(tb, ta)
        if lengths is not None:
            self.report.error(span, f"{what} are arrays of different lengths: {describe(ta)} and {describe(tb)}",
                              f"{lengths[1]} and {lengths[0]} items", ["arrays have a fixed length"])
            return None
        return self.hull(ta, tb, span)

    def hull(self, ta, tb, span):
        if isinstance(ta, ir.IntType) and isinstance(tb, ir.IntType):
            if ta.bounded and tb.bounded:
                return ir.IntType(minimum(ta.lo, tb.lo, span), maximum(ta.hi, tb.hi, span))
            return INT
        if isinstance(ta, ir.ArrayType) and isinstance(tb, ir.ArrayType):
            return ir.ArrayType(self.hull(ta.elem, tb.elem, span), ta.size)
        if isinstance(ta, ir.TupleType) and isinstance(tb, ir.TupleType):
            return ir.TupleType(tuple(self.hull(x, y, span) for x, y in zip(ta.items, tb.items)))
        return ta

    # ------------------------------------------------------------ indexing and fields

    def _e_Index(self, e: ast.Index, ctx, expected):
        base = self.expr(e.base, ctx)
        index = self.expr(e.index, ctx)
        if is_err(base.type):
            return self.err(e.span)
        if not isinstance(base.type, ir.ArrayType):
            hints = []
            if isinstance(base.type, ir.TupleType):
                hints.append("take a tuple apart with `let (a, b) = ...`")
            self.report.error(e.base.span, f"only arrays can be indexed, but this is {_a(base.type)}",
                              f"{_a(base.type)}", hints)
            return self.err(e.span)
        if not is_err(index.type) and not is_int(index.type):
            hints = ["convert an enum with `int(...)`"] if isinstance(index.type, ir.EnumType) else []
            self.report.error(e.index.span, f"an index must be an int, but this is {_a(index.type)}",
                              hints=hints)
            return self.err(e.span)
        self.check_constant_index(index, base.type.size, e.index.span)
        return ir.Index(base, index, base.type.elem, e.span)

    def check_constant_index(self, index: ir.Expr, size: ir.Expr, span: Span) -> None:
        value = self.static_value(index)
        if not isinstance(value, int) or isinstance(value, bool):
            return
        n = self.static_value(size)
        if value < 0:
            self.report.error(span, f"index {value} is negative", "out of bounds",
                              ["indices start at 0; there is no negative indexing"])
        elif isinstance(n, int) and value >= n:
            self.report.error(span, f"index {value} is out of bounds for an array of {n} elements",
                              "out of bounds", [f"valid indices are 0..{n}" if n else "the array is empty"])

    def _e_Field(self, e: ast.Field, ctx, expected):
        if isinstance(e.base, ast.Name):
            sym = self.resolve_global(e.base.id, e.base.span)
            if sym is not None and sym.kind == "enum":
                etype = sym.type
                if e.name in etype.variants:
                    return ir.Lit(etype.variants.index(e.name), etype, e.span)
                self.report.error(e.name_span, f"enum `{sym.name}` has no variant `{e.name}`",
                                  "no such variant", self.did_you_mean(e.name, etype.variants))
                return self.err(e.span)
        self.report.error(e.span, "only an enum's variants can be reached with `.`",
                          hints=["write `Enum.VARIANT`, or index arrays with `[i]`"])
        return self.err(e.span)

    # ------------------------------------------------------------ collections

    def _e_TupleLit(self, e: ast.TupleLit, ctx, expected):
        exp = expected.items if isinstance(expected, ir.TupleType) and len(expected.items) == len(e.items) else [None] * len(e.items)
        items = tuple(self.expr(x, ctx, t) for x, t in zip(e.items, exp))
        if len(items) < 2:
            self.report.error(e.span, "a tuple needs at least two items")
            return self.err(e.span)
        return ir.TupleLit(items, ir.TupleType(tuple(x.type for x in items)), e.span)

    def _e_ListLit(self, e: ast.ListLit, ctx, expected):
        if not e.items:
            self.report.error(e.span, "an empty list has no type and no use",
                              hints=["make an empty-looking array of fixed size with `[0; n]`"])
            return self.err(e.span)
        want = expected.elem if isinstance(expected, ir.ArrayType) else None
        items = [self.expr(x, ctx, want) for x in e.items]
        t = items[0].type
        if any(is_float(x.type) for x in items) and all(is_float(x.type) or _is_int_literal(x) for x in items):
            items = [to_float_literal(x) if _is_int_literal(x) else x for x in items]
            t = FLOAT
        for x, src in zip(items[1:], e.items[1:]):
            u = self.unify(ir.Lit(0, t, e.span), x, src.span, "the items of a list")
            if u is None:
                return self.err(e.span)
            t = self.hull(t, x.type, e.span) if not is_err(x.type) else t
        return ir.ArrayLit(tuple(items), ir.ArrayType(t, ir.Lit(len(items), INT, e.span)), e.span)

    def _e_RepeatLit(self, e: ast.RepeatLit, ctx, expected):
        want = expected.elem if isinstance(expected, ir.ArrayType) else None
        value = self.expr(e.value, ctx, want)
        count = self.size_expr(e.count, ctx, "the length in `[value; length]`")
        if is_err(value.type) or count is None:
            return self.err(e.span)
        return ir.ArrayRepeat(value, count, ir.ArrayType(value.type, count), e.span)

    def size_expr(self, e: ast.Expr, ctx: Context, what: str) -> Optional[ir.Expr]:
        """An array size: an int known before the episode starts, not too large."""
        sctx = Context("static", what, ctx.owner, scopes=[{}])
        size = self.expr(e, sctx)
        if is_err(size.type):
            return None
        if not self.expect(size, INT, what, e.span):
            return None
        n = self.must_value(size, what)
        if isinstance(n, int):
            if n < 0:
                self.report.error(e.span, f"{what} is {n} with the default params; sizes cannot be negative")
                return None
            if n > 100_000_000:
                self.report.error(e.span, f"{what} is {n:,} with the default params, beyond the limit "
                                  "of 100,000,000 cells", "too large")
                return None
        return self.fold(size)

    def _e_ListComp(self, e: ast.ListComp, ctx, expected):
        comp = e.comprehension
        if comp.where is not None:
            self.report.error(comp.where.span, "a list comprehension cannot filter with `where`: "
                              "arrays have a fixed size", hints=["use `if ... then ... else` in the element instead"])
        ctx.push()
        clauses = self.clauses(comp.clauses, ctx)
        want = expected.elem if isinstance(expected, ir.ArrayType) else None
        element = self.expr(comp.element, ctx, want) if clauses is not None else None
        ctx.pop()
        if clauses is None or element is None or is_err(element.type):
            return self.err(e.span)
        # The size is the product of the clause sizes, each known before the episode.
        size: Optional[ir.Expr] = None
        t = element.type
        for clause in reversed(clauses):
            n = self.clause_size(clause)
            if n is None:
                self.report.error(clause.span, "the size of this list depends on the state; "
                                  "arrays have a size fixed per instance",
                                  hints=["iterate over a range of params and consts"])
                return self.err(e.span)
            size = n if size is None else ir.Binary("mul", n, size, INT, e.span)
        if len(clauses) > 1:
            size = self.fold(size)
        return ir.ArrayComp(element, tuple(clauses), ir.ArrayType(t, size), e.span)

    def clause_size(self, clause: ir.Clause) -> Optional[ir.Expr]:
        it = clause.iter
        if isinstance(it, ir.RangeIter):
            if self.is_static(it.lo) and self.is_static(it.hi):
                return self.fold(ir.BuiltinCall("max", (sub(it.hi, it.lo, it.span), ir.Lit(0, INT, it.span)), INT, it.span)) \
                    if not (isinstance(it.lo, ir.Lit) and isinstance(it.hi, ir.Lit)) else ir.Lit(max(it.hi.value - it.lo.value, 0), INT, it.span)
            return None
        t = it.array.type
        return t.size if isinstance(t, ir.ArrayType) else None

    def clauses(self, clauses, ctx: Context) -> Optional[list[ir.Clause]]:
        out = []
        for c in clauses:
            it = self.iterable(c.iterable, ctx)
            if it is None:
                return None
            elem = self.iter_elem_type(it)
            names = c.target.names
            if c.target.is_tuple:
                if not isinstance(elem, ir.TupleType) or len(elem.items) != len(names):
                    if not is_err(elem):
                        self.report.error(c.target.span, f"I cannot take {_a(elem)} apart into "
                                          f"{len(names)} names", f"{len(names)} names")
                    return None
                types = elem.items
            else:
                types = (elem,)
            for n, s, t in zip(names, c.target.spans, types):
                self.check_new_name(n, s, ctx)
                ctx.bind(Local("loop", n, t, s, used=True))
            out.append(ir.Clause(tuple(names), tuple(types), it, c.span))
        return out

    def iterable(self, e: ast.Expr, ctx: Context):
        if isinstance(e, ast.Range):
            lo = self.expr(e.lo, ctx)
            hi = self.expr(e.hi, ctx)
            ok = self.expect(lo, INT, "the start of a range", e.lo.span)
            ok = self.expect(hi, INT, "the end of a range", e.hi.span) and ok
            if not ok:
                return None
            if e.inclusive:
                hi = add(hi, ir.Lit(1, INT, e.span), e.span)
            return ir.RangeIter(lo, hi, e.span)
        arr = self.expr(e, ctx)
        if is_err(arr.type):
            return None
        if not isinstance(arr.type, ir.ArrayType):
            hints = ["iterate over a range: `for i in 0..n`"] if is_int(arr.type) else []
            self.report.error(e.span, f"I can only iterate over a range or an array, but this is {_a(arr.type)}",
                              hints=hints)
            return None
        return ir.ArrayIter(arr, e.span)

    def iter_elem_type(self, it):
        if isinstance(it, ir.RangeIter):
            if self.is_static(it.lo) and self.is_static(it.hi):
                return ir.IntType(it.lo, it.hi)
            return INT
        return it.array.type.elem

    def _e_Range(self, e: ast.Range, ctx, expected):
        self.report.error(e.span, "a range can only follow `in` (in `for`, comprehensions and types)")
        return self.err(e.span)

    def _e_MapLit(self, e: ast.MapLit, ctx, expected):
        return self.level_literal(e, ctx)

    # ------------------------------------------------------------ helpers

    def fold(self, e: ir.Expr) -> ir.Expr:
        value = self.static_value(e, params=False)
        if isinstance(value, int) and not isinstance(value, bool):
            return ir.Lit(value, INT, e.span)
        return e


def _a(t) -> str:
    """`an int`, `a float`, `an array [int; 9]`."""
    if is_err(t):
        return "an invalid value"
    if isinstance(t, ir.ArrayType):
        return f"an array {describe(t)}"
    if isinstance(t, ir.TupleType):
        return f"a tuple {describe(t)}"
    if isinstance(t, ir.EnumType):
        return f"a `{t.name}`"
    if isinstance(t, ir.StrType):
        return "a string"
    if isinstance(t, ir.UnitType):
        return "nothing (this call returns no value)"
    word = describe(t)
    return ("an " if word[0] in "aeiou" else "a ") + word


article = _a
