"""Checking calls: user functions, built-ins, and aggregates over comprehensions."""

from __future__ import annotations

from typing import Optional

from . import ast, ir
from .checker_state import CheckerState
from .diagnostics import Span
from .exprs import (AGGREGATES, BUILTIN_FUNCTIONS, MATH_FLOAT1, OBSERVE_ONLY, RANDOM,
                    STATEMENT_BUILTINS, article)
from .scope import Context
from .stmts import kind_phrase
from .types import BOOL, FLOAT, INT, is_err, is_float, is_int, is_numeric, scalar_of, with_scalar

_ARITY = {
    "abs": (1, 1), "sign": (1, 1), "clamp": (3, 3), "atan2": (2, 2), "float": (1, 1), "int": (1, 1),
    "f32": (1, 1), "len": (1, 1), "rows": (1, 1), "cols": (1, 1), "find": (2, 2),
    "uniform": (2, 2), "randint": (2, 2), "shuffle": (1, 1), "random_action": (0, 0),
    "act": (1, 1), "next_player": (0, 0), "onehot": (1, 1), "planes": (1, 1),
    "min": (2, 99), "max": (2, 99), "choice": (1, 1),
}


class CallChecker(CheckerState):
    def _e_Call(self, e: ast.Call, ctx: Context, expected):
        return self.call(e, ctx, expected, as_statement=False)

    def call(self, e: ast.Call, ctx: Context, expected, as_statement: bool) -> ir.Expr:
        # Functions and values have separate names: a value named `max` leaves `max(...)` alone.
        if e.func in BUILTIN_FUNCTIONS:
            return self.builtin_call(e, ctx, expected, as_statement)
        sym = self.resolve_global(e.func, e.func_span)
        if ctx.lookup(e.func) is not None:
            self.report.error(e.func_span, f"`{e.func}` is a local value, not a function")
            return self.err(e.span)
        if sym is not None and sym.kind == "fn":
            return self.user_call(e, sym, ctx)
        if sym is not None and sym.kind == "action":
            self.report.error(e.func_span, f"`{e.func}` is an action; actions cannot be called",
                              hints=["move the shared effect into a `fn` and call it from the actions",
                                     "`act(k)` applies action number k when it is legal"])
            return self.err(e.span)
        if sym is not None:
            self.report.error(e.func_span, f"`{e.func}` is {kind_phrase(sym.kind)}, not a function")
            return self.err(e.span)
        self.report.error(e.func_span, f"I cannot find a function `{e.func}`", "not defined",
                          self.did_you_mean(e.func, lambda: list(BUILTIN_FUNCTIONS) + self.function_names()))
        return self.err(e.span)

    # ------------------------------------------------------------ user functions

    def user_call(self, e: ast.Call, sym, ctx: Context) -> ir.Expr:
        sig = self.signature(sym.name)
        if e.comprehension is not None:
            self.report.error(e.span, f"`{e.func}` is a function, not an aggregate; it cannot take a comprehension")
            return self.err(e.span)
        if sig is None:
            for a in e.args:
                self.expr(a, ctx)
            return self.err(e.span)
        params, ret = sig
        args = [self.expr(a, ctx, p.type) for a, p in zip(e.args, params)]
        if len(e.args) != len(params):
            for a in e.args[len(params):]:
                self.expr(a, ctx)
            # A tuple-valued argument can stand for several parameters.
            self.report.error(e.span, f"`{e.func}` takes {len(params)} argument{'s' if len(params) != 1 else ''}, "
                              f"but {len(e.args)} {'were' if len(e.args) != 1 else 'was'} given",
                              hints=["its parameters: " + ", ".join(f"{p.name}: {p.type}" for p in params)]
                              if params else [])
            return self.err(e.span)
        for a, arg, p in zip(e.args, args, params):
            self.expect(arg, p.type, f"argument `{p.name}` of `{e.func}`", a.span)
        self.record_call(sym.name, e.func_span, ctx)
        return ir.Call(sym.name, tuple(args), ret, e.span)

    # ------------------------------------------------------------ built-ins

    def builtin_call(self, e: ast.Call, ctx: Context, expected, as_statement: bool) -> ir.Expr:
        name = e.func
        if name in OBSERVE_ONLY:
            self.report.error(e.func_span, f"`{name}(...)` describes an observation; it can only be used in `observe`")
            return self.err(e.span)
        if name in RANDOM and not self.allow_random(ctx, e.func_span, name):
            return self.err(e.span)
        if name in STATEMENT_BUILTINS and not as_statement:
            self.report.error(e.func_span, f"`{name}()` is a statement and gives no value")
            return self.err(e.span)
        if e.comprehension is not None:
            if name not in AGGREGATES:
                self.report.error(e.span, f"`{name}` does not take a comprehension",
                                  hints=["the aggregates are " + ", ".join(f"`{a}`" for a in sorted(AGGREGATES))])
                return self.err(e.span)
            return self.aggregate(e, ctx, expected)
        if name in ("all", "any", "sum", "count"):
            if len(e.args) == 1:
                return self.aggregate_array(e, ctx)
            self.report.error(e.span, f"`{name}` takes a comprehension, like `{name}(x > 0 for x in xs)`")
            return self.err(e.span)
        lo, hi = _ARITY.get(name, (1, 1))
        if name in ("min", "max") and len(e.args) == 1:
            return self.aggregate_array(e, ctx)
        if not lo <= len(e.args) <= hi:
            want = f"{lo}" if lo == hi else f"at least {lo}"
            self.report.error(e.span, f"`{name}` takes {want} argument{'s' if lo != 1 else ''}, "
                              f"but {len(e.args)} {'were' if len(e.args) != 1 else 'was'} given")
            return self.err(e.span)
        method = getattr(self, "_b_" + name, None)
        if method is not None:
            return method(e, ctx, expected)
        if name in MATH_FLOAT1:
            x = self.expr(e.args[0], ctx, FLOAT)
            if not self.expect(x, FLOAT, f"the argument of `{name}`", e.args[0].span):
                return self.err(e.span)
            return ir.BuiltinCall(name, (x,), FLOAT, e.span)
        raise AssertionError(name)

    def allow_random(self, ctx: Context, span: Span, name: str) -> bool:
        if ctx.mode != "effect":
            self.report.error(span, f"`{name}` is random, and {ctx.what} must not be",
                              "random", ["random draws belong in `reset` and in action effects"])
            return False
        effects = self.effects_of(ctx.owner)
        if name in ("random_action", "act"):
            effects.applies_actions = effects.applies_actions or span
        effects.random = effects.random or span
        return True

    def numeric_args(self, e: ast.Call, ctx: Context, expected) -> Optional[list[ir.Expr]]:
        want = FLOAT if is_float(expected) else None
        args = [self.expr(a, ctx, want) for a in e.args]
        if any(is_err(a.type) for a in args):
            return None
        if any(is_float(a.type) for a in args):
            from .exprs import _is_int_literal, to_float_literal
            args = [to_float_literal(a) if is_int(a.type) and _is_int_literal(a) else a for a in args]
        for a, src in zip(args, e.args):
            if not is_numeric(a.type):
                self.report.error(src.span, f"`{e.func}` needs numbers, but this is {article(a.type)}")
                return None
        if len({is_int(a.type) for a in args}) > 1:
            self.report.error(e.span, f"the arguments of `{e.func}` mix ints and floats",
                              hints=["convert the ints with `float(...)`"])
            return None
        return args

    def _b_abs(self, e, ctx, expected):
        args = self.numeric_args(e, ctx, expected)
        if args is None:
            return self.err(e.span)
        t = args[0].type
        if isinstance(t, ir.IntType) and t.bounded:
            from .types import maximum, sub
            hi = maximum(t.hi, sub(ir.Lit(1, INT, e.span), t.lo, e.span), e.span)
            t = ir.IntType(ir.Lit(0, INT, e.span), hi)
        elif is_int(t):
            t = INT
        return ir.BuiltinCall("abs", tuple(args), t, e.span)

    def _b_sign(self, e, ctx, expected):
        args = self.numeric_args(e, ctx, expected)
        if args is None:
            return self.err(e.span)
        t = ir.IntType(ir.Lit(-1, INT, e.span), ir.Lit(2, INT, e.span)) if is_int(args[0].type) else FLOAT
        return ir.BuiltinCall("sign", tuple(args), t, e.span)

    def _minmax(self, e, ctx, expected):
        args = self.numeric_args(e, ctx, expected)
        if args is None:
            return self.err(e.span)
        t = args[0].type
        for a in args[1:]:
            t = self.hull(t, a.type, e.span)
        return ir.BuiltinCall(e.func, tuple(args), t, e.span)

    _b_min = _minmax
    _b_max = _minmax

    def _b_clamp(self, e, ctx, expected):
        args = self.numeric_args(e, ctx, expected)
        if args is None:
            return self.err(e.span)
        t = args[0].type
        if is_int(t) and all(isinstance(a.type, ir.IntType) and a.type.bounded for a in args[1:]):
            t = ir.IntType(args[1].type.lo, args[2].type.hi)
        elif is_int(t):
            t = INT
        return ir.BuiltinCall("clamp", tuple(args), t, e.span)

    def _b_atan2(self, e, ctx, expected):
        args = [self.expr(a, ctx, FLOAT) for a in e.args]
        ok = all(self.expect(a, FLOAT, "an argument of `atan2`", s.span) for a, s in zip(args, e.args))
        return ir.BuiltinCall("atan2", tuple(args), FLOAT, e.span) if ok else self.err(e.span)

    def _b_float(self, e, ctx, expected):
        x = self.expr(e.args[0], ctx)
        if is_err(x.type):
            return self.err(e.span)
        if not isinstance(x.type, (ir.IntType, ir.FloatType, ir.BoolType)):
            self.report.error(e.args[0].span, f"`float` converts ints and bools, not {article(x.type)}")
            return self.err(e.span)
        return ir.BuiltinCall("float", (x,), FLOAT, e.span)

    def _b_int(self, e, ctx, expected):
        x = self.expr(e.args[0], ctx)
        if is_err(x.type):
            return self.err(e.span)
        if isinstance(x.type, ir.EnumType):
            n = len(x.type.variants)
            t = ir.IntType(ir.Lit(0, INT, e.span), ir.Lit(n, INT, e.span))
        elif isinstance(x.type, ir.BoolType):
            t = ir.IntType(ir.Lit(0, INT, e.span), ir.Lit(2, INT, e.span))
        elif isinstance(x.type, ir.IntType):
            return x
        elif is_float(x.type):
            t = INT
        else:
            self.report.error(e.args[0].span, f"`int` converts floats, bools and enums, not {article(x.type)}")
            return self.err(e.span)
        return ir.BuiltinCall("int", (x,), t, e.span)

    def _b_f32(self, e, ctx, expected):
        x = self.expr(e.args[0], ctx, with_scalar(expected, FLOAT) if expected is not None else None)
        if is_err(x.type):
            return self.err(e.span)
        if not is_float(scalar_of(x.type)):
            self.report.error(e.args[0].span, f"`f32` rounds floats to float32, but this is {article(x.type)}")
            return self.err(e.span)
        return ir.BuiltinCall("f32", (x,), x.type, e.span)

    def _size_of(self, e, ctx, dims_needed: int):
        x = self.expr(e.args[0], ctx)
        if is_err(x.type):
            return None
        t = x.type
        for _ in range(dims_needed):
            if not isinstance(t, ir.ArrayType):
                self.report.error(e.args[0].span, f"`{e.func}` needs a {'2-D ' if dims_needed == 2 else ''}array, "
                                  f"but this is {article(x.type)}")
                return None
            size, t = t.size, t.elem
        return size

    def _b_len(self, e, ctx, expected):
        size = self._size_of(e, ctx, 1)
        return self.err(e.span) if size is None else size

    _b_rows = _b_len

    def _b_cols(self, e, ctx, expected):
        size = self._size_of(e, ctx, 2)
        return self.err(e.span) if size is None else size

    def _b_find(self, e, ctx, expected):
        level, char = e.args
        if not isinstance(level, ast.Name) or level.id not in self.levels:
            self.report.error(level.span, "`find` looks in a level: its first argument must name a "
                              "const defined with `map \"\"\"...\"\"\"`")
            return self.err(e.span)
        if not isinstance(char, ast.StrLit) or len(char.value) != 1:
            self.report.error(char.span, "`find` looks for one character, written as a string like \"A\"")
            return self.err(e.span)
        self.resolve_global(level.id, level.span)
        text_rows = self.levels[level.id]
        hits = [(r, c) for r, row in enumerate(text_rows) for c, ch in enumerate(row) if ch == char.value]
        if len(hits) != 1:
            self.report.error(char.span, f"`find` needs exactly one {char.value!r} in the level, but there "
                              f"{'are' if len(hits) != 1 else 'is'} {len(hits)}")
            return self.err(e.span)
        (r, c), = hits
        from .types import int_lit
        items = (int_lit(r, e.span), int_lit(c, e.span))
        return ir.TupleLit(items, ir.TupleType((items[0].type, items[1].type)), e.span)

    def _b_uniform(self, e, ctx, expected):
        args = [self.expr(a, ctx, FLOAT) for a in e.args]
        ok = all(self.expect(a, FLOAT, "a bound of `uniform`", s.span) for a, s in zip(args, e.args))
        return ir.BuiltinCall("uniform", tuple(args), FLOAT, e.span) if ok else self.err(e.span)

    def _b_randint(self, e, ctx, expected):
        args = [self.expr(a, ctx) for a in e.args]
        ok = all(self.expect(a, INT, "a bound of `randint`", s.span) for a, s in zip(args, e.args))
        if not ok:
            return self.err(e.span)
        t = ir.IntType(args[0], args[1]) if all(self.is_static(a) for a in args) else INT
        return ir.BuiltinCall("randint", tuple(args), t, e.span)

    def _b_choice(self, e, ctx, expected):
        x = self.expr(e.args[0], ctx)
        if is_err(x.type):
            return self.err(e.span)
        if not isinstance(x.type, ir.ArrayType):
            self.report.error(e.args[0].span, f"`choice` picks from an array or a list, not {article(x.type)}",
                              hints=["or from a comprehension: `choice(x in 0..n where ok(x))`"])
            return self.err(e.span)
        return ir.BuiltinCall("choice", (x,), x.type.elem, e.span)

    def _b_act(self, e, ctx, expected):
        k = self.expr(e.args[0], ctx)
        if not self.expect(k, INT, "the action number given to `act`", e.args[0].span):
            return self.err(e.span)
        return ir.BuiltinCall("act", (k,), BOOL, e.span)

    # ------------------------------------------------------------ aggregates

    def aggregate(self, e: ast.Call, ctx: Context, expected) -> ir.Expr:
        comp = e.comprehension
        ctx.push()
        clauses = self.clauses(comp.clauses, ctx)
        if clauses is None:
            ctx.pop()
            return self.err(e.span)
        where = None
        if comp.where is not None:
            where = self.expr(comp.where, ctx)
            self.expect(where, BOOL, "a `where` filter", comp.where.span)
        element = self.expr(comp.element, ctx, FLOAT if is_float(expected) and e.func in ("sum", "min", "max") else None)
        ctx.pop()
        if is_err(element.type):
            return self.err(e.span)
        kind = e.func
        if kind in ("all", "any", "count"):
            if not self.expect(element, BOOL, f"the element of `{kind}`", comp.element.span):
                return self.err(e.span)
            t = BOOL if kind != "count" else INT
        elif kind in ("sum", "min", "max"):
            if not is_numeric(element.type):
                self.report.error(comp.element.span, f"`{kind}` needs numbers, but this is {article(element.type)}")
                return self.err(e.span)
            t = element.type if kind != "sum" else (FLOAT if is_float(element.type) else INT)
        else:  # choice
            t = element.type
        return ir.Aggregate(kind, element, tuple(clauses), where, t, e.span)

    def aggregate_array(self, e: ast.Call, ctx: Context) -> ir.Expr:
        """`sum(xs)`, `all(flags)`, `max(xs)`: an aggregate over an array's elements."""
        arr = self.expr(e.args[0], ctx)
        if is_err(arr.type):
            return self.err(e.span)
        if not isinstance(arr.type, ir.ArrayType):
            self.report.error(e.args[0].span, f"`{e.func}` of one value needs an array, but this is "
                              f"{article(arr.type)}", hints=[f"or give a comprehension: `{e.func}(... for x in ...)`"])
            return self.err(e.span)
        elem_t = arr.type.elem
        name = f"__{e.func}_item"
        clause = ir.Clause((name,), (elem_t,), ir.ArrayIter(arr, e.args[0].span), e.span)
        element = ir.Ref("loop", name, elem_t, e.span)
        kind = e.func
        if kind in ("all", "any", "count") and not isinstance(elem_t, ir.BoolType):
            self.report.error(e.args[0].span, f"`{kind}` needs bools, but this array holds {article(elem_t)}")
            return self.err(e.span)
        if kind in ("sum", "min", "max") and not is_numeric(elem_t):
            self.report.error(e.args[0].span, f"`{kind}` needs numbers, but this array holds {article(elem_t)}")
            return self.err(e.span)
        t = {"all": BOOL, "any": BOOL, "count": INT}.get(kind, elem_t if kind != "sum" else (FLOAT if is_float(elem_t) else INT))
        return ir.Aggregate(kind, element, (clause,), None, t, e.span)
