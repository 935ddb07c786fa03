"""Evaluate IR expressions that do not depend on the state, with the params' defaults.

The checker uses it for sizes and bounds, constant indices and values, guards that can
never hold, and symmetry permutations. It follows the language's run-time semantics
(floor division, floored modulo, round half to even, ints that are 64-bit and checked)
so that what it proves holds, and it fails with an `EvalError` wherever the generated
code would fault. Floats must stay finite: an infinity or a NaN in a constant is an
error too.

Every evaluation has a step budget (`Budget`): one step per expression, loop iteration
and array cell, so that a check never runs for long whatever the file computes.
"""

from __future__ import annotations

import math
import struct
from typing import Any, Mapping, Optional

from . import ir

MAX_CELLS = 100_000_000
STEP_LIMIT = 300_000  # about 0.4 s of evaluation
SPARE_STEPS = 200_000  # for the checks that only may find something (symmetry sweeps, ...)
SPECULATIVE_STEPS = 50_000  # for one of those evaluations
MAX_CALL_DEPTH = 100
I64_MIN, I64_MAX = -2**63, 2**63 - 1


class NotStatic(Exception):
    """The expression reads something only known at run time."""


class EvalError(Exception):
    """The expression fails for the default params (division by zero, bad index...)."""

    def __init__(self, message: str, span):
        super().__init__(message)
        self.message = message
        self.span = span


class TooLong(EvalError):
    """The evaluation ran out of its step budget."""

    def __init__(self, limit: int, span):
        super().__init__(f"this takes more than {limit:,} steps to compute", span)
        self.limit = limit
        self.located = False  # whether `span` is already the innermost loop that ran too long


class _Looping:
    """Points a `TooLong` raised inside a loop (or comprehension) at that loop."""

    def __init__(self, span):
        self.span = span

    def __enter__(self):
        return self

    def __exit__(self, kind, exc, tb):
        if isinstance(exc, TooLong) and not exc.located:
            exc.span, exc.located = self.span, True
        return False


class Budget:
    """Evaluation steps left, shared by the evaluations it is given to."""

    def __init__(self, steps: int = STEP_LIMIT):
        self.limit = steps
        self.left = steps

    def spend(self, n: int, span) -> None:
        self.left -= n
        if self.left < 0:
            raise TooLong(self.limit, span)


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
    try:
        return struct.unpack("f", struct.pack("f", x))[0]
    except OverflowError:
        return math.copysign(math.inf, x)


def checked(v, span, what: str):
    """`v` as the generated code would have it, or an EvalError where it would fault."""
    if isinstance(v, bool):
        return v
    if isinstance(v, int):
        if not I64_MIN <= v <= I64_MAX:
            raise EvalError(f"{what} overflows a 64-bit int", span)
    elif isinstance(v, float) and not math.isfinite(v):
        raise EvalError(f"{what} is {'not a number' if math.isnan(v) else 'infinite'}", span)
    return v


def arith(op: str, a, b, span):
    """`a op b` for numbers, with the run-time semantics (ints checked, floats finite)."""
    sign = {"add": "+", "sub": "-", "mul": "*", "div": "/", "mod": "%", "pow": "**"}[op]
    what = f"`{a!r} {sign} {b!r}`"
    if op == "add":
        return checked(a + b, span, what)
    if op == "sub":
        return checked(a - b, span, what)
    if op == "mul":
        return checked(a * b, span, what)
    if op == "div":
        return checked(floor_div(a, b, span), span, what)
    if op == "mod":
        return checked(floor_mod(a, b, span), span, what)
    if op == "pow":
        if isinstance(a, int) and isinstance(b, int):
            if b < 0:
                raise EvalError("a negative exponent on an int", span)
            if b > 64 and abs(a) > 1:
                raise EvalError(f"{what} overflows a 64-bit int", span)
            return checked(a ** b, span, what)
        try:
            return checked(math.pow(a, b), span, what)
        except OverflowError:
            raise EvalError(f"{what} overflows a 64-bit float", span) from None
        except ValueError:
            raise EvalError(f"{what} is not a real number", span) from None
    raise NotStatic(op)


_MATH1 = {
    "sin": math.sin, "cos": math.cos, "tan": math.tan, "sqrt": math.sqrt, "exp": math.exp,
    "log": math.log, "floor": lambda x: float(math.floor(x)), "ceil": lambda x: float(math.ceil(x)),
    "round": lambda x: float(round(x)),
}


