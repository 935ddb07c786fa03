"""Evaluate IR expressions that do not depend on the state, with the params' defaults.

The checker uses it for sizes and bounds, constant indices and values, guards that can
never hold, and symmetry permutations. It follows the language's run-time semantics
(floor division, floored modulo, round half to even) so that what it proves holds.
"""

from __future__ import annotations

import math
import struct
from typing import Any, Mapping, Optional

from . import ir

MAX_CELLS = 100_000_000


class NotStatic(Exception):
    """The expression reads something only known at run time."""


class EvalError(Exception):
    """The expression fails for the default params (division by zero, bad index...)."""

    def __init__(self, message: str, span):
        super().__init__(message)
        self.message = message
        self.span = span


def floor_div(a, b, span=None):
    if b == 0:
        raise EvalError("division by zero", span)
    if isinstance(a, int) and isinstance(b, int):
        return a // b
    return a / b


def floor_mod(a, b, span=None):
    if b == 0:
        raise EvalError("modulo by zero", span)
    if isinstance(a, int) and isinstance(b, int):
        return a % b
    m = math.fmod(a, b)
    if m != 0 and ((b < 0) != (m < 0)):
        m += b
    return m


def to_f32(x: float) -> float:
    return struct.unpack("f", struct.pack("f", x))[0]


_MATH1 = {
    "sin": math.sin, "cos": math.cos, "tan": math.tan, "sqrt": math.sqrt, "exp": math.exp,
    "log": math.log, "floor": lambda x: float(math.floor(x)), "ceil": lambda x: float(math.ceil(x)),
    "round": lambda x: float(round(x)),
}


class Evaluator:
    """Evaluates with `values` for params, consts and bound variables."""

    def __init__(self, values: Mapping[str, Any], functions: Mapping[str, ir.Function] | None = None):
        self.values = values
        self.functions = functions or {}
        self.depth = 0

    def eval(self, e: ir.Expr, local: Optional[dict] = None) -> Any:
        local = local or {}
        m = getattr(self, "_" + type(e).__name__, None)
        if m is None:
            raise NotStatic(type(e).__name__)
        return m(e, local)

    def _Lit(self, e, local):
        return e.value

    def _Ref(self, e, local):
        if e.name in local:
            return local[e.name]
        if e.kind in ("param", "const", "loop", "fn_param", "action_param") and e.name in self.values:
            return self.values[e.name]
        if e.kind == "builtin" and e.name == "pi":
            return math.pi
        if e.kind == "builtin" and e.name in self.values:
            return self.values[e.name]
        raise NotStatic(e.name)

    def _Index(self, e, local):
        base = self.eval(e.base, local)
        i = self.eval(e.index, local)
        if not isinstance(i, int) or i < 0 or i >= len(base):
            raise EvalError(f"index {i} is out of bounds for a length of {len(base)}", e.span)
        return base[i]

    def _TupleGet(self, e, local):
        return self.eval(e.base, local)[e.position]

    def _Unary(self, e, local):
        v = self.eval(e.operand, local)
        return (not v) if e.op == "not" else -v

    def _Binary(self, e, local):
        if e.op == "and":
            return bool(self.eval(e.left, local)) and bool(self.eval(e.right, local))
        if e.op == "or":
            return bool(self.eval(e.left, local)) or bool(self.eval(e.right, local))
        a = self.eval(e.left, local)
        b = self.eval(e.right, local)
        if e.op == "add":
            return a + b
        if e.op == "sub":
            return a - b
        if e.op == "mul":
            return a * b
        if e.op == "div":
            return floor_div(a, b, e.span)
        if e.op == "mod":
            return floor_mod(a, b, e.span)
        if e.op == "pow":
            if isinstance(a, int) and isinstance(b, int):
                if b < 0:
                    raise EvalError("a negative exponent on an int", e.span)
                if b > 64 and abs(a) > 1:
                    raise EvalError("this power overflows a 64-bit int", e.span)
                return a ** b
            try:
                return math.pow(a, b)
            except (OverflowError, ValueError) as exc:
                raise EvalError(str(exc), e.span) from None
        raise NotStatic(e.op)

    def _Compare(self, e, local):
        values = [self.eval(x, local) for x in e.operands]
        for op, a, b in zip(e.ops, values, values[1:]):
            ok = {"eq": a == b, "ne": a != b, "lt": a < b, "le": a <= b, "gt": a > b, "ge": a >= b}[op]
            if not ok:
                return False
        return True

    def _Cond(self, e, local):
        return self.eval(e.then if self.eval(e.cond, local) else e.else_, local)

    def _TupleLit(self, e, local):
        return tuple(self.eval(x, local) for x in e.items)

    def _ArrayLit(self, e, local):
        return [self.eval(x, local) for x in e.items]

    def _ArrayRepeat(self, e, local):
        n = self.eval(e.count, local)
        if n < 0 or n > MAX_CELLS:
            raise EvalError(f"an array of {n} elements", e.span)
        return [self.eval(e.value, local) for _ in range(n)]

    def _ArrayComp(self, e, local):
        out = []
        for scope in self._iterate(e.clauses, local, None):
            out.append(self.eval(e.element, scope))
        return out

    def _iterate(self, clauses, local, where):
        if not clauses:
            if where is None or self.eval(where, local):
                yield local
            return
        first, rest = clauses[0], clauses[1:]
        if isinstance(first.iter, ir.RangeIter):
            lo, hi = self.eval(first.iter.lo, local), self.eval(first.iter.hi, local)
            if hi - lo > MAX_CELLS:
                raise EvalError("a range too large to evaluate", first.span)
            items = range(lo, hi)
        else:
            items = self.eval(first.iter.array, local)
        for item in items:
            scope = dict(local)
            if len(first.names) == 1:
                scope[first.names[0]] = item
            else:
                scope.update(zip(first.names, item))
            yield from self._iterate(rest, scope, where)

    def _Aggregate(self, e, local):
        if e.kind == "choice":
            raise NotStatic("choice")
        values = [self.eval(e.element, s) for s in self._iterate(e.clauses, local, e.where)]
        if e.kind == "all":
            return all(values)
        if e.kind == "any":
            return any(values)
        if e.kind == "sum":
            return sum(values) if values else (0.0 if isinstance(e.type, ir.FloatType) else 0)
        if e.kind == "count":
            return sum(1 for v in values if v)
        if not values:
            raise EvalError(f"`{e.kind}` over no values", e.span)
        return min(values) if e.kind == "min" else max(values)

    def _Call(self, e, local):
        fn = self.functions.get(e.fn)
        if fn is None or not fn.pure:
            raise NotStatic(e.fn)
        if self.depth > 50:
            raise NotStatic("deep")
        args = {p.name: self.eval(a, local) for p, a in zip(fn.params, e.args)}
        self.depth += 1
        try:
            return _run_body(self, fn.body, args)
        finally:
            self.depth -= 1

    def _BuiltinCall(self, e, local):
        name = e.name
        if name in ("uniform", "randint", "choice", "act"):
            raise NotStatic(name)
        args = [self.eval(a, local) for a in e.args]
        if name in _MATH1:
            try:
                return _MATH1[name](args[0])
            except (ValueError, OverflowError) as exc:
                raise EvalError(f"{name}({args[0]}): {exc}", e.span) from None
        if name == "abs":
            return abs(args[0])
        if name == "sign":
            return (args[0] > 0) - (args[0] < 0) if isinstance(args[0], int) else math.copysign(1.0, args[0]) if args[0] != 0 else 0.0
        if name == "min":
            return min(args)
        if name == "max":
            return max(args)
        if name == "clamp":
            return min(max(args[0], args[1]), args[2])
        if name == "atan2":
            return math.atan2(args[0], args[1])
        if name == "float":
            return float(args[0])
        if name == "int":
            if isinstance(args[0], float) and not math.isfinite(args[0]):
                raise EvalError(f"int({args[0]})", e.span)
            return int(args[0])
        if name == "f32":
            return _map_f32(args[0])
        if name == "len":
            return len(args[0])
        if name == "rows":
            return len(args[0])
        if name == "cols":
            return len(args[0][0]) if args[0] else 0
        raise NotStatic(name)


