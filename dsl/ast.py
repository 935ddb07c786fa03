"""The source AST: what the parser builds, before names or types are resolved.

Every node is a frozen dataclass carrying the `Span` of the text it came from.
The checker (`check.py`) turns this tree into the typed IR (`ir.py`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Union

from .diagnostics import Span

# ---------------------------------------------------------------- expressions


@dataclass(frozen=True)
class IntLit:
    value: int
    span: Span


@dataclass(frozen=True)
class FloatLit:
    value: float
    span: Span


@dataclass(frozen=True)
class BoolLit:
    value: bool
    span: Span


@dataclass(frozen=True)
class StrLit:
    value: str
    span: Span
    # Offset of the first character of `value` in the source line, for interpolation spans.
    content_line: int = 0
    content_col: int = 0


@dataclass(frozen=True)
class Name:
    id: str
    span: Span


@dataclass(frozen=True)
class Target:
    """A binding target: one name, or a tuple of names `(a, b)`."""

    names: tuple[str, ...]
    spans: tuple[Span, ...]
    is_tuple: bool
    span: Span


@dataclass(frozen=True)
class CompFor:
    target: Target
    iterable: "Expr"
    span: Span


@dataclass(frozen=True)
class Comprehension:
    """`element for x in it [for y in it2] [where cond]`."""

    element: "Expr"
    clauses: tuple[CompFor, ...]
    where: Optional["Expr"]
    span: Span


@dataclass(frozen=True)
class Call:
    func: str
    func_span: Span
    args: tuple["Expr", ...]
    comprehension: Optional[Comprehension]
    span: Span


@dataclass(frozen=True)
class Index:
    base: "Expr"
    index: "Expr"
    span: Span


@dataclass(frozen=True)
class Field:
    base: "Expr"
    name: str
    name_span: Span
    span: Span


@dataclass(frozen=True)
class Unary:
    op: str  # "-", "+", "not"
    operand: "Expr"
    span: Span


@dataclass(frozen=True)
class Binary:
    op: str  # + - * / % ** and or
    left: "Expr"
    right: "Expr"
    op_span: Span
    span: Span


@dataclass(frozen=True)
class Compare:
    """A comparison chain `a < b <= c`, evaluated like Python's."""

    operands: tuple["Expr", ...]
    ops: tuple[str, ...]
    op_spans: tuple[Span, ...]
    span: Span


@dataclass(frozen=True)
class IfExpr:
    cond: "Expr"
    then: "Expr"
    else_: "Expr"
    span: Span


@dataclass(frozen=True)
class TupleLit:
    items: tuple["Expr", ...]
    span: Span


@dataclass(frozen=True)
class ListLit:
    items: tuple["Expr", ...]
    span: Span


@dataclass(frozen=True)
class RepeatLit:
    """`[value; count]`: an array of `count` copies of `value`."""

    value: "Expr"
    count: "Expr"
    span: Span


@dataclass(frozen=True)
class ListComp:
    comprehension: Comprehension
    span: Span


@dataclass(frozen=True)
class DictLit:
    entries: tuple[tuple["Expr", "Expr"], ...]
    span: Span


@dataclass(frozen=True)
class MapLit:
    """A level drawn as text: `map \"\"\"...\"\"\" with { "#": WALL, ... }`."""

    text: StrLit
    legend: DictLit
    span: Span


@dataclass(frozen=True)
class Range:
    lo: "Expr"
    hi: "Expr"
    inclusive: bool
    span: Span


Expr = Union[
    IntLit, FloatLit, BoolLit, StrLit, Name, Call, Index, Field, Unary, Binary, Compare,
    IfExpr, TupleLit, ListLit, RepeatLit, ListComp, MapLit, Range,
]

# ---------------------------------------------------------------- types


@dataclass(frozen=True)
class TBool:
    span: Span


@dataclass(frozen=True)
class TInt:
    range: Optional[Range]
    span: Span


@dataclass(frozen=True)
class TFloat:
    range: Optional[Range]
    span: Span


@dataclass(frozen=True)
class TNamed:
    name: str
    span: Span


@dataclass(frozen=True)
class TArray:
    elem: "TypeExpr"
    size: Expr
    span: Span


@dataclass(frozen=True)
class TTuple:
    items: tuple["TypeExpr", ...]
    span: Span


TypeExpr = Union[TBool, TInt, TFloat, TNamed, TArray, TTuple]

# ---------------------------------------------------------------- statements


@dataclass(frozen=True)
class LValue:
    name: str
    name_span: Span
    indices: tuple[Expr, ...]
    span: Span


@dataclass(frozen=True)
class Block:
    stmts: tuple["Stmt", ...]
    span: Span


@dataclass(frozen=True)
class Let:
    target: Target
    type: Optional[TypeExpr]
    value: Expr
    span: Span


@dataclass(frozen=True)
class Assign:
    target: LValue
    value: Expr
    span: Span


@dataclass(frozen=True)
class TupleAssign:
    targets: tuple[LValue, ...]
    value: Expr
    span: Span


@dataclass(frozen=True)
class AugAssign:
    target: LValue
    op: str  # "+", "-", "*", "/", "%"
    value: Expr
    op_span: Span
    span: Span


@dataclass(frozen=True)
class CallStmt:
    call: Call
    span: Span


