"""`twisterl train --ray` and `twisterl tune --ray` on a real local Ray cluster (two CPUs,
two workers), started once for the module: PPO and AlphaZero runs, one worker against the
local run, a worker killed mid-run, a driver killed and resumed, trials as Ray tasks, and
the `ray` section's checks (these without a cluster)."""

from __future__ import annotations

import csv
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("torch")

from twisterl.train.config import ConfigError  # noqa: E402
from twisterl.train.ray_config import make_ray_config, split  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
PUZZLE = str(ROOT / "examples" / "puzzle.twl")
TICTACTOE = str(ROOT / "examples" / "tictactoe.twl")
TINY_PPO = {"num_envs": 16, "num_steps": 16, "embedding_size": 32, "common_layers": [32], "update_epochs": 2,
            "num_threads": 1}
TINY_AZ = {"num_games": 8, "num_simulations": 8, "train_steps": 5, "batch_size": 32, "arena_games": 4,
           "pure_simulations": 8, "embedding_size": 32, "common_layers": [32], "num_threads": 1}
TIMES = {"seconds", "collect_seconds", "train_seconds", "elapsed"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ray_cli(*args: str) -> subprocess.CompletedProcess:
    ray_bin = Path(sys.executable).parent / "ray"
    return subprocess.run([str(ray_bin), *args], capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def cluster(build_cache):
    """The address of a local Ray head with two CPUs, stopped after the module."""
    pytest.importorskip("ray", reason="Ray is not installed (pip install 'twisterl[ray]')")
    port = _free_port()
    # A private test cluster on this machine: no token to hand to every client.
    old = os.environ.get("RAY_AUTH_MODE")
    os.environ["RAY_AUTH_MODE"] = "disabled"
    started = _ray_cli("start", "--head", "--num-cpus=2", f"--port={port}", "--node-ip-address=127.0.0.1",
                       "--include-dashboard=false", "--disable-usage-stats")
    if started.returncode != 0:
        pytest.fail(f"ray start failed: {started.stderr[-2000:]}")
    address = f"127.0.0.1:{port}"
    try:
        yield address
    finally:
        import ray
        if ray.is_initialized():
            ray.shutdown()
        _ray_cli("stop", "--force")
        if old is None:
            os.environ.pop("RAY_AUTH_MODE", None)
        else:
            os.environ["RAY_AUTH_MODE"] = old


def _config(tmp_path: Path, name: str, data: dict) -> str:
    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps(data))
    return str(path)


def _cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "twisterl", *args]


def _env() -> dict:
    return {**os.environ, "PYTHONPATH": str(ROOT)}


def _cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(_cmd(*args), capture_output=True, text=True, env=_env(), timeout=timeout)


def _rows(run: Path) -> list[dict]:
    with open(run / "metrics.csv") as f:
        return list(csv.DictReader(f))


def test_ppo_on_two_workers(cluster, tmp_path):
    cfg = _config(tmp_path, "ppo", {**TINY_PPO, "ray": {"num_workers": 2}})
    r = _cli("train", PUZZLE, "--ray", cluster, "--config", cfg, "--iterations", "2", "--out", str(tmp_path / "run"))
    assert r.returncode == 0, r.stderr
    assert f"ray: 2 workers on {cluster}" in r.stdout and "env shipped" in r.stdout
    rows = _rows(tmp_path / "run")
    assert [int(row["iteration"]) for row in rows] == [0, 1]
    assert all(int(row["env_steps"]) == 16 * 16 for row in rows)  # both workers' 8 envs x 16 steps
    saved = json.loads((tmp_path / "run" / "config.json").read_text())
    assert saved["ray"]["num_workers"] == 2 and saved["config"]["num_envs"] == 16


