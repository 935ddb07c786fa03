"""Text to source AST: decoding, the layout post-lexer, Lark LALR, and the AST builder.

`parse(source)` returns a `Module` or raises `TwlError` with every syntax error it could
find: when the whole file fails to parse, each top-level item is parsed on its own so
that independent mistakes are all reported in one run.
"""

from __future__ import annotations

import re
from functools import lru_cache
from importlib import resources
from typing import Iterator, Optional

from lark import Lark, Token, Transformer, Tree, v_args
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken, VisitError

from . import ast
from .diagnostics import Diagnostic, Reporter, Source, Span, TwlError

MAX_FILE_BYTES = 2_000_000
MAX_NESTING = 200  # levels of parse-tree nesting inside one item

# Tokens after which a line cannot end, so the newline that follows is layout only.
_CONTINUE_AFTER = {
    ",", "(", "[", "{", "=", "+=", "-=", "*=", "/=", "%=", "+", "-", "*", "/", "%", "**",
    "==", "!=", "<", "<=", ">", ">=", "and", "or", "not", "->", "<->", ":", "..", "..=",
    "then", "else", "when", "advise", "in", "where", "with", "as", "seen", "by", "if", "for",
    "while", "limit", "repeat", "let", "mark", "reward[",
}
# Words and signs with which a line cannot start, so the newline before them is layout only.
# No item or statement starts with a binary operator, so a line that does continues the last.
_CONTINUE_BEFORE = re.compile(r"(?:and|or|then|else|with)\b|mark\s+\(|[{}]|<->|->|==|!=|\.\.|[-+*/%<>]")
_SKIP_LAYOUT = re.compile(r"(?:[ \t\f\r\n]+|#[^\n]*|\\[ \t]*\r?\n)*")
_OPEN = {"(": ")", "[": "]", "{": "}"}
_CLOSE = {")", "]", "}"}


class Layout:
    """Post-lexer that keeps only the newlines (and `;`) that end an item or statement."""

    always_accept = ("_NL", "SEMI")

    def __init__(self) -> None:
        self.text = ""

    def _next_continues(self, pos: int) -> bool:
        m = _SKIP_LAYOUT.match(self.text, pos)
        return bool(_CONTINUE_BEFORE.match(self.text, m.end() if m else pos))

    def process(self, stream: Iterator[Token]) -> Iterator[Token]:
        brackets: list[str] = []
        last: Optional[Token] = None
        for tok in stream:
            in_parens = bool(brackets) and brackets[-1] != "{"
            is_sep = tok.type == "_NL" or (tok.type == "SEMI" and not in_parens)
            if is_sep:
                if in_parens:
                    continue
                if last is None or last.type == "_NL":
                    continue
                if last.type not in ("NAME", "STRING", "LONG_STRING") and str(last) in _CONTINUE_AFTER:
                    continue
                end = tok.end_pos if tok.end_pos is not None else 0
                if self._next_continues(end):
                    continue
                tok = Token.new_borrow_pos("_NL", str(tok), tok)
                yield tok
                last = tok
                continue
            value = str(tok)
            if tok.type not in ("STRING", "LONG_STRING"):
                if value in _OPEN:
                    brackets.append(value)
                elif value in _CLOSE and brackets:
                    brackets.pop()
            yield tok
            last = tok


@lru_cache(maxsize=1)
def _grammar_text() -> str:
    return resources.files(__package__).joinpath("grammar/twl.lark").read_text(encoding="utf-8")


@lru_cache(maxsize=1)
def _parser() -> tuple[Lark, Layout]:
    layout = Layout()
    options = dict(parser="lalr", lexer="contextual", postlex=layout, start=["start", "single_item"],
                   propagate_positions=True, maybe_placeholders=True)
    try:
        # Lark keeps the LALR tables in a file keyed by the grammar's hash: a warm start
        # skips building them (~150 ms).
        lark = Lark(_grammar_text(), cache=True, **options)
    except OSError:
        lark = Lark(_grammar_text(), **options)
    return lark, layout


def grammar_keywords() -> frozenset[str]:
    """Every word the grammar spells out literally (`if`, `state`, `grid`, ...)."""
    return frozenset(re.findall(r'"([a-z_]+)"', _grammar_text()))


# ---------------------------------------------------------------- decoding


