"""Random well-typed programs from a grammar-based generator (twl_programs.py, not mutations
of the examples): the checker accepts them (the generator is meant to write valid
programs, so a refusal is a generator bug or a valid program wrongly refused) without an
internal error, and an accepted program builds and runs: reset, random legal steps with
resets, render, a get_state/set_state round trip, observe and `vector(4).random_steps`.
A run-time `EnvError` from a program's own semantics is fine; a `BuildError` (accepted
but unbuildable) or a crash is a bug.

TWL_GEN_CHECK=N and TWL_GEN_BUILD=N change how many programs the two tests try, and
TWL_GEN_SEED=S which ones (the default, 0, gives the same programs on every run);
TWL_GEN_SAVE=DIR keeps the programs that fail the build test there."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import traceback
from pathlib import Path

from hypothesis import HealthCheck, Phase, given, seed, settings
from twl_programs import programs

from twisterl.dsl import check_source

CHECK_N = int(os.environ.get("TWL_GEN_CHECK", "300"))
BUILD_N = int(os.environ.get("TWL_GEN_BUILD", "12"))
SEED = int(os.environ.get("TWL_GEN_SEED", "0"))


def _settings(n: int):
    # Deterministic (the same programs for one TWL_GEN_SEED), no shrinking: a failure
    # prints the program, which the generator wrote whole.
    def wrap(f):
        return seed(SEED)(settings(max_examples=n, deadline=None, database=None, phases=[Phase.generate],
                                   suppress_health_check=list(HealthCheck))(f))
    return wrap


def test_generated_programs_check():
    refused: list[tuple[str, str]] = []
    count = [0]
    start = time.perf_counter()

    @_settings(CHECK_N)
    @given(programs())
    def run(text):
        count[0] += 1
        try:
            result = check_source(text, "generated.twl")
        except Exception:  # an internal error: always a bug
            raise AssertionError(f"check_source raised on:\n{text}\n{traceback.format_exc()}") from None
        n_lines = text.count("\n") + 1
        for d in result.diagnostics:
            assert d.message and 1 <= d.span.line <= n_lines, (d, text)
        if not result.ok:
            d = result.errors[0]
            refused.append((f"line {d.span.line}: {d.message}", text))

    run()
    rate = 1 - len(refused) / count[0]
    shown = "\n\n".join(f"{why}\n{text}" for why, text in refused[:3])
    print(f"{rate:.2%} of {count[0]} generated programs accepted in {time.perf_counter() - start:.1f} s")
    assert rate >= 0.95, f"only {rate:.1%} of {count[0]} generated programs were accepted:\n{shown}"


# Runs in a child process, so that a crash of the native code is seen as one.
RUNNER = r'''
import json, sys
import numpy as np
import twisterl
from twisterl.build import BuildError
from twisterl.envs import EnvError

path = sys.argv[1]
out = {"env_errors": []}
try:
    cls = twisterl.compile(path)
except BuildError as exc:
    print(json.dumps({"build_error": str(exc)[-4000:]}))
    sys.exit(0)

def note(exc):
    out["env_errors"].append(str(exc).splitlines()[0][:200])

rng = np.random.default_rng(0)
env = cls()
try:
    obs, info = env.reset(seed=1)
except EnvError as exc:
    note(exc)
    obs, info = None, {}
steps = 0
for _ in range(300):
    try:
        if info is None or obs is None:
            obs, info = env.reset()
            continue
        if cls.continuous:
            low, high = env.action_space.low, env.action_space.high
            action = rng.uniform(low, high)
        else:
            legal = np.flatnonzero(info["action_mask"])
            if len(legal) == 0:
                obs, info = env.reset()
                continue
            action = int(rng.choice(legal))
        obs, reward, term, trunc, info = env.step(action)
        steps += 1
        if term or trunc:
            obs, info = env.reset()
    except EnvError as exc:
        note(exc)
        if len(out["env_errors"]) > 20:
            break
        obs, info = None, None
try:
    env.reset(seed=2)
    assert isinstance(env.render(), str)
    state = env.get_state()
    env.set_state(state)
    again = env.get_state()
    assert np.array_equal(state, again, equal_nan=True), (state, again)
    named = env.get_state(named=True)
    env.set_state(named)
    if not cls.continuous:
        env.action_mask()
        env.action_names()
    env.twists()
    vec = cls.vector(4)
    vec.reset(seed=3)
    vec.observe()
    vec.render(0)
    out["random_steps"] = vec.random_steps(100)
    cls.vector(4).random_steps(100, observe=True)
except EnvError as exc:
    note(exc)
out["steps"] = steps
print(json.dumps(out))
'''


def run_program(text: str, path: Path, timeout: float = 300) -> dict:
    """Compile and exercise one program in a child process; returns the runner's report, or
    {"crash": ...} when the child died or raised something other than EnvError."""
    path.write_text(text)
    proc = subprocess.run([sys.executable, "-X", "faulthandler", "-c", RUNNER, str(path)], capture_output=True, text=True,
                          timeout=timeout, env=os.environ.copy())
    if proc.returncode != 0:
        return {"crash": f"exit {proc.returncode}\n{proc.stderr[-4000:]}"}
    try:
        return json.loads(proc.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        return {"crash": f"no report\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}"}


def test_generated_programs_build(build_cache, tmp_path):
    failures: list[str] = []
    count = [0]

    @_settings(BUILD_N)
    @given(programs(rich=True))
    def run(text):
        count[0] += 1
        result = check_source(text, "generated.twl")
        if not result.ok:
            return  # the check test measures refusals
        report = run_program(text, tmp_path / f"gen{count[0]}.twl")
        if "build_error" in report or "crash" in report:
            failures.append(f"{report.get('build_error') or report.get('crash')}\n--- program:\n{text}")
        else:
            # The generator gives state only in-range initialisers, so a fault at a `state`
            # line (its zero value or initialiser out of range) is a bug, not the program's.
            lines = text.split("\n")
            for message in report["env_errors"]:
                m = re.match(r".*?:(\d+):\d+: ", message)
                if m and lines[int(m.group(1)) - 1].startswith("state "):
                    failures.append(f"{message}\n--- program:\n{text}")
                    break

    run()
    save = os.environ.get("TWL_GEN_SAVE")  # a folder to keep the failing programs in
    if save:
        Path(save).mkdir(parents=True, exist_ok=True)
        for k, f in enumerate(failures):
            why, program = f.split("\n--- program:\n", 1)
            header = "".join(f"# {line}\n" for line in why.splitlines()[:12])
            Path(save, f"failure{k}.twl").write_text(header + program)
    summary = "\n".join("- " + _first_error(f) for f in failures)
    assert not failures, (f"{len(failures)} of {count[0]} generated programs failed:\n{summary}\n\n"
                          + "\n\n".join(failures[:2]))


def _first_error(failure: str) -> str:
    m = re.search(r"^error(\[E\d+\])?: .*$", failure, re.M)
    return m.group(0) if m else failure.split("\n")[0][:200]