def test_alphazero_on_two_workers(cluster, tmp_path):
    cfg = _config(tmp_path, "az", {**TINY_AZ, "ray": {"num_workers": 2}})
    r = _cli("train", TICTACTOE, "--algo", "az", "--ray", cluster, "--config", cfg, "--iterations", "2",
             "--out", str(tmp_path / "run"))
    assert r.returncode == 0, r.stderr
    assert "ray: 2 workers" in r.stdout
    rows = _rows(tmp_path / "run")
    assert len(rows) == 2
    # Each iteration learns from at least `num_games` finished games (tasks of 4 games each).
    assert all(int(row["episodes"]) >= 8 and int(row["episodes"]) % 4 == 0 for row in rows)
    assert int(rows[-1]["buffer_rows"]) > 0 and (tmp_path / "run" / "last.safetensors").exists()


def test_one_worker_matches_the_local_run(cluster, tmp_path):
    from safetensors.numpy import load_file
    local = _cli("train", PUZZLE, "--config", _config(tmp_path, "local", TINY_PPO), "--iterations", "3",
                 "--out", str(tmp_path / "local"))
    assert local.returncode == 0, local.stderr
    remote = _cli("train", PUZZLE, "--ray", cluster, "--config",
                  _config(tmp_path, "one", {**TINY_PPO, "ray": {"num_workers": 1}}), "--iterations", "3",
                  "--out", str(tmp_path / "remote"))
    assert remote.returncode == 0, remote.stderr
    a, b = _rows(tmp_path / "local"), _rows(tmp_path / "remote")
    assert len(a) == len(b) == 3
    for x, y in zip(a, b):
        assert {k: v for k, v in x.items() if k not in TIMES} == {k: v for k, v in y.items() if k not in TIMES}
    wa, wb = load_file(str(tmp_path / "local" / "last.safetensors")), load_file(str(tmp_path / "remote" /
                                                                                     "last.safetensors"))
    assert sorted(wa) == sorted(wb)
    assert all((wa[k] == wb[k]).all() for k in wa)


def _worker_pid(cluster: str, run_name: str, deadline: float) -> int:
    """The pid of worker 0 of the run named `run_name`, asked of the actor itself."""
    import ray
    if not ray.is_initialized():
        ray.init(address=cluster, namespace="twisterl", logging_level="ERROR", log_to_driver=False)
    while time.monotonic() < deadline:
        names = [a["name"] for a in ray.util.list_named_actors(all_namespaces=True)
                 if a["namespace"] == "twisterl" and a["name"].startswith(f"{run_name}/worker-0.")]
        for name in names:
            try:
                return ray.get(ray.get_actor(name, namespace="twisterl").pid.remote(), timeout=30)
            except (ValueError, ray.exceptions.RayError):
                continue  # not up yet, or gone
        time.sleep(0.2)
    pytest.fail(f"no worker of {run_name} appeared")


def test_a_killed_worker_is_replaced(cluster, tmp_path):
    cfg = _config(tmp_path, "fault", {**TINY_PPO, "num_envs": 32, "num_steps": 256, "ray": {"num_workers": 2}})
    run = tmp_path / "fault-run"
    proc = subprocess.Popen(_cmd("train", PUZZLE, "--ray", cluster, "--config", cfg, "--iterations", "10",
                                 "--out", str(run)), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=_env())
    try:
        pid = _worker_pid(cluster, run.name, time.monotonic() + 90)
        deadline = time.monotonic() + 90
        while not ((run / "metrics.csv").exists() and _rows(run)) and time.monotonic() < deadline:
            time.sleep(0.05)  # the first iteration is done: the kill lands mid-run
        os.kill(pid, signal.SIGKILL)
        out, err = proc.communicate(timeout=150)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    assert "ray: worker 0 died" in out and "replaced it" in out
    rows = _rows(run)
    assert [int(row["iteration"]) for row in rows] == list(range(10))
    assert all(int(row["env_steps"]) == 32 * 256 for row in rows)


