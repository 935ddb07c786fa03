"""A fuzz campaign against the `.twl` front end, then the native build of what it accepts.

    python bench/fuzz.py [--mutants 10000] [--sample 30] [--seed 0] [--timeout 300] [--out DIR]

1. The checker: N grammar-aware mutants of the examples (tests/twl_mutants.py: names
   swapped for other names, keywords, built-ins and Rust words; declarations duplicated,
   moved and renamed; extreme literals; nested expressions; inserted loops and items) go
   through `check_source`, and the accepted ones through the `twisterl check` summary.
   Reported: accepted, refused with clean diagnostics, internal errors grouped by the place
   that raised them (one traceback and mutant each), and the slowest checks.
2. The build: K distinct accepted mutants, each in its own process (so that a crash shows
   as a signal): `twisterl.compile(path)`, an env `Cls()`, `Cls.vector(4).random_steps(200)`.
   Reported: ran, accepted but unbuildable (a `BuildError`, grouped by the first compiler
   error), faults of the file's own computations (`EnvError`, a clean run-time error),
   other exceptions, crashes and timeouts.

Every failing mutant is written to --out (default: a new temporary folder). The build uses
its own cache (--cache, default: a temporary folder), so the first build also compiles the
runtime core.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import random
import re
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from twl_mutants import EXAMPLES, mutate  # noqa: E402


def site_of(exc: BaseException) -> str:
    """`ExceptionType at file.py:line (function)`, at the innermost frame inside twisterl."""
    frames = traceback.extract_tb(exc.__traceback__)
    ours = [f for f in frames if "/twisterl/" in f.filename or "/dsl/" in f.filename or "/codegen/" in f.filename]
    f = (ours or frames)[-1]
    return f"{type(exc).__name__} at {Path(f.filename).name}:{f.lineno} ({f.name})"


def check_campaign(n: int, rng: random.Random, out: Path) -> list[str]:
    """Run the checker part; print its report and return the accepted mutants."""
    from twisterl.cli.check import describe_env as _describe_env
    from twisterl.dsl import check_source

    sources = [p.read_text() for p in EXAMPLES]
    accepted, refused = [], 0
    internal: dict[str, list] = collections.defaultdict(list)
    times = []
    start = time.perf_counter()
    for i in range(n):
        text = mutate(rng.choice(sources), rng)
        t = time.perf_counter()
        try:
            result = check_source(text, f"mutant{i}.twl")
            if result.ok:
                _describe_env(result.env)
                accepted.append(text)
            else:
                assert result.errors and all(d.span.line >= 1 and d.span.col >= 1 for d in result.errors)
                refused += 1
        except Exception as exc:  # an internal error: what the campaign looks for
            internal[site_of(exc)].append((text, traceback.format_exc()))
        times.append((time.perf_counter() - t, text))
    elapsed = time.perf_counter() - start
    n_internal = sum(len(v) for v in internal.values())
    times.sort(key=lambda x: -x[0])
    print(f"## checker: {n:,} mutants in {elapsed:.0f} s ({1000 * elapsed / max(n, 1):.1f} ms each)")
    print(f"accepted: {len(accepted):,}   refused with clean diagnostics: {refused:,}   internal errors: {n_internal:,}")
    print(f"slowest checks: {', '.join(f'{t:.2f} s' for t, _ in times[:5])}; over 1 s: {sum(t > 1 for t, _ in times)}")
    (out / "slowest.twl").write_text(times[0][1] if times else "")
    for k, (site, cases) in enumerate(sorted(internal.items(), key=lambda kv: -len(kv[1]))):
        text, tb = cases[0]
        path = out / f"internal{k}.twl"
        path.write_text(text)
        print(f"\n{len(cases)} x {site}  (mutant: {path})\n{tb}")
    return accepted


def run_one(path: str) -> None:
    """In a child process: build, make an env, step; print one JSON line with the outcome."""
    import twisterl
    from twisterl.build import BuildError

    try:
        cls = twisterl.compile(path)
    except BuildError as exc:
        print(json.dumps({"outcome": "unbuildable", "detail": str(exc)}))
        return
    try:
        cls()
        totals = cls.vector(4).random_steps(200)
    except twisterl.EnvError as exc:
        print(json.dumps({"outcome": "env fault", "detail": str(exc)}))
        return
    except Exception as exc:
        print(json.dumps({"outcome": "exception", "detail": f"{site_of(exc)}\n{traceback.format_exc()}"}))
        return
    print(json.dumps({"outcome": "ran", "detail": f"{totals['steps']} steps"}))


def compiler_error(detail: str) -> str:
    """The first compiler error of a BuildError's text, to group failures by cause."""
    for line in detail.splitlines():
        m = re.search(r"error(\[E\d+\])?: .*", line)
        if m:
            return re.sub(r"`[^`]*`", "`_`", m.group(0))[:160]
    return detail.splitlines()[0][:160] if detail else "?"


