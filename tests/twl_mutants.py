"""Grammar-aware mutations of `.twl` files, for the fuzz tests and `bench/fuzz.py`.

Mutations work on tokens and top-level items, not bytes, so that most mutants still
parse and reach the checker's deeper stages: names swapped for other names of the file,
for keywords, built-ins, Rust keywords and generated-code names; declarations duplicated,
moved or renamed onto each other; literals swapped for extreme values; expressions nested;
statements and loops inserted into blocks. `mutate(text, rng)` takes any `random.Random`.
"""

from __future__ import annotations

import random
import re
from pathlib import Path

EXAMPLES = sorted(Path(__file__).resolve().parents[1].joinpath("examples").glob("*.twl"))

KEYWORDS = """if then else not and or true false let for in where while return break continue reward
    when advise map with as fn action state param const enum env observe symmetry render reset success
    done truncate players int float bool repeat limit seen by grid line mark""".split()
BUILTINS = """difficulty player players steps num_actions pi sin cos tan sqrt exp log floor ceil round
    uniform randint choice shuffle random_action act all any sum count min max next_player onehot planes
    abs clamp atan2 sign float int f32 len rows cols find""".split()
RUST_WORDS = """self Self crate super mod impl struct trait type match loop move mut ref static use pub
    unsafe async await dyn box yield macro fn_ ops at k s values params text j x v n Fault Ok Err Some
    None Vec i64 f64 usize main std core""".split()
ODD_NAMES = ["__x", "_", "_x", "a" * 300, "x1", "Ω"]

INTS = ["0", "1", "-1", "2", "3", "7", "64", "100", "4096", "100000", "100000000", "100000001",
        "2147483648", "9223372036854775807", "9223372036854775808", "-9223372036854775808",
        "1_000_000", "10_000_000", "9" * 40, "9" * 5000]
FLOATS = ["0.0", "-0.0", "1.0", "-1.0", "0.5", "1e308", "1e309", "1e-320", "1.7976931348623157e308",
          "3.14159", "2.5e10", "9" * 400 + ".0"]
OPERATORS = ["+", "-", "*", "/", "%", "**", "==", "!=", "<", "<=", ">", ">=", "and", "or", "..", "..=",
             "=", "+=", "-=", "*=", "/=", "%=", "->", "<->", ",", ";", ":", "."]
WRAPS = ["({} + 0)", "({} * 1)", "(-{})", "(if true then {} else {})", "({} ** 2)", "({} / 0)",
         "({} % 0)", "({} * 9223372036854775807)", "[{}; 3][0]", "[{}][0]", "max({}, {})", "abs({})",
         "sum({} for _i in 0..3)", "sum({} for _i in 0..3000000)", "float({})", "int({})", "({}, {})",
         "[{} for _i in 0..2][1]", "({} == {})", "not {}", "len({})", "{}[0]", "{}.X", "f32({})",
         "(({}))", "clamp({}, 0, 1)", "onehot({})", "choice({})", "min({} for _i in 0..0)"]
STATEMENTS = [
    "let _t = 0", "let _t = 10 ** 100", "let _t: int in 0..3 = 5", "while true limit 3 { }",
    "while true limit 100000000 { }", "repeat 10000000 { }", "repeat -1 { }", "for _i in 0..10 { }",
    "break", "continue", "return", "return 0", "reward 1.0", "next_player()", "random_action()",
    "shuffle(_t)", "act(0)", "let (_a, _b) = (1, 2)", "let _t = [0; 100000000]", "let _t = 1.0 / 0.0",
]
ITEMS = [
    "const _k = 1.0 / 0.0", "const _k = 10 ** 100", "const _k = 10.0 ** 1000", "const _k = [0; 10000000]",
    "const _k = sum(i for i in 0..3000000)", "const _k = 1e308 * 10.0", "const _k = int(1e300)",
    "fn _w() -> int { let i = 0\n while true limit 10 { i += 1 }\n return i }\nconst _kw = _w()",
    "fn _r() -> int { let i = 0\n repeat 5 { i += 1 }\n return i }\nconst _kr = _r()",
    "fn _a() -> [int; 3] { let a = [0; 3]\n a[1] = 2\n return a }\nconst _ka = _a()",
    "fn _d(n: int) -> int { return _d(n) }", "const _c = _c", "param _p: int in 0..3 = 5",
    "enum _E { A, B }", "enum _F { A, C }", "state _s: [int; 100000001]", "state _s: int in 5..5",
    "const _m = map \"\"\"\n#.\n\"\"\" with { \"#\": 1, \".\": 0 }", "symmetry _id { }", "players 3",
    "let _v = 1", "observe 1.0", "render line \"{_v}\"", "fn for(x: int) { }", "fn onehot(x: int) { }",
    "const pi = 3", "state player: int", "action noop { }", "action _big(i in 0..100000000) { }",
]
_TOKEN = re.compile(r'"""(?:.|\n)*?"""|"(?:[^"\\\n]|\\.)*"|#[^\n]*|[A-Za-z_][A-Za-z0-9_]*'
                    r'|[0-9][0-9_]*(?:\.[0-9][0-9_]*)?(?:[eE][+-]?[0-9]+)?|\.\.=?|<->|->|\*\*|[=!<>+\-*/%]=|\s+|.',
                    re.S)