def test_a_killed_driver_resumes(cluster, tmp_path):
    cfg = _config(tmp_path, "resume", {**TINY_PPO, "ray": {"num_workers": 2}})
    run = tmp_path / "resume-run"
    proc = subprocess.Popen(_cmd("train", PUZZLE, "--ray", cluster, "--config", cfg, "--iterations", "1000",
                                 "--out", str(run)), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=_env())
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and proc.poll() is None:
            if (run / "metrics.csv").exists() and len(_rows(run)) >= 2:
                break
            time.sleep(0.1)
        assert proc.poll() is None, proc.stderr.read()
        proc.kill()  # SIGKILL: no cleanup of any kind
        proc.communicate()
    finally:
        if proc.poll() is None:
            proc.kill()
    r = _cli("train", "--resume", str(run), "--ray", cluster, "--iterations", "2")
    assert r.returncode == 0, r.stderr
    assert "ray: 2 workers" in r.stdout
    done = int(re.search(r"resuming .* after iteration (\d+)", r.stdout).group(1))
    assert done >= 0
    assert [int(row["iteration"]) for row in _rows(run)][-2:] == [done + 1, done + 2]


def test_tune_trials_as_ray_tasks(cluster, tmp_path):
    base = _config(tmp_path, "base", {"embedding_size": 32, "common_layers": [32], "gamma": 0.99})
    out = tmp_path / "tune"
    r = _cli("tune", str(ROOT / "examples" / "gridworld.twl"), "--ray", cluster, "--trials", "2", "--jobs", "2",
             "--time-limit", "3", "--config", base, "--out", str(out))
    assert r.returncode == 0, r.stderr
    assert "as Ray tasks" in r.stderr and "best: trial" in r.stdout
    with open(out / "trials.csv") as f:
        rows = list(csv.DictReader(f))
    assert [int(row["number"]) for row in rows] == [0, 1]
    assert {row["gamma"] for row in rows} == {"0.99"}
    assert any(row["state"] == "COMPLETE" and int(row["iterations"]) >= 1 for row in rows)


@pytest.mark.parametrize("section, field", [
    ({"num_workers": 0}, "num_workers"),
    ({"num_workers": 1.5}, "num_workers"),
    ({"cpus_per_worker": 0}, "cpus_per_worker"),
    ({"cpus_per_worker": "1"}, "cpus_per_worker"),
    ({"address": 6379}, "address"),
    ({"address": ""}, "address"),
    ({"threads_per_worker": 0}, "threads_per_worker"),
    ({"max_replacements": -1}, "max_replacements"),
    ({"ship_plugin": 1}, "ship_plugin"),
    ({"num_worker": 2}, "num_workers"),  # unknown key: did you mean
])
def test_the_ray_section_is_checked(section, field):
    with pytest.raises(ConfigError, match=f"`{field}`"):
        make_ray_config(section, "cfg.json: `ray`")


def test_the_ray_section_defaults_and_address():
    cfg = make_ray_config(None, "x", "127.0.0.1:6379")
    assert cfg.address == "127.0.0.1:6379" and cfg.num_workers is None and cfg.cpus_per_worker == 1.0
    assert split(10, 3) == [4, 3, 3] and split(16, 1) == [16]
    with pytest.raises(ConfigError, match="--ray ADDRESS"):
        make_ray_config({}, "x", " ")


def test_a_bad_section_stops_train_before_ray_starts(tmp_path, build_cache):
    from twisterl.train.driver import train
    cfg = _config(tmp_path, "bad", {**TINY_PPO, "ray": {"num_workers": 0}})
    with pytest.raises(ConfigError, match="`num_workers` must be between 1"):
        train(PUZZLE, str(tmp_path / "run"), cfg, iterations=1)
    assert not (tmp_path / "run").exists()


def test_without_ray_the_error_says_what_to_install(tmp_path, monkeypatch, build_cache):
    from twisterl.train import distributed
    from twisterl.train.driver import train
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError
    with pytest.raises(RuntimeError, match=r"pip install 'twisterl\[ray\]'"):
        distributed.require_ray()
    with pytest.raises(RuntimeError, match=r"pip install 'twisterl\[ray\]'"):
        train(PUZZLE, str(tmp_path / "run"), _config(tmp_path, "c", TINY_PPO), iterations=1, ray=True)
