"""The state every part of the checker shares, declared (and typed) in one place.

Each concern's checker (`ExprChecker`, `StmtChecker`, ...) derives from `CheckerState`,
so what it reads and writes of the shared state is visible here, not only in the
assembled `Checker`'s constructor.
"""

from __future__ import annotations

from typing import Any, Optional

from . import ast, ir
from .consteval import SPARE_STEPS, STEP_LIMIT, Budget, Evaluator
from .diagnostics import Reporter, Source, Span
from .scope import Effects, Symbol

MAX_SUGGESTIONS = 20  # unknown names given a did-you-mean


class CheckerState:
    """The module being checked, the diagnostics so far, the symbols and their IR, and the
    constant evaluators (with their step budgets)."""

    def __init__(self, module: ast.Module, source: Source):
        self.module = module
        self.source = source
        self.report = Reporter()
        self.globals: dict[str, Symbol] = {}
        self.variants: dict[str, list[ir.EnumType]] = {}
        self.singles: dict[str, Any] = {}
        self.symmetry_decls: list[ast.SymmetryDecl] = []
        self.players = 1
        self.levels: dict[str, list[str]] = {}
        self.effects: dict[str, Effects] = {}
        self.pure_calls: list[tuple[str, Span, str]] = []
        self.state_reads: set[str] = set()
        self.resolving: set[str] = set()
        self.suggestions_left = MAX_SUGGESTIONS
        self.outermost: tuple[str, Span] = ("env", Span.point(1, 1))  # the definition being checked
        self.const_ir: dict[str, ir.Const] = {}
        self.view_ir: dict[str, ir.View] = {}
        self.signatures: dict[str, Optional[tuple[tuple[ir.FnParam, ...], Any]]] = {}
        self.fn_ir: dict[str, ir.Function] = {}
        self.values: dict[str, Any] = {}  # params' defaults and consts' values
        # What the env computes when it is created (consts, sizes, bounds) must be computed
        # here too, within `budget`; the checks that only may evaluate something (constant
        # indices, symmetry sweeps, never-legal guards) share `spare` and give up quietly.
        self.budget, self.spare = Budget(STEP_LIMIT), Budget(SPARE_STEPS)
        self.evaluator = Evaluator(self.values, budget=self.budget)
        self.sweeper = Evaluator(self.values, budget=self.spare)
        self.eval_errors: set[tuple[Span, str]] = set()
        self.not_static_consts: list[tuple[ast.ConstDecl, str]] = []
        self.failed_consts: set[str] = set()
        self.observation_parts: Optional[list] = None  # the checked observation's parts, once known
        # Consts that depend on no param: their values are the same for every instance,
        # so sizes made of them fold to literals (fixed-size arrays in the generated code).
        self.fixed_values: dict[str, Any] = {}

