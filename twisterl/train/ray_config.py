"""The `ray` section of a training config: where the Ray cluster is and how many workers
to run on it. Checked like the learners' configs (`twisterl.train.config`), without Ray
or torch, so that a bad section is refused before anything starts."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

from .config import Check, ConfigError, build_config, number, optional


@dataclass
class RayConfig:
    """How a run uses Ray (see docs/distributed.md)."""

    address: Optional[str] = None
    """the cluster to join ("auto", "HOST:PORT", "ray://HOST:PORT"); null: start a local one"""
    num_workers: Optional[int] = None
    """rollout (PPO) or self-play (AlphaZero) actors; null: one per `cpus_per_worker` CPUs of the cluster"""
    cpus_per_worker: float = 1.0
    """CPUs Ray reserves for each worker"""
    threads_per_worker: Optional[int] = None
    """env threads in each worker; null: the learner's `num_threads`"""
    max_replacements: int = 16
    """workers that may die (and be replaced) in one run before it stops with an error"""
    ship_plugin: bool = True
    """send the built env plugin to workers on nodes like the driver's (same platform, Python
    and twisterl); false, or another kind of node: each worker compiles the env from its source"""


CHECKS: dict[str, Check] = {
    "address": optional(number("str")),
    "num_workers": optional(number("int", 1, 1 << 16)),
    "cpus_per_worker": number("float", 0, 1 << 16, positive=True),
    "threads_per_worker": optional(number("int", 1, 1024)),
    "max_replacements": number("int", 0, 1 << 20),
    "ship_plugin": number("bool"),
}
"""The type and range of every `RayConfig` field."""


def make_ray_config(data: Any, where: str, address: Optional[str] = None) -> RayConfig:
    """A checked `RayConfig` from a config's `ray` section (`{}` for none), a `ConfigError`
    naming `where` and the field otherwise; `address` (from `--ray ADDRESS`) overrides the
    section's."""
    if data is None:
        data = {}
    cfg = build_config(RayConfig, data, where, CHECKS)
    if address is not None:
        if not address.strip():
            raise ConfigError("--ray ADDRESS must name a cluster (\"auto\", HOST:PORT or ray://HOST:PORT), not ''")
        cfg.address = address
    if cfg.address is not None and not cfg.address.strip():
        raise ConfigError(f"{where}: `address` must name a cluster or be null, not ''")
    return cfg


def split(total: int, parts: int) -> list[int]:
    """`total` items shared by `parts` workers as evenly as can be (the first ones take one more)."""
    return [total // parts + (1 if k < total % parts else 0) for k in range(parts)]
