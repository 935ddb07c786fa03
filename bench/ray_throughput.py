"""PPO collection on Ray workers against local collection, side by side.

    python bench/ray_throughput.py          # needs twisterl[ray]; starts a local Ray

The 8-puzzle at difficulty 4, PPO's default network for it (512/256, about 175k
parameters), 256 envs x 64 steps per collection, as `twisterl train` collects. Local:
`twisterl.train.rollout.collect_rollout` on one batch stepped by 2 threads. Ray: the same
collection through `twisterl.train.distributed.RayCollector` (one `ray.put` of the
weights per call, each worker's rollout back through the object store, joined along the
env axis) with 1 worker (2 threads) and 2 workers (128 envs, 1 thread each). Prints env
steps/s for each and the ratio to local.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from harness import machine, rate  # noqa: E402

import twisterl  # noqa: E402
from twisterl.train.distributed import RayCollector, connect, env_message  # noqa: E402
from twisterl.train.nets import BasicPolicy, policy_layers, to_rust  # noqa: E402
from twisterl.train.ppo_config import Config  # noqa: E402
from twisterl.train.ray_config import make_ray_config  # noqa: E402
from twisterl.train.rollout import collect_rollout  # noqa: E402

ENVS, STEPS, DIFFICULTY = 256, 64, 4
PUZZLE = HERE.parent / "examples" / "puzzle.twl"


def local(cls, layers) -> float:
    vec = cls.vector(ENVS, seed=0, num_threads=2, difficulty=DIFFICULTY)
    vec.reset()
    policy = to_rust(layers)  # `layers`: the torch network
    state = {"seed": 0}

    def chunk() -> int:
        state["seed"] += 1
        collect_rollout(vec.batch, policy, ENVS, STEPS, state["seed"], 0.99, 0.95, 4096)
        return ENVS * STEPS
    return rate(chunk)


def on_ray(ray, cls, layers, workers: int) -> float:
    cfg = Config(num_envs=ENVS, num_steps=STEPS, num_threads=2 if workers == 1 else 1, difficulty=DIFFICULTY)
    rcfg = make_ray_config({"num_workers": workers}, "bench")
    env, plugin = env_message(ray, cls, PUZZLE.read_text(), {}, True)
    collector = RayCollector(ray, env, plugin, cfg, rcfg, f"bench-{os.getpid()}-{workers}", lambda line: None)
    weights = policy_layers(layers)
    state = {"seed": 0}

    def chunk() -> int:
        state["seed"] += 1
        collector.collect(weights, None, STEPS, state["seed"], 0.99, 0.95, 4096, None, twists=False)
        return ENVS * STEPS
    try:
        return rate(chunk)
    finally:
        collector.close()


def main() -> None:
    cls = twisterl.compile(PUZZLE)
    net = BasicPolicy(81, 4, 512, [256])
    print(f"machine: {machine()}; load before: {os.getloadavg()[0]:.2f}")
    base = local(cls, net)
    ray = connect(make_ray_config({}, "bench"))
    rows = [("local, 2 threads", base)]
    rows.append(("ray, 1 worker x 2 threads", on_ray(ray, cls, net, 1)))
    rows.append(("ray, 2 workers x 1 thread", on_ray(ray, cls, net, 2)))
    ray.shutdown()
    for name, steps in rows:
        print(f"{name:28s} {steps:12,.0f} env steps/s   x{steps / base:.2f} of local")


if __name__ == "__main__":
    main()
