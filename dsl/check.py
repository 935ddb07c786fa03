"""Name resolution and type checking: source AST -> typed IR (`ir.Env`).

`check_module` runs every check and reports all independent errors in one pass. The
`Checker` is assembled from one mixin per concern:

    exprs.py      expressions        calls.py     calls, built-ins, aggregates
    stmts.py      statements         levels.py    level literals (`map`)
    observe.py    observations       symmetry.py  symmetries
    render.py     render blocks      effects.py   purity, recursion, warnings

The state they share is declared, with its types, in `checker_state.py`.
"""

from __future__ import annotations

import dataclasses
import sys
from typing import Any, Iterator, Optional

from . import ast, ir
from .calls import CallChecker
from .consteval import (I64_MAX, MAX_CELLS, SPECULATIVE_STEPS, Budget, EvalError,
                        Evaluator, NotStatic, TooLong, try_eval)
from .diagnostics import Diagnostic, Source, Span, did_you_mean
from .effects import EffectChecker
from .exprs import ExprChecker, article
from .levels import LevelChecker
from .observe import ObserveChecker
from .render import RenderChecker
from .scope import BUILTIN_VALUES, Context, Effects, Local, Symbol, refused_name
from .stmts import StmtChecker, kind_phrase
from .symmetry import SymmetryChecker
from .types import BOOL, ERR, FLOAT, INT, UNIT, add, is_err, is_float, is_int, mul, sub

_SINGLE = {"reset": "reset", "success": "success", "done": "done", "truncate": "truncate",
           "reward": "reward", "observe": "observe", "render": "render", "players": "players",
           "env": "env"}
_TYPE_HINTS = {"Int": "int", "integer": "int", "i32": "int", "i64": "int", "usize": "int",
               "u8": "int", "f32": "float", "f64": "float", "Float": "float", "double": "float",
               "boolean": "bool", "Bool": "bool", "str": "there are no string values"}


MAX_CHAIN = 1000  # definitions resolved inside one another (`const a = b`, `const b = c`...)


def check_module(module: ast.Module, source: Source) -> tuple[list[Diagnostic], Optional[ir.Env]]:
    """Check a parsed module; return the diagnostics and, when there are no errors, the IR."""
    checker = Checker(module, source)
    # The checker recurses through nested expressions (at most MAX_NESTING deep), chains of
    # definitions and constant function calls; give it room for all three at once.
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(max(limit, 50_000))
    try:
        env = checker.run()
    except RecursionError:
        name, span = checker.outermost
        checker.report.error(span, f"the definition of `{name}` nests too deeply to check",
                             hints=["split it into shorter definitions"])
        env = None
    finally:
        sys.setrecursionlimit(limit)
    return checker.report.diagnostics, env


