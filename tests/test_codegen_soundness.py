"""Files that pass `check` build, in the cases found failing in rustc before: arithmetic
in an action family's range (used by the action names, which cannot fail), range bounds
beyond 32 bits with an unused loop variable, name clashes with generated code, and an
unswitched `if` in a guard whose test divides."""

from __future__ import annotations

import textwrap

import numpy as np
import pytest

import twisterl


def _compile(tmp_path, name: str, text: str):
    path = tmp_path / f"{name}.twl"
    path.write_text(textwrap.dedent(text))
    return twisterl.compile(path)


def test_family_ranges_with_arithmetic_name_and_step_their_actions(tmp_path, build_cache):
    nim = _compile(tmp_path, "nim", """\
        env Nim
        param rows: int in 1..6 = 3
        param max_pile: int in 1..9 = 4
        state piles: [int in 0..max_pile + 1; rows]
        action take(r in 0..rows + 1, t in 1..=max_pile) when r < rows and piles[min(r, rows - 1)] >= t {
            piles[r] = piles[r] - t
        }
        reset { piles = [max_pile; rows] }
        done all(p == 0 for p in piles)
        reward 1.0
        observe onehot(piles)
        """)
    env = nim(rows=2, max_pile=3)
    _, info = env.reset(seed=0)
    names = env.action_names()
    assert len(names) == 3 * 3 and names[:4] == ["take(0, 1)", "take(0, 2)", "take(0, 3)", "take(1, 1)"]
    assert names[-1] == "take(2, 3)" and not info["action_mask"][-3:].any()  # r == rows is never legal
    env.step(names.index("take(1, 3)"))
    assert env.get_state(named=True)["piles"].tolist() == [3, 0]


def test_loop_bounds_beyond_32_bits(tmp_path, build_cache):
    far = _compile(tmp_path, "far", """\
        env Far
        state x: int in 0..3
        fn beyond() -> int {
            for i in 2999999990..3000000000 { return 1 }
            return 0
        }
        fn unused() -> int {
            let n = 0
            for _ in 4294967290..4294967299 { n += 1 }
            return n
        }
        action go { x = min(2, beyond() + unused()) }
        done x == 2
        reward float(x)
        observe onehot(x)
        """)
    env = far()
    env.reset(seed=0)
    assert env.step(0)[1] == 2.0


def test_locals_named_like_rust_and_generated_code(tmp_path, build_cache):
    """Each of these once collided with a Rust pattern or a generated binding (E0530,
    E0308, E0599); the name matrix in test_codegen_names.py covers the whole class."""
    clash = _compile(tmp_path, "clash", """\
        env Clash
        const k = 2
        const table = [k * k_ for k_ in 0..4]
        state board: [int in 0..4; 4]
        fn pick(None: int, obs: int) -> int {
            let Some = None + obs
            let act = [o for o in 0..4]
            return act[Some % 4]
        }
        action put(src in 0..4, dst in 0..2) { board[src] = pick(dst, table[src] % 4) }
        reset { board = [0; 4] }
        done board[3] == 3
        reward 0.0
        observe onehot(board)
        symmetry flip {
            board[v] = o -> board[3 - v] = o
            put(src, dst) -> put(3 - src, dst)
        }
        """)
    env = clash()
    env.reset(seed=0)
    assert env.twists()["flip"][1].tolist() == [6, 7, 4, 5, 2, 3, 0, 1]
    env.step(0)
    assert env.get_state(named=True)["board"].tolist() == [0, 0, 0, 0]
    assert np.all(clash.vector(3).random_episodes(5, max_length=50)["steps"] > 0)


def test_arrays_sized_by_params_meet_arrays_of_literal_size(tmp_path, build_cache):
    """A `[int; n]` is a `Vec` and a `[int; 3]` a Rust array: assigning, passing and
    returning one as the other converts it, and a length that differs at run time (other
    params than the defaults the checker used) is a located fault."""
    mix = _compile(tmp_path, "mix", """\
        env Mix
        param n = 3
        const row = [0; n]
        state x: int in 0..3
        state r: [int; 3]
        state y: [int; n]
        state g: [[int in 0..3; n]; 2]
        fn total(a: [int; 3]) -> int { return a[0] + a[1] + a[2] }
        fn grow(a: [int; n]) -> [int; 3] { return a }
        action b {
            r = row
            y = [1, 2, 0]
            g = [[0, 1, 2], [2, 1, 0]]
            let z: [int; 3] = y
            x = min(2, total(y) + total(grow(r)) + z[2] + g[1][0] - 3)
        }
        observe onehot(x)
        """)
    env = mix()
    env.reset(seed=0)
    env.step(0)
    state = env.get_state(named=True)
    assert state["x"] == 2 and state["y"].tolist() == [1, 2, 0] and state["g"].tolist() == [0, 1, 2, 2, 1, 0]
    env = mix(n=4)
    env.reset(seed=0)
    with pytest.raises(twisterl.EnvError, match=r"mix.twl:11:\d+: an array of 4 elements is used where one of 3"):
        env.step(0)