class Evaluator:
    """Evaluates with `values` for params, consts and bound variables, within `budget`."""

    def __init__(self, values: Mapping[str, Any], functions: Mapping[str, ir.Function] | None = None,
                 budget: Optional[Budget] = None):
        self.values = values
        self.functions = functions or {}
        self.budget = budget or Budget()
        self.depth = 0

    def eval(self, e: ir.Expr, local: Optional[dict] = None) -> Any:
        local = local or {}
        m = getattr(self, "_" + type(e).__name__, None)
        if m is None:
            raise NotStatic(type(e).__name__)
        self.budget.spend(1, e.span)
        return m(e, local)

    def own(self, v, span):
        """A copy of `v` that a local may change in place (arrays are values)."""
        if isinstance(v, list):
            self.budget.spend(len(v), span)
            return [self.own(x, span) for x in v] if v and isinstance(v[0], (list, tuple)) else list(v)
        if isinstance(v, tuple):
            return tuple(self.own(x, span) for x in v)
        return v

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
        return base[_index(i, base, e.index.span)]

    def _TupleGet(self, e, local):
        return self.eval(e.base, local)[e.position]

    def _Unary(self, e, local):
        v = self.eval(e.operand, local)
        return (not v) if e.op == "not" else checked(-v, e.span, f"`-{v!r}`")

    def _Binary(self, e, local):
        if e.op == "and":
            return bool(self.eval(e.left, local)) and bool(self.eval(e.right, local))
        if e.op == "or":
            return bool(self.eval(e.left, local)) or bool(self.eval(e.right, local))
        return arith(e.op, self.eval(e.left, local), self.eval(e.right, local), e.span)

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
        if n < 0:
            raise EvalError(f"an array cannot have {n} elements", e.count.span)
        if n > MAX_CELLS:
            raise EvalError(f"an array of {n:,} elements is beyond the limit of {MAX_CELLS:,} cells", e.count.span)
        with _Looping(e.span):
            self.budget.spend(n, e.span)  # before allocating
        value = self.eval(e.value, local)
        return [self.own(value, e.span) for _ in range(n)] if isinstance(value, (list, tuple)) else [value] * n

    def _ArrayComp(self, e, local):
        with _Looping(e.span):
            return [self.eval(e.element, scope) for scope in self._iterate(e.clauses, local, None)]

    def _iterate(self, clauses, local, where):
        if not clauses:
            if where is None or self.eval(where, local):
                yield local
            return
        first, rest = clauses[0], clauses[1:]
        if isinstance(first.iter, ir.RangeIter):
            lo, hi = self.eval(first.iter.lo, local), self.eval(first.iter.hi, local)
            items = range(lo, hi)
        else:
            items = self.own(self.eval(first.iter.array, local), first.span)
        for item in items:
            self.budget.spend(1, first.span)
            scope = dict(local)
            if len(first.names) == 1:
                scope[first.names[0]] = item
            else:
                scope.update(zip(first.names, item))
            yield from self._iterate(rest, scope, where)

    def _Aggregate(self, e, local):
        if e.kind == "choice":
            raise NotStatic("choice")
        with _Looping(e.span):
            values = [self.eval(e.element, s) for s in self._iterate(e.clauses, local, e.where)]
        if e.kind == "all":
            return all(values)
        if e.kind == "any":
            return any(values)
        if e.kind == "sum":
            total = 0.0 if isinstance(e.type, ir.FloatType) else 0
            for v in values:
                total = arith("add", total, v, e.span)
            return total
        if e.kind == "count":
            return sum(1 for v in values if v)
        if not values:
            raise EvalError(f"`{e.kind}` over no values", e.span)
        return min(values) if e.kind == "min" else max(values)

    def _Call(self, e, local):
        fn = self.functions.get(e.fn)
        if fn is None or not fn.pure:
            raise NotStatic(e.fn)
        if self.depth >= MAX_CALL_DEPTH:
            raise EvalError(f"function calls nest more than {MAX_CALL_DEPTH} levels deep here, deeper than "
                            "`twisterl check` computes", e.span)
        args = {p.name: self.own(self.eval(a, local), a.span) for p, a in zip(fn.params, e.args)}
        self.depth += 1
        try:
            return _run_body(self, fn, args)
        finally:
            self.depth -= 1

    def _BuiltinCall(self, e, local):
        name = e.name
        if name in ("uniform", "randint", "choice", "act"):
            raise NotStatic(name)
        args = [self.eval(a, local) for a in e.args]
        if name in _MATH1:
            try:
                return checked(_MATH1[name](args[0]), e.span, f"`{name}({args[0]!r})`")
            except (ValueError, OverflowError):
                raise EvalError(f"`{name}({args[0]!r})` has no finite value", e.span) from None
        if name == "abs":
            return checked(abs(args[0]), e.span, f"`abs({args[0]!r})`")
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
            if isinstance(args[0], float) and not -9.223372036854776e18 <= args[0] < 9.223372036854776e18:
                raise EvalError(f"`int({args[0]!r})` is outside the 64-bit int range", e.span)
            return int(args[0])
        if name == "f32":
            return checked(_map_f32(args[0]), e.span, f"`f32({args[0]!r})`")
        if name == "len":
            return len(args[0])
        if name == "rows":
            return len(args[0])
        if name == "cols":
            return len(args[0][0]) if args[0] else 0
        raise NotStatic(name)


def _index(i, base, span) -> int:
    if not isinstance(i, int) or isinstance(i, bool) or i < 0 or i >= len(base):
        raise EvalError(f"index {i} is out of bounds for a length of {len(base)}", span)
    return i


def _map_f32(v):
    if isinstance(v, list):
        return [_map_f32(x) for x in v]
    return to_f32(v)


class _Return(Exception):
    def __init__(self, value):
        self.value = value


class _Break(Exception):
    pass


