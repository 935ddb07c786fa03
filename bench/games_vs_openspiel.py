"""Random-playout steps/s on the OpenSpiel ports in examples/, against OpenSpiel 2.0.2.

For each game, with OpenSpiel's default params:
  ours, Rust loop   `VectorEnv.random_steps` from Python: a batch of envs, random legal
                    actions drawn, applied and reset inside the plugin, 1 thread
  ours, Python API  `VectorEnv.step` on the batch with random legal actions drawn in numpy
                    from the masks (and observations made), 1 thread
  OpenSpiel C++     `RandomRolloutEvaluator` rollouts from the initial state, in C++
                    (rollouts/s times the mean random game length)
  pyspiel loop      a Python loop over pyspiel: legal_actions, choice, apply_action
The ratios are ours (Rust loop) and ours (Python API) over OpenSpiel's C++ rollouts.
Run bench/setup_anchors.sh openspiel first. A quick smoke run:

    BENCH_REPEATS=1 BENCH_MIN_SECONDS=0.2 python bench/games_vs_openspiel.py [GAME ...]
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from harness import machine, random_vector_loop, rate  # noqa: E402

import twisterl  # noqa: E402

# our example -> (OpenSpiel's game, its params)
GAMES = {
    "breakthrough": ("breakthrough", {}),
    "othello": ("othello", {}),
    "clobber": ("clobber", {}),
    "hex": ("hex", {}),
    "dots_and_boxes": ("dots_and_boxes", {}),
    "mancala": ("mancala", {}),
    "checkers": ("checkers", {}),
    "amazons": ("amazons", {}),
}
BATCH = int(os.environ.get("BENCH_BATCH", 256))


def ours(name: str) -> tuple[float, float]:
    cls = twisterl.compile(HERE.parent / "examples" / f"{name}.twl")
    vec = cls.vector(BATCH, seed=0, num_threads=1)
    vec.reset()
    seeds = iter(range(1, 1 << 62))
    inside = rate(lambda: vec.random_steps(20, seed=next(seeds))["steps"])
    api = rate(random_vector_loop(vec, 5))
    return inside, api


def anchor(game: str, params: dict) -> tuple[float, float, float] | None:
    import json
    venv = Path(os.environ.get("BENCH_VENVS", Path.home() / ".cache" / "twisterl-bench")) / "openspiel"
    python = venv / "bin" / "python"
    if not python.exists():
        print(f"OpenSpiel venv missing at {venv}: run bench/setup_anchors.sh openspiel", file=sys.stderr)
        return None
    out = subprocess.run([str(python), str(HERE / "anchor_openspiel_random.py"), game, json.dumps(params)],
                         capture_output=True, text=True, cwd=HERE, check=True).stdout
    cpp, loop, length = map(float, out.split())
    return cpp, loop, length


def main() -> None:
    names = sys.argv[1:] or list(GAMES)
    print(f"# random playouts, steps/s, 1 thread, batch {BATCH} for ours ({machine()})")
    print(f"{'game':<16}{'ours Rust loop':>16}{'ours Python API':>17}{'OpenSpiel C++':>15}{'pyspiel loop':>14}"
          f"{'length':>8}{'loop/C++':>10}{'API/C++':>9}")
    for name in names:
        game, params = GAMES[name]
        inside, api = ours(name)
        theirs = anchor(game, params)
        if theirs is None:
            print(f"{name:<16}{inside:>16,.0f}{api:>17,.0f}{'-':>15}{'-':>14}{'-':>8}{'-':>10}{'-':>9}", flush=True)
            continue
        cpp, loop, length = theirs
        print(f"{name:<16}{inside:>16,.0f}{api:>17,.0f}{cpp:>15,.0f}{loop:>14,.0f}{length:>8.1f}"
              f"{inside / cpp:>9.2f}x{api / cpp:>8.2f}x", flush=True)


if __name__ == "__main__":
    main()
