"""Training on a Ray cluster: the learner stays on the driver, rollouts (PPO) and self-play
games (AlphaZero) run in Ray actors (`twisterl.train.ray_workers.Worker`).

- Each worker builds the env from the driver's: the plugin's bytes through the object store
  when its node is like the driver's, else the `.twl` source, compiled there.
- Weights go out once per iteration: one `ray.put` of the runtime's layer tuples, its
  reference passed to every worker (no torch on the workers).
- PPO (`RayCollector`): every iteration, synchronously, each worker collects from its own
  share of `num_envs`; the rollouts are joined along the env axis. Worker k's envs and
  sampling draw from seeds derived from the run's (worker 0: the run's own), so one worker
  gives the local run's rollouts exactly.
- AlphaZero (`SelfPlayFeed`): every worker always has a self-play task running; an
  iteration takes the games that finished (at least `num_games`), and each finished worker
  starts again at once with the newest weights, while the learner learns.
- A worker that dies (`RayActorError`) is replaced by a new actor and its unfinished batch
  is asked of the new one; the rest carries on. `notify` gets a line saying so.

Ray is imported only when a run asks for it (`connect`); see docs/distributed.md.
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
import time
from dataclasses import asdict
from pathlib import Path
from typing import Callable, Optional

from .config import ConfigError
from .ray_config import RayConfig, split
from .ray_workers import Worker, node_key, shard_seed
from .rollout import derived_seed, join_envs

log = logging.getLogger("twisterl.ray")
NAMESPACE = "twisterl"
"""The Ray namespace of every actor a run starts (named RUN/worker-K.GENERATION)."""


def require_ray():
    """The `ray` module, or a `RuntimeError` saying how to install it."""
    try:
        import ray
    except ImportError:
        raise RuntimeError("--ray needs Ray (ray is not installed): pip install 'twisterl[ray]'") from None
    return ray


def connect(cfg: RayConfig):
    """Join the cluster at `cfg.address` (none: start a local Ray, or join $RAY_ADDRESS);
    returns the `ray` module."""
    ray = require_ray()
    if not ray.is_initialized():
        local = cfg.address is None and not os.environ.get("RAY_ADDRESS")
        extra = {"include_dashboard": False} if local else {}
        try:
            ray.init(address=cfg.address, namespace=NAMESPACE, logging_level=logging.WARNING, log_to_driver=False,
                     **extra)
        except (ConnectionError, ValueError) as exc:
            raise RuntimeError(f"ray: cannot join the cluster at {cfg.address}: {exc}") from None
    return ray


def worker_count(ray, cfg: RayConfig) -> int:
    """`cfg.num_workers`, or one per `cpus_per_worker` CPUs of the cluster."""
    if cfg.num_workers is not None:
        return cfg.num_workers
    cpus = float(ray.cluster_resources().get("CPU", 1))
    return max(1, int(cpus // cfg.cpus_per_worker))


def env_message(ray, cls, source: str, params: dict, ship: bool) -> tuple[dict, object]:
    """What a worker builds its env from, and the object-store reference of the plugin's
    bytes (None when not shipped)."""
    from ..envs.compiler import spec_hash
    data = Path(cls.library).read_bytes() if ship else None
    env = {"source": source, "path": cls.source_path, "params": dict(params), "name": cls.name,
           "spec_sha256": spec_hash(cls), "node": node_key(),
           "sha256": hashlib.sha256(data).hexdigest() if data is not None else None}
    return env, (ray.put(data) if data is not None else None)


class WorkerPool:
    """The run's actors, worker k built with `shard(k)`; a dead one is replaced (at most
    `cfg.max_replacements` times in a run)."""

    def __init__(self, ray, env: dict, plugin, count: int, shard: Callable[[int], Optional[dict]], cfg: RayConfig,
                 name: str, notify: Callable[[str], None]):
        self.ray, self.env, self.plugin, self.shard, self.cfg, self.name = ray, env, plugin, shard, cfg, name
        self.notify = notify
        self.actor_cls = ray.remote(Worker)
        self.generation = [0] * count
        self.replacements = 0
        self.actors = [self._start(k) for k in range(count)]
        try:
            hows = self.run_all("how_loaded", lambda k: ())
        except BaseException:
            self.close()
            raise
        self.how = ", ".join(sorted(set(hows)))

    def _start(self, k: int):
        options = {"num_cpus": self.cfg.cpus_per_worker, "max_concurrency": 2, "max_restarts": 0,
                   "name": f"{self.name}/worker-{k}.{self.generation[k]}", "namespace": NAMESPACE}
        return self.actor_cls.options(**options).remote(self.env, self.plugin, self.shard(k))

    def replace(self, k: int, exc: Exception) -> None:
        """Worker k died (`exc`): start another in its place, or stop the run once too many have
        (or at once when it died of an error in its own start, such as an env that does not build)."""
        if getattr(exc, "actor_init_failed", False):
            raise RuntimeError(f"ray: worker {k} could not start: {_reason(exc, last=True)}")
        self.replacements += 1
        if self.replacements > self.cfg.max_replacements:
            raise RuntimeError(f"ray: {self.replacements} workers died in this run, more than `max_replacements` "
                               f"({self.cfg.max_replacements}); the last: {_reason(exc)}")
        try:
            self.ray.kill(self.actors[k], no_restart=True)
        except Exception:  # noqa: BLE001 - it is gone already
            pass
        self.generation[k] += 1
        self.actors[k] = self._start(k)
        line = f"ray: worker {k} died ({_reason(exc)}); replaced it, and its unfinished batch is redone"
        log.warning(line)
        self.notify(line)

    def run_all(self, method: str, args: Callable[[int], tuple], **kwargs) -> list:
        """`method(*args(k), **kwargs)` on every worker k at once; their results in order. A
        worker that dies is replaced and asked again (its arguments made anew)."""
        refs = [getattr(a, method).remote(*args(k), **kwargs) for k, a in enumerate(self.actors)]
        out = []
        for k, ref in enumerate(refs):
            while True:
                try:
                    out.append(self.ray.get(ref))
                    break
                except self.ray.exceptions.RayActorError as exc:
                    self.replace(k, exc)
                    ref = getattr(self.actors[k], method).remote(*args(k), **kwargs)
        return out

    def close(self) -> None:
        for actor in self.actors:
            try:
                self.ray.kill(actor, no_restart=True)
            except Exception:  # noqa: BLE001 - already gone
                pass


def _reason(exc: Exception, last: bool = False) -> str:
    """The first (or `last`) line of a Ray error, short."""
    text = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
    first = (text[-1] if last else text[0]) if text else type(exc).__name__
    return first if len(first) <= 160 else first[:157] + "..."


class RayCollector:
    """PPO's collection on the pool: worker k steps `split(num_envs, workers)[k]` envs."""

    def __init__(self, ray, env: dict, plugin, cfg, rcfg: RayConfig, name: str, notify: Callable[[str], None]):
        self.ray = ray
        count = worker_count(ray, rcfg)
        if count > cfg.num_envs:
            raise ConfigError(f"the `ray` section: `num_workers` ({count}) must be at most `num_envs` "
                              f"({cfg.num_envs}): each worker steps its own envs")
        self.sizes = split(cfg.num_envs, count)
        self.cfg, self.threads = cfg, rcfg.threads_per_worker or cfg.num_threads
        self.difficulty = cfg.difficulty
        self.pool = WorkerPool(ray, env, plugin, count, self.shard, rcfg, name, notify)

    def shard(self, k: int) -> dict:
        return {"num_envs": self.sizes[k], "seed": shard_seed(self.cfg.seed, k), "num_threads": self.threads,
                "difficulty": self.difficulty, "max_episode_steps": self.cfg.max_episode_steps}

    def set_difficulty(self, difficulty: int) -> None:
        self.difficulty = difficulty
        self.pool.run_all("set_difficulty", lambda k: (difficulty,))

    def collect(self, layers: tuple, opponent: Optional[tuple], num_steps: int, seed: int, gamma: float, lam: float,
                chunk: int, deadline: Optional[float], **options) -> Optional[dict]:
        """Every worker's rollout with the policy of `layers` (sent once), side by side; None
        when the deadline stopped any of them."""
        weights = self.ray.put(layers)
        rival = self.ray.put(opponent) if opponent is not None else None

        def args(k: int) -> tuple:
            left = None if deadline is None else deadline - time.perf_counter()
            return weights, rival, num_steps, derived_seed(seed, k), gamma, lam, chunk, left

        parts = self.pool.run_all("collect", args, **options)
        if any(p is None for p in parts):
            return None
        return parts[0] if len(parts) == 1 else join_envs(parts)

    def close(self) -> None:
        self.pool.close()


