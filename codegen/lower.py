"""IR -> the template context for one generated Rust environment crate.

Every decision about the generated code is made here (and in `rust.py`); the templates
in `templates/` only place the prepared pieces. The result is deterministic: the same IR
gives byte-identical Rust.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, fields
from typing import Any

from twisterl.dsl import ir
from twisterl.dsl.effects import walk
from twisterl.dsl.exprs import RANDOM

from .arith import as_usize, minus, plus, span, tail_value, times
from .masks import MaskWriter, families_draw, family_draw, family_mask, legal_entry
from .ranges import CallFacts, Fact, Interval, Ranges, free_locals, negated
from .rust import (RustWriter, at, divisor_field, enum_const_names, float_lit, ident, is_copy, is_fixed, is_grid, local, method,
                   rust_type, state_type)


@dataclass
class Method:
    """One generated method: its signature and body lines."""

    doc: str
    signature: str
    body: list[str]
    line: int = 0
    inline: bool = False
    """written `#[inline(always)]` (see `forced_inline`)"""


@dataclass
class TraitBodies:
    """The generated `Env` impl's pieces, as Rust: method bodies (lists of lines or match
    arms) and single expressions. `lower` fills every field; the template places them."""

    counts: list[str] = field(default_factory=list)
    """each action family's size, in declaration order"""
    ranges: list[str] = field(default_factory=list)
    """`(lo, hi)` of every index parameter of every family"""
    labels: list[str] = field(default_factory=list)
    apply: list[str] = field(default_factory=list)
    allowed: list[str] = field(default_factory=list)
    legal: list[str] = field(default_factory=list)
    legal_ids: list[str] = field(default_factory=list)
    draw: str | None = None
    """the body of `draw_allowed`, or None for the trait's default"""
    apply_values: list[str] = field(default_factory=list)
    bounds: list[str] = field(default_factory=list)
    num_values: str = ""
    reset: list[str] = field(default_factory=list)
    reward: list[str] = field(default_factory=list)
    done: str = ""
    truncate: str = ""
    success: str = ""
    observe_dense: list[str] = field(default_factory=list)
    observe_sparse: list[str] = field(default_factory=list)
    nnz: str = ""
    obs_size: str = ""
    obs_shape: list[str] = field(default_factory=list)
    render: list[str] = field(default_factory=list)
    state_lengths: list[str] = field(default_factory=list)
    get_state: list[str] = field(default_factory=list)
    set_state: list[str] = field(default_factory=list)
    state_len: str = ""
    reset_block: list[str] = field(default_factory=list)
    """the `reset` block, run after the initialisers (its `return` ends only the block)"""
    twist: list[str] = field(default_factory=list)
    n_twists: str = ""

    def unfilled(self) -> list[str]:
        """The expression fields still empty (every one must be set)."""
        return [f.name for f in fields(self) if f.type == "str" and not getattr(self, f.name)]


@dataclass
class Context:
    """Everything the crate template places: names, the spec, the param/const struct, the
    state struct, helper methods, the `Env` impl's pieces, and zero values for `Consts`."""

    env_name: str
    type_name: str
    source: str
    players: int
    continuous: bool
    observation: str
    spec_json: str
    enum_consts: list[tuple[str, int, str]] = field(default_factory=list)
    consts_fields: list[tuple[str, str, str]] = field(default_factory=list)
    consts_init: list[str] = field(default_factory=list)
    consts_methods: list[Method] = field(default_factory=list)
    state_fields: list[tuple[str, str, str]] = field(default_factory=list)
    state_init: list[str] = field(default_factory=list)
    methods: list[Method] = field(default_factory=list)
    trait: TraitBodies = field(default_factory=TraitBodies)
    consts_zero: list[tuple[str, str]] = field(default_factory=list)
    n_decls: int = 0
    advisory: bool = False
    """some action's mask is advisory (`advise`): legality cannot be read from the mask"""
    guard_loops: bool = False
    """some family's mask pays a looping guard for every id (`masks.per_id_loops`)"""
    copy_fields: set[str] = field(default_factory=set)
    """the params, consts and state variables whose Rust type is `Copy`"""
    view_cache: list[tuple[str, str, str]] = field(default_factory=list)
    """(field, Rust type, comment) of each scalar view kept once computed"""


# Type names the generated crate uses or imports: an env may not take one as its own.
_TAKEN_TYPES = frozenset("""Consts State Env Fault FaultKind R Rng Param Batch Slot Observation At Self Option Result
    Vec String Box Clone Copy Default Debug Drop Eq PartialEq Ord PartialOrd Fn FnMut FnOnce Iterator Send Sync
    Sized Some None Ok Err ToString From Into Purpose RolloutStats StepOut Step Tree Cached Views Grid""".split())


def type_name(name: str) -> str:
    """The Rust struct of env `name`: its name, capitalised, unless that would clash with
    a type the generated code uses (then with `Env` appended: `env Vec` is `VecEnv`)."""
    cleaned = "".join(ch if ch.isalnum() else "_" for ch in name)
    if not cleaned.strip("_") or cleaned[0].isdigit():
        cleaned = "Env" + cleaned
    cleaned = cleaned[0].upper() + cleaned[1:]
    return cleaned + "Env" if cleaned in _TAKEN_TYPES else cleaned


def lower(env: ir.Env, source_name: str) -> Context:
    """The template context of `env`'s crate (`source_name` is the .twl file it names)."""
    return lowered(env, source_name)[0]


