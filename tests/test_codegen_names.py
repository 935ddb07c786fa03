"""The name matrix: every Rust keyword, prelude name and name the generated code uses,
in every role a `.twl` name can take. A name the checker accepts must build; one it
refuses must get a clean diagnostic. One crate per role keeps the build short."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import twisterl
from twisterl.codegen.emit import emit_rust
from twisterl.codegen.rust import METHOD_PREFIX
from twisterl.dsl import check_file, check_source

ROOT = Path(__file__).resolve().parents[1]

RUST_KEYWORDS = """as break const continue crate else enum extern false fn for if impl in let loop match mod
    move mut pub ref return self Self static struct super trait true type unsafe use where while async await dyn
    abstract become box do final macro override priv typeof unsized virtual yield try gen union macro_rules raw
    safe""".split()
PRELUDE = """Ok Err Some None Option Result Vec String Box Clone Copy Default Drop Eq PartialEq Ord PartialOrd
    Fn FnMut FnOnce Iterator IntoIterator Extend Send Sync Sized Unpin ToString ToOwned From Into AsRef AsMut
    drop std core alloc i8 i16 i32 i64 i128 isize u8 u16 u32 u64 u128 usize f32 f64 bool char str println
    format vec assert panic""".split()
GENERATED = """k s rw rng out obs act o v src dst values value rewards params seed stream action local rest n
    i j x t tv hw text buf ops at Fault FaultKind R Rng Kon State Env Param Batch Slot Observation counts mask
    actor target base_s base_t local_s len e f g h a b c d i0 i1 d0 lows highs total obs_size obs_shape
    nnz_max legal env slot cell perm seen r p q w k0 v1 t1 n1 a_x f_x g_x v_x _ _x x_ Ok_ Grid k_id row
    consts state step_rewards consts_id Consts ActionNumbers twist decode apply_number clear_views scratch number
    label fn_x view_x cached_view_x item_of_x len_of_x guard_x do_x x_at x_len""".split()
NAMES = sorted(set(RUST_KEYWORDS + PRELUDE + GENERATED))

HEADER = "env Names\n"


def _body(role: str, names: list[str]) -> str:
    """A program using each of `names` in `role`, one name per line (so a diagnostic's
    line tells which name it is about)."""
    lines: list[str] = []
    state = "state s0: int in 0..4\nstate cells: [int in 0..4; 4]\n"
    tail = "reset { s0 = 0 }\ndone s0 == 3\nreward 1.0\nobserve onehot(cells)\n"
    if role == "param":
        lines = [f"param {n}: int = 1" for n in names]
        return state + "\n".join(lines) + "\naction go { s0 = 3 }\n" + tail
    if role == "const":
        lines = [f"const {n} = [2 * k_ for k_ in 0..3]" for n in names]
        return state + "\n".join(lines) + "\naction go { s0 = 3 }\n" + tail
    if role == "state":
        lines = [f"state {n}: int in 0..3" for n in names]
        return state + "\n".join(lines) + "\naction go { s0 = 3 }\n" + tail
    if role == "fn":
        for k, n in enumerate(names):
            lines.append(f"fn {n}(q0: int) -> int {{ return q0 + 1 }}")
            lines.append(f"action go{k} {{ s0 = min(3, {n}(s0)) }}")
        return state + "\n".join(lines) + "\n" + tail
    if role == "view":
        for k, n in enumerate(names):
            lines.append(f"let {n} = s0 + 1")
            lines.append(f"action go{k} {{ s0 = min(3, {n}) }}")
        return state + "\n".join(lines) + "\n" + tail
    if role == "enum":
        lines = [f"enum {n} {{ V{k} }}" for k, n in enumerate(names)]
        return state + "\n".join(lines) + "\naction go { s0 = 3 }\n" + tail
    if role == "variant":
        lines = [f"enum E{k} {{ {n} }}" for k, n in enumerate(names)]
        return state + "\n".join(lines) + "\naction go { s0 = 3 }\n" + tail
    if role == "locals":
        # Each name as a fn parameter, a `let`, a loop variable, a comprehension variable
        # (also in a const, where the generated code builds the consts), an action index
        # and a symmetry variable, each on its own line.
        for k, n in enumerate(names):
            lines.append(f"fn p{k}({n}: int) -> int {{ return {n} * 2 }}")
            lines.append(f"fn l{k}() -> int {{ let {n} = 2\n return {n} + p{k}(1) }}")
            lines.append(f"fn c{k}() -> int {{ return sum({n} for {n} in 0..3) + l{k}() }}")
            lines.append(f"const q{k} = [{n} + 1 for {n} in 0..4]")
            lines.append(f"action a{k}({n} in 0..2) when {n} + c{k}() >= 0 {{ for {n} in 0..2 {{ s0 = min(3, {n} + q{k}[0]) }} }}")
            lines.append(f"symmetry m{k} {{ cells[{n}] = w0 -> cells[3 - {n}] = w0 }}")
        return state + "\n".join(lines) + "\n" + tail
    if role == "value":
        params = ",\n".join(f"    {n}: float in -1.0..1.0" for n in names)
        return ("state y: float\nreset { y = 0.0 }\ndone y > 10.0\nreward 1.0\nobserve y\n"
                f"action push(\n{params}\n) {{ y = y + 0.5 }}\n")
    raise AssertionError(role)


ROLES = ["param", "const", "state", "fn", "view", "enum", "variant", "locals", "value"]


def _accepted(role: str) -> tuple[str, list[str]]:
    """The program for `role` with every name the checker refuses taken out, and those."""
    names = list(NAMES)
    refused: list[str] = []
    for _ in range(len(NAMES) + 1):
        text = HEADER + _body(role, names)
        result = check_source(text, f"{role}.twl")
        if result.ok:
            return text, refused
        lines = text.split("\n")
        bad = set()
        for d in result.errors:
            assert d.message and d.span.line >= 1
            line = lines[d.span.line - 1]
            hit = [n for n in names if re.search(rf"(?<![\w]){re.escape(n)}(?![\w])", line)]
            assert hit, f"{role}: a diagnostic on a line without a name: {d.message}\n{line}"
            bad.update(hit)
        names = [n for n in names if n not in bad]
        refused += sorted(bad)
    raise AssertionError(f"{role}: the refusals never settle")


@pytest.mark.parametrize("role", ROLES)
def test_every_accepted_name_builds_in_every_role(role, tmp_path, build_cache):
    text, refused = _accepted(role)
    assert len(refused) < len(NAMES) // 2, f"{role}: most names refused: {refused}"
    path = tmp_path / f"names_{role}.twl"
    path.write_text(text)
    cls = twisterl.compile(path)  # a BuildError here is an accepted file that does not build
    env = cls()
    env.reset(seed=0)
    if cls.continuous:
        env.step([0.0] * env.action_space.shape[0])
    else:
        env.step(int(env.action_mask().argmax()))
    if role == "locals":
        assert env.twists()  # the symmetries' generated code ran too


def test_names_the_language_reserves_are_refused_cleanly():
    for n in ("if", "for", "let", "fn", "reward", "true", "int", "difficulty", "__x"):
        result = check_source(f"env E\nstate {n}: int in 0..3\naction go {{ }}\nobserve 0\n", "r.twl")
        assert not result.ok and any(d.span.line == 2 for d in result.errors), n


def test_no_two_method_families_can_meet():
    """Each kind of declaration has its own method prefix, none starts another, and every
    generated method that starts with one is that kind's method for a declared name: so a
    fixed method never starts with a prefix, and no two declarations' methods can meet."""
    prefixes = list(METHOD_PREFIX.values())
    assert not [(a, b) for a in prefixes for b in prefixes if a != b and b.startswith(a)]
    for name in ("connect4", "puzzle", "checkers", "breakthrough", "amazons", "game2048", "cartpole", "taxi"):
        env = check_file(ROOT / "examples" / f"{name}.twl").env
        declared = {"fn": {f.name for f in env.functions}, "guard": {a.name for a in env.actions},
                    "action": {a.name for a in env.actions}, "view": {v.name for v in env.views},
                    "cached_view": {v.name for v in env.views},
                    "view_item": {v.name for v in env.views}, "view_len": {v.name for v in env.views}}
        for fn in re.findall(r"\bfn (\w+)", emit_rust(env)):
            kinds = [k for k, p in METHOD_PREFIX.items() if fn.startswith(p)]
            for kind in kinds:
                assert fn[len(METHOD_PREFIX[kind]):] in declared[kind], f"{name}: `{fn}` is not a {kind}'s method"


def test_an_array_view_and_views_named_like_its_methods_build(tmp_path, build_cache):
    path = tmp_path / "views.twl"
    path.write_text("""env Views
state cells: [int in 0..4; 4]
let w = [cells[i] + 1 for i in 0..4]
let w_at = w[0] + 1
let w_len = w_at + 1
let item_of_w = w_len + 1
let len_of_w = item_of_w + 1
fn view_w() -> int { return len_of_w + 1 }
action item_of(k in 0..4) when w[k] < 4 { cells[k] = min(3, view_w() - 5) }
reset { cells = [0, 0, 0, 0] }
done all(cells[i] == 3 for i in 0..4)
reward 1.0
observe onehot(cells)
""")
    rust = emit_rust(check_file(path).env)
    assert "fn item_of_w(" in rust and "fn view_item_of_w(" in rust and "fn do_item_of(" in rust
    env = twisterl.compile(path)()
    env.reset(seed=0)
    env.step(2)  # w[2] = 1, so w_at = 2, ..., len_of_w = 5 and view_w() = 6
    assert list(env.get_state(named=True)["cells"]) == [0, 0, 1, 0]
