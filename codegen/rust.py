"""Rust for IR expressions and statements.

`RustWriter` turns one IR node into Rust source text. It makes every per-node decision
(checked int operations, range checks, materialising arrays, loops for aggregates) so
that the templates only assemble. Generated code never panics: every fallible operation
returns a `Fault` carrying the `.twl` line and column, propagated with `?`.
"""

from __future__ import annotations

import math
import re
from contextlib import ExitStack, contextmanager, nullcontext
from typing import Iterator, Optional

from twisterl.dsl import ir
from twisterl.dsl.effects import walk

from .arith import literal, negate, one_group, tail_value
from .inline import Splitter, reads
from .ranges import CallFacts, Fact, Interval, Ranges, hull, join_facts, negated, same_fact, within_fact

RUST_KEYWORDS = frozenset("""
    as async await box break const continue crate do dyn else enum extern false final fn for gen if
    impl in let loop macro match mod move mut override priv pub ref return static struct super
    trait true try type typeof union unsafe unsized use virtual where while yield abstract become
""".split())
UNRAWABLE = frozenset(["self", "Self", "crate", "super"])


def ident(name: str) -> str:
    """The Rust name of a `.twl` field (a param, const or state variable): the name itself,
    raw (`r#type`) for a Rust keyword, `self_` for the few that cannot be raw, `__` for `_`
    (`.twl` names never start with `__`, so no other name maps there)."""
    if name == "_":
        return "__"
    if name in UNRAWABLE:
        return name + "_"
    if name in RUST_KEYWORDS:
        return "r#" + name
    return name


def local(name: str) -> str:
    """The Rust name of a `.twl` local: a fn parameter, `let`, loop or comprehension
    variable, action index or value, symmetry or reward variable. It is the name with `_`
    appended. Generated locals never end in `_` and `.twl` names never start with `__`
    (the prefix of generated temporaries), so no user local can meet a generated name,
    a Rust keyword or a prelude name (`Ok_`, `None_`, `type_`, `__` for `_`)."""
    return name + "_"


# The method each kind of `.twl` declaration becomes: its name after the kind's prefix. No
# prefix starts another, and no method the template writes starts with one
# (tests/test_codegen_names.py checks both), so no two declarations' methods, and no
# declaration's and a fixed method, can meet.
METHOD_PREFIX = {"fn": "fn_", "view": "view_", "cached_view": "cached_view_", "view_item": "item_of_",
                 "view_len": "len_of_", "guard": "guard_", "action": "do_"}


def method(kind: str, name: str) -> str:
    """The Rust method a `.twl` declaration of `kind` named `name` becomes (a fn, a view,
    a view's cached read, an array view's element or length, an action's guard or body)."""
    return METHOD_PREFIX[kind] + name


def divisor_field(name: str) -> str:
    """The `Consts` field holding the `Divisor` for param or const `name` (`__` starts no
    `.twl` name, so no field of the env's own can meet it)."""
    return f"__by_{name}"


def at(span) -> str:
    return f"at({span.line}, {span.col})"


MAX_FIXED_CELLS = 4096
MAX_LOOP = 1 << 32  # the runtime's `ops::MAX_LOOP`: longer loops are refused
_SIMPLE = re.compile(r"[A-Za-z_][A-Za-z0-9_.]*|\(?-?[0-9]+(i64)?\)?")  # a name, a field or a literal
_SIGNS = {"add": "+", "sub": "-", "mul": "*", "div": "/", "mod": "%"}


def _same_repr(a, b) -> bool:
    """Whether values of types `a` and `b` have the same Rust type shape (array or `Vec`)."""
    if isinstance(a, ir.ArrayType) and isinstance(b, ir.ArrayType):
        return is_fixed(a) == is_fixed(b) and _same_repr(a.elem, b.elem)
    return True


def is_fixed(t) -> bool:
    """Small arrays of literal size become Rust arrays (no allocation, `Copy`); the others
    `Vec`s, sized once per instance."""
    if not isinstance(t, ir.ArrayType):
        return False
    cells = 1
    while isinstance(t, ir.ArrayType):
        if not isinstance(t.size, ir.Lit):
            return False
        cells *= t.size.value
        t = t.elem
    return cells <= MAX_FIXED_CELLS


def is_grid(t) -> bool:
    """A state array of rows of scalars whose sizes are not all literal: held in one
    row-major buffer (`Grid`, indexed `grid[r][c]` like nested vectors), so that an element
    is one load and copying the state copies one buffer."""
    return (isinstance(t, ir.ArrayType) and not is_fixed(t) and isinstance(t.elem, ir.ArrayType)
            and not is_fixed(t.elem) and isinstance(t.elem.elem, (ir.IntType, ir.EnumType, ir.BoolType, ir.FloatType)))


def state_type(t) -> str:
    """The Rust type of a state variable of type `t`."""
    if is_grid(t):
        return f"Grid<{rust_type(t.elem.elem)}>"
    return rust_type(t)


MAX_LITERAL_TABLE = 64  # the longest const table written out where it is indexed
POLL_FREE_TRIPS = 64  # loops of at most this many runs do not check for a request to stop


def rust_type(t) -> str:
    if isinstance(t, ir.BoolType):
        return "bool"
    if isinstance(t, (ir.IntType, ir.EnumType)):
        return "i64"
    if isinstance(t, ir.FloatType):
        return "f64"
    if isinstance(t, ir.StrType):
        return "&'static str"
    if isinstance(t, ir.UnitType):
        return "()"
    if isinstance(t, ir.TupleType):
        return "(" + ", ".join(rust_type(x) for x in t.items) + ")"
    if isinstance(t, ir.ArrayType):
        if is_fixed(t):
            return f"[{rust_type(t.elem)}; {t.size.value}]"
        return f"Vec<{rust_type(t.elem)}>"
    raise TypeError(t)


def float_lit(v: float) -> str:
    if math.isinf(v):
        return "f64::INFINITY" if v > 0 else "f64::NEG_INFINITY"
    if math.isnan(v):
        return "f64::NAN"
    text = repr(float(v))
    if "e" in text or "E" in text:
        mantissa, exp = text.lower().split("e")
        if "." not in mantissa:
            mantissa += ".0"
        return f"{mantissa}e{int(exp)}_f64"
    return text + "_f64" if abs(v) >= 1e16 else text


def enum_const_names(env: ir.Env) -> dict[tuple[str, str], str]:
    """The Rust const of each enum variant: `TILE_EMPTY` for `Tile.EMPTY`. Variants whose
    names would meet (`sum.rng` and `sum.Rng`, `a.b_c` and `a_b.c`) are numbered apart."""
    names: dict[tuple[str, str], str] = {}
    taken: set[str] = set()
    for e in env.enums:
        for k, v in enumerate(e.variants):
            name = f"{_upper_snake(e.name)}_{v.upper()}"
            if name in taken:
                name = f"{name}_{len(names)}"
            taken.add(name)
            names[(e.name, v)] = name
    return names


def _upper_snake(name: str) -> str:
    out = []
    for i, ch in enumerate(name):
        if ch.isupper() and i and (name[i - 1].islower() or name[i - 1].isdigit()):
            out.append("_")
        out.append(ch.upper())
    return "".join(out)


