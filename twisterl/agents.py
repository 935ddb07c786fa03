"""Agents that act in an env: a trained run's policy, taking its most likely legal action
or searching with MCTS on its priors and values."""

from __future__ import annotations

from typing import Any, Callable, Optional

import numpy as np

Agent = Callable[[Any, Any, dict], Any]
"""(env, observation, info) -> the action to take."""


def policy_agent(run_dir: str, cls, simulations: Optional[int] = None, params: Optional[dict] = None,
                 what: Optional[str] = None) -> tuple[Agent, dict]:
    """The trained policy of a run dir as an `Agent` taking its greedy legal action (for
    continuous actions, the Gaussian's mean), and the params to play with: the run's,
    overridden by `params`. The checkpoint must fit `cls` with those params (a
    `CheckpointError` says what differs; `what` names the env's file). An AlphaZero run's
    agent, or any given `simulations`, searches with MCTS on the policy's priors and values."""
    from .search import mcts
    from .train.checkpoints import load_policy, run_config
    from .train.networks import runtime_policy
    from .train.rundir import find_run
    run = find_run(run_dir)
    saved, _ = run_config(run)
    params = {**saved.get("params", {}), **(params or {})}
    net, meta, cfg = load_policy(run, cls=cls, params=params, what=what)
    rust = runtime_policy(net)
    if (cfg.get("algo") == "az" or simulations) and not cls.continuous:
        sims = simulations or cfg["config"].get("num_simulations", 100)
        c_puct = cfg["config"].get("c_puct", 1.5)
        return (lambda env, obs, info: mcts(env, rust, simulations=sims, c_puct=c_puct).action), params
    sparse = cls.spec["observation"]["kind"] == "sparse"

    def act(env, obs, info) -> Any:
        if sparse:
            idx = env.observe_indices()
            logits, _ = rust.forward_sparse(idx[None, :].astype(np.uint32), np.array([len(idx)], np.uint32))
        else:
            logits, _ = rust.forward_dense(np.asarray(obs, np.float32).reshape(1, -1))
        if cls.continuous:
            return logits[0].astype(np.float64)  # the Gaussian's mean
        logits = np.where(info["action_mask"], logits[0], -np.inf)
        return int(logits.argmax())

    return act, params


def search_agent(simulations: int) -> Agent:
    """Pure MCTS with random rollouts, `simulations` per move."""
    from .search import mcts
    return lambda env, obs, info: mcts(env, simulations=simulations).action
