"""A search with no network runs inside the env's plugin (one call, the env's code inlined
into the search). It must be the same search as the one driven from the runtime: the
same visits, priors, values and best move for every seed, the same refusals and the
same located faults, and Ctrl-C still stops it."""

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

import twisterl
from twisterl import _core
from twisterl.envs.env import EnvError
from twisterl.search import _root_batch, agent

ROOT = Path(__file__).parent.parent


@pytest.fixture(scope="module")
def compiled():
    cache = {}

    def get(name):
        if name not in cache:
            cache[name] = twisterl.compile(str(ROOT / "examples" / f"{name}.twl"))
        return cache[name]
    return get


def both_ways(env, seed, state=None, **options):
    """The search's five results, from inside the plugin and from the runtime."""
    opts = agent(None, cls=env.cls, params=env.params, **options)
    root = _root_batch(env, state)
    found = []
    for in_plugin in (True, False):
        scratch = env.cls.create(env.params, opts["leaf_batch"] + 2, 0, 1)
        found.append(env._call(_core.search, root, 0, scratch, opts, seed, in_plugin))
    return found


def assert_same(inside, outside):
    for a, b, what in zip(inside, outside, ["visits", "value", "best", "priors", "q"]):
        assert np.array_equal(np.asarray(a), np.asarray(b), equal_nan=True), what


def played_into(env, moves, rng):
    """`env` after up to `moves` random moves that do not end the game."""
    env.reset(seed=0)
    for _ in range(moves):
        mask = env.action_mask()
        _, _, term, trunc, _ = env.step(int(rng.choice(np.flatnonzero(mask))))
        if term or trunc:
            env.reset(seed=0)
    return env


@pytest.mark.parametrize("name", ["tictactoe", "connect4", "mancala", "dots_and_boxes", "othello", "puzzle",
                                  "blackjack", "maze"])
def test_the_plugin_searches_exactly_as_the_runtime_does(compiled, name):
    rng = np.random.default_rng(7)
    cls = compiled(name)
    for k, options in enumerate([dict(simulations=200), dict(simulations=150, leaf_batch=3, uct_c=1.1),
                                 dict(simulations=64, dirichlet_frac=0.25, dirichlet_alpha=0.5, rollout_limit=5)]):
        env = played_into(cls(seed=k, difficulty=4), int(rng.integers(0, 6)), rng)
        inside, outside = both_ways(env, seed=11 + k, **options)
        assert_same(inside, outside)
        assert inside[0].sum() == options["simulations"] - 1  # the first one expands the root


def test_chance_is_sampled_the_same_way_inside_the_plugin(tmp_path):
    path = tmp_path / "dice.twl"
    path.write_text(textwrap.dedent("""\
        env Dice
        state total: int in 0..100
        state over: bool
        action roll {
            let d = randint(1, 7)
            if d == 1 { total = 0; over = true } else { total = min(total + d, 99) }
        }
        action hold { over = true; reward float(total) / 10.0 }
        reset { total = 0; over = false }
        done over
        observe onehot(total)
        """))
    cls = twisterl.compile(str(path))
    for seed in range(4):
        env = cls(seed=seed)
        env.reset(seed=seed)
        for _ in range(seed):
            if env.step(0)[2]:  # rolled a 1
                env.reset(seed=seed)
        assert_same(*both_ways(env, seed=seed, simulations=300, leaf_batch=1 + seed % 2))


def test_refusals_and_faults_read_the_same_from_inside_the_plugin(compiled, tmp_path):
    ttt = compiled("tictactoe")
    env = ttt()
    env.reset(seed=0)
    over = np.array([1, 2, 0, 1, 2, 0, 1, 0, 0, 1, 1, 5], dtype=np.float64)  # X has the left column
    messages = []
    for in_plugin in (True, False):
        opts = agent(None)
        with pytest.raises(ValueError, match="episode is over") as info:
            env._call(_core.search, _root_batch(env, over), 0, ttt.create({}, 1, 0, 1), opts, 0, in_plugin)
        messages.append(str(info.value))
    assert messages[0] == messages[1]
    # A fault several steps into the tree or a rollout names its line, either way.
    path = tmp_path / "overflow.twl"
    path.write_text(textwrap.dedent("""\
        env Overflow
        state x: int in 0..6
        action up { x = x + 1 }
        action stay { x = x }
        reset { x = 0 }
        done false
        observe onehot(x)
        """))
    cls = twisterl.compile(str(path))
    env = cls()
    env.reset(seed=0)
    faults = []
    for in_plugin in (True, False):
        opts = agent(None, simulations=50)
        with pytest.raises(EnvError, match=r"overflow.twl:3:") as info:
            env._call(_core.search, env.batch, 0, cls.create({}, 1, 0, 1), opts, 0, in_plugin)
        faults.append(str(info.value))
    assert faults[0] == faults[1]
    assert env.reset(seed=1)[0] is not None  # the env is still usable