def decode(raw: bytes, path: str) -> Source:
    """Bytes to `Source`, refusing what is not a reasonable UTF-8 text file."""
    if len(raw) > MAX_FILE_BYTES:
        raise TwlError([Diagnostic(
            "error", f"this file is {len(raw):,} bytes; .twl files are limited to "
            f"{MAX_FILE_BYTES:,} bytes", Span.point(1, 1),
            hints=("an environment description should be a few hundred lines; put level data "
                   "in several smaller `map` literals",))])
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        col = exc.start - (raw.rfind(b"\n", 0, exc.start) + 1) + 1
        raise TwlError([Diagnostic(
            "error", f"this file is not valid UTF-8 (byte 0x{raw[exc.start]:02x} at offset "
            f"{exc.start})", Span.point(line, col),
            hints=("save the file as UTF-8 text",))]) from None
    if text.startswith("\ufeff"):
        text = text[1:]
    nul = text.find("\0")
    if nul >= 0:
        line = text.count("\n", 0, nul) + 1
        col = nul - (text.rfind("\n", 0, nul) + 1) + 1
        raise TwlError([Diagnostic("error", "this file contains a NUL byte; is it a binary file?",
                                   Span.point(line, col))])
    return Source(path, text)


# ---------------------------------------------------------------- syntax errors

_TOKEN_WORDS = {
    "_NL": "a new line", "SEMI": "`;`", "NAME": "a name", "INT": "an integer",
    "FLOAT": "a number", "STRING": "a string", "LONG_STRING": "a string",
    "COMP_OP": "a comparison", "ADD_OP": "`+` or `-`", "MUL_OP": "`*`, `/` or `%`",
    "AUG_OP": "`+=`", "RANGE_OP": "`..`", "SYM_ARROW": "`->` or `<->`", "REWARD_OF": "`reward[`",
    "LPAR": "`(`", "RPAR": "`)`", "LSQB": "`[`", "RSQB": "`]`", "LBRACE": "`{`", "RBRACE": "`}`",
    "COMMA": "`,`", "COLON": "`:`", "EQUAL": "`=`", "DOT": "`.`", "__ANON_0": "`->`",
    "$END": "the end of the file",
}
_START_OF_EXPR = {"NAME", "INT", "FLOAT", "LPAR", "LSQB", "ADD_OP", "STRING", "TRUE", "FALSE",
                  "NOT", "IF", "MAP"}
_ITEM_WORDS = ["env", "param", "const", "enum", "state", "players", "action", "fn", "reset",
               "success", "done", "truncate", "reward", "let", "observe", "symmetry", "render"]
_PY_HABITS = {
    "&&": "write `and`", "||": "write `or`", "!": "write `not` (and `!=` for inequality)",
    "elif": "write `else if`", "True": "write `true`", "False": "write `false`",
    "def": "functions are declared with `fn`", "var": "declare locals with `let`",
    "elif ": "write `else if`", "'": "strings use double quotes", "?": "there is no `?:`; "
    "write `if c then a else b`", "++": "write `+= 1`", "--": "write `-= 1`",
    "while": "", "lambda": "functions are declared with `fn`",
}


def _describe(terminal: str, lark: Lark) -> str:
    if terminal in _TOKEN_WORDS:
        return _TOKEN_WORDS[terminal]
    try:
        pattern = lark.get_terminal(terminal).pattern
        if pattern.type == "str":
            return f"`{pattern.value}`"
    except KeyError:
        pass
    return terminal.lower()


def _expected_phrase(expected: set[str], lark: Lark) -> str:
    expected = set(expected) - {"SEMI"}  # `;` is accepted everywhere as a separator
    if expected & _START_OF_EXPR and len(expected & _START_OF_EXPR) >= 4:
        rest = sorted(_describe(t, lark) for t in expected - _START_OF_EXPR)
        words = ["an expression"] + [w for w in rest if w != "a new line"][:3]
    else:
        words = sorted({_describe(t, lark) for t in expected})
        if len(words) > 6:
            words = words[:6] + ["..."]
    if not words:
        return ""
    if len(words) == 1:
        return words[0]
    return ", ".join(words[:-1]) + " or " + words[-1]


