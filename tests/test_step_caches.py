"""What the step path remembers within one state means what recomputing would: the mask a
step reads legality from (`Slot::legal_into`), and views kept once computed
(`twisterl_core::memo`), also when `reset` reads views mid-way through `act()`."""

from __future__ import annotations

import pytest

GAME = """env StepCaches
state x: int in 0..10
let big = x >= 3
action inc when not big { x += 1 }
action back advise x > 0 { x = max(x - 1, 0) }
action odd when x % 2 == 1 { x -= 1 }
done big
reward if big then 1.0 else 0.0
reset {
    x = 2
    let ok = act(0)
}
observe onehot(x)
"""


@pytest.fixture(scope="module")
def cls(build_cache, tmp_path_factory):
    import twisterl
    path = tmp_path_factory.mktemp("caches") / "caches.twl"
    path.write_text(GAME)
    return twisterl.compile(path)


def test_a_view_read_mid_reset_is_not_kept_past_it(cls):
    env = cls()
    # `reset` makes x 2, then `act(0)` reads `big` (false) in `inc`'s guard and makes x 3:
    # the mask after reset must see x = 3 (`inc` masked out), not the view read inside it.
    _, info = env.reset(seed=0)
    assert env.get_state(named=True)["x"] == 3
    assert list(map(bool, info["action_mask"])) == [False, True, True]
    _, reward, term, _, info = env.step(2)  # odd: x 2, `big` false again
    assert not term and reward == 0.0 and list(map(bool, info["action_mask"])) == [True, True, False]
    _, reward, term, _, _ = env.step(0)  # inc: x 3
    assert term and reward == 1.0


def test_the_remembered_mask_refuses_what_the_guard_refuses(cls):
    import twisterl
    env = cls()
    env.reset(seed=0)
    env.set_state({"x": 2})
    env.step(1)
    info = env.step(1)[-1]  # back twice: x 0, the mask computed after each step
    assert list(map(bool, info["action_mask"])) == [True, False, False]
    with pytest.raises(twisterl.EnvError, match="not legal"):
        env.step(2)  # refused from the mask the last step computed, as the guard refuses it
    env.set_state({"x": 0})
    env.step(0)  # x 1: `back` now in the mask
    env.step(1)  # x 0: `back` masked out, but advisory
    _, _, term, _, _ = env.step(1)  # so it is still allowed, and runs
    assert not term and env.get_state(named=True)["x"] == 0
    env.set_state({"x": 2})
    env.step(0)  # x 3: the episode ends
    with pytest.raises(twisterl.EnvError):
        env.step(0)