class _Continue(Exception):
    pass


def _run_body(ev: Evaluator, fn: ir.Function, local: dict):
    """Run a pure function's body (lets, assignments, ifs, loops, returns) statically."""
    try:
        _run(ev, fn.body, dict(local))
    except _Return as r:
        return r.value
    if isinstance(fn.ret, ir.UnitType):
        return None
    raise NotStatic("no return")


def _assign(ev: Evaluator, place: ir.Place, value, local: dict) -> None:
    """Store `value` at a local place, such as `a[i][j]`."""
    if place.kind not in ("local", "fn_param") or place.name not in local:
        raise NotStatic(place.name)
    if not place.indices:
        local[place.name] = value
        return
    container = local[place.name]
    indices = [ev.eval(i, local) for i in place.indices]
    for i, idx in zip(indices[:-1], place.indices):
        container = container[_index(i, container, idx.span)]
    container[_index(indices[-1], container, place.indices[-1].span)] = value


def _read(ev: Evaluator, place: ir.Place, local: dict):
    if place.name not in local:
        raise NotStatic(place.name)
    v = local[place.name]
    for idx in place.indices:
        v = v[_index(ev.eval(idx, local), v, idx.span)]
    return v


def _run(ev: Evaluator, stmts, local: dict) -> None:
    for s in stmts:
        ev.budget.spend(1, s.span)
        if isinstance(s, (ir.While, ir.Repeat, ir.For)):
            with _Looping(s.span):
                _run_loop(ev, s, local)
        elif isinstance(s, ir.Let):
            v = ev.own(ev.eval(s.value, local), s.span)
            if len(s.names) == 1:
                local[s.names[0]] = _in_range(ev, v, s.types[0], s.value.span)
            else:
                local.update(zip(s.names, v))
        elif isinstance(s, ir.Return):
            raise _Return(None if s.value is None else ev.eval(s.value, local))
        elif isinstance(s, ir.If):
            _run(ev, s.then if ev.eval(s.cond, local) else s.else_, local)
        elif isinstance(s, ir.Assign):
            _assign(ev, s.target, ev.own(ev.eval(s.value, local), s.span), local)
        elif isinstance(s, ir.AugAssign):
            old = _read(ev, s.target, local)
            _assign(ev, s.target, arith(s.op, old, ev.eval(s.value, local), s.span), local)
        elif isinstance(s, ir.TupleAssign):
            values = ev.own(ev.eval(s.value, local), s.span)
            for place, v in zip(s.targets, values):
                _assign(ev, place, v, local)
        elif isinstance(s, ir.Break):
            raise _Break()
        elif isinstance(s, ir.Continue):
            raise _Continue()
        elif isinstance(s, ir.ExprStmt):
            ev.eval(s.call, local)
        else:
            raise NotStatic(type(s).__name__)


def _run_loop(ev: Evaluator, s, local: dict) -> None:
    if isinstance(s, ir.While):
        limit = ev.eval(s.limit, local)
        n = 0
        while ev.eval(s.cond, local):
            if n >= limit:
                raise EvalError(f"this `while` loop runs past its limit of {limit} iterations", s.span)
            n += 1
            if not _iteration(ev, s.body, local):
                break
    elif isinstance(s, ir.Repeat):
        for _ in range(max(ev.eval(s.count, local), 0)):
            ev.budget.spend(1, s.span)
            if not _iteration(ev, s.body, local):
                break
    else:
        for scope in ev._iterate((s.clause,), local, None):
            local.update(scope)
            if not _iteration(ev, s.body, local):
                break


def _iteration(ev: Evaluator, body, local: dict) -> bool:
    """Run one iteration of a loop's body; False when it ends the loop (`break`)."""
    try:
        _run(ev, body, local)
    except _Break:
        return False
    except _Continue:
        pass
    return True


def _in_range(ev: Evaluator, v, t, span):
    """A local declared `int in lo..hi` is checked when it is bound, as at run time."""
    if isinstance(t, ir.IntType) and t.bounded and isinstance(v, int):
        lo, hi = ev.eval(t.lo), ev.eval(t.hi)
        if not lo <= v < hi:
            raise EvalError(f"{v} is outside the declared range {lo}..{hi}", span)
    return v


def try_eval(ev: Evaluator, e: ir.Expr, local: Optional[dict] = None):
    """The value, or None when not static or failing."""
    try:
        return ev.eval(e, local)
    except (NotStatic, EvalError, TypeError, ValueError, OverflowError, IndexError,
            ZeroDivisionError, KeyError, AttributeError):
        return None


def default_values(env: ir.Env, overrides: Optional[Mapping[str, Any]] = None) -> dict:
    """Param values (defaults, or `overrides`) and every const's value, for an env's IR.

    Raises `EvalError` (or `NotStatic`) where a const cannot be computed with these
    params; the checker guarantees it cannot happen with the defaults."""
    values: dict = {p.name: p.default for p in env.params}
    values.update(overrides or {})
    ev = Evaluator(values, {f.name: f for f in env.functions})
    for c in env.consts:
        values[c.name] = ev.eval(c.value)
    values["players"] = env.players
    return values
