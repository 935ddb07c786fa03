"""P4: MCTS simulations/s with a random-rollout evaluator against OpenSpiel 2.0.2's C++
`MCTSBot`: Connect Four (plus our simulations/s with a network evaluator), or every
OpenSpiel game that has a port in examples/ (`--games all`, with the geometric mean).

Both sides search the same positions (random openings of 0 to 10 moves, seeded; the ports
use OpenSpiel's action ids) with the same number of simulations, UCT with c = 2, one
random rollout per leaf, one thread, no solver, a fresh tree per search. Run
bench/setup_anchors.sh openspiel first.

    python bench/mcts_vs_openspiel.py [SIMULATIONS] [--games all|NAME,...] [--rounds R]
"""

from __future__ import annotations

import math
import os
import statistics
import subprocess
import sys
from pathlib import Path

import numpy as np

import twisterl
from harness import machine, rate

HERE = Path(__file__).parent


# our example -> OpenSpiel's game (default params on both sides)
GAMES = {"connect4": "connect_four", "breakthrough": "breakthrough", "othello": "othello", "clobber": "clobber",
         "hex": "hex", "dots_and_boxes": "dots_and_boxes", "mancala": "mancala", "checkers": "checkers",
         "amazons": "amazons"}


def positions(count: int = 16, seed: int = 0, example: str = "connect4") -> list[list[int]]:
    """Random legal openings (nobody has won yet)."""
    cls = twisterl.compile(HERE.parent / "examples" / f"{example}.twl")
    rng = np.random.default_rng(seed)
    out = []
    while len(out) < count:
        env = cls()
        _, info = env.reset(seed=0)
        moves = []
        for _ in range(int(rng.integers(0, 11))):
            a = int(rng.choice(np.flatnonzero(info["action_mask"])))
            _, _, term, _, info = env.step(a)
            moves.append(a)
            if term:
                break
        if not term:
            out.append(moves)
    return out


def states(openings: list[list[int]], example: str = "connect4"):
    cls = twisterl.compile(HERE.parent / "examples" / f"{example}.twl")
    env = cls()
    result = []
    for moves in openings:
        env.reset(seed=0)
        for a in moves:
            env.step(a)
        result.append(env.get_state())
    return env, result


def ours(openings, sims: int, policy=None, leaf_batch: int = 1, example: str = "connect4") -> float:
    env, sts = states(openings, example)
    turn = {"k": 0}

    def chunk() -> int:
        state = sts[turn["k"] % len(sts)]
        turn["k"] += 1
        twisterl.mcts(env, policy, state=state, simulations=sims, uct_c=2.0, leaf_batch=leaf_batch,
                      seed=turn["k"])
        return sims

    return rate(chunk)


def anchor(openings, sims: int, game: str = "connect_four"):
    venv = Path(os.environ.get("BENCH_VENVS", Path.home() / ".cache" / "twisterl-bench")) / "openspiel"
    python = venv / "bin" / "python"
    if not python.exists():
        print(f"OpenSpiel venv missing at {venv}: run bench/setup_anchors.sh openspiel", file=sys.stderr)
        return None
    text = "\n".join(" ".join(str(a) for a in m) for m in openings) + "\n"
    out = subprocess.run([str(python), str(HERE / "anchor_openspiel_mcts.py"), str(sims), game], input=text,
                         capture_output=True, text=True, cwd=HERE, check=True).stdout
    return float(out.split()[-1])


def self_play_rate(sims: int, threads: int) -> float:
    """Self-play simulations/s with a network (batched over lockstep games)."""
    import time
    from twisterl.train.nets import BasicPolicy
    from twisterl.search import agent, play_games
    cls = twisterl.compile(HERE.parent / "examples" / "connect4.twl")
    net = BasicPolicy(126, 7, 128, [128])
    a = agent(net, simulations=sims, dirichlet_frac=0.25)
    play_games(cls, {}, [a], 4, num_threads=threads, temp_moves=10)
    start = time.perf_counter()
    data = play_games(cls, {}, [a], 32, num_threads=threads, temp_moves=10, record=True, concurrent=16 * threads)
    return int(data["lengths"].sum()) * sims / (time.perf_counter() - start)


