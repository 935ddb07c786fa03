"""`learner: auto`: the faster of the two learners for this network, measured.

On the CPU both learners run the built-in networks, and which is faster depends on the
network, the minibatch and the machine (docs/benchmarks.md has them within 0.8-1.2x of each
other). So `auto` times one minibatch update of the run's own network, at the run's
minibatch size and thread counts, in each: forward, the PPO loss, backward, clipping and
Adam, on a synthetic minibatch, after a warm-up (AlphaZero's runs are timed the same way:
the network's passes are most of either update). Rust wins unless torch is faster by more
than `MARGIN`: Rust needs nothing installed, and a timing on a busy machine is noisy.

The result is kept in the build cache (`learner-choice.json`), keyed by everything it
depends on (the network, the rows, the threads, torch's and twisterl's versions, the CPU),
so that runs on the same machine choose the same learner and pay for the timing once. A
cache file that cannot be read is measured again, never trusted.
"""

from __future__ import annotations

import json
import os
import platform
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np

CACHE_FILE = "learner-choice.json"
REPEATS = 3
MARGIN = 0.10
MAX_ROWS = 8192
"""minibatches above this are timed at this size (the cost per row is flat by then)"""


@dataclass(frozen=True)
class Decision:
    """The learner `auto` chose, and why (one line, for the run's header)."""
    learner: str
    reason: str
    rust_ms: Optional[float] = None
    torch_ms: Optional[float] = None


def decide(desc: dict, rows: int, rust_threads: int, torch_threads: int, sparse: bool = False, nnz: int = 0,
           device: str = "cpu") -> Decision:
    """The learner for `learner: auto` with this network description (`netspec`), minibatch
    rows and thread counts; `sparse` observations have up to `nnz` ones."""
    rows = max(1, min(rows, MAX_ROWS))
    from .networks import torch_available
    if not torch_available():
        return Decision("rust", "torch is not installed")
    import torch
    if device not in ("cpu", "auto") or (device == "auto" and torch.cuda.is_available()):
        return Decision("torch", f"the update is to run on {'a GPU' if device == 'auto' else device!r}")
    key = json.dumps({"desc": desc, "rows": rows, "rust_threads": rust_threads, "torch_threads": torch_threads,
                      "sparse": sparse, "nnz": nnz,
                      "torch": torch.__version__, "twisterl": _version(), "cpu": _cpu()}, sort_keys=True)
    cached = _read_cache().get(key)
    if cached is None:
        data = synthetic_rollout(desc, rows, sparse, nnz)
        rust_ms, torch_ms = time_rust(desc, data, rust_threads), time_torch(desc, data, torch_threads)
        _write_cache(key, {"rust_ms": rust_ms, "torch_ms": torch_ms})
        how = "measured now"
    else:
        rust_ms, torch_ms = float(cached["rust_ms"]), float(cached["torch_ms"])
        how = "measured before on this machine"
    learner = "torch" if torch_ms < rust_ms * (1.0 - MARGIN) else "rust"
    reason = (f"a {rows}-row minibatch update took {rust_ms:.1f} ms in Rust and {torch_ms:.1f} ms in torch "
              f"({how}; set learner to choose)")
    return Decision(learner, reason, rust_ms, torch_ms)


def synthetic_rollout(desc: dict, rows: int, sparse: bool = False, nnz: int = 0, seed: int = 0) -> dict:
    """A rollout dict of `rows` transitions (one step of `rows` envs) for the network `desc`
    describes, as `_core.collect` shapes it: observations (`nnz` ones each when `sparse`),
    all-legal masks, random actions."""
    from .netspec import spec
    s = spec(desc)
    rng = np.random.default_rng(seed)
    a = s.num_actions
    data = {"logp": np.full((1, rows), -np.log(a), np.float32),
            "advantages": rng.normal(size=(1, rows)).astype(np.float32),
            "returns": rng.normal(size=(1, rows)).astype(np.float32),
            "values": rng.normal(size=(1, rows)).astype(np.float32)}
    if sparse:
        nnz = max(1, min(s.inputs, nnz))
        data["obs_indices"] = rng.integers(0, s.inputs, (1, rows, nnz)).astype(np.uint32)
        data["obs_counts"] = np.full((1, rows), nnz, np.uint32)
    else:
        data["obs"] = rng.normal(size=(1, rows, s.inputs)).astype(np.float32)
    if s.log_std is not None:
        data["action_values"] = rng.normal(size=(1, rows, a)).astype(np.float32)
    else:
        data["actions"] = rng.integers(0, a, (1, rows)).astype(np.int64)
        data["masks"] = np.ones((1, rows, a), bool)
    return data


