"""Multi-player envs through PettingZoo's AEC API (agents take turns).

    from twisterl.pettingzoo import aec_env
    env = aec_env("examples/connect4.twl")
    env.reset(seed=0)
    for agent in env.agent_iter():
        obs, reward, termination, truncation, info = env.last()
        action = None if termination or truncation else env.action_space(agent).sample(obs["action_mask"])
        env.step(action)

Agents are `player_0`, `player_1`, ... in the env's `player` numbering. As in PettingZoo's
classic games, each observation is a dict: `observation` (the env's observation as that
agent sees it: for `observe ... as seen by player` envs, from its own side) and
`action_mask` (int8, all zeros when it is not that agent's turn). Rewards are each
player's own rewards (`info["rewards"]` of the twisterl env).
"""

from __future__ import annotations

from typing import Any, Optional, Union

import numpy as np
from gymnasium import spaces
from pettingzoo import AECEnv


class TwislAEC(AECEnv):
    """A compiled twisterl env (discrete actions) as a PettingZoo `AECEnv`."""

    metadata = {"render_modes": ["ansi"], "name": "twisterl", "is_parallelizable": False}

    def __init__(self, cls, render_mode: Optional[str] = None, **params: Any):
        super().__init__()
        if cls.continuous:
            raise ValueError(f"{cls.name} has continuous actions; the AEC wrapper takes discrete ones")
        if render_mode not in (None, "ansi"):
            raise ValueError(f"render_mode must be None or 'ansi', not {render_mode!r}")
        self.render_mode = render_mode
        self.cls = cls
        self.env = cls(**params)
        self._view = cls(**params)  # observes the state from another player's side
        self.metadata = {**self.metadata, "name": cls.name}
        self.possible_agents = [f"player_{i}" for i in range(cls.players)]
        n = int(self.env.action_space.n)
        self._action_spaces = {a: spaces.Discrete(n) for a in self.possible_agents}
        self._observation_spaces = {
            a: spaces.Dict({"observation": self.env.observation_space,
                            "action_mask": spaces.Box(0, 1, (n,), dtype=np.int8)})
            for a in self.possible_agents}
        self.agents: list[str] = []

    def observation_space(self, agent: str):
        return self._observation_spaces[agent]

    def action_space(self, agent: str):
        return self._action_spaces[agent]

    def reset(self, seed: Optional[int] = None, options: Optional[dict] = None) -> None:
        _, info = self.env.reset(seed=seed, options=options)
        self.agents = self.possible_agents[:]
        self.rewards = {a: 0.0 for a in self.agents}
        self._cumulative_rewards = {a: 0.0 for a in self.agents}
        self.terminations = {a: False for a in self.agents}
        self.truncations = {a: False for a in self.agents}
        self.infos = {a: {} for a in self.agents}
        self._mask = info["action_mask"]
        self.agent_selection = self.possible_agents[info["player"]]

    def observe(self, agent: str) -> dict:
        p = self.possible_agents.index(agent)
        state = self.env.get_state()
        mover = int(state[-2])
        if p == mover:
            obs = self.env._observation()
        else:
            state[-2] = p  # the state layout ends with player and steps
            self._view.set_state(state)
            obs = self._view._observation()
        mine = agent == self.agent_selection and not (self.terminations[agent] or self.truncations[agent])
        mask = self._mask.astype(np.int8) if mine else np.zeros(self._mask.shape, np.int8)
        return {"observation": np.asarray(obs, np.float32), "action_mask": mask}

    def step(self, action: Union[int, np.integer, None]) -> None:
        agent = self.agent_selection
        if self.terminations[agent] or self.truncations[agent]:
            self._was_dead_step(action)
            return
        self._cumulative_rewards[agent] = 0.0
        _, _, term, trunc, info = self.env.step(int(action))
        self.rewards = {a: float(info["rewards"][i]) for i, a in enumerate(self.agents)}
        self._mask = info.get("action_mask", self._mask)
        if term or trunc:
            self.terminations = {a: bool(term) for a in self.agents}
            self.truncations = {a: bool(trunc and not term) for a in self.agents}
            # Each agent, in turn order from the next one, sees the end.
            self.agent_selection = self.agents[(self.agents.index(agent) + 1) % len(self.agents)]
        else:
            self.agent_selection = self.possible_agents[info["player"]]
        self._accumulate_rewards()

    def render(self) -> Optional[str]:
        return self.env.render()

    def close(self) -> None:
        pass


def aec_env(path_or_cls, render_mode: Optional[str] = None, **params: Any) -> TwislAEC:
    """The env of a `.twl` file (or a compiled env class) as a PettingZoo AEC env."""
    cls = path_or_cls
    if isinstance(path_or_cls, str) or hasattr(path_or_cls, "__fspath__"):
        from .envs import compile
        cls = compile(path_or_cls)
    return TwislAEC(cls, render_mode=render_mode, **params)
