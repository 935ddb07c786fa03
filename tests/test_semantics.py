"""The checker's meaning of small programs: what the IR says they do."""

from __future__ import annotations

import pytest

from twisterl.dsl import check_source, ir
from twisterl.dsl.consteval import Evaluator, default_values, floor_div, floor_mod


def env_of(body: str, header: str = "env T\n") -> ir.Env:
    result = check_source(header + body)
    assert result.ok, [d.message for d in result.errors]
    return result.env


def values(env: ir.Env, **overrides):
    return Evaluator(default_values(env, overrides), {f.name: f for f in env.functions})


def test_families_are_numbered_row_major_and_sized_by_params():
    env = env_of("param n: int = 3\nstate x: int in 0..9\n"
                 "action noop { }\naction press(r in 0..n, c in 0..n) { x = r * n + c }\n"
                 "observe onehot(x)\n")
    ev = values(env)
    assert [ev.eval(a.count) for a in env.actions] == [1, 9]
    assert ev.eval(env.action_space.n) == 10
    assert values(env, n=2).eval(env.action_space.n) == 5
    press = env.actions[1]
    assert [p.name for p in press.index_params] == ["r", "c"]


def test_int_literals_become_floats_but_int_values_do_not():
    env = env_of("state y: float\naction a { y = y * 2 + 1 }\nreward 1\nobserve y\n")
    assert env.reward.value == ir.Lit(1.0, ir.FloatType(), env.reward.value.span)
    bad = check_source("env T\nparam n: int = 2\nstate y: float\naction a { y = y * n }\nobserve y\n")
    assert not bad.ok and "mixes an int and a float" in bad.errors[0].message
    assert "float(...)" in bad.errors[0].hints[0]


@pytest.mark.parametrize("a, b", [(7, 2), (-7, 2), (7, -2), (-7, -2), (7.5, 2.0), (-7.5, 2.0), (7.5, -2.0)])
def test_division_and_modulo_floor_like_python(a, b):
    assert floor_mod(a, b) == a % b
    if isinstance(a, int):
        assert floor_div(a, b) == a // b


def test_onehot_of_a_list_is_one_part_per_item():
    env = env_of("state r: int in 0..7\nstate c: int in 0..9\nstate k: bool\naction a { r = 1 }\n"
                 "observe onehot([r, c]), k\n")
    parts = env.observation.parts
    assert [p.encoding for p in parts] == ["onehot", "onehot", "bool"]
    ev = values(env)
    assert [ev.eval(p.size) for p in parts] == [7, 9, 1]
    assert env.observation.kind == "sparse"


def test_dense_and_planes_observations():
    env = env_of("state x: float\nstate n: int in 0..4\naction a { x = 1.0 }\nobserve x, onehot(n)\n")
    assert env.observation.kind == "dense"
    env = env_of("param h: int = 3\nstate g: [[int in 0..3; 4]; h]\nstate w: [[bool; 4]; h]\n"
                 "action a { g[0][0] = 1 }\nobserve planes(g), planes(w)\n")
    assert env.observation.kind == "planes"
    assert [values(env).eval(s) for s in env.observation.shape] == [4, 3, 4]


def test_as_seen_by_wraps_the_part():
    env = env_of("players 2\nstate g: [int in 0..3; 9]\naction a(i in 0..9) when g[i] == 0 "
                 "{ g[i] = player + 1; next_player() }\nobserve onehot(g) as seen by player\n")
    assert isinstance(env.observation.parts[0].value, ir.SeenBy)


def test_inclusive_ranges_and_chained_comparisons():
    env = env_of("state x: int in 0..=5\naction a when 0 <= x < 5 { x += 1 }\nobserve onehot(x)\n")
    t = env.state[0].type
    assert (t.lo.value, t.hi.value) == (0, 6)
    guard = env.actions[0].guard
    assert isinstance(guard, ir.Compare) and guard.ops == ("le", "lt")


def test_level_literal_and_find():
    env = env_of(
        'enum Cell { FLOOR, WALL }\nconst level = map """\n  ##\n  A.\n""" with { "#": WALL, ".A": FLOOR }\n'
        'const start = find(level, "A")\nstate r: int in 0..2\naction a { r = start[0] }\n'
        'observe onehot(r)\n'.replace("start[0]", "1"))
    ev = values(env)
    assert ev.values["level"] == [[1, 1], [0, 0]]
    assert ev.values["start"] == (1, 0)