def _token_span(tok: Token) -> Span:
    line = tok.line or 1
    col = tok.column or 1
    text = str(tok)
    if tok.type == "_NL" or not text:
        return Span(line, col, line, col + 1)
    if "\n" in text:
        return Span(line, col, line, col + len(text.split("\n")[0]) or col + 1)
    return Span(line, col, line, col + len(text))


def _unclosed_bracket(text: str) -> Optional[tuple[str, int, int]]:
    """The innermost bracket left open at the end of `text`, as (char, line, col)."""
    stack: list[tuple[str, int, int]] = []
    line, col, i, n = 1, 1, 0, len(text)
    while i < n:
        ch = text[i]
        if ch == "#":
            j = text.find("\n", i)
            j = n if j < 0 else j
            col += j - i
            i = j
            continue
        if ch == '"':
            quote = '"""' if text.startswith('"""', i) else '"'
            j = text.find(quote, i + len(quote))
            if quote == '"':
                nl = text.find("\n", i + 1)
                if j < 0 or (0 <= nl < j):
                    j = nl if nl >= 0 else n
            end = n if j < 0 else j + len(quote)
            chunk = text[i:end]
            if "\n" in chunk:
                line += chunk.count("\n")
                col = len(chunk) - chunk.rfind("\n")
            else:
                col += len(chunk)
            i = end
            continue
        if ch in "([{":
            stack.append((ch, line, col))
        elif ch in ")]}" and stack:
            stack.pop()
        if ch == "\n":
            line, col = line + 1, 1
        else:
            col += 1
        i += 1
    return stack[-1] if stack else None


def _end_of(text: str) -> Span:
    lines = text.rstrip().split("\n")
    return Span.point(len(lines), len(lines[-1]) + 1)


def _eof_diagnostic(text: str, expected: str) -> Diagnostic:
    opener = _unclosed_bracket(text)
    end = _end_of(text)
    if opener is not None:
        ch, line, col = opener
        closer = {"(": ")", "[": "]", "{": "}"}[ch]
        return Diagnostic("error", f"this `{ch}` is never closed", Span.point(line, col),
                          "opened here and never closed",
                          (f"add the matching `{closer}`",))
    return Diagnostic("error", "this ends too early" + (f"; I expected {expected}" if expected else ""),
                      end, "it ends here")


def _syntax_diagnostic(exc: UnexpectedInput, lark: Lark, source: Source, text: Optional[str] = None) -> Diagnostic:
    text = source.text if text is None else text
    if isinstance(exc, UnexpectedCharacters):
        line, col = exc.line, exc.column
        lines = source.lines
        text = lines[line - 1] if 0 < line <= len(lines) else ""
        char = text[col - 1] if 0 < col <= len(text) else "?"
        rest = text[col - 1:]
        hints = []
        for habit, hint in _PY_HABITS.items():
            if hint and rest.startswith(habit):
                hints.append(hint)
                break
        if char == '"':
            return Diagnostic("error", "this string is never closed", Span.point(line, col),
                              "the string starts here",
                              ("strings end on the line they start; use \"\"\" for text over "
                               "several lines",))
        if not char.isprintable() or ord(char) > 0x7F and not char.isalpha():
            what = f"the character U+{ord(char):04X}"
        else:
            what = f"`{char}`"
        return Diagnostic("error", f"I did not expect {what} here", Span.point(line, col),
                          "unexpected character", tuple(hints))
    if isinstance(exc, UnexpectedEOF):
        return _eof_diagnostic(text, _expected_phrase(set(exc.expected), lark))
    assert isinstance(exc, UnexpectedToken)
    tok = exc.token
    expected = set(exc.expected) - {"_NL"} if tok.type == "_NL" else set(exc.expected)
    exp = _expected_phrase(expected or set(exc.expected), lark)
    hints: list[str] = []
    if tok.type == "$END":
        return _eof_diagnostic(text, exp)
    span = _token_span(tok)
    value = str(tok)
    if tok.type == "_NL":
        what = "the end of this line" if value != ";" else "`;`"
        span = Span.point(tok.line or 1, tok.column or 1)
    elif tok.type == "NAME":
        what = f"the name `{value}`"
    else:
        what = f"`{value}`"
    if value == "=" and "EQUAL" not in exc.expected and not (set(exc.expected) & _START_OF_EXPR):
        hints.append("to compare, write `==`")
    if value in ("elif",):
        hints.append("write `else if`")
    if value in ("True", "False"):
        hints.append(f"write `{value.lower()}`")
    if tok.type == "NAME" and value in ("def", "function", "func"):
        hints.append("functions are declared with `fn`")
    if tok.type == "NAME" and value in ("var", "mut"):
        hints.append("declare locals with `let`; every local can be changed")
    if tok.type == "NAME" and "_NL" in exc.expected and "LBRACE" not in exc.expected:
        hints.append("put each statement on its own line or separate them with `;`")
    if tok.type == "RBRACE" and "LIMIT" in exc.expected:
        hints.append("every `while` needs a bound: `while cond limit N { ... }`")
    if tok.type == "LBRACE" and "LIMIT" in exc.expected:
        hints.append("every `while` needs a bound, so that a step always ends: "
                     "`while cond limit N { ... }`")
    message = f"I did not expect {what} here"
    if exp:
        message += f"; I expected {exp}"
    return Diagnostic("error", message, span, "unexpected " + ("line end" if tok.type == "_NL" else "token"),
                      tuple(hints))


