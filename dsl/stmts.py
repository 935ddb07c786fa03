"""Checking statements (effects, function bodies, reset)."""

from __future__ import annotations

from typing import Optional

from . import ast, ir
from .checker_state import CheckerState
from .diagnostics import Span
from .exprs import article
from .scope import Context, Local, refused_name
from .types import BOOL, INT, describe, is_err, is_int, is_numeric, unbounded

_AUG = {"+": "add", "-": "sub", "*": "mul", "/": "div", "%": "mod"}


class StmtChecker(CheckerState):
    def block(self, block: ast.Block, ctx: Context) -> tuple:
        ctx.push()
        out = []
        for s in block.stmts:
            r = self.stmt(s, ctx)
            if r is not None:
                out.append(r)
        scope = ctx.pop()
        self.warn_unused(scope)
        return tuple(out)

    def warn_unused(self, scope: dict) -> None:
        for local in scope.values():
            if local.kind == "local" and not local.used and not local.name.startswith("_"):
                self.report.warning(local.span, f"the local `{local.name}` is never used",
                                    hints=["remove it, or start its name with `_`"])

    def stmt(self, s, ctx: Context):
        method = getattr(self, "_s_" + type(s).__name__)
        return method(s, ctx)

    # ------------------------------------------------------------ bindings

    def _s_Let(self, s: ast.Let, ctx: Context):
        declared = self.resolve_type(s.type, ctx) if s.type is not None else None
        value = self.expr(s.value, ctx, declared)
        if is_err(value.type):
            types = (value.type,) * len(s.target.names)
        elif s.target.is_tuple:
            if not isinstance(value.type, ir.TupleType) or len(value.type.items) != len(s.target.names):
                self.report.error(s.value.span, f"I cannot take {article(value.type)} apart into "
                                  f"{len(s.target.names)} names")
                types = (value.type,) * len(s.target.names)
            else:
                types = tuple(unbounded(t) for t in value.type.items)
            if declared is not None:
                self.expect(value, declared, "this value", s.value.span)
                if isinstance(declared, ir.TupleType):
                    types = declared.items
        else:
            if isinstance(value.type, ir.UnitType):
                self.report.error(s.value.span, "this call returns no value, so there is nothing to bind")
            if declared is not None:
                self.expect(value, declared, f"the value of `{s.target.names[0]}`", s.value.span)
                self.check_constant_fits(value, declared, s.value.span)
                types = (declared,)
            else:
                types = (unbounded(value.type),)
        for name, span, t in zip(s.target.names, s.target.spans, types):
            fine = self.check_new_name(name, span, ctx)
            ctx.bind(Local("local", name, t, span, used=not fine))
        return ir.Let(tuple(s.target.names), tuple(types), value, s.span)

    def check_new_name(self, name: str, span: Span, ctx: Context) -> bool:
        """Report a name that cannot be bound here; True when it is fine."""
        before = len(self.report.diagnostics)
        self._check_new_name(name, span, ctx)
        return len(self.report.diagnostics) == before

    def _check_new_name(self, name: str, span: Span, ctx: Context) -> None:
        refused = refused_name(name)
        if refused is not None:
            self.report.error(span, refused[0], hints=refused[1])
        elif name in ctx.scopes[-1]:
            self.report.error(span, f"`{name}` is already defined in this block",
                              notes=[("first defined here", ctx.scopes[-1][name].span)],
                              hints=["assign to it with `=` instead of `let`"])
        elif self.globals.get(name) is not None and self.globals[name].kind not in ("action",):
            sym = self.globals[name]
            self.report.error(span, f"`{name}` is already {_kind_phrase(sym.kind)}; a local cannot hide it",
                              notes=[("declared here", sym.span)], hints=["pick another name"])

    # ------------------------------------------------------------ assignment

    def place(self, lv: ast.LValue, ctx: Context) -> Optional[ir.Place]:
        local = ctx.lookup(lv.name)
        if local is not None:
            if local.kind in ("loop", "action_param", "sym_var"):
                what = {"loop": "a loop variable", "action_param": "an action's index",
                        "sym_var": "a symmetry variable"}[local.kind]
                self.report.error(lv.name_span, f"`{lv.name}` is {what} and cannot be changed",
                                  hints=["copy it into a local: `let x = ...`"])
                return None
            local.used = True
            kind, root_type = local.kind, local.type
        else:
            sym = self.resolve_global(lv.name, lv.name_span)
            if sym is None:
                if lv.name == "player":
                    if ctx.mode != "effect":
                        self.report.error(lv.name_span, f"{ctx.what} cannot change whose turn it is")
                        return None
                    self.effects_of(ctx.owner).writes.setdefault("player", lv.name_span)
                    kind, root_type = "builtin", ir.IntType(ir.Lit(0, INT, lv.span), ir.Lit(self.players, INT, lv.span))
                elif lv.name in ("difficulty", "players", "steps", "num_actions", "pi"):
                    self.report.error(lv.name_span, f"`{lv.name}` is built in and read-only")
                    return None
                else:
                    self.report.error(lv.name_span, f"I cannot find a name `{lv.name}` to assign to", "not defined",
                                      self.did_you_mean(lv.name, lambda: self.visible_names(ctx)) or
                                      ["declare a local with `let`, or state with `state`"])
                    return None
            elif sym.kind != "state":
                reason = {"param": "params are fixed for an env instance",
                          "const": "consts never change",
                          "view": "a top-level `let` is a view computed from the state",
                          "fn": "it is a function", "action": "it is an action",
                          "enum": "it is an enum", "variant": "it is an enum variant"}[sym.kind]
                self.report.error(lv.name_span, f"I cannot assign to {_kind_phrase(sym.kind)} `{lv.name}`: {reason}",
                                  "not assignable", ["declare it with `state` if it must change"]
                                  if sym.kind in ("param", "const", "view") else [])
                return None
            else:
                if ctx.mode != "effect":
                    self.report.error(lv.name_span, f"{ctx.what} cannot change the state", "state changed here",
                                      ["guards, views and episode conditions only read the state"])
                    return None
                self.effects_of(ctx.owner).writes.setdefault(lv.name, lv.name_span)
                kind, root_type = "state", sym.type
                if root_type is None:
                    return None
        t = root_type
        indices = []
        for idx in lv.indices:
            i = self.expr(idx, ctx)
            if is_err(t):
                continue
            if not isinstance(t, ir.ArrayType):
                self.report.error(lv.span, f"`{lv.name}` has too many indices: {describe(t)} is not an array")
                return None
            if not is_err(i.type) and not is_int(i.type):
                self.report.error(idx.span, f"an index must be an int, but this is {article(i.type)}")
                return None
            self.check_constant_index(i, t.size, idx.span)
            indices.append(i)
            t = t.elem
        if is_err(t) or is_err(root_type):
            return None
        return ir.Place(kind, lv.name, tuple(indices), t, root_type, lv.span)

    def place_and_value(self, s, ctx: Context):
        """The target place and the checked value of an assignment (None after an error).

        Reads of the target inside its own new value do not count as reads of the state
        (for the dead-state warning)."""
        place = self.place(s.target, ctx)
        previous = ctx.assigning
        ctx.assigning = s.target.name
        value = self.expr(s.value, ctx, place.type if place else None)
        ctx.assigning = previous
        if place is None or is_err(value.type):
            return None, None
        return place, value

    def _s_Assign(self, s: ast.Assign, ctx: Context):
        place, value = self.place_and_value(s, ctx)
        if place is None:
            return None
        if not self.expect(value, place.type, f"the value assigned to `{s.target.name}`", s.value.span):
            return None
        self.check_constant_fits(value, place.type, s.value.span)
        return ir.Assign(place, value, s.span)

    def _s_AugAssign(self, s: ast.AugAssign, ctx: Context):
        place, value = self.place_and_value(s, ctx)
        if place is None:
            return None
        if not is_numeric(place.type):
            self.report.error(s.op_span, f"`{s.op}=` needs a number, but `{s.target.name}` is {article(place.type)}")
            return None
        if not self.expect(value, place.type, f"the right side of `{s.op}=`", s.value.span):
            return None
        if s.op in ("/", "%") and isinstance(value, ir.Lit) and value.value == 0:
            self.report.error(s.value.span, "division by zero")
            return None
        return ir.AugAssign(place, _AUG[s.op], value, s.span)

    def _s_TupleAssign(self, s: ast.TupleAssign, ctx: Context):
        places = [self.place(t, ctx) for t in s.targets]
        value = self.expr(s.value, ctx)
        if any(p is None for p in places) or is_err(value.type):
            return None
        # Int literals become floats where a float place takes them, as in `f = -3`.
        value = self.coerce(value, ir.TupleType(tuple(p.type for p in places)))
        if not isinstance(value.type, ir.TupleType) or len(value.type.items) != len(places):
            self.report.error(s.value.span, f"I cannot assign {article(value.type)} to {len(places)} places",
                              hints=["the right side must be a tuple of the same length"])
            return None
        for p, t, lv in zip(places, value.type.items, s.targets):
            self.expect(ir.Lit(0, t, lv.span), p.type, f"the value for `{lv.name}`", s.value.span)
        return ir.TupleAssign(tuple(places), value, s.span)

    def check_constant_fits(self, value: ir.Expr, target, span: Span) -> None:
        """A value known statically must lie in the target's declared range."""
        if isinstance(target, ir.IntType) and target.bounded:
            self.check_value_fits(self.static_value(value), target, span)

    def check_value_fits(self, v, target, span: Span) -> None:
        if not isinstance(target, ir.IntType) or not target.bounded:
            return
        lo, hi = self.static_value(target.lo), self.static_value(target.hi)
        if not all(isinstance(x, int) and not isinstance(x, bool) for x in (v, lo, hi)):
            return
        if not lo <= v < hi:
            self.report.error(span, f"{v} is outside the declared range {lo}..{hi}", "out of range",
                              [f"the range allows {lo} to {hi - 1}" if hi > lo else "the range is empty"])

    # ------------------------------------------------------------ control flow

    def _s_If(self, s: ast.If, ctx: Context):
        cond = self.expr(s.cond, ctx)
        self.expect(cond, BOOL, "the condition of `if`", s.cond.span)
        then = self.block(s.then, ctx)
        if s.else_ is None:
            else_ = ()
        elif isinstance(s.else_, ast.If):
            inner = self._s_If(s.else_, ctx)
            else_ = (inner,) if inner is not None else ()
        else:
            else_ = self.block(s.else_, ctx)
        return ir.If(cond, then, else_, s.span)

    def _s_For(self, s: ast.For, ctx: Context):
        ctx.push()
        clauses = self.clauses([ast.CompFor(s.target, s.iterable, s.span)], ctx)
        if clauses is None:
            ctx.pop()
            return None
        ctx.loop_depth += 1
        body = self.block(s.body, ctx)
        ctx.loop_depth -= 1
        ctx.pop()
        return ir.For(clauses[0], body, s.span)

    def _s_While(self, s: ast.While, ctx: Context):
        cond = self.expr(s.cond, ctx)
        self.expect(cond, BOOL, "the condition of `while`", s.cond.span)
        limit = self.expr(s.limit, ctx)
        self.expect(limit, INT, "the `limit` of a `while` loop", s.limit.span)
        ctx.loop_depth += 1
        body = self.block(s.body, ctx)
        ctx.loop_depth -= 1
        return ir.While(cond, limit, body, s.span)

    def _s_Repeat(self, s: ast.Repeat, ctx: Context):
        count = self.expr(s.count, ctx)
        self.expect(count, INT, "the count of `repeat`", s.count.span)
        ctx.loop_depth += 1
        body = self.block(s.body, ctx)
        ctx.loop_depth -= 1
        return ir.Repeat(count, body, s.span)

    def _s_Return(self, s: ast.Return, ctx: Context):
        if not ctx.in_fn:
            if s.value is not None:
                self.report.error(s.span, f"{ctx.what} cannot return a value",
                                  hints=["a plain `return` ends the effect early"])
                return None
            return ir.Return(None, s.span)
        if s.value is None:
            if not isinstance(ctx.ret, ir.UnitType):
                self.report.error(s.span, f"this function must return {article(ctx.ret)}")
            return ir.Return(None, s.span)
        value = self.expr(s.value, ctx, ctx.ret)
        if isinstance(ctx.ret, ir.UnitType):
            self.report.error(s.value.span, "this function declares no return type, so it cannot return a value",
                              hints=[f"declare one: `-> {describe(value.type) if not is_err(value.type) else 'int'}`"])
            return None
        self.expect(value, ctx.ret, "the returned value", s.value.span)
        self.check_constant_fits(value, ctx.ret, s.value.span)
        return ir.Return(value, s.span)

    def _s_Break(self, s, ctx: Context):
        if ctx.loop_depth == 0:
            self.report.error(s.span, "`break` outside of a loop")
            return None
        return ir.Break(s.span)

    def _s_Continue(self, s, ctx: Context):
        if ctx.loop_depth == 0:
            self.report.error(s.span, "`continue` outside of a loop")
            return None
        return ir.Continue(s.span)

    def _s_RewardStmt(self, s: ast.RewardStmt, ctx: Context):
        if not ctx.allow_reward:
            self.report.error(s.span, f"`reward` cannot be given in {ctx.what}",
                              hints=["rewards are given by actions' effects, the functions they call, "
                                     "and the top-level `reward` line"])
            return None
        player = None
        if s.player is not None:
            if self.players < 2:
                self.report.error(s.player.span, "`reward[p]` names a player, but this env has one player",
                                  hints=["declare `players 2` for a multi-player game, or write `reward x`"])
                return None
            player = self.expr(s.player, ctx)
            self.expect(player, INT, "the player in `reward[p]`", s.player.span)
        from .types import FLOAT
        value = self.expr(s.value, ctx, FLOAT)
        self.expect(value, FLOAT, "a reward", s.value.span)
        effects = self.effects_of(ctx.owner)
        effects.reward = effects.reward or s.span
        return ir.Reward(player, value, s.span)

    def _s_CallStmt(self, s: ast.CallStmt, ctx: Context):
        call = s.call
        # The built-in statements; a value of the same name does not hide them: functions and
        # values have separate names.
        if call.func == "next_player":
            if call.args or call.comprehension:
                self.report.error(call.span, "`next_player()` takes no arguments")
                return None
            if ctx.mode != "effect":
                self.report.error(call.span, f"{ctx.what} cannot change whose turn it is")
                return None
            if self.players < 2:
                self.report.error(call.span, "`next_player()` needs a game with `players 2` or more")
                return None
            self.effects_of(ctx.owner).writes.setdefault("player", call.span)
            return ir.NextPlayer(s.span)
        if call.func == "random_action":
            if call.args:
                self.report.error(call.span, "`random_action()` takes no arguments")
                return None
            if not self.allow_random(ctx, call.func_span, "random_action"):
                return None
            return ir.RandomAction(s.span)
        if call.func == "shuffle":
            if len(call.args) != 1 or not isinstance(call.args[0], (ast.Name, ast.Index)):
                self.report.error(call.span, "`shuffle` takes one array to shuffle in place, like `shuffle(deck)`")
                return None
            if not self.allow_random(ctx, call.func_span, "shuffle"):
                return None
            lvalue = _as_lvalue(call.args[0])
            if lvalue is None:
                self.report.error(call.args[0].span, "`shuffle` needs a state array or a local array")
                return None
            place = self.place(lvalue, ctx)
            if place is None:
                return None
            if not isinstance(place.type, ir.ArrayType):
                self.report.error(call.args[0].span, f"`shuffle` needs an array, but this is {article(place.type)}")
                return None
            return ir.Shuffle(place, s.span)
        value = self.call(call, ctx, None, as_statement=True)
        if is_err(value.type):
            return None
        if isinstance(value, ir.Call):
            return ir.ExprStmt(value, s.span)
        if isinstance(value, ir.BuiltinCall) and value.name == "act":
            return ir.ExprStmt(value, s.span)
        self.report.warning(s.span, "this call's value is not used, and it has no effect",
                            hints=["bind it with `let`, or remove it"])
        return None


def _as_lvalue(e: ast.Expr) -> Optional[ast.LValue]:
    indices = []
    while isinstance(e, ast.Index):
        indices.append(e.index)
        e = e.base
    if not isinstance(e, ast.Name):
        return None
    return ast.LValue(e.id, e.span, tuple(reversed(indices)), e.span)


def _kind_phrase(kind: str) -> str:
    return {"param": "a param", "const": "a const", "state": "a state variable", "view": "a view",
            "fn": "a function", "action": "an action", "enum": "an enum",
            "variant": "an enum variant"}.get(kind, kind)


kind_phrase = _kind_phrase
