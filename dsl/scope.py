"""Names in scope while checking: globals, locals and the context being checked."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

from .diagnostics import Span

# Words the grammar reserves; a declaration may not take one as its name.
RESERVED = frozenset("""
    if then else not and or true false let for in where while return break continue reward
    when advise map with as fn action state param const enum env observe symmetry render
    reset success done truncate players int float bool repeat
""".split())

# Names the language defines; a declaration may not shadow one.
BUILTIN_VALUES = frozenset(["difficulty", "player", "players", "steps", "num_actions", "pi"])


def refused_name(name: str) -> Optional[tuple[str, list[str]]]:
    """Why `name` cannot be declared (in any role), as a message and hints; None when it can."""
    if name.startswith("__"):
        return "names starting with `__` are reserved for generated code", ["drop the leading underscores"]
    if name in RESERVED:
        return f"`{name}` is a keyword and cannot be used as a name", ["pick another name"]
    if name in BUILTIN_VALUES:
        return f"`{name}` is built in and cannot be redefined", ["pick another name"]
    return None


@dataclass
class Symbol:
    """A global name: kind is param, const, state, view, fn, action, enum or variant."""

    kind: str
    name: str
    span: Span
    decl: Any = None
    type: Any = None


@dataclass
class Local:
    """A name bound in a body: kind is local, loop, fn_param, action_param or sym_var."""

    kind: str
    name: str
    type: Any
    span: Span
    used: bool = False


@dataclass
class Context:
    """What is being checked, which decides what an expression may do.

    mode: static (params and consts only), pure (may read state), effect (may change it).
    """

    mode: str
    what: str
    owner: str
    ret: Any = None
    in_fn: bool = False
    loop_depth: int = 0
    assigning: Optional[str] = None
    allow_reward: bool = False
    scopes: list[dict[str, Local]] = field(default_factory=lambda: [{}])

    def lookup(self, name: str) -> Optional[Local]:
        for scope in reversed(self.scopes):
            if name in scope:
                return scope[name]
        return None

    def bind(self, local: Local) -> None:
        self.scopes[-1][local.name] = local

    def push(self) -> None:
        self.scopes.append({})

    def pop(self) -> dict[str, Local]:
        return self.scopes.pop()

    def names(self) -> list[str]:
        return [n for s in self.scopes for n in s]


@dataclass
class Effects:
    """What one body does, directly; propagated through calls afterwards."""

    writes: dict[str, Span] = field(default_factory=dict)  # state name -> first write
    random: Optional[Span] = None
    reward: Optional[Span] = None
    calls: list[tuple[str, Span]] = field(default_factory=list)
    applies_actions: Optional[Span] = None  # random_action() or act()
