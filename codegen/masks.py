"""The mask of an action family, computed along the family's structure.

A family's guard is evaluated for every action id, so a naive mask costs
`ids x guard`. Two rewrites keep the meaning and cut that cost:

- **Hoisting.** The guard `a and b and c` is split into its conjuncts. Each is tested at
  the outermost index loop that binds everything it reads, in the guard's own order (a
  conjunct is never tested before one to its left), so `board[r][c] == player and ...`
  is tested once per square, and a square that fails skips its whole row of ids (the
  family's ids are all set false once, before the loops). A conjunct is hoisted only over inner loops that run at least once, so it is
  evaluated exactly when the per-id guard would have evaluated it first.
- **Opening calls.** A conjunct that calls a one-line function of the indices is split
  into the function's own tests (`inline.py`), which hoist like the guard's.
- **Memoising.** A function call or view in the guard whose arguments read no index (nor
  any other local) is the same for every id of this mask (guards cannot change the
  state), so it is computed the first time it is needed and reused. An int division of
  the state, params and consts alone is computed once, before the loops.
- **Unswitching.** A conjunct `if t then x else y` whose test reads no index and cannot
  fault picks one branch for the whole family: the test runs once, and each branch gets
  loops of its own, where its conjuncts hoist in turn.
"""

from __future__ import annotations

from functools import reduce

from twisterl.dsl import ir
from twisterl.dsl.effects import walk

from .inline import Splitter, conjoin
from .arith import negate, span, times
from .ranges import free_locals
from .rust import RustWriter, local, rust_type


def _reads(e: ir.Expr, names: set[str]) -> set[str]:
    return {n.name for n in walk(e) if isinstance(n, ir.Ref) and n.kind == "action_param" and n.name in names}


def per_id_loops(e: ir.Expr, env: ir.Env) -> bool:
    """Whether evaluating `e` runs a loop: an aggregate or comprehension, or a call of a
    function whose body (or a function it calls) loops. Views are left out: they read no
    index, so a mask computes them once."""
    fns = {f.name: f for f in env.functions}
    stack, seen = [e], set()
    while stack:
        for n in walk(stack.pop()):
            if isinstance(n, (ir.Aggregate, ir.ArrayComp, ir.For, ir.While, ir.Repeat)):
                return True
            if isinstance(n, ir.Call) and n.fn not in seen and n.fn in fns:
                seen.add(n.fn)
                stack.append(fns[n.fn].body)
    return False


class MaskWriter(RustWriter):
    """A writer for one family's mask: index-invariant calls and views are memoised in
    `memos` (name, Rust type), declared before the family's loops."""

    def __init__(self, *args, indices: set[str], **kwargs):
        super().__init__(*args, **kwargs)
        self.indices = indices
        # Some id's own tests run a loop, and no hoisted test skips ids: the mask costs
        # about one whole guard per id (see `per_id_loops`).
        self.loops_per_id = False
        self.memos: list[tuple[str, str]] = []
        self.hoisted: list[tuple[str, str, str]] = []  # (name, Rust type, code)

    def _memo(self, e: ir.Expr, code: str) -> str:
        name = self.fresh("memo")
        self.memos.append((name, rust_type(e.type)))
        return f"(match {name} {{ Some(v) => v, None => {{ let v = {code}; {name} = Some(v); v }} }})"

    def _invariant(self, e: ir.Expr) -> bool:
        """The same for every id: it reads no index, and no other local either (a call on
        an aggregate's loop variable inside the guard differs from member to member)."""
        scalar = isinstance(e.type, (ir.IntType, ir.FloatType, ir.BoolType, ir.EnumType))
        return scalar and not _reads(e, self.indices) and not free_locals(e)

    def _Binary(self, e: ir.Binary) -> str:
        code = super()._Binary(e)
        if e.op in ("div", "mod") and isinstance(e.type, ir.IntType) and not free_locals(e) \
                and self.ranges.total(e):
            # An int division of the state, params and consts alone (`from / size`) is the
            # same for every id and cannot fault: computed once, before the family's loops.
            for name, _, done in self.hoisted:
                if done == code:
                    return name
            name = self.fresh("inv")
            self.hoisted.append((name, rust_type(e.type), code))
            return name
        return code

    def _Call(self, e: ir.Call) -> str:
        code = super()._Call(e)
        return self._memo(e, code) if self._invariant(e) else code

    def _Ref(self, e: ir.Ref) -> str:
        code = super()._Ref(e)
        return self._memo(e, code) if e.kind == "view" and self._invariant(e) else code


