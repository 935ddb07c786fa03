"""The typed IR: the contract between the checker and code generation.

Everything here is resolved and checked: every name is bound to what it means (`Ref.kind`),
every expression carries its `Type` and the `Span` of the `.twl` text it came from, and
sizes are expressions over params and consts only. Codegen consumes nothing else.

All nodes are small frozen dataclasses. `to_data` turns any node into plain JSON data
(used by `twisterl check --dump-ir` and the IR snapshot tests).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, Optional, Union

from .diagnostics import Span

# ---------------------------------------------------------------- types


@dataclass(frozen=True)
class BoolType:
    def __str__(self) -> str:
        return "bool"


@dataclass(frozen=True)
class IntType:
    """A 64-bit int; `lo..hi` (hi exclusive) when bounded. Bounds are IR expressions."""

    lo: Optional["Expr"] = None
    hi: Optional["Expr"] = None

    @property
    def bounded(self) -> bool:
        return self.lo is not None and self.hi is not None

    def __str__(self) -> str:
        if self.bounded:
            return f"int in {show(self.lo)}..{show(self.hi)}"
        return "int"


@dataclass(frozen=True)
class FloatType:
    """An f64; `lo..hi` (closed) only on continuous action values."""

    lo: Optional["Expr"] = None
    hi: Optional["Expr"] = None

    def __str__(self) -> str:
        if self.lo is not None and self.hi is not None:
            return f"float in {show(self.lo)}..{show(self.hi)}"
        return "float"


@dataclass(frozen=True)
class EnumType:
    name: str
    variants: tuple[str, ...]

    def __str__(self) -> str:
        return self.name


@dataclass(frozen=True)
class ArrayType:
    elem: "Type"
    size: "Expr"

    def __str__(self) -> str:
        return f"[{self.elem}; {show(self.size)}]"


@dataclass(frozen=True)
class TupleType:
    items: tuple["Type", ...]

    def __str__(self) -> str:
        return "(" + ", ".join(str(t) for t in self.items) + ")"


@dataclass(frozen=True)
class StrType:
    def __str__(self) -> str:
        return "string"


@dataclass(frozen=True)
class UnitType:
    def __str__(self) -> str:
        return "nothing"


Type = Union[BoolType, IntType, FloatType, EnumType, ArrayType, TupleType, StrType, UnitType]

# ---------------------------------------------------------------- expressions


@dataclass(frozen=True)
class Lit:
    """A literal. Enum literals hold the variant's number; strings only appear in render."""

    value: Union[bool, int, float, str]
    type: Type
    span: Span


@dataclass(frozen=True)
class Ref:
    """A name. `kind` says what it is bound to:

    param, const, state, view, local, loop (read-only loop/comprehension variable),
    fn_param, action_param, builtin (difficulty, player, players, steps, num_actions, pi).
    """

    kind: str
    name: str
    type: Type
    span: Span


@dataclass(frozen=True)
class Index:
    """`base[index]`; bounds-checked at run time against the base's size."""

    base: "Expr"
    index: "Expr"
    type: Type
    span: Span


@dataclass(frozen=True)
class TupleGet:
    base: "Expr"
    position: int
    type: Type
    span: Span


@dataclass(frozen=True)
class Unary:
    op: str  # "neg" or "not"
    operand: "Expr"
    type: Type
    span: Span


@dataclass(frozen=True)
class Binary:
    """Arithmetic or logic. `op` is one of add sub mul div mod pow and or.

    `div` on ints is floor division; `mod` is floored modulo for ints and floats;
    `and`/`or` short-circuit.
    """

    op: str
    left: "Expr"
    right: "Expr"
    type: Type
    span: Span


@dataclass(frozen=True)
class Compare:
    """A comparison chain; ops are eq ne lt le gt ge. Each operand is evaluated once."""

    operands: tuple["Expr", ...]
    ops: tuple[str, ...]
    type: Type
    span: Span


@dataclass(frozen=True)
class Cond:
    cond: "Expr"
    then: "Expr"
    else_: "Expr"
    type: Type
    span: Span


