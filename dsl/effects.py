"""Whole-program checks: effects through calls, recursion, purity of guards and views,
and the warnings for dead state and actions that can never be taken."""

from __future__ import annotations

import dataclasses
import itertools
from typing import Iterator, Optional

from . import ast, ir
from .checker_state import CheckerState
from .consteval import EvalError, NotStatic
from .diagnostics import Span
from .scope import Effects


def walk(node) -> Iterator:
    """Every IR node under `node`, itself included."""
    stack = [node]
    while stack:
        n = stack.pop()
        if isinstance(n, (tuple, list)):
            stack.extend(n)
        elif dataclasses.is_dataclass(n) and not isinstance(n, (type, Span)):
            yield n
            for f in dataclasses.fields(n):
                if f.name not in ("type", "span", "root_type"):
                    stack.append(getattr(n, f.name))


class EffectChecker(CheckerState):
    def transitive(self, key: str) -> Effects:
        """Effects of `key` (fn:NAME, view:NAME, action:NAME...) including what it calls.

        Iterative, so that a long chain of calls cannot exhaust Python's stack; in a cycle
        (reported separately) a callee still being summed contributes what it has so far."""
        memo = self.__dict__.setdefault("_transitive", {})
        if key in memo:
            return memo[key]
        memo[key] = self._own_effects(key)
        stack = [(key, iter(self.effects.get(key, Effects()).calls))]
        while stack:
            node, callees = stack[-1]
            for callee, _span in callees:
                if callee not in memo:
                    memo[callee] = self._own_effects(callee)
                    stack.append((callee, iter(self.effects.get(callee, Effects()).calls)))
                    break
            else:
                stack.pop()
                total = memo[node]
                for callee, _span in self.effects.get(node, Effects()).calls:
                    sub = memo[callee]
                    for name, span in sub.writes.items():
                        total.writes.setdefault(name, span)
                    total.random = total.random or sub.random
                    total.reward = total.reward or sub.reward
                    total.applies_actions = total.applies_actions or sub.applies_actions
        return memo[key]

    def _own_effects(self, key: str) -> Effects:
        own = self.effects.get(key, Effects())
        return Effects(dict(own.writes), own.random, own.reward, list(own.calls), own.applies_actions)

    def check_effects(self) -> None:
        self.check_recursion()
        for fn, span, what, mode in self.pure_calls:
            eff = self.transitive("fn:" + fn)
            if mode == "static" and not (eff.writes or eff.random or eff.reward) and fn in self.fn_ir:
                memo = self.__dict__.setdefault("_dynamic_reads", {})
                if fn not in memo:
                    memo[fn] = self.dynamic_reads(self.fn_ir[fn])
                dynamic = memo[fn]
                if dynamic:
                    self.report.error(span, f"{what} must be known before the episode starts, but `{fn}` "
                                      f"reads `{dynamic}`, which changes during it",
                                      hints=["only functions of params, consts and their arguments can be used here"])
                    continue
            if eff.writes:
                name, where = next(iter(eff.writes.items()))
                self.report.error(span, f"{what} calls `{fn}`, which changes the state",
                                  "changes the state", notes=[(f"`{name}` is changed here", where)],
                                  hints=[f"{what} must only read the state; compute the value in a function "
                                         "that does not assign"])
            elif eff.random:
                self.report.error(span, f"{what} calls `{fn}`, which draws random numbers",
                                  notes=[("the random draw", eff.random)])
            elif eff.reward:
                self.report.error(span, f"{what} calls `{fn}`, which gives a reward",
                                  notes=[("the reward", eff.reward)])
        for d in self.items(ast.ActionDecl):
            eff = self.transitive("action:" + d.name)
            if eff.applies_actions:
                self.report.error(eff.applies_actions, "an action cannot apply actions: this would run actions "
                                  f"from inside the action `{d.name}`",
                                  notes=[("the action", d.name_span)],
                                  hints=["`random_action()` and `act(k)` belong in `reset`, for scrambles"])
        for fn_name, fn in list(self.fn_ir.items()):
            eff = self.transitive("fn:" + fn_name)
            self.fn_ir[fn_name] = dataclasses.replace(
                fn, writes_state=bool(eff.writes), uses_random=bool(eff.random or eff.applies_actions),
                gives_reward=bool(eff.reward))

    def check_recursion(self) -> None:
        graph: dict[str, list[tuple[str, Span]]] = {k: v.calls for k, v in self.effects.items()
                                                    if k.startswith(("fn:", "view:"))}
        color: dict[str, int] = {}
        reported: set[frozenset] = set()
        for start in sorted(graph):
            if color.get(start):
                continue
            # Iterative DFS keeping the path, to name the cycle.
            stack = [(start, iter(graph.get(start, ())))]
            path = [start]
            color[start] = 1
            while stack:
                node, edges = stack[-1]
                advanced = False
                for callee, span in edges:
                    if not callee.startswith(("fn:", "view:")):
                        continue
                    if color.get(callee) == 1:
                        cycle = path[path.index(callee):] + [callee]
                        key = frozenset(cycle)
                        if key not in reported:
                            reported.add(key)
                            names = " -> ".join(f"`{c.split(':', 1)[1]}`" for c in cycle)
                            self.report.error(span, "recursion is not allowed: " + names,
                                              "this call closes the cycle",
                                              ["every step must finish in a bounded number of operations; "
                                               "rewrite the recursion as a `for` or a bounded `while` loop"])
                        continue
                    if not color.get(callee):
                        color[callee] = 1
                        path.append(callee)
                        stack.append((callee, iter(graph.get(callee, ()))))
                        advanced = True
                        break
                if not advanced:
                    color[node] = 2
                    stack.pop()
                    path.pop()

    def reads_of(self, e) -> set[str]:
        """State variables and views an IR expression reads, through views and functions."""
        out: set[str] = set()
        seen_fns: set[str] = set()
        todo = [e]
        while todo:
            for n in walk(todo.pop()):
                if isinstance(n, ir.Ref) and n.kind in ("state", "view"):
                    if n.name not in out:
                        out.add(n.name)
                        if n.kind == "view" and n.name in self.view_ir:
                            todo.append(self.view_ir[n.name].value)
                elif isinstance(n, ir.Call) and n.fn not in seen_fns and n.fn in self.fn_ir:
                    seen_fns.add(n.fn)
                    todo.append(self.fn_ir[n.fn].body)
        return out

    def dynamic_reads(self, fn: ir.Function) -> Optional[str]:
        """The first state, view or per-episode built-in a function reads, through calls."""
        reads = self.reads_of(fn.body)
        if reads:
            return sorted(reads)[0]
        seen: set[str] = set()
        todo = [fn]
        while todo:
            f = todo.pop()
            for n in walk(f.body):
                if isinstance(n, ir.Ref) and n.kind == "builtin" and n.name in ("player", "steps", "difficulty"):
                    return n.name
                if isinstance(n, ir.Call) and n.fn not in seen and n.fn in self.fn_ir:
                    seen.add(n.fn)
                    todo.append(self.fn_ir[n.fn])
        return None

    def warn_dead_state(self) -> None:
        for d in self.items(ast.StateDecl):
            if d.name not in self.state_reads and self.globals.get(d.name) is not None \
                    and self.globals[d.name].decl is d:
                self.report.warning(d.name_span, f"the state `{d.name}` is never read, so it changes nothing",
                                    hints=["observe it, use it in a condition or reward, or remove it"])

    def warn_never_legal(self, actions: list) -> None:
        for a in actions:
            n = self.static_value(a.count)
            if isinstance(n, int) and n == 0:
                self.report.warning(a.span if a.span.line == a.span.end_line else Span.point(a.span.line, a.span.col),
                                    f"the action family `{a.name}` is empty with the default params")
                continue
            if a.guard is None or a.advisory:
                continue
            ranges = []
            for p in a.index_params:
                lo, hi = self.static_value(p.lo), self.static_value(p.hi)
                if not isinstance(lo, int) or not isinstance(hi, int) or hi - lo > 10_000:
                    break
                ranges.append(range(lo, hi))
            else:
                try:
                    legal = any(self.sweeper.eval(a.guard, dict(zip((p.name for p in a.index_params), combo)))
                                for combo in itertools.product(*ranges))
                except (NotStatic, EvalError, TypeError, IndexError, KeyError):
                    continue
                if not legal:
                    self.report.warning(a.guard.span, f"the action `{a.name}` can never be taken: its guard is "
                                        "always false", "always false",
                                        ["check the condition; a guard that never holds masks the action out"])
