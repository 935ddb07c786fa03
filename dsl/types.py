"""Type helpers for the checker: compatibility, display, and small IR builders.

`ErrType` marks an expression that already produced an error; it is compatible with
everything so that one mistake yields one diagnostic, not a cascade.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from . import ir
from .diagnostics import Span


@dataclass(frozen=True)
class ErrType:
    def __str__(self) -> str:
        return "<error>"


BOOL = ir.BoolType()
INT = ir.IntType()
FLOAT = ir.FloatType()
STR = ir.StrType()
UNIT = ir.UnitType()
ERR = ErrType()


def is_err(t) -> bool:
    return isinstance(t, ErrType)


def is_int(t) -> bool:
    return isinstance(t, ir.IntType)


def is_float(t) -> bool:
    return isinstance(t, ir.FloatType)


def is_numeric(t) -> bool:
    return isinstance(t, (ir.IntType, ir.FloatType))


def is_scalar(t) -> bool:
    return isinstance(t, (ir.BoolType, ir.IntType, ir.FloatType, ir.EnumType))


def same_kind(a, b) -> bool:
    """Structural compatibility, ignoring int bounds and array sizes."""
    if is_err(a) or is_err(b):
        return True
    if isinstance(a, ir.IntType) and isinstance(b, ir.IntType):
        return True
    if isinstance(a, ir.FloatType) and isinstance(b, ir.FloatType):
        return True
    if isinstance(a, ir.EnumType) and isinstance(b, ir.EnumType):
        return a.name == b.name
    if isinstance(a, ir.ArrayType) and isinstance(b, ir.ArrayType):
        return same_kind(a.elem, b.elem)
    if isinstance(a, ir.TupleType) and isinstance(b, ir.TupleType):
        return len(a.items) == len(b.items) and all(same_kind(x, y) for x, y in zip(a.items, b.items))
    return type(a) is type(b)


def describe(t) -> str:
    """How a type reads in a message: `int`, `[int; 9]`, `an enum Cell`..."""
    if isinstance(t, ir.IntType):
        return "int"
    if isinstance(t, ir.FloatType):
        return "float"
    if isinstance(t, ir.ArrayType):
        return f"[{describe(t.elem)}; {ir.show(t.size)}]"
    if isinstance(t, ir.TupleType):
        return "(" + ", ".join(describe(x) for x in t.items) + ")"
    return str(t)


def array_dims(t) -> list:
    dims = []
    while isinstance(t, ir.ArrayType):
        dims.append(t.size)
        t = t.elem
    return dims


def scalar_of(t):
    while isinstance(t, ir.ArrayType):
        t = t.elem
    return t


def unbounded(t):
    """`t` without inferred int bounds: a local's type, since locals can change."""
    if isinstance(t, ir.IntType):
        return INT
    if isinstance(t, ir.ArrayType):
        return ir.ArrayType(unbounded(t.elem), t.size)
    if isinstance(t, ir.TupleType):
        return ir.TupleType(tuple(unbounded(x) for x in t.items))
    return t


def with_scalar(t, scalar):
    """`t` with its innermost scalar type replaced."""
    if isinstance(t, ir.ArrayType):
        return ir.ArrayType(with_scalar(t.elem, scalar), t.size)
    return scalar


# ---------------------------------------------------------------- tiny IR builders

def int_lit(v: int, span: Span) -> ir.Lit:
    return ir.Lit(v, ir.IntType(_raw(v, span), _raw(v + 1, span)), span)


def _raw(v: int, span: Span) -> ir.Lit:
    return ir.Lit(v, INT, span)


def lit_value(e) -> Optional[int]:
    if isinstance(e, ir.Lit) and isinstance(e.value, int) and not isinstance(e.value, bool):
        return e.value
    return None


def add(a: ir.Expr, b: ir.Expr, span: Span) -> ir.Expr:
    x, y = lit_value(a), lit_value(b)
    if x is not None and y is not None:
        return ir.Lit(x + y, INT, span)
    if y == 0:
        return a
    if x == 0:
        return b
    if y is not None and isinstance(a, ir.Binary) and a.op == "add" and lit_value(a.right) is not None:
        return add(a.left, ir.Lit(lit_value(a.right) + y, INT, span), span)
    return ir.Binary("add", a, b, INT, span)


def sub(a: ir.Expr, b: ir.Expr, span: Span) -> ir.Expr:
    x, y = lit_value(a), lit_value(b)
    if x is not None and y is not None:
        return ir.Lit(x - y, INT, span)
    if y == 0:
        return a
    if isinstance(a, ir.Binary) and a.op == "add" and lit_value(a.right) is not None and y is not None:
        return add(a.left, ir.Lit(lit_value(a.right) - y, INT, span), span)
    return ir.Binary("sub", a, b, INT, span)


def mul(a: ir.Expr, b: ir.Expr, span: Span) -> ir.Expr:
    x, y = lit_value(a), lit_value(b)
    if x is not None and y is not None:
        return ir.Lit(x * y, INT, span)
    if x == 1:
        return b
    if y == 1:
        return a
    return ir.Binary("mul", a, b, INT, span)


def minimum(a: ir.Expr, b: ir.Expr, span: Span) -> ir.Expr:
    x, y = lit_value(a), lit_value(b)
    if x is not None and y is not None:
        return ir.Lit(min(x, y), INT, span)
    if a == b:
        return a
    return ir.BuiltinCall("min", (a, b), INT, span)


def maximum(a: ir.Expr, b: ir.Expr, span: Span) -> ir.Expr:
    x, y = lit_value(a), lit_value(b)
    if x is not None and y is not None:
        return ir.Lit(max(x, y), INT, span)
    if a == b:
        return a
    return ir.BuiltinCall("max", (a, b), INT, span)


def same_expr(a: ir.Expr, b: ir.Expr) -> bool:
    """Structural equality of two IR expressions, ignoring spans."""
    return _strip(a) == _strip(b)


def _strip(e):
    import dataclasses
    if dataclasses.is_dataclass(e) and not isinstance(e, type):
        return (type(e).__name__,) + tuple(
            _strip(getattr(e, f.name)) for f in dataclasses.fields(e) if f.name != "span")
    if isinstance(e, tuple):
        return tuple(_strip(x) for x in e)
    return e