class RustWriter:
    """Writes Rust for expressions and statements of one function body.

    `consts_root` is how params and consts are reached (`self.consts` in env methods, `self` in
    methods of the params-and-consts struct). `static_fns` are functions of params
    and consts only, defined on that struct.
    """

    def __init__(self, env: ir.Env, consts_root: str, static_fns: set[str], array_views: set[str],
                 view_names: set[str], fn_effects: dict[str, bool]):
        self.env = env
        self.consts_root = consts_root
        self.static_fns = static_fns
        self.array_views = array_views
        self.views = view_names
        self.fn_mut = fn_effects
        self.tmp = 0
        self.mutable: set[str] = set()
        self.returns: Optional[ir.Type] = None  # the return type of the fn being written
        self._enum_names: Optional[dict] = None
        self.ranges = Ranges(env)  # what checks can be proven unnecessary (see ranges.py)
        self.cached_views: set[str] = set()  # views this code reads once per state (see lower.py)
        # The params and consts this code divides by through a `Divisor` kept in `Consts`
        # (`divisor_field`); None where the consts are still being computed.
        self.divisors: Optional[set[str]] = None
        self.known = CallFacts()  # fn params' and results' facts, from the previous lowering
        self.record: Optional[CallFacts] = None  # where this lowering's call sites go
        self.fn_name: Optional[str] = None  # the fn being written
        # The flow of mutable locals' facts (see `loop_facts`): whether the code being
        # written is unreachable (after a `return`, `break` or `continue`), the facts at
        # each enclosing loop's `break`s and `continue`s, the names each enclosing block
        # declared (with the fact each hid), and how deep in a trial run of a loop's body.
        self.dead = False
        self.exits: list[tuple[list, list]] = []
        self.lets: list[dict[str, Optional[Fact]]] = []
        self.trial = 0
        self.trial_budget = _TRIAL_BUDGET

    def use_calls(self, known: CallFacts, record: CallFacts) -> None:
        """Read fn facts from `known`; record this code's call sites and results in `record`."""
        self.known = known
        self.record = record
        self.ranges.calls = known

    def param_facts(self, f: ir.Function) -> dict[str, Fact]:
        """The facts of `f`'s int parameters over every call site (none for a fn no
        generated code calls, or where the last lowering found nothing)."""
        facts = self.known.params.get(f.name)
        if facts is None:
            return {}
        return {p.name: x for p, x in zip(f.params, facts) if x is not None and isinstance(p.type, ir.IntType)}

    @contextmanager
    def facts(self, new: dict[str, Fact]) -> Iterator[None]:
        """Names' facts (loop variables, action indices) while the code in scope is written."""
        saved = {n: self.ranges.scoped.get(n) for n in new}
        for n in new:
            self.ranges.forget(n)  # the new variable hides any of its name
        self.ranges.scoped.update(new)
        try:
            yield
        finally:
            for n, old in saved.items():
                if old is None:
                    self.ranges.scoped.pop(n, None)
                else:
                    self.ranges.scoped[n] = old

    def clause_facts(self, clauses) -> dict[str, Fact]:
        """The facts of comprehension or loop variables (over ranges and arrays)."""
        return self.ranges.clause_facts(clauses)

    def index(self, i: ir.Expr, length: ir.Expr, span) -> str:
        """`i` as a `usize` index into an array of `length`, checked unless proven in range."""
        if self.ranges.index_safe(i, length):
            if isinstance(i, ir.Lit):
                return str(i.value)
            code = self.expr(i)
            return f"{code} as usize" if isinstance(i, ir.Ref) else f"({code}) as usize"
        return f"ops::ix({self.expr(i)}, {self.size(length)}, {at(span)})?"

    def enum_const(self, enum: str, variant: str) -> str:
        if self._enum_names is None:
            self._enum_names = enum_const_names(self.env)
        return self._enum_names[(enum, variant)]

    def fresh(self, base: str = "t") -> str:
        """A temporary's name; `.twl` names cannot start with `__`, so none can clash."""
        self.tmp += 1
        return f"__{base}{self.tmp}"

    # ------------------------------------------------------------ sizes and places

    def size(self, e: ir.Expr) -> str:
        """An array size as a `usize` expression."""
        if isinstance(e, ir.Lit):
            return str(e.value)
        return f"({self.expr(e)}) as usize"

    def root(self, kind: str, name: str) -> str:
        if kind in ("param", "const"):
            return f"{self.consts_root}.{ident(name)}"
        if kind == "state":
            return f"self.state.{ident(name)}"
        if kind == "builtin" and name == "player":
            return "self.state.player"
        return local(name)

    # ------------------------------------------------------------ expressions

    def expr(self, e: ir.Expr) -> str:
        if isinstance(e, (ir.Aggregate, ir.ArrayComp)):
            with self.facts(self.clause_facts(e.clauses)):
                return getattr(self, "_" + type(e).__name__)(e)
        return getattr(self, "_" + type(e).__name__)(e)

    def _Lit(self, e: ir.Lit) -> str:
        if isinstance(e.type, ir.EnumType):
            return self.enum_const(e.type.name, e.type.variants[int(e.value)])
        if isinstance(e.value, bool):
            return "true" if e.value else "false"
        if isinstance(e.value, str):
            return _rust_str(e.value)
        if isinstance(e.type, ir.FloatType) or isinstance(e.value, float):
            return float_lit(e.value)
        return str(e.value) if e.value >= 0 else f"({e.value})"

    def _Ref(self, e: ir.Ref) -> str:
        if e.kind == "builtin":
            return {"difficulty": "self.difficulty", "player": "self.state.player",
                    "steps": "self.state.steps", "num_actions": "(self.num_actions() as i64)",
                    "pi": "std::f64::consts::PI", "players": str(self.env.players)}[e.name]
        if e.kind == "view":
            if e.name in self.cached_views:
                return f"self.{method('cached_view', e.name)}()?"
            return f"self.{method('view', e.name)}()?"
        if e.kind == "const" and isinstance(e.type, ir.IntType):
            known = self.ranges.interval(e)
            if known is not None and known.lo == known.hi and known.fits_i64():
                # A param-free int const is a literal: divisions by it become multiplies.
                return f"{known.lo}i64" if known.lo >= 0 else f"({known.lo}i64)"
        base = self.root(e.kind, e.name)
        return base

    def value(self, e: ir.Expr) -> str:
        """An expression used as an owned value: arrays held elsewhere are copied."""
        code = self.expr(e)
        held = isinstance(e, ir.Index) or (isinstance(e, ir.Ref) and e.kind != "view")
        if held and isinstance(e.type, ir.ArrayType) and not is_copy(e.type):
            return f"{code}{self.owned(e)}"
        return code

    def owned(self, e: ir.Expr) -> str:
        """The method that copies array `e`, held in the state or a local, into a value of
        its Rust type: a state grid (`Grid`) and its rows (slices) are copied out as nested
        `Vec`s and a `Vec`."""
        if _grid_ref(e):
            return ".to_rows()"
        if isinstance(e, ir.Index) and _grid_ref(e.base):
            return ".to_vec()"
        return ".clone()"

    def _Index(self, e: ir.Index) -> str:
        if isinstance(e.base, ir.Ref) and e.base.kind == "view" and e.base.name in self.array_views:
            if not _is_pure_read(e.index):
                i = self.fresh("i")
                return f"({{ let {i} = {self.expr(e.index)}; self.{method('view_item', e.base.name)}({i})? }})"
            return f"self.{method('view_item', e.base.name)}({self.expr(e.index)})?"
        base = e.base
        if isinstance(base, ir.Index) and _grid_ref(base.base) and _is_pure_read(base.index) \
                and _is_pure_read(e.index):
            # A grid's cell: one index into its buffer (no row slice first).
            rows = self.index(base.index, base.base.type.size, base.span)
            cols = self.index(e.index, base.type.size, e.span)
            return f"{self.expr(base.base)}[({rows}, {cols})]"
        if isinstance(base, (ir.Ref, ir.Index)) and not (isinstance(base, ir.Ref) and base.kind == "view"):
            code = self._literal_table(base) or self.expr(base)
            if not _is_pure_read(e.index):
                # The index may draw random numbers or change the state: it is computed
                # before the array is borrowed. The block yields a reference, so the element
                # stays a place (no move out of a row, indexable again), and the parentheses
                # keep it from being read as an `if`'s block.
                i = self.fresh("i")
                return (f"(*{{ let {i} = {self.expr(e.index)}; "
                        f"&{code}[ops::ix({i}, {self.size(base.type.size)}, {at(e.span)})?] }})")
            return f"{code}[{self.index(e.index, base.type.size, e.span)}]"
        tmp = self.fresh()
        return (f"{{ let {tmp} = {self.expr(base)}; "
                f"{tmp}[ops::ix({self.expr(e.index)}, {tmp}.len(), {at(e.span)})?] }}")

    def _literal_table(self, base: ir.Expr) -> Optional[str]:
        """A const table of literal ints (`const drow = [1, 1, -1]`), written out where it
        is indexed, so the compiler sees its values (a loop over the table's indices folds
        them in); None for any other array."""
        if not (isinstance(base, ir.Ref) and base.kind == "const" and isinstance(base.type, ir.ArrayType)):
            return None
        const = next((c for c in self.env.consts if c.name == base.name), None)
        value = const.value if const is not None else None
        if not (isinstance(value, ir.ArrayLit) and 0 < len(value.items) <= MAX_LITERAL_TABLE):
            return None
        if not all(isinstance(x, ir.Lit) for x in value.items):
            return None
        items = [x.value for x in value.items]
        if not all(isinstance(v, int) and not isinstance(v, bool) for v in items):
            return None
        # A reference to the literal: Rust promotes it to one read-only table (an array
        # value would be built on the stack at every read).
        return "(&[" + ", ".join(f"{v}i64" for v in items) + "])"

    def _TupleGet(self, e: ir.TupleGet) -> str:
        base = self.expr(e.base)
        return f"{base}.{e.position}" if one_group(base) else f"({base}).{e.position}"

    def _Unary(self, e: ir.Unary) -> str:
        if e.op == "not" and isinstance(e.operand, ir.Compare) and len(e.operand.ops) == 1:
            flipped = {"eq": "ne", "ne": "eq", "lt": "ge", "ge": "lt", "gt": "le", "le": "gt"}
            operand = e.operand
            if not isinstance(operand.operands[0].type, ir.FloatType):  # NaN: !(x < y) is not x >= y
                return self.expr(ir.Compare(operand.operands, (flipped[operand.ops[0]],), operand.type, operand.span))
        inner = self.expr(e.operand)
        if e.op == "not":
            return f"!({inner})"
        if isinstance(e.type, ir.FloatType):
            return f"-({inner})"
        if self.ranges.arithmetic_safe(e):
            return f"(-({inner}))"
        return f"ops::neg({inner}, {at(e.span)})?"

    def _Binary(self, e: ir.Binary) -> str:
        if e.op == "and":
            a, b = self.in_order([e.left, e.right])  # `b` runs only where `a` held
            return f"({a} && {b})"
        a, b = self.expr(e.left), self.expr(e.right)
        if e.op == "or":
            return f"({a} || {b})"
        if isinstance(e.type, ir.FloatType):
            if e.op == "mod":
                return f"ops::fmod({a}, {b})"
            if e.op == "pow":
                return f"ops::powf({a}, {b})"
            sign = {"add": "+", "sub": "-", "mul": "*", "div": "/"}[e.op]
            return f"({a} {sign} {b})"
        if e.op in ("add", "sub", "mul") and self.ranges.arithmetic_safe(e):
            return f"({a} {_SIGNS[e.op]} {b})"
        if e.op in ("div", "mod") and self.ranges.plain_division(e):
            return self.plain_division(e.op, a, b, e.right)
        fn = {"add": "add", "sub": "sub", "mul": "mul", "div": "div", "mod": "rem", "pow": "pow"}[e.op]
        return f"ops::{fn}({a}, {b}, {at(e.span)})?"

    def plain_division(self, op: str, a: str, b: str, right: ir.Expr) -> str:
        """`a / b` or `a % b` where `plain_division` holds (a >= 0, b > 0). A divisor that
        is a param, or a const that params move (`s / size`), is the multiply of an
        `ops::Divisor` made once per env, not a `div`."""
        d = self.ranges.interval(right)
        if self.divisors is not None and isinstance(right, ir.Ref) and right.kind in ("param", "const") \
                and d is not None and d.lo != d.hi:
            self.divisors.add(right.name)
            part = 0 if op == "div" else 1
            dividend = a if _SIMPLE.fullmatch(a) else f"({a})"
            return f"({self.consts_root}.{divisor_field(right.name)}.div_rem({dividend} as u64).{part} as i64)"
        return f"({a} {_SIGNS[op]} {b})"

    def _Compare(self, e: ir.Compare) -> str:
        signs = {"eq": "==", "ne": "!=", "lt": "<", "le": "<=", "gt": ">", "ge": ">="}
        if len(e.ops) == 1:
            return f"({self.expr(e.operands[0])} {signs[e.ops[0]]} {self.expr(e.operands[1])})"
        # A chain evaluates each operand once, and stops at the first false comparison.
        names = [self.fresh("c") for _ in e.operands]
        code = f"{{ let {names[0]} = {self.expr(e.operands[0])}; "
        closing = "}"
        for i, op in enumerate(e.ops):
            code += f"let {names[i + 1]} = {self.expr(e.operands[i + 1])}; "
            if i < len(e.ops) - 1:
                code += f"{names[i]} {signs[op]} {names[i + 1]} && {{ "
                closing += "}"
            else:
                code += f"{names[i]} {signs[op]} {names[i + 1]} "
        return code + closing

    def _Cond(self, e: ir.Cond) -> str:
        cond = self.expr(e.cond)
        if self.reads_only(e):
            with self.ranges.assume(e.cond):
                then = self.value(e.then)
        else:
            then = self.value(e.then)
        return f"(if {cond} {{ {then} }} else {{ {self.value(e.else_)} }})"

    def _Call(self, e: ir.Call) -> str:
        if self.record is not None and not self.trial:
            self.record.call(e.fn, [self.ranges.value_fact(a) if isinstance(a.type, ir.IntType) else None
                                    for a in e.args])
        if e.fn in self.static_fns:
            return self.method_call(f"{self.consts_root}.{method('fn', e.fn)}", e.args, self.param_types(e.fn))
        return self.method_call(f"self.{method('fn', e.fn)}", e.args, self.param_types(e.fn))

    def param_types(self, fn: str) -> Optional[list]:
        f = next((f for f in self.env.functions if f.name == fn), None)
        return None if f is None else [p.type for p in f.params]

    def coerce(self, code: str, src, dst, span) -> str:
        """`code`, of type `src`, in the Rust representation of `dst`. Arrays whose size is
        a literal are Rust arrays and those sized by params are `Vec`s, so where one flows
        into the other it is converted (a length that differs at run time is a fault)."""
        if not (isinstance(src, ir.ArrayType) and isinstance(dst, ir.ArrayType)) or _same_repr(src, dst):
            return code
        if _same_repr(src.elem, dst.elem):
            items = f"&({code})[..]"
        else:
            e = self.fresh("e")
            inner = self.coerce(f"{e}.clone()", src.elem, dst.elem, span)
            items = f"&({code}).iter().map(|{e}| Ok({inner})).collect::<R<Vec<_>>>()?[..]"
        if is_fixed(dst):
            return f"ops::fixed::<_, {dst.size.value}>({items}, {at(span)})?"
        return f"({items}).to_vec()"

    def method_call(self, method: str, args, types=None) -> str:
        """`method(args)?`, with arguments evaluated first so no borrow of `self` overlaps;
        with `types`, each argument is converted to its parameter's array representation."""
        codes = [self.value(a) for a in args]
        if types is not None:
            codes = [self.coerce(c, a.type, t, a.span) for c, a, t in zip(codes, args, types)]
        if all(_is_simple(a) for a in args):
            return f"{method}({', '.join(codes)})?"
        names = [self.fresh("arg") for _ in codes]
        binds = " ".join(f"let {n} = {c};" for n, c in zip(names, codes))
        return f"{{ {binds} {method}({', '.join(names)})? }}"

    def _BuiltinCall(self, e: ir.BuiltinCall) -> str:
        n = e.name
        args = [self.expr(a) for a in e.args]
        is_int = isinstance(e.type, ir.IntType)
        if n in ("sin", "cos", "tan", "sqrt", "exp", "floor", "ceil"):
            return f"f64::{n}({args[0]})"
        if n == "log":
            return f"f64::ln({args[0]})"
        if n == "round":
            return f"ops::round({args[0]})"
        if n == "atan2":
            return f"f64::atan2({args[0]}, {args[1]})"
        if n == "abs":
            if is_int and self.ranges.arithmetic_safe(e):  # never i64::MIN
                return f"i64::abs({args[0]})"
            return f"ops::abs_i({args[0]}, {at(e.span)})?" if is_int else f"f64::abs({args[0]})"
        if n == "sign":
            return f"ops::sign_i({args[0]})" if is_int else f"ops::sign_f({args[0]})"
        if n in ("min", "max"):
            values = [literal(a) for a in args]
            if is_int and None not in values:
                return str(min(values) if n == "min" else max(values))
            code = args[0]
            for a in args[1:]:
                code = f"({code}).{n}({a})" if is_int else f"ops::{n}_f({code}, {a})"
            return code
        if n == "clamp":
            return f"ops::clamp_{'i' if is_int else 'f'}({args[0]}, {args[1]}, {args[2]})"
        if n == "float":
            if isinstance(e.args[0].type, ir.BoolType):
                return f"(if {args[0]} {{ 1.0 }} else {{ 0.0 }})"
            return f"(({args[0]}) as f64)"
        if n == "int":
            src = e.args[0].type
            if isinstance(src, ir.FloatType):
                return f"ops::to_int({args[0]}, {at(e.span)})?"
            return f"(({args[0]}) as i64)"
        if n == "f32":
            if isinstance(e.type, ir.ArrayType):
                return self.map_array(e.args[0], lambda x: f"ops::f32r({x})")
            return f"ops::f32r({args[0]})"
        if n == "uniform":
            return f"self.rng.uniform({args[0]}, {args[1]})"
        if n == "randint":
            return (f"self.rng.randint({args[0]}, {args[1]})"
                    f".ok_or(Fault::new(FaultKind::Empty, {at(e.span)}, 0, 0, 0))?")
        if n == "choice":
            tmp = self.fresh()
            return (f"{{ let {tmp} = {self.value(e.args[0])}; if {tmp}.is_empty() {{ "
                    f"return Err(Fault::new(FaultKind::Empty, {at(e.span)}, 0, 0, 0)); }} "
                    f"{tmp}[self.rng.below({tmp}.len() as u64) as usize] }}")
        if n == "act":
            return self.method_call("self.act_number", e.args)
        raise AssertionError(f"built-in {n}")  # the checker admits no other built-in

    def map_array(self, arr: ir.Expr, f) -> str:
        t = arr.type
        if isinstance(arr, ir.ArrayLit):
            items = ", ".join(f(self.expr(x)) for x in arr.items)
            return f"[{items}]" if is_fixed(t) else f"vec![{items}]"
        tmp = self.fresh()
        return f"{{ let mut {tmp} = {self.value(arr)}; for x in {tmp}.iter_mut() {{ *x = {f('*x')}; }} {tmp} }}"

    def _TupleLit(self, e: ir.TupleLit) -> str:
        return "(" + ", ".join(self.value(x) for x in e.items) + ")"

    def _SeenBy(self, e: ir.SeenBy) -> str:
        return f"ops::seen_by({self.expr(e.value)}, {self.expr(e.player)}, {self.env.players})"

    # ------------------------------------------------------------ arrays as values

    def _ArrayLit(self, e: ir.ArrayLit) -> str:
        items = ", ".join(self.value(x) for x in e.items)
        return f"[{items}]" if is_fixed(e.type) else f"vec![{items}]"

    def _ArrayRepeat(self, e: ir.ArrayRepeat) -> str:
        value = self.value(e.value)
        if is_fixed(e.type) and _is_copy(e.value.type):
            return f"[{value}; {e.count.value}]"
        return self.filled(value, e.count, at(e.span))

    def filled(self, value: str, size: ir.Expr, where: str = "at(0, 0)") -> str:
        """A `Vec` of `size` copies of `value`; a size known only at run time is checked
        first (negative or too large is a fault, never an abort)."""
        if isinstance(size, ir.Lit):
            return f"vec![{value}; {size.value}]"
        return f"ops::filled({value}, {self.expr(size)}, {where})?"

    def _ArrayComp(self, e: ir.ArrayComp) -> str:
        tmp = self.fresh("a")
        elem_t = e.type.elem
        zero = self.zero(elem_t)
        init = f"[{zero}; {e.type.size.value}]" if is_fixed(e.type) and _is_copy(elem_t) else \
            self.filled(zero, e.type.size, at(e.span))
        k = self.fresh("k")
        body = f"{tmp}[{k}] = {self.value(e.element)}; {k} += 1;"
        return f"{{ let mut {tmp} = {init}; let mut {k} = 0usize; {self.loops(e.clauses, body)} {tmp} }}"

    def zero(self, t, where: str = "at(0, 0)") -> str:
        """The zero value of type `t`; `where` locates a fault in sizing its arrays."""
        if isinstance(t, ir.BoolType):
            return "false"
        if isinstance(t, ir.FloatType):
            return "0.0"
        if isinstance(t, (ir.IntType, ir.EnumType)):
            return "0"
        if isinstance(t, ir.TupleType):
            return "(" + ", ".join(self.zero(x, where) for x in t.items) + ("," if len(t.items) == 1 else "") + ")"
        if isinstance(t, ir.ArrayType):
            if is_fixed(t) and _is_copy(t.elem):
                return f"[{self.zero(t.elem, where)}; {t.size.value}]"
            return self.filled(self.zero(t.elem, where), t.size, where)
        return "Default::default()"

    def loops(self, clauses, body: str, where: Optional[ir.Expr] = None) -> str:
        """Nested `for` loops over comprehension clauses around `body`."""
        inner = body if where is None else f"if {self.expr(where)} {{ {body} }}"
        for clause in reversed(clauses):
            inner = self.for_clause(clause, inner)
        return inner

    def for_clause(self, clause: ir.Clause, body: str) -> str:
        it = clause.iter
        if isinstance(it, ir.RangeIter):
            where = at(clause.span)
            return (f"for {local(clause.names[0])} in {self.span(it.lo, it.hi, clause.span)} "
                    f"{{ {self.poll(self.trips(it.lo, it.hi), where)}{body} }}")
        pattern = local(clause.names[0]) if len(clause.names) == 1 else \
            "(" + ", ".join(local(n) for n in clause.names) + ")"
        arr = it.array
        if isinstance(arr, ir.ArrayLit) and all(_is_constant(x) for x in arr.items):
            return f"for {pattern} in {self.expr(arr)} {{ {body} }}"
        if isinstance(arr, ir.Ref) and arr.kind == "view" and arr.name in self.array_views:
            k = self.fresh("k")
            item = method("view_item", arr.name)
            return (f"for {k} in 0..self.{method('view_len', arr.name)}() {{ let {pattern} = self.{item}({k} as i64)?; "
                    f"{body} }}")
        if isinstance(arr, (ir.Ref, ir.Index)) and not (isinstance(arr, ir.Ref) and arr.kind == "view"):
            k = self.fresh("k")
            code = self.expr(arr)
            elem = f"{code}[{k}]"
            if not _is_copy(arr.type.elem):
                elem += ".to_vec()" if _grid_ref(arr) else ".clone()"
            return f"for {k} in 0..{self.size(arr.type.size)} {{ let {pattern} = {elem}; {body} }}"
        tmp = self.fresh()
        return f"let {tmp} = {self.value(arr)}; for {pattern} in {tmp} {{ {body} }}"

    def poll(self, trips: Optional[Interval], where: str) -> str:
        """The check for the host's request to stop, at the head of a loop body; none in a
        loop of at most `POLL_FREE_TRIPS` runs: the loops inside it check for themselves
        (fns cannot recurse), so the work between two checks stays bounded."""
        if trips is not None and trips.hi <= POLL_FREE_TRIPS:
            return ""
        return f"ops::poll({where})?; "

    def poll_lines(self, trips: Optional[Interval], where: str) -> list[str]:
        code = self.poll(trips, where).strip()
        return [code] if code else []

    def trips(self, lo: ir.Expr, hi: ir.Expr) -> Optional[Interval]:
        """How many runs a loop over `lo..hi` makes, when known."""
        a, b = self.ranges.interval(lo), self.ranges.interval(hi)
        return None if a is None or b is None else Interval(0, max(0, b.hi - a.lo))

    def span(self, lo: ir.Expr, hi: ir.Expr, where) -> str:
        """The range `lo..hi` of a loop, its length checked unless proven small enough."""
        a, b = self.ranges.interval(lo), self.ranges.interval(hi)
        if a is not None and b is not None and b.hi - a.lo <= MAX_LOOP:
            # Literal ends are typed: an unused loop variable must still be an i64.
            ends = [_typed_int(e) if isinstance(e, ir.Lit) else self.expr(e) for e in (lo, hi)]
            return f"{ends[0]}..{ends[1]}"
        return f"ops::span({self.expr(lo)}, {self.expr(hi)}, {at(where)})?"

    def _Aggregate(self, e: ir.Aggregate) -> str:
        kind = e.kind
        hoisted = self.hoisted_tests(e)
        if hoisted is not None:
            return hoisted
        elem = self.value(e.element)
        is_float = isinstance(e.type, ir.FloatType)
        acc = self.fresh("acc")
        label = f"'{self.fresh('agg')}"
        if kind in ("all", "any"):
            hit = negate(elem) if kind == "all" else f"({elem})"
            start, stop = ("true", "false") if kind == "all" else ("false", "true")
            body = f"if {hit} {{ {acc} = {stop}; break {label}; }}"
            return f"{{ let mut {acc} = {start}; {label}: {{ {self.loops(e.clauses, body, e.where)} }} {acc} }}"
        if kind == "sum":
            if is_float:
                body = f"{acc} += {elem};"
                return f"{{ let mut {acc} = 0.0f64; {self.loops(e.clauses, body, e.where)} {acc} }}"
            # Every partial sum lies within the whole sum's range when it is known.
            body = f"{acc} += {elem};" if self.ranges.arithmetic_safe(e) else \
                f"{acc} = ops::add({acc}, {elem}, {at(e.span)})?;"
            return f"{{ let mut {acc} = 0i64; {self.loops(e.clauses, body, e.where)} {acc} }}"
        if kind == "count":
            body = f"if {elem} {{ {acc} += 1; }}"
            return f"{{ let mut {acc} = 0i64; {self.loops(e.clauses, body, e.where)} {acc} }}"
        if kind in ("min", "max"):
            better = ("<" if kind == "min" else ">")
            v = self.fresh("v")
            body = (f"let {v} = {elem}; {acc} = match {acc} {{ None => Some({v}), "
                    f"Some(best) => Some(if {v} {better} best {{ {v} }} else {{ best }}) }};")
            zero = rust_type(e.type)
            return (f"{{ let mut {acc}: Option<{zero}> = None; {self.loops(e.clauses, body, e.where)} "
                    f"{acc}.ok_or(Fault::new(FaultKind::Empty, {at(e.span)}, 0, 0, 0))? }}")
        if kind == "choice":
            # Count the candidates, draw one, then walk to it: no allocation.
            n, pick = self.fresh("n"), self.fresh("pick")
            v = self.fresh("v")
            count = self.loops(e.clauses, f"{n} += 1;", e.where)
            find = self.loops(e.clauses, f"if {pick} == 0 {{ {acc} = Some({elem}); break {label}; }} {pick} -= 1;", e.where)
            return (f"{{ let mut {n} = 0u64; {count} if {n} == 0 {{ return Err(Fault::new(FaultKind::Empty, "
                    f"{at(e.span)}, 0, 0, 0)); }} let mut {pick} = self.rng.below({n}); "
                    f"let mut {acc} = None; {label}: {{ {find} }} "
                    f"{acc}.ok_or(Fault::new(FaultKind::Empty, {at(e.span)}, 0, 0, 0))? }}")
        raise AssertionError(kind)  # the checker admits no other aggregate

    def reads_only(self, e: ir.Expr) -> bool:
        """Whether evaluating `e` changes nothing: no call of a function that writes the
        state, draws or rewards, no random draw."""
        for n in walk(e):
            if isinstance(n, ir.Call):
                f = next((g for g in self.env.functions if g.name == n.fn), None)
                if f is None or not f.pure:
                    return False
            if isinstance(n, ir.BuiltinCall) and n.name in RANDOM_BUILTINS:
                return False
        return True

    def stable(self, e: ir.Expr, locals_ok: bool = False) -> bool:
        """Whether `e` reads only names no statement can change: params, consts, loop
        variables, action indices and locals never assigned (with `locals_ok`, any
        local: an assignment to one `forget`s what was assumed of it)."""
        for n in walk(e):
            if isinstance(n, ir.Ref):
                if n.kind in ("state", "view") or (n.kind == "builtin" and n.name not in ("players", "pi")):
                    return False
                if n.kind in ("local", "fn_param") and n.name in self.mutable and not locals_ok:
                    return False
            if isinstance(n, (ir.Call, ir.Aggregate, ir.BuiltinCall)):
                return False
        return True

    def in_order(self, tests: list[ir.Expr]) -> list[str]:
        """The code of `tests`, each run only after those before it held: each is written
        knowing the bounds they state (when none of them changes anything)."""
        if not all(self.reads_only(t) for t in tests):
            return [self.expr(t) for t in tests]
        out = []
        with ExitStack() as stack:
            for t in tests:
                out.append(self.expr(t))
                stack.enter_context(self.ranges.assume(t))
        return out

    def _free_clause(self, c: ir.Clause, names: set[str]) -> bool:
        """Whether clause `c`'s range reads no loop variable, cannot fault and is proven
        short enough to need no length check: whether it is empty is known before the loops."""
        it = c.iter
        if not isinstance(it, ir.RangeIter) or reads(it.lo, names) or reads(it.hi, names):
            return False
        if not (self.ranges.total(it.lo) and self.ranges.total(it.hi)):
            return False
        a, b = self.ranges.interval(it.lo), self.ranges.interval(it.hi)
        return a is not None and b is not None and b.hi - a.lo <= MAX_LOOP

    def hoisted_tests(self, e: ir.Aggregate) -> Optional[str]:
        """`any`, `all` or `count` over ranges with each test of its filter and element at
        the outermost loop that binds what it reads (`inline.py` splits them), or None
        when no test can move.

        A test is moved out of inner loops only when they run at least once (checked
        before the loops), and no test before one to its left, so each is evaluated exactly
        when the loop over every member would first have evaluated it, with the same value
        (a test only reads). A failing test skips its loop's member (`any`, `count`, a
        filter) or ends `all` with false."""
        if e.kind not in ("any", "all", "count") or not e.clauses:
            return None
        clauses = e.clauses
        if not all(isinstance(c.iter, ir.RangeIter) and len(c.names) == 1 for c in clauses):
            return None
        names = [c.names[0] for c in clauses]
        nameset = set(names)
        split = Splitter(self.env, self.ranges)
        parts = [(c, True) for c in (split.conjuncts(e.where, nameset) if e.where is not None else [])]
        parts += [(c, False) for c in split.conjuncts(e.element, nameset)]
        k = len(clauses)
        lowest = k - 1  # tests may move out of the loops below `lowest` only
        while lowest >= 0 and self._free_clause(clauses[lowest], nameset):
            lowest -= 1
        placed: list[list[tuple[ir.Expr, bool]]] = [[] for _ in range(k + 1)]  # placed[level + 1]
        level = lowest
        for part in parts:
            level = max([level] + [names.index(n) for n in reads(part[0], nameset)])
            placed[level + 1].append(part)
        if not any(placed[j] for j in range(k)):
            return None
        acc, label = self.fresh("acc"), f"'{self.fresh('agg')}"
        start = {"any": "false", "all": "true", "count": "0i64"}[e.kind]
        lines = []
        ran = {}  # level -> whether every loop below it runs at least once
        for j in range(-1, k - 1):
            if placed[j + 1]:
                ran[j] = self.fresh("ran")
                ends = [(self.expr(c.iter.lo), self.expr(c.iter.hi)) for c in clauses[j + 1:]]
                lines.append(f"let {ran[j]} = {' && '.join(f'({lo} < {hi})' for lo, hi in ends)};")

        # Written in evaluation order: each test knows the bounds those before it state.
        codes = dict(zip((id(t) for t, _ in parts), self.in_order([t for t, _ in parts])))

        def moved(j: int) -> str:
            out = []
            for test, is_filter in placed[j + 1]:
                if e.kind == "all" and not is_filter:
                    fail = f"{acc} = false; break {label};"
                else:
                    fail = f"break {label};" if j < 0 else "continue;"
                out.append(f"if {ran[j]} && {negate(codes[id(test)])} {{ {fail} }}")
            return " ".join(out)

        inner = placed[k]
        filters = [codes[id(t)] for t, f in inner if f]
        elems = [codes[id(t)] for t, f in inner if not f]
        if e.kind == "all":
            body = "" if not elems else (
                f"if {''.join(f'({x}) && ' for x in filters)}{negate(' && '.join(f'({x})' for x in elems))} "
                f"{{ {acc} = false; break {label}; }}")
        else:
            test = " && ".join(f"({x})" for x in filters + elems) or "true"
            body = f"if {test} {{ {acc} = true; break {label}; }}" if e.kind == "any" else \
                f"if {test} {{ {acc} += 1; }}"
        for j in reversed(range(k)):
            c = clauses[j]
            head = (f"for {local(c.names[0])} in {self.span(c.iter.lo, c.iter.hi, c.span)} "
                    f"{{ {self.poll(self.trips(c.iter.lo, c.iter.hi), at(c.span))}")
            body = head + (moved(j) if j < k - 1 else "") + " " + body + " }"
        return (f"{{ let mut {acc} = {start}; {label}: {{ {' '.join(lines)} {moved(-1) if placed[0] else ''} "
                f"{body} }} {acc} }}")

    # ------------------------------------------------------------ statements

    def block(self, stmts, indent: str = "") -> list[str]:
        out: list[str] = []
        self.lets.append({})  # the block's own lets end with it; outer locals keep their new facts
        for s in stmts:
            out.append(f"// line {s.span.line}")
            out.extend(getattr(self, "_s_" + type(s).__name__)(s))
        for name, hidden in self.lets.pop().items():
            self.set_fact(name, hidden)
        return out

    def set_fact(self, name: str, fact: Optional[Fact]) -> None:
        if fact is None:
            self.ranges.scoped.pop(name, None)
        else:
            self.ranges.scoped[name] = fact

    def bind(self, name: str, fact: Optional[Fact]) -> None:
        """A new local: its fact hides an outer name's until the block ends."""
        if self.lets and name not in self.lets[-1]:
            self.lets[-1][name] = self.ranges.scoped.get(name)
        self.ranges.forget(name)  # what tests said of a hidden local is not about this one
        self.set_fact(name, fact)

    def assigned(self, name: str, fact: Optional[Fact]) -> None:
        """A mutable local was assigned a value with `fact`."""
        self.ranges.forget(name)
        self.set_fact(name, fact)

    def local_facts(self) -> dict[str, Fact]:
        return {n: f for n, f in self.ranges.scoped.items() if n in self.mutable}

    def set_local_facts(self, facts: Optional[dict[str, Fact]]) -> None:
        """The mutable locals' facts (None: the code is unreachable)."""
        self.dead = facts is None
        for n in self.mutable:
            self.set_fact(n, None if facts is None else facts.get(n))

    def moved_fact(self, name: str, values: Optional[Interval], step: Optional[Interval]) -> Optional[Fact]:
        """The fact of local `name` after it moved by `step` (None: set to something
        else) to `values`: its delta since the loop's head grows by `step`."""
        old = self.ranges.scoped.get(name)
        delta = None if old is None or old.delta is None or step is None else \
            Interval(old.delta.lo + step.lo, old.delta.hi + step.hi)
        if values is None and delta is None:
            return None
        return Fact(values, None, delta)

    def place(self, p: ir.Place) -> tuple[list[str], str]:
        """Statements computing the indices, and the Rust place expression."""
        pre, code = [], self.root(p.kind, p.name)
        t = p.root_type
        cell = p.kind == "state" and is_grid(t) and len(p.indices) == 2
        keys = []
        for i in p.indices:
            k = self.fresh("i")
            pre.append(f"let {k} = {self.index(i, t.size, i.span)};")
            keys.append(k)
            t = t.elem
        code += f"[({keys[0]}, {keys[1]})]" if cell else "".join(f"[{k}]" for k in keys)
        return pre, code

    def checked(self, value: str, t, span, expr: Optional[ir.Expr] = None) -> str:
        """A value (the code of `expr`) checked against a bounded int type's range, unless
        `expr` is proven within it."""
        if expr is not None and self.ranges.within(expr, t):
            return value
        if isinstance(t, ir.IntType) and t.bounded:
            return f"ops::range({value}, {self.expr(t.lo)}, {self.expr(t.hi)}, {at(span)})?"
        return value

    def _s_Let(self, s: ir.Let) -> list[str]:
        if len(s.names) == 1:
            name = s.names[0]
            mut = "mut " if name in self.mutable else ""
            value = self.value(s.value)
            if s.types:
                value = self.checked(self.coerce(value, s.value.type, s.types[0], s.span), s.types[0], s.span,
                                     s.value)
            self.bind(name, self.ranges.value_fact(s.value) if isinstance(s.value.type, ir.IntType) else None)
            return [f"let {mut}{local(name)}: {rust_type(s.types[0])} = {value};"]
        items = s.value.items if isinstance(s.value, ir.TupleLit) else [None] * len(s.names)
        facts = [self.ranges.value_fact(x) if x is not None and isinstance(x.type, ir.IntType) else None
                 for x in items]
        for n, f in zip(s.names, facts):
            self.bind(n, f)
        names = ", ".join(("mut " if n in self.mutable else "") + local(n) for n in s.names)
        return [f"let ({names}) = {self.value(s.value)};"]

    def _s_Assign(self, s: ir.Assign) -> list[str]:
        if isinstance(s.target.type, ir.ArrayType):
            return self.assign_array(s.target, s.value, s.span)
        v = self.fresh("v")
        value = self.checked(self.value(s.value), s.target.type, s.span, s.value) \
            if s.target.kind in ("state", "builtin") else self.value(s.value)
        lines = [f"let {v} = {value};"]
        if s.target.kind == "builtin":
            players = ir.IntType(ir.Lit(0, ir.IntType(), s.span), ir.Lit(self.env.players, ir.IntType(), s.span))
            if not self.ranges.within(s.value, players):
                value = f"ops::range({self.value(s.value)}, 0, {self.env.players}, {at(s.span)})?"
            lines = [f"let {v} = {value};"]
        pre, place = self.place(s.target)
        if s.target.kind in ("local", "fn_param") and not s.target.indices:
            self.assigned(s.target.name, self.assigned_fact(s.target, s.value))
        return lines + pre + [f"{place} = {v};"]

    def assigned_fact(self, target: ir.Place, value: ir.Expr) -> Optional[Fact]:
        """The fact of a scalar local after `target = value` (computed before it)."""
        if not isinstance(target.type, ir.IntType):
            return None
        fact = self.ranges.value_fact(value)
        step = None
        if isinstance(value, ir.Binary) and value.op in ("add", "sub"):
            own = lambda x: isinstance(x, ir.Ref) and x.kind in ("local", "fn_param") and x.name == target.name  # noqa: E731
            if own(value.left):
                step = self.ranges.interval(value.right)
                if step is not None and value.op == "sub":
                    step = Interval(-step.hi, -step.lo)
            elif own(value.right) and value.op == "add":
                step = self.ranges.interval(value.left)
        moved = self.moved_fact(target.name, fact.values if fact is not None else None, step)
        if moved is None:
            return None
        return Fact(moved.values, fact.below if fact is not None else None, moved.delta)

    def assign_array(self, target: ir.Place, value: ir.Expr, span) -> list[str]:
        pre, place = self.place(target)
        t = target.type
        reads_target = _mentions(value, target.name)
        if isinstance(value, ir.ArrayRepeat) and _is_copy(value.value.type) and not reads_target:
            v = self.fresh("v")
            return pre + [f"let {v} = {self.checked(self.value(value.value), t.elem, span, value.value)};",
                          f"for x in {place}.iter_mut() {{ *x = {v}; }}"]
        if isinstance(value, ir.ArrayRepeat) and isinstance(value.value, ir.ArrayRepeat) and not reads_target:
            inner = value.value
            if _is_copy(inner.value.type):
                v = self.fresh("v")
                return pre + [f"let {v} = {self.checked(self.value(inner.value), t.elem.elem, span, inner.value)};",
                              f"for row in {place}.iter_mut() {{ for x in row.iter_mut() {{ *x = {v}; }} }}"]
        if isinstance(value, ir.ArrayComp) and _is_copy(t.elem) and not reads_target:
            k = self.fresh("k")
            with self.facts(self.clause_facts(value.clauses)):
                elem = self.checked(self.value(value.element), t.elem, span, value.element)
            body = f"{place}[{k}] = {elem}; {k} += 1;"
            return pre + [f"let mut {k} = 0usize;", self.loops(value.clauses, body)]
        tmp = self.fresh("v")
        lines = [f"let {tmp} = {self.coerce(self.value(value), value.type, t, span)};"]
        if _needs_range(t):
            lines.append(f"for x in ({tmp}).iter() {{ {self.range_check_elems('*x', t, span)} }}")
        if is_fixed(t):
            return lines + pre + [f"{place} = {tmp};"]
        if target.kind == "state" and is_grid(target.root_type):
            # The grid keeps its buffer: a whole grid is assigned row by row, a row in place.
            if not target.indices:
                return lines + pre + [f"{place}.assign_rows(&{tmp}, {at(span)})?;"]
            if len(target.indices) == 1:
                return lines + pre + [f"twisterl_core::grid::copy_row(&mut {place}, &{tmp}, {at(span)})?;"]
        return lines + pre + [f"{place}.clone_from(&{tmp});"]

    def range_check_elems(self, x: str, t, span) -> str:
        elem = t.elem
        if isinstance(elem, ir.ArrayType):
            return f"for y in ({x}).iter() {{ {self.range_check_elems('*y', elem, span)} }}"
        return f"{self.checked(x, elem, span)};"

    def _s_AugAssign(self, s: ir.AugAssign) -> list[str]:
        pre, place = self.place(s.target)
        t = s.target.type
        value = self.value(s.value)
        if isinstance(t, ir.FloatType):
            if s.op == "mod":
                new = f"ops::fmod({place}, {value})"
            else:
                new = f"{place} {dict(add='+', sub='-', mul='*', div='/')[s.op]} {value}"
        else:
            fn = {"add": "add", "sub": "sub", "mul": "mul", "div": "div", "mod": "rem"}[s.op]
            new = f"ops::{fn}({place}, {value}, {at(s.span)})?"
        combined = None  # the new value as an expression, for a scalar whose range is known
        if isinstance(t, ir.IntType) and (not s.target.indices or s.target.kind == "state"):
            combined = ir.Binary(s.op, _read(s.target), s.value, t, s.span)
            if s.op in ("add", "sub", "mul") and self.ranges.arithmetic_safe(combined):
                new = f"({place} {_SIGNS[s.op]} {value})"
            elif s.op in ("div", "mod") and self.ranges.plain_division(combined):
                new = self.plain_division(s.op, place, value, s.value)
        v = self.fresh("v")
        checked = self.checked(new, t, s.span, combined) if s.target.kind in ("state", "builtin") else new
        if s.target.kind in ("local", "fn_param") and combined is not None:
            self.assigned(s.target.name, self.assigned_fact(s.target, combined))
        elif s.target.kind in ("local", "fn_param") and not s.target.indices:
            self.assigned(s.target.name, None)
        return pre + [f"let {v} = {checked};", f"{place} = {v};"]

    def _s_TupleAssign(self, s: ir.TupleAssign) -> list[str]:
        names = [self.fresh("v") for _ in s.targets]
        lines = [f"let ({', '.join(names)}) = {self.value(s.value)};"]
        for name, target in zip(names, s.targets):
            pre, place = self.place(target)
            checked = self.checked(name, target.type, s.span) if target.kind == "state" else name
            lines += pre + [f"{place} = {checked};"]
        return lines

    def _s_If(self, s: ir.If) -> list[str]:
        cond = self.expr(s.cond)
        # Nothing the test reads changes in a branch before an assignment `forget`s it.
        assumable = self.reads_only(s.cond)
        before, was_dead = self.local_facts(), self.dead
        with self.assume_stable(s.cond) if assumable else nullcontext():
            then = self.block(s.then)
        after_then = None if self.dead else self.local_facts()
        self.set_local_facts(None if was_dead else before)
        lines = [f"if {cond} {{"] + then + ["}"]
        if s.else_:
            negation = negated(s.cond) if assumable else None
            with self.assume_stable(negation) if negation is not None else nullcontext():
                if len(s.else_) == 1 and isinstance(s.else_[0], ir.If):
                    nested = self._s_If(s.else_[0])
                    lines[-1] = "} else " + nested[0]
                    lines += nested[1:]
                else:
                    lines[-1] = "} else {"
                    lines += self.block(s.else_) + ["}"]
        after_else = None if self.dead else self.local_facts()
        self.set_local_facts(_join_flows([after_then, after_else]))
        return lines

    def _s_For(self, s: ir.For) -> list[str]:
        marker = "__BODY__"
        head = self.for_clause(s.clause, marker)
        before, after = head.split(marker)
        it = s.clause.iter
        trips = None
        if isinstance(it, ir.RangeIter):
            lo, hi = self.ranges.interval(it.lo), self.ranges.interval(it.hi)
            trips = None if lo is None or hi is None else max(0, hi.hi - lo.lo)
        else:
            size = self.ranges.interval(it.array.type.size) if isinstance(it.array.type, ir.ArrayType) else None
            trips = None if size is None else max(0, size.hi)

        def write():
            with self.facts(self.clause_facts([s.clause])):
                return self.block(s.body)
        return [before] + self.loop_body(s.body, trips, write) + [after]

    def _s_While(self, s: ir.While) -> list[str]:
        n, limit = self.fresh("n"), self.fresh("limit")
        limit_code = self.expr(s.limit)
        bound = self.ranges.interval(s.limit)
        assumable = self.reads_only(s.cond)
        cond = []

        def write():
            cond[:] = [self.expr(s.cond)]  # evaluated at the loop's head: with the head's facts
            with self.assume_stable(s.cond) if assumable else nullcontext():
                return self.block(s.body)
        # At most `limit` runs of the body: one more is a fault.
        body = self.loop_body(s.body, None if bound is None else max(0, bound.hi), write)
        return ([f"let {limit} = {limit_code};", f"let mut {n} = 0i64;", f"while {cond[0]} {{",
                 f"if {n} >= {limit} {{ return Err(Fault::new(FaultKind::LoopLimit, {at(s.span)}, {limit}, 0, 0)); }}",
                 *self.poll_lines(None if bound is None else Interval(0, max(0, bound.hi)), at(s.span)),
                 f"{n} += 1;"] + body + ["}"])

    def _s_Repeat(self, s: ir.Repeat) -> list[str]:
        where = at(s.span)
        count = self.ranges.interval(s.count)
        head = f"for _ in {self.span(ir.Lit(0, ir.IntType(), s.span), s.count, s.span)} {{"
        body = self.loop_body(s.body, None if count is None else max(0, count.hi), lambda: self.block(s.body))
        return [head, *self.poll_lines(None if count is None else Interval(0, max(0, count.hi)), where)] + body + ["}"]

    # ------------------------------------------------------------ mutable locals in loops

    def assume_stable(self, test: ir.Expr):
        """`assume(test)` for code that may change the state: only what it states of
        expressions statements cannot change (locals are `forget`ten when assigned)."""
        return self.ranges.assume(test, keep=lambda e: self.stable(e, locals_ok=True))

    def forget_assigned(self, stmts) -> None:
        """What passed tests said of locals a loop's body assigns does not hold at the
        loop's head: the body may have run before."""
        for name in _assigned_locals(stmts):
            self.ranges.forget(name)

    def loop_body(self, stmts, trips: Optional[int], write) -> list[str]:
        """The lines of a loop's body (`write()` writes it), and the mutable locals' facts
        at its head and after it.

        The head's facts are a fixed point: those at the loop's entry joined with those
        at the end of the body (and at each `continue`), found by running the body's
        analysis again until they hold still (`_TRIALS` times). A local that still moves
        is bounded by the loop's trip count (at most `trips` runs) where the body moves it
        by a bounded step each run (a counter `k += 1`, on every path), and is otherwise
        unknown; the bound is then checked by one more run. After the loop: the head's
        facts joined with those at each `break`."""
        self.forget_assigned(stmts)
        names = sorted(n for n in _assigned_locals(stmts) if n in self.mutable)
        entry = self.local_facts()
        if self.dead:
            return write()
        head = {n: entry.get(n) for n in names}
        if not names or all(f is None for f in head.values()) or self.trial_budget <= 0:
            head = {n: None for n in names}
            steps = {}
        else:
            head, steps = self.fixed_point(head, entry, trips, write)
        flows, breaks = self.run_body(head, write, keep=True)
        lines = flows.pop("lines")
        # After the loop: from the head (the loop ended) or from a `break`.
        out = {}
        end_deltas = flows["end"]
        for n in self.mutable:
            if n not in head:
                continue
            fact = head[n]
            for b in breaks:
                fact = join_facts(fact, b.get(n) if b is not None else fact)
            outer = entry.get(n)
            delta = None
            if outer is not None and outer.delta is not None and trips is not None:
                step = end_deltas.get(n)
                brk = _join_deltas([b.get(n) for b in breaks if b is not None])
                if step is not None and (brk is not None or not breaks):
                    moved = Interval(min(0, trips * step.lo), max(0, trips * step.hi))
                    if brk is not None:
                        moved = Interval(moved.lo + min(0, brk.lo), moved.hi + max(0, brk.hi))
                    delta = Interval(outer.delta.lo + moved.lo, outer.delta.hi + moved.hi)
            if fact is not None or delta is not None:
                out[n] = Fact(fact.values if fact is not None else None, fact.below if fact is not None else None,
                              delta)
        for n in self.mutable:
            if n in head:
                self.set_fact(n, out.get(n))
        self.dead = False
        return lines

    def fixed_point(self, head: dict, entry: dict, trips: Optional[int], write):
        """The mutable locals' facts at a loop's head (see `loop_body`) and each
        local's step per run (None where it is not a bounded step)."""
        steps: dict = {}
        for _ in range(_TRIALS):
            flows, _ = self.run_body(head, write)
            new = {n: join_facts(head[n], flows["end_facts"].get(n)) for n in head}
            steps = flows["end"]
            if all(same_fact(new[n], head[n]) for n in head):
                return head, steps
            moving = [n for n in head if not same_fact(new[n], head[n])]
            head = new
        # Still moving: bounded by the trip count, or unknown; then checked.
        for n in moving:
            step, start = steps.get(n), entry.get(n)
            if trips is None or step is None or start is None or start.values is None:
                head[n] = None
                continue
            bound = Interval(start.values.lo + trips * min(0, step.lo), start.values.hi + trips * max(0, step.hi))
            head[n] = Fact(bound) if bound.fits_i64() else None
        for _ in range(len(head) + 1):
            if self.trial_budget <= 0:
                return {n: None for n in head}, {}
            flows, _ = self.run_body(head, write)
            bad = []
            for n in head:
                if head[n] is None:
                    continue
                end = flows["end_facts"].get(n)
                if n in moving:
                    ok = flows["end"].get(n) is not None and steps.get(n) is not None and \
                        steps[n].lo <= flows["end"][n].lo and flows["end"][n].hi <= steps[n].hi
                else:
                    ok = flows["dead"] or within_fact(end, head[n])
                if not ok:
                    bad.append(n)
            if not bad:
                return self.narrowed(head, entry, flows, write), steps
            for n in bad:
                head[n] = None
        return {n: None for n in head}, {}

    def narrowed(self, head: dict, entry: dict, flows: dict, write) -> dict:
        """A tighter head than a bounded or unknown one, where the body (a test on the
        counter, `x = (x + 1) % n`) keeps its locals inside the entry's facts joined with
        those at the body's end: kept only when one more run shows that it holds."""
        tight = {n: join_facts(entry.get(n), flows["end_facts"].get(n)) for n in head}
        if all(same_fact(tight[n], head[n]) for n in head) or self.trial_budget <= 0:
            return head
        again, _ = self.run_body(tight, write)
        if again["dead"] or all(within_fact(again["end_facts"].get(n), tight[n]) for n in tight):
            return tight
        return head

    def run_body(self, head: dict, write, keep: bool = False):
        """The body written with `head`'s facts for the locals it assigns (each at step 0
        from the head): the joined facts and steps at its end and `continue`s, and the
        facts at each `break`. Without `keep`, a trial: nothing is kept but the facts."""
        saved = (self.tmp, dict(self.ranges.scoped))
        if not keep:
            self.trial += 1
            self.trial_budget -= 1
        for n, f in head.items():
            self.set_fact(n, None if f is None else Fact(f.values, f.below, Interval(0, 0)))
        self.dead = False
        self.exits.append(([], []))
        try:
            lines = write()
            breaks, continues = self.exits.pop()
            ends = continues + ([] if self.dead else [self.local_facts()])
        finally:
            if not keep:
                self.trial -= 1
                self.tmp, self.ranges.scoped = saved[0], saved[1]
        joined = _join_flows(ends) or {}
        flows = {"end_facts": joined, "dead": not ends,
                 "end": {n: joined[n].delta for n in head if n in joined and joined[n].delta is not None}}
        if keep:
            flows["lines"] = lines
        return flows, breaks

    def _s_Return(self, s: ir.Return) -> list[str]:
        self.dead = True
        if s.value is None:
            return ["return Ok(());"]
        if self.record is not None and not self.trial and self.fn_name is not None:
            self.record.result(self.fn_name, self.ranges.interval(s.value))
        value = self.value(s.value)
        if self.returns is not None:
            value = self.coerce(value, s.value.type, self.returns, s.span)
        return [f"return {tail_value(f'Ok({value})')};"]

    def _s_Break(self, s) -> list[str]:
        if self.exits and not self.dead:
            self.exits[-1][0].append(self.local_facts())
        self.dead = True
        return ["break;"]

    def _s_Continue(self, s) -> list[str]:
        if self.exits and not self.dead:
            self.exits[-1][1].append(self.local_facts())
        self.dead = True
        return ["continue;"]

    def _s_Reward(self, s: ir.Reward) -> list[str]:
        value = self.expr(s.value)
        if s.player is None:
            return [f"self.step_rewards[self.actor] += {value};"]
        p = self.fresh("p")
        return [f"let {p} = ops::ix({self.expr(s.player)}, {self.env.players}, {at(s.span)})?;",
                f"self.step_rewards[{p}] += {value};"]

    def _s_ExprStmt(self, s: ir.ExprStmt) -> list[str]:
        code = self.expr(s.call)
        if isinstance(s.call.type, ir.UnitType):
            return [f"{code};"]
        return [f"let _ = {code};"]

    def _s_Shuffle(self, s: ir.Shuffle) -> list[str]:
        pre, place = self.place(s.target)
        i, j = self.fresh("i"), self.fresh("j")
        return pre + [f"for {i} in (1..{place}.len()).rev() {{",
                      f"let {j} = self.rng.below({i} as u64 + 1) as usize;",
                      f"{place}.swap({i}, {j});", "}"]

    def _s_NextPlayer(self, s) -> list[str]:
        return [f"self.state.player = (self.state.player + 1) % {self.env.players};"]

    def _s_RandomAction(self, s) -> list[str]:
        return ["self.random_action()?;"]


