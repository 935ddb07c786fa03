"""What the generated code may assume about int values: a small range analysis.

A check in the generated Rust (an index against its array's length, arithmetic against
overflow, a bounded int against its type) is dropped only where this module proves it
cannot fail for any params the env accepts. Everything else keeps its check, with its
`.twl` location.

Facts come only from places whose ranges the runtime already enforces:
- params, checked against their declared `lo..hi` when the env is made;
- consts, from their definitions;
- state ints and `player`, scalars and array elements, checked on every write and on
  `set_state`; the elements of literal const tables;
- loop variables over `lo..hi`, action indices (decoded within their family's range),
  and immutable locals, whose facts the writer records while it walks a body.

A fact is an `Interval` of values, plus, for a name bounded by a range, the expression it
stays below (`c` in `drop(c in 0..cols)` is below `cols`), which proves `grid[r][c]` in
range even though `cols` is only known at run time.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator, Optional

from twisterl.dsl import ir
from twisterl.dsl.types import same_expr

I64_MIN, I64_MAX = -(2**63), 2**63 - 1


@dataclass(frozen=True)
class Interval:
    """The values an int expression can take, both ends included."""

    lo: int
    hi: int

    def fits_i64(self) -> bool:
        return I64_MIN <= self.lo and self.hi <= I64_MAX


@dataclass(frozen=True)
class Fact:
    """What is known of one name: its values, and an expression it is always below."""

    values: Optional[Interval]
    below: Optional[ir.Expr] = None


class Ranges:
    """The facts of one env; `scoped` facts (loop variables, action indices, locals) are
    set and restored by the writer as it walks a body."""

    def __init__(self, env: ir.Env):
        self.env = env
        self.params = {p.name: p for p in env.params}
        self.consts = {c.name: c for c in env.consts}
        self.state = {s.name: s for s in env.state}
        self.scoped: dict[str, Fact] = {}
        # What tests already passed on the path being written say (see `assume`):
        # expressions known >= 0, and pairs (x, n) with x < n.
        self.nonneg: list[ir.Expr] = []
        self.below: list[tuple[ir.Expr, ir.Expr]] = []
        self._const_cache: dict[str, Optional[Interval]] = {}
        self._resolving: set[str] = set()

    # ------------------------------------------------------------ intervals

    def interval(self, e: Optional[ir.Expr]) -> Optional[Interval]:
        """The values `e` can take, or None when nothing is proven."""
        if e is None or not isinstance(getattr(e, "type", None), ir.IntType):
            return None
        method = getattr(self, "_" + type(e).__name__, None)
        return method(e) if method is not None else None

    def _Lit(self, e: ir.Lit) -> Optional[Interval]:
        if isinstance(e.value, bool) or not isinstance(e.value, int):
            return None
        return Interval(e.value, e.value)

    def _Ref(self, e: ir.Ref) -> Optional[Interval]:
        if e.kind == "param":
            return self._declared(self.params[e.name].type) if e.name in self.params else None
        if e.kind == "const":
            return self._const(e.name)
        if e.kind == "state":
            var = self.state.get(e.name)
            return self._declared(var.type) if var is not None else None
        if e.kind == "builtin" and e.name == "player":
            return Interval(0, self.env.players - 1)
        if e.kind == "builtin" and e.name == "players":
            return Interval(self.env.players, self.env.players)
        if e.kind in ("loop", "action_param", "local"):
            fact = self.scoped.get(e.name)
            return fact.values if fact is not None else None
        return None

    def _declared(self, t) -> Optional[Interval]:
        """A checked `int in lo..hi`'s values (hi exclusive)."""
        if not (isinstance(t, ir.IntType) and t.bounded):
            return None
        lo, hi = self.interval(t.lo), self.interval(t.hi)
        if lo is None or hi is None or lo.lo > hi.hi - 1:
            return None
        return Interval(lo.lo, hi.hi - 1)

    def _const(self, name: str) -> Optional[Interval]:
        if name in self._const_cache:
            return self._const_cache[name]
        const = self.consts.get(name)
        if const is None or name in self._resolving:
            return None
        self._resolving.add(name)
        try:
            out = self.interval(const.value)
        finally:
            self._resolving.discard(name)
        self._const_cache[name] = out
        return out

    def _Index(self, e: ir.Index) -> Optional[Interval]:
        """An element of a state array: within the element type's declared
        range (checked on every write), or among a literal const table's values."""
        root = e.base
        while isinstance(root, ir.Index):
            root = root.base
        if not isinstance(root, ir.Ref):
            return None
        if root.kind == "const" and root.name in self.consts:
            values = _literal_ints(self.consts[root.name].value)
            if values:
                return Interval(min(values), max(values))
        if root.kind == "state":
            return self._declared(e.type)
        return None

    def _Unary(self, e: ir.Unary) -> Optional[Interval]:
        if e.op != "neg":
            return None
        a = self.interval(e.operand)
        return None if a is None else _fit(Interval(-a.hi, -a.lo))

    def _Binary(self, e: ir.Binary) -> Optional[Interval]:
        a, b = self.interval(e.left), self.interval(e.right)
        if a is None or b is None:
            return None
        if e.op == "add":
            return _fit(Interval(a.lo + b.lo, a.hi + b.hi))
        if e.op == "sub":
            return _fit(Interval(a.lo - b.hi, a.hi - b.lo))
        if e.op == "mul":
            corners = [a.lo * b.lo, a.lo * b.hi, a.hi * b.lo, a.hi * b.hi]
            return _fit(Interval(min(corners), max(corners)))
        if e.op == "mod" and b.lo > 0:  # floored: 0 <= a mod b < b
            return Interval(0, b.hi - 1) if a.lo < 0 else Interval(0, min(a.hi, b.hi - 1))
        if e.op == "div" and a.lo >= 0 and b.lo > 0:
            return Interval(a.lo // b.hi, a.hi // b.lo)
        return None

    def _Cond(self, e: ir.Cond) -> Optional[Interval]:
        a, b = self.interval(e.then), self.interval(e.else_)
        return None if a is None or b is None else Interval(min(a.lo, b.lo), max(a.hi, b.hi))

    def _BuiltinCall(self, e: ir.BuiltinCall) -> Optional[Interval]:
        args = [self.interval(a) for a in e.args]
        if e.name in ("min", "max") and len(args) == 2 and None not in args:
            a, b = args
            pick = min if e.name == "min" else max
            return Interval(pick(a.lo, b.lo), pick(a.hi, b.hi))
        return None

    def _Aggregate(self, e: ir.Aggregate) -> Optional[Interval]:
        """`min`/`max` over one range clause of the clause's own variable: within the range."""
        var = _range_variable(e)
        if var is None:
            return None
        lo, hi = self.interval(var[1].lo), self.interval(var[1].hi)
        return None if lo is None or hi is None else Interval(lo.lo, hi.hi - 1)

    # ------------------------------------------------------------ facts for names

    def range_fact(self, lo: ir.Expr, hi: ir.Expr) -> Fact:
        """The fact of a variable that runs over `lo..hi`. The bound `hi` is kept only when
        it is fixed for the env's lifetime (params, consts, literals), as array sizes are."""
        a, b = self.interval(lo), self.interval(hi)
        values = Interval(a.lo, b.hi - 1) if a is not None and b is not None and a.lo <= b.hi - 1 else None
        return Fact(values, hi if _fixed(hi) else None)

    def value_fact(self, e: ir.Expr) -> Optional[Fact]:
        """The fact of an immutable local bound to `e`."""
        values = self.interval(e)
        below = None
        if isinstance(e, ir.Ref) and e.kind in ("loop", "action_param", "local") and e.name in self.scoped:
            below = self.scoped[e.name].below
        elif isinstance(e, ir.Aggregate) and _range_variable(e) is not None and _fixed(_range_variable(e)[1].hi):
            below = _range_variable(e)[1].hi
        if values is None and below is None:
            return None
        return Fact(values, below)

    # ------------------------------------------------------------ what the writer asks

    def index_safe(self, index: ir.Expr, length: ir.Expr) -> bool:
        """Whether `0 <= index < length` for every accepted params and reachable state."""
        i = self.interval(index)
        nonneg = (i is not None and i.lo >= 0) or any(same_expr(x, index) for x in self.nonneg)
        if not nonneg:
            return False
        n = self.interval(length)
        if i is not None and n is not None and i.hi < n.lo:
            return True
        if any(same_expr(x, index) and same_expr(b, length) for x, b in self.below):
            return True
        if isinstance(index, ir.Ref) and index.kind in ("loop", "action_param", "local"):
            fact = self.scoped.get(index.name)
            return fact is not None and fact.below is not None and same_expr(fact.below, length)
        return False

    @contextmanager
    def assume(self, test: ir.Expr) -> Iterator[None]:
        """While the code that runs only after `test` held is written: the bounds it
        states (`0 <= x < n`, `x >= 0`, `x < n`, conjunctions of them). Callers assume
        only tests whose operands cannot change before that code runs."""
        saved = (len(self.nonneg), len(self.below))
        for part in _and_parts(test):
            if not isinstance(part, ir.Compare):
                continue
            for a, op, b in zip(part.operands, part.ops, part.operands[1:]):
                if op in ("gt", "ge"):
                    a, b, op = b, a, {"gt": "lt", "ge": "le"}[op]
                lo = self.interval(a)
                if op in ("le", "lt") and lo is not None and lo.lo >= (0 if op == "le" else -1):
                    self.nonneg.append(b)
                if op == "lt":
                    self.below.append((a, b))
                elif op == "le" and isinstance(b, ir.Binary) and b.op == "sub" and \
                        isinstance(b.right, ir.Lit) and b.right.value == 1:
                    self.below.append((a, b.left))  # x <= n - 1
        try:
            yield
        finally:
            del self.nonneg[saved[0]:]
            del self.below[saved[1]:]

    def arithmetic_safe(self, e: ir.Expr) -> bool:
        """Whether an int `add`, `sub`, `mul` or `neg` cannot overflow."""
        out = self.interval(e)
        return out is not None and out.fits_i64()

    def plain_division(self, e: ir.Binary) -> bool:
        """Whether int `div`/`mod` has a non-negative dividend and a positive divisor, where
        Rust's `/` and `%` are the language's floored division and modulo."""
        a, b = self.interval(e.left), self.interval(e.right)
        return a is not None and b is not None and a.lo >= 0 and b.lo > 0

    def total(self, e: ir.Expr) -> bool:
        """Whether evaluating `e` cannot fault and only reads: such an expression may be
        evaluated earlier, once for many uses, or not at all, without changing what the
        env does."""
        if isinstance(e, ir.Lit):
            return True
        if isinstance(e, ir.Ref):
            return e.kind != "view"
        if isinstance(e, ir.Unary):
            if not self.total(e.operand):
                return False
            return e.op == "not" or isinstance(e.type, ir.FloatType) or self.arithmetic_safe(e)
        if isinstance(e, ir.Binary):
            if not (self.total(e.left) and self.total(e.right)):
                return False
            if e.op in ("and", "or") or isinstance(e.type, ir.FloatType):
                return True
            if e.op in ("add", "sub", "mul"):
                return self.arithmetic_safe(e)
            return e.op in ("div", "mod") and self.plain_division(e)
        if isinstance(e, ir.Compare):
            return all(self.total(x) for x in e.operands)
        if isinstance(e, ir.Cond):
            return self.total(e.cond) and self.total(e.then) and self.total(e.else_)
        if isinstance(e, ir.Index):
            return (self.total(e.base) and self.total(e.index) and isinstance(e.base.type, ir.ArrayType)
                    and self.index_safe(e.index, e.base.type.size))
        if isinstance(e, ir.BuiltinCall) and e.name in ("min", "max", "sign"):
            return all(self.total(x) for x in e.args)
        return False

    def within(self, e: ir.Expr, t) -> bool:
        """Whether `e`'s values lie in the bounded int type `t` for every accepted params."""
        v = self.interval(e)
        if v is None or not (isinstance(t, ir.IntType) and t.bounded):
            return False
        lo, hi = self.interval(t.lo), self.interval(t.hi)
        return lo is not None and hi is not None and lo.hi <= v.lo and v.hi < hi.lo


def _fixed(e: ir.Expr) -> bool:
    """Whether `e` has one value for the env's lifetime: literals, params, consts and
    arithmetic on them."""
    if isinstance(e, ir.Lit):
        return True
    if isinstance(e, ir.Ref):
        return e.kind in ("param", "const") or (e.kind == "builtin" and e.name == "players")
    if isinstance(e, ir.Binary):
        return _fixed(e.left) and _fixed(e.right)
    if isinstance(e, ir.Unary):
        return _fixed(e.operand)
    return False


def _and_parts(e: ir.Expr) -> list[ir.Expr]:
    if isinstance(e, ir.Binary) and e.op == "and":
        return _and_parts(e.left) + _and_parts(e.right)
    return [e]


def _literal_ints(e) -> list[int]:
    """The ints of a literal array (nested ones too), or [] when it is not all literal ints."""
    if isinstance(e, ir.ArrayLit):
        out = []
        for x in e.items:
            inner = _literal_ints(x) if isinstance(x, ir.ArrayLit) else (
                [x.value] if isinstance(x, ir.Lit) and isinstance(x.value, int) and not isinstance(x.value, bool)
                else [])
            if not inner:
                return []
            out += inner
        return out
    return []


def _fit(i: Interval) -> Optional[Interval]:
    return i if i.fits_i64() else None


def _range_variable(e: ir.Aggregate):
    """(name, RangeIter) when `e` is `min`/`max` of its only clause's variable over a range."""
    if e.kind not in ("min", "max") or len(e.clauses) != 1:
        return None
    clause = e.clauses[0]
    if not isinstance(clause.iter, ir.RangeIter) or len(clause.names) != 1:
        return None
    el = e.element
    if isinstance(el, ir.Ref) and el.kind == "loop" and el.name == clause.names[0]:
        return clause.names[0], clause.iter
    return None
