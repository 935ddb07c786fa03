"""Copying one env over another (what every search simulation does to its scratch env).
The copy skips the params and consts when both envs hold the ones one `new` computed, so
these tests copy between envs of different params, and back and forth between copies."""

from __future__ import annotations

import twisterl

SOURCE = """
env Copied
param n: int in 2..9 = 3
players 1
const weights = [i * n for i in 0..n]
state cells: [int in 0..4; n]
state total: int in 0..1000
action bump(i in 0..n) when cells[i] < 3 {
    cells[i] += 1
    total += weights[i]
    reward float(weights[i])
}
done total >= 20 * n
observe cells
"""


def compiled(tmp_path):
    path = tmp_path / "copied.twl"
    path.write_text(SOURCE)
    return twisterl.compile(path)


def test_a_copy_between_envs_of_different_params_takes_the_sources_params(tmp_path):
    cls = compiled(tmp_path)
    small, big = cls(n=2), cls(n=5)
    small.reset(seed=0)
    big.reset(seed=0)
    small.step(1)
    small.batch.copy_env(0, big.batch, 0)
    # The copy steps with the source's consts: weights[1] is 1 * 2 for n = 2, not 1 * 5.
    _, reward, _, _, _ = big.step(1)
    assert reward == 2.0
    big.step(1)
    big.batch.copy_env(0, small.batch, 0)
    assert list(small.get_state()[:2]) == [0, 3]
    _, reward, _, _, _ = small.step(0)
    assert reward == 0.0


def test_copies_back_and_forth_keep_each_envs_own_params(tmp_path):
    cls = compiled(tmp_path)
    a, b, c = cls(n=3), cls(n=3), cls(n=4)
    for env in (a, b, c):
        env.reset(seed=0)
    a.step(2)
    a.batch.copy_env(0, b.batch, 0)   # same params, computed by another `new`
    b.batch.copy_env(0, a.batch, 0)   # and back
    c.step(3)
    c.batch.copy_env(0, b.batch, 0)   # b takes c's n = 4
    _, reward, _, _, _ = b.step(1)
    assert reward == 4.0              # weights[1] = 1 * 4
    _, reward, _, _, _ = a.step(1)
    assert reward == 3.0              # a still has n = 3: weights[1] = 1 * 3
    assert list(a.get_state()[:3]) == [0, 1, 1]