class SelfPlayFeed:
    """AlphaZero's self-play on the pool, asynchronous: each worker plays tasks of
    `ceil(num_games / workers)` games back to back, each with the newest weights when it starts."""

    def __init__(self, ray, env: dict, plugin, cfg, group: list, rcfg: RayConfig, name: str,
                 notify: Callable[[str], None]):
        self.ray, self.cfg = ray, cfg
        count = worker_count(ray, rcfg)
        threads = rcfg.threads_per_worker or cfg.num_threads
        self.games = math.ceil(cfg.num_games / count)
        self.search = {"simulations": cfg.num_simulations, "c_puct": cfg.c_puct, "leaf_batch": cfg.leaf_batch,
                       "dirichlet_alpha": cfg.dirichlet_alpha, "dirichlet_frac": cfg.dirichlet_frac,
                       "twists": group if cfg.average_twists else None}
        self.options = {"num_threads": threads, "max_moves": cfg.max_moves, "temperature": cfg.temperature,
                        "temp_moves": cfg.temp_moves, "concurrent": min(self.games, cfg.concurrent_games * threads)}
        self.tasks: dict = {}
        """running task -> its worker"""
        self.finished: list[dict] = []
        """games finished but not yet handed to the learner"""
        self.count = 0
        self.weights = None
        self.difficulty = 0
        self.pool = WorkerPool(ray, env, plugin, count, lambda k: None, rcfg, name, notify)

    def _submit(self, k: int) -> None:
        self.count += 1
        seed = derived_seed(self.cfg.seed * 1_000_003, self.count)
        ref = self.pool.actors[k].play.remote(self.weights, self.games, seed, self.difficulty, self.search,
                                              self.options)
        self.tasks[ref] = k

    def self_play(self, layers: tuple, difficulty: int, deadline: Optional[float]) -> Optional[dict]:
        """Publish the weights of `layers`, then wait for at least `num_games` finished games
        (restarting each worker that finishes); None once the deadline has passed (the games
        finished so far are kept for the next call)."""
        from .alphazero import join_games
        self.weights, self.difficulty = self.ray.put(layers), difficulty
        for k in range(len(self.pool.actors)):
            if k not in self.tasks.values():
                self._submit(k)
        have = sum(len(d["lengths"]) for d in self.finished)
        while have < self.cfg.num_games:
            timeout = None if deadline is None else deadline - time.perf_counter()
            if timeout is not None and timeout <= 0:
                return None
            ready, _ = self.ray.wait(list(self.tasks), num_returns=1, timeout=timeout)
            for ref in ready:
                k = self.tasks.pop(ref)
                try:
                    data = self.ray.get(ref)
                except self.ray.exceptions.RayActorError as exc:
                    self.pool.replace(k, exc)
                    self._submit(k)
                    continue
                self.finished.append(data)
                have += len(data["lengths"])
                self._submit(k)
        data, self.finished = join_games(self.finished), []
        return data

    def close(self) -> None:
        self.tasks.clear()
        self.pool.close()