def time_rust(desc: dict, data: dict, threads: int) -> float:
    """Milliseconds of one minibatch update of `desc`'s network on all of `data` in the Rust
    learner."""
    from .netspec import NumpyPolicy
    from .rust_learner import RustLearner
    net = NumpyPolicy(desc, 0)
    learner = RustLearner(net, lr=3e-4, eps=1e-5, max_grad_norm=0.5, threads=max(1, threads))
    batch = learner.ppo_batch(data, "obs_indices" in data)
    order = np.arange(data["logp"].size)

    def step() -> None:
        learner.ppo_step(batch, order, clip_coef=0.2, vf_coef=0.5, ent_coef=0.01, norm_adv=True, clip_vloss=False)

    return _best_ms(step)


def time_torch(desc: dict, data: dict, threads: int) -> float:
    """Milliseconds of the same update in torch (its loss as `PPO.update` computes it)."""
    import torch

    from .nets import SparseObs, build_policy
    net = build_policy(desc)
    optimizer = torch.optim.Adam(net.parameters(), lr=3e-4, eps=1e-5)
    if "obs_indices" in data:
        obs = SparseObs(torch.from_numpy(data["obs_indices"][0].astype(np.int64)),
                        torch.from_numpy(data["obs_counts"][0].astype(np.int64)))
    else:
        obs = torch.from_numpy(data["obs"][0])
    adv, ret, old = (torch.from_numpy(data[k][0]) for k in ("advantages", "returns", "logp"))
    continuous = "action_values" in data
    taken = torch.from_numpy(data["action_values"][0] if continuous else data["actions"][0])
    masks = None if continuous else torch.from_numpy(data["masks"][0])

    def step() -> None:
        out, values = net(obs)
        if continuous:
            dist = torch.distributions.Normal(out, net.log_std.exp())
            logp, entropy = dist.log_prob(taken).sum(-1), dist.entropy().sum(-1).mean()
        else:
            logp_all = torch.log_softmax(out.masked_fill(~masks, -1e9), dim=-1)
            logp = logp_all.gather(1, taken[:, None]).squeeze(1)
            entropy = -(logp_all.exp() * logp_all).masked_fill(~masks, 0.0).sum(-1).mean()
        a = (adv - adv.mean()) / (adv.std() + 1e-8)
        ratio = (logp - old).exp()
        pg = torch.max(-a * ratio, -a * ratio.clamp(0.8, 1.2)).mean()
        loss = pg + 0.5 * (0.5 * (values - ret) ** 2).mean() - 0.01 * entropy
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 0.5)
        optimizer.step()

    before = torch.get_num_threads()
    torch.set_num_threads(max(1, threads))
    try:
        return _best_ms(step)
    finally:
        torch.set_num_threads(before)


def _best_ms(step) -> float:
    step()  # warm-up: buffers, kernels, the first Adam step
    best = float("inf")
    for _ in range(REPEATS):
        start = time.perf_counter()
        step()
        best = min(best, time.perf_counter() - start)
    return best * 1000.0


def _version() -> str:
    from importlib import metadata
    try:
        return metadata.version("twisterl")
    except metadata.PackageNotFoundError:
        return "source"


def _cpu() -> str:
    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{model} x{os.cpu_count()}"


def _cache_path() -> Path:
    from ..build import cache_dir
    return cache_dir() / CACHE_FILE


def _read_cache() -> dict:
    try:
        data = json.loads(_cache_path().read_text())
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict):
        return {}
    return {k: v for k, v in data.items() if isinstance(v, dict) and _finite(v.get("rust_ms"))
            and _finite(v.get("torch_ms"))}


def _finite(x) -> bool:
    return isinstance(x, (int, float)) and np.isfinite(x) and x > 0


def _write_cache(key: str, value: dict) -> None:
    path = _cache_path()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        data = _read_cache()
        data[key] = value
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(data, indent=1, sort_keys=True))
        os.replace(tmp, path)
    except OSError:
        pass  # a read-only cache: the next run measures again