def lowered(env: ir.Env, source_name: str) -> tuple[Context, CallFacts]:
    """The template context of `env`'s crate, and what its fns assume of their
    parameters and results.

    Fn parameters' facts are what the generated call sites pass, and those depend on the
    callers' own parameters' facts: the env is lowered again with the facts the last
    lowering recorded until they hold still (fns are not recursive, so this takes about
    as many rounds as calls nest). The code kept is one whose call sites pass only what
    its fns were written to assume; if no such round comes, the fns assume nothing."""
    known = CallFacts()
    for _ in range(len(env.functions) + 2):
        lowering = _Lowering(env, source_name, known)
        ctx = lowering.run()
        if lowering.recorded.same(known):
            return ctx, known
        known = lowering.recorded
    return _Lowering(env, source_name, CallFacts(), record=False).run(), CallFacts()


class _Lowering:
    """One env's lowering: the naming and view decisions every piece shares."""

    def __init__(self, env: ir.Env, source_name: str, known: CallFacts, record: bool = True):
        self.env = env
        self.source_name = source_name
        self.known = known  # what fns may assume of their parameters and results
        self.recorded = CallFacts() if record else None  # what this lowering's call sites pass
        self.static_fns = {f.name for f in env.functions if _is_static_fn(f, env)}
        self.array_views = {v.name for v in env.views
                            if isinstance(v.type, ir.ArrayType) and isinstance(v.value, ir.ArrayComp)
                            and len(v.value.clauses) == 1}
        self.view_names = {v.name for v in env.views}
        self.fixed = Ranges(env)  # for the values params do not move
        self.divisors: set[str] = set()  # the params and consts divided by (`divisor_field`)
        # Scalar views, computed once per state (`twisterl_core::memo`) where read on a
        # settled state; code that changes the state computes them afresh.
        self.cached_views = {v.name for v in env.views if isinstance(v.type, _CACHEABLE)}

    def writer(self, consts_root: str = "self.consts", cached: bool = False) -> RustWriter:
        """A writer; with `cached`, for code that runs on a settled state (guards, masks,
        rewards, endings, observations), which reads scalar views from the env's cache."""
        w = RustWriter(self.env, consts_root, self.static_fns, self.array_views, self.view_names, {})
        if consts_root != "consts":  # not while `Consts::new` computes them
            w.divisors = self.divisors
        if cached:
            w.cached_views = self.cached_views
        w.use_calls(self.known, self.recorded)
        return w

    def run(self) -> Context:
        env = self.env
        ctx = Context(env_name=env.name, type_name=type_name(env.name), source=self.source_name,
                      players=env.players, continuous=env.action_space.kind == "continuous",
                      observation={"sparse": "Sparse", "dense": "Dense", "planes": "Planes"}[env.observation.kind],
                      spec_json=json.dumps(spec(env), sort_keys=True, separators=(",", ":")))
        enum_names = enum_const_names(env)
        for e in env.enums:
            for i, v in enumerate(e.variants):
                ctx.enum_consts.append((enum_names[(e.name, v)], i, f"{e.name}.{v}"))
        self.params_and_consts(ctx)
        self.state(ctx)
        self.functions(ctx)
        self.views(ctx)
        self.actions(ctx)
        self.episode(ctx)
        self.observation(ctx)
        self.render(ctx)
        self.state_vector(ctx)
        from .twists import twist_lines
        ctx.trait.twist = twist_lines(self, self.writer())
        ctx.trait.n_twists = str(len(self.env.symmetries))
        ctx.consts_zero = self.consts_zero()
        self.divisor_fields(ctx)
        missing = ctx.trait.unfilled()
        if missing:
            raise RuntimeError(f"internal error: the lowering left {missing} empty")
        return ctx

    # ------------------------------------------------------------ params and consts

    def params_and_consts(self, ctx: Context) -> None:
        w = self.writer("consts")
        for i, p in enumerate(self.env.params):
            t = p.type
            ctx.consts_fields.append((ident(p.name), rust_type(t), f"param `{p.name}` (line {p.span.line})"))
            if is_copy(t):
                ctx.copy_fields.add(ident(p.name))
            if isinstance(t, ir.BoolType):
                ctx.consts_init.append(f"consts.{ident(p.name)} = ops::param_bool(params, {i})?;")
            elif isinstance(t, ir.FloatType):
                lo = float_lit(t.lo.value) if isinstance(t.lo, ir.Lit) else "f64::NEG_INFINITY"
                hi = float_lit(t.hi.value) if isinstance(t.hi, ir.Lit) else "f64::INFINITY"
                ctx.consts_init.append(f"consts.{ident(p.name)} = ops::param_float(params, {i}, {lo}, {hi})?;")
            else:
                if isinstance(t, ir.EnumType):
                    lo, hi = "0", str(len(t.variants))
                else:
                    lo = str(t.lo.value) if isinstance(t.lo, ir.Lit) else "i64::MIN"
                    hi = str(t.hi.value) if isinstance(t.hi, ir.Lit) else "i64::MAX"
                ctx.consts_init.append(f"consts.{ident(p.name)} = ops::param_int(params, {i}, {lo}, {hi})?;")
        for c in self.env.consts:
            ctx.consts_fields.append((ident(c.name), rust_type(c.type), f"const `{c.name}` (line {c.span.line})"))
            if is_copy(c.type):
                ctx.copy_fields.add(ident(c.name))
            ctx.consts_init.append(f"// line {c.span.line}")
            ctx.consts_init.append(f"consts.{ident(c.name)} = {w.value(c.value)};")
        for f in self.env.functions:
            if f.name in self.static_fns:
                ctx.consts_methods.append(self.function(f, self.writer("self"), "&self"))

    def divisor_fields(self, ctx: Context) -> None:
        """A `Divisor` in `Consts` for each param or const the env's code divides by, made
        once the consts are known."""
        for name in sorted(self.divisors):
            field_name = divisor_field(name)
            ctx.consts_fields.append((field_name, "ops::Divisor", f"`{name}` as a divisor: a multiply, not a `div`"))
            ctx.consts_zero.append((field_name, "ops::Divisor::new(1)"))
            ctx.consts_init.append(f"consts.{field_name} = ops::Divisor::new(consts.{ident(name)});")
            ctx.copy_fields.add(field_name)

    def consts_zero(self) -> list[tuple[str, str]]:
        w = self.writer("consts")
        out = []
        for p in self.env.params:
            out.append((ident(p.name), w.zero(p.type) if not isinstance(p.type, ir.ArrayType) else "Vec::new()"))
        for c in self.env.consts:
            t = c.type
            zero = "Vec::new()" if isinstance(t, ir.ArrayType) and not is_fixed(t) else _static_zero(w, t)
            out.append((ident(c.name), zero))
        return out

    # ------------------------------------------------------------ state

    def state(self, ctx: Context) -> None:
        w = self.writer("consts")
        for v in self.env.state:
            ctx.state_fields.append((ident(v.name), state_type(v.type), f"`{v.name}: {v.type}` (line {v.span.line})"))
            if is_copy(v.type) and not is_grid(v.type):
                ctx.copy_fields.add(ident(v.name))
            if is_grid(v.type):
                zero = (f"Grid::filled({w.zero(v.type.elem.elem)}, {w.expr(v.type.elem.size)}, "
                        f"{w.expr(v.type.size)}, {at(v.span)})?")
            else:
                zero = w.zero(v.type, at(v.span))
            ctx.state_init.append(f"{ident(v.name)}: {zero},")
        ctx.state_fields.append(("player", "i64", "whose turn it is"))
        ctx.state_fields.append(("steps", "i64", "steps taken since reset"))
        ctx.copy_fields |= {"player", "steps"}
        ctx.state_init.append("player: 0,")
        ctx.state_init.append("steps: 0,")

    def initial_state(self) -> list[str]:
        """Statements setting every state variable to its initialiser or zero value, but
        those the `reset` block sets first anyway (`_set_first_by_reset`) when the
        initialiser is a literal or zero: nothing drawn, nothing that can fault."""
        w = self.writer()
        lines = []
        first = _set_first_by_reset(self.env)
        for v in self.env.state:
            if v.name in first and (v.init is None or isinstance(v.init, ir.Lit)):
                lines.append(f"// line {v.span.line}: {v.name}, set first by `reset`")
                continue
            place = ir.Place("state", v.name, (), v.type, v.type, v.span)
            value = v.init if v.init is not None else _zero_expr(v.type, v.span)
            lines.append(f"// line {v.span.line}: {v.name}")
            lines += w.block((ir.Assign(place, value, v.span),))[1:]
        lines += ["self.state.player = 0;", "self.state.steps = 0;"]
        return lines

    # ------------------------------------------------------------ functions, views, actions

    def function(self, f: ir.Function, w: RustWriter, receiver: str) -> Method:
        w.mutable = _assigned_locals(f.body) | {p.name for p in f.params if _assigned(f.body, p.name)}
        w.fn_name = f.name
        w.ranges.scoped.update(w.param_facts(f))
        params = ", ".join(f"{'mut ' if p.name in w.mutable else ''}{local(p.name)}: {rust_type(p.type)}"
                           for p in f.params)
        ret = rust_type(f.ret)
        w.returns = f.ret
        body = w.block(f.body)
        if isinstance(f.ret, ir.UnitType):
            body = _unit_ending(body)
        elif body and body[-1].startswith("return ") and body[-1].endswith(";") and "\n" not in body[-1]:
            body[-1] = tail_value(body[-1][len("return "):-1])
        return Method(f"fn `{f.name}` (line {f.span.line})",
                      f"fn {method('fn', f.name)}({receiver}{', ' if params else ''}{params}) -> R<{ret}>", body,
                      f.span.line, forced_inline(f, self.env))

    def functions(self, ctx: Context) -> None:
        for f in self.env.functions:
            if f.name in self.static_fns:
                continue
            receiver = "&mut self" if not f.pure else "&self"
            ctx.methods.append(self.function(f, self.writer(), receiver))

    def views(self, ctx: Context) -> None:
        for v in self.env.views:
            w = self.writer()
            if v.name in self.array_views:
                comp: ir.ArrayComp = v.value
                clause = comp.clauses[0]
                it = clause.iter
                if isinstance(it, ir.RangeIter):
                    lo, hi = w.expr(it.lo), w.expr(it.hi)
                    body = [f"let {local(clause.names[0])}: i64 = ops::add({lo}, "
                            f"ops::ix(i, {span(lo, hi)}, {at(v.span)})? as i64, {at(v.span)})?;",
                            tail_value(f"Ok({w.value(comp.element)})")]
                else:
                    arr = w.expr(it.array)
                    names = clause.names
                    pattern = local(names[0]) if len(names) == 1 else "(" + ", ".join(local(n) for n in names) + ")"
                    body = [f"let {pattern} = {arr}[ops::ix(i, {w.size(it.array.type.size)}, {at(v.span)})?];",
                            tail_value(f"Ok({w.value(comp.element)})")]
                item, length = method("view_item", v.name), method("view_len", v.name)
                ctx.methods.append(Method(f"view `{v.name}`, one element (line {v.span.line})",
                                          f"fn {item}(&self, i: i64) -> R<{rust_type(v.type.elem)}>", body, v.span.line))
                ctx.methods.append(Method(f"view `{v.name}`: its length", f"fn {length}(&self) -> usize",
                                          [w.size(v.type.size)]))
                k = w.fresh("k")
                ctx.methods.append(Method(
                    f"view `{v.name}` (line {v.span.line})", f"fn {method('view', v.name)}(&self) -> R<{rust_type(v.type)}>",
                    [f"let mut out = {w.zero(v.type)};",
                     f"for {k} in 0..self.{length}() {{ out[{k}] = self.{item}({k} as i64)?; }}",
                     "Ok(out)"], v.span.line))
                continue
            ctx.methods.append(Method(f"view `{v.name}` (line {v.span.line})",
                                      f"fn {method('view', v.name)}(&self) -> R<{rust_type(v.type)}>",
                                      [tail_value(f"Ok({w.value(v.value)})")], v.span.line))
            if v.name in self.cached_views:
                ctx.view_cache.append((ident(v.name), rust_type(v.type), f"view `{v.name}` (line {v.span.line})"))
                ctx.methods.append(Method(
                    f"view `{v.name}`, computed once per state",
                    f"fn {method('cached_view', v.name)}(&self) -> R<{rust_type(v.type)}>",
                    [f"self.views.{ident(v.name)}.get(|| self.{method('view', v.name)}())"], v.span.line))

    def actions(self, ctx: Context) -> None:
        env = self.env
        ctx.n_decls = len(env.actions)
        ctx.advisory = any(a.advisory for a in env.actions)
        w = self.writer()
        kw = self.writer("consts")
        counts = []
        for a in env.actions:
            counts.append(f"({kw.expr(a.count)}).max(0) as usize" if not isinstance(a.count, ir.Lit)
                          else f"{a.count.value}")
            params = ", ".join(f"{local(p.name)}: i64" for p in a.index_params)
            vparams = ", ".join(f"{local(p.name)}: {rust_type(p.type)}" for p in a.value_params)
            allp = ", ".join(x for x in (params, vparams) if x)
            indices = {p.name: w.ranges.range_fact(p.lo, p.hi) for p in a.index_params}
            if a.guard is not None:
                gw = self.writer(cached=True)
                gw.ranges.scoped.update(indices)
                ctx.methods.append(Method(f"guard of `{a.name}` (line {a.guard.span.line})",
                                          f"fn {method('guard', a.name)}(&self{', ' if params else ''}{params})"
                                          " -> R<bool>",
                                          [tail_value(f"Ok({gw.expr(a.guard)})")], a.guard.span.line))
            bw = self.writer()
            bw.ranges.scoped.update(indices)
            bw.mutable = _assigned_locals(a.body)
            body = _unit_ending(bw.block(a.body))
            ctx.methods.append(Method(f"action `{a.name}` (line {a.span.line})",
                                      f"fn {method('action', a.name)}(&mut self{', ' if allp else ''}{allp}) -> R<()>",
                                      body, a.span.line))
        ctx.trait.counts = counts
        ctx.trait.ranges = [f"({kw.expr(p.lo)}, {kw.expr(p.hi)})" for a in env.actions for p in a.index_params]
        # Decode a discrete action number into (declaration, indices), row-major.
        decode_legal, decode_ids, decode_apply, decode_allowed = [], [], [], []
        for d, a in enumerate(env.actions):
            if a.value_params:
                continue
            idx = self.decode(a)
            args = ", ".join(f"i{j}" for j in range(len(a.index_params)))
            guard = f"self.{method('guard', a.name)}({args})?" if a.guard is not None else "true"
            decode_apply.append(f"{d} => {{ {idx} self.{method('action', a.name)}({args}) }}")
            enforced = guard if not a.advisory else "true"
            decode_allowed.append(f"{d} => Ok(true)," if enforced == "true" else f"{d} => {{ {idx} Ok({enforced}) }}")
            if a.guard is not None and a.index_params:
                slots = [self.range_slot(a, j) for j in range(len(a.index_params))]
                for listing, out in ((False, decode_legal), (True, decode_ids)):
                    mw = MaskWriter(self.env, "self.consts", self.static_fns, self.array_views, self.view_names, {},
                                    indices={p.name for p in a.index_params})
                    mw.cached_views = self.cached_views
                    mw.use_calls(self.known, self.recorded)
                    out.append(family_mask(mw, a, slots, ids=listing))
                    ctx.guard_loops |= mw.loops_per_id
            elif guard == "true" and a.index_params:  # every member of the family is legal
                decode_legal.append(f"out[n..n + self.counts[{d}]].fill(true); n += self.counts[{d}];")
                decode_ids.append(f"for id in n..n + self.counts[{d}] {{ ids[len] = id as u32; len += 1; }} "
                                  f"n += self.counts[{d}];")
            else:
                decode_legal.append(self.index_loops(a, legal_entry(guard, False)))
                decode_ids.append(self.index_loops(a, legal_entry(guard, True)))
        ctx.trait.draw = self.draw(env)
        labels = []
        for d, a in enumerate(env.actions):
            if a.value_params:
                continue
            if a.index_params:
                args = ", ".join("{}" for _ in a.index_params)
                vals = ", ".join(f"i{j}" for j in range(len(a.index_params)))
                labels.append(f'{d} => {{ {self.decode(a)} format!("{a.name}({args})", {vals}) }}')
            else:
                labels.append(f'{d} => "{a.name}".to_string(),')
        ctx.trait.labels = labels
        ctx.trait.apply = decode_apply
        ctx.trait.allowed = decode_allowed
        ctx.trait.legal = decode_legal
        ctx.trait.legal_ids = decode_ids
        cont = [a for a in env.actions if a.value_params]
        if cont:
            a = cont[0]
            lines, args, k = [], [], 0
            lows, highs = [], []
            for p in a.value_params:
                t = p.type
                if isinstance(t, ir.ArrayType):
                    n = t.size.value if isinstance(t.size, ir.Lit) else None
                    lines.append(f"let mut {local(p.name)} = {w.zero(t)};")
                    window = f"values[{k}..{plus(str(k), '__n')}]"
                    lines.append(f"let __n = {local(p.name)}.len(); {local(p.name)}.copy_from_slice(&{window});")
                    lines.append(f"let _ = {n};")
                    size = n or 0
                    for j in range(size):
                        lows.append(w.expr(t.elem.lo))
                        highs.append(w.expr(t.elem.hi))
                    k_expr = size
                else:
                    lines.append(f"let {local(p.name)} = values[{k}];")
                    lows.append(w.expr(t.lo))
                    highs.append(w.expr(t.hi))
                    k_expr = 1
                args.append(local(p.name))
                k += k_expr
            lines.append(f"self.{method('action', a.name)}({', '.join(args)})")
            ctx.trait.apply_values = lines
            ctx.trait.bounds = [f"lows[{i}] = {lo}; highs[{i}] = {hi};" for i, (lo, hi) in enumerate(zip(lows, highs))]
            ctx.trait.num_values = str(k)
        else:
            ctx.trait.apply_values = []
            ctx.trait.bounds = []
            ctx.trait.num_values = "0"

    def range_slot(self, a: ir.Action, j: int) -> tuple[str, str]:
        """The `lo` and `hi` of index `j` of family `a`: literals when the range is, so
        that loops over it unroll and decoding divides by constants; else where the env
        keeps them in its `ranges`."""
        fixed = self.fixed_range(a.index_params[j])
        if fixed:
            return _typed_int(fixed[0]), _typed_int(fixed[1])
        k = self.range_entry(a, j)
        return f"self.ranges[{k}].0", f"self.ranges[{k}].1"

    def fixed_range(self, p: ir.IndexParam) -> tuple[int, int] | None:
        """`(lo, hi)` of an index range whose bounds are the same for every params (literals,
        or consts of literals: `pit in 0..pits`) and not empty (an empty one would be a
        division by a constant zero in decoding, which rustc refuses even where it cannot
        run); None for a range that params move."""
        lo, hi = self.fixed.interval(p.lo), self.fixed.interval(p.hi)
        if lo is None or hi is None or lo.lo != lo.hi or hi.lo != hi.hi or hi.lo <= lo.lo:
            return None
        return lo.lo, hi.lo

    def range_entry(self, a: ir.Action, j: int) -> int:
        """Where index `j` of family `a` sits in the env's `ranges`."""
        first = 0
        for other in self.env.actions:
            if other is a:
                return first + j
            first += len(other.index_params)
        raise AssertionError(a.name)

    def decode(self, a: ir.Action) -> str:
        """Statements turning `local` (the number within the family) into indices i0, i1...,
        the last index fastest. `local` is below the family's count, so what is left for
        the first index is that index's offset already: no division for it."""
        if not a.index_params:
            return ""
        many = len(a.index_params) > 1
        parts = [f"let {'mut ' if many else ''}rest = local as u64;"]
        for j in reversed(range(len(a.index_params))):
            fixed = self.fixed_range(a.index_params[j])
            k = None if fixed else self.range_entry(a, j)
            start = (_typed_int(fixed[0]) if fixed[0] else None) if fixed else f"self.ranges[{k}].0"
            if j == 0:
                parts.append(f"let i0 = {start + ' + ' if start else ''}rest as i64;")
            elif fixed:
                size = f"{fixed[1] - fixed[0]}u64"
                parts.append(f"let i{j} = {start + ' + ' if start else ''}(rest % {size}) as i64; rest /= {size};")
            else:
                # The span's divisor, made once per instance: a multiply, not a `div`.
                parts.append(f"let (q, r) = self.ranges[{k}].2.div_rem(rest); "
                             f"let i{j} = {start} + r as i64; rest = q;")
        return " ".join(parts)

    def draw(self, env: ir.Env) -> str | None:
        """The body of `draw_allowed`: rejection draws along the families' structure, or None
        where the trait's default is as good (no guard) or does not apply (advisory or
        continuous actions)."""
        if not env.actions or all(a.guard is None for a in env.actions) \
                or any(a.advisory or a.value_params for a in env.actions):
            return None

        def writer(a: ir.Action) -> MaskWriter:
            w = MaskWriter(self.env, "self.consts", self.static_fns, self.array_views, self.view_names, {},
                           indices={p.name for p in a.index_params})
            w.cached_views = self.cached_views
            w.use_calls(self.known, self.recorded)
            return w

        if len(env.actions) == 1:
            a = env.actions[0]
            return family_draw(writer(a), a, "self.counts[0]", self.decode(a))
        return families_draw([(a, None if a.guard is None else writer(a), self.decode(a)) for a in env.actions])

    def index_loops(self, a: ir.Action, body: str) -> str:
        code = body
        for j in reversed(range(len(a.index_params))):
            lo, hi = self.range_slot(a, j)
            code = f"for i{j} in {lo}..{hi} {{ {code} }}"
        return code

    # ------------------------------------------------------------ episode

    def episode(self, ctx: Context) -> None:
        env = self.env
        w = self.writer(cached=True)
        for kind in ("done", "truncate", "success"):
            e = getattr(env, kind)
            setattr(ctx.trait, kind, tail_value(f"Ok({w.expr(e)})") if e is not None else "Ok(false)")
        reset = self.writer()
        reset.mutable = _assigned_locals(env.reset)
        ctx.trait.reset = self.initial_state()
        ctx.trait.reset_block = _unit_ending(reset.block(env.reset))
        rw = self.writer(cached=True)
        if env.reward is None:
            ctx.trait.reward = ["let _ = rewards;"]
        elif env.reward.player_var is None:
            ctx.trait.reward = [f"rewards[0] += {rw.expr(env.reward.value)};"] if env.players == 1 else \
                [f"let r = {rw.expr(env.reward.value)};", "rewards[self.actor] += r;"]
        else:
            p = local(env.reward.player_var)
            test, value = _zero_unless(env.reward.value, env.reward.player_var)
            with rw.facts({env.reward.player_var: Fact(Interval(0, env.players - 1))}):
                per_player = [f"for {p} in 0..{env.players}i64 {{", f"rewards[{p} as usize] += {rw.expr(value)};", "}"]
            # A reward that is 0 for every player under a test of the state alone (terminal
            # rewards: `if not over then 0.0 else ...`) tests it once, not once per player.
            ctx.trait.reward = per_player if test is None else [f"if {rw.expr(test)} {{", *per_player, "}"]

    # ------------------------------------------------------------ observation

    def observation(self, ctx: Context) -> None:
        obs = self.env.observation
        w = self.writer(cached=True)
        dense = ["let mut o = 0usize;"]
        sparse = ["let mut o = 0usize;", "let mut n = 0usize;"]
        nnz = []
        for part in obs.parts:
            cells = w.size(part.cells)
            width = w.size(part.width)
            note = f"// line {part.span.line}: {part.encoding} part"
            dense.append(note)
            sparse.append(note)
            lo = w.expr(part.lo) if part.lo is not None else "0"
            elem = _scalar(part.value.type)
            # Planes of bools or floats are one plane holding the values themselves.
            valued = isinstance(elem, (ir.BoolType, ir.FloatType))
            onehot = part.encoding in ("onehot", "planes") and part.lo is not None and not valued
            if onehot:
                hi = plus(lo, w.expr(part.width))

                def checked(code, w=w, lo=lo, hi=hi, part=part):
                    v = w.fresh("v")
                    return v, f"let {v} = ops::range(({code}) as i64, {lo}, {hi}, {at(part.span)})?;"

            if part.encoding == "planes" and onehot:
                hw = f"{w.size(part.shape[1])} * {w.size(part.shape[2])}"
                dense.append(f"out[o..{plus('o', times(width, hw))}].fill(0.0);")

                def body(cell, code, checked=checked, lo=lo, hw=hw):
                    v, check = checked(code)
                    return [check, f"out[{plus(plus('o', times(as_usize(minus(v, lo)), hw)), cell)}] = 1.0;"]
                dense += emit_cells(w, part.value, body)
                dense.append(f"o += {times(width, hw)};")
            elif onehot:
                dense.append(f"out[o..{plus('o', times(cells, width))}].fill(0.0);")

                def dbody(cell, code, checked=checked, lo=lo, width=width):
                    v, check = checked(code)
                    return [check, f"out[{plus(plus('o', times(cell, width)), as_usize(minus(v, lo)))}] = 1.0;"]

                def sbody(cell, code, checked=checked, lo=lo, width=width):
                    v, check = checked(code)
                    return [check, f"out[n] = ({plus(plus('o', times(cell, width)), as_usize(minus(v, lo)))}) as u32;",
                            "n += 1;"]
                dense += emit_cells(w, part.value, dbody)
                sparse += emit_cells(w, part.value, sbody)
                dense.append(f"o += {times(cells, width)};")
                sparse.append(f"o += {times(cells, width)};")
                nnz.append(cells)
            elif part.encoding == "bool" or (part.encoding == "planes" and isinstance(elem, ir.BoolType)):
                dense += emit_cells(w, part.value, lambda cell, code: [
                    f"out[{plus('o', cell)}] = if {code} {{ 1.0 }} else {{ 0.0 }};"])
                sparse += emit_cells(w, part.value, lambda cell, code: [
                    f"if {code} {{ out[n] = ({plus('o', cell)}) as u32; n += 1; }}"])
                dense.append(f"o += {cells};")
                sparse.append(f"o += {cells};")
                nnz.append(cells)
            else:
                is_bool = isinstance(_scalar(part.value.type), ir.BoolType)
                dense += emit_cells(w, part.value, lambda cell, code: [
                    f"out[{plus('o', cell)}] = if {code} {{ 1.0 }} else {{ 0.0 }};" if is_bool
                    else f"out[{plus('o', cell)}] = ({code}) as f32;"])
                dense.append(f"o += {cells};")
        dense += ["let _ = o;", "Ok(())"]
        sparse += ["let _ = o;", "Ok(n)"]
        ctx.trait.observe_dense = dense
        ctx.trait.observe_sparse = sparse if obs.kind == "sparse" else ["let _ = out;", "Ok(0)"]
        kw = self.writer("consts")
        ctx.trait.nnz = " + ".join(kw.size(p.cells) for p in obs.parts if p.encoding in ("onehot", "bool")) or "0"
        ctx.trait.obs_size = kw.size(obs.size)
        ctx.trait.obs_shape = [kw.size(d) for d in obs.shape] if obs.kind == "planes" else ["obs_size", "1", "1"]

    # ------------------------------------------------------------ render and state vector

    def render(self, ctx: Context) -> None:
        from .render import render_lines
        ctx.trait.render = render_lines(self, self.writer(cached=True))

    def state_vector(self, ctx: Context) -> None:
        from .statevec import state_vector_code
        get, set_, length, lengths = state_vector_code(self, self.writer())
        ctx.trait.state_lengths = lengths
        ctx.trait.get_state = get
        ctx.trait.set_state = set_
        ctx.trait.state_len = length