def test_ctrl_c_stops_a_long_search_inside_the_plugin(build_cache):
    code = f"""
    import time, twisterl
    C = twisterl.compile({str(ROOT / "examples" / "connect4.twl")!r})
    env = C()
    env.reset(seed=0)
    print("ready", flush=True)
    start = time.time()
    try:
        twisterl.mcts(env, simulations=10**9)
        print("finished")
    except KeyboardInterrupt:
        print(f"interrupted after {{time.time() - start:.1f}} s", flush=True)
        print("usable", int(twisterl.mcts(env, simulations=20).visits.sum()))
    """
    proc = subprocess.Popen([sys.executable, "-c", textwrap.dedent(code)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=ROOT,
                            env={**os.environ, "TWISTERL_CACHE_DIR": str(build_cache)})
    assert proc.stdout.readline().strip() == "ready"
    time.sleep(1.0)
    sent = time.time()
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert time.time() - sent < 5, "Ctrl-C took too long"
    assert "interrupted after" in out and "usable 19" in out, (out, err[-2000:])


PICK = """\
    env Pick
    const legal_ids = {ids}
    state started: bool
    state over: bool
    action go when not started {{ started = true }}
    action pick(k in 0..64) when started and not over and {guard} {{
        over = true
        reward float(k) / 63.0
    }}
    reset {{ started = false; over = false }}
    done over
    observe onehot(started)
    """


@pytest.mark.parametrize("guard", ["any(j == k for j in legal_ids)", "k % {step} == 0"])
@pytest.mark.parametrize("step", [1, 3, 21])
def test_random_playouts_draw_uniformly_among_the_legal_actions(tmp_path, guard, step):
    """Playouts draw by rejection or from the mask (by the guard's cost and the mask's
    density); either way each legal action is equally likely. With 2 simulations, the
    only child's value is one playout's reward: the mean of `k / 63` over the legal ids."""
    ids = list(range(0, 64, step))
    name = f"pick_{step}_{'loop' if 'any' in guard else 'plain'}"
    path = tmp_path / f"{name}.twl"
    path.write_text(textwrap.dedent(PICK.format(ids=ids, guard=guard.format(step=step))))
    cls = twisterl.compile(str(path))
    env = cls()
    env.reset(seed=0)
    values = [twisterl.mcts(env, simulations=2, seed=s).q[0] for s in range(600)]
    expected = np.mean(ids) / 63
    spread = np.std(ids) / 63 / np.sqrt(len(values))
    assert abs(np.mean(values) - expected) < 4 * spread + 1e-9, (np.mean(values), expected)
    seen = {round(v * 63) for v in values}
    assert seen <= set(ids) and (len(ids) > 20 or seen == set(ids))


def test_playouts_over_a_looping_family_that_params_leave_empty(tmp_path):
    """Rejection draws over a family whose guard loops, for every size of that family
    the params allow, down to none: the other action still plays every episode out."""
    path = tmp_path / "empty_family.twl"
    path.write_text(textwrap.dedent("""\
        env EmptyFamily
        param m: int in 0..10 = 3
        state t: int in 0..20
        action pick(k in 0..m) when any(j == k for j in 0..m) { t = min(t + 2, 19) }
        action wait when t < 19 { t += 1 }
        reset { t = 0 }
        done t >= 19
        observe onehot(t)
        """))
    cls = twisterl.compile(str(path))
    for m in (0, 1, 9):
        vec = cls.vector(4, m=m, num_threads=2)
        stats = vec.random_episodes(8, seed=m)
        assert stats["episodes"] == 8 and stats["cut"] == 0
        if m == 0:
            assert stats["length_sum"] == 8 * 19  # only `wait` is ever legal
        env = cls(m=m)
        env.reset(seed=0)
        result = twisterl.mcts(env, simulations=40, seed=m)
        assert result.visits.sum() == 39 and result.visits[:m].sum() + result.visits[m] == 39


FAMILIES = """\
    env Families
    param phase: int in 0..2 = 0
    param ends: int in 0..3 = 1
    const board = [[1, 0, 1, 1], [0, 1, 1, 0], [1, 1, 0, 1], [0, 0, 1, 1]]
    state stage: int in 0..3
    state over: bool
    action go when stage == 0 { stage = 1 }
    action wait when stage == 1 { stage = 2 }
    action move(r in 0..4, c in 0..4, d in 0..3) when stage == 2 and not over and r % 2 <= phase
        and board[r][c] == 1 and (if phase == 0 then d != 1 else d == 2 or board[c][r] == 0) {
        over = true
        reward float(2 + r * 12 + c * 3 + d) / 64.0
    }
    action rest(k in 0..2) when stage == 2 and not over and k <= phase {
        over = true
        reward float(50 + k) / 64.0
    }
    action end(k in 0..ends) {
        over = true
        reward float(52 + k + 3 * stage) / 64.0
    }
    reset { stage = 0; over = false }
    done over
    observe onehot(stage)
    """


@pytest.mark.parametrize("phase", [0, 1])
@pytest.mark.parametrize("ends", [0, 2])
def test_playouts_draw_the_legal_ids_of_structured_families(tmp_path, phase, ends):
    """The playouts' list of legal ids, made in the mask's own walk (hoisted tests that
    skip ids, an unswitched `if`, a family with no guard, one that params leave empty),
    holds exactly the actions the mask marks. The tree plays `go`; the playout's first
    step (`wait`, or an `end`) draws from the leaf's mask, its second from the list. Each
    reward names the action drawn (and an `end`'s, the stage), so over many searches
    every legal action of the last stage appears, and no other."""
    path = tmp_path / "families.twl"
    path.write_text(textwrap.dedent(FAMILIES))
    cls = twisterl.compile(str(path))
    probe = cls(phase=phase, ends=ends)
    probe.reset(seed=0)
    probe.step(0)
    _, _, _, _, info = probe.step(1)
    last = np.flatnonzero(info["action_mask"]).tolist()
    expected = {a + 6 if a >= 52 else a for a in last} | {55 + k for k in range(ends)}
    env = cls(phase=phase, ends=ends)
    env.reset(seed=0)
    drawn = set()
    for s in range(800):
        result = twisterl.mcts(env, simulations=2, seed=s)
        if result.visits[0] > 0:
            drawn.add(round(float(result.q[0]) * 64))
    assert drawn == expected