_TRIALS = 3  # runs of a loop body's analysis before its moving locals are bounded or unknown
_TRIAL_BUDGET = 200  # trial runs per writer: nested loops past it leave their locals unknown


def _join_flows(flows: list) -> Optional[dict]:
    """The facts that hold on every one of several paths (None ones are unreachable)."""
    live = [f for f in flows if f is not None]
    if not live:
        return None
    out = dict(live[0])
    for other in live[1:]:
        out = {n: j for n in out if (j := join_facts(out[n], other.get(n))) is not None}
    return out


def _join_deltas(facts: list) -> Optional[Interval]:
    deltas = [f.delta if f is not None else None for f in facts]
    if not deltas or any(d is None for d in deltas):
        return None
    out = deltas[0]
    for d in deltas[1:]:
        out = hull(out, d)
    return out


def _assigned_locals(stmts) -> set[str]:
    """The locals and fn parameters `stmts` assign."""
    return {n.name for n in walk(stmts) if isinstance(n, ir.Place) and n.kind in ("local", "fn_param")}


def _read(p: ir.Place) -> ir.Expr:
    """The value a place holds, as an expression (its indices as written)."""
    e: ir.Expr = ir.Ref(p.kind, p.name, p.root_type, p.span)
    t = p.root_type
    for i in p.indices:
        t = t.elem
        e = ir.Index(e, i, t, p.span)
    return e