# ---------------------------------------------------------------- AST building


def _span(meta) -> Span:
    if getattr(meta, "empty", True):
        return Span(1, 1, 1, 2)
    return Span(meta.line, meta.column, meta.end_line, meta.end_column)


def _tok_span(tok: Token) -> Span:
    return Span(tok.line, tok.column, tok.end_line, tok.end_column)


def _node_span(node) -> Span:
    if isinstance(node, Token):
        return _tok_span(node)
    return node.span


def _int(text: str) -> int:
    digits = text.replace("_", "").lstrip("0") or "0"
    if len(digits) > 19:  # beyond 64 bits, which the checker reports; no need to convert it all
        return 10 ** 19
    return int(digits)


def _unescape(body: str) -> str:
    out = []
    i = 0
    while i < len(body):
        ch = body[i]
        if ch == "\\" and i + 1 < len(body):
            nxt = body[i + 1]
            out.append({"n": "\n", "t": "\t", '"': '"', "\\": "\\", "{": "{{", "}": "}}"}.get(nxt, "\\" + nxt))
            i += 2
        else:
            out.append(ch)
            i += 1
    return "".join(out)


@v_args(meta=True)
class BuildAst(Transformer):
    """Lark tree to `ast` nodes; one method per grammar rule."""

    # -- module and items
    def start(self, meta, children):
        items = tuple(c for c in children if c is not None)
        return ast.Module(items, _span(meta))

    def single_item(self, meta, children):
        return children[0]

    def env_decl(self, meta, c):
        return ast.EnvDecl(str(c[0]), _tok_span(c[0]), _span(meta))

    def param_decl(self, meta, c):
        return ast.ParamDecl(str(c[0]), _tok_span(c[0]), c[1], c[2], _span(meta))

    def const_decl(self, meta, c):
        return ast.ConstDecl(str(c[0]), _tok_span(c[0]), c[1], c[2], _span(meta))

    def enum_decl(self, meta, c):
        names = [t for t in c if isinstance(t, Token) and t.type == "NAME"]
        return ast.EnumDecl(str(names[0]), _tok_span(names[0]),
                            tuple((str(t), _tok_span(t)) for t in names[1:]), _span(meta))

    def state_decl(self, meta, c):
        return ast.StateDecl(str(c[0]), _tok_span(c[0]), c[1], c[2], _span(meta))

    def players_decl(self, meta, c):
        return ast.PlayersDecl(c[0], _span(meta))

    def action_decl(self, meta, c):
        name, params, guard, body = c
        return ast.ActionDecl(str(name), _tok_span(name), tuple(params or ()), guard, body, _span(meta))

    def action_params(self, meta, c):
        return [p for p in c if p is not None]

    def index_param(self, meta, c):
        return ast.IndexParam(str(c[0]), _tok_span(c[0]), c[1], _span(meta))

    def value_param(self, meta, c):
        return ast.ValueParam(str(c[0]), _tok_span(c[0]), c[1], _span(meta))

    def guard(self, meta, c):
        return ast.Guard(str(c[0]) == "advise", c[1], _span(meta))

    def fn_decl(self, meta, c):
        name = c[0]
        params = tuple(p for p in c[1:-2] if p is not None)
        return ast.FnDecl(str(name), _tok_span(name), params, c[-2], c[-1], _span(meta))

    def fn_param(self, meta, c):
        return ast.FnParam(str(c[0]), _tok_span(c[0]), c[1], _span(meta))

    def reset_decl(self, meta, c):
        return ast.ResetDecl(c[0], _span(meta))

    def success_decl(self, meta, c):
        return ast.EpisodeDecl("success", c[0], _span(meta))

    def done_decl(self, meta, c):
        return ast.EpisodeDecl("done", c[0], _span(meta))

    def truncate_decl(self, meta, c):
        return ast.EpisodeDecl("truncate", c[0], _span(meta))

    def reward_decl(self, meta, c):
        return ast.RewardDecl(None, None, c[0], _span(meta))

    def reward_each_decl(self, meta, c):
        return ast.RewardDecl(str(c[1]), _tok_span(c[1]), c[2], _span(meta))

    def view_decl(self, meta, c):
        return ast.ViewDecl(str(c[0]), _tok_span(c[0]), c[1], c[2], _span(meta))

    def observe_decl(self, meta, c):
        return ast.ObserveDecl(tuple(c), _span(meta))

    def obs_part(self, meta, c):
        return ast.ObsPart(c[0], c[4] if len(c) > 4 else None, _span(meta))

    def symmetry_decl(self, meta, c):
        return ast.SymmetryDecl(str(c[0]), _tok_span(c[0]), tuple(c[1:]), _span(meta))

    def sym_rule(self, meta, c):
        return ast.SymRule(c[0], str(c[1]), c[2], _span(meta))

    def sym_side(self, meta, c):
        return ast.SymSide(c[0], c[1], _span(meta))

    def render_decl(self, meta, c):
        return ast.RenderDecl((c[0],), _span(meta))

    def render_block(self, meta, c):
        return ast.RenderDecl(tuple(c), _span(meta))

    def render_grid(self, meta, c):
        array, width, glyphs = c[1], c[2], c[3]
        return ast.RenderGrid(array, width, glyphs, tuple(c[4:]), _span(meta))

    def render_line(self, meta, c):
        return ast.RenderLine(c[1], _span(meta))

    def mark(self, meta, c):
        return ast.Mark(c[1], c[3], _span(meta))

    # -- types
    def t_bool(self, meta, c):
        return ast.TBool(_span(meta))

    def t_int(self, meta, c):
        return ast.TInt(c[0], _span(meta))

    def t_float(self, meta, c):
        return ast.TFloat(c[0], _span(meta))

    def t_named(self, meta, c):
        return ast.TNamed(str(c[0]), _span(meta))

    def t_array(self, meta, c):
        return ast.TArray(c[0], c[2], _span(meta))

    def t_tuple(self, meta, c):
        return ast.TTuple(tuple(c), _span(meta))

    def range(self, meta, c):
        return ast.Range(c[0], c[2], str(c[1]) == "..=", _span(meta))

    # -- statements
    def block(self, meta, c):
        return ast.Block(tuple(s for s in c if s is not None), _span(meta))

    def let_stmt(self, meta, c):
        return ast.Let(c[0], c[1], c[2], _span(meta))

    def assign_stmt(self, meta, c):
        return ast.Assign(c[0], c[1], _span(meta))

    def tuple_assign_stmt(self, meta, c):
        return ast.TupleAssign(tuple(c[:-1]), c[-1], _span(meta))

    def aug_assign_stmt(self, meta, c):
        return ast.AugAssign(c[0], str(c[1])[0], c[2], _tok_span(c[1]), _span(meta))

    def call_stmt(self, meta, c):
        call = self.call(meta, c)
        return ast.CallStmt(call, _span(meta))

    def if_stmt(self, meta, c):
        return ast.If(c[0], c[1], c[2], _span(meta))

    def for_stmt(self, meta, c):
        return ast.For(c[0], c[1], c[2], _span(meta))

    def while_stmt(self, meta, c):
        return ast.While(c[0], c[2], c[3], _span(meta))

    def repeat_stmt(self, meta, c):
        return ast.Repeat(c[0], c[1], _span(meta))

    def return_stmt(self, meta, c):
        return ast.Return(c[0], _span(meta))

    def break_stmt(self, meta, c):
        return ast.Break(_span(meta))

    def continue_stmt(self, meta, c):
        return ast.Continue(_span(meta))

    def reward_stmt(self, meta, c):
        return ast.RewardStmt(None, c[0], _span(meta))

    def reward_each_stmt(self, meta, c):
        return ast.RewardStmt(c[1], c[2], _span(meta))

    def lvalue(self, meta, c):
        return ast.LValue(str(c[0]), _tok_span(c[0]), tuple(c[1:]), _span(meta))

    def target(self, meta, c):
        return ast.Target((str(c[0]),), (_tok_span(c[0]),), False, _span(meta))

    def tuple_target(self, meta, c):
        return ast.Target(tuple(str(t) for t in c), tuple(_tok_span(t) for t in c), True, _span(meta))

    # -- expressions
    def if_expr(self, meta, c):
        return ast.IfExpr(c[0], c[1], c[2], _span(meta))

    def or_op(self, meta, c):
        return ast.Binary("or", c[0], c[1], _span(meta), _span(meta))

    def and_op(self, meta, c):
        return ast.Binary("and", c[0], c[1], _span(meta), _span(meta))

    def not_op(self, meta, c):
        return ast.Unary("not", c[0], _span(meta))

    def compare(self, meta, c):
        operands = tuple(c[0::2])
        ops = tuple(str(t) for t in c[1::2])
        return ast.Compare(operands, ops, tuple(_tok_span(t) for t in c[1::2]), _span(meta))

    def binop(self, meta, c):
        return ast.Binary(str(c[1]), c[0], c[2], _tok_span(c[1]), _span(meta))

    def unary_op(self, meta, c):
        return ast.Unary(str(c[0]), c[1], _span(meta))

    def pow(self, meta, c):
        return ast.Binary("**", c[0], c[1], _span(meta), _span(meta))

    def index(self, meta, c):
        return ast.Index(c[0], c[1], _span(meta))

    def field(self, meta, c):
        return ast.Field(c[0], str(c[1]), _tok_span(c[1]), _span(meta))

    def int_lit(self, meta, c):
        return ast.IntLit(_int(str(c[0])), _span(meta))

    def float_lit(self, meta, c):
        return ast.FloatLit(float(str(c[0]).replace("_", "")), _span(meta))

    def true_lit(self, meta, c):
        return ast.BoolLit(True, _span(meta))

    def false_lit(self, meta, c):
        return ast.BoolLit(False, _span(meta))

    def str_lit(self, meta, c):
        tok = c[0]
        return ast.StrLit(_unescape(str(tok)[1:-1]), _span(meta), tok.line, tok.column + 1)

    def name(self, meta, c):
        return ast.Name(str(c[0]), _span(meta))

    def call(self, meta, c):
        name, args = c[0], c[1]
        comp = None
        positional: tuple = ()
        if isinstance(args, ast.Comprehension):
            comp = args
        elif args is not None:
            positional = tuple(args)
        return ast.Call(str(name), _tok_span(name), positional, comp, _span(meta))

    def tuple_lit(self, meta, c):
        return ast.TupleLit(tuple(x for x in c if x is not None), _span(meta))

    def list_lit(self, meta, c):
        return ast.ListLit(tuple(x for x in c if x is not None), _span(meta))

    def repeat_lit(self, meta, c):
        return ast.RepeatLit(c[0], c[2], _span(meta))

    def list_comp(self, meta, c):
        elem, (clauses, where) = c
        comp = ast.Comprehension(elem, clauses, where, _span(meta))
        return ast.ListComp(comp, _span(meta))

    def map_lit(self, meta, c):
        tok = c[0]
        raw = str(tok)
        quote = 3 if raw.startswith('"""') else 1
        text = ast.StrLit(raw[quote:-quote], _tok_span(tok), tok.line, tok.column + quote)
        return ast.MapLit(text, c[1], _span(meta))

    def arg_list(self, meta, c):
        return [x for x in c if x is not None]

    def gen_arg(self, meta, c):
        elem, (clauses, where) = c
        return ast.Comprehension(elem, clauses, where, _span(meta))

    def bind_arg(self, meta, c):
        name, iterable, where = c[0], c[1], (c[3] if len(c) > 3 else None)
        tspan = _tok_span(name)
        target = ast.Target((str(name),), (tspan,), False, tspan)
        clause = ast.CompFor(target, iterable, _span(meta))
        return ast.Comprehension(ast.Name(str(name), tspan), (clause,), where, _span(meta))

    def comp_clauses(self, meta, c):
        clauses = tuple(x for x in c if isinstance(x, ast.CompFor))
        where = c[-1] if len(c) >= 2 and not isinstance(c[-1], ast.CompFor) else None
        return clauses, where

    def comp_for(self, meta, c):
        return ast.CompFor(c[0], c[1], _span(meta))

    def dict(self, meta, c):
        return ast.DictLit(tuple(x for x in c if x is not None), _span(meta))

    def dict_entry(self, meta, c):
        return (c[0], c[1])


