"""A grammar-based generator of random, well-typed `.twl` programs (not mutations of the
examples), for the property tests in test_generated_programs.py.

`generate(rng, rich=False)` writes one whole program from a `random.Random`; `programs()`
is the same as a hypothesis strategy. The generator keeps a typed model of what it has
declared (params, consts, enums, state, functions with their effect kinds, views, locals)
and writes every expression for a wanted type, so a program it writes should type-check:
ints and floats never mix, array sizes match by their text, bounded values are made to
stay in range (`lo + e % (hi - lo)`, `clamp`, guards), indices are reduced into their
array (`e % n`, a bounded variable), divisors are positive, `while` loops count to their
limit, pure functions are the only ones called from consts and sizes, readers the only
ones called from guards, views, conditions, observe and render, and calls only go to
functions declared earlier (no recursion). Names come from a pool of tricky names: Rust
keywords, prelude names and short names the generated Rust uses.

What it covers: int (ranged, `..=`), float, bool and enum params; scalar, array,
comprehension, tuple-array and pure-call consts; enums (bare and qualified variants);
bounded/unbounded int, float, bool, enum state, 1-D and 2-D arrays with literal and
param-dependent sizes, initialisers; functions of four effect kinds (pure, reader,
mutator, rewarder) with scalar, bounded, enum, array and tuple parameters and results,
`let` (typed, untyped, tuple), if/else-if/else, `for` over ranges (`..`, `..=`), arrays
and tuple arrays, `while ... limit`, `repeat`, `break`, `continue`, early `return`; plain
actions, families of one or two indices, `when` and `advise` (and board-game guards: an
index-free test, an `if` on an index-free quotient or remainder, index tests), compound assignments,
`reward` and `reward[p]`, calls, `next_player()`; continuous actions (scalar and vector
values); views, typed and untyped; `reset` with `randint`, `uniform`, `choice` (list,
array and filtered binder), `shuffle`, `repeat`, `random_action()`, `act(k)`;
done/truncate/success/reward and `reward[p]`; observe with onehot (scalars, arrays, lists,
bounded function results), bools, dense ints and floats, `f32`, planes, `as seen by`;
`players 2`/`3`; symmetries (mirrored 1-D and 2-D arrays with families and value
relabelling, swapped plain actions); render with grids (2-D, 1-D with a width, legends
with conditional glyphs, marks) and lines with formats. Items come out in random order.
"""

from __future__ import annotations

import random

from hypothesis import strategies as st

# ----------------------------------------------------------------------------- names

RESERVED = set("""if then else not and or true false let for in where while return break continue
    reward when advise map with as fn action state param const enum env observe symmetry render reset
    success done truncate players int float bool repeat difficulty player steps num_actions pi""".split())
BUILTIN_FNS = set("""min max abs sign clamp sin cos tan sqrt exp log atan2 floor ceil round float int f32
    uniform randint choice shuffle random_action act all any sum count len rows cols find next_player
    onehot planes""".split())
RUST_KEYWORDS = """type match loop impl self Self crate super mod struct trait move mut ref static use pub
    unsafe async await dyn box yield extern where_ fn_ macro_rules union try gen""".split()
PRELUDE = """Ok Err None Some Vec String Option Result Box Default Clone i64 f64 usize u8 std core alloc
    Fault State Env Rng""".split()
GENERATED = """k s v o x i n out obs act src dst values value rewards params rng seed _x j t e f g h a b c d
    text buf at total legal mask slot cell perm r p q w len rw tv hw ops local rest base_s target
    counts actor seen by grid line mark limit sum max count lows highs _ x_ v1 k0""".split()
POOL = [n for n in dict.fromkeys(RUST_KEYWORDS + PRELUDE + GENERATED) if n not in RESERVED]
FN_POOL = [n for n in POOL if n not in BUILTIN_FNS]
ENV_POOL = list(POOL)  # the env name becomes the Rust struct's name: any name, capitalised or not


class Names:
    """Unique names for one program: globals never repeat, locals never repeat within one
    body and never take a global's name."""

    def __init__(self, rng: random.Random):
        self.rng = rng
        self.used: set[str] = set()
        self.counter = 0
        names = list(POOL)
        rng.shuffle(names)
        cut = len(names) // 2
        self.global_pool = set(names[:cut])
        self.local_pool = names[cut:]

    def fresh(self, used: set[str], pool=None) -> str:
        """A local name: never a global's (the pool is split between globals and locals)."""
        if pool is None:
            pool = self.local_pool
        free = [n for n in pool if n not in used and n not in self.used]
        if free and self.rng.random() < 0.85:
            name = self.rng.choice(free)
        else:
            self.counter += 1
            name = self.rng.choice(pool).strip("_") or "u"
            name = f"{name}_{self.counter}" if pool is self.local_pool else f"{name}{self.counter}_"
            if name in RESERVED or name in used or name in self.used:
                return self.fresh(used, pool)
        return name

    def glob(self, pool=POOL) -> str:
        pool = [n for n in pool if n in self.global_pool] or [n for n in pool if n not in self.local_pool] or pool
        name = self.fresh(set(), pool)
        self.used.add(name)
        return name


# ----------------------------------------------------------------------------- types
# ("int",) ("bint", lo_t, hi_t, lo_v, hi_v, text) ("float",) ("bool",) ("enum", name)
# ("arr", elem, n_t, n_v) ("tup", (t1, t2, ...)); hi is exclusive in hi_t/hi_v.

INT = ("int",)
FLOAT = ("float",)
BOOL = ("bool",)


def bint(lo_t, hi_t, lo_v, hi_v, text=None):
    return ("bint", lo_t, hi_t, lo_v, hi_v, text or f"{lo_t}..{hi_t}")


def arr(elem, n_t, n_v):
    return ("arr", elem, n_t, n_v)


def tname(t) -> str:
    k = t[0]
    if k == "int":
        return "int"
    if k == "bint":
        return f"int in {t[5]}"
    if k == "float":
        return "float"
    if k == "bool":
        return "bool"
    if k == "enum":
        return t[1]
    if k == "arr":
        return f"[{tname(t[1])}; {t[2]}]"
    if k == "tup":
        return "(" + ", ".join(tname(x) for x in t[1]) + ")"
    raise AssertionError(t)


def is_int(t) -> bool:
    return t[0] in ("int", "bint")


def strip(t):
    """The type of an untyped `let`, view or const holding a value of type `t`."""
    if t[0] == "bint":
        return INT
    if t[0] == "arr":
        return arr(strip(t[1]), t[2], t[3])
    if t[0] == "tup":
        return ("tup", tuple(strip(x) for x in t[1]))
    return t


def same(a, b) -> bool:
    if a[0] == "bint" and b[0] == "bint":
        return a[1:3] == b[1:3]
    if a[0] == "arr" and b[0] == "arr":
        return a[2] == b[2] and same(a[1], b[1])
    if a[0] == "tup" and b[0] == "tup":
        return len(a[1]) == len(b[1]) and all(same(x, y) for x, y in zip(a[1], b[1]))
    return a == b


def fits(have, want) -> bool:
    """Whether a value of type `have` can be used, as it is, where `want` is needed (and
    stays in range when `want` is bounded)."""
    if want[0] == "int":
        return is_int(have)
    if want[0] == "bint":
        return have[0] == "bint" and want[3] <= have[3] and have[4] <= want[4]
    if want[0] == "arr":
        return same(have, want)
    if want[0] == "tup":
        return same(have, want)
    return have == want


def p(s: str) -> str:
    """Parenthesise a compound expression."""
    if s.replace("_", "").replace(".", "").isalnum() or (s.startswith("(") and _balanced_outer(s)):
        return s
    return f"({s})"


def _balanced_outer(s: str) -> bool:
    depth = 0
    for i, ch in enumerate(s):
        depth += ch in "([" and 1 or 0
        depth -= ch in ")]" and 1 or 0
        if depth == 0 and i < len(s) - 1:
            return False
    return s.endswith(")")


# ----------------------------------------------------------------------------- model


class Fn:
    def __init__(self, name, params, ret, kind, index):
        self.name, self.params, self.ret, self.kind, self.index = name, params, ret, kind, index


class Var:
    def __init__(self, t, mutable=True, vr=None):
        self.t = t
        self.mutable = mutable
        self.vr = vr  # a known value range (lo, hi) for an int the checker may see unbounded


KIND_ORDER = {"pure": 0, "read": 1, "mut": 2, "rew": 3}