class Session:
    """A run's use of Ray: the learner's `remote`, and `line`, what the driver prints about it."""

    def __init__(self, ray, remote, cfg: RayConfig, started: bool):
        self.ray, self.remote, self.cfg, self.started = ray, remote, cfg, started
        pool = remote.pool
        where = cfg.address or "a local Ray instance"
        self.line = (f"ray: {len(pool.actors)} workers on {where} ({cfg.cpus_per_worker:g} CPU each, env "
                     f"{pool.how}); the learner runs here")

    def close(self) -> None:
        """Stop the workers, and Ray itself when this run started it."""
        try:
            self.remote.close()
        finally:
            if self.started:
                self.ray.shutdown()


def attach(learner, algo: str, cls, source: str, params: dict, cfg: RayConfig, name: str,
           notify: Callable[[str], None]) -> Session:
    """Start the workers of a run named `name` and give them to `learner` (its `remote`)."""
    ray = require_ray()
    started = not ray.is_initialized()
    connect(cfg)
    try:
        env, plugin = env_message(ray, cls, source, params, cfg.ship_plugin)
        if algo == "ppo":
            remote = RayCollector(ray, env, plugin, learner.cfg, cfg, name, notify)
        else:
            remote = SelfPlayFeed(ray, env, plugin, learner.cfg, learner.group, cfg, name, notify)
    except BaseException:
        if started:
            ray.shutdown()
        raise
    learner.remote = remote
    return Session(ray, remote, cfg, started)


def record(cfg: RayConfig) -> dict:
    """What config.json keeps of the `ray` section."""
    return asdict(cfg)