def _unit_ending(body: list[str]) -> list[str]:
    """A unit method's body, ending in its value `Ok(())` (a last `return` becomes it)."""
    if body and body[-1] == "return Ok(());":
        return body[:-1] + ["Ok(())"]
    return body + ["Ok(())"]


def _set_first_by_reset(env: ir.Env) -> set[str]:
    """The state variables the `reset` block assigns whole before anything can read them:
    its leading `x = value` statements whose values read no view and no state variable
    but those already assigned, call no fn and draw nothing."""
    done: set[str] = set()
    for s in env.reset:
        if not (isinstance(s, ir.Assign) and s.target.kind == "state" and not s.target.indices):
            break
        for n in walk(s.value):
            if isinstance(n, ir.Call) or (isinstance(n, ir.BuiltinCall) and n.name in RANDOM):
                return done
            if isinstance(n, ir.Ref) and (n.kind == "view" or (n.kind == "state" and n.name not in done)):
                return done
        done.add(s.target.name)
    return done


def emit_cells(w: RustWriter, value: ir.Expr, body) -> list[str]:
    """Lines visiting each scalar cell of `value` in row-major order.

    `body(cell, code)` gives the lines for one cell: `cell` is its flat index and `code`
    its value, both as Rust expressions. Literal lists are unrolled; arrays get loops.
    """
    t = value.type
    if not isinstance(t, ir.ArrayType):
        return body("0", w.expr(value))
    wrap = lambda code: code  # noqa: E731
    inner = value
    if isinstance(inner, ir.BuiltinCall) and inner.name == "f32":
        inner, wrap = inner.args[0], (lambda code: f"ops::f32r({code})")
    elif isinstance(inner, ir.SeenBy):
        player = w.expr(inner.player)
        inner, wrap = inner.value, (lambda code, p=player: f"ops::seen_by({code}, {p}, {w.env.players})")
    if isinstance(inner, ir.ArrayLit) and not isinstance(t.elem, ir.ArrayType):
        out = []
        for i, x in enumerate(inner.items):
            out += body(str(i), wrap(w.expr(x)))
        return out
    if isinstance(inner, ir.Ref) and inner.kind == "view" and inner.name in w.array_views \
            and not isinstance(inner.type.elem, ir.ArrayType):
        k = w.fresh("k")
        return ([f"for {k} in 0..self.{method('view_len', inner.name)}() {{"]
                + body(k, wrap(f"self.{method('view_item', inner.name)}({k} as i64)?")) + ["}"])
    lines = []
    if isinstance(inner, (ir.Ref, ir.Index)) and not (isinstance(inner, ir.Ref) and inner.kind == "view"):
        base = w.expr(inner)
    else:
        base = w.fresh("arr")
        lines.append(f"let {base} = {w.value(inner)};")
    dims = []
    tt = inner.type
    while isinstance(tt, ir.ArrayType):
        dims.append(w.size(tt.size))
        tt = tt.elem
    names = [w.fresh("i") for _ in dims]
    cell = names[0]
    for name, d in zip(names[1:], dims[1:]):
        cell = f"({cell}) * {d} + {name}"
    element = base + "".join(f"[{n}]" for n in names)
    opened = [f"for {n} in 0..{d} {{" for n, d in zip(names, dims)]
    return lines + opened + body(cell, wrap(element)) + ["}"] * len(dims)


