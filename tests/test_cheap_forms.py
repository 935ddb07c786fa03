"""Cheaper exact forms the code generator picks where the range analysis allows them.

- A per-player reward that is 0 for every player under a test of the state alone (a
  terminal reward) tests it once, not once per player.
- An action family over consts (`pit in 0..pits`) decodes by constants and loops over
  literal ranges, which the compiler unrolls, like a family over literals.
- A division or modulo by a param goes through a `Divisor` made once per env.

Each form is checked in the generated text, and a compiled env computes exactly what the
rules say for the inputs at the edges of each form."""

from __future__ import annotations

import pytest

from twisterl.codegen.emit import emit_rust
from twisterl.dsl import check_source

TERMINAL = """env Ends
players 3
param goal: int in 1..9 = 4
state count: int in 0..20
state mover: int in 0..3
action tick {
    count += 1
    mover = player
    next_player()
}
done count >= goal
reward[p] if count < goal then 0.0 else if p == mover then 1.0 else -0.5
observe onehot(count)
"""

PER_PLAYER = """env Mine
players 2
state count: int in 0..20
action tick {
    count += 1
    next_player()
}
done count >= 5
reward[p] if p == 0 then 0.0 else 1.0
observe onehot(count)
"""


def _rust(source: str) -> str:
    result = check_source(source)
    assert result.ok, [d.message for d in result.errors]
    return emit_rust(result.env, "t.twl")


def _build(directory, name: str, source: str):
    """The compiled env class of `source`, written to `directory / name`."""
    import twisterl
    path = directory / name
    path.write_text(source)
    return twisterl.compile(path)


def _method(text: str, name: str) -> str:
    start = text.index(f"fn {name}(")
    return text[start:text.index("\n    }\n", start)]


def test_a_terminal_reward_is_tested_once_for_all_players():
    rewards = _method(_rust(TERMINAL), "add_step_rewards")
    head, loop = rewards.split("for p_", 1)
    assert "count" in head and "goal" in head, rewards  # the test, before the players' loop
    assert "count" not in loop, rewards
    mine = _method(_rust(PER_PLAYER), "add_step_rewards")
    assert mine.lstrip().split("{", 1)[1].lstrip().startswith("for p_"), mine  # reads p: per player


@pytest.mark.parametrize("goal", [1, 2, 4, 7])
def test_a_terminal_reward_gives_every_player_what_the_rules_say(build_cache, tmp_path, goal):
    env = _build(tmp_path, "ends.twl", TERMINAL)(goal=goal)
    env.reset(seed=0)
    for step in range(1, goal + 1):
        _, _, terminated, _, info = env.step(0)
        last = (step - 1) % 3  # who ticked last
        want = [1.0 if p == last else -0.5 for p in range(3)] if step >= goal else [0.0] * 3
        assert list(info["rewards"]) == pytest.approx(want), (step, info["rewards"])
        assert terminated == (step >= goal)


FIXED = """env Fixed
const lo = 0 - 2
const hi = lo + 5
param extra: int in 0..3 = 1
state last: int in -2..3
state hits: int in 0..100
action pick(i in lo..hi, j in 1..hi) when i + j != 0 {
    last = i
    hits += j
}
action wide(k in 0..hi + extra) { hits += k }
observe onehot(hits)
"""


def test_a_family_over_consts_decodes_and_loops_with_literals():
    text = _rust(FIXED)
    decode = _method(text, "apply_number")
    # j in 1..3 by a constant; i in -2..3 is what is left (the first index needs no division)
    assert "% 2u64" in decode and "let i0 = (-2i64) + rest as i64;" in decode, decode
    assert "self.ranges[2].0 + rest as i64" in decode, decode  # k's range moves with `extra`
    assert "div_rem" not in decode and "% 5u64" not in decode, decode
    legal = _method(text, "legal")
    assert "for i_ in (-2i64)..3i64" in legal and "for j_ in 1i64..3i64" in legal, legal


@pytest.mark.parametrize("extra", [0, 2])
def test_a_family_over_consts_gives_each_id_its_indices(build_cache, tmp_path, extra):
    env = _build(tmp_path, "fixed.twl", FIXED)(extra=extra)
    _, info = env.reset(seed=0)
    names = env.action_names()
    picks = [(i, j) for i in range(-2, 3) for j in range(1, 3)]
    assert names == [f"pick({i}, {j})" for i, j in picks] + [f"wide({k})" for k in range(3 + extra)]
    assert list(info["action_mask"]) == [i + j != 0 for i, j in picks] + [True] * (3 + extra)
    hits = 0
    for a, (i, j) in enumerate(picks):
        if i + j == 0:
            continue
        env.step(a)
        hits += j
        s = env.get_state(named=True)
        assert (int(s["last"]), int(s["hits"])) == (i, hits)
    env.step(len(picks) + 2 + extra)  # wide(2 + extra)
    assert int(env.get_state(named=True)["hits"]) == hits + 2 + extra


BY_PARAM = """env Split
param size: int in 1..70_000 = 5
const cells = size * size
state row: int in 0..size
state col: int in 0..size
state far: int in 0..70_000
action at(v in 0..cells) {
    row = v / size
    col = v % size
    far = (v + 7) % size
}
observe onehot(row)
"""


def test_division_by_a_param_goes_through_a_divisor_made_once():
    text = _rust(BY_PARAM)
    assert "pub __by_size: ops::Divisor," in text
    assert "consts.__by_size = ops::Divisor::new(consts.size);" in text
    body = _method(text, "do_at")
    assert body.count("self.consts.__by_size.div_rem(") == 3 and "/ self.consts.size" not in body, body


@pytest.mark.parametrize("size", [1, 2, 7, 301])
def test_division_by_a_param_computes_what_the_rules_say(build_cache, tmp_path, size):
    env = _build(tmp_path, "split.twl", BY_PARAM)(size=size)
    env.reset(seed=0)
    cells = size * size
    for v in sorted({0, 1, size - 1, size, cells // 2, cells - 2, cells - 1} & set(range(cells))):
        env.step(v)
        s = env.get_state(named=True)
        assert (int(s["row"]), int(s["col"]), int(s["far"])) == (v // size, v % size, (v + 7) % size), v