def _tree_depth_error(tree: Tree) -> Optional[Diagnostic]:
    """Find a subtree nested deeper than MAX_NESTING, without recursion."""
    stack = [(tree, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_NESTING:
            meta = node.meta
            span = _span(meta)
            return Diagnostic("error", f"this expression is nested more than {MAX_NESTING} levels deep",
                              Span.point(span.line, span.col), "nesting limit reached here",
                              ("split it with `let` bindings or helper `fn`s",))
        for child in node.children:
            if isinstance(child, Tree):
                stack.append((child, depth + 1))
    return None


# ---------------------------------------------------------------- entry points

_ITEM_START = re.compile(r"^(?:" + "|".join(_ITEM_WORDS) + r")\b|^reward\[", re.M)


def _parse_text(text: str, start: str):
    lark, layout = _parser()
    layout.text = text
    return lark.parse(text, start=start)


def _chunks(text: str) -> list[tuple[int, str]]:
    """Split the file at lines that start (in column 1) with an item keyword."""
    starts = [m.start() for m in _ITEM_START.finditer(text)]
    if not starts or starts[0] != 0:
        starts = [0] + starts
    chunks = []
    for a, b in zip(starts, starts[1:] + [len(text)]):
        # Keep line numbers: pad the chunk with the newlines that precede it.
        chunks.append((a, "\n" * text.count("\n", 0, a) + text[a:b]))
    return chunks


def parse(source: Source) -> ast.Module:
    """Parse a whole file; raise `TwlError` with every syntax error found."""
    text = source.text
    if not re.sub(r"#[^\n]*", "", text).strip():
        raise TwlError([Diagnostic(
            "error", "this file is empty", Span.point(1, 1), "",
            ("a .twl file starts with `env NAME`, then declares state, actions and an "
             "`observe` line; see docs/language.md",))])
    lark, _ = _parser()
    try:
        tree = _parse_text(text, "start")
    except UnexpectedInput:
        pass
    else:
        err = _tree_depth_error(tree)
        if err:
            raise TwlError([err])
        return _build(tree)
    reporter = Reporter()
    for _, chunk in _chunks(text):
        if not re.sub(r"#[^\n]*", "", chunk).strip():
            continue  # blank lines and comments, such as a header before `env`
        try:
            _parse_text(chunk, "single_item")
        except UnexpectedInput as exc:
            reporter.diagnostics.append(_syntax_diagnostic(exc, lark, source, chunk))
    if not reporter.diagnostics:
        # Every item parses alone but not together: report the whole-file error.
        try:
            _parse_text(text, "start")
        except UnexpectedInput as exc:
            reporter.diagnostics.append(_syntax_diagnostic(exc, lark, source))
    raise TwlError(reporter.diagnostics)


def parse_expression_text(text: str, line: int, col: int) -> ast.Expr:
    """Parse an expression found inside a string (`{x}` in a render line) at a position."""
    if line >= 2:
        # The binding sits on the line above; `=` continues the line, so the expression
        # keeps its true line and column.
        padded = "\n" * (line - 2) + "let __interp =\n" + " " * (col - 1) + text
    else:
        padded = "let __interp = " + text
    tree = _parse_text(padded, "single_item")
    err = _tree_depth_error(tree)
    if err:
        raise TwlError([err])
    view = _build(tree)
    return view.value


def _build(tree: Tree):
    try:
        return BuildAst().transform(tree)
    except VisitError as exc:
        if isinstance(exc.orig_exc, TwlError):
            raise exc.orig_exc from None
        raise
