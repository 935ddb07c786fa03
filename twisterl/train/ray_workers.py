"""The bodies of the Ray actors that collect PPO rollouts and play AlphaZero self-play
games (`twisterl.train.distributed` makes them actors and drives them). Nothing here
imports Ray or torch: a worker gets its env as source text (compiled through the build
cache) or as the driver's plugin bytes, and its weights as the runtime's layer tuples
(`twisterl.train.networks.export_layers`), which `_core.Policy` is built from."""

from __future__ import annotations

import hashlib
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Optional

import numpy as np

from .. import _core
from .rollout import collect_rollout, derived_seed


def node_key() -> list:
    """What a plugin built on this node needs of another to load there: the platform, the
    machine, the C library, the Python version and twisterl's version."""
    from importlib import metadata
    try:
        version = metadata.version("twisterl")
    except metadata.PackageNotFoundError:
        version = "unknown"
    return [sys.platform, platform.machine(), list(platform.libc_ver()), list(sys.version_info[:2]), version]


def _private_file(folder: str, name: str, data: bytes) -> Path:
    """`data` in a file `name` of this machine's temp folder `folder`, written whole (an
    existing file of that name, named by its hash, already holds it)."""
    where = Path(tempfile.gettempdir()) / folder
    where.mkdir(parents=True, exist_ok=True)
    path = where / name
    if not path.exists():
        tmp = where / f".{name}.{os.getpid()}"
        tmp.write_bytes(data)
        os.replace(tmp, path)
    return path


def load_env(env: dict, plugin: Optional[bytes]):
    """(the env class, "shipped" or "compiled"): from the driver's `plugin` bytes when this
    node is like the driver's and they load, else compiled from `env["source"]`."""
    from ..envs import compile
    from ..envs.compiler import load_built
    if plugin is not None and env["node"] == node_key():
        digest = hashlib.sha256(plugin).hexdigest()
        if digest == env["sha256"]:
            path = _private_file("twisterl-ray-plugins", f"{digest}.so", plugin)
            try:
                return load_built(path, env["source"], env["path"], env["name"], env["spec_sha256"]), "shipped"
            except RuntimeError:  # a BuildError: it does not load here, so it is compiled here instead
                pass
    text = env["source"].encode()
    src = _private_file(f"twisterl-ray-sources/{hashlib.sha256(text).hexdigest()[:20]}",
                        Path(env["path"]).name or "env.twl", text)
    return compile(src), "compiled"


class Worker:
    """One Ray actor: an env built from the driver's, and (for PPO) a batch of envs it keeps
    stepping between iterations, or (for AlphaZero) none: each `play` makes its own."""

    def __init__(self, env: dict, plugin: Optional[bytes], shard: Optional[dict] = None):
        self.cls, self.how = load_env(env, plugin)
        self.params = dict(env["params"])
        self.vec = None
        if shard is not None:
            self.vec = self.cls.vector(shard["num_envs"], seed=shard["seed"], num_threads=shard["num_threads"],
                                       difficulty=shard["difficulty"], max_episode_steps=shard["max_episode_steps"],
                                       **self.params)
            self.seats = np.full(shard["num_envs"], -1, dtype=np.int64)
            self.vec.reset()

    def pid(self) -> int:
        """This actor's process id (what a fault test kills)."""
        return os.getpid()

    def how_loaded(self) -> str:
        """"shipped" (the driver's plugin) or "compiled" (from the source, on this node)."""
        return self.how

    def set_difficulty(self, difficulty: int) -> None:
        """The curriculum's new level, for every env of the batch (which restart)."""
        self.vec.set_difficulty(difficulty)
        self.vec.reset()

    def collect(self, layers: tuple, opponent: Optional[tuple], num_steps: int, seed: int, gamma: float,
                lam: float, chunk: int, seconds_left: Optional[float], twists: bool, **options) -> Optional[dict]:
        """This batch's PPO rollout (`twisterl.train.rollout.collect_rollout`) with the policy
        of `layers`; None when `seconds_left` ran out first."""
        deadline = None if seconds_left is None else time.perf_counter() + seconds_left
        if self.cls.players == 2:
            options.update(seats=self.seats, opponent=None if opponent is None else _core.Policy(*opponent))
        return collect_rollout(self.vec.batch, _core.Policy(*layers), self.vec.num_envs, num_steps, seed, gamma, lam,
                               chunk, deadline, twists=list(self.vec.twists().values()) if twists else None,
                               **options)

    def play(self, layers: tuple, games: int, seed: int, difficulty: int, search: dict, options: dict) -> dict:
        """`games` AlphaZero self-play games (`twisterl.search.play_games`, recorded), each
        move a search with `search`'s options on the policy of `layers`."""
        from ..search import agent, play_games
        me = agent(_core.Policy(*layers), **search)
        return play_games(self.cls, self.params, [me], games, seed=seed, difficulty=difficulty, record=True,
                          **options)


def shard_seed(seed: int, k: int) -> int:
    """The env seed of worker k's batch (worker 0: the run's own seed)."""
    return derived_seed(seed, k)