class Checker(ExprChecker, CallChecker, StmtChecker, LevelChecker, ObserveChecker,
              SymmetryChecker, RenderChecker, EffectChecker):
    """The whole checker: the state every concern shares is declared in `CheckerState`."""

    # ------------------------------------------------------------ driver

    def run(self) -> Optional[ir.Env]:
        self.collect()
        self.check_players()
        for item in self.dependencies_first(self.items(ast.ParamDecl) + self.items(ast.ConstDecl)):
            self.resolve_global(item.name, item.name_span)
        state = [self.state_var(d) for d in self.items(ast.StateDecl)]
        for d in self.items(ast.FnDecl):
            if self.owns(d):
                self.signature(d.name)
        for d in self.dependencies_first(self.items(ast.ViewDecl)):
            self.resolve_global(d.name, d.name_span)
        functions = [f for f in (self.function(d) for d in self.items(ast.FnDecl)) if f is not None]
        self.evaluator.functions = self.sweeper.functions = self.fn_ir
        self.const_values()
        actions = [a for a in (self.action(d) for d in self.items(ast.ActionDecl)) if a is not None]
        self.check_action_kinds()
        reset = self.reset_block()
        episode = {k: self.episode_cond(k) for k in ("success", "done", "truncate")}
        reward = self.reward_spec()
        observation = self.observation()
        self.observation_parts = observation.parts if observation is not None else None
        symmetries = [s for s in (self.symmetry(d) for d in self.symmetry_decls) if s is not None]
        render = self.render()
        self.check_effects()
        if not self.report.has_errors:
            for d, what in self.not_static_consts:
                self.report.error(d.value.span, f"the const `{d.name}` cannot be computed when the env is created: "
                                  f"it needs {what}, which is not known before the episode starts",
                                  hints=["a const may use literals, params, other consts and pure functions of them"])
        self.check_required()
        if not self.report.has_errors:  # after an error, these warnings would mostly be noise
            self.warn_dead_state()
            self.warn_never_legal(actions)
        if not self.report.has_errors:
            action_space = self.action_space(actions)  # may still find an error
        if self.report.has_errors:
            return None
        env_decl = self.singles["env"]
        return ir.Env(
            name=env_decl.name, path=self.source.path,
            params=tuple(self.globals[d.name].decl_ir for d in self.items(ast.ParamDecl)),
            consts=tuple(self.const_ir[n] for n in self.const_ir),
            enums=tuple(ir.Enum(d.name, tuple(v for v, _ in d.variants), d.span) for d in self.items(ast.EnumDecl)),
            state=tuple(state), players=self.players, actions=tuple(actions),
            action_space=action_space,
            functions=tuple(self.fn_ir[f.name] for f in functions),
            views=tuple(self.view_ir[d.name] for d in self.items(ast.ViewDecl)),
            reset=reset, reward=reward, success=episode["success"], done=episode["done"],
            truncate=episode["truncate"], observation=observation, symmetries=tuple(symmetries),
            render=render, span=self.module.span)

    def items(self, cls) -> list:
        return [i for i in self.module.items if isinstance(i, cls)]

    def dependencies_first(self, decls: list) -> list:
        """`decls` ordered so that each comes after the ones it names (cycles aside), so that
        resolving them in turn does not recurse down long chains of definitions."""
        by_name = {d.name: d for d in decls if self.owns(d)}
        order, done = [], set()
        for root in by_name.values():
            stack = [(root, iter(_names_in(root)))]
            done.add(root.name)
            while stack:
                d, names = stack[-1]
                for n in names:
                    if n in by_name and n not in done:
                        done.add(n)
                        stack.append((by_name[n], iter(_names_in(by_name[n]))))
                        break
                else:
                    stack.pop()
                    order.append(d)
        return order

    def owns(self, d) -> bool:
        """Whether declaration `d` holds its name (it is not a refused or second definition)."""
        sym = self.globals.get(d.name)
        return sym is not None and sym.decl is d

    # ------------------------------------------------------------ declarations

    def collect(self) -> None:
        kinds = {ast.ParamDecl: "param", ast.ConstDecl: "const", ast.StateDecl: "state",
                 ast.ViewDecl: "view", ast.FnDecl: "fn", ast.ActionDecl: "action", ast.EnumDecl: "enum"}
        symmetries: dict[str, ast.SymmetryDecl] = {}
        for item in self.module.items:
            kind = kinds.get(type(item))
            if kind is not None:
                self.declare(Symbol(kind, item.name, item.name_span, item))
            elif isinstance(item, ast.SymmetryDecl):
                first = symmetries.setdefault(item.name, item)
                if first is not item:
                    self.report.error(item.name_span, f"there are two symmetries named `{item.name}`",
                                      notes=[("the first one", first.name_span)])
                self.symmetry_decls.append(item)
            else:
                key = {ast.EnvDecl: "env", ast.PlayersDecl: "players", ast.ResetDecl: "reset",
                       ast.RewardDecl: "reward", ast.ObserveDecl: "observe", ast.RenderDecl: "render"}.get(type(item))
                if isinstance(item, ast.EpisodeDecl):
                    key = item.kind
                assert key is not None, item
                if key in self.singles:
                    first = self.singles[key]
                    self.report.error(_head(item.span), f"`{key}` is declared twice",
                                      notes=[("the first one is here", _head(first.span))],
                                      hints=[_combine_hint(key)])
                else:
                    self.singles[key] = item
        # After every declaration, so that a variant clashes with names declared later too.
        for d in self.items(ast.EnumDecl):
            if self.owns(d):
                self.declare_enum(d)

    def declare(self, sym: Symbol) -> None:
        refused = refused_name(sym.name)
        if refused is not None:
            self.report.error(sym.span, refused[0], hints=refused[1])
            return
        if sym.kind == "fn" and sym.name in _BUILTIN_FUNCTION_NAMES():
            self.report.error(sym.span, f"`{sym.name}` is a built-in function and cannot be redefined",
                              hints=["pick another name"])
            return
        first = self.globals.get(sym.name)
        if first is not None:
            self.report.error(sym.span, f"`{sym.name}` is defined twice",
                              f"second definition, as {kind_phrase(sym.kind)}",
                              notes=[(f"first defined as {kind_phrase(first.kind)} here", first.span)],
                              hints=["every param, const, state, view, function, action and enum needs its own name"])
            return
        self.globals[sym.name] = sym

    def declare_enum(self, d: ast.EnumDecl) -> None:
        seen: dict[str, Span] = {}
        for v, span in d.variants:
            refused = refused_name(v)
            if refused is not None:
                self.report.error(span, refused[0], hints=refused[1])
            elif v in seen:
                self.report.error(span, f"enum `{d.name}` lists `{v}` twice", notes=[("first here", seen[v])])
            elif v in self.globals:
                self.report.error(span, f"the variant `{v}` has the same name as {kind_phrase(self.globals[v].kind)}",
                                  notes=[("declared here", self.globals[v].span)],
                                  hints=[f"rename one of them (the variant stays reachable as `{d.name}.{v}`)"])
            seen.setdefault(v, span)
        etype = ir.EnumType(d.name, tuple(seen))
        self.globals[d.name].type = etype
        for v in seen:
            self.variants.setdefault(v, []).append(etype)

    def resolve_global(self, name: str, span: Span) -> Optional[Symbol]:
        """Look a global name up, checking a const or view on first use."""
        sym = self.globals.get(name)
        if sym is None:
            enums = self.variants.get(name)
            if not enums:
                return None
            if len(enums) > 1:
                self.report.error(span, f"`{name}` is a variant of several enums: "
                                  + ", ".join(f"`{e.name}`" for e in enums), "ambiguous",
                                  notes=[(f"a variant of `{e.name}`", self.globals[e.name].span) for e in enums],
                                  hints=[f"qualify it: `{enums[0].name}.{name}`"])
                return Symbol("variant", name, span, None, ERR)
            return Symbol("variant", name, span, None, enums[0])
        if sym.type is None and sym.kind in ("param", "const", "view"):
            if name in self.resolving:
                self.report.error(span, f"`{name}` is defined in terms of itself",
                                  notes=[("its definition", sym.span)],
                                  hints=["break the cycle: a definition cannot use its own value"])
                sym.type = ERR
                return sym
            if len(self.resolving) >= MAX_CHAIN:
                self.report.error(span, f"`{name}` is defined through a chain of more than {MAX_CHAIN:,} definitions",
                                  hints=["shorten the chain: define the values directly"])
                sym.type = ERR
                return sym
            if not self.resolving:
                self.outermost = (name, sym.span)
            self.resolving.add(name)
            try:
                {"param": self.param, "const": self.const, "view": self.view}[sym.kind](sym)
            finally:
                self.resolving.discard(name)
        return sym

    def did_you_mean(self, name: str, candidates) -> list[str]:
        """`did you mean ...?` hints, for the first MAX_SUGGESTIONS unknown names of a file
        (each compares with every candidate); `candidates` may be a function giving them."""
        if self.suggestions_left <= 0:
            return []
        self.suggestions_left -= 1
        return did_you_mean(name, candidates() if callable(candidates) else candidates)

    def visible_names(self, ctx: Context) -> list[str]:
        names = [n for n, s in self.globals.items() if s.kind not in ("action", "fn", "enum")]
        return names + list(self.variants) + ctx.names() + sorted(BUILTIN_VALUES)

    def function_names(self) -> list[str]:
        return [n for n, s in self.globals.items() if s.kind == "fn"]

    def effects_of(self, owner: str) -> Effects:
        return self.effects.setdefault(owner, Effects())

    def record_call(self, fn: str, span: Span, ctx: Context) -> None:
        self.effects_of(ctx.owner).calls.append(("fn:" + fn, span))
        if ctx.mode != "effect":
            self.pure_calls.append((fn, span, ctx.what, ctx.mode))

    def note_state_read(self, name: str, ctx: Context) -> None:
        if ctx.assigning != name:
            self.state_reads.add(name)

    # ------------------------------------------------------------ static values

    def static_value(self, e: Optional[ir.Expr], params: bool = True):
        """The value of `e` with the default params (only fixed consts unless `params`), or
        None: not static, failing, or too long to compute (the caller checks nothing then)."""
        if e is None:
            return None
        if isinstance(e, ir.Lit):
            return e.value
        budget = Budget(max(min(SPECULATIVE_STEPS, self.spare.left), 0))
        ev = Evaluator(self.values, self.evaluator.functions, budget) if params else Evaluator(self.fixed_values, None, budget)
        value = try_eval(ev, e)
        self.spare.left -= budget.limit - max(budget.left, 0)
        return value

    def must_value(self, e: Optional[ir.Expr], what: str):
        """The value of `e`, which the env computes when it is created: a failure is an error.

        None when `e` is not static (or failed, reported)."""
        return self.eval_reporting(e, what)[0]

    def eval_reporting(self, e: Optional[ir.Expr], what: str) -> tuple[Any, bool]:
        """(value, False); (None, False) when not static; (None, True) after a failure."""
        if e is None:
            return None, False
        if isinstance(e, ir.Lit):
            return e.value, False
        try:
            return self.evaluator.eval(e), False
        except NotStatic:
            return None, False
        except EvalError as exc:
            self.report_eval_error(exc, what, e.span)
        except (TypeError, ValueError, OverflowError, IndexError, ZeroDivisionError, KeyError, AttributeError):
            pass  # an expression that already has an error
        return None, True

    def report_eval_error(self, exc: EvalError, what: str, span: Span) -> None:
        at = exc.span or span
        key = ("too long", None) if isinstance(exc, TooLong) else (at, exc.message)
        if key in self.eval_errors:
            return  # once the budget is spent, every later evaluation stops at once
        self.eval_errors.add(key)
        notes = [(f"while computing {what}", span)] if at != span else []
        if isinstance(exc, TooLong):
            self.report.error(at, f"{what} takes too long to compute: more than {exc.limit:,} steps "
                              "with the default params", "still running here", notes=notes,
                              hints=["`twisterl check` and the creation of every env compute it; use smaller "
                                     "sizes or fewer iterations",
                                     "or compute it during the episode: in `reset` into a state variable, "
                                     "or in a `let` view"])
        else:
            self.report.error(at, f"{what} fails with the default params: {exc.message}", "fails here", notes=notes)

    def const_values(self) -> None:
        """Compute the consts that need functions, now that the functions are checked."""
        missing: set[str] = set()
        for name, c in self.const_ir.items():
            if name in self.values or name in self.failed_consts:
                continue
            d: ast.ConstDecl = self.globals[name].decl
            try:
                value = self.evaluator.eval(c.value)
            except NotStatic as exc:
                what = str(exc.args[0]) if exc.args else "something"
                if what not in missing:
                    self.not_static_consts.append((d, f"`{what}`"))
                missing.add(name)
                continue
            except EvalError as exc:
                self.report_eval_error(exc, f"the const `{name}`", d.value.span)
                missing.add(name)
                continue
            except (TypeError, ValueError, OverflowError, IndexError, ZeroDivisionError, KeyError, AttributeError):
                missing.add(name)
                continue
            self.check_value_fits(value, c.type, d.value.span)
            self.values[name] = value

    def reads_params(self, e: ir.Expr) -> bool:
        """Whether `e` depends on a param, directly or through consts."""
        from .effects import walk
        for n in walk(e):
            if isinstance(n, ir.Ref) and (n.kind == "param" or (n.kind == "const" and n.name not in self.fixed_values)):
                return True
            if isinstance(n, ir.Call):
                return True
        return False

    def is_static(self, e: ir.Expr) -> bool:
        """Whether `e` depends only on literals, params and consts."""
        if isinstance(e, ir.Lit):
            return True
        if isinstance(e, ir.Ref):
            return e.kind in ("param", "const") or (e.kind == "builtin" and e.name == "pi")
        if isinstance(e, (ir.Binary,)):
            return self.is_static(e.left) and self.is_static(e.right)
        if isinstance(e, ir.Unary):
            return self.is_static(e.operand)
        if isinstance(e, ir.BuiltinCall):
            return e.name not in ("uniform", "randint", "choice", "act") and all(self.is_static(a) for a in e.args)
        if isinstance(e, ir.Cond):
            return all(self.is_static(x) for x in (e.cond, e.then, e.else_))
        if isinstance(e, ir.Compare):
            return all(self.is_static(x) for x in e.operands)
        if isinstance(e, ir.Index):
            return self.is_static(e.base) and self.is_static(e.index)
        if isinstance(e, (ir.ArrayLit, ir.TupleLit)):
            return all(self.is_static(x) for x in e.items)
        return False

    def static_ctx(self, what: str, owner: str) -> Context:
        return Context("static", what, owner)

    # ------------------------------------------------------------ types

    def resolve_type(self, t: ast.TypeExpr, ctx: Context, cells: int = 1):
        if isinstance(t, ast.TBool):
            return BOOL
        if isinstance(t, ast.TInt):
            if t.range is None:
                return INT
            lo, hi = self.static_bounds(t.range, INT, "an int range")
            if lo is None:
                return ERR
            return ir.IntType(lo, hi)
        if isinstance(t, ast.TFloat):
            if t.range is None:
                return FLOAT
            lo, hi = self.static_bounds(t.range, FLOAT, "a float range")
            if lo is None:
                return ERR
            return ir.FloatType(lo, hi)
        if isinstance(t, ast.TNamed):
            sym = self.globals.get(t.name)
            if sym is not None and sym.kind == "enum":
                return sym.type or ERR
            hints = []
            if t.name in _TYPE_HINTS:
                hints.append(f"write `{_TYPE_HINTS[t.name]}`" if " " not in _TYPE_HINTS[t.name] else _TYPE_HINTS[t.name])
            else:
                hints += self.did_you_mean(t.name, ["int", "float", "bool"] +
                                      [n for n, s in self.globals.items() if s.kind == "enum"])
            what = f"`{t.name}` is {kind_phrase(sym.kind)}, not a type" if sym else f"I cannot find a type `{t.name}`"
            self.report.error(t.span, what, "not a type", hints)
            return ERR
        if isinstance(t, ast.TArray):
            size = self.size_expr(t.size, ctx, "an array's length")
            if size is None:
                return ERR
            n = self.static_value(size)
            total = cells * n if isinstance(n, int) and not isinstance(n, bool) else cells
            if total > MAX_CELLS:
                self.report.error(t.span, f"this array has {total:,} cells with the default params, beyond "
                                  f"the limit of {MAX_CELLS:,}", "too large")
                return ERR
            elem = self.resolve_type(t.elem, ctx, total)
            if is_err(elem):
                return ERR
            return ir.ArrayType(elem, size)
        if isinstance(t, ast.TTuple):
            items = tuple(self.resolve_type(x, ctx, cells) for x in t.items)
            return ERR if any(is_err(x) for x in items) else ir.TupleType(items)
        raise AssertionError(t)

    def static_bounds(self, r: ast.Range, kind, what: str):
        ctx = self.static_ctx(what, "types")
        lo = self.expr(r.lo, ctx, kind)
        hi = self.expr(r.hi, ctx, kind)
        ok = self.expect(lo, kind, f"the start of {what}", r.lo.span)
        ok = self.expect(hi, kind, f"the end of {what}", r.hi.span) and ok
        if not ok:
            return None, None
        if r.inclusive:
            if kind is INT:
                hi = self.fold(ir.Binary("add", hi, ir.Lit(1, INT, r.span), INT, r.span)) \
                    if not isinstance(hi, ir.Lit) else ir.Lit(hi.value + 1, INT, r.span)
            else:
                self.report.error(r.span, "float ranges are closed already; write `lo..hi`")
        a, b = self.must_value(lo, f"the start of {what}"), self.must_value(hi, f"the end of {what}")
        if kind is INT and any(isinstance(x, int) and not -I64_MAX - 1 <= x <= I64_MAX for x in (a, b)):
            self.report.error(r.span, f"{what} does not fit in 64-bit ints", "out of range",
                              [f"ints range from {-I64_MAX - 1} to {I64_MAX}"])
            return None, None
        if isinstance(a, (int, float)) and isinstance(b, (int, float)):
            if (kind is INT and a >= b) or (kind is FLOAT and a > b):
                self.report.error(r.span, f"{what} {a}..{b} is empty with the default params",
                                  "empty range", ["`lo..hi` includes lo and excludes hi" if kind is INT
                                                  else "the lower bound must not exceed the upper"])
                return None, None
        return _plain(lo), _plain(hi)

    # ------------------------------------------------------------ params, consts, state, views

    def param(self, sym: Symbol) -> None:
        d: ast.ParamDecl = sym.decl
        ctx = self.static_ctx(f"the default of `{d.name}`", "param:" + d.name)
        declared = self.resolve_type(d.type, ctx) if d.type is not None else None
        value = self.expr(d.default, ctx, declared)
        sym.type = ERR
        if is_err(value.type) or (declared is not None and is_err(declared)):
            return
        default = self.static_value(value)
        if not isinstance(value.type, (ir.IntType, ir.FloatType, ir.BoolType, ir.EnumType)) or default is None:
            self.report.error(d.default.span, "a param's default must be a literal int, float, bool or enum variant",
                              hints=["derive values from params with `const`"])
            return
        t = declared if declared is not None else (INT if is_int(value.type) else value.type)
        if declared is not None and not self.expect(value, declared, f"the default of `{d.name}`", d.default.span):
            return
        if isinstance(t, (ir.IntType, ir.FloatType)) and t.lo is not None:
            lo, hi = self.static_value(t.lo), self.static_value(t.hi)
            known = all(isinstance(x, (int, float)) for x in (lo, hi, default))
            inside = not known or (lo <= default < hi if isinstance(t, ir.IntType) else lo <= default <= hi)
            if not inside:
                self.report.error(d.default.span, f"the default {default} is outside the declared range", "out of range")
        if is_float(t):
            default = float(default)
        sym.type = t
        sym.decl_ir = ir.Param(d.name, t, default, d.span)
        self.values[d.name] = default

    def const(self, sym: Symbol) -> None:
        d: ast.ConstDecl = sym.decl
        ctx = self.static_ctx(f"the const `{d.name}`", "const:" + d.name)
        declared = self.resolve_type(d.type, ctx) if d.type is not None else None
        if isinstance(d.value, ast.MapLit):
            value = self.level_literal(d.value, ctx, d.name)
        else:
            value = self.expr(d.value, ctx, declared)
        t = self.definition_type(value, declared, f"the const `{d.name}`", d.value.span)
        sym.type = t
        if is_err(t):
            return
        self.const_ir[d.name] = ir.Const(d.name, t, value, d.span)
        v, failed = self.eval_reporting(value, f"the const `{d.name}`")
        if failed:
            self.failed_consts.add(d.name)
        if v is not None:
            self.values[d.name] = v
            if not self.reads_params(value):
                self.fixed_values[d.name] = v

    def state_var(self, d: ast.StateDecl) -> ir.StateVar:
        sym = self.globals.get(d.name)
        ctx = self.static_ctx(f"the type of `{d.name}`", "state:" + d.name)
        t = self.resolve_type(d.type, ctx)
        if isinstance(t, ir.FloatType) and t.lo is not None:
            self.report.error(d.type.span, "float state has no bounds; bounds belong to continuous action values",
                              hints=["write `float`, and use `clamp(...)` in the effects that must stay in range"])
            t = FLOAT
        if isinstance(t, ir.TupleType):
            self.report.error(d.type.span, "state cannot hold a tuple", hints=["declare one state variable per item"])
            t = ERR
        if sym is not None and sym.decl is d:
            sym.type = t
        init = None
        if d.init is not None:
            ictx = self.static_ctx(f"the initial value of `{d.name}`", "state:" + d.name)
            init = self.expr(d.init, ictx, t)
            if not is_err(t) and not is_err(init.type):
                self.expect(init, t, f"the initial value of `{d.name}`", d.init.span)
                self.must_value(init, f"the initial value of `{d.name}`")
                self.check_constant_fits(init, t, d.init.span)
        return ir.StateVar(d.name, t, init, d.span)

    def view(self, sym: Symbol) -> None:
        d: ast.ViewDecl = sym.decl
        ctx = Context("pure", f"the view `{d.name}`", "view:" + d.name)
        declared = self.resolve_type(d.type, self.static_ctx("a type", "view")) if d.type is not None else None
        value = self.expr(d.value, ctx, declared)
        t = self.definition_type(value, declared, f"the view `{d.name}`", d.value.span)
        sym.type = t
        if not is_err(t):
            self.view_ir[d.name] = ir.View(d.name, t, value, d.span)

    def definition_type(self, value: ir.Expr, declared, what: str, span: Span):
        """The type a const or view takes: its declared type, or its value's; ERR after an error."""
        if is_err(value.type) or (declared is not None and is_err(declared)):
            return ERR
        if isinstance(value.type, (ir.UnitType, ir.StrType)):
            self.report.error(span, f"{what} must hold a value, but this is {article(value.type)}")
            return ERR
        if declared is None:
            return value.type
        if not self.expect(value, declared, what, span):
            return ERR
        self.check_constant_fits(value, declared, span)
        return declared

    # ------------------------------------------------------------ functions

    def signature(self, name: str):
        if name in self.signatures:
            return self.signatures[name]
        self.signatures[name] = None
        d: ast.FnDecl = self.globals[name].decl
        ctx = self.static_ctx(f"the signature of `{name}`", "fn:" + name)
        params = []
        seen: dict[str, Span] = {}
        ok = True
        for p in d.params:
            t = self.resolve_type(p.type, ctx)
            if p.name in seen:
                self.report.error(p.name_span, f"`{name}` has two parameters named `{p.name}`")
                ok = False
            seen[p.name] = p.name_span
            ok = ok and not is_err(t)
            params.append(ir.FnParam(p.name, t, p.span))
        ret = self.resolve_type(d.ret, ctx) if d.ret is not None else UNIT
        if not ok or is_err(ret):
            return None
        self.signatures[name] = (tuple(params), ret)
        return self.signatures[name]

    def function(self, d: ast.FnDecl) -> Optional[ir.Function]:
        sym = self.globals.get(d.name)
        if sym is None or sym.decl is not d:
            return None
        sig = self.signature(d.name)
        if sig is None:
            return None
        params, ret = sig
        ctx = Context("effect", f"`fn {d.name}`", "fn:" + d.name, ret=ret, in_fn=True, allow_reward=True)
        for p, src in zip(params, d.params):
            self.check_new_name(p.name, src.name_span, ctx)
            ctx.bind(Local("fn_param", p.name, p.type, src.name_span, used=True))
        body = self.block(d.body, ctx)
        if not isinstance(ret, ir.UnitType) and not _always_returns(body):
            self.report.error(d.name_span, f"`{d.name}` can reach its end without returning {article(ret)}",
                              "may not return", ["end every path with `return ...`"])
        fn = ir.Function(d.name, params, ret, body, False, False, False, d.span)
        self.fn_ir[d.name] = fn
        return fn

    # ------------------------------------------------------------ actions

    def action(self, d: ast.ActionDecl) -> Optional[ir.Action]:
        sym = self.globals.get(d.name)
        if sym is None or sym.decl is not d:
            return None
        ctx = Context("effect", f"the action `{d.name}`", "action:" + d.name, allow_reward=True)
        gctx = Context("pure", "a guard", "guard:" + d.name)
        index_params, value_params = [], []
        count: ir.Expr = ir.Lit(1, INT, d.span)
        seen: set[str] = set()
        for p in d.params:
            if p.name in seen:
                self.report.error(p.name_span, f"`{d.name}` has two parameters named `{p.name}`")
                continue
            seen.add(p.name)
            if isinstance(p, ast.IndexParam):
                lo, hi = self.static_bounds(p.range, INT, "an action's index range")
                if lo is None:
                    return None
                t = ir.IntType(lo, hi)
                index_params.append(ir.IndexParam(p.name, lo, hi, p.span))
                n = self.fold(sub(hi, lo, p.span))
                count = mul(count, n, p.span)
            else:
                t = self.resolve_type(p.type, self.static_ctx("an action value", "action"))
                if is_err(t):
                    return None
                scalar = t.elem if isinstance(t, ir.ArrayType) else t
                if not isinstance(scalar, ir.FloatType) or scalar.lo is None or isinstance(scalar, ir.ArrayType):
                    self.report.error(p.type.span, "a continuous action value must be a bounded float, "
                                      "or an array of them", "not a bounded float",
                                      ["write `u: float in -1.0..1.0` or `u: [float in -1.0..1.0; 3]`; "
                                       "for discrete choices declare a family: `act(k in 0..n)`"])
                    return None
                value_params.append(ir.ValueParam(p.name, t, p.span))
            local = Local("action_param", p.name, t, p.name_span, used=True)
            for c in (ctx, gctx):
                self.check_new_name(p.name, p.name_span, c) if c is ctx else None
                c.bind(local)
        guard = None
        if d.guard is not None:
            guard = self.expr(d.guard.cond, gctx)
            self.expect(guard, BOOL, "a guard", d.guard.cond.span)
        body = self.block(d.body, ctx)
        return ir.Action(d.name, tuple(index_params), tuple(value_params), guard,
                         bool(d.guard and d.guard.advisory), body, count, d.span)

    def check_action_kinds(self) -> None:
        decls = self.items(ast.ActionDecl)
        continuous = [d for d in decls if any(isinstance(p, ast.ValueParam) for p in d.params)]
        for d in continuous:
            if any(isinstance(p, ast.IndexParam) for p in d.params):
                self.report.error(d.name_span, f"`{d.name}` mixes an index and continuous values",
                                  hints=["the runtime has either discrete actions or one continuous action"])
            elif len(decls) > 1:
                other = next(x for x in decls if x is not d)
                self.report.error(d.name_span, f"the continuous action `{d.name}` cannot sit beside other actions",
                                  notes=[("another action", other.name_span)],
                                  hints=["an env has either discrete actions or exactly one continuous action; "
                                         "give it several values instead: `action move(dx: float in -1.0..1.0, "
                                         "dy: float in -1.0..1.0)`"])
            if d.guard is not None:
                self.report.error(d.guard.span, "a continuous action cannot have a guard: there is no mask to make",
                                  hints=["clamp the values in the effect instead"])

    def action_space(self, actions: list[ir.Action]) -> ir.ActionSpace:
        if actions and actions[0].value_params:
            lows, highs = [], []
            for p in actions[0].value_params:
                t = p.type
                n = 1
                if isinstance(t, ir.ArrayType):
                    n = self.static_value(t.size)
                    if not isinstance(n, int):
                        self.report.error(p.span, "the number of values of a continuous action must be known "
                                          "with the default params")
                        n = 0
                    t = t.elem
                lows += [t.lo] * n
                highs += [t.hi] * n
            return ir.ActionSpace("continuous", ir.Lit(len(lows), INT, actions[0].span), tuple(lows), tuple(highs))
        total: Optional[ir.Expr] = None
        for a in actions:
            total = a.count if total is None else self.fold(add(total, a.count, a.span))
        return ir.ActionSpace("discrete", total if total is not None else ir.Lit(0, INT, self.module.span), (), ())

    # ------------------------------------------------------------ episode

    def check_players(self) -> None:
        d = self.singles.get("players")
        if d is None:
            return
        value = self.expr(d.count, self.static_ctx("the number of players", "players"))
        n = value.value if isinstance(value, ir.Lit) else None
        if not isinstance(n, int) or isinstance(n, bool) or is_err(value.type):
            if not is_err(value.type):
                self.report.error(d.count.span, "the number of players must be an integer literal",
                                  hints=["write `players 2`"])
            return
        if not 1 <= n <= 16:
            self.report.error(d.count.span, f"{n} players is outside the supported 1..16")
            return
        self.players = n

    def reset_block(self) -> tuple:
        d = self.singles.get("reset")
        if d is None:
            return ()
        ctx = Context("effect", "the reset block", "reset")
        return self.block(d.body, ctx)

    def episode_cond(self, kind: str) -> Optional[ir.Expr]:
        d = self.singles.get(kind)
        if d is None:
            return None
        ctx = Context("pure", f"the `{kind}` condition", kind)
        cond = self.expr(d.cond, ctx)
        self.expect(cond, BOOL, f"the `{kind}` condition", d.cond.span)
        return cond

    def reward_spec(self) -> Optional[ir.RewardSpec]:
        d: Optional[ast.RewardDecl] = self.singles.get("reward")
        if d is None:
            return None
        ctx = Context("pure", "the reward", "reward")
        if d.player_var is not None:
            if self.players < 2:
                self.report.error(d.player_span, "`reward[p]` gives each player a reward, but this env has one player",
                                  hints=["declare `players 2`, or write `reward x`"])
                return None
            self.check_new_name(d.player_var, d.player_span, ctx)
            t = ir.IntType(ir.Lit(0, INT, d.player_span), ir.Lit(self.players, INT, d.player_span))
            ctx.bind(Local("loop", d.player_var, t, d.player_span, used=True))
        value = self.expr(d.value, ctx, FLOAT)
        self.expect(value, FLOAT, "the reward", d.value.span)
        return ir.RewardSpec(d.player_var, value, d.span)

    def check_required(self) -> None:
        top = Span(1, 1, 1, 2)
        if "env" not in self.singles:
            first = self.module.items[0].span if self.module.items else top
            self.report.error(_head(first), "the file does not start with `env NAME`",
                              hints=["add a first line such as `env SlidingPuzzle`"])
        elif self.module.items and self.module.items[0] is not self.singles["env"]:
            self.report.error(_head(self.singles["env"].span), "`env NAME` must be the first line of the file")
        if not self.items(ast.ActionDecl):
            self.report.error(self.end_span(), "this env has no actions",
                              hints=["declare at least one: `action noop { }`"])
        if "observe" not in self.singles:
            self.report.error(self.end_span(), "this env has no `observe` line, so a policy would see nothing",
                              hints=["add one, for example `observe onehot(board)`"])

    def end_span(self) -> Span:
        """Where to report something missing from the whole env: its `env` line."""
        env = self.singles.get("env")
        return env.name_span if env is not None else Span.point(1, 1)