# ---------------------------------------------------------------- helpers


_CACHEABLE = (ir.BoolType, ir.IntType, ir.FloatType, ir.EnumType)


def _zero_unless(value: ir.Expr, player: str) -> tuple[ir.Expr | None, ir.Expr]:
    """`(test, rest)` where `value` is `0.0` unless `test`, and `rest` otherwise, with a
    `test` that reads no player, calls no fn and draws nothing: player 0's reward tests it
    first, and every later test would give the same value (or the same fault), so testing
    it once for all players is the same. `if t then 0.0 else x` gives `(not t, x)`, `if t
    then x else 0.0` gives `(t, x)`; `(None, value)` for any other reward."""
    if not isinstance(value, ir.Cond) or player in free_locals(value.cond) or any(
            isinstance(n, ir.Call) or (isinstance(n, ir.BuiltinCall) and n.name in RANDOM) for n in walk(value.cond)):
        return None, value
    if _is_zero(value.then):
        return _not(value.cond), value.else_
    if _is_zero(value.else_):
        return value.cond, value.then
    return None, value


def _not(e: ir.Expr) -> ir.Expr:
    """`not e`, pushed through `and`, `or` and int comparisons (De Morgan keeps the order
    of evaluation and the short cuts), so the generated test reads as written."""
    if isinstance(e, ir.Unary) and e.op == "not":
        return e.operand
    if isinstance(e, ir.Binary) and e.op in ("and", "or"):
        return ir.Binary("or" if e.op == "and" else "and", _not(e.left), _not(e.right), e.type, e.span)
    if isinstance(e, ir.Compare) and len(e.ops) == 1 and not any(isinstance(x.type, ir.FloatType) for x in e.operands):
        return negated(e)
    return ir.Unary("not", e, e.type, e.span)


