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
  and immutable locals, whose facts the writer records while it walks a body;
- fn parameters: the union of their arguments' facts over every call site the generated
  code has (`CallFacts`; fns are not recursive, so a fixed point over the whole env's
  lowering exists, and is checked to be one);
- mutable locals: a flow-sensitive interval analysis in the writer (assignments replace
  a local's fact, branches join, a loop's head fact is a fixed point of its body, found
  by iterating and, for a counter that moves by a bounded step, bounded by the loop's
  trip count; see `RustWriter.loop_facts`);
- what a passed test states (`assume`), through the one-line functions it calls.

A fact is an `Interval` of values, plus, for a name bounded by a range, the expression it
stays below (`c` in `drop(c in 0..cols)` is below `cols`), which proves `grid[r][c]` in
range even though `cols` is only known at run time.
"""

from __future__ import annotations

import dataclasses
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator, Optional

from twisterl.dsl import ir
from twisterl.dsl.effects import walk
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
    """What is known of one name: its values, and an expression it is always below. While
    a loop's body is analysed, `delta` is how far a mutable local has moved since the
    loop's head (None when it was set to something else)."""

    values: Optional[Interval]
    below: Optional[ir.Expr] = None
    delta: Optional[Interval] = None


def hull(a: Optional[Interval], b: Optional[Interval]) -> Optional[Interval]:
    """The smallest interval holding both (None, unknown, absorbs)."""
    if a is None or b is None:
        return None
    return Interval(min(a.lo, b.lo), max(a.hi, b.hi))


def join_facts(a: Optional[Fact], b: Optional[Fact]) -> Optional[Fact]:
    """What holds on both of two paths."""
    if a is None or b is None:
        return None
    below = a.below if a.below is not None and b.below is not None and same_expr(a.below, b.below) else None
    values = hull(a.values, b.values)
    if values is None and below is None:
        return None
    return Fact(values, below, hull(a.delta, b.delta))


def same_fact(a: Optional[Fact], b: Optional[Fact]) -> bool:
    if a is None or b is None:
        return a is b
    if a.values != b.values or a.delta != b.delta or (a.below is None) != (b.below is None):
        return False
    return a.below is None or same_expr(a.below, b.below)


def within_fact(a: Optional[Fact], b: Optional[Fact]) -> bool:
    """Whether everything `a` allows, `b` allows (`b` is at least as wide)."""
    if b is None:
        return True
    if a is None:
        return False
    if b.values is not None and (a.values is None or a.values.lo < b.values.lo or a.values.hi > b.values.hi):
        return False
    return b.below is None or (a.below is not None and same_expr(a.below, b.below))


class CallFacts:
    """What the generated code's call sites pass and what fns return, joined over every
    site: recorded while an env is lowered, read by the next lowering (see `lower.lower`).
    `params[fn][k]` is the fact of the k-th argument; `returns[fn]` the result's values."""

    def __init__(self):
        self.params: dict[str, list[Optional[Fact]]] = {}
        self.returns: dict[str, Optional[Interval]] = {}

    def call(self, fn: str, facts: list[Optional[Fact]]) -> None:
        old = self.params.get(fn)
        self.params[fn] = facts if old is None else [join_facts(a, b) for a, b in zip(old, facts)]

    def result(self, fn: str, values: Optional[Interval]) -> None:
        self.returns[fn] = hull(self.returns[fn], values) if fn in self.returns else values

    def same(self, other: "CallFacts") -> bool:
        if self.params.keys() != other.params.keys() or self.returns != other.returns:
            return False
        return all(len(a) == len(b) and all(same_fact(x, y) for x, y in zip(a, b))
                   for a, b in ((self.params[f], other.params[f]) for f in self.params))