def _map_f32(v):
    if isinstance(v, list):
        return [_map_f32(x) for x in v]
    return to_f32(v)


class _Return(Exception):
    def __init__(self, value):
        self.value = value


def _run_body(ev: Evaluator, body, local: dict):
    """Run a pure function body (lets, ifs, loops, returns) statically."""
    try:
        _run(ev, body, dict(local))
    except _Return as r:
        return r.value
    raise NotStatic("no return")


class _Break(Exception):
    pass


class _Continue(Exception):
    pass


def _run(ev: Evaluator, stmts, local: dict) -> None:
    for s in stmts:
        if isinstance(s, ir.Let):
            v = ev.eval(s.value, local)
            if len(s.names) == 1:
                local[s.names[0]] = v
            else:
                local.update(zip(s.names, v))
        elif isinstance(s, ir.Return):
            raise _Return(None if s.value is None else ev.eval(s.value, local))
        elif isinstance(s, ir.If):
            _run(ev, s.then if ev.eval(s.cond, local) else s.else_, local)
        elif isinstance(s, (ir.Assign, ir.AugAssign)) and s.target.kind in ("local", "fn_param") and not s.target.indices:
            v = ev.eval(s.value, local)
            if isinstance(s, ir.AugAssign):
                old = local[s.target.name]
                v = {"add": lambda: old + v, "sub": lambda: old - v, "mul": lambda: old * v,
                     "div": lambda: floor_div(old, v), "mod": lambda: floor_mod(old, v)}[s.op]()
            local[s.target.name] = v
        elif isinstance(s, ir.While):
            limit = ev.eval(s.limit, local)
            n = 0
            while ev.eval(s.cond, local):
                if n >= limit:
                    raise EvalError("a `while` loop ran past its limit", s.span)
                n += 1
                try:
                    _run(ev, s.body, local)
                except _Break:
                    break
                except _Continue:
                    continue
        elif isinstance(s, ir.For):
            for scope in ev._iterate((s.clause,), local, None):
                local.update(scope)
                try:
                    _run(ev, s.body, local)
                except _Break:
                    break
                except _Continue:
                    continue
        elif isinstance(s, ir.Break):
            raise _Break()
        elif isinstance(s, ir.Continue):
            raise _Continue()
        else:
            raise NotStatic(type(s).__name__)


def try_eval(ev: Evaluator, e: ir.Expr, local: Optional[dict] = None):
    """The value, or None when not static or failing."""
    try:
        return ev.eval(e, local)
    except (NotStatic, EvalError, TypeError, ValueError, OverflowError, IndexError,
            ZeroDivisionError, RecursionError, KeyError):
        return None


def default_values(env: ir.Env, overrides: Optional[Mapping[str, Any]] = None) -> dict:
    """Param values (defaults, or `overrides`) and every const's value, for an env's IR."""
    values: dict = {p.name: p.default for p in env.params}
    values.update(overrides or {})
    ev = Evaluator(values, {f.name: f for f in env.functions})
    for c in env.consts:
        values[c.name] = ev.eval(c.value)
    values["players"] = env.players
    return values