def _names_in(node) -> Iterator[str]:
    """Every name an AST node mentions (over-approximated: locals too), without recursion."""
    stack = [node]
    while stack:
        n = stack.pop()
        if isinstance(n, (tuple, list)):
            stack.extend(n)
        elif isinstance(n, ast.Name):
            yield n.id
        elif dataclasses.is_dataclass(n) and not isinstance(n, (type, Span)):
            if isinstance(n, ast.Call):
                yield n.func
            stack.extend(getattr(n, f.name) for f in dataclasses.fields(n) if f.name != "span")


def _plain(e: ir.Expr) -> ir.Expr:
    """A bound expression without the literal-bounds decoration of int literals."""
    if isinstance(e, ir.Lit) and isinstance(e.type, ir.IntType):
        return ir.Lit(e.value, INT, e.span)
    return e


def _head(span: Span) -> Span:
    """The first line of a span, for pointing at a multi-line item."""
    if span.end_line == span.line:
        return span
    return Span(span.line, span.col, span.line, span.col + 1)


def _combine_hint(key: str) -> str:
    return {"reward": "add the terms in one `reward` line, or use `reward` statements in effects",
            "done": "join the conditions with `or`", "truncate": "join the conditions with `or`",
            "success": "join the conditions with `and` or `or`",
            "observe": "list every part in one `observe`, separated by commas",
            "render": "group several pictures in `render { ... }`"}.get(key, "keep only one")


def _always_returns(body: tuple) -> bool:
    if not body:
        return False
    last = body[-1]
    if isinstance(last, ir.Return):
        return True
    if isinstance(last, ir.If):
        return _always_returns(last.then) and _always_returns(last.else_)
    return False


def _BUILTIN_FUNCTION_NAMES():
    from .exprs import BUILTIN_FUNCTIONS
    return BUILTIN_FUNCTIONS