class Ranges:
    """The facts of one env; `scoped` facts (loop variables, action indices, locals) are
    set and restored by the writer as it walks a body."""

    def __init__(self, env: ir.Env, calls: Optional[CallFacts] = None):
        self.env = env
        self.params = {p.name: p for p in env.params}
        self.consts = {c.name: c for c in env.consts}
        self.state = {s.name: s for s in env.state}
        self.fns = {f.name: f for f in env.functions}
        self.calls = calls or CallFacts()  # what the previous lowering found (fn results)
        self.scoped: dict[str, Fact] = {}
        # What tests already passed on the path being written say (see `assume`):
        # expressions known >= 0, pairs (x, n) with x < n, and intervals of expressions.
        # An entry a later assignment invalidates becomes None (`forget`).
        self.nonneg: list[Optional[ir.Expr]] = []
        self.below: list[Optional[tuple[ir.Expr, ir.Expr]]] = []
        self.bounds: list[Optional[tuple[tuple, Interval, ir.Expr]]] = []  # (shape, values, expr)
        self._opening = 0
        self._shapes: dict[int, tuple[object, tuple]] = {}
        self._const_cache: dict[str, Optional[Interval]] = {}
        self._resolving: set[str] = set()

    def shape(self, e) -> tuple:
        """`e` without its spans, as a comparable value (computed once per node)."""
        hit = self._shapes.get(id(e))
        if hit is not None and hit[0] is e:
            return hit[1]
        if isinstance(e, tuple):
            out = tuple(self.shape(x) for x in e)
        elif dataclasses.is_dataclass(e) and not isinstance(e, type):
            out = (type(e).__name__,) + tuple(self.shape(getattr(e, f.name)) for f in dataclasses.fields(e)
                                              if f.name != "span")
        else:
            return e
        self._shapes[id(e)] = (e, out)
        return out

    # ------------------------------------------------------------ intervals

    def interval(self, e: Optional[ir.Expr]) -> Optional[Interval]:
        """The values `e` can take, or None when nothing is proven."""
        if e is None or not isinstance(getattr(e, "type", None), ir.IntType):
            return None
        method = getattr(self, "_" + type(e).__name__, None)
        out = method(e) if method is not None else None
        key = self.shape(e) if any(self.bounds) else None
        for entry in self.bounds:
            if entry is not None and entry[0] == key:
                b = entry[1]
                if out is None:
                    out = b
                elif max(out.lo, b.lo) <= min(out.hi, b.hi):
                    out = Interval(max(out.lo, b.lo), min(out.hi, b.hi))
        return out

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
        if e.kind in _SCOPED:
            fact = self.scoped.get(e.name)
            return fact.values if fact is not None else None
        return None

    def _Call(self, e: ir.Call) -> Optional[Interval]:
        """A one-line pure fn: its expression with the arguments in (evaluated in the
        caller's context); any other fn: its results over the whole env (`CallFacts`)."""
        body = self.opened(e)
        if body is not None:
            self._opening += 1
            try:
                return self.interval(body)
            finally:
                self._opening -= 1
        return self.calls.returns.get(e.fn)

    def opened(self, call: ir.Call) -> Optional[ir.Expr]:
        """The body of a pure fn of scalars with `call`'s arguments put for its parameters:
        what the call's value is, when its arguments only read (they are evaluated once by
        the call, and reading them again gives the same values). The fn is one `return e`,
        or unchecked scalar `let`s before it whose values cannot fault here (`total`), put
        into `e` where they are read: evaluating such a value once, again or never is the
        same."""
        f = self.fns.get(call.fn)
        if f is None or not f.pure or not f.body or not isinstance(f.body[-1], ir.Return) \
                or self._opening > _MAX_OPEN:
            return None
        value = f.body[-1].value
        if value is None or not isinstance(f.ret, _SCALARS) or any(not isinstance(p.type, _SCALARS) for p in f.params):
            return None
        lets = f.body[:-1]
        if not all(_plain_let(s) for s in lets):
            return None
        if not all(_reads_only(a, self.fns) for a in call.args):
            return None
        captured = binders(value).union(*(binders(s.value) for s in lets))
        if any(free_locals(a) & captured for a in call.args):
            return None  # an argument's name would be caught by a comprehension inside
        mapping = {p.name: a for p, a in zip(f.params, call.args)}
        bound: dict[str, ir.Expr] = {}
        for s in lets:
            v = substitute(s.value, mapping, bound)
            if free_locals(v) & captured:
                return None
            self._opening += 1
            try:
                if not self.total(v):
                    return None
            finally:
                self._opening -= 1
            bound[s.names[0]] = v
        return substitute(value, mapping, bound)

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
        if e.op == "mod" and b is not None and b.lo > 0:  # floored: 0 <= a mod b < b
            if a is not None and 0 <= a.lo and a.hi < b.lo:
                return a
            return Interval(0, b.hi - 1) if a is None or a.lo < 0 else Interval(0, min(a.hi, b.hi - 1))
        if a is None or b is None:
            return None
        if e.op == "add":
            return _fit(Interval(a.lo + b.lo, a.hi + b.hi))
        if e.op == "sub":
            return _fit(Interval(a.lo - b.hi, a.hi - b.lo))
        if e.op == "mul":
            corners = [a.lo * b.lo, a.lo * b.hi, a.hi * b.lo, a.hi * b.hi]
            return _fit(Interval(min(corners), max(corners)))
        if e.op == "div" and a.lo >= 0 and b.lo > 0:
            return Interval(a.lo // b.hi, a.hi // b.lo)
        return None

    def _Cond(self, e: ir.Cond) -> Optional[Interval]:
        a, b = self.interval(e.then), self.interval(e.else_)
        return None if a is None or b is None else Interval(min(a.lo, b.lo), max(a.hi, b.hi))

    def _BuiltinCall(self, e: ir.BuiltinCall) -> Optional[Interval]:
        args = [self.interval(a) for a in e.args]
        if e.name in ("min", "max") and len(args) >= 2 and None not in args:
            pick = min if e.name == "min" else max
            return Interval(pick(a.lo for a in args), pick(a.hi for a in args))
        if e.name == "abs" and args and args[0] is not None:
            a = args[0]
            if a.lo >= 0:
                return a
            if a.hi <= 0:
                return _fit(Interval(-a.hi, -a.lo))
            return _fit(Interval(0, max(-a.lo, a.hi)))
        if e.name == "sign" and args and isinstance(e.type, ir.IntType):
            a = args[0]
            if a is None:
                return Interval(-1, 1)
            return Interval(-1 if a.lo < 0 else (0 if a.lo == 0 else 1), 1 if a.hi > 0 else (0 if a.hi == 0 else -1))
        if e.name == "clamp" and None not in args:
            x, lo, hi = args  # the lower bound wins where the bounds cross
            return Interval(max(min(x.lo, hi.lo), lo.lo), max(min(x.hi, hi.hi), lo.hi))
        return None

    def _Aggregate(self, e: ir.Aggregate) -> Optional[Interval]:
        """`min`/`max` over one range clause of the clause's own variable: within the
        range; `sum` and `count` over clauses of known lengths: at most that many
        elements, each within the element's values."""
        var = _range_variable(e)
        if var is not None:
            lo, hi = self.interval(var[1].lo), self.interval(var[1].hi)
            return None if lo is None or hi is None else Interval(lo.lo, hi.hi - 1)
        if e.kind not in ("sum", "count"):
            return None
        n = self.trips(e.clauses)
        if n is None:
            return None
        if e.kind == "count":
            return Interval(0, n)
        new = self.clause_facts(e.clauses)
        saved = {k: self.scoped.get(k) for k in new}
        self.scoped.update(new)
        try:
            x = self.interval(e.element)
        finally:
            for k, old in saved.items():
                if old is None:
                    self.scoped.pop(k, None)
                else:
                    self.scoped[k] = old
        return None if x is None else _fit(Interval(min(0, n * x.lo), max(0, n * x.hi)))

    def trips(self, clauses) -> Optional[int]:
        """At most how many members nested clauses run over (None: not known)."""
        n = 1
        for c in clauses:
            if isinstance(c.iter, ir.RangeIter):
                lo, hi = self.interval(c.iter.lo), self.interval(c.iter.hi)
                if lo is None or hi is None:
                    return None
                n *= max(0, hi.hi - lo.lo)
            else:
                size = self.interval(c.iter.array.type.size) if isinstance(c.iter.array.type, ir.ArrayType) else None
                if size is None:
                    return None
                n *= max(0, size.hi)
        return n

    def clause_facts(self, clauses) -> dict[str, Fact]:
        """The facts of comprehension or loop variables (over ranges and arrays); a
        variable with none still hides what was known of another of its name."""
        out = {n: Fact(None) for c in clauses for n in c.names}
        for c in clauses:
            if isinstance(c.iter, ir.RangeIter) and len(c.names) == 1:
                out[c.names[0]] = self.range_fact(c.iter.lo, c.iter.hi)
            elif isinstance(c.iter, ir.ArrayIter):
                out.update(self.element_facts(c.names, c.iter.array))
        return out

    # ------------------------------------------------------------ facts for names

    def range_fact(self, lo: ir.Expr, hi: ir.Expr) -> Fact:
        """The fact of a variable that runs over `lo..hi`. The bound `hi` is kept only when
        it is fixed for the env's lifetime (params, consts, literals), as array sizes are."""
        a, b = self.interval(lo), self.interval(hi)
        values = Interval(a.lo, b.hi - 1) if a is not None and b is not None and a.lo <= b.hi - 1 else None
        return Fact(values, hi if _fixed(hi) else None)

    def element_facts(self, names: tuple[str, ...], arr: ir.Expr) -> dict[str, Fact]:
        """The facts of a loop's targets over the elements of `arr`: the hull of a literal
        list's items (a const's too, position by position for tuples), or a state
        array's declared element range."""
        items = arr.items if isinstance(arr, ir.ArrayLit) else None
        if isinstance(arr, ir.Ref) and arr.kind == "const" and isinstance(self.consts.get(arr.name), ir.Const) \
                and isinstance(self.consts[arr.name].value, ir.ArrayLit):
            items = self.consts[arr.name].value.items
        columns: list[list] = [[] for _ in names]
        if items is not None:
            for x in items:
                parts = x.items if len(names) > 1 and isinstance(x, ir.TupleLit) else (x,)
                if len(parts) != len(names):
                    return {}
                for k, p in enumerate(parts):
                    columns[k].append(self.interval(p))
        elif len(names) == 1 and isinstance(arr.type, ir.ArrayType) and isinstance(arr.type.elem, ir.IntType):
            root = arr
            while isinstance(root, ir.Index):
                root = root.base
            if isinstance(root, ir.Ref) and root.kind == "state":
                columns[0].append(self._declared(arr.type.elem))
        out = {}
        for name, values in zip(names, columns):
            if values and None not in values:
                out[name] = Fact(Interval(min(v.lo for v in values), max(v.hi for v in values)))
        return out

    def value_fact(self, e: ir.Expr) -> Optional[Fact]:
        """The fact of a local bound to `e` (or of a parameter `e` is passed to): its
        values, and a fixed bound it stays below (the range a variable runs over, a
        `min`/`max` over a range, a passed test `e < n`)."""
        values = self.interval(e)
        below = None
        if isinstance(e, ir.Ref) and e.kind in _SCOPED and e.name in self.scoped:
            below = self.scoped[e.name].below
        elif isinstance(e, ir.Aggregate) and _range_variable(e) is not None and _fixed(_range_variable(e)[1].hi):
            below = _range_variable(e)[1].hi
        if below is None and values is not None and values.lo >= 0:
            below = next((n for x, n in filter(None, self.below) if _fixed(n) and same_expr(x, e)), None)
        if values is None and below is None:
            return None
        return Fact(values, below)

    # ------------------------------------------------------------ what the writer asks

    def index_safe(self, index: ir.Expr, length: ir.Expr) -> bool:
        """Whether `0 <= index < length` for every accepted params and reachable state."""
        i = self.interval(index)
        nonneg = (i is not None and i.lo >= 0) or any(x is not None and same_expr(x, index) for x in self.nonneg)
        if not nonneg:
            return False
        n = self.interval(length)
        if i is not None and n is not None and i.hi < n.lo:
            return True
        if any(same_expr(x, index) and same_expr(b, length) for x, b in filter(None, self.below)):
            return True
        if isinstance(index, ir.Ref) and index.kind in _SCOPED:
            fact = self.scoped.get(index.name)
            return fact is not None and fact.below is not None and same_expr(fact.below, length)
        return False

    @contextmanager
    def assume(self, test: ir.Expr, keep=None) -> Iterator[None]:
        """While the code that runs only after `test` held is written: the bounds it
        states (`0 <= x < n`, `x >= 0`, `x < n`, `x == e`, conjunctions of them, and the
        same seen through the one-line functions it calls and both branches of an `if`).
        Callers assume only tests that change nothing, and `forget` what a later
        assignment changes; with `keep`, only what is stated of expressions it accepts
        (those that the code written under the assumption cannot change)."""
        saved = (len(self.nonneg), len(self.below), len(self.bounds))
        keep = keep or (lambda e: True)
        for part in self._parts(test):
            if not isinstance(part, ir.Compare):
                continue
            for a, op, b in zip(part.operands, part.ops, part.operands[1:]):
                if op in ("gt", "ge"):
                    a, b, op = b, a, {"gt": "lt", "ge": "le"}[op]
                lo = self.interval(a)
                if op in ("le", "lt") and lo is not None and lo.lo >= (0 if op == "le" else -1) and keep(b):
                    self.nonneg.append(b)
                if op == "lt" and keep(a) and keep(b):
                    self.below.append((a, b))
                elif op == "le" and isinstance(b, ir.Binary) and b.op == "sub" and \
                        isinstance(b.right, ir.Lit) and b.right.value == 1 and keep(a) and keep(b.left):
                    self.below.append((a, b.left))  # x <= n - 1
        self.bounds.extend((self.shape(e), i, e) for e, i in self._bounds_of(test, 0) if keep(e))
        try:
            yield
        finally:
            del self.nonneg[saved[0]:]
            del self.below[saved[1]:]
            del self.bounds[saved[2]:]

    def forget(self, name: str) -> None:
        """A local was assigned, or a new local, loop or comprehension variable hides one
        of that name: what passed tests said about expressions reading it no longer holds."""
        def stale(e) -> bool:
            return any(isinstance(n, ir.Ref) and n.kind in _SCOPED and n.name == name for n in walk(e))
        for k, x in enumerate(self.nonneg):
            if x is not None and stale(x):
                self.nonneg[k] = None
        for k, pair in enumerate(self.below):
            if pair is not None and (stale(pair[0]) or stale(pair[1])):
                self.below[k] = None
        for k, entry in enumerate(self.bounds):
            if entry is not None and stale(entry[2]):
                self.bounds[k] = None

    def _parts(self, test: ir.Expr, depth: int = 0) -> list[ir.Expr]:
        """The conjuncts of `test`, with one-line calls opened."""
        if isinstance(test, ir.Binary) and test.op == "and":
            return self._parts(test.left, depth) + self._parts(test.right, depth)
        if isinstance(test, ir.Call) and depth < _MAX_OPEN:
            body = self.opened(test)
            if body is not None:
                return self._parts(body, depth + 1)
        return [test]

    def _bounds_of(self, test: ir.Expr, depth: int) -> list[tuple[ir.Expr, Interval]]:
        """Intervals of expressions that hold wherever `test` is true."""
        if depth > _MAX_OPEN:
            return []
        if isinstance(test, ir.Binary) and test.op == "and":
            return self._bounds_of(test.left, depth) + self._bounds_of(test.right, depth)
        if isinstance(test, ir.Binary) and test.op == "or":
            return _either(self._bounds_of(test.left, depth + 1), self._bounds_of(test.right, depth + 1))
        if isinstance(test, ir.Cond):
            neg = negated(test.cond)
            then = self._bounds_of(test.cond, depth + 1) + self._bounds_of(test.then, depth + 1)
            else_ = (self._bounds_of(neg, depth + 1) if neg is not None else []) + self._bounds_of(test.else_, depth + 1)
            return _either(then, else_)
        if isinstance(test, ir.Unary) and test.op == "not":
            neg = negated(test.operand)
            return self._bounds_of(neg, depth + 1) if neg is not None else []
        if isinstance(test, ir.Call):
            body = self.opened(test)
            return self._bounds_of(body, depth + 1) if body is not None else []
        if not isinstance(test, ir.Compare):
            return []
        out = []
        for a, op, b in zip(test.operands, test.ops, test.operands[1:]):
            if not isinstance(a.type, ir.IntType) or not isinstance(b.type, ir.IntType):
                continue
            if op in ("gt", "ge"):
                a, b, op = b, a, {"gt": "lt", "ge": "le"}[op]
            ia, ib = self.interval(a), self.interval(b)
            step = 1 if op == "lt" else 0
            if op in ("lt", "le"):
                if ib is not None and not isinstance(a, ir.Lit):
                    out.append((a, Interval(I64_MIN, ib.hi - step)))
                if ia is not None and not isinstance(b, ir.Lit):
                    out.append((b, Interval(ia.lo + step, I64_MAX)))
            elif op == "eq":
                if ib is not None and not isinstance(a, ir.Lit):
                    out.append((a, ib))
                if ia is not None and not isinstance(b, ir.Lit):
                    out.append((b, ia))
        return [(e, i) for e, i in out if i.lo <= i.hi]

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
        if isinstance(e, ir.BuiltinCall) and e.name in ("min", "max", "sign", "clamp"):
            return all(self.total(x) for x in e.args)
        if isinstance(e, ir.BuiltinCall) and e.name == "abs":
            return all(self.total(x) for x in e.args) and (isinstance(e.type, ir.FloatType) or self.arithmetic_safe(e))
        return False

    def within(self, e: ir.Expr, t) -> bool:
        """Whether `e`'s values lie in the bounded int type `t` for every accepted params."""
        v = self.interval(e)
        if v is None or not (isinstance(t, ir.IntType) and t.bounded):
            return False
        lo, hi = self.interval(t.lo), self.interval(t.hi)
        return lo is not None and hi is not None and lo.hi <= v.lo and v.hi < hi.lo


_SCOPED = ("loop", "action_param", "local", "fn_param")
_SCALARS = (ir.IntType, ir.BoolType, ir.FloatType, ir.EnumType)
_MAX_OPEN = 4  # how deep one-line calls are opened inside opened calls


def negated(test: ir.Expr) -> Optional[ir.Expr]:
    """A test true exactly where `test` is false, for one comparison or a `not`."""
    if isinstance(test, ir.Unary) and test.op == "not":
        return test.operand
    if isinstance(test, ir.Compare) and len(test.ops) == 1:
        flip = {"lt": "ge", "le": "gt", "gt": "le", "ge": "lt", "eq": "ne", "ne": "eq"}[test.ops[0]]
        return ir.Compare(test.operands, (flip,), test.type, test.span)
    return None


def _either(a: list, b: list) -> list[tuple[ir.Expr, Interval]]:
    """What holds on either of two paths: the hull of the bounds both give an expression."""
    out = []
    for e, i in a:
        others = [j for f, j in b if same_expr(e, f)]
        if others:
            j = others[0]
            for k in others[1:]:
                j = Interval(max(j.lo, k.lo), min(j.hi, k.hi))
            out.append((e, Interval(min(i.lo, j.lo), max(i.hi, j.hi))))
    return out


def _reads_only(e: ir.Expr, fns: dict) -> bool:
    """Whether evaluating `e` changes nothing and draws nothing."""
    for n in walk(e):
        if isinstance(n, ir.Call) and (n.fn not in fns or not fns[n.fn].pure):
            return False
        if isinstance(n, ir.BuiltinCall) and n.name in ("uniform", "randint", "choice", "shuffle",
                                                         "random_action", "act"):
            return False
    return True


def _plain_let(s) -> bool:
    """A `let` of one scalar with no declared range to check: its value is all it does."""
    if not (isinstance(s, ir.Let) and len(s.names) == 1 and len(s.types) == 1):
        return False
    t = s.types[0]
    return isinstance(t, _SCALARS) and not (isinstance(t, ir.IntType) and t.bounded)


def binders(e: ir.Expr) -> set[str]:
    """Names bound inside `e` (comprehension variables)."""
    out = set()
    for n in walk(e):
        if isinstance(n, (ir.Aggregate, ir.ArrayComp)):
            for c in n.clauses:
                out.update(c.names)
    return out


def free_locals(e: ir.Expr) -> set[str]:
    return {n.name for n in walk(e) if isinstance(n, ir.Ref) and n.kind in _SCOPED}


def substitute(e, mapping: dict[str, ir.Expr], lets: Optional[dict[str, ir.Expr]] = None):
    """`e` with each parameter `Ref` replaced by its argument, and each local `Ref` in
    `lets` by its value (types and spans kept)."""
    if isinstance(e, ir.Ref):
        if e.kind == "fn_param":
            return mapping.get(e.name, e)
        if e.kind == "local" and lets:
            return lets.get(e.name, e)
        return e
    if isinstance(e, tuple):
        return tuple(substitute(x, mapping, lets) for x in e)
    if dataclasses.is_dataclass(e) and not isinstance(e, type):
        changes = {f.name: substitute(getattr(e, f.name), mapping, lets) for f in dataclasses.fields(e)
                   if f.name not in ("type", "span", "root_type")}
        return dataclasses.replace(e, **changes)
    return e


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