_ITEM_START = re.compile(r"^(?:env|param|const|enum|state|players|action|fn|reset|success|done|truncate"
                         r"|reward|let|observe|symmetry|render)\b", re.M)


def tokens(text: str) -> list[str]:
    return _TOKEN.findall(text)


def _kind(tok: str) -> str:
    if tok[:1].isalpha() or tok[:1] == "_":
        return "keyword" if tok in KEYWORDS else "name"
    if tok[:1].isdigit():
        return "float" if any(c in tok for c in ".eE") else "int"
    if tok.isspace() or tok.startswith("#") or tok.startswith('"'):
        return "skip"
    return "op"


def items(text: str) -> list[str]:
    """The file split at its top-level items (the first chunk holds any header comments)."""
    starts = [m.start() for m in _ITEM_START.finditer(text)]
    if not starts or starts[0] != 0:
        starts = [0] + starts
    return [text[a:b] for a, b in zip(starts, starts[1:] + [len(text)])]


def _replace_token(toks: list[str], rng: random.Random, kinds: set[str], pool) -> None:
    where = [i for i, t in enumerate(toks) if _kind(t) in kinds]
    if where:
        i = rng.choice(where)
        toks[i] = pool(toks[i]) if callable(pool) else rng.choice(pool)


def mutate_once(text: str, rng: random.Random) -> str:
    toks = tokens(text)
    names = sorted({t for t in toks if _kind(t) == "name"}) or ["x"]
    kind = rng.choice(["name", "name", "special_name", "literal", "literal", "wrap", "wrap", "operator",
                       "delete_token", "duplicate_item", "move_item", "rename_item", "insert_statement",
                       "insert_item", "swap_range"])
    if kind == "name":
        _replace_token(toks, rng, {"name"}, names)
    elif kind == "special_name":
        _replace_token(toks, rng, {"name", "keyword"}, KEYWORDS + BUILTINS + RUST_WORDS + ODD_NAMES)
    elif kind == "literal":
        _replace_token(toks, rng, {"int", "float"}, INTS + FLOATS)
    elif kind == "wrap":
        _replace_token(toks, rng, {"name", "int", "float"},
                       lambda t: rng.choice(WRAPS).replace("{}", t))
    elif kind == "operator":
        _replace_token(toks, rng, {"op"}, OPERATORS)
    elif kind == "delete_token":
        _replace_token(toks, rng, {"name", "keyword", "op", "int", "float"}, [""])
    elif kind == "swap_range":
        where = [i for i, t in enumerate(toks) if t in ("..", "..=")]
        if where:
            i = rng.choice(where)
            left = next((j for j in range(i - 1, -1, -1) if _kind(toks[j]) != "skip"), None)
            right = next((j for j in range(i + 1, len(toks)) if _kind(toks[j]) != "skip"), None)
            if left is not None and right is not None:
                toks[left], toks[right] = toks[right], toks[left]
    else:
        return _mutate_items(text, rng, kind, names)
    return "".join(toks)


def _mutate_items(text: str, rng: random.Random, kind: str, names: list[str]) -> str:
    parts = items(text)
    if len(parts) < 2:
        return text
    i = rng.randrange(1, len(parts))
    if kind == "duplicate_item":
        parts.insert(rng.randrange(1, len(parts) + 1), parts[i])
    elif kind == "move_item":
        parts.insert(rng.randrange(0, len(parts)), parts.pop(i))
    elif kind == "rename_item":
        toks = tokens(parts[i])
        where = [k for k, t in enumerate(toks) if _kind(t) == "name"]
        if where:
            toks[where[0]] = rng.choice(names)
        parts[i] = "".join(toks)
    elif kind == "insert_item":
        parts.insert(rng.randrange(1, len(parts) + 1), rng.choice(ITEMS) + "\n")
    else:  # insert_statement, after an opening brace
        braces = [m.end() for m in re.finditer(r"\{\s*\n", parts[i])]
        if braces:
            at = rng.choice(braces)
            parts[i] = parts[i][:at] + "    " + rng.choice(STATEMENTS) + "\n" + parts[i][at:]
    return "".join(parts)


def mutate(text: str, rng: random.Random, rounds: int = 0) -> str:
    """`text` after 1 to 6 mutations (or `rounds`)."""
    for _ in range(rounds or rng.randint(1, 6)):
        text = mutate_once(text, rng)
    return text
