"""Multi-player envs through PettingZoo's AEC API, checked by PettingZoo's own api_test."""

import os

import numpy as np
import pytest

pytest.importorskip("pettingzoo")
from pettingzoo.test import api_test  # noqa: E402

from twisterl.pettingzoo import aec_env  # noqa: E402

ROOT = os.path.join(os.path.dirname(__file__), "..")


@pytest.mark.parametrize("name", ["tictactoe", "connect4"])
def test_api_test_passes(name):
    env = aec_env(os.path.join(ROOT, "examples", f"{name}.twl"))
    api_test(env, num_cycles=200)


def test_turns_rewards_and_views():
    env = aec_env(os.path.join(ROOT, "examples", "tictactoe.twl"))
    env.reset(seed=0)
    assert env.agent_selection == "player_0"
    for action in (0, 3, 1, 4):
        env.step(action)
    obs = env.observe("player_0")
    assert obs["action_mask"].sum() == 5 and env.observe("player_1")["action_mask"].sum() == 0
    # Each player sees the board from its own side: swapping sides swaps the planes.
    a, b = env.observe("player_0")["observation"], env.observe("player_1")["observation"]
    assert not np.array_equal(a, b)
    env.step(2)  # X completes the top row
    assert all(env.terminations.values())
    _, reward, term, _, _ = env.last()
    assert term and env._cumulative_rewards["player_0"] == 1.0 and env._cumulative_rewards["player_1"] == -1.0
    agents = []
    for agent in env.agent_iter():
        agents.append(agent)
        env.step(None)
    assert sorted(agents) == ["player_0", "player_1"] and env.agents == []