CASES = {
    # float built-ins on literals (an ambiguous float type in Rust)
    "float_literals": "state x: float\naction go { x = abs(2.5) + floor(0.5 * 3.0) + sqrt(4.0) + atan2(1.0, 1.0) }\nobserve x",
    # variants whose Rust consts would meet
    "enum_consts": "enum sum { rng, Rng }\nenum a { b_c, z }\nenum a_b { c, y }\nstate x: sum\nstate w: a\n"
                   "state u: a_b\naction go { x = sum.Rng\n w = a.b_c\n u = a_b.c }\nobserve onehot(x), onehot(w), onehot(u)",
    # an index that draws or changes the state, into a state array and into a view
    "effectful_index": "state a: [int in 0..3; 3]\nstate c: int in 0..3\nlet lows = [a[i] for i in 0..3]\n"
                       "fn bump() -> int {\n c = (c + 1) % 3\n return c\n}\n"
                       "action go { c = a[randint(0, 3)] }\naction hop { c = lows[randint(0, 3)] }\n"
                       "action jump { c = a[bump()] }\nobserve onehot(c), onehot(a)",
    # bounded ints whose range holds no 0 start at their lower bound
    "negative_ranges": "state a: [int in -2..-1; 3]\nstate k: [[int in -5..-3; 3]; 2]\nstate x: int in 0..3\n"
                       "action go { x = (x + 1) % 3 }\nobserve onehot(x), onehot(a)",
    # planes of bools and of floats: one plane of the values
    "value_planes": "state g: [[bool; 3]; 2]\nstate h: [[float; 3]; 2]\naction go { g[0][1] = not g[0][1]\n h[1][2] = 1.5 }\n"
                    "observe planes(g), planes(h)",
    # indices that call fns, into rows of param-sized 2-D arrays and in both indices
    "call_indices": "param n = 4\nconst lv = [[true, false], [false, true]]\nstate m: [[int in 0..3; n]; 2]\n"
                    "state c: int in 0..3\nfn f(a: int) -> int { return a }\nfn w() -> int { return c % 2 }\n"
                    "action go { c = m[f(1)][1] }\naction hop { c = if lv[w()][w()] then 1 else 2 }\n"
                    "observe onehot(m), onehot(c)",
    # an int literal for a float in a tuple assignment
    "tuple_literals": "state f: float\nstate a: int in 0..3\naction go { (a, f) = (1, -3) }\nobserve f, onehot(a)",
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_found_by_the_program_generator(case, tmp_path, build_cache):
    cls = _compile(tmp_path, case, f"env {case.title().replace('_', '')}\n" + CASES[case] + "\n")
    env = cls()
    env.reset(seed=0)
    env.set_state(env.get_state())
    for _ in range(6):
        env.step(int(np.flatnonzero(env.action_mask())[0]))
    if case == "value_planes":
        assert env.observe_indices is not None and env.step(0)[0].ravel().tolist()[-1] == 1.5


@pytest.mark.parametrize("name", ["Clone", "Env", "Fault", "Option", "Rng", "Self", "State", "String", "Vec",
                                  "self", "rng", "_"])
def test_an_env_may_take_any_name(name, tmp_path, build_cache):
    cls = _compile(tmp_path, f"named_{name}", f"env {name}\nstate x: int in 0..3\n"
                   "action go { x = max(k in 0..3 where k != x) }\nobserve onehot(x)\n")
    env = cls()
    env.reset(seed=0)
    assert cls.name == name and env.step(0)[0].shape == (3,)


def test_a_const_computed_by_a_function_drives_a_symmetry(tmp_path, build_cache):
    """Once refused as 'known only at run time' when the comprehension called a fn."""
    cls = _compile(tmp_path, "perm", """\
        env P
        fn id(x: int) -> int { return x }
        const perm = [id(3 - i) for i in 0..4]
        state board: [int in 0..2; 4]
        action flip(c in 0..4) { board[c] = 1 - board[c] }
        done all(b == 1 for b in board)
        reward 1.0
        observe onehot(board)
        symmetry mirror {
            board[i] -> board[perm[i]]
            flip(c) -> flip(perm[c])
        }
        """)
    env = cls()
    env.reset(seed=0)
    obs_perm, act_perm = env.twists()["mirror"]
    assert act_perm.tolist() == [3, 2, 1, 0] and sorted(obs_perm.tolist()) == list(range(8))


def test_an_index_free_if_whose_test_divides_is_unswitched_and_builds(tmp_path, build_cache):
    """A guard's `if` whose test reads no index is unswitched (tested once per mask and
    per playout draw); the division the test computes once (`m / 3`) is declared before
    the test, in the mask, the list of legal ids and the draws alike."""
    cls = _compile(tmp_path, "split_by_division", """\
        env SplitByDivision
        param mode: int in 0..9 = 0
        state m: int in 0..9
        action put(k in 0..6) when (if m / 3 == 1 then k % 2 == 0 else k < 4)
            and (if m % 3 == 2 then k != 0 else true) { m = k }
        reset { m = mode }
        observe onehot(m)
        """)
    for mode in range(9):
        env = cls(mode=mode)
        _, info = env.reset(seed=0)
        expected = [(k % 2 == 0 if mode // 3 == 1 else k < 4) and (k != 0 if mode % 3 == 2 else True)
                    for k in range(6)]
        assert list(map(bool, info["action_mask"])) == expected, mode
        assert cls.vector(2, mode=mode).random_steps(20)["steps"] == 2 * 20
