"""Compiled examples through the Python API: rollouts, determinism, masks, state, errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import twisterl
from twisterl.envs import EnvError

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = sorted(p.stem for p in ROOT.joinpath("examples").glob("*.twl"))


def random_actions(vec, rng, masks=None):
    if vec.cls.continuous:
        low, high = vec.single_action_space.low, vec.single_action_space.high
        return rng.uniform(low, high, size=(vec.num_envs, low.shape[0]))
    out = np.empty(vec.num_envs, dtype=np.int64)
    for i, m in enumerate(masks):
        legal = np.flatnonzero(m)
        out[i] = rng.choice(legal) if len(legal) else 0
    return out


@pytest.mark.parametrize("name", EXAMPLES)
def test_random_rollouts_run_clean(compiled, name):
    cls = compiled(name)
    vec = cls.vector(16, seed=3, num_threads=2, difficulty=3)
    obs, info = vec.reset()
    assert obs.shape[0] == 16 and obs.dtype == np.float32
    rng = np.random.default_rng(0)
    since_end = np.zeros(16, dtype=np.int64)  # steps since each env's episode began
    for _ in range(300):
        masks = info.get("action_mask")
        if masks is not None and not masks.any(axis=1).all():
            break  # a terminal state with no legal move is reset on the next step
        obs, reward, term, trunc, info = vec.step(random_actions(vec, rng, masks))
        assert np.isfinite(obs).all() and np.isfinite(reward).all()
        since_end += 1
        since_end[term | trunc] = 0  # auto-reset: a new episode, counted from 0
    # The runtime's own step counters agree: every auto-reset restarted its env's episode.
    assert np.array_equal(vec._info()["steps"], since_end)
    assert vec.render(0)


@pytest.mark.parametrize("name", ["puzzle", "cartpole", "connect4", "pendulum"])
def test_same_seed_same_trajectory(compiled, name):
    cls = compiled(name)
    runs = []
    for _ in range(2):
        vec = cls.vector(4, seed=11, difficulty=4)
        obs, info = vec.reset()
        rng = np.random.default_rng(5)
        trace = [obs.copy()]
        for _ in range(50):
            obs, reward, term, trunc, info = vec.step(random_actions(vec, rng, info.get("action_mask")))
            trace += [obs.copy(), reward.copy(), term.copy()]
        runs.append(trace)
    for a, b in zip(*runs):
        np.testing.assert_array_equal(a, b)
    other = cls.vector(4, seed=12, difficulty=4)
    first, _ = other.reset()
    if name != "connect4":  # Connect Four starts from the same empty board whatever the seed
        assert not np.array_equal(first, runs[0][0])


def test_puzzle_follows_twisterl_semantics(compiled):
    cls = compiled("puzzle")
    env = cls(difficulty=0, seed=0)
    obs, info = env.reset()
    # Solved board at difficulty 0; blank in the corner: only right and down are legal.
    np.testing.assert_array_equal(info["action_mask"], [False, False, True, True])
    assert list(env.observe_indices()) == [i * 9 + i for i in range(9)]
    assert obs.sum() == 9
    # depth = depth_slope * difficulty; a solved start already ended the episode.
    env.set_difficulty(3)
    for seed in range(20):
        obs, info = env.reset(seed=seed)
        state = env.get_state()
        board, blank, depth = state[:9], state[9], state[10]
        assert depth == 6
        assert board[int(blank)] == 0
        assert sorted(board) == list(range(9))
    # Rewards: -0.5/max_depth per step, -0.5 at timeout, 1 when solved.
    env.set_state([1, 0, 2, 3, 4, 5, 6, 7, 8, 1, 2, 0, 0])
    obs, reward, term, trunc, info = env.step(2)  # right: blank 1 -> 2
    assert reward == pytest.approx(-0.5 / 256) and not term
    obs, reward, term, trunc, info = env.step(0)  # left: back to 1
    assert reward == -0.5 and term  # depth ran out
    env.set_state([1, 0, 2, 3, 4, 5, 6, 7, 8, 1, 5, 0, 0])
    obs, reward, term, trunc, info = env.step(0)  # left: blank 1 -> 0 solves it
    assert reward == 1.0 and term and info["success"]


def test_puzzle_masks_by_blank_position(compiled):
    env = compiled("puzzle")(seed=0)
    env.reset()
    expected = {0: [0, 0, 1, 1], 1: [1, 0, 1, 1], 4: [1, 1, 1, 1], 8: [1, 1, 0, 0], 6: [0, 1, 1, 0]}
    for blank, mask in expected.items():
        board = list(range(9))
        board[0], board[blank] = board[blank], board[0]
        env.set_state(board + [blank, 10, 0, 0])
        np.testing.assert_array_equal(env.action_mask(), np.array(mask, dtype=bool))


def test_fifteen_puzzle_from_params_without_recompiling(compiled):
    cls = compiled("puzzle")
    env = cls(size=4, difficulty=10, seed=1)
    obs, info = env.reset()
    assert obs.shape == (256,) and env.observation_space.shape == (256,)
    assert len(env.get_state()) == 16 + 4


def test_connect4_wins_masks_and_rewards(compiled):
    env = compiled("connect4")(seed=0)
    env.reset()
    reward, term = 0.0, False
    for a in [0, 1, 0, 1, 0, 1]:
        _, reward, term, _, info = env.step(a)
        assert not term
    _, reward, term, _, info = env.step(0)  # the first player's fourth stone in column 0
    assert term and reward == 1.0
    np.testing.assert_array_equal(info["rewards"], [1.0, -1.0])
    env.reset()
    for _ in range(6):
        env.step(3)
    assert not env.action_mask()[3]
    with pytest.raises(EnvError, match="not legal"):
        env.step(3)


def test_tictactoe_draw_and_symmetric_observation(compiled):
    env = compiled("tictactoe")(seed=0)
    env.reset()
    # X O X / X O O / O X X: a draw
    for a in [0, 1, 2, 4, 3, 5, 7, 6, 8]:
        obs, reward, term, _, info = env.step(a)
    assert term and reward == 0.0 and list(info["rewards"]) == [0.0, 0.0]
    env.reset()
    obs0, *_ = env.step(4)
    # After X plays the centre it is O's turn: O sees X's stone as the opponent's mark (2).
    cell = obs0.reshape(9, 3)[4]
    assert list(cell) == [0, 0, 1]


def test_cartpole_truncates_and_terminates(compiled):
    env = compiled("cartpole")(seed=0)
    obs, _ = env.reset()
    steps, term, trunc = 0, False, False
    while not (term or trunc):  # a simple controller keeps the pole up until the time limit
        obs, r, term, trunc, info = env.step(int(obs[2] + 0.5 * obs[3] > 0))
        steps += 1
        assert r == 1.0
    assert trunc and not term and steps == 500
    env.reset()
    steps, term = 0, False
    while not term:  # always pushing right topples the pole
        _, _, term, trunc, _ = env.step(1)
        steps += 1
    assert not trunc and steps < 100


def test_pendulum_continuous_action_is_clipped(compiled):
    env = compiled("pendulum")(seed=0)
    env.reset()
    assert env.action_space.shape == (1,)
    env.set_state([0.0, 0.0, 0, 0])
    _, r_big, *_ = env.step([100.0])
    env.set_state([0.0, 0.0, 0, 0])
    _, r_max, *_ = env.step([2.0])
    assert r_big == r_max  # 100 is clipped to max_torque


def test_bad_input_gives_clean_errors(compiled):
    cls = compiled("puzzle")
    with pytest.raises(TypeError, match="did you mean `size`"):
        cls(sise=3)
    with pytest.raises(ValueError, match="must be in 2..9"):
        cls(size=12)
    with pytest.raises(TypeError, match="must be an int"):
        cls(size="3")
    env = cls(seed=0)
    with pytest.raises(RuntimeError, match="reset"):
        env.step(0)
    env.reset()
    with pytest.raises(ValueError, match="outside the action space"):
        env.step(7)
    with pytest.raises(TypeError):
        env.step("left")
    with pytest.raises(EnvError, match="13 are needed"):
        env.set_state([0.0] * 5)
    with pytest.raises(EnvError, match=r"puzzle.twl:\d+:\d+: the value 99 is not an int in the declared range 0..9"):
        env.set_state([99] + list(range(1, 9)) + [0, 2, 0, 0])
    with pytest.raises(ValueError, match="seed"):
        env.reset(seed=-1)
    vec = cls.vector(3, seed=0)
    vec.reset()
    with pytest.raises(ValueError, match="give 3 int actions"):
        vec.step(np.zeros(2, dtype=np.int64))


def test_runtime_fault_names_the_twl_line(build_cache, tmp_path):
    src = tmp_path / "faulty.twl"
    src.write_text("env Faulty\nparam n: int = 3\nstate b: [int in 0..10; n]\nstate k: int in 0..100\n"
                   "action poke { k += 1; b[k] = 1 }\nobserve onehot(b)\n")
    cls = twisterl.compile(src)
    env = cls(seed=0)
    env.reset()
    env.step(0)
    env.step(0)
    with pytest.raises(EnvError) as info:
        env.step(0)
    err = info.value
    assert err.kind == "IndexOutOfBounds" and err.line == 5
    assert str(err).startswith(f"{src}:5:")
    assert "index 3 is out of bounds for length 3" in str(err)


def test_compile_refuses_files_with_errors(build_cache, tmp_path):
    src = tmp_path / "bad.twl"
    src.write_text("env Bad\nstate x: int in 0..3\naction a { x = y }\nobserve onehot(x)\n")
    with pytest.raises(twisterl.CheckError, match="I cannot find a name `y`"):
        twisterl.compile(src)


def test_cache_hit_and_emit_rust(build_cache, tmp_path):
    from twisterl.build import build
    from twisterl.dsl import check_file
    result = check_file(ROOT / "examples" / "gridworld.twl")
    first = build(result.env, result.source.text)
    again = build(result.env, result.source.text, emit_dir=tmp_path / "rust")
    assert again.cached and again.library == first.library
    text = (tmp_path / "rust" / "src" / "lib.rs").read_text()
    assert text.startswith("// Generated by twisterl") and "// line" in text


def test_gridworld_rules(compiled):
    env = compiled("gridworld")(seed=0, difficulty=2)
    env.reset()
    # agent 0 (top-left), goal 2, trap 10, 64 steps left: up and left are masked.
    env.set_state([0, 2, 10, 64, 0, 0])
    np.testing.assert_array_equal(env.action_mask(), [False, True, False, True])
    obs, r, term, _, info = env.step(3)  # right: agent 1
    assert (r, term) == (0.0, False)
    cells = obs.reshape(25, 4)
    assert cells[1].argmax() == 1 and cells[2].argmax() == 2 and cells[10].argmax() == 3
    obs, r, term, _, info = env.step(3)  # right: the goal
    assert (r, term, info["success"]) == (1.0, True, True)
    env.set_state([5, 2, 10, 64, 0, 0])
    _, r, term, _, info = env.step(1)  # down: the trap
    assert (r, term, info["success"]) == (-1.0, True, False)
    env.set_state([12, 2, 10, 1, 0, 0])
    _, r, term, _, _ = env.step(0)  # the last step runs out
    assert (r, term) == (0.0, True)
    for seed in range(30):  # the goal is placed within reach of the difficulty
        env.reset(seed=seed)
        agent, goal, trap = env.get_state()[:3].astype(int)
        dist = abs(agent % 5 - goal % 5) + abs(agent // 5 - goal // 5)
        assert 0 < dist <= 2 and trap not in (agent, goal)


def test_generated_names_never_clash_with_user_names(build_cache, tmp_path):
    src = tmp_path / "hygiene.twl"
    src.write_text("env Hygiene\nstate x: float\nstate y: float\nfn id(a: float) -> float { return a }\n"
                   "action go {\n    let v1 = 5.0\n    x = id(1.0)\n    y = v1\n}\nobserve [x, y]\n")
    env = twisterl.compile(src)(seed=0)
    env.reset()
    obs, *_ = env.step(0)
    assert list(obs) == [1.0, 5.0]


def test_whole_2d_arrays_assign_and_check_ranges(build_cache, tmp_path):
    src = tmp_path / "copy2d.twl"
    src.write_text("env Copy\nstate b: [[int in 0..3; 2]; 2]\nstate t: [[int in 0..3; 2]; 2]\n"
                   "action fill { b = [[2; 2]; 2] }\naction copy { let c = b\n t = c }\n"
                   "observe onehot(b), onehot(t)\n")
    env = twisterl.compile(src)(seed=0)
    env.reset()
    env.step(0)
    env.step(1)
    assert list(env.get_state()[:8]) == [2.0] * 8


def test_float_power_is_c_pow_like_python(build_cache, tmp_path):
    import math
    src = tmp_path / "pow.twl"
    src.write_text("env Pow\nstate x: float\nstate y: float\naction go { y = x ** 2 }\nobserve [y]\n")
    env = twisterl.compile(src)(seed=0)
    env.reset()
    x = float.fromhex("0x1.600e93b8381b4p+0")  # where pow(x, 2) and x * x differ in the last bit
    env.set_state([x, 0.0, 0, 0])
    env.step(0)
    assert env.get_state()[1] == math.pow(x, 2.0)


def test_threads_do_not_change_results(compiled):
    cls = compiled("connect4")
    traces = []
    for threads in (1, 2):
        vec = cls.vector(64, seed=5, num_threads=threads)
        obs, info = vec.reset()
        rng = np.random.default_rng(1)
        trace = []
        for _ in range(40):
            obs, reward, term, trunc, info = vec.step(random_actions(vec, rng, info["action_mask"]))
            trace += [obs.copy(), info["rewards"].copy(), term.copy()]
        trace.append(vec.random_steps(50, seed=9))
        traces.append(trace)
    for a, b in zip(*traces):
        if isinstance(a, dict):
            assert a == b
        else:
            np.testing.assert_array_equal(a, b)


def test_puzzle_accepts_any_difficulty(compiled):
    env = compiled("puzzle")(size=4, difficulty=300, seed=0)
    env.reset()
    assert env.get_state()[17] == 600  # depth = depth_slope x difficulty, unbounded as in TwisteRL