@dataclass(frozen=True)
class Call:
    """A call of a user function."""

    fn: str
    args: tuple["Expr", ...]
    type: Type
    span: Span


@dataclass(frozen=True)
class BuiltinCall:
    """A built-in function: math, conversions, sizes, random draws, `act`."""

    name: str
    args: tuple["Expr", ...]
    type: Type
    span: Span


@dataclass(frozen=True)
class RangeIter:
    lo: "Expr"
    hi: "Expr"  # exclusive
    span: Span


@dataclass(frozen=True)
class ArrayIter:
    array: "Expr"
    span: Span


Iter = Union[RangeIter, ArrayIter]


@dataclass(frozen=True)
class Clause:
    """`for names in iter`: one name, or several for a tuple target."""

    names: tuple[str, ...]
    types: tuple[Type, ...]
    iter: Iter
    span: Span


@dataclass(frozen=True)
class Aggregate:
    """all any sum count min max choice over a comprehension."""

    kind: str
    element: "Expr"
    clauses: tuple[Clause, ...]
    where: Optional["Expr"]
    type: Type
    span: Span


@dataclass(frozen=True)
class ArrayLit:
    items: tuple["Expr", ...]
    type: Type
    span: Span


@dataclass(frozen=True)
class ArrayRepeat:
    value: "Expr"
    count: "Expr"
    type: Type
    span: Span


@dataclass(frozen=True)
class ArrayComp:
    """`[element for ... where ...]`; the size is `type.size` (filters are not allowed)."""

    element: "Expr"
    clauses: tuple[Clause, ...]
    type: Type
    span: Span


@dataclass(frozen=True)
class TupleLit:
    items: tuple["Expr", ...]
    type: Type
    span: Span


@dataclass(frozen=True)
class SeenBy:
    """Player-coded values 1..players relabelled so that `player` sees itself as 1."""

    value: "Expr"
    player: "Expr"
    type: Type
    span: Span


Expr = Union[Lit, Ref, Index, TupleGet, Unary, Binary, Compare, Cond, Call, BuiltinCall,
             Aggregate, ArrayLit, ArrayRepeat, ArrayComp, TupleLit, SeenBy]

# ---------------------------------------------------------------- statements


@dataclass(frozen=True)
class Place:
    """An assignable location: a state variable, a local, or an element of one."""

    kind: str  # state, local, fn_param, builtin (player)
    name: str
    indices: tuple[Expr, ...]
    type: Type  # the type of the element assigned
    root_type: Type
    span: Span


@dataclass(frozen=True)
class Let:
    names: tuple[str, ...]
    types: tuple[Type, ...]
    value: Expr
    span: Span


@dataclass(frozen=True)
class Assign:
    target: Place
    value: Expr
    span: Span


@dataclass(frozen=True)
class AugAssign:
    target: Place
    op: str  # add sub mul div mod
    value: Expr
    span: Span


@dataclass(frozen=True)
class TupleAssign:
    targets: tuple[Place, ...]
    value: Expr
    span: Span


@dataclass(frozen=True)
class If:
    cond: Expr
    then: tuple["Stmt", ...]
    else_: tuple["Stmt", ...]
    span: Span


@dataclass(frozen=True)
class For:
    clause: Clause
    body: tuple["Stmt", ...]
    span: Span


@dataclass(frozen=True)
class While:
    cond: Expr
    limit: Expr
    body: tuple["Stmt", ...]
    span: Span


@dataclass(frozen=True)
class Repeat:
    count: Expr
    body: tuple["Stmt", ...]
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
class Reward:
    """Add `value` to this step's reward of `player` (None: the acting player)."""

    player: Optional[Expr]
    value: Expr
    span: Span


@dataclass(frozen=True)
class ExprStmt:
    """A call whose value, if any, is discarded."""

    call: Union[Call, BuiltinCall]
    span: Span


@dataclass(frozen=True)
class Shuffle:
    target: Place
    span: Span


@dataclass(frozen=True)
class NextPlayer:
    span: Span


@dataclass(frozen=True)
class RandomAction:
    span: Span