def test_level_rows_padded_only_when_space_is_in_the_legend():
    ok = check_source('env T\nconst lv = map """\n##\n#\n""" with { "#": 1, " ": 0 }\n'
                      'state x: int in 0..2\naction a { x = lv[1][1] }\nobserve onehot(x)\n')
    assert ok.ok
    bad = check_source('env T\nconst lv = map """\n##\n#\n""" with { "#": 1 }\n'
                       'state x: int in 0..2\naction a { x = lv[1][0] }\nobserve onehot(x)\n')
    assert not bad.ok and "row 2 of this level has 1 characters" in bad.errors[0].message


def test_advisory_mask_and_continuous_space():
    env = env_of("state x: int in 0..4\naction left advise x > 0 { x = max(x - 1, 0) }\n"
                 "action right when x < 3 { x += 1 }\nobserve onehot(x)\n")
    assert [a.advisory for a in env.actions] == [True, False]
    env = env_of("state y: float\naction move(dx: float in -1.0..1.0, v: [float in 0.0..2.0; 3]) "
                 "{ y += dx + v[0] }\nobserve y\n")
    space = env.action_space
    assert space.kind == "continuous"
    assert [e.value for e in space.lows] == [-1.0, 0.0, 0.0, 0.0]
    assert [e.value for e in space.highs] == [1.0, 2.0, 2.0, 2.0]


def test_functions_know_their_effects():
    env = env_of("state x: int in 0..9\nfn bump() { x += 1 }\nfn peek() -> int { return x }\n"
                 "fn roll() -> int { return randint(0, 3) }\n"
                 "action a { bump(); x = roll() }\nobserve onehot(x)\n")
    fns = {f.name: f for f in env.functions}
    assert fns["bump"].writes_state and not fns["bump"].uses_random
    assert fns["peek"].pure
    assert fns["roll"].uses_random and not fns["roll"].writes_state


def test_symmetries_of_tictactoe_are_permutations():
    from pathlib import Path
    from twisterl.dsl import check_file
    env = check_file(Path(__file__).resolve().parents[1] / "examples" / "tictactoe.twl").env
    names = {s.name: s for s in env.symmetries}
    assert not names["rotate"].involution and names["mirror"].involution
    assert names["rotate"].cells[0].array == "board"


def test_rotation_declared_as_involution_is_refused():
    bad = check_source("env T\nstate b: [[int in 0..3; 3]; 3]\naction a { b[0][0] = 1 }\nobserve onehot(b)\n"
                       "symmetry rot { b[r][c] <-> b[c][2 - r] }\n")
    assert not bad.ok and "undoes itself" in bad.errors[0].message


def test_symmetry_needs_direct_observation():
    bad = check_source("env T\nstate b: [int in 0..3; 4]\nlet total = sum(b)\naction a { b[0] = 1 }\n"
                       "observe total\nsymmetry flip { b[i] -> b[3 - i] }\n")
    assert not bad.ok and "cannot derive how symmetry" in bad.errors[0].message


def test_view_bounds_come_from_the_annotation_or_the_expression():
    env = env_of("state a: int in 0..5\nlet v = [if i == a then 2 else 0 for i in 0..5]\n"
                 "action go { a = 1 }\nobserve onehot(v)\n")
    ev = values(env)
    assert ev.eval(env.observation.parts[0].width) == 3


def test_state_initialisers_and_zero_values():
    env = env_of("state t: int in 1..5 = 3\nstate f: bool\naction a { t = 2 }\nobserve onehot(t), f\n")
    assert env.state[0].init.value == 3 and env.state[1].init is None


def test_params_with_ranges_validate_defaults():
    bad = check_source("env T\nparam size: int in 2..9 = 12\nstate x: int in 0..3\naction a { x = 1 }\n"
                       "observe onehot(x)\n")
    assert not bad.ok and "outside the declared range" in bad.errors[0].message


def test_lines_may_continue_with_a_leading_operator():
    env = env_of("state x: float\naction go {\n    x = x\n        - 1.0\n        * 2.0\n}\nobserve [x]\n")
    [stmt] = env.actions[0].body
    assert isinstance(stmt.value, ir.Binary) and stmt.value.op == "sub"


def test_a_header_comment_does_not_become_an_error():
    result = check_source("# A header comment.\n# More.\nenv A\nstate x: float = 0.0 +\n")
    assert [(d.span.line, d.message.split(";")[0]) for d in result.errors] == [(4, "this ends too early")]


def test_render_lines_can_show_text():
    env = env_of('state ace: bool\naction a { ace = true }\nobserve ace\n'
                 'render line "hand{if ace then \\" (soft)\\" else \\"\\"}"\n')
    assert env.render[0].segments[0] == "hand"


def test_double_underscore_names_are_reserved():
    bad = check_source("env T\nstate x: int in 0..3\naction a { let __v1 = 1\n x = __v1 }\nobserve onehot(x)\n")
    assert not bad.ok and "reserved for generated code" in bad.errors[0].message
