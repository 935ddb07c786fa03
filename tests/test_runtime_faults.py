"""The runtime under abuse: absurd sizes, threads, Ctrl-C, huge loops, exact params,
named states, independent random streams and `twisterl run`. Anything that could kill
the interpreter runs in a subprocess, so a crash fails the test instead of pytest."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
import pytest

import twisterl
from twisterl import EnvError

ROOT = Path(__file__).resolve().parents[1]
PUZZLE = str(ROOT / "examples" / "puzzle.twl")


def _python(code: str, build_cache, timeout: float = 120, **kw) -> subprocess.CompletedProcess:
    env = {**os.environ, "TWISTERL_CACHE_DIR": str(build_cache)}
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                          timeout=timeout, env=env, cwd=ROOT, **kw)


def _write(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / f"{name}.twl"
    path.write_text(textwrap.dedent(text))
    return str(path)


# ---------------------------------------------------------------- sizes and threads

@pytest.mark.parametrize("num_envs", [2**40, 2**62, 2**64 + 5])
def test_absurd_vectors_are_refused_with_the_memory_they_would_take(compiled, num_envs):
    puzzle = compiled("puzzle")
    with pytest.raises((MemoryError, ValueError), match=r"would need about [\d.]+ [kMGTPE]?B .*per env"):
        puzzle.vector(num_envs)
    assert puzzle.vector(8).num_envs == 8  # the class is still usable


@pytest.mark.parametrize("bad", [0, -1, 10_000, 2.0, True, "2"])
def test_thread_counts_are_validated_up_front(compiled, bad):
    start = time.perf_counter()
    with pytest.raises(ValueError, match="num_threads"):
        compiled("puzzle").vector(4, num_threads=bad)
    assert time.perf_counter() - start < 1.0


@pytest.mark.parametrize("bad", [-1, 1.5, "3", True, None])
def test_vector_and_single_envs_validate_difficulty_alike(compiled, bad):
    puzzle = compiled("puzzle")
    with pytest.raises(ValueError, match="difficulty"):
        puzzle(difficulty=bad)
    with pytest.raises(ValueError, match="difficulty"):
        puzzle.vector(2, difficulty=bad)
    vec = puzzle.vector(2)
    with pytest.raises(ValueError, match="difficulty"):
        vec.set_difficulty(bad)


def test_one_env_and_one_vector_shared_by_many_threads(build_cache):
    """Every object takes one call at a time: no panic, no corrupted state, no crash."""
    code = f"""
    import threading, numpy as np, twisterl
    from twisterl import EnvError
    P = twisterl.compile({PUZZLE!r})
    vec = P.vector(32, seed=0, difficulty=6, num_threads=2)
    vec.reset()
    env = P(seed=1, difficulty=6)
    env.reset()
    errors = []
    def hammer(k):
        rng = np.random.default_rng(k)
        try:
            for i in range(300):
                op = i % 6
                if op == 0:
                    vec.random_steps(20, seed=k)
                elif op == 1:
                    assert vec.observe().shape == (32, 81)
                elif op == 2:
                    vec.reset()
                elif op == 3:
                    obs, info = env.reset()
                    legal = np.flatnonzero(info["action_mask"])
                    try:
                        env.step(int(rng.choice(legal)))
                    except EnvError as exc:  # another thread moved the env in between
                        assert exc.kind in ("IllegalAction", "EpisodeOver"), exc
                elif op == 4:
                    state = env.get_state()
                    assert state.shape == (13,) and sorted(state[:9]) == list(range(9))
                else:
                    vec.render(k % 32); env.render(); env.action_mask()
        except Exception as exc:
            errors.append(repr(exc))
    threads = [threading.Thread(target=hammer, args=(k,)) for k in range(6)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    assert not errors, errors
    print("ok")
    """
    for _ in range(3):
        proc = _python(code, build_cache)
        assert proc.returncode == 0 and "ok" in proc.stdout, proc.stderr[-3000:]


# ---------------------------------------------------------------- long work

def test_a_loop_of_absurd_length_is_refused_at_its_line(compiled):
    env = compiled("puzzle")(difficulty=2**63 - 1)
    with pytest.raises(EnvError, match=r"puzzle.twl:\d+:\d+: a loop of 9223372036854775807 iterations is too long"):
        env.reset()
    env.set_difficulty(3)
    env.reset()  # still usable


@pytest.mark.parametrize("threads", [1, 2])
def test_ctrl_c_stops_long_rust_work(build_cache, threads):
    code = f"""
    import time, twisterl
    P = twisterl.compile({PUZZLE!r})
    vec = P.vector(2, num_threads={threads}, difficulty=10**9)
    print("ready", flush=True)
    start = time.time()
    try:
        vec.reset()
        print("finished")
    except KeyboardInterrupt:
        print(f"interrupted after {{time.time() - start:.1f}} s", flush=True)
        vec.set_difficulty(2)
        vec.reset()  # the batch is usable afterwards
        print("usable")
    """
    env = {**os.environ, "TWISTERL_CACHE_DIR": str(build_cache)}
    proc = subprocess.Popen([sys.executable, "-c", textwrap.dedent(code)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT)
    assert proc.stdout.readline().strip() == "ready"
    time.sleep(1.0)
    sent = time.time()
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    assert time.time() - sent < 5, "Ctrl-C took too long"
    assert "interrupted after" in out and "usable" in out, (out, err[-2000:])


def test_twisterl_run_ends_on_an_env_that_never_ends(tmp_path, build_cache):
    path = _write(tmp_path, "forever", """\
        env Forever
        state x: int in 0..10
        action tick { x = (x + 1) % 10 }
        reset { x = 0 }
        done false
        reward -1.0
        observe onehot(x)
        """)
    proc = subprocess.run([sys.executable, "-m", "twisterl", "run", path, "--episodes", "7", "--max-length", "500"],
                          capture_output=True, text=True, timeout=120,
                          env={**os.environ, "TWISTERL_CACHE_DIR": str(build_cache)})
    assert proc.returncode == 0, proc.stderr
    assert "0 episodes, 3,500 steps" in proc.stdout
    assert "7 episodes did not end within 500 steps and were cut" in proc.stdout


def test_twisterl_run_plays_exactly_n_whole_episodes(tmp_path, build_cache):
    # A -1 per step Hanoi-like env: the mean return must equal minus the mean length.
    path = _write(tmp_path, "walk", """\
        env Walk
        state x: int in 0..6
        action left when x > 0 { x = x - 1 }
        action right { x = x + 1 }
        reset { x = 0 }
        done x == 5
        reward -1.0
        observe onehot(x)
        """)
    cache = {**os.environ, "TWISTERL_CACHE_DIR": str(build_cache)}
    proc = subprocess.run([sys.executable, "-m", "twisterl", "run", path, "--episodes", "1000", "--num-envs", "64"],
                          capture_output=True, text=True, timeout=120, env=cache)
    assert proc.returncode == 0, proc.stderr
    assert "env Walk: 1,000 episodes," in proc.stdout
    line = next(x for x in proc.stdout.splitlines() if "mean return" in x)
    ret, length = float(line.split("mean return ")[1].split(",")[0]), float(line.split("mean length ")[1])
    assert ret == pytest.approx(-length, abs=0.051)
    duel = subprocess.run([sys.executable, "-m", "twisterl", "run", str(ROOT / "examples" / "connect4.twl"),
                           "--episodes", "50"], capture_output=True, text=True, timeout=120, env=cache)
    assert "player 0" in duel.stdout and "player 1" in duel.stdout and " 50 episodes" in duel.stdout


# ---------------------------------------------------------------- params

def test_int_params_travel_exactly_and_errors_name_the_param(tmp_path, compiled):
    path = _write(tmp_path, "exact", """\
        env Exact
        param m: int = 9223372036854775807
        param k: int = 0
        state x: int in 0..2
        action go { x = 1 }
        reset { x = 0 }
        done x == 1
        reward if k == 9007199254740993 then 1.0 else 0.0
        observe onehot(x)
        """)
    cls = twisterl.compile(path)
    env = cls()  # the default itself is usable
    env.reset(seed=0)
    env = cls(k=9007199254740993)
    env.reset(seed=0)
    assert env.step(0)[1] == 1.0  # 2**53 + 1 arrived exactly
    env = cls(k=9007199254740992)
    env.reset(seed=0)
    assert env.step(0)[1] == 0.0
    with pytest.raises(ValueError, match="param `k` of Exact must fit in 64 bits"):
        cls(k=2**63)
    cartpole = compiled("cartpole")
    cartpole(max_steps=2**63 - 1).reset(seed=0)
    for bad in (float("nan"), float("inf"), -float("inf")):
        with pytest.raises(ValueError, match="param `gravity` of CartPole must be a finite float"):
            cartpole(gravity=bad)


# ---------------------------------------------------------------- states

def test_named_states_round_trip_and_bad_keys_list_the_names(compiled):
    env = compiled("cartpole")(seed=0)
    env.reset(seed=3)
    named = env.get_state(named=True)
    assert list(named) == ["x", "x_dot", "theta", "theta_dot", "player", "steps"]
    env.set_state({"x": 0.1, "theta": 0.0})  # the rest keeps its values
    after = env.get_state(named=True)
    assert after["x"] == 0.1 and after["theta"] == 0.0 and after["x_dot"] == named["x_dot"]
    with pytest.raises(KeyError, match=r"no state variable `thetta`; did you mean `theta`\? \(its state: x, x_dot"):
        env.set_state({"thetta": 0.0})
    puzzle = compiled("puzzle")(seed=0)
    puzzle.reset()
    state = puzzle.get_state(named=True)
    assert state["board"].tolist() == list(range(9)) and state["blank"] == 0
    with pytest.raises(ValueError, match="state `board` takes 9 values, not 3"):
        puzzle.set_state({"board": [0, 1, 2]})
    for bad, shown in ((0.5, "0.5"), (float("nan"), "NaN"), (12, "12")):
        with pytest.raises(EnvError, match=f"the value {shown} is not an int in the declared range 0..9"):
            puzzle.set_state({"blank": bad})


def test_set_state_into_a_done_state_follows_the_reset_rule(compiled):
    """A state that already satisfies `done` starts an episode either way: endings are
    judged after steps, whether it came from `reset` or from `set_state`."""
    puzzle = compiled("puzzle")
    by_reset = puzzle(seed=0, difficulty=0)
    _, info = by_reset.reset()  # difficulty 0: solved at once
    by_state = puzzle(seed=0, difficulty=4)
    by_state.reset()
    by_state.set_state(by_reset.get_state())
    action = int(np.flatnonzero(info["action_mask"])[0])
    assert by_reset.step(action)[2:4] == by_state.step(action)[2:4]


# ---------------------------------------------------------------- random streams

def test_random_actions_do_not_replay_the_envs_own_draws(compiled):
    """Random presses on a vector seeded like the actions must not undo its scrambles."""
    vec = compiled("puzzle").vector(64, seed=5, difficulty=10)
    stats = vec.random_episodes(400, seed=5, max_length=20)
    assert stats["episodes"] + stats["cut"] == 400
    assert stats["successes"] / 400 < 0.5
    same = compiled("puzzle").vector(64, seed=5, difficulty=10).random_episodes(400, seed=5, max_length=20)
    assert same == stats  # and everything stays reproducible


def test_param_sized_arrays_are_checked_before_allocating(tmp_path):
    path = _write(tmp_path, "sized", """\
        env Sized
        param n: int in 1..1000000000000 = 4
        param m: int = 2
        state board: [int in 0..3; n]
        action poke(i in 0..n) { board[i] = 1 }
        reset { board = [0; n] }
        done all(board[i] == 1 for i in 0..n) or m < 0
        reward 1.0
        observe onehot(board)
        """)
    cls = twisterl.compile(path)
    for n in (10**11, 100_000_001):
        with pytest.raises(EnvError, match=r"sized.twl:4:1: \d+ elements of 8 bytes each \([\d.]+ [MGT]B\) cannot be allocated"):
            cls(n=n)
    assert cls(n=1000).reset(seed=0)[0].shape == (3000,)


# ---------------------------------------------------------------- search with chance

DICE = """\
    env Bet
    state rolled: int in 0..7
    state over: bool
    action bet {
        rolled = randint(1, 7)
        over = true
        reward if rolled == 6 then 1.0 else -1.0
    }
    action pass { over = true }
    reset {
        rolled = 0
        over = false
    }
    done over
    observe onehot(rolled)
    """


def test_search_samples_the_dice_instead_of_reading_the_future(tmp_path):
    """Betting wins on a 6 only: worth 1/6 - 5/6 = -2/3, so passing (worth 0) is right
    whatever the env's own stream will roll next. A search that copied the env's stream
    would see the coming roll and bet whenever it is a 6."""
    cls = twisterl.compile(_write(tmp_path, "bet", DICE))
    sixes, q_bets = 0, []
    for seed in range(24):
        env = cls(seed=seed)
        env.reset(seed=seed)
        probe = cls(seed=seed)
        probe.reset(seed=seed)
        sixes += probe.step(0)[1] > 0  # what the env's own stream rolls next
        result = twisterl.mcts(env, simulations=600, seed=seed)
        assert result.action == 1, f"seed {seed}: the search bet"
        q_bets.append(result.q[0])
    assert sixes > 0  # some of these roots would have fooled a clairvoyant search
    assert np.mean(q_bets) == pytest.approx(-2 / 3, abs=0.1)


def test_a_step_limit_truncates_on_top_of_the_envs_own_endings(compiled):
    puzzle = compiled("puzzle")
    env = puzzle(seed=0, difficulty=30, max_episode_steps=3)
    env.reset(seed=0)
    ends = [env.step(int(np.flatnonzero(env.action_mask())[0]))[2:4] for _ in range(3)]
    assert ends[-1] == (False, True) and not any(any(e) for e in ends[:2])
    vec = puzzle.vector(8, seed=0, difficulty=30, max_episode_steps=5)
    stats = vec.random_episodes(40, max_length=1000)
    assert stats["episodes"] == 40 and stats["length_sum"] <= 40 * 5
    vec.reset(seed=1)  # a reseed keeps the limit
    assert vec.random_episodes(8, max_length=1000)["length_sum"] <= 8 * 5
    with pytest.raises(ValueError, match="max_episode_steps"):
        puzzle(max_episode_steps=-1)


def test_train_picks_a_step_limit_for_an_env_that_never_ends(tmp_path, build_cache):
    path = _write(tmp_path, "endless", """\
        env Endless
        state x: int in 0..10
        action left { x = max(x - 1, 0) }
        action right { x = min(x + 1, 9) }
        reset { x = 0 }
        done false
        reward if x == 9 then 1.0 else 0.0
        observe onehot(x)
        """)
    env = {**os.environ, "TWISTERL_CACHE_DIR": str(build_cache)}
    small = tmp_path / "small.json"
    small.write_text('{"num_envs": 8, "num_steps": 64, "embedding_size": 16, "common_layers": [16]}')
    run = tmp_path / "run"
    proc = subprocess.run([sys.executable, "-m", "twisterl", "train", path, "--config", str(small), "--out", str(run),
                           "--iterations", "3"], capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr
    assert "auto: max_episode_steps 1000 because Endless declares no `truncate`" in proc.stdout
    saved = json.loads((run / "config.json").read_text())["config"]
    assert saved["max_episode_steps"] == 1000
    mine = tmp_path / "mine.json"
    mine.write_text('{"num_envs": 8, "num_steps": 64, "embedding_size": 16, "common_layers": [16], '
                    '"max_episode_steps": 20}')
    proc = subprocess.run([sys.executable, "-m", "twisterl", "train", path, "--config", str(mine), "--out",
                           str(tmp_path / "run2"), "--iterations", "2"], capture_output=True, text=True, timeout=300,
                          env=env)
    assert proc.returncode == 0 and "auto: max_episode_steps" not in proc.stdout
    rows = (tmp_path / "run2" / "metrics.csv").read_text().splitlines()
    assert len(rows) == 3 and "nan" not in rows[1].split(",")[3]  # episodes end: a mean return exists


def test_an_episode_can_end_both_ways_at_once(tmp_path, build_cache):
    """As Gymnasium's TimeLimit: a step that terminates when the limit (or the env's own
    `truncate`) also falls reports both."""
    cls = twisterl.compile(_write(tmp_path, "both", """\
        env Both
        state x: int in 0..5
        action go { x = min(x + 1, 4) }
        done steps >= 3
        truncate steps >= 3
        reward 1.0
        observe onehot(x)
        """))
    for env in (cls(), cls(max_episode_steps=3)):
        env.reset(seed=0)
        assert [env.step(0)[2:4] for _ in range(3)] == [(False, False), (False, False), (True, True)]