Stmt = Union[Let, Assign, AugAssign, TupleAssign, If, For, While, Repeat, Return, Break,
             Continue, Reward, ExprStmt, Shuffle, NextPlayer, RandomAction]

# ---------------------------------------------------------------- declarations


@dataclass(frozen=True)
class Param:
    name: str
    type: Type  # IntType/FloatType bounds are the allowed override range
    default: Union[bool, int, float]
    span: Span


@dataclass(frozen=True)
class Const:
    name: str
    type: Type
    value: Expr
    span: Span


@dataclass(frozen=True)
class Enum:
    name: str
    variants: tuple[str, ...]
    span: Span


@dataclass(frozen=True)
class StateVar:
    name: str
    type: Type
    init: Optional[Expr]  # None: the type's zero value
    span: Span


@dataclass(frozen=True)
class IndexParam:
    name: str
    lo: Expr
    hi: Expr  # exclusive
    span: Span


@dataclass(frozen=True)
class ValueParam:
    name: str
    type: Type  # FloatType with bounds, or ArrayType of it
    span: Span


@dataclass(frozen=True)
class Action:
    """One action, or a family numbered row-major over its index params."""

    name: str
    index_params: tuple[IndexParam, ...]
    value_params: tuple[ValueParam, ...]
    guard: Optional[Expr]
    advisory: bool
    body: tuple[Stmt, ...]
    count: Expr  # how many discrete actions this declaration makes (1 for continuous)
    span: Span


@dataclass(frozen=True)
class FnParam:
    name: str
    type: Type
    span: Span


@dataclass(frozen=True)
class Function:
    name: str
    params: tuple[FnParam, ...]
    ret: Type
    body: tuple[Stmt, ...]
    writes_state: bool  # changes state, directly or through calls
    uses_random: bool
    gives_reward: bool
    span: Span

    @property
    def pure(self) -> bool:
        return not (self.writes_state or self.uses_random or self.gives_reward)


@dataclass(frozen=True)
class View:
    name: str
    type: Type
    value: Expr
    span: Span


@dataclass(frozen=True)
class RewardSpec:
    """The reward expression; `player_var` is bound per player in `reward[p]` form."""

    player_var: Optional[str]
    value: Expr
    span: Span


@dataclass(frozen=True)
class ObsPart:
    """One observation part.

    encoding: onehot (cell-major: offset + cell * width + value - lo), bool (one feature per
    cell, on when true), dense (floats), planes (channels-first one-hot or value planes).
    `cells` is how many scalars the part has, `width` the one-hot width per cell (1 for
    bool/dense), `size` = cells * width features.
    """

    encoding: str
    value: Expr
    lo: Optional[Expr]
    width: Expr
    cells: Expr
    size: Expr
    shape: tuple[Expr, ...]
    span: Span


@dataclass(frozen=True)
class Observation:
    """kind: sparse (indices of ones), dense (float32 vector) or planes (C x H x W)."""

    kind: str
    parts: tuple[ObsPart, ...]
    size: Expr
    shape: tuple[Expr, ...]
    span: Span


@dataclass(frozen=True)
class CellMap:
    """`array[i][j] (= v) -> array[f(i, j)] (= g(v))` in a symmetry."""

    array: str
    array_kind: str  # state or view
    index_vars: tuple[str, ...]
    targets: tuple[Expr, ...]
    value_var: Optional[str]
    value: Optional[Expr]
    span: Span


@dataclass(frozen=True)
class ScalarMap:
    """`x -> f(x)` in a symmetry: relabels a scalar state value."""

    name: str
    value: Expr
    span: Span


@dataclass(frozen=True)
class ActionMap:
    """`drop(c) -> drop(cols - 1 - c)` or `left -> up` in a symmetry."""

    source: str
    index_vars: tuple[str, ...]
    target: str
    targets: tuple[Expr, ...]
    span: Span


@dataclass(frozen=True)
class Symmetry:
    name: str
    involution: bool
    cells: tuple[CellMap, ...]
    scalars: tuple[ScalarMap, ...]
    actions: tuple[ActionMap, ...]
    span: Span