def games_table(sims: int, names: list[str], rounds: int = 3) -> None:
    """P4 on each game, side by side, and the geometric mean of the ratios. Each game is
    measured in `rounds` rounds, the two sides alternating which goes first (ABBA...), so
    that the machine's drift over a game's minute moves both; a game's ratio is the median
    of its rounds' ratios, printed with their range."""
    print(f"# P4: pure MCTS (random rollouts), {sims} simulations per search, 1 thread, {rounds} alternating "
          f"rounds per game ({machine()})")
    print(f"{'game':<16}{'twisterl sims/s':>18}{'OpenSpiel sims/s':>18}{'ratio':>8}{'rounds':>16}", flush=True)
    ratios = []
    for name in names:
        openings = positions(example=name)
        mine, theirs, per_round = [], [], []
        for r in range(rounds):
            first_ours = r % 2 == 1
            a = ours(openings, sims, example=name) if first_ours else None
            t = anchor(openings, sims, GAMES[name])
            a = a if first_ours else ours(openings, sims, example=name)
            mine.append(a)
            if t:
                theirs.append(t)
                per_round.append(a / t)
        m = statistics.median(mine)
        t = statistics.median(theirs) if theirs else float("nan")
        ratio = statistics.median(per_round) if per_round else float("nan")
        if per_round:
            ratios.append(ratio)
        spread = f"{min(per_round):.2f}-{max(per_round):.2f}x" if per_round else "-"
        print(f"{name:<16}{m:>18,.0f}{t:>18,.0f}{ratio:>7.2f}x{spread:>16}", flush=True)
    if ratios:
        print(f"{'geometric mean':<52}{math.exp(sum(map(math.log, ratios)) / len(ratios)):>7.2f}x")


def main() -> None:
    args = sys.argv[1:]
    games = None
    rounds = 3
    if "--rounds" in args:
        i = args.index("--rounds")
        rounds = int(args[i + 1])
        del args[i:i + 2]
    if "--games" in args:
        i = args.index("--games")
        games = list(GAMES) if args[i + 1] == "all" else args[i + 1].split(",")
        del args[i:i + 2]
    sims = int(args[0]) if args else 1000
    if games:
        unknown = [g for g in games if g not in GAMES]
        if unknown:
            sys.exit(f"unknown games {unknown}; known: {', '.join(GAMES)}")
        games_table(sims, games, rounds)
        return
    openings = positions()
    print(f"# P4: Connect Four MCTS, random-rollout evaluator, {sims} simulations per search, 1 thread "
          f"({machine()})")
    theirs = anchor(openings, sims)
    mine = ours(openings, sims)
    other = f"{theirs:,.0f}" if theirs else "-"
    ratio = f"{mine / theirs:.2f}x" if theirs else "-"
    print(f"{'':<34}{'twisterl sims/s':>18}{'OpenSpiel sims/s':>18}{'ratio':>8}")
    print(f"{'pure MCTS (random rollouts)':<34}{mine:>18,.0f}{other:>18}{ratio:>8}", flush=True)
    import torch
    from twisterl.train.nets import BasicPolicy
    torch.manual_seed(0)
    torch.set_num_threads(1)
    net = BasicPolicy(126, 7, 128, [128])
    for leaf in (1, 8):
        print(f"{f'network 126-128-128, leaf_batch {leaf}':<34}{ours(openings, 200, net, leaf):>18,.0f}", flush=True)
    for threads in (1, 2):
        print(f"{f'self-play, network, {threads} thread(s)':<34}{self_play_rate(100, threads):>18,.0f}", flush=True)


if __name__ == "__main__":
    main()