def _is_zero(e: ir.Expr) -> bool:
    return isinstance(e, ir.Lit) and isinstance(e.value, (int, float)) and not isinstance(e.value, bool) and e.value == 0


def _typed_int(v: int) -> str:
    return f"{v}i64" if v >= 0 else f"({v}i64)"


def _scalar(t):
    while isinstance(t, ir.ArrayType):
        t = t.elem
    return t


def _is_static_fn(f: ir.Function, env: ir.Env) -> bool:
    """A function of params, consts and its arguments only: it can run before any state exists."""
    if not f.pure:
        return False
    for n in walk(f.body):
        if isinstance(n, ir.Ref) and (n.kind in ("state", "view") or
                                       (n.kind == "builtin" and n.name in ("player", "steps", "difficulty", "num_actions"))):
            return False
        if isinstance(n, ir.Call):
            callee = next((g for g in env.functions if g.name == n.fn), None)
            if callee is None or callee is f or not _is_static_fn(callee, env):
                return False
    return True


INLINE_NODES = 200  # the largest inlined size (IR nodes) of a fn that `forced_inline` forces


def forced_inline(f: ir.Function, env: ir.Env) -> bool:
    """Whether fn `f` is always inlined: its body, with the bodies of the fns it forces
    in turn, is at most `INLINE_NODES` IR nodes. Guards and line scans call such fns with
    constant arguments (a direction from an unrolled literal table), which fold into
    the fn's loops once it is inlined; rustc's size heuristic leaves loops as calls
    (Connect Four's `run` and Othello's `flips` run 1.4-1.8x faster in search inlined).
    Counting what a fn inlines bounds the growth of nested calls; fns cannot recurse."""
    return _inlined_size(f, {g.name: g for g in env.functions}, {}) <= INLINE_NODES