def build_campaign(accepted: list[str], k: int, rng: random.Random, timeout: float, out: Path, cache: Path) -> None:
    distinct = sorted(set(accepted))
    sample = rng.sample(distinct, min(k, len(distinct)))
    env = dict(os.environ, TWISTERL_CACHE_DIR=str(cache))
    counts: collections.Counter = collections.Counter()
    causes: dict[str, list[str]] = collections.defaultdict(list)
    start = time.perf_counter()
    for i, text in enumerate(sample):
        path = out / f"sample{i}.twl"
        path.write_text(text)
        try:
            proc = subprocess.run([sys.executable, __file__, "--run-one", str(path)], env=env, cwd=ROOT,
                                  capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            outcome, detail = "timeout", f"over {timeout:.0f} s"
        else:
            if proc.returncode < 0:
                outcome, detail = "crash", f"signal {-proc.returncode}\n{proc.stderr[-2000:]}"
            else:
                lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
                report = json.loads(lines[-1]) if lines else {"outcome": "exception",
                                                              "detail": f"exit {proc.returncode}\n{proc.stderr[-2000:]}"}
                outcome, detail = report["outcome"], report["detail"]
        counts[outcome] += 1
        if outcome != "ran":
            key = compiler_error(detail) if outcome == "unbuildable" else detail.splitlines()[0][:160]
            causes[f"{outcome}: {key}"].append(str(path))
            path.with_suffix(".txt").write_text(detail)
        else:
            path.unlink()
        print(f"  {i + 1}/{len(sample)} {outcome}", flush=True)
    elapsed = time.perf_counter() - start
    print(f"\n## build and run: {len(sample)} accepted mutants in {elapsed:.0f} s")
    print("   ".join(f"{name}: {counts[name]}" for name in
                     ("ran", "unbuildable", "env fault", "exception", "crash", "timeout")))
    for cause, paths in sorted(causes.items(), key=lambda kv: -len(kv[1])):
        print(f"{len(paths)} x {cause}\n    e.g. {paths[0]} (details beside it, .txt)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mutants", type=int, default=10_000, metavar="N")
    parser.add_argument("--sample", type=int, default=30, metavar="K", help="accepted mutants to build and run")
    parser.add_argument("--seed", type=int, default=0, metavar="S")
    parser.add_argument("--timeout", type=float, default=300, help="seconds per build and run")
    parser.add_argument("--out", type=Path, help="where failing mutants go (default: a temporary folder)")
    parser.add_argument("--cache", type=Path, help="the build cache (default: a temporary folder)")
    parser.add_argument("--run-one", metavar="PATH", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.run_one:
        run_one(args.run_one)
        return
    out = args.out or Path(tempfile.mkdtemp(prefix="twl-fuzz-"))
    out.mkdir(parents=True, exist_ok=True)
    print(f"# fuzz campaign: seed {args.seed}, mutants in {out}")
    rng = random.Random(args.seed)
    accepted = check_campaign(args.mutants, rng, out)
    if args.sample > 0 and accepted:
        cache = args.cache or Path(tempfile.mkdtemp(prefix="twl-fuzz-cache-"))
        build_campaign(accepted, args.sample, rng, args.timeout, out, cache)


if __name__ == "__main__":
    main()
