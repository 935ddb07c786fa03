"""Generated environments against code nobody here wrote: Gymnasium's references."""

from __future__ import annotations

import numpy as np
import pytest

gymnasium = pytest.importorskip("gymnasium")


def test_cartpole_matches_gymnasium_step_for_step(compiled):
    ours = compiled("cartpole")(seed=0)
    ours.reset()
    ref = gymnasium.make("CartPole-v1")
    rng = np.random.default_rng(2024)
    ended, compared = 0, 0
    for seq in range(25):
        ref.reset(seed=seq)
        start = rng.uniform(-0.05, 0.05, size=4)
        ref.unwrapped.state = start.copy()
        ours.set_state(list(start) + [0, 0])
        for t in range(500):
            a = int(rng.integers(0, 2)) if seq % 3 else int(t % 7 < 3)
            ref_obs, ref_r, ref_term, ref_trunc, _ = ref.step(a)
            obs, r, term, trunc, _ = ours.step(a)
            np.testing.assert_allclose(obs, ref_obs.astype(np.float32), rtol=0, atol=1e-6)
            assert (r, term, trunc) == (ref_r, ref_term, ref_trunc), (seq, t)
            compared += 1
            if term or trunc:
                ended += 1
                break
    # Every sequence reached an ending (a fall, or the 500-step truncation) in step with
    # Gymnasium, over a few hundred compared steps at least.
    assert ended == 25 and compared > 25 * 8


def test_pendulum_matches_gymnasium_step_for_step(compiled):
    ours = compiled("pendulum")(seed=0)
    ours.reset()
    ref = gymnasium.make("Pendulum-v1")
    rng = np.random.default_rng(7)
    for seq in range(20):
        ref.reset(seed=seq)
        th, thdot = rng.uniform(-np.pi, np.pi), rng.uniform(-1, 1)
        ref.unwrapped.state = np.array([th, thdot])
        ours.set_state([th, thdot, 0, 0])
        for t in range(200):
            u = np.array([rng.uniform(-2.5, 2.5)], dtype=np.float32)
            ref_obs, ref_r, ref_term, ref_trunc, _ = ref.step(u)
            obs, r, term, trunc, _ = ours.step(u)
            np.testing.assert_allclose(obs, ref_obs, rtol=0, atol=1e-6)
            # numpy's float32 `u ** 2` is not always correctly rounded: allow its last bit.
            assert r == pytest.approx(float(ref_r), rel=0, abs=1e-10)
            assert (term, trunc) == (ref_term, ref_trunc)
            if trunc:
                break


@pytest.mark.parametrize("name, gym_id, sample_state", [
    ("mountaincar", "MountainCar-v0", lambda rng: [rng.uniform(-1.2, 0.5), rng.uniform(-0.07, 0.07)]),
    ("acrobot", "Acrobot-v1", lambda rng: list(rng.uniform(-0.1, 0.1, size=4))),
])
def test_classic_control_matches_gymnasium(compiled, name, gym_id, sample_state):
    ours = compiled(name)(seed=0)
    ours.reset()
    ref = gymnasium.make(gym_id)
    rng = np.random.default_rng(11)
    n_actions = ref.action_space.n
    for seq in range(10):
        ref.reset(seed=seq)
        start = np.array(sample_state(rng), dtype=np.float64)
        ref.unwrapped.state = start.copy()
        ours.set_state(list(start) + [0, 0])
        for t in range(500):
            a = int(rng.integers(0, n_actions))
            ref_obs, ref_r, ref_term, ref_trunc, _ = ref.step(a)
            obs, r, term, trunc, _ = ours.step(a)
            np.testing.assert_array_equal(obs, ref_obs.astype(np.float32))
            assert (r, term, trunc) == (ref_r, ref_term, ref_trunc), (seq, t)
            if term or trunc:
                break


def _cliff_index(obs) -> int:
    [index] = np.flatnonzero(obs)
    return int(index)


def test_cliffwalking_matches_gymnasium_step_for_step(compiled):
    CliffWalking = compiled("cliffwalking")
    ours = CliffWalking(seed=0)
    ref = gymnasium.make("CliffWalking-v1")
    # Gymnasium's defaults: not slippery, and no time limit (so no truncation either).
    assert ref.spec.max_episode_steps is None and not ref.unwrapped.is_slippery
    assert CliffWalking.params["is_slippery"].default is False
    rng = np.random.default_rng(5)
    endings = cliffs = 0
    for seq in range(200):
        ref_obs, _ = ref.reset(seed=seq)
        obs, _ = ours.reset()
        assert obs.shape == (48,) and _cliff_index(obs) == ref_obs == 36
        # Half the walks lean to the right, so that many reach the goal (or the cliff).
        p = [0.25] * 4 if seq % 2 else [0.2, 0.45, 0.2, 0.15]
        for t in range(300):
            a = int(rng.choice(4, p=p))
            ref_obs, ref_r, ref_term, ref_trunc, _ = ref.step(a)
            obs, r, term, trunc, _ = ours.step(a)
            assert (_cliff_index(obs), r, term, trunc) == (ref_obs, ref_r, ref_term, ref_trunc), (seq, t)
            cliffs += ref_r == -100
            if ref_term or ref_trunc:
                endings += 1
                break
    assert endings >= 20 and cliffs >= 100