@dataclass(frozen=True)
class If:
    cond: Expr
    then: Block
    else_: Union[Block, "If", None]
    span: Span


@dataclass(frozen=True)
class For:
    target: Target
    iterable: Expr
    body: Block
    span: Span


@dataclass(frozen=True)
class While:
    cond: Expr
    limit: Expr
    body: Block
    span: Span


@dataclass(frozen=True)
class Repeat:
    count: Expr
    body: Block
    span: Span


@dataclass(frozen=True)
class Return:
    value: Optional[Expr]
    span: Span


@dataclass(frozen=True)
class Break:
    span: Span


@dataclass(frozen=True)
class Continue:
    span: Span


@dataclass(frozen=True)
class RewardStmt:
    """`reward x` (the acting player's reward) or `reward[p] x` inside an effect."""

    player: Optional[Expr]
    value: Expr
    span: Span


Stmt = Union[
    Let, Assign, TupleAssign, AugAssign, CallStmt, If, For, While, Repeat, Return, Break,
    Continue, RewardStmt,
]

# ---------------------------------------------------------------- top-level items


@dataclass(frozen=True)
class EnvDecl:
    name: str
    name_span: Span
    span: Span


@dataclass(frozen=True)
class ParamDecl:
    name: str
    name_span: Span
    type: Optional[TypeExpr]
    default: Expr
    span: Span


@dataclass(frozen=True)
class ConstDecl:
    name: str
    name_span: Span
    type: Optional[TypeExpr]
    value: Expr
    span: Span


@dataclass(frozen=True)
class EnumDecl:
    name: str
    name_span: Span
    variants: tuple[tuple[str, Span], ...]
    span: Span


@dataclass(frozen=True)
class StateDecl:
    name: str
    name_span: Span
    type: TypeExpr
    init: Optional[Expr]
    span: Span


@dataclass(frozen=True)
class PlayersDecl:
    count: Expr
    span: Span


@dataclass(frozen=True)
class IndexParam:
    """`c in 0..cols` in `action drop(c in 0..cols)`: a family of discrete actions."""

    name: str
    name_span: Span
    range: Range
    span: Span


@dataclass(frozen=True)
class ValueParam:
    """`u: float in -2.0..2.0` in `action torque(u: ...)`: a continuous action."""

    name: str
    name_span: Span
    type: TypeExpr
    span: Span


@dataclass(frozen=True)
class Guard:
    advisory: bool  # `advise` instead of `when`: reported in the mask, not enforced
    cond: Expr
    span: Span


@dataclass(frozen=True)
class ActionDecl:
    name: str
    name_span: Span
    params: tuple[Union[IndexParam, ValueParam], ...]
    guard: Optional[Guard]
    body: Block
    span: Span


@dataclass(frozen=True)
class FnParam:
    name: str
    name_span: Span
    type: TypeExpr
    span: Span


@dataclass(frozen=True)
class FnDecl:
    name: str
    name_span: Span
    params: tuple[FnParam, ...]
    ret: Optional[TypeExpr]
    body: Block
    span: Span


@dataclass(frozen=True)
class ResetDecl:
    body: Block
    span: Span


@dataclass(frozen=True)
class EpisodeDecl:
    """`success`, `done` or `truncate` followed by a bool expression."""

    kind: str
    cond: Expr
    span: Span


@dataclass(frozen=True)
class RewardDecl:
    """`reward x`, or `reward[p] x` with `p` bound to each player in turn."""

    player_var: Optional[str]
    player_span: Optional[Span]
    value: Expr
    span: Span


@dataclass(frozen=True)
class ViewDecl:
    """A top-level `let`: a named expression over the state, evaluated where used."""

    name: str
    name_span: Span
    type: Optional[TypeExpr]
    value: Expr
    span: Span


@dataclass(frozen=True)
class ObsPart:
    expr: Expr
    seen_by: Optional[Expr]
    span: Span


@dataclass(frozen=True)
class ObserveDecl:
    parts: tuple[ObsPart, ...]
    span: Span


@dataclass(frozen=True)
class SymSide:
    target: Expr
    value: Optional[Expr]
    span: Span


@dataclass(frozen=True)
class SymRule:
    lhs: SymSide
    arrow: str  # "->" or "<->"
    rhs: SymSide
    span: Span


@dataclass(frozen=True)
class SymmetryDecl:
    name: str
    name_span: Span
    rules: tuple[SymRule, ...]
    span: Span


@dataclass(frozen=True)
class Mark:
    pos: Expr
    glyph: Expr
    span: Span


@dataclass(frozen=True)
class RenderGrid:
    array: Expr
    width: Optional[Expr]
    glyphs: Optional[DictLit]
    marks: tuple[Mark, ...]
    span: Span


@dataclass(frozen=True)
class RenderLine:
    text: Expr
    span: Span


@dataclass(frozen=True)
class RenderDecl:
    items: tuple[Union[RenderGrid, RenderLine], ...]
    span: Span


Item = Union[
    EnvDecl, ParamDecl, ConstDecl, EnumDecl, StateDecl, PlayersDecl, ActionDecl, FnDecl,
    ResetDecl, EpisodeDecl, RewardDecl, ViewDecl, ObserveDecl, SymmetryDecl, RenderDecl,
]


@dataclass(frozen=True)
class Module:
    items: tuple[Item, ...]
    span: Span
