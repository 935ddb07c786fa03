"""`twisterl play FILE`: play an env in the terminal, watch a trained agent, or face one."""

from __future__ import annotations

from typing import Any, Optional, TextIO

import numpy as np

from ..agents import policy_agent, search_agent

RESET = ("r", "reset")


def _prompt(inp: TextIO, out: TextIO) -> Optional[str]:
    """One line of the player's input, stripped; None at the end of input or on `q`."""
    print("> ", end="", file=out, flush=True)
    line = inp.readline()
    if not line:
        print("", file=out)
        return None
    text = line.strip()
    return None if text in ("q", "quit", "exit") else text


def _discrete_action(text: str, names: list[str]) -> Optional[int]:
    """The action a player typed, by name or number; None if it is neither."""
    if text in names:
        return names.index(text)
    if text.lstrip("-").isdigit():
        return int(text)
    return None


def play(path: str, seed: Optional[int], params: dict, difficulty: int, inp: TextIO, out: TextIO,
         policy_dir: Optional[str] = None, side: Optional[str] = None, simulations: Optional[int] = None) -> int:
    from ..envs import EnvError, compile
    cls = compile(path)
    if side is not None and cls.players != 2:
        raise ValueError(f"--as is for two-player envs; {cls.name} has {cls.players} player(s)")
    if cls.players == 2 and (policy_dir or side):
        return play_against(cls, seed, params, difficulty, inp, out, policy_dir, side or "first", simulations, path)
    agent = None
    if policy_dir:
        agent, params = policy_agent(policy_dir, cls, simulations, params, path)
    env = cls(difficulty=difficulty, seed=seed, **params)
    names = env.action_names()
    obs, info = env.reset()
    total = np.zeros(cls.players)
    if agent is not None:
        print(f"{cls.name}: the agent plays; press Enter for its next move, `r` resets, `q` quits.", file=out)
    else:
        print(f"{cls.name}: type an action's number or name; `r` resets, `q` quits.", file=out)
    while True:
        print("", file=out)
        print(env.render().rstrip("\n"), file=out)
        if cls.players > 1:
            print(f"player {info['player'] + 1} to move", file=out)
        if cls.continuous:
            low, high = env.action_space.low, env.action_space.high
            print(f"enter {low.shape[0]} value(s) between {low.tolist()} and {high.tolist()}", file=out)
        else:
            legal = [f"{a}:{names[a]}" for a in np.flatnonzero(info["action_mask"])]
            print("legal: " + "  ".join(legal), file=out)
        text = _prompt(inp, out)
        if text is None:
            return 0
        if text in RESET:
            obs, info = env.reset()
            total[:] = 0
            continue
        try:
            action: Any
            if agent is not None:
                action = agent(env, obs, info)
                print(f"agent plays {names[action] if names and not cls.continuous else action}", file=out)
            elif cls.continuous:
                action = np.array([float(x) for x in text.replace(",", " ").split()])
            elif (number := _discrete_action(text, names)) is not None:
                action = number
            else:
                print(f"  `{text}` is not an action; type its number or its name", file=out)
                continue
            obs, reward, term, trunc, info = env.step(action)
        except (ValueError, TypeError, EnvError) as exc:
            print(f"  {exc}", file=out)
            continue
        total += info["rewards"]
        print(f"reward {reward:+.3f}", file=out)
        if term or trunc:
            print(env.render().rstrip("\n"), file=out)
            how = "success" if info["success"] else ("time limit" if trunc and not term else "episode over")
            returns = ", ".join(f"{r:+.3f}" for r in total)
            print(f"{how}: return {returns}. New episode.", file=out)
            obs, info = env.reset()
            total[:] = 0


def play_against(cls, seed: Optional[int], params: dict, difficulty: int, inp: TextIO, out: TextIO,
                 policy_dir: Optional[str], side: str, simulations: Optional[int], path: Optional[str] = None) -> int:
    """A human against the agent of a run (or, without a run, pure MCTS with random
    rollouts), in the terminal: the agent moves by itself."""
    if policy_dir:
        agent, params = policy_agent(policy_dir, cls, simulations, params, path)
    else:
        agent = search_agent(simulations or 1000)
    env = cls(difficulty=difficulty, seed=seed, **params)
    names = env.action_names()
    human = 0 if side == "first" else 1
    obs, info = env.reset()
    print(f"{cls.name}: you are player {human + 1} ({side}); type an action's number or name; "
          "`r` restarts, `q` quits.", file=out)
    total = np.zeros(cls.players)
    while True:
        print("", file=out)
        print(env.render().rstrip("\n"), file=out)
        if info["player"] != human:
            action = agent(env, obs, info)
            print(f"agent plays {names[action]}", file=out)
        else:
            legal = [f"{a}:{names[a]}" for a in np.flatnonzero(info["action_mask"])]
            print("your move; legal: " + "  ".join(legal), file=out)
            text = _prompt(inp, out)
            if text is None:
                return 0
            if text in RESET:
                obs, info = env.reset()
                total[:] = 0
                continue
            action = _discrete_action(text, names)
            if action is None:
                print(f"  `{text}` is not an action; type its number or its name", file=out)
                continue
        try:
            obs, reward, term, trunc, info = env.step(action)
        except (ValueError, TypeError, RuntimeError) as exc:
            print(f"  {exc}", file=out)
            continue
        total += info["rewards"]
        if term or trunc:
            print(env.render().rstrip("\n"), file=out)
            mine = total[human]
            verdict = "you win" if mine > 0 else ("you lose" if mine < 0 else "a draw")
            print(f"game over: {verdict} (return {mine:+.1f}). New game.", file=out)
            obs, info = env.reset()
            total[:] = 0
