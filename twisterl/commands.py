"""The `compile`, `run` and `play` commands (the CLI's parsing is in cli.py)."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any, Optional, TextIO

import numpy as np


def parse_params(items: list[str]) -> dict[str, Any]:
    """`k=v` strings to a dict: ints, floats, true/false, otherwise the text (enum variants)."""
    out: dict[str, Any] = {}
    for item in items or []:
        if "=" not in item:
            raise ValueError(f"--param takes NAME=VALUE, not {item!r}")
        key, raw = item.split("=", 1)
        key, raw = key.strip(), raw.strip()
        value: Any
        if raw.lower() in ("true", "false"):
            value = raw.lower() == "true"
        else:
            try:
                value = int(raw)
            except ValueError:
                try:
                    value = float(raw)
                except ValueError:
                    value = raw
        out[key] = value
    return out


def compile_files(files: list[str], emit_rust: Optional[str], out: TextIO) -> int:
    from .build import build
    from .dsl import check_file
    from .dsl.diagnostics import render_text
    status = 0
    for path in files:
        result = check_file(path)
        for d in result.diagnostics:
            print(render_text(d, result.source), file=sys.stderr)
        if not result.ok:
            print(f"{path}: {len(result.errors)} error(s); nothing was built", file=sys.stderr)
            status = 1
            continue
        emit = Path(emit_rust) / Path(path).stem if emit_rust and len(files) > 1 else emit_rust
        built = build(result.env, result.source.text, emit_dir=Path(emit) if emit else None)
        how = "from the cache" if built.cached else "built"
        print(f"{path}: env {result.env.name} {how} in {built.seconds:.2f} s -> {built.library}", file=out)
        if emit:
            print(f"  Rust written to {Path(emit) / 'src' / 'lib.rs'}", file=out)
    return status


def run(path: str, episodes: int, seed: int, params: dict, difficulty: int, num_envs: int, threads: int,
        out: TextIO, max_length: int = 100_000) -> int:
    """Exactly `episodes` episodes of random legal actions, each from a reset; an episode
    still going after `max_length` steps is cut and reported, so the command always ends."""
    import twisterl
    cls = twisterl.compile(path)
    if episodes < 1 or max_length < 1:
        print("error: --episodes and --max-length must be at least 1", file=out)
        return 1
    vec = cls.vector(min(num_envs, episodes), seed=seed, num_threads=threads, difficulty=difficulty, **params)
    start = time.perf_counter()
    stats = vec.random_episodes(episodes, seed=seed, max_length=max_length)
    seconds = max(time.perf_counter() - start, 1e-9)
    ended = stats["episodes"]
    print(f"env {cls.name}: {_count(ended, 'episode')}, {stats['steps']:,} steps of random legal actions", file=out)
    if stats["cut"]:
        print(f"  {_count(stats['cut'], 'episode')} did not end within {max_length:,} steps and "
              f"{'was' if stats['cut'] == 1 else 'were'} cut (--max-length); they are not counted below", file=out)
    if ended:
        returns = stats["returns"]
        shown = (f"mean return {returns[0] / ended:.4f}" if cls.players == 1 else
                 "mean return " + ", ".join(f"player {p} {r / ended:+.4f}" for p, r in enumerate(returns)))
        line = f"  {shown}, mean length {stats['length_sum'] / ended:.1f}"
        if cls.spec.get("has_success"):
            line += f", success rate {stats['successes'] / ended:.3f}"
        print(line, file=out)
    print(f"  {stats['steps'] / seconds:,.0f} steps/s on {threads} thread(s), {vec.num_envs} env(s)", file=out)
    return 0


def _count(n: int, noun: str) -> str:
    return f"{n:,} {noun}{'' if n == 1 else 's'}"


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
    import twisterl
    cls = twisterl.compile(path)
    if side is not None and cls.players != 2:
        raise ValueError(f"--as is for two-player envs; {cls.name} has {cls.players} player(s)")
    if cls.players == 2 and (policy_dir or side):
        return play_against(cls, seed, params, difficulty, inp, out, policy_dir, side or "first", simulations, path)
    agent = None
    if policy_dir:
        agent, params = _load_agent(policy_dir, cls, simulations, params, path)
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
        except (ValueError, TypeError, twisterl.EnvError) as exc:
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


def _load_agent(policy_dir: str, cls, simulations: Optional[int] = None, params: Optional[dict] = None,
                what: Optional[str] = None):
    """The trained policy of a run dir as a function (env, obs, info) -> its greedy legal
    action (for continuous actions, the Gaussian's mean), and the params to play with: the
    run's, overridden by `params`. The checkpoint must fit `cls` with those params (a
    `CheckpointError` says what differs; `what` names the env's file). An AlphaZero run's agent, or any given
    `simulations`, searches with MCTS on the policy's priors and values."""
    from .nets import export
    from .rundir import find_run
    from .training import load_policy, run_config
    run = find_run(policy_dir)
    saved, _ = run_config(run)
    params = {**saved.get("params", {}), **(params or {})}
    net, meta, cfg = load_policy(run, cls=cls, params=params, what=what)
    rust = export(net)
    if (cfg.get("algo") == "az" or simulations) and not cls.continuous:
        from .search import mcts
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


def play_against(cls, seed: Optional[int], params: dict, difficulty: int, inp: TextIO, out: TextIO,
                 policy_dir: Optional[str], side: str, simulations: Optional[int], path: Optional[str] = None) -> int:
    """A human against the agent of a run (or, without a run, pure MCTS with random
    rollouts), in the terminal: the agent moves by itself."""
    if policy_dir:
        agent, params = _load_agent(policy_dir, cls, simulations, params, path)
    else:
        from .search import mcts
        sims = simulations or 1000
        agent = lambda env, obs, info: mcts(env, simulations=sims).action  # noqa: E731
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