@dataclass(frozen=True)
class Glyph:
    key: Expr
    glyph: Expr
    span: Span


@dataclass(frozen=True)
class RenderMark:
    row: Expr
    col: Expr
    glyph: Expr
    span: Span


@dataclass(frozen=True)
class RenderGrid:
    array: Expr  # 2-D, or 1-D with `width`
    width: Optional[Expr]
    glyphs: tuple[Glyph, ...]
    marks: tuple[RenderMark, ...]
    span: Span


@dataclass(frozen=True)
class Interp:
    value: Expr
    format: str  # "" or a format spec such as ".3f"
    span: Span


@dataclass(frozen=True)
class RenderLine:
    segments: tuple[Union[str, Interp], ...]
    span: Span


RenderItem = Union[RenderGrid, RenderLine]


@dataclass(frozen=True)
class ActionSpace:
    """discrete: `n` actions; continuous: a Box of `dims` floats with per-dim bounds."""

    kind: str
    n: Expr
    lows: tuple[Expr, ...]
    highs: tuple[Expr, ...]


@dataclass(frozen=True)
class Env:
    """A checked environment: everything codegen needs."""

    name: str
    path: str
    params: tuple[Param, ...]
    consts: tuple[Const, ...]  # in dependency order
    enums: tuple[Enum, ...]
    state: tuple[StateVar, ...]
    players: int
    actions: tuple[Action, ...]
    action_space: ActionSpace
    functions: tuple[Function, ...]
    views: tuple[View, ...]
    reset: tuple[Stmt, ...]
    reward: Optional[RewardSpec]
    success: Optional[Expr]
    done: Optional[Expr]
    truncate: Optional[Expr]
    observation: Observation
    symmetries: tuple[Symmetry, ...]
    render: tuple[RenderItem, ...]
    span: Span


# ---------------------------------------------------------------- printing


_OP_SIGNS = {"add": "+", "sub": "-", "mul": "*", "div": "/", "mod": "%", "pow": "**",
             "and": "and", "or": "or", "eq": "==", "ne": "!=", "lt": "<", "le": "<=",
             "gt": ">", "ge": ">="}


def show(e: Optional[Expr]) -> str:
    """A short source-like rendering of an IR expression, for messages and types."""
    if e is None:
        return "?"
    if isinstance(e, Lit):
        if isinstance(e.type, EnumType):
            return e.type.variants[int(e.value)]
        if isinstance(e.value, bool):
            return "true" if e.value else "false"
        if isinstance(e.value, str):
            return repr(e.value)
        return repr(e.value)
    if isinstance(e, Ref):
        return e.name
    if isinstance(e, Binary):
        return f"{_wrap(e.left)} {_OP_SIGNS[e.op]} {_wrap(e.right)}"
    if isinstance(e, Unary):
        return ("-" if e.op == "neg" else "not ") + _wrap(e.operand)
    if isinstance(e, (Call, BuiltinCall)):
        name = e.fn if isinstance(e, Call) else e.name
        return f"{name}(" + ", ".join(show(a) for a in e.args) + ")"
    if isinstance(e, Index):
        return f"{show(e.base)}[{show(e.index)}]"
    return type(e).__name__.lower()


def _wrap(e: Expr) -> str:
    s = show(e)
    return f"({s})" if isinstance(e, (Binary, Cond)) else s


def to_data(node: Any) -> Any:
    """Plain, deterministic JSON data for any IR node (node class in `"node"`)."""
    if dataclasses.is_dataclass(node) and not isinstance(node, type):
        out: dict[str, Any] = {"node": type(node).__name__}
        for f in dataclasses.fields(node):
            value = getattr(node, f.name)
            if isinstance(value, Span):
                out[f.name] = f"{value.line}:{value.col}-{value.end_line}:{value.end_col}"
            else:
                out[f.name] = to_data(value)
        return out
    if isinstance(node, (tuple, list)):
        return [to_data(x) for x in node]
    if isinstance(node, float):
        if math.isinf(node) or math.isnan(node):
            return repr(node)
        return node
    return node