def legal_entry(test: str, ids: bool) -> str:
    """Rust for action id `n`, legal when `test`: its mask entry, or with `ids` an entry of
    the list of legal ids (written always, kept when legal: no branch on the guard)."""
    if ids:
        keep = "1" if test == "true" else f"({test}) as usize"
        return f"ids[len] = n as u32; len += {keep}; n += 1;"
    return f"out[n] = {test}; n += 1;"


MAX_UNSWITCH = 3  # how many index-free `if`s of one guard get loops of their own


def _unswitched(w: MaskWriter, parts: list[ir.Expr], names: set[str], span, branch_code) -> str | None:
    """**Unswitching.** For the first conjunct `if t then x else y` whose test reads no
    index and cannot fault: the test once, then `branch_code` of the guard with `x`, or
    with `y`, in place of the conjunct (each branch's calls and divisions kept apart, as
    its tests hoist in turn); None when no conjunct is such an `if`. What the test itself
    hoists (`m / 2`) is declared before it."""
    for i, c in enumerate(parts):
        if isinstance(c, ir.Cond) and not _reads(c.cond, names) and w.ranges.total(c.cond):
            saved, w.memos, w.hoisted = (w.memos, w.hoisted), [], []
            test = w.expr(c.cond)
            decls = _declarations(w)
            branches = []
            for branch in (c.then, c.else_):
                w.memos, w.hoisted = [], []
                branches.append(branch_code(conjoin(parts[:i] + [branch] + parts[i + 1:], span)))
            w.memos, w.hoisted = saved
            return "{ " + " ".join(decls + [f"if {test} {{ {branches[0]} }} else {{ {branches[1]} }}"]) + " }"
    return None


def family_mask(w: MaskWriter, a: ir.Action, slots: list[str], guard: ir.Expr | None = None,
                depth: int = 0, ids: bool = False) -> str:
    """Rust that writes family `a`'s mask into `out[n..]` and advances `n` (ids row-major,
    the last index fastest). `slots[j]` is the `(lo, hi)` of index `j`, as Rust. With
    `ids`, the same walk lists the family's legal ids instead (see `legal_entry`)."""
    params = a.index_params
    names = [p.name for p in params]
    counts = [span(lo, hi) for lo, hi in slots]
    guard = a.guard if guard is None else guard
    with w.facts({p.name: w.ranges.range_fact(p.lo, p.hi) for p in params}):
        parts = Splitter(w.env, w.ranges).conjuncts(guard, set(names))
        if depth < MAX_UNSWITCH:
            code = _unswitched(w, parts, set(names), guard.span,
                               lambda g: family_mask(w, a, slots, g, depth + 1, ids))
            if code is not None:
                return code
        # Each conjunct's level: the deepest index it reads; placed no shallower than those before it.
        placed: list[list[ir.Expr]] = [[] for _ in range(len(params) + 1)]  # level -1 is placed[0]
        level = -1
        for c in parts:
            read = _reads(c, set(names))
            level = max([level] + [names.index(n) for n in read])
            placed[level + 1].append(c)
        # Written in evaluation order: each test knows the bounds those before it state.
        code_of = dict(zip(map(id, (c for level in placed for c in level)),
                           w.in_order([c for level in placed for c in level])))
        innermost = " && ".join(f"({code_of[id(c)]})" for c in placed[len(params)]) or "true"
        code = legal_entry(innermost, ids)
        for j in reversed(range(len(params))):
            checks = "".join(f"if below{j} > 0 && {negate(code_of[id(c)])} {{ n += below{j}; continue; }} "
                             for c in placed[j + 1] if j < len(params) - 1)
            code = f"for {local(names[j])} in {slots[j][0]}..{slots[j][1]} {{ {checks}{code} }}"
        outer = [code_of[id(c)] for c in placed[0]]
    sizes = [f"let below{j}: usize = {reduce(times, counts[j + 1:])};" for j in range(len(params) - 1)
             if placed[j + 1]]
    total = reduce(times, counts)
    memos = [f"let mut {name}: Option<{t}> = None;" for name, t in w.memos]
    memos += [f"let {name}: {t} = {code};" for name, t, code in w.hoisted]
    # Where a hoisted test can skip ids, the family's ids start false, once; otherwise
    # the loops write every id.
    inner_skips = any(placed[j + 1] for j in range(len(params) - 1))
    skips = bool(outer) or inner_skips
    if not inner_skips and any(per_id_loops(c, w.env) for c in placed[len(params)]):
        w.loops_per_id = True
    fill = f"let total: usize = {total}; out[n..n + total].fill(false);" if skips else ""
    if ids:  # a list needs no fill; `total` only for skipping the whole family
        fill = f"let total: usize = {total};" if outer else ""
    if outer:
        test = " && ".join(f"({c})" for c in outer)
        code = f"if total > 0 && {negate(test)} {{ n += total; }} else {{ {code} }}"
    return "{ " + " ".join(memos + sizes + [fill]).strip() + f" {code} }}"



