"""Learner engines side by side: one full PPO learner step of TwisteRL's default network
(forward, loss, backward, gradient-norm clipping to 0.5, Adam) per engine, per batch size,
per thread count. See docs/learner_engines.md.

    /work/main/.venv/bin/python bench/learner_engines.py            # all cases, T = 1 and 2
    ... --quick                                                     # fewer steps, no 16384
    ... --engines torch-bag,candle-bag --threads 1 --rounds 3 --json out.jsonl

Engines are entries of ENGINES: a name, and a function `(case, batch, threads, steps) ->
dict` with at least "ms_per_step" (median over `steps` timed steps after 3 warm-ups), and
"loss_first"/"loss_warm"/"loss_last" (the loss at the first step, after the 3 warm-up
updates, and at the last timed step) when it can. A new engine (the project's own Rust learner) is one more function and one more entry.
Every engine gets the same weights and minibatch (a splitmix64 stream, see `SplitMix` and
`bench/learner_engines/candle/src/learner.rs`), so the losses are compared across engines
and a mismatch fails the run.

FLOPs charged per step (dense matmul work; the same figure for every engine and input
variant), with Σ_L = Σ in·out over the Linear layers E->H1, ..., H->A, H->1:
    6·B·Σ_L + 4·B·K·E
(forward 2·B·Σ_L, backward input+weight grads 4·B·Σ_L; the embedding bag's gathered adds
2·B·K·E forward and its scatter 2·B·K·E backward). The peak is measured by
bench/learner_engines/peak (independent FMA chains, AVX2 and AVX-512, 1 and 2 threads).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

HERE = Path(__file__).resolve().parent / "learner_engines"
CANDLE_BIN = HERE / "candle" / "target" / "release" / "candle-learner-bench"
PEAK_BIN = HERE / "peak" / "target" / "release" / "fma-peak"
WARMUP = 3
CLIP_COEF, VF_COEF, ENT_COEF, MAX_GRAD_NORM = 0.1, 0.8, 0.01, 0.5
LOSS_TOL = 1e-4  # relative (absolute below 1)


@dataclass(frozen=True)
class Case:
    name: str
    obs: int  # O, width of the one-hot observation
    nnz: int  # K, ones per row
    emb: int  # E
    hidden: tuple[int, ...]  # H1[, H2, ...]
    actions: int  # A

    def flops(self, batch: int) -> float:
        sizes = [self.emb, *self.hidden]
        sum_l = sum(a * b for a, b in zip(sizes, sizes[1:])) + sizes[-1] * (self.actions + 1)
        return 6.0 * batch * sum_l + 4.0 * batch * self.nnz * self.emb

    def describe(self) -> str:
        h = "x".join(map(str, self.hidden))
        return f"{self.name}: O={self.obs} K={self.nnz} E={self.emb} H={h} A={self.actions}"


CASES = [
    # The 8-puzzle's default net (9 cells x 9 tiles one-hot).
    Case("puzzle8", obs=81, nnz=9, emb=512, hidden=(256,), actions=4),
    # Wider input, deeper trunk: Connect Four's 3 planes x 42 cells one-hot, flattened.
    Case("connect4", obs=126, nnz=42, emb=256, hidden=(256, 256), actions=7),
    # Ones anywhere (O not a multiple of K): K distinct features per row, small and narrow.
    Case("scattered", obs=100, nnz=7, emb=128, hidden=(64,), actions=5),
]


def default_steps(case: Case, batch: int) -> int:
    """About 50 GFLOP of timed steps (1-10 s here), between 10 and 60 steps."""
    return int(min(60, max(10, 50e9 / case.flops(batch))))


# ---------------------------------------------------------------- torch (in process)

class SplitMix:
    """The candle binary's splitmix64 (`learner.rs`), vectorised: the same weights and data
    in every engine, so their losses can be compared number for number."""
    GAMMA, M1, M2 = 0x9E3779B97F4A7C15, 0xBF58476D1CE4E5B9, 0x94D049BB133111EB

    def __init__(self, seed: int):
        self.seed, self.count = seed % 2**64, 0

    def next(self, n: int):
        import numpy as np
        i = np.arange(self.count + 1, self.count + n + 1, dtype=np.uint64)
        self.count += n
        with np.errstate(over="ignore"):
            z = np.uint64(self.seed) + i * np.uint64(self.GAMMA)
            z = (z ^ (z >> np.uint64(30))) * np.uint64(self.M1)
            z = (z ^ (z >> np.uint64(27))) * np.uint64(self.M2)
        return z ^ (z >> np.uint64(31))

    def below(self, n: int, count: int):
        import numpy as np
        return (self.next(count) % np.uint64(n)).astype(np.int64)

    def uniform(self, count: int):
        import numpy as np
        return (self.next(count) >> np.uint64(40)).astype(np.float32) / np.float32(1 << 24)


def init_params(case: Case, seed: int = 0):
    """W_emb [O,E], b_emb [E], then (weight [out,in], bias [out]) per Linear, as learner.rs."""
    import numpy as np
    rng = SplitMix(seed)

    def param(shape, fan_in):
        bound = np.float32(1.0) / np.sqrt(np.float32(fan_in))
        n = int(np.prod(shape))
        return ((np.float32(2.0) * rng.uniform(n) - np.float32(1.0)) * bound).reshape(shape)

    out = [param((case.obs, case.emb), case.obs), param((case.emb,), case.obs)]
    sizes = [case.emb, *case.hidden]
    for i, o in [*zip(sizes, sizes[1:]), (sizes[-1], case.actions), (sizes[-1], 1)]:
        out += [param((o, i), i), param((o,), i)]
    return out


def random_data(case: Case, batch: int, seed: int = 1):
    """learner.rs's `Batch::random`: the same numbers. When O splits into K groups, one index
    per group (vectorised); otherwise K distinct indices per row, drawn one by one and
    redrawn on a repeat, as learner.rs draws them."""
    import numpy as np
    import torch
    o, k, a = case.obs, case.nnz, case.actions
    if k > o:
        raise ValueError(f"case {case.name}: {k} distinct ones per row do not fit {o} features")
    rng = SplitMix(seed ^ 0xDA7A)
    if o % k == 0:
        g = o // k
        ids = np.arange(k) * g + rng.below(g, batch * k).reshape(batch, k)
    else:
        ids = np.empty((batch, k), np.int64)
        for r in range(batch):
            row: list[int] = []
            while len(row) < k:
                f = int(rng.below(o, 1)[0])
                if f not in row:
                    row.append(f)
            ids[r] = row
    dense = np.zeros((batch, o), np.float32)
    np.put_along_axis(dense, ids, 1.0, axis=1)
    # Per row, in order: A uniforms (legal if < 0.5), one forced-legal action, the taken
    # action among the legal ones, two uniforms for old_logp's normal.
    raw = rng.next(batch * (a + 4)).reshape(batch, a + 4)
    u = (raw >> np.uint64(40)).astype(np.float32) / np.float32(1 << 24)
    mask = u[:, :a] < 0.5
    mask[np.arange(batch), (raw[:, a] % np.uint64(a)).astype(np.int64)] = True
    legal = mask.sum(1)
    pick = (raw[:, a + 1] % legal.astype(np.uint64)).astype(np.int64)
    actions = np.array([np.flatnonzero(m)[p] for m, p in zip(mask, pick)])

    def normal(u1, u2):
        u1 = np.maximum(u1, np.float32(1e-7))
        return np.sqrt(np.float32(-2.0) * np.log(u1)) * np.cos(np.float32(2 * np.pi) * u2)

    old_logp = -np.log(legal.astype(np.float32)) + np.float32(0.1) * normal(u[:, a + 2], u[:, a + 3])
    nu = rng.uniform(4 * batch).reshape(2, batch, 2)
    adv, returns = normal(nu[0, :, 0], nu[0, :, 1]), normal(nu[1, :, 0], nu[1, :, 1])
    t = torch.from_numpy
    return dict(ids=t(ids), dense=t(dense), mask=t(mask), actions=t(actions), old_logp=t(old_logp),
                adv=t(adv), returns=t(returns))


def timed(step: Callable[[], float], steps: int) -> dict:
    """Run `step` (one update; returns its loss) WARMUP times, then `steps` timed times: the
    median and fastest ms per step, and the losses at the first step, after the warm-up and
    at the end."""
    loss_first = step()
    for _ in range(WARMUP - 1):
        step()
    times, losses = [], []
    for _ in range(steps):
        t = time.perf_counter()
        losses.append(step())
        times.append((time.perf_counter() - t) * 1e3)
    return {"ms_per_step": statistics.median(times), "ms_min": min(times),
            "loss_first": loss_first, "loss_warm": losses[0], "loss_last": losses[-1]}


def torch_engine(input_kind: str) -> Callable[[Case, int, int, int], dict]:
    """TwisteRL's BasicPolicy and ppo.py's update step, in torch on the CPU."""
    def run(case: Case, batch: int, threads: int, steps: int) -> dict:
        import torch
        from torch import nn
        from torch.nn import functional as F
        torch.set_num_threads(threads)

        class Net(nn.Module):
            def __init__(self):
                super().__init__()
                p = [torch.from_numpy(v) for v in init_params(case)]
                self.w_emb, self.b_emb = nn.Parameter(p[0]), nn.Parameter(p[1])
                sizes = [case.emb, *case.hidden]
                self.common = nn.ModuleList(nn.Linear(i, o) for i, o in zip(sizes, sizes[1:]))
                self.policy = nn.Linear(sizes[-1], case.actions)
                self.value = nn.Linear(sizes[-1], 1)
                with torch.no_grad():
                    for n, layer in enumerate([*self.common, self.policy, self.value]):
                        layer.weight.copy_(p[2 + 2 * n])
                        layer.bias.copy_(p[3 + 2 * n])

            def forward(self, x):
                if input_kind == "bag":
                    e = F.embedding_bag(x["ids"], self.w_emb, mode="sum")
                else:
                    e = x["dense"] @ self.w_emb
                h = torch.relu(e + self.b_emb)
                for layer in self.common:
                    h = torch.relu(layer(h))
                return self.policy(h), self.value(h).squeeze(-1)

        net = Net()
        opt = torch.optim.Adam(net.parameters(), lr=3e-4, eps=1e-5)
        x = random_data(case, batch)

        def step() -> float:
            logits, values = net(x)
            logits = logits.masked_fill(~x["mask"], -1e9)
            logp_all = torch.log_softmax(logits, dim=-1)
            logp = logp_all.gather(1, x["actions"][:, None]).squeeze(1)
            entropy = -(logp_all.exp() * logp_all).masked_fill(~x["mask"], 0.0).sum(-1).mean()
            ratio = (logp - x["old_logp"]).exp()
            adv = x["adv"]
            pg_loss = torch.max(-adv * ratio, -adv * ratio.clamp(1 - CLIP_COEF, 1 + CLIP_COEF)).mean()
            v_loss = (0.5 * (values - x["returns"]) ** 2).mean()
            loss = pg_loss + VF_COEF * v_loss - ENT_COEF * entropy
            opt.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(net.parameters(), MAX_GRAD_NORM)
            opt.step()
            return loss.item()

        return timed(step, steps)
    return run


# ---------------------------------------------------------------- candle (subprocess)

def candle_engine(input_kind: str) -> Callable[[Case, int, int, int], dict]:
    """bench/learner_engines/candle: the same step in candle 0.11 (CPU, default features)."""
    def run(case: Case, batch: int, threads: int, steps: int) -> dict:
        if not CANDLE_BIN.exists():
            sys.exit(f"{CANDLE_BIN} is missing: cd {CANDLE_BIN.parents[2]} && cargo build --release")
        cmd = [str(CANDLE_BIN), "--batch", str(batch), "--obs", str(case.obs), "--nnz", str(case.nnz),
               "--emb", str(case.emb), "--hidden", ",".join(map(str, case.hidden)),
               "--actions", str(case.actions), "--steps", str(steps), "--threads", str(threads),
               "--input", input_kind]
        out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
        return json.loads(out.strip().splitlines()[-1])
    return run


# ---------------------------------------------------------------- ours (twisterl._core.Learner, in process)

def ours_engine(input_kind: str) -> Callable[[Case, int, int, int], dict]:
    """The project's Rust learner (`runtime/core/src/learn`), through `twisterl._core.Learner`:
    the same network, weights, minibatch and step (no advantage normalisation, as above)."""
    def run(case: Case, batch: int, threads: int, steps: int) -> dict:
        import numpy as np
        from twisterl import _core
        p = [np.ascontiguousarray(v, np.float32) for v in init_params(case)]
        trunk = [("linear", np.ascontiguousarray(p[0].T), p[1]), ("relu",)]
        k = 2
        for _ in case.hidden:
            trunk += [("linear", p[k], p[k + 1]), ("relu",)]
            k += 2
        learner = _core.Learner(case.obs, trunk, [("linear", p[k], p[k + 1])], [("linear", p[k + 2], p[k + 3])],
                                lr=3e-4, eps=1e-5, max_grad_norm=MAX_GRAD_NORM, threads=threads)
        x = {key: value.numpy() for key, value in random_data(case, batch).items()}
        if input_kind == "bag":
            obs, counts = x["ids"].astype(np.uint32), np.full(batch, case.nnz, np.uint32)
        else:
            obs, counts = x["dense"], None
        f32 = lambda key: np.ascontiguousarray(x[key], np.float32)  # noqa: E731
        zeros = np.zeros(batch, np.float32)
        args = (obs, counts, x["actions"].astype(np.int64), np.zeros((0, case.actions), np.float32), x["mask"],
                f32("old_logp"), f32("adv"), f32("returns"), zeros, np.arange(batch, dtype=np.int64))
        kw = dict(clip_coef=CLIP_COEF, vf_coef=VF_COEF, ent_coef=ENT_COEF, norm_adv=False)

        def step() -> float:
            s = learner.ppo_step(*args, **kw)
            return s["policy_loss"] + VF_COEF * s["value_loss"] - ENT_COEF * s["entropy"]

        return timed(step, steps)
    return run


# One entry per engine and input variant: (name, run).
ENGINES: list[tuple[str, Callable[[Case, int, int, int], dict]]] = [
    ("candle-bag", candle_engine("bag")),
    ("candle-onehot", candle_engine("onehot")),
    ("torch-bag", torch_engine("bag")),
    ("torch-onehot", torch_engine("onehot")),
    ("ours-bag", ours_engine("bag")),
    ("ours-onehot", ours_engine("onehot")),
]


# ---------------------------------------------------------------- peak and driver

def measure_peak(threads: list[int]) -> dict[int, float]:
    """AVX-512 FMA peak GFLOP/s per thread count (the larger of AVX2 and AVX-512)."""
    if not PEAK_BIN.exists():
        sys.exit(f"{PEAK_BIN} is missing: cd {PEAK_BIN.parents[2]} && cargo build --release")
    out = subprocess.run([str(PEAK_BIN), "--threads", ",".join(map(str, threads))],
                         check=True, capture_output=True, text=True).stdout
    peak: dict[int, float] = {}
    for line in out.splitlines():
        r = json.loads(line)
        print(f"peak {r['kernel']:<14} threads={r['threads']} {r['gflops']:8.1f} GFLOP/s "
              f"(min {r['gflops_min']:.1f}, max {r['gflops_max']:.1f})")
        peak[r["threads"]] = max(peak.get(r["threads"], 0.0), r["gflops"])
    return peak


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def main(argv: Optional[list[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--engines", default=",".join(n for n, _ in ENGINES))
    p.add_argument("--cases", default=",".join(c.name for c in CASES))
    p.add_argument("--batches", default="256,1024,4096,16384")
    p.add_argument("--threads", default="1,2")
    p.add_argument("--steps", type=int, default=0, help="timed steps per run (0: by FLOPs)")
    p.add_argument("--rounds", type=int, default=1, help="repeat every run; report the median")
    p.add_argument("--quick", action="store_true", help="8 steps, batches up to 4096")
    p.add_argument("--peak", default="", help="GFLOP/s per thread count, e.g. 1:130,2:260 (skip measuring)")
    p.add_argument("--json", default="", help="append one JSON line per result to this file")
    a = p.parse_args(argv)
    wanted = a.engines.split(",")
    engines = [(n, f) for n, f in ENGINES if n in wanted]
    cases = [c for c in CASES if c.name in a.cases.split(",")]
    batches = [int(b) for b in a.batches.split(",")]
    threads = [int(t) for t in a.threads.split(",")]
    if a.quick:
        batches = [b for b in batches if b <= 4096]
    if not engines or not cases:
        sys.exit(f"no engine/case selected (engines: {[n for n, _ in ENGINES]}, cases: {[c.name for c in CASES]})")

    print(f"load average at start: {load()}")
    peak = ({int(k): float(v) for k, v in (kv.split(":") for kv in a.peak.split(","))}
            if a.peak else measure_peak(threads))
    import torch
    print(f"torch {torch.__version__} ({torch.backends.cpu.get_cpu_capability()}), "
          f"python {sys.version.split()[0]}")
    rows, mismatches = [], 0
    for case in cases:
        print(f"\n{case.describe()}")
        print("| engine | threads | batch | ms/step | GFLOP/s | of peak | loss first -> last | load |")
        print("|---|---:|---:|---:|---:|---:|---|---|")
        for batch in batches:
            steps = a.steps or (8 if a.quick else default_steps(case, batch))
            for t in threads:
                results: dict[str, list[dict]] = {n: [] for n, _ in engines}
                for _ in range(a.rounds):  # rounds interleave the engines
                    for name, run in engines:
                        results[name].append(run(case, batch, t, steps))
                for name, _ in engines:
                    rs = results[name]
                    ms = statistics.median(r["ms_per_step"] for r in rs)
                    gflops = case.flops(batch) / (ms * 1e-3) / 1e9
                    frac = gflops / peak[t] if t in peak else float("nan")
                    row = {"engine": name, "case": case.name, "threads": t, "batch": batch,
                           "steps": steps, "rounds": a.rounds, "ms_per_step": ms,
                           "ms_per_step_rounds": [r["ms_per_step"] for r in rs],
                           "gflops": gflops, "frac_peak": frac, "peak_gflops": peak.get(t),
                           "loss_first": rs[0].get("loss_first"), "loss_warm": rs[0].get("loss_warm"),
                           "loss_last": rs[0].get("loss_last"),
                           "load": load()}
                    rows.append(row)
                    lf, ll = row["loss_first"], row["loss_last"]
                    losses = f"{lf:.4f} -> {ll:.4f}" if lf is not None else ""
                    print(f"| {name} | {t} | {batch} | {ms:.2f} | {gflops:.1f} | {frac:.1%} | {losses} | {row['load']} |",
                          flush=True)
                    if a.json:
                        with open(a.json, "a") as f:
                            f.write(json.dumps(row) + "\n")
                # Every engine trains the same weights on the same data (SplitMix): their
                # losses must agree at the first step and after the 3 warm-up updates. The
                # last loss is only shown: over tens of Adam steps on one minibatch f32
                # rounding (sums in another order) grows, most where the loss nears 0.
                for what in ("loss_first", "loss_warm"):
                    v = [r[0][what] for r in results.values() if r[0].get(what) is not None]
                    if len(v) > 1 and max(v) - min(v) > LOSS_TOL * max(1.0, abs(v[0])):
                        mismatches += 1
                        print(f"LOSS MISMATCH ({what}): {v}", flush=True)
    print(f"\nload average at end: {load()}")
    if mismatches:
        print(f"{mismatches} loss mismatches between engines (tolerance {LOSS_TOL})")
        return 1
    print(f"all engines' losses agree within {LOSS_TOL} (first step, and after the 3 warm-up updates)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