def _typed_int(e: ir.Lit) -> str:
    """An int literal as an `i64`."""
    return f"{e.value}i64" if e.value >= 0 else f"({e.value}i64)"


def _is_pure_read(e) -> bool:
    """Whether evaluating `e` only reads: no call of a function (which may change the
    state), no random draw, no comprehension. Such an index can be computed inside the
    array's borrow."""
    return not any(isinstance(n, (ir.Call, ir.Aggregate, ir.ArrayComp))
                   or (isinstance(n, ir.BuiltinCall) and n.name in RANDOM_BUILTINS) for n in walk(e))


# The built-ins that draw random numbers (or apply actions, which may).
RANDOM_BUILTINS = frozenset({"uniform", "randint", "choice", "shuffle", "random_action", "act"})


def _is_simple(e) -> bool:
    """Literals and locals: evaluating them borrows nothing."""
    if isinstance(e, ir.Lit):
        return True
    return isinstance(e, ir.Ref) and e.kind in ("local", "loop", "fn_param", "action_param")


def _grid_ref(e) -> bool:
    """Whether `e` names a state variable held as a `Grid`."""
    return isinstance(e, ir.Ref) and e.kind == "state" and is_grid(e.type)


def _is_copy(t) -> bool:
    if isinstance(t, ir.ArrayType):
        return is_fixed(t) and _is_copy(t.elem)
    if isinstance(t, ir.TupleType):
        return all(_is_copy(x) for x in t.items)
    return True


def _needs_range(t) -> bool:
    while isinstance(t, ir.ArrayType):
        t = t.elem
    return isinstance(t, ir.IntType) and t.bounded


def _is_constant(e) -> bool:
    if isinstance(e, ir.Lit):
        return True
    if isinstance(e, ir.TupleLit):
        return all(_is_constant(x) for x in e.items)
    return False


def _mentions(e, name: str) -> bool:
    return any(isinstance(n, ir.Ref) and n.name == name for n in walk(e))


def _rust_str(s: str) -> str:
    out = ['"']
    for ch in s:
        if ch in '"\\':
            out.append("\\" + ch)
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\t":
            out.append("\\t")
        elif ord(ch) < 32:
            out.append(f"\\u{{{ord(ch):x}}}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


rust_str = _rust_str
is_copy = _is_copy
