"""TwisteRL 0.5.1's side of bench/collect_throughput.py, in its own venv.

Prints the env-steps/s of `algorithm.collect()` (1024 episodes per call, random-init
512/256 policy, 2 cores) at the difficulty given on the command line.
"""

import json
import sys

import torch
from twisterl.utils import prepare_algorithm  # TwisteRL 0.5.1, not ours

from harness import rate

config_path, difficulty = sys.argv[1], int(sys.argv[2])
cfg = json.loads(open(config_path).read())
cfg["algorithm"]["collecting"]["num_cores"] = 2
torch.manual_seed(0)
alg = prepare_algorithm(cfg, None, None)
alg.env.difficulty = difficulty


def chunk() -> int:
    data, _ = alg.collect()
    return len(data.obs)


print(rate(chunk), flush=True)