def _inlined_size(f: ir.Function, fns: dict, memo: dict) -> int:
    if f.name not in memo:
        size = 0
        for n in walk(f.body):
            size += 1
            if isinstance(n, ir.Call) and n.fn in fns:
                inner = _inlined_size(fns[n.fn], fns, memo)
                size += inner if inner <= INLINE_NODES else 0
        memo[f.name] = size
    return memo[f.name]


def _assigned_locals(stmts) -> set[str]:
    out = set()
    for n in walk(stmts):
        if isinstance(n, ir.Place) and n.kind in ("local", "fn_param"):
            out.add(n.name)
    return out


def _assigned(stmts, name: str) -> bool:
    return name in _assigned_locals(stmts)


def _zero_expr(t, span) -> ir.Expr:
    if isinstance(t, ir.BoolType):
        return ir.Lit(False, t, span)
    if isinstance(t, ir.FloatType):
        return ir.Lit(0.0, t, span)
    if isinstance(t, ir.EnumType):
        return ir.Lit(0, t, span)
    if isinstance(t, ir.IntType):
        if t.bounded:
            # zero when the range holds it, else the lower bound
            lo, hi = t.lo, t.hi
            if isinstance(lo, ir.Lit) and isinstance(hi, ir.Lit):
                return ir.Lit(0 if lo.value <= 0 < hi.value else lo.value, ir.IntType(), span)
            if isinstance(hi, ir.Lit) and hi.value <= 0:
                return lo
            return ir.BuiltinCall("max", (ir.Lit(0, ir.IntType(), span), lo), ir.IntType(), span)
        return ir.Lit(0, t, span)
    if isinstance(t, ir.ArrayType):
        return ir.ArrayRepeat(_zero_expr(t.elem, span), t.size, t, span)
    raise TypeError(t)


