"""Symmetry blocks: mappings of state cells, values and actions that must be permutations.

Each rule is checked for shape, then evaluated with the default params: every mapped
array's cells, every relabelled value range and the actions must map one to one.
The observation parts that read a mapped name must observe it directly, so that the
observation permutation (TwisteRL's "twist") can be derived from the rules.
"""

from __future__ import annotations

import itertools
import math
from typing import Optional

from . import ast, ir
from .checker_state import CheckerState
from .consteval import EvalError, NotStatic, TooLong
from .diagnostics import Span
from .scope import Context, Local
from .types import INT, array_dims, is_err, scalar_of

MAX_SYMMETRY_POINTS = 1_000_000


class SymmetryChecker(CheckerState):
    def symmetry(self, d: ast.SymmetryDecl) -> Optional[ir.Symmetry]:
        arrows = {r.arrow for r in d.rules}
        cells, scalars, actions = [], [], []
        ok = True
        for rule in d.rules:
            made = self.sym_rule(rule)
            if made is None:
                ok = False
            elif isinstance(made, ir.CellMap):
                cells.append(made)
            elif isinstance(made, ir.ScalarMap):
                scalars.append(made)
            else:
                actions.append(made)
                if rule.arrow == "<->" and made.source != made.target:
                    if made.index_vars:
                        self.report.error(rule.span, "`<->` between two different action families cannot be "
                                          "reversed automatically", hints=["write each direction with `->`"])
                        ok = False
                    else:
                        actions.append(ir.ActionMap(made.target, (), made.source, (), rule.span))
        if not ok:
            return None
        names = [c.array for c in cells] + [s.name for s in scalars]
        for name in set(names):
            if names.count(name) > 1:
                self.report.error(d.name_span, f"symmetry `{d.name}` maps `{name}` twice")
                return None
        sources = [a.source for a in actions]
        for name in set(sources):
            if sources.count(name) > 1:
                self.report.error(d.name_span, f"symmetry `{d.name}` maps the action `{name}` twice")
                return None
        sym = ir.Symmetry(d.name, arrows == {"<->"}, tuple(cells), tuple(scalars), tuple(actions), d.span)
        self.check_permutations(sym, d)
        self.check_observable(sym, d)
        return sym

    # ------------------------------------------------------------ rule shapes

    def sym_rule(self, rule: ast.SymRule):
        lhs, rhs = rule.lhs, rule.rhs
        target = lhs.target
        root, indices = _split_index(target)
        if isinstance(target, ast.Call) or (isinstance(target, ast.Name)
                                            and self.globals.get(target.id) is not None
                                            and self.globals[target.id].kind == "action"):
            return self.action_rule(rule)
        if root is None:
            self.report.error(target.span, "a symmetry rule maps a state array cell like `grid[r][c]`, "
                              "a scalar like `agent`, or an action like `drop(c)`")
            return None
        sym = self.globals.get(root.id)
        if sym is None or sym.kind not in ("state", "view"):
            self.report.error(root.span, f"a symmetry maps state, views and actions; `{root.id}` is "
                              + ("not defined" if sym is None else f"a {sym.kind}"))
            return None
        t = sym.type
        if t is None or is_err(t):
            return None
        ctx = Context("static", "a symmetry", "symmetry")
        if not indices:
            if lhs.value is not None:
                self.report.error(lhs.span, "write a scalar's mapping as `x -> f(x)`")
                return None
            if isinstance(t, ir.ArrayType):
                self.report.error(target.span, f"`{root.id}` is an array: map its cells, like `{root.id}[i] -> {root.id}[f(i)]`")
                return None
            if not (isinstance(t, ir.EnumType) or (isinstance(t, ir.IntType) and t.bounded) or isinstance(t, ir.BoolType)):
                self.report.error(target.span, f"only bounded ints, bools and enums can be relabelled, and `{root.id}` is {t}")
                return None
            ctx.bind(Local("sym_var", root.id, t, root.span, used=True))
            value = self.expr(rhs.target, ctx, t)
            if is_err(value.type) or not self.expect(value, t, f"the new value of `{root.id}`", rhs.target.span):
                return None
            return ir.ScalarMap(root.id, value, rule.span)
        dims = array_dims(t)
        if len(indices) != len(dims):
            self.report.error(target.span, f"`{root.id}` has {len(dims)} dimension{'s' if len(dims) != 1 else ''}, "
                              f"so a rule names {len(dims)} index variable{'s' if len(dims) != 1 else ''}")
            return None
        names = []
        for idx, size in zip(indices, dims):
            if not isinstance(idx, ast.Name):
                self.report.error(idx.span, "on the left of a symmetry rule, each index is a new variable name",
                                  hints=["write `grid[r][c] -> grid[r][cols - 1 - c]`"])
                return None
            if idx.id in names:
                self.report.error(idx.span, f"the index variable `{idx.id}` is used twice")
                return None
            names.append(idx.id)
            if not self.check_new_name(idx.id, idx.span, ctx):
                return None
            ctx.bind(Local("sym_var", idx.id, ir.IntType(ir.Lit(0, INT, idx.span), size), idx.span, used=True))
        rroot, rindices = _split_index(rhs.target)
        if rroot is None or rroot.id != root.id or len(rindices) != len(dims):
            self.report.error(rhs.target.span, f"the right side must be a cell of `{root.id}` with "
                              f"{len(dims)} index{'es' if len(dims) != 1 else ''}",
                              hints=["a symmetry moves cells within one array"])
            return None
        targets = []
        for idx in rindices:
            e = self.expr(idx, ctx)
            if is_err(e.type) or not self.expect(e, INT, "an index", idx.span):
                return None
            targets.append(e)
        value_var, value = None, None
        if (lhs.value is None) != (rhs.value is None):
            self.report.error(rule.span, "relabel values on both sides: `a[i] = v -> a[f(i)] = g(v)`")
            return None
        if lhs.value is not None:
            if not isinstance(lhs.value, ast.Name):
                self.report.error(lhs.value.span, "the value on the left is a new variable name, like `= v`")
                return None
            scalar = scalar_of(t)
            if not (isinstance(scalar, ir.EnumType) or (isinstance(scalar, ir.IntType) and scalar.bounded)):
                self.report.error(lhs.value.span, "only bounded ints and enums can be relabelled")
                return None
            value_var = lhs.value.id
            if not self.check_new_name(value_var, lhs.value.span, ctx):
                return None
            ctx.bind(Local("sym_var", value_var, scalar, lhs.value.span, used=True))
            value = self.expr(rhs.value, ctx, scalar)
            if is_err(value.type) or not self.expect(value, scalar, "the new value", rhs.value.span):
                return None
        return ir.CellMap(root.id, sym.kind, tuple(names), tuple(targets), value_var, value, rule.span)

    def action_rule(self, rule: ast.SymRule):
        def parse(side: ast.SymSide, left: bool):
            e = side.target
            if side.value is not None:
                self.report.error(side.span, "actions are mapped without values: `drop(c) -> drop(cols - 1 - c)`")
                return None
            name, args = (e.id, ()) if isinstance(e, ast.Name) else (e.func, e.args) if isinstance(e, ast.Call) else (None, ())
            sym = self.globals.get(name) if name else None
            if sym is None or sym.kind != "action":
                self.report.error(e.span, f"`{name or 'this'}` is not an action; an action maps to an action")
                return None
            params = [p for p in sym.decl.params if isinstance(p, ast.IndexParam)]
            if len(args) != len(params):
                self.report.error(e.span, f"the action `{name}` has {len(params)} index"
                                  f"{'es' if len(params) != 1 else ''}, so name {len(params)} here")
                return None
            return name, args, params
        left = parse(rule.lhs, True)
        right = parse(rule.rhs, False)
        if left is None or right is None:
            return None
        ctx = Context("static", "a symmetry", "symmetry")
        names = []
        for a, p in zip(left[1], left[2]):
            if not isinstance(a, ast.Name):
                self.report.error(a.span, "on the left of a symmetry rule, each action index is a new variable name")
                return None
            lo, hi = self.static_bounds(p.range, INT, "an action's index range")
            if lo is None:
                return None
            names.append(a.id)
            if not self.check_new_name(a.id, a.span, ctx):
                return None
            ctx.bind(Local("sym_var", a.id, ir.IntType(lo, hi), a.span, used=True))
        targets = []
        for a in right[1]:
            e = self.expr(a, ctx)
            if is_err(e.type) or not self.expect(e, INT, "an action index", a.span):
                return None
            targets.append(e)
        return ir.ActionMap(left[0], tuple(names), right[0], tuple(targets), rule.span)

    # ------------------------------------------------------------ permutation checks

    def check_permutations(self, sym: ir.Symmetry, d: ast.SymmetryDecl) -> None:
        try:
            for cell in sym.cells:
                self._check_cells(sym, cell)
            for s in sym.scalars:
                t = self.globals[s.name].type
                domain = self._domain(t)
                if domain is not None:
                    image = [self.sweeper.eval(s.value, {s.name: v}) for v in domain]
                    self._bijective(image, domain, s.span, f"the values of `{s.name}`", sym.involution,
                                    lambda v: domain.index(v))
            self._check_actions(sym, d.name_span)
        except TooLong:
            return  # too large to sweep here: the permutations are checked when an env is created
        except (NotStatic, EvalError, TypeError, IndexError) as exc:
            message = exc.message if isinstance(exc, EvalError) else "it depends on values known only at run time"
            self.report.error(d.name_span, f"I cannot evaluate symmetry `{sym.name}` with the default params: {message}",
                              hints=["rules may use only their variables, params, consts and pure functions"])

    def _domain(self, t) -> Optional[list]:
        if isinstance(t, ir.EnumType):
            return list(range(len(t.variants)))
        if isinstance(t, ir.BoolType):
            return [False, True]
        if isinstance(t, ir.IntType) and t.bounded:
            lo, hi = self.static_value(t.lo), self.static_value(t.hi)
            if isinstance(lo, int) and isinstance(hi, int) and hi - lo <= MAX_SYMMETRY_POINTS:
                return list(range(lo, hi))
        return None

    def _check_cells(self, sym: ir.Symmetry, cell: ir.CellMap) -> None:
        t = self.globals[cell.array].type
        dims = [self.static_value(n) for n in array_dims(t)]
        if not all(isinstance(n, int) for n in dims):
            return
        total = 1
        for n in dims:
            total *= n
        if total > MAX_SYMMETRY_POINTS:
            return
        self.spare.spend(total, cell.span)
        points = list(itertools.product(*(range(n) for n in dims)))
        image = []
        for pt in points:
            local = dict(zip(cell.index_vars, pt))
            target = tuple(self.sweeper.eval(e, local) for e in cell.targets)
            for v, n in zip(target, dims):
                if not isinstance(v, int) or not 0 <= v < n:
                    where = "".join(f"[{x}]" for x in pt)
                    self.report.error(cell.span, f"this rule sends {cell.array}{where} to "
                                      f"{cell.array}{''.join(f'[{x}]' for x in target)}, outside the array")
                    return
            image.append(target)
        index = {p: i for i, p in enumerate(points)}
        self._bijective(image, points, cell.span, f"the cells of `{cell.array}`", sym.involution, index.__getitem__)
        if cell.value is not None:
            domain = self._domain(scalar_of(t))
            if domain is not None:
                values = [self.sweeper.eval(cell.value, {cell.value_var: v}) for v in domain]
                self._bijective(values, domain, cell.span, f"the values of `{cell.array}`", sym.involution,
                                lambda v: domain.index(v))

    def _check_actions(self, sym: ir.Symmetry, name_span: Span) -> None:
        if not sym.actions:
            return
        numbering = self._action_numbering(name_span)
        if numbering is None:
            return
        rules = {a.source: a for a in sym.actions}
        points = list(numbering)
        self.spare.spend(len(points), name_span)
        image = []
        for pt in points:
            rule = rules.get(pt[0])
            if rule is None:
                image.append(pt)
                continue
            local = dict(zip(rule.index_vars, pt[1:]))
            target = (rule.target,) + tuple(self.sweeper.eval(e, local) for e in rule.targets)
            if target not in numbering:
                self.report.error(rule.span, f"this rule sends {_show_action(pt)} to {_show_action(target)}, "
                                  "which is not an action")
                return
            image.append(target)
        self._bijective(image, points, name_span, "the actions", sym.involution, numbering.__getitem__,
                        spans={a.source: a.span for a in sym.actions})

    def _action_numbering(self, span: Span) -> Optional[dict[tuple, int]]:
        """Every discrete action as (name, *indices) -> its number; None when unknown or too
        many. Computed once for all the symmetries."""
        memo = self.__dict__.setdefault("_numbering", {})
        if "all" in memo:
            return memo["all"]
        memo["all"] = None
        numbering: dict[tuple, int] = {}
        for d in self.items(ast.ActionDecl):
            rs = []
            for p in d.params:
                if isinstance(p, ast.IndexParam):
                    lo, hi = self.static_bounds(p.range, INT, "an action's index range")
                    lo, hi = self.static_value(lo), self.static_value(hi)
                    if not (isinstance(lo, int) and isinstance(hi, int)):
                        return None  # reported with the action, or known only when an env is created
                    rs.append(range(lo, hi))
            if len(numbering) + math.prod(len(r) for r in rs) > MAX_SYMMETRY_POINTS:
                return None  # checked when an env is created; `product` would first list every range
            for combo in itertools.product(*rs):
                self.spare.spend(1, span)
                numbering[(d.name,) + combo] = len(numbering)
        memo["all"] = numbering
        return numbering

    def _bijective(self, image: list, domain: list, span: Span, what: str, involution: bool, index,
                   spans: Optional[dict] = None) -> None:
        seen: dict = {}
        inside = set(domain)
        for src, dst in zip(domain, image):
            if dst not in inside:
                at = spans.get(src[0], span) if spans else span
                self.report.error(at, f"this symmetry sends {_show(src)} to {_show(dst)}, which is not one of {what}",
                                  hints=["every cell, value and action must go to one of its kind"])
                return
            if dst in seen:
                first = seen[dst]
                at = spans.get(src[0], span) if spans else span
                self.report.error(at, f"this symmetry is not a permutation of {what}: "
                                  f"{_show(first)} and {_show(src)} both go to {_show(dst)}",
                                  hints=["every cell, value and action must have exactly one image"])
                return
            seen[dst] = src
        if involution:
            mapping = dict(zip(domain, image))
            for src, dst in mapping.items():
                if mapping.get(dst) != src:
                    self.report.error(span, f"`<->` says this mapping undoes itself, but {_show(src)} goes to "
                                      f"{_show(dst)} and back to {_show(mapping.get(dst))}",
                                      hints=["use `->` for a permutation that is not its own inverse"])
                    return

    def check_observable(self, sym: ir.Symmetry, d: ast.SymmetryDecl) -> None:
        """Every observation part that reads a mapped name must observe it directly."""
        obs = self.singles.get("observe")
        observation_parts = self.observation_parts
        if obs is None or observation_parts is None:
            return
        mapped = {c.array for c in sym.cells} | {s.name for s in sym.scalars}
        for part in observation_parts:
            value = part.value.value if isinstance(part.value, ir.SeenBy) else part.value
            if isinstance(value, ir.Ref) and value.name in mapped:
                continue
            reads = self.reads_of(value)
            touched = sorted(reads & mapped)
            if touched:
                self.report.error(part.span, f"I cannot derive how symmetry `{sym.name}` moves this observation part: "
                                  f"it reads `{touched[0]}` but is not `{touched[0]}` itself",
                                  notes=[("the symmetry", d.name_span)],
                                  hints=[f"observe `{touched[0]}` directly, or map a view that is observed directly"])


def _split_index(e: ast.Expr):
    indices = []
    while isinstance(e, ast.Index):
        indices.append(e.index)
        e = e.base
    if isinstance(e, ast.Name):
        return e, list(reversed(indices))
    return None, []


def _show(x) -> str:
    if isinstance(x, tuple) and x and isinstance(x[0], str):
        return _show_action(x)
    if isinstance(x, tuple):
        return "".join(f"[{v}]" for v in x)
    return str(x)


def _show_action(pt: tuple) -> str:
    name, args = pt[0], pt[1:]
    return f"`{name}({', '.join(str(a) for a in args)})`" if args else f"`{name}`"