def test_cliffwalking_slippery_matches_gymnasium_transition_frequencies(compiled):
    """Gymnasium's transition table against our frequencies, from every reachable cell."""
    ours = compiled("cliffwalking")(is_slippery=True, seed=3)
    ref = gymnasium.make("CliffWalkingSlippery-v1").unwrapped
    assert ref.is_slippery
    n = 300
    chi2 = 0.0
    dof = 0
    cells = [s for s in range(48) if s // 12 < 3] + [36]
    for s in cells:
        for a in range(4):
            expected = {}
            for prob, s2, r2, term2 in ref.P[s][a]:
                key = (int(s2), float(r2), bool(term2))
                expected[key] = expected.get(key, 0.0) + prob
            counts = dict.fromkeys(expected, 0)
            for _ in range(n):
                ours.set_state({"r": s // 12, "c": s % 12})
                obs, r, term, trunc, _ = ours.step(a)
                key = (_cliff_index(obs), r, term)
                assert key in counts and not trunc, (s, a, key, sorted(expected))
                counts[key] += 1
            for key, prob in expected.items():
                # 5 standard deviations of a binomial frequency.
                tol = 5 * np.sqrt(prob * (1 - prob) / n) + 1e-9
                assert abs(counts[key] / n - prob) <= tol, (s, a, key, counts, expected)
                chi2 += (counts[key] - n * prob) ** 2 / (n * prob)
            dof += len(expected) - 1
    assert dof > 200
    assert chi2 < dof + 5 * np.sqrt(2 * dof), (chi2, dof)


@pytest.mark.parametrize("map_name, gym_id", [("MAP_4X4", "FrozenLake-v1"), ("MAP_8X8", "FrozenLake8x8-v1")])
def test_frozenlake_matches_gymnasium(compiled, map_name, gym_id):
    """The map, the time limit and the slippery transition table of Gymnasium's FrozenLake
    (4x4 and 8x8): every cell's and action's outcome frequencies against `P`."""
    FrozenLake = compiled("frozenlake")
    ref = gymnasium.make(gym_id)
    size = ref.unwrapped.ncol
    ours = FrozenLake(map_name=map_name, seed=4)
    assert ours.observation_space.shape == (size * size,)
    assert [line.replace(" ", "") for line in ours.render().replace("@", ".").splitlines()] == \
        ["".join("H" if ch == b"H" else "G" if ch == b"G" else "." for ch in row) for row in ref.unwrapped.desc]
    # The time limit: a walk that keeps bumping the top-left corner is truncated then.
    ours.reset()
    for t in range(ref.spec.max_episode_steps):
        ours.set_state({"r": 0, "c": 0})
        _, _, term, trunc, _ = ours.step(3)
        assert not term and trunc == (t == ref.spec.max_episode_steps - 1), t
    n, chi2, dof = 200, 0.0, 0
    for s in range(size * size):
        if ref.unwrapped.desc.flat[s] in (b"H", b"G"):
            continue
        for a in range(4):
            expected = {}
            for prob, s2, r2, term2 in ref.unwrapped.P[s][a]:
                key = (int(s2), float(r2), bool(term2))
                expected[key] = expected.get(key, 0.0) + prob
            counts = dict.fromkeys(expected, 0)
            for _ in range(n):
                ours.reset()
                ours.set_state({"r": s // size, "c": s % size})
                obs, r, term, _, _ = ours.step(a)
                key = (int(np.flatnonzero(obs)[0]), r, term)
                assert key in counts, (s, a, key, sorted(expected))
                counts[key] += 1
            for key, prob in expected.items():
                assert abs(counts[key] / n - prob) <= 5 * np.sqrt(prob * (1 - prob) / n) + 1e-9, (s, a, counts)
                chi2 += (counts[key] - n * prob) ** 2 / (n * prob)
            dof += len(expected) - 1
    assert chi2 < dof + 5 * np.sqrt(2 * dof), (chi2, dof)