def _static_zero(w: RustWriter, t) -> str:
    if isinstance(t, ir.ArrayType):
        if is_fixed(t) and is_copy(t):
            return f"[{_static_zero(w, t.elem)}; {t.size.value}]"
        return "Vec::new()"
    return w.zero(t)


def spec(env: ir.Env) -> dict[str, Any]:
    """What the runtime and the Python API need to know about an env, as plain data."""
    def show(e):
        return ir.show(e) if e is not None else None

    return {
        "name": env.name,
        "source": env.path.rsplit("/", 1)[-1],
        "players": env.players,
        "params": [{"name": p.name, "type": _type_name(p.type), "default": p.default,
                    "lo": _lit(p.type, "lo"), "hi": _lit(p.type, "hi")} for p in env.params],
        "state": [{"name": v.name, "type": str(v.type)} for v in env.state],
        "actions": [{"name": a.name, "indices": [p.name for p in a.index_params],
                     "values": [p.name for p in a.value_params], "count": show(a.count),
                     "advisory": a.advisory} for a in env.actions],
        "action_space": env.action_space.kind,
        "observation": {"kind": env.observation.kind, "size": show(env.observation.size),
                        "shape": [show(s) for s in env.observation.shape],
                        "parts": [{"encoding": p.encoding, "size": show(p.size)} for p in env.observation.parts]},
        "has_success": env.success is not None,
        "has_truncate": env.truncate is not None,
        "curriculum": reads_difficulty(env),
        "symmetries": [s.name for s in env.symmetries],
    }


def reads_difficulty(env: ir.Env) -> bool:
    """Whether the env's dynamics read `difficulty` anywhere (its render aside): only such an
    env has a curriculum for training to climb."""
    parts = [getattr(env, f.name) for f in fields(env) if f.name not in ("render", "span")]
    return any(isinstance(n, ir.Ref) and n.kind == "builtin" and n.name == "difficulty" for n in walk(parts))


def _type_name(t) -> str:
    if isinstance(t, ir.EnumType):
        return "enum:" + ",".join(t.variants)
    return str(t).split(" ")[0]


def _lit(t, which):
    e = getattr(t, which, None)
    return e.value if isinstance(e, ir.Lit) else None