def _draw_tests(w: MaskWriter, a: ir.Action, guard: ir.Expr) -> tuple[list[str], list[str]]:
    """The Rust of `guard`'s conjuncts for one drawn id of family `a`: the prefix that
    reads no index (the same for every id), then the rest, each written knowing the
    bounds of those before it."""
    names = {p.name for p in a.index_params}
    with w.facts({p.name: w.ranges.range_fact(p.lo, p.hi) for p in a.index_params}):
        parts = Splitter(w.env, w.ranges).conjuncts(guard, names)
        outer = 0
        while outer < len(parts) and not _reads(parts[outer], names):
            outer += 1
        codes = w.in_order(parts)
    return codes[:outer], codes[outer:]


def _declarations(w: MaskWriter) -> list[str]:
    """The memos (computed the first time a draw needs them) and the divisions of the
    state, params and consts alone (which cannot fault: computed before the draws)."""
    return [f"let mut {name}: Option<{t}> = None;" for name, t in w.memos] + \
        [f"let {name}: {t} = {code};" for name, t, code in w.hoisted]


def _bind(a: ir.Action) -> str:
    return " ".join(f"let {local(p.name)}: i64 = i{j};" for j, p in enumerate(a.index_params))


def _both(codes: list[str]) -> str:
    return " && ".join(f"({c})" for c in codes) or "true"


def family_draw(w: MaskWriter, a: ir.Action, total: str, decode: str, guard: ir.Expr | None = None,
                depth: int = 0) -> str:
    """Rust that draws up to `draws` ids of family `a`, the env's only family (ids `0..`
    `total`), uniformly with `rng`, and returns the first whose guard holds. The draws
    meet the family's structure as the mask does: the prefix of conjuncts that reads no
    index is tested once (when it fails, no id is legal and nothing is drawn), index-free
    `if`s that cannot fault are unswitched, and index-free calls and divisions are
    computed once for all the draws. `decode` turns `local` into the indices `i0, i1...`."""
    names = {p.name for p in a.index_params}
    guard = a.guard if guard is None else guard
    if depth < MAX_UNSWITCH:
        with w.facts({p.name: w.ranges.range_fact(p.lo, p.hi) for p in a.index_params}):
            parts = Splitter(w.env, w.ranges).conjuncts(guard, names)
            code = _unswitched(w, parts, names, guard.span,
                               lambda g: family_draw(w, a, total, decode, g, depth + 1))
        if code is not None:
            return code
    outer, inner = _draw_tests(w, a, guard)
    code = (f"for _ in 0..draws {{ let local = rng.below(total as u64) as usize; {decode} {_bind(a)} "
            f"if {_both(inner)} {{ return Ok(Some(local)); }} }}")
    if outer:
        code = f"if {_both(outer)} {{ {code} }}"
    return "{ " + " ".join(_declarations(w) + [f"let total: usize = {total};"]) + f" if total > 0 {{ {code} }} }}"


def families_draw(arms: list[tuple[ir.Action, MaskWriter | None, str]]) -> str:
    """Rust that draws up to `draws` action ids of an env of several families uniformly
    with `rng` and returns the first whose guard holds. `arms` has, for each family in
    order, its writer (None for a family with no guard) and the statements that decode
    `local` into its indices. A family's index-free prefix of conjuncts is computed the
    first time a draw lands in it, and kept for the other draws."""
    decls, cases = [], []
    for d, (a, w, decode) in enumerate(arms):
        if w is None:
            cases.append(f"{d} => return Ok(Some(action)),")
            continue
        outer, inner = _draw_tests(w, a, a.guard)
        decls += _declarations(w)
        tests = inner
        if outer:
            known = f"__outer{d}"
            decls.append(f"let mut {known}: Option<bool> = None;")
            tests = [f"match {known} {{ Some(v) => v, None => {{ let v = {_both(outer)}; {known} = Some(v); v }} }}"] \
                + inner
        if a.index_params:
            cases.append(f"{d} => {{ {decode} {_bind(a)} if {_both(tests)} {{ return Ok(Some(action)); }} }}")
        else:
            cases.append(f"{d} if {_both(tests)} => return Ok(Some(action)),")
    return ("{ " + " ".join(decls) + " let total = self.num_actions(); if total > 0 { for _ in 0..draws { "
            "let action = rng.below(total as u64) as usize; let (decl, local) = self.decode(action); "
            "match decl { " + " ".join(cases) + " _ => {} } } } }")
