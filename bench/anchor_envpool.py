"""EnvPool's side of bench/stepping.py, run in EnvPool's own venv.

Prints one line per case: `ENV N RATE` (env-steps/s, random legal actions, 1 thread).
"""

import sys
import warnings

warnings.filterwarnings("ignore")
import numpy as np  # noqa: E402
import envpool  # noqa: E402

from harness import rate  # noqa: E402


def bench(env_id: str, n: int) -> float:
    env = envpool.make_gymnasium(env_id, num_envs=n, batch_size=n, num_threads=1, seed=0)
    n_act = env.action_space.n
    rng = np.random.default_rng(0)
    state = {}
    state["obs"], state["info"] = env.reset()

    def chunk() -> int:
        info = state["info"]
        for _ in range(20):
            mask = info.get("legal_action_mask")
            if mask is None:
                act = rng.integers(0, n_act, size=n, dtype=np.int32)
            else:
                act = np.argmax(rng.random(mask.shape) * mask, axis=1).astype(np.int32)
            _, _, _, _, info = env.step(act, info["env_id"])
        state["info"] = info
        return 20 * n

    return rate(chunk)


if __name__ == "__main__":
    for case in sys.argv[1:]:
        env_id, n = case.split(":")
        print(env_id, n, bench(env_id, int(n)), flush=True)