class Ctx:
    """Where an expression or statement is written: what it may read, call and do."""

    def __init__(self, prog, *, state=False, kinds=("pure",), random_=False, write=False, reward=False,
                 max_fn=None, ret=None, names=None, in_loop=False, acts=False):
        self.prog = prog
        self.state = state
        self.kinds = set(kinds)
        self.random = random_
        self.write = write
        self.reward = reward
        self.max_fn = max_fn  # only functions declared before this index may be called
        self.ret = ret
        self.locals: dict[str, Var] = {}
        self.names = names if names is not None else set()
        self.in_loop = in_loop
        self.acts = acts
        self.max_view = None
        self.max_const = None

    def child(self, **kw):
        c = Ctx.__new__(Ctx)
        c.__dict__.update(self.__dict__)
        c.locals = dict(self.locals)
        c.__dict__.update(kw)
        return c

    def local_name(self) -> str:
        n = self.prog.names.fresh(self.names)
        self.names.add(n)
        return n


class Program:
    def __init__(self, rng: random.Random, rich: bool):
        self.rng = rng
        self.rich = rich
        self.names = Names(rng)
        self.players = 1
        self.params: dict[str, tuple] = {}  # name -> (type, default value)
        self.consts: dict[str, tuple] = {}  # name -> (type, value or None, index)
        self.enums: dict[str, list[str]] = {}
        self.variant_owner: dict[str, list[str]] = {}
        self.state: dict[str, tuple] = {}
        self.fns: list[Fn] = []
        self.views: dict[str, tuple] = {}  # name -> (type, index)
        self.families: list[tuple] = []  # (name, [(idx name, lo_t, hi_t, lo_v, hi_v)])
        self.plain: list[str] = []
        self.items: list[str] = []
        self.sizes: list[tuple[str, int]] = [("2", 2), ("3", 3), ("4", 4)]
        self.continuous = False

    # ------------------------------------------------------------------ helpers
    def chance(self, x: float) -> bool:
        return self.rng.random() < x

    def pick(self, xs):
        return self.rng.choice(list(xs))

    def size(self, small=False):
        opts = self.sizes if not small else [s for s in self.sizes if s[1] <= 4] or self.sizes
        return self.pick(opts)

    def int_lit(self, lo=-5, hi=10) -> str:
        v = self.rng.randint(lo, hi)
        return self.lit(v)

    def lit(self, v: int) -> str:
        if v >= 1000 and self.chance(0.5):
            return f"{v:_}"
        return str(v)

    def float_lit(self) -> str:
        return self.pick(["0.0", "0.5", "1.0", "-1.0", "2.5", "0.25", "2.5e-3", "1e2", "3.0", "-0.75",
                          "1_0.5"])

    def variant(self, e: str) -> str:
        v = self.pick(self.enums[e])
        if len(self.variant_owner[v]) > 1 or self.chance(0.4):
            return f"{e}.{v}"
        return v

    # ------------------------------------------------------------------ value sources
    def vars_of(self, ctx: Ctx, want, exact=False):
        """Names readable in `ctx` whose type fits `want`."""
        out = []
        for n, v in ctx.locals.items():
            if (same(v.t, want) if exact else fits(v.t, want)):
                out.append(n)
            elif want[0] == "bint" and v.vr and is_int(v.t) and want[3] <= v.vr[0] and v.vr[1] <= want[4]:
                out.append(n)
        for n, (t, _) in self.params.items():
            if fits(t, want):
                out.append(n)
        for n, (t, _, i) in self.consts.items():
            if (ctx.max_const is None or i < ctx.max_const) and (same(t, want) if exact else fits(t, want)):
                out.append(n)
        if ctx.state:
            for n, t in self.state.items():
                if same(t, want) if exact else fits(t, want):
                    out.append(n)
            for n, (t, i) in self.views.items():
                if (ctx.max_view is None or i < ctx.max_view) and (same(t, want) if exact else fits(t, want)):
                    out.append(n)
            if want[0] == "int":
                out += ["steps", "player", "difficulty"]
            if want[0] == "bint" and want[3] <= 0 and self.players <= want[4]:
                out.append("player")
        if want[0] == "int" and ctx.state:
            out += ["players", "num_actions"]
        if want[0] == "float":
            out.append("pi")
        return out

    def fns_of(self, ctx: Ctx, want):
        return [f for f in self.fns
                if f.ret is not None and f.kind in ctx.kinds and (ctx.max_fn is None or f.index < ctx.max_fn)
                and fits(f.ret, want) and (f.kind in ("pure", "read") or ctx.write)]

    def arrays(self, ctx: Ctx, pred):
        """(text, type) of readable arrays whose type satisfies pred."""
        out = []
        for n, v in ctx.locals.items():
            if v.t[0] == "arr" and pred(v.t):
                out.append((n, v.t))
        for n, (t, _, i) in self.consts.items():
            if t[0] == "arr" and pred(t) and (ctx.max_const is None or i < ctx.max_const):
                out.append((n, t))
        if ctx.state:
            for n, t in self.state.items():
                if t[0] == "arr" and pred(t):
                    out.append((n, t))
            for n, (t, i) in self.views.items():
                if t[0] == "arr" and pred(t) and (ctx.max_view is None or i < ctx.max_view):
                    out.append((n, t))
        return out

    def elements(self, ctx: Ctx, want, depth):
        """Array cells (`a[i]`, `g[i][j]`) of a type that fits `want`."""
        out = []
        for text, t in self.arrays(ctx, lambda t: True):
            if fits(t[1], want):
                out.append(f"{text}[{self.index(ctx, t, depth)}]")
            elif t[1][0] == "arr" and fits(t[1][1], want):
                out.append(f"{text}[{self.index(ctx, t, depth)}][{self.index(ctx, t[1], depth)}]")
        return out

    def index(self, ctx: Ctx, t, depth) -> str:
        """An index that is inside array type t (n_v cells)."""
        n_t, n_v = t[2], t[3]
        r = self.rng.random() if depth < 4 else 0.0
        if r < 0.3:
            return str(self.rng.randrange(n_v))
        if r < 0.6:
            cands = self.vars_of(ctx, bint("0", n_t, 0, n_v))
            if cands:
                return self.pick(cands)
        if r < 0.8:
            return f"{p(self.expr(INT, ctx, depth + 1))} % {p(n_t)}"
        return f"clamp({self.expr(INT, ctx, depth + 1)}, 0, {n_t} - 1)"

    def call(self, ctx: Ctx, f: Fn, depth) -> str:
        return f"{f.name}({', '.join(self.expr(t, ctx, depth + 1) for _, t in f.params)})"

    # ------------------------------------------------------------------ expressions
    def expr(self, t, ctx: Ctx, depth=0) -> str:
        k = t[0]
        leaf = depth >= (3 if self.rich else 2) or self.chance(0.25)
        if k == "bint":
            return self.e_bint(t, ctx, depth, leaf)
        if k == "int":
            return self.e_int(ctx, depth, leaf)
        if k == "float":
            return self.e_float(ctx, depth, leaf)
        if k == "bool":
            return self.e_bool(ctx, depth, leaf)
        if k == "enum":
            return self.e_enum(t, ctx, depth, leaf)
        if k == "arr":
            return self.e_arr(t, ctx, depth, leaf)
        if k == "tup":
            return self.e_tup(t, ctx, depth, leaf)
        raise AssertionError(t)

    def _common(self, t, ctx, depth, leaf):
        """Variables, calls, cells and conditionals of type t, or None."""
        r = self.rng.random()
        if r < 0.45:
            vs = self.vars_of(ctx, t)
            if vs:
                return self.pick(vs)
        if r < 0.6 and not leaf:
            fs = self.fns_of(ctx, t)
            if fs:
                return self.call(ctx, self.pick(fs), depth)
        if r < 0.75 and depth < 4:
            es = self.elements(ctx, t, depth)
            if es:
                return self.pick(es)
        if r < 0.82 and not leaf:
            return (f"if {self.expr(BOOL, ctx, depth + 1)} then {self.expr(t, ctx, depth + 1)} "
                    f"else {self.expr(t, ctx, depth + 1)}")
        return None

    def e_bint(self, t, ctx, depth, leaf):
        _, lo_t, hi_t, lo_v, hi_v, _text = t
        got = self._common(t, ctx, depth, leaf)
        if got is not None:
            return p(got) if got.startswith("if ") else got
        r = self.rng.random()
        if r < 0.3 or leaf:
            return self.lit(self.rng.randrange(lo_v, hi_v))
        if r < 0.5 and ctx.random:
            return f"randint({lo_t}, {hi_t})"
        if r < 0.75:
            e = p(self.expr(INT, ctx, depth + 1))
            if lo_v == 0 and lo_t == "0":
                return f"{e} % {p(hi_t)}"
            return f"{p(lo_t)} + {e} % ({hi_t} - {p(lo_t)})"
        if r < 0.9:
            return f"clamp({self.expr(INT, ctx, depth + 1)}, {lo_t}, {hi_t} - 1)"
        f = self.pick(["min", "max"])
        return f"{f}({self.expr(t, ctx, depth + 1)}, {self.expr(t, ctx, depth + 1)})"

    def e_int(self, ctx, depth, leaf):
        got = self._common(INT, ctx, depth, leaf)
        if got is not None:
            return p(got) if got.startswith("if ") else got
        if leaf:
            return self.int_lit()
        d = depth + 1
        r = self.rng.randrange(22)
        if r < 4:
            op = self.pick(["+", "-", "*", "+", "-"])
            return f"{p(self.expr(INT, ctx, d))} {op} {p(self.expr(INT, ctx, d))}"
        if r == 4:
            return f"{p(self.expr(INT, ctx, d))} {self.pick(['/', '%'])} {self.rng.randint(1, 7)}"
        if r == 5:
            return f"{self.pick(['abs', 'sign'])}({self.expr(INT, ctx, d)})"
        if r == 6:
            args = [self.expr(INT, ctx, d) for _ in range(self.rng.randint(2, 3))]
            return f"{self.pick(['min', 'max'])}({', '.join(args)})"
        if r == 7:
            return f"int({self.expr(BOOL, ctx, d)})"
        if r == 8 and self.enums:
            return f"int({self.expr(('enum', self.pick(self.enums)), ctx, d)})"
        if r == 9:
            return f"int({self.pick(['floor', 'ceil', 'round'])}(clamp({self.expr(FLOAT, ctx, d)}, -1000.0, 1000.0)))"
        if r == 10:
            arrs = self.arrays(ctx, lambda t: True)
            if arrs:
                text, t = self.pick(arrs)
                if t[1][0] == "arr" and self.chance(0.5):
                    return f"{self.pick(['rows', 'cols'])}({text})"
                return f"len({text})"
        if r == 11:
            arrs = self.arrays(ctx, lambda t: is_int(t[1]))
            if arrs:
                return f"{self.pick(['sum', 'min', 'max'])}({self.pick(arrs)[0]})"
        if r == 12:
            return self.aggregate(INT, ctx, d)
        if r == 13:
            n_t, n_v = self.size()
            return f"{p(self.expr(INT, ctx, d))} % {p(n_t)} ** {self.rng.randint(0, 2)}"
        if r == 14 and ctx.random:
            lo = self.expr(INT, ctx, d)
            if "randint" not in lo and "uniform" not in lo and "choice" not in lo and "(" not in lo:
                return f"randint({lo}, {p(lo)} + {self.rng.randint(1, 4)})"
            return f"randint(0, {self.rng.randint(1, 9)})"
        if r == 15:
            return f"clamp({self.expr(INT, ctx, d)}, {self.int_lit(-5, 0)}, {self.int_lit(0, 9)})"
        if r == 16:
            return f"-{p(self.expr(INT, ctx, d))}"
        if r == 17:
            arrs = self.arrays(ctx, lambda t: t[1] == BOOL)
            if arrs:
                return f"count({self.pick(arrs)[0]})"
        if r == 18:
            n_t, _ = self.size()
            v = ctx.local_name()
            c = ctx.child()
            c.locals[v] = Var(INT, False, (0, 1))
            f = self.pick(["max", "min"])
            return f"{f}({v} in 0..{n_t} where {v} == 0 or {self.expr(BOOL, c, d)})"
        return self.int_lit()

    def aggregate(self, t, ctx, d):
        """sum/count/any/all over one or two generator clauses."""
        c = ctx.child()
        clauses = []
        for _ in range(self.rng.choice([1, 1, 2])):
            v = ctx.local_name()
            r = self.rng.random()
            arrs = self.arrays(ctx, lambda a: a[1][0] != "arr")
            if r < 0.3 and arrs:
                text, at = self.pick(arrs)
                clauses.append(f"for {v} in {text}")
                c.locals[v] = Var(at[1], False)
            elif r < 0.45:
                n_t, n_v = self.size()
                clauses.append(f"for {v} in 1..={n_t}")
                c.locals[v] = Var(INT, False, (1, n_v + 1))
            else:
                n_t, n_v = self.size()
                clauses.append(f"for {v} in 0..{n_t}")
                c.locals[v] = Var(INT, False, (0, n_v))
        where = f" where {self.expr(BOOL, c, d)}" if self.chance(0.3) else ""
        if t == BOOL:
            f = self.pick(["any", "all"])
            return f"{f}({self.expr(BOOL, c, d)} {' '.join(clauses)}{where})"
        if t == FLOAT:
            return f"sum({self.expr(FLOAT, c, d)} {' '.join(clauses)}{where})"
        if self.chance(0.5):
            return f"count({self.expr(BOOL, c, d)} {' '.join(clauses)}{where})"
        return f"sum({self.expr(INT, c, d)} {' '.join(clauses)}{where})"

    def e_float(self, ctx, depth, leaf):
        got = self._common(FLOAT, ctx, depth, leaf)
        if got is not None:
            return p(got) if got.startswith("if ") else got
        if leaf:
            return self.float_lit()
        d = depth + 1
        r = self.rng.randrange(21)
        if r < 4:
            op = self.pick(["+", "-", "*"])
            right = self.pick(["2", "1", "3"]) if self.chance(0.2) else p(self.expr(FLOAT, ctx, d))
            return f"{p(self.expr(FLOAT, ctx, d))} {op} {right}"
        if r == 4:
            return f"{p(self.expr(FLOAT, ctx, d))} / (abs({self.expr(FLOAT, ctx, d)}) + 1.0)"
        if r == 5:
            return f"float({self.expr(self.pick([INT, BOOL]), ctx, d)})"
        if r == 6:
            f = self.pick(["sin", "cos", "tan", "abs", "floor", "ceil", "round", "f32", "sign"])
            return f"{f}({self.expr(FLOAT, ctx, d)})"
        if r == 7:
            return f"sqrt(abs({self.expr(FLOAT, ctx, d)}))"
        if r == 8:
            return f"exp(clamp({self.expr(FLOAT, ctx, d)}, -5.0, 5.0))"
        if r == 9:
            return f"log(abs({self.expr(FLOAT, ctx, d)}) + 1.0)"
        if r == 10:
            return f"atan2({self.expr(FLOAT, ctx, d)}, {self.expr(FLOAT, ctx, d)})"
        if r == 11:
            return f"clamp({self.expr(FLOAT, ctx, d)}, -2.0, {self.pick(['2.0', '2', '0.5'])})"
        if r == 12:
            return f"{self.pick(['min', 'max'])}({self.expr(FLOAT, ctx, d)}, {self.expr(FLOAT, ctx, d)})"
        if r in (13, 19) and ctx.random:
            return f"uniform({self.pick(['-1.0', '0.0', '-0.05'])}, {self.pick(['1.0', '0.05', '2'])})"
        if r == 14:
            arrs = self.arrays(ctx, lambda t: t[1] == FLOAT)
            if arrs:
                return f"{self.pick(['sum', 'min', 'max'])}({self.pick(arrs)[0]})"
        if r == 15:
            return self.aggregate(FLOAT, ctx, d)
        if r == 16:
            return f"{p(self.expr(FLOAT, ctx, d))} ** {self.pick(['2', '2.0', '0.5', '3'])}"
        if r == 17:
            return f"{p(self.expr(FLOAT, ctx, d))} % {self.pick(['2.0', '0.5', '-1.5'])}"
        if r == 18:
            return f"-{p(self.expr(FLOAT, ctx, d))}"
        return self.float_lit()

    def e_bool(self, ctx, depth, leaf):
        got = self._common(BOOL, ctx, depth, leaf)
        if got is not None:
            return p(got) if got.startswith("if ") else got
        if leaf:
            return self.pick(["true", "false"])
        d = depth + 1
        r = self.rng.randrange(16)
        if r < 3:
            op = self.pick(["<", "<=", ">", ">=", "==", "!="])
            return f"{self.expr(INT, ctx, d)} {op} {self.expr(INT, ctx, d)}"
        if r == 3:
            n_t, _ = self.size()
            return f"0 <= {self.expr(INT, ctx, d)} < {n_t}"
        if r == 4:
            op = self.pick(["<", "<=", ">", ">="])
            return f"{self.expr(FLOAT, ctx, d)} {op} {self.expr(FLOAT, ctx, d)}"
        if r == 5 and self.enums:
            e = ("enum", self.pick(self.enums))
            return f"{self.expr(e, ctx, d)} {self.pick(['==', '!='])} {self.expr(e, ctx, d)}"
        if r == 6:
            return f"not {p(self.expr(BOOL, ctx, d))}"
        if r in (7, 8):
            return f"{p(self.expr(BOOL, ctx, d))} {self.pick(['and', 'or'])} {p(self.expr(BOOL, ctx, d))}"
        if r == 9:
            return self.aggregate(BOOL, ctx, d)
        if r == 10:
            arrs = self.arrays(ctx, lambda t: t[1] == BOOL)
            if arrs:
                return f"{self.pick(['any', 'all'])}({self.pick(arrs)[0]})"
        if r == 11:
            arrs = self.arrays(ctx, lambda t: True)
            if arrs:
                text, t = self.pick(arrs)
                return f"{text} {self.pick(['==', '!='])} {self.expr(t, ctx, d)}"
        if r == 12:
            return f"{p(self.expr(BOOL, ctx, d))} {self.pick(['==', '!='])} {p(self.expr(BOOL, ctx, d))}"
        if r == 13:
            a, b = self.expr(INT, ctx, d), self.expr(INT, ctx, d)
            return f"{a} < {b} <= {self.expr(INT, ctx, d)}"
        return self.pick(["true", "false"])

    def structured_guard(self, ctx: Ctx) -> str:
        """A board game's guard: a test that reads no index, an `if` on an index-free
        quotient or remainder (which masks and draws unswitch), then tests of the indices."""
        free = ctx.child()
        free.locals = {}
        cond = f"{p(self.expr(INT, free, 1))} {self.pick(['/', '%'])} {self.rng.randint(2, 4)} " \
               f"{self.pick(['==', '<', '!='])} {self.rng.randint(0, 2)}"
        then, else_ = p(self.expr(BOOL, ctx, 1)), p(self.expr(BOOL, ctx, 1))
        return f"{p(self.expr(BOOL, free, 1))} and (if {cond} then {then} else {else_}) and {p(self.expr(BOOL, ctx, 1))}"

    def e_enum(self, t, ctx, depth, leaf):
        got = self._common(t, ctx, depth, leaf)
        if got is not None:
            return p(got) if got.startswith("if ") else got
        if ctx.random and self.chance(0.2) and not leaf:
            vs = ", ".join(self.variant(t[1]) for _ in range(self.rng.randint(1, 3)))
            return f"choice([{vs}])"
        return self.variant(t[1])

    def e_arr(self, t, ctx, depth, leaf):
        _, elem, n_t, n_v = t
        r = self.rng.random()
        if r < 0.35:
            vs = self.vars_of(ctx, t, exact=True)
            if vs:
                return self.pick(vs)
        if r < 0.45 and not leaf:
            fs = [f for f in self.fns_of(ctx, t) if same(f.ret, t)]
            if fs:
                return self.call(ctx, self.pick(fs), depth)
        if r < 0.55:
            rows = [(text, at) for text, at in self.arrays(ctx, lambda a: a[1][0] == "arr" and same(a[1], t))]
            if rows:
                text, at = self.pick(rows)
                return f"{text}[{self.index(ctx, at, depth)}]"
        d = depth + 1
        if r < 0.65 and n_t.isdigit() and n_v <= 6:
            return "[" + ", ".join(self.expr(elem, ctx, d) for _ in range(n_v)) + "]"
        if r < 0.75 and elem == FLOAT and self.chance(0.5):
            inner = self.e_arr(t, ctx, d, True)
            if "." in inner or not inner.startswith("["):
                return f"f32({inner})"
        if r < 0.8:
            return f"[{self.expr(elem, ctx, d)}; {n_t}]"
        v = ctx.local_name()
        c = ctx.child()
        c.locals[v] = Var(INT, False, (0, n_v))
        return f"[{self.expr(elem, c, d)} for {v} in 0..{n_t}]"

    def e_tup(self, t, ctx, depth, leaf):
        if self.chance(0.4):
            fs = [f for f in self.fns_of(ctx, t) if same(f.ret, t)]
            if fs:
                return self.call(ctx, self.pick(fs), depth)
        if self.chance(0.4):
            es = [e for e in self.elements(ctx, t, depth)]
            if es:
                return self.pick(es)
        return "(" + ", ".join(self.expr(x, ctx, depth + 1) for x in t[1]) + ")"

    # ------------------------------------------------------------------ statements
    def lvalues(self, ctx: Ctx):
        """(text, type) of assignable places."""
        out = []
        for n, v in ctx.locals.items():
            if v.mutable:
                out.append((n, v.t))
        if ctx.write:
            for n, t in self.state.items():
                out.append((n, t))
            if self.players > 1 and self.chance(0.1):
                out.append(("player", bint("0", "players", 0, self.players)))
        cells = []
        for text, t in out:
            if t[0] == "arr":
                cells.append((f"{text}[{self.index(ctx, t, 1)}]", t[1]))
                if t[1][0] == "arr":
                    cells.append((f"{text}[{self.index(ctx, t, 1)}][{self.index(ctx, t[1], 1)}]", t[1][1]))
        return out + cells

    def assign_value(self, t, ctx) -> str:
        """A value for an assignment to a place of type t that keeps run-time faults rare."""
        if t == INT:
            r = self.rng.random()
            if r < 0.5:
                return f"clamp({self.expr(INT, ctx, 1)}, -1000, 1000)"
            return f"{p(self.expr(INT, ctx, 1))} % 1000"
        if t == FLOAT:
            if self.chance(0.05):
                return self.int_lit(-3, 3)  # an int literal where a float is expected
            return f"clamp({self.expr(FLOAT, ctx, 1)}, -10.0, 10.0)" if self.chance(0.7) else self.expr(FLOAT, ctx, 1)
        return self.expr(t, ctx, 0)

    def block(self, ctx: Ctx, n: int, depth: int) -> list[str]:
        out: list[str] = []
        for _ in range(n):
            s = self.stmt(ctx, depth)
            if s:
                out.extend(s)
        return out

    def stmt(self, ctx: Ctx, depth: int) -> list[str]:
        r = self.rng.randrange(26 if depth < 2 else 14)
        lv = self.lvalues(ctx)
        if r < 3:  # let
            t = self.stype(small=True)
            name = ctx.local_name()
            value = self.expr(t, ctx, 0)
            if self.chance(0.5):
                ctx.locals[name] = Var(t, True)
                return [f"let {name}: {tname(t)} = {value}"]
            ctx.locals[name] = Var(strip(t), True)
            return [f"let {name} = {value}"]
        if r < 8 and lv:  # assignment
            text, t = self.pick(lv)
            return [f"{text} = {self.assign_value(t, ctx)}"]
        if r < 10 and lv:  # compound
            text, t = self.pick(lv)
            if t == INT:
                op = self.pick(["+=", "-=", "%=", "/="])
                v = str(self.rng.randint(1, 5))
                return [f"{text} {op} {v}"]
            if t == FLOAT:
                op = self.pick(["+=", "-=", "*=", "/="])
                v = self.pick(["0.5", "2.0", "1", "1.5"])
                return [f"{text} {op} {v}"]
            if t[0] == "bint":
                _, lo_t, hi_t, lo_v, hi_v, _ = t
                if self.chance(0.5):
                    return [f"if {text} < {hi_t} - 1 {{ {text} += 1 }}"]
                if lo_v == 0 and lo_t == "0" and self.chance(0.5):
                    return [f"{text} %= {self.rng.randint(1, max(1, hi_v))}"]
                return [f"if {text} > {lo_t} {{ {text} -= 1 }}"]
            return []
        if r == 10 and ctx.reward:
            if self.players > 1 and self.chance(0.5):
                who = self.pick(["player", f"(player + 1) % players", f"{p(self.expr(INT, ctx, 1))} % players"])
                return [f"reward[{who}] {self.expr(FLOAT, ctx, 1)}"]
            return [f"reward {self.expr(FLOAT, ctx, 1)}"]
        if r == 11:  # call for effect
            fs = [f for f in self.fns if f.kind in ctx.kinds and (ctx.max_fn is None or f.index < ctx.max_fn)
                  and (f.kind in ("pure", "read") or ctx.write)]
            if fs:
                f = self.pick(fs)
                if f.ret is not None and f.ret[0] == "tup" and self.chance(0.6):
                    names = [ctx.local_name() for _ in f.ret[1]]
                    value = self.call(ctx, f, 0)
                    for nm, tt in zip(names, f.ret[1]):
                        ctx.locals[nm] = Var(strip(tt), True)
                    return [f"let ({', '.join(names)}) = {value}"]
                return [self.call(ctx, f, 0)]
        if r == 12 and self.players > 1 and ctx.write and ctx.reward:
            return ["next_player()"]
        if r == 13 and ctx.in_loop:
            return [f"if {self.expr(BOOL, ctx, 1)} {{ {self.pick(['break', 'continue'])} }}"]
        if r in (14, 15, 16):  # if / else if / else
            c1 = ctx.child()
            lines = [f"if {self.expr(BOOL, ctx, 1)} {{"] + self.ind(self.block(c1, self.rng.randint(1, 3), depth + 1))
            if self.chance(0.3):
                c2 = ctx.child()
                lines += [f"}} else if {self.expr(BOOL, ctx, 1)} {{"] + self.ind(self.block(c2, 1, depth + 1))
            if self.chance(0.5):
                c3 = ctx.child()
                lines += ["} else {"] + self.ind(self.block(c3, self.rng.randint(1, 2), depth + 1))
            return lines + ["}"]
        if r in (17, 18):  # for
            c = ctx.child(in_loop=True)
            v = ctx.local_name()
            rr = self.rng.random()
            arrs = self.arrays(ctx, lambda a: True)
            tups = [(n, t) for n, t in arrs if t[1][0] == "tup"]
            if rr < 0.15 and tups:
                text, t = self.pick(tups)
                names = [ctx.local_name() for _ in t[1][1]]
                for nm, tt in zip(names, t[1][1]):
                    c.locals[nm] = Var(tt, False)
                head = f"for ({', '.join(names)}) in {text}"
            elif rr < 0.35 and arrs:
                text, t = self.pick(arrs)
                c.locals[v] = Var(t[1], False)
                head = f"for {v} in {text}"
            elif rr < 0.5:
                n_t, n_v = self.size()
                c.locals[v] = Var(INT, False, (1, n_v + 1))
                head = f"for {v} in 1..={n_t}"
            else:
                n_t, n_v = self.size()
                c.locals[v] = Var(INT, False, (0, n_v))
                head = f"for {v} in 0..{n_t}"
            return [head + " {"] + self.ind(self.block(c, self.rng.randint(1, 3), depth + 1)) + ["}"]
        if r == 19:  # while with a counter
            k = ctx.local_name()
            n_t, n_v = self.size()
            lim = self.pick([n_t, f"{n_t} + 1", str(n_v + 3)])
            ctx.locals[k] = Var(INT, True)
            c = ctx.child(in_loop=True)
            c.locals[k] = Var(INT, False, (1, n_v + 1))  # counted up at the top of the body
            cond = f"{k} < {n_t}"
            if self.chance(0.5):
                cond += f" and {p(self.expr(BOOL, c, 1))}"
            return ([f"let {k} = 0", f"while {cond} limit {lim} {{", f"    {k} += 1"]
                    + self.ind(self.block(c, self.rng.randint(0, 2), depth + 1)) + ["}"])
        if r == 20:  # repeat
            n = self.pick(["2", "3", self.size()[0]] + (["difficulty"] if ctx.state else []))
            c = ctx.child()
            return [f"repeat {n} {{"] + self.ind(self.block(c, self.rng.randint(1, 2), depth + 1)) + ["}"]
        if r == 21 and ctx.ret is not None:  # an early return
            return [f"if {self.expr(BOOL, ctx, 1)} {{ return {self.expr(ctx.ret, ctx, 1)} }}"]
        if r == 22 and ctx.ret is None and depth > 0:
            return [f"if {self.expr(BOOL, ctx, 1)} {{ return }}"]
        if r == 23:  # tuple assignment
            ints = [(t, ty) for t, ty in lv if ty in (INT, FLOAT, BOOL)]
            if len(ints) >= 2:
                (a, ta), (b, tb) = self.rng.sample(ints, 2)
                if a != b and a.split("[")[0] != b.split("[")[0]:
                    return [f"({a}, {b}) = ({self.assign_value(ta, ctx)}, {self.assign_value(tb, ctx)})"]
        if r == 24 and ctx.random:
            arrs = [(n, t) for n, t in self.lvalues(ctx) if t[0] == "arr" and "[" not in n]
            if arrs:
                return [f"shuffle({self.pick(arrs)[0]})"]
        if r == 25:  # a tuple let from a tuple const
            tups = [(n, t) for n, t in self.arrays(ctx, lambda a: a[1][0] == "tup")]
            if tups:
                text, t = self.pick(tups)
                names = [ctx.local_name() for _ in t[1][1]]
                value = f"{text}[{self.index(ctx, t, 1)}]"
                for nm, tt in zip(names, t[1][1]):
                    ctx.locals[nm] = Var(strip(tt), True)
                return [f"let ({', '.join(names)}) = {value}"]
        if lv:
            text, t = self.pick(lv)
            return [f"{text} = {self.assign_value(t, ctx)}"]
        return []

    @staticmethod
    def ind(lines):
        return ["    " + x for x in lines]

    # ------------------------------------------------------------------ declarations
    def stype(self, small=False, arrays=True, allow_float=True):
        """A random state-like type."""
        r = self.rng.random()
        if r < 0.3:
            return self.bounded()
        if r < 0.4:
            return INT
        if r < 0.5 and allow_float:
            return FLOAT
        if r < 0.6:
            return BOOL
        if r < 0.7 and self.enums:
            return ("enum", self.pick(self.enums))
        if r < 0.9 and arrays:
            n_t, n_v = self.size(small)
            e = self.stype(small, arrays=False, allow_float=allow_float)
            if self.chance(0.3) and not small:
                m_t, m_v = self.size(True)
                return arr(arr(e, n_t, n_v), m_t, m_v)
            return arr(e, n_t, n_v)
        return self.bounded()

    def bounded(self):
        r = self.rng.random()
        if r < 0.3:
            n_t, n_v = self.size()
            return bint("0", n_t, 0, n_v)
        if r < 0.45:
            hi = self.rng.randint(1, 5)
            return bint("0", f"{hi} + 1", 0, hi + 1, f"0..={hi}")
        if r < 0.6:
            lo = self.rng.randint(-3, 0)
            hi = lo + self.rng.randint(1, 6)
            lo_t = str(lo) if lo >= 0 else f"-{-lo}"
            return bint(lo_t, str(hi), lo, hi)
        if r < 0.75:
            n_t, n_v = self.size()
            return bint("1", f"{n_t} + 1", 1, n_v + 1, f"1..={n_t}")
        n_t, n_v = self.size()
        return bint("0", f"{n_t} + 1", 0, n_v + 1, f"0..{n_t} + 1")

    def gen_params(self):
        for _ in range(self.rng.randint(1, 4)):
            name = self.names.glob()
            r = self.rng.random()
            if r < 0.45:
                d = self.rng.randint(2, 5)
                if self.chance(0.5):
                    self.items.append(f"param {name}: int in 1..{self.rng.randint(d + 1, 9)} = {d}")
                elif self.chance(0.5):
                    self.items.append(f"param {name}: int in 2..={self.rng.randint(d, 8)} = {d}")
                else:
                    self.items.append(f"param {name} = {d}")
                self.params[name] = (INT, d)
                self.sizes.append((name, d))
            elif r < 0.6:
                d = self.rng.randint(-3, 20)
                self.items.append(f"param {name}: int = {d}")
                self.params[name] = (INT, d)
            elif r < 0.8:
                d = self.pick(["0.5", "9.8", "1.0", "0.05", "-2.5"])
                if self.chance(0.5):
                    self.items.append(f"param {name}: float in -10.0..10.0 = {d}")
                else:
                    self.items.append(f"param {name} = {d}")
                self.params[name] = (FLOAT, d)
            elif r < 0.85 or not self.enums:
                d = self.pick(["true", "false"])
                self.items.append(f"param {name}: bool = {d}" if self.chance(0.6) else f"param {name} = {d}")
                self.params[name] = (BOOL, d)
            else:
                e = self.pick(self.enums)
                self.items.append(f"param {name}: {e} = {self.variant(e)}")
                self.params[name] = (("enum", e), None)

    def gen_enums(self):
        for _ in range(self.rng.choice([0, 1, 1, 2, 3])):
            name = self.names.glob()
            vs = []
            for _ in range(self.rng.randint(1, 4)):
                shared = [v for v in self.variant_owner if v not in vs]
                if shared and self.chance(0.1):
                    v = self.pick(shared)
                else:
                    v = self.names.glob()
                vs.append(v)
                self.variant_owner.setdefault(v, []).append(name)
            self.enums[name] = vs
            sep = self.pick([", ", ",\n    "])
            body = sep.join(vs) + ("," if self.chance(0.2) else "")
            self.items.append(f"enum {name} {{ {body} }}" if "\n" not in sep else f"enum {name} {{\n    {body}\n}}")

    def gen_consts(self):
        for i in range(self.rng.randint(1, 5)):
            name = self.names.glob()
            ctx = Ctx(self, kinds=("pure",), max_fn=self.n_pure_before_consts)
            ctx.max_const = i
            r = self.rng.random()
            if i == 0 and self.chance(0.2):
                self.gen_level(name, i)
                continue
            if r < 0.3:  # a size
                (a, av), (b, bv) = self.size(True), self.size(True)
                form = self.rng.randrange(3)
                if form == 0:
                    text, v = f"{a} * {b}", av * bv
                elif form == 1:
                    text, v = f"{a} + {b}", av + bv
                else:
                    text, v = f"max({a}, {b}) - 1", max(av, bv) - 1
                self.items.append(f"const {name} = {text}")
                self.consts[name] = (INT, v, i)
                if 1 <= v <= 16:
                    self.sizes.append((name, v))
            elif r < 0.45:  # a lookup table of tuples
                m = self.rng.randint(2, 4)
                rows = ", ".join(f"({self.int_lit(-1, 1)}, {self.int_lit(-1, 1)})" for _ in range(m))
                t = arr(("tup", (INT, INT)), str(m), m)
                self.items.append(f"const {name} = [{rows}]")
                self.consts[name] = (t, None, i)
            else:
                t = self.stype(small=True)
                if t[0] == "arr" and self.chance(0.5):
                    # a comprehension
                    v = ctx.local_name()
                    c = ctx.child()
                    c.locals[v] = Var(INT, False, (0, t[3]))
                    body = f"[{self.expr(t[1], c, 1)} for {v} in 0..{t[2]}]"
                else:
                    body = self.expr(t, ctx, 0)
                if self.chance(0.5):
                    self.items.append(f"const {name}: {tname(t)} = {body}")
                    self.consts[name] = (t, None, i)
                else:
                    self.items.append(f"const {name} = {body}")
                    self.consts[name] = (strip(t), None, i)

    def gen_level(self, name, i):
        """A level literal, with its rows, cols and the position of its one `A`."""
        h, w = self.rng.randint(1, 5), self.rng.randint(2, 6)
        enums = [e for e, vs in self.enums.items() if len(vs) >= 2]
        if enums and self.chance(0.7):
            e = self.pick(enums)
            values = [self.variant(e) for _ in range(2)]
            elem = ("enum", e)
        elif self.chance(0.5):
            values, elem = ["0", "2"], INT
        else:
            values, elem = ["true", "false"], BOOL
        cells = [[self.pick("#.") for _ in range(w)] for _ in range(h)]
        cells[self.rng.randrange(h)][self.rng.randrange(w)] = "A"
        picture = "\n".join("        " + "".join(row) for row in cells)
        legend = f'{{ "#": {values[0]}, ".A": {values[1]} }}'
        self.items.append(f'const {name} = map """\n{picture}\n""" with {legend}')
        self.consts[name] = (arr(arr(elem, str(w), w), str(h), h), None, i)
        for what, v in (("rows", h), ("cols", w)):
            n = self.names.glob()
            self.items.append(f"const {n} = {what}({name})")
            self.consts[n] = (INT, v, i)
            self.sizes.append((n, v))
        n = self.names.glob()
        self.items.append(f'const {n} = find({name}, "A")')
        self.consts[n] = (("tup", (INT, INT)), None, i)

    def gen_state(self):
        for _ in range(self.rng.randint(2, 8 if self.rich else 5)):
            name = self.names.glob()
            t = self.stype()
            init = ""
            if self.chance(0.25):
                ctx = Ctx(self, kinds=("pure",))
                init = f" = {self.expr(t, ctx, 1)}"
            self.items.append(f"state {name}: {tname(t)}{init}")
            self.state[name] = t

    def gen_fn(self, kind):
        index = len(self.fns)
        name = self.names.glob(FN_POOL)
        names: set[str] = set()
        params = []
        for _ in range(self.rng.randint(0, 3)):
            pn = self.names.fresh(names)
            names.add(pn)
            pt = self.stype(small=True)
            if self.chance(0.1):
                pt = ("tup", (INT, self.stype(small=True, arrays=False)))
            params.append((pn, pt))
        ret = None
        if kind in ("pure", "read") or self.chance(0.6):
            ret = self.stype(small=True)
            if self.chance(0.15):
                ret = ("tup", (self.stype(small=True, arrays=False), self.stype(small=True, arrays=False)))
        ctx = Ctx(self, state=kind != "pure", kinds=[k for k in KIND_ORDER if KIND_ORDER[k] <= KIND_ORDER[kind]],
                  random_=kind in ("mut", "rew"), write=kind in ("mut", "rew"), reward=kind == "rew",
                  max_fn=index, ret=ret, names=names)
        for pn, pt in params:
            ctx.locals[pn] = Var(pt, True)
        body = self.block(ctx, self.rng.randint(1, 4 if self.rich else 3), 0)
        if kind == "mut" and not any("=" in b for b in body) and self.state:
            # make sure it is effectful, so it is the kind it claims
            lv = [(n, t) for n, t in self.lvalues(ctx) if n in self.state]
            if lv:
                n, t = self.pick(lv)
                body.append(f"{n} = {self.assign_value(t, ctx)}")
        if kind == "rew":
            body.append(f"reward {self.expr(FLOAT, ctx, 1)}")
        if ret is not None:
            body.append(f"return {self.expr(ret, ctx, 0)}")
        sig = ", ".join(f"{pn}: {tname(pt)}" for pn, pt in params)
        head = f"fn {name}({sig})" + (f" -> {tname(ret)}" if ret is not None else "")
        self.items.append("\n".join([head + " {"] + self.ind(body) + ["}"]))
        self.fns.append(Fn(name, params, ret, kind, index))

    def action_ctx(self):
        return Ctx(self, state=True, kinds=list(KIND_ORDER), random_=True, write=True, reward=True)

    def gen_actions(self):
        if self.continuous:
            name = self.names.glob()
            ctx = self.action_ctx()
            vals = []
            for _ in range(self.rng.randint(1, 2)):
                vn = ctx.local_name()
                lo = self.pick(["-1.0", "-0.5", "0.0", "-2"])
                hi = self.pick(["1.0", "0.5", "2.0", "3"])
                if self.chance(0.3):
                    m = self.rng.randint(2, 3)
                    vals.append(f"{vn}: [float in {lo}..{hi}; {m}]")
                    ctx.locals[vn] = Var(arr(FLOAT, str(m), m), False)
                else:
                    vals.append(f"{vn}: float in {lo}..{hi}")
                    ctx.locals[vn] = Var(FLOAT, False)
            body = self.block(ctx, self.rng.randint(2, 5), 0)
            floats = [n for n, t in self.state.items() if t == FLOAT]
            vs = [n for n, v in ctx.locals.items() if v.t == FLOAT and not v.mutable]
            if floats and vs:
                body.append(f"{self.pick(floats)} += {self.pick(vs)}")
            self.items.append("\n".join([f"action {name}({', '.join(vals)}) {{"] + self.ind(body) + ["}"]))
            return
        for k in range(self.rng.randint(1, 5 if self.rich else 4)):
            name = self.names.glob()
            ctx = self.action_ctx()
            r = self.rng.random()
            if k == 0 and self.sym_array:
                t = self.state[self.sym_array]
                vn = ctx.local_name()
                ctx.locals[vn] = Var(INT, False, (0, t[3]))
                idx = [(vn, f"0..{t[2]}", "0", t[2], 0, t[3])]
                head = f"action {name}({vn} in 0..{t[2]})"
                self.families.append((name, idx))
                r = 1.0
            if r < 1.0:
                head = f"action {name}"
                idx = []
            if r < 0.6:
                for _ in range(1 if self.chance(0.7) else 2):
                    vn = ctx.local_name()
                    n_t, n_v = self.size()
                    form = self.rng.randrange(4)
                    if form == 0:
                        rng_t, lo_t, hi_t, lo_v, hi_v = f"0..{n_t}", "0", n_t, 0, n_v
                    elif form == 1:
                        rng_t, lo_t, hi_t, lo_v, hi_v = f"1..={n_t}", "1", f"{n_t} + 1", 1, n_v + 1
                    elif form == 2:
                        rng_t, lo_t, hi_t, lo_v, hi_v = f"0..{n_t} + 1", "0", f"{n_t} + 1", 0, n_v + 1
                    else:
                        rng_t, lo_t, hi_t, lo_v, hi_v = f"0..{n_t}", "0", n_t, 0, n_v
                    idx.append((vn, rng_t, lo_t, hi_t, lo_v, hi_v))
                    ctx.locals[vn] = Var(INT, False, (lo_v, hi_v))
                head += "(" + ", ".join(f"{i[0]} in {i[1]}" for i in idx) + ")"
                self.families.append((name, idx))
            elif r < 1.0:
                self.plain.append(name)
            g = self.rng.random()
            gctx = ctx.child(kinds=("pure", "read"), random=False, write=False, reward=False)
            if g < 0.15 and idx:
                head += f" when {self.structured_guard(gctx)}"
            elif g < 0.45:
                head += f" when {self.expr(BOOL, gctx, 0)}"
            elif g < 0.55:
                head += f" advise {self.expr(BOOL, gctx, 0)}"
            body = self.block(ctx, self.rng.randint(1, 4 if self.rich else 3), 0)
            if self.chance(0.3):
                body.append(f"reward {self.expr(FLOAT, ctx, 1)}")
            if self.players > 1 and self.chance(0.7):
                body.append("next_player()")
            if self.chance(0.1) and not body:
                self.items.append(f"{head} {{ }}")
            elif self.chance(0.15) and len(body) <= 2 and all("{" not in b and "\n" not in b for b in body):
                self.items.append(f"{head} {{ {'; '.join(body)} }}")
            else:
                self.items.append("\n".join([head + " {"] + self.ind(body) + ["}"]))
        # one action that is always legal, so that random play never gets stuck
        if self.chance(0.7):
            name = self.names.glob()
            self.plain.append(name)
            ctx = self.action_ctx()
            body = self.block(ctx, 1, 0)
            self.items.append("\n".join([f"action {name} {{"] + self.ind(body) + ["}"]))

    def gen_views(self):
        for i in range(self.rng.randint(0, 3)):
            name = self.names.glob()
            ctx = Ctx(self, state=True, kinds=("pure", "read"))
            ctx.max_view = i
            t = self.stype(small=True)
            if self.chance(0.5):
                self.items.append(f"let {name}: {tname(t)} = {self.expr(t, ctx, 0)}")
                self.views[name] = (t, i)
            else:
                self.items.append(f"let {name} = {self.expr(t, ctx, 0)}")
                self.views[name] = (strip(t), i)

    def gen_reset(self):
        ctx = Ctx(self, state=True, kinds=("pure", "read", "mut"), random_=True, write=True, acts=True)
        body = self.block(ctx, self.rng.randint(1, 4), 0)
        r = self.rng.random()
        if r < 0.2 and not self.continuous:
            body.append(f"repeat {self.pick(['difficulty', '2', '3'])} {{ random_action() }}")
        elif r < 0.35 and not self.continuous:
            body.append(f"repeat {self.pick(['difficulty', '2'])} {{ act(randint(0, num_actions)) }}")
        # a filtered choice that always has a candidate
        ints = [(n, t) for n, t in self.state.items() if t[0] == "bint" and t[1] == "0" and t[4] >= 2]
        if ints and self.chance(0.4):
            n, t = self.pick(ints)
            v = ctx.local_name()
            body.append(f"{n} = choice({v} in 0..{t[2]} where {v} != {self.rng.randrange(t[4])} or {v} == 0)")
        if not body:
            body = ["return"]
        self.items.append("\n".join(["reset {"] + self.ind(body) + ["}"]))

    def gen_episode(self):
        ctx = Ctx(self, state=True, kinds=("pure", "read"))
        if self.chance(0.7):
            self.items.append(f"done {self.expr(BOOL, ctx, 0)}")
        if self.chance(0.85):
            t = f"truncate steps >= {self.rng.randint(5, 60)}"
            if self.chance(0.3):
                t += f" or {p(self.expr(BOOL, ctx, 1))}"
            self.items.append(t)
        if self.chance(0.5):
            self.items.append(f"success {self.expr(BOOL, ctx, 0)}")
        if self.players > 1 and self.chance(0.6):
            pn = ctx.local_name()
            c = ctx.child()
            c.locals[pn] = Var(INT, False, (0, self.players))
            self.items.append(f"reward[{pn}] if {self.expr(BOOL, c, 1)} then 1.0 else {self.expr(FLOAT, c, 1)}")
        elif self.chance(0.7):
            self.items.append(f"reward {self.expr(FLOAT, ctx, 0)}")

    def onehotable(self, t):
        if t[0] in ("bint", "bool", "enum"):
            return True
        return t[0] == "arr" and self.onehotable(t[1])

    def gen_observe(self):
        ctx = Ctx(self, state=True, kinds=("pure", "read"))
        readable = {**self.state, **{n: t for n, (t, _) in self.views.items()}}
        parts = []
        mode = self.rng.random()
        if self.sym_array:
            parts = [f"onehot({self.sym_array})" if self.state[self.sym_array][1] != BOOL or self.chance(0.5)
                     else self.sym_array]
            direct = [self.sym_array]
            for n, t in self.state.items():
                if n != self.sym_array and self.onehotable(t) and self.chance(0.3):
                    parts.append(f"onehot({n})")
                    direct.append(n)
                elif n != self.sym_array and t[0] in ("float", "int") and self.chance(0.2):
                    parts.append(n)
            self.rng.shuffle(parts)
            self.items.append("observe " + ", ".join(parts))
            return direct
        planes2d = [(n, t) for n, t in self.state.items()
                    if t[0] == "arr" and t[1][0] == "arr" and t[1][1][0] in ("bint", "enum", "bool", "float")]
        if mode < 0.15 and planes2d:
            n, t = self.pick(planes2d)
            dims = (t[2], t[1][2])
            same_dims = [(m, u) for m, u in planes2d if (u[2], u[1][2]) == dims]
            for m, u in self.rng.sample(same_dims, self.rng.randint(1, len(same_dims))):
                parts.append(f"planes({m})")
            self.items.append("observe " + ", ".join(parts))
            return [m for m, _ in same_dims if f"planes({m})" in parts]
        direct: list[str] = []
        for _ in range(self.rng.randint(1, 4)):
            r = self.rng.random()
            oh = [(n, t) for n, t in readable.items() if self.onehotable(t)]
            if r < 0.45 and oh:
                n, t = self.pick(oh)
                if t == BOOL and self.chance(0.5):
                    parts.append(n)
                else:
                    part = f"onehot({n})"
                    if self.players > 1 and self.chance(0.4) and t[0] in ("bint", "arr") and (
                            t[0] == "bint" or t[1][0] == "bint"):
                        part += " as seen by player"
                    parts.append(part)
                direct.append(n)
            elif r < 0.55:
                scal = [n for n, t in readable.items() if t[0] == "bint"]
                if len(scal) >= 2:
                    parts.append(f"onehot([{', '.join(self.rng.sample(scal, 2))}])")
            elif r < 0.62:
                fs = [f for f in self.fns if f.kind in ("pure", "read") and f.ret and f.ret[0] == "bint"]
                if fs:
                    parts.append(f"onehot({self.call(ctx, self.pick(fs), 1)})")
            elif r < 0.72:
                parts.append(self.expr(BOOL, ctx, 1))
            elif r < 0.82:
                parts.append(self.expr(FLOAT, ctx, 1))
            elif r < 0.88:
                parts.append(f"f32([{self.expr(FLOAT, ctx, 1)}, {self.expr(FLOAT, ctx, 1)}])")
            elif r < 0.94:
                parts.append(self.expr(INT, ctx, 1))
            else:
                num = [n for n, t in readable.items() if t[0] == "arr" and t[1][0] in ("int", "bint", "float")]
                if num:
                    parts.append(self.pick(num))
        if not parts:
            parts.append("0")
        self.items.append("observe " + ", ".join(parts))
        # names observed only as themselves, and read by no other part: symmetry candidates
        others = " ".join(x for x in parts if x not in (f"onehot({n})" for n in direct) and x not in direct
                          and not x.endswith("as seen by player"))
        words = set(others.replace("(", " ").replace(")", " ").replace("[", " ").replace("]", " ")
                    .replace(",", " ").split())
        indirect = set(self.views) | {f.name for f in self.fns}
        if words & indirect or any(n in self.views for n in direct):
            return []  # a view or a function might read a mapped array
        return [n for n in dict.fromkeys(direct) if n in self.state and n not in words
                and parts.count(f"onehot({n})") + parts.count(n) == 1]

    def gen_symmetry(self, observed):
        if self.continuous:
            return
        rules = []
        used_fams = set()
        for n in observed:
            t = self.state[n]
            if t[0] != "arr" or n in {r.split("[")[0] for r in rules}:
                continue
            i = self.names.fresh(set())
            if t[1][0] == "arr":
                j = self.names.fresh({i})
                rules.append(f"{n}[{i}][{j}] <-> {n}[{i}][{t[1][2]} - 1 - {j}]")
                continue
            if t[1][0] == "bint" and t[1][1] == "0" and self.chance(0.5):
                v = self.names.fresh({i})
                rules.append(f"{n}[{i}] = {v} <-> {n}[{t[2]} - 1 - {i}] = {t[1][2]} - 1 - {v}")
            else:
                rules.append(f"{n}[{i}] <-> {n}[{t[2]} - 1 - {i}]")
            for fam, idx in self.families:
                if fam not in used_fams and len(idx) == 1 and idx[0][2] == "0" and idx[0][4] == 0 and \
                        idx[0][5] == t[3] and idx[0][3] == t[2]:
                    d = self.names.fresh({i})
                    rules.append(f"{fam}({d}) <-> {fam}({t[2]} - 1 - {d})")
                    used_fams.add(fam)
                    break
            if len(rules) >= 3:
                break
        if len(self.plain) >= 2 and self.chance(0.5):
            a, b = self.rng.sample(self.plain, 2)
            rules.append(f"{a} <-> {b}")
        if rules and self.chance(0.8):
            name = self.names.glob()
            self.items.append("\n".join([f"symmetry {name} {{"] + self.ind(rules) + ["}"]))

    def gen_render(self):
        ctx = Ctx(self, state=True, kinds=("pure", "read"))
        items = []
        for _ in range(self.rng.randint(1, 3)):
            r = self.rng.random()
            two = [(n, t) for n, t in {**self.state, **{k: v[0] for k, v in self.views.items()}}.items()
                   if t[0] == "arr" and t[1][0] == "arr" and t[1][1][0] in ("int", "bint", "enum", "bool")]
            one = [(n, t) for n, t in self.state.items()
                   if t[0] == "arr" and t[1][0] in ("int", "bint", "enum", "bool")]
            if r < 0.35 and two:
                n, t = self.pick(two)
                item = f"grid({n})" + self.legend(t[1][1], ctx)
                for _ in range(self.rng.randint(0, 2)):
                    item += f" mark ({self.expr(INT, ctx, 1)}, {self.expr(INT, ctx, 1)}) as \"{self.pick('@*+')}\""
                items.append(item)
            elif r < 0.6 and one:
                n, t = self.pick(one)
                item = f"grid({n}, {self.pick([t[2], '2', self.size()[0]])})" + self.legend(t[1], ctx)
                if self.chance(0.4):
                    item += f" mark {self.expr(INT, ctx, 1)} as \"@\""
                items.append(item)
            else:
                items.append("line " + self.line(ctx))
        if len(items) == 1 and self.chance(0.5):
            self.items.append("render " + items[0])
        else:
            self.items.append("\n".join(["render {"] + self.ind(items) + ["}"]))

    def legend(self, et, ctx):
        if self.chance(0.3):
            return ""
        if et[0] == "enum":
            keys = list(dict.fromkeys(self.enums[et[1]]))
            keys = [f"{et[1]}.{k}" if len(self.variant_owner[k]) > 1 else k for k in keys]
        elif et[0] == "bool":
            keys = ["true", "false"]
        elif et[0] == "bint":
            keys = [self.lit(v) for v in range(et[3], min(et[4], et[3] + 4))]
        else:
            keys = ["0", "1", "-1"]
        keys = self.rng.sample(keys, self.rng.randint(1, len(keys)))
        entries = []
        for k in keys:
            if self.chance(0.2):
                entries.append(f'{k}: if {self.expr(BOOL, ctx, 2)} then "{self.pick(".#")}" else "o"')
            else:
                glyph = self.pick([".", "#", "X", "ab", "  ", '\\"', "{", "}}"])
                entries.append(f'{k}: "{glyph}"')
        return " with { " + ", ".join(entries) + " }"

    def line(self, ctx):
        parts = [self.pick(["s", "at", "x =", "{{lit}}", "\\\"q\\\"", "", "%", "\\t"])]
        for _ in range(self.rng.randint(1, 3)):
            t = self.pick([INT, FLOAT, BOOL] + ([("enum", self.pick(self.enums))] if self.enums else []))
            e = self.expr(t, ctx, 2)
            if "{" in e or '"' in e:
                e = self.pick(self.vars_of(ctx, INT) or ["steps"]) if t[0] in ("int", "bint") else "steps"
                t = INT
            if t == FLOAT and e.lstrip("-").isdigit():
                e = e + ".0"
            spec = ""
            if t == FLOAT and self.chance(0.6):
                spec = ":" + self.pick([".3f", "8.2f", ".2e", "g", ">10.1f", ".1%"])
            elif t == INT and self.chance(0.5):
                spec = ":" + self.pick(["5d", "d", "<4", "^6"])
            elif self.chance(0.2):
                spec = ":>8"
            parts.append(f"{{{e}{spec}}}")
        return '"' + " ".join(parts) + '"'

    # ------------------------------------------------------------------ whole program
    def generate(self) -> str:
        env = self.names.glob(ENV_POOL)
        if self.chance(0.25):
            self.players = self.pick([2, 2, 3])
            self.items.append(f"players {self.players}")
        self.continuous = self.players == 1 and self.chance(0.12)
        self.gen_enums()
        self.gen_params()
        # a few pure functions first, usable by consts
        for _ in range(self.rng.randint(0, 2)):
            self.gen_fn("pure")
        self.n_pure_before_consts = len(self.fns)
        self.gen_consts()
        self.gen_state()
        for _ in range(self.rng.randint(1, 5 if self.rich else 3)):
            self.gen_fn(self.pick(["pure", "read", "read", "mut", "rew"]))
        self.gen_views()
        # sometimes set up a mirror symmetry: a 1-D array observed as itself, and an action
        # family over its cells
        self.sym_array = None
        cands = [n for n, t in self.state.items() if t[0] == "arr" and t[1][0] in ("bint", "bool", "enum")]
        if cands and not self.continuous and self.chance(0.35):
            self.sym_array = self.pick(cands)
        self.gen_actions()
        self.gen_reset()
        self.gen_episode()
        observed = self.gen_observe()
        self.gen_symmetry(observed)
        if self.chance(0.8):
            self.gen_render()
        items = list(self.items)
        self.rng.shuffle(items)
        header = f"env {env}"
        if self.chance(0.3):
            header = f"# generated\n{header}  # a comment"
        return header + "\n\n" + "\n\n".join(items) + "\n"


def generate(rng: random.Random, rich: bool = False) -> str:
    """One random, well-typed program."""
    return Program(rng, rich).generate()


def programs(rich: bool = False):
    """The hypothesis strategy: random well-typed `.twl` programs."""
    return st.builds(lambda seed: generate(random.Random(seed), rich), st.integers(0, 2**63 - 1))
