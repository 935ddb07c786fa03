"""AlphaZero's hyperparameters: the `Config` fields, their checks, and `make_config`.

Kept apart from the learner so a config can be read and checked without torch.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .config import COMMON, Check, build_config, number


@dataclass
class Config:
    """AlphaZero hyperparameters; the names follow the AlphaZero paper."""

    num_games: int = 64
    """self-play games per iteration"""
    num_simulations: int = 50
    """MCTS simulations per move in self-play and in the arena"""
    c_puct: float = 1.5
    dirichlet_alpha: float = 0.5
    dirichlet_frac: float = 0.25
    """weight of the root's Dirichlet noise in self-play"""
    temperature: float = 1.0
    temp_moves: int = 6
    """self-play moves drawn from the visit counts at `temperature`; then the most visited"""
    leaf_batch: int = 1
    """leaves per tree evaluated together (virtual loss); games are batched anyway"""
    concurrent_games: int = 16
    """games per thread searched in lockstep, their leaves in one forward pass"""
    num_threads: int = 2
    """threads for self-play and the arena"""
    learner: str = "auto"
    """where updates run: "rust" (twisterl's own learner, no torch needed for the update), "torch", or
    "auto": Rust on the CPU for the networks it supports, torch on a GPU or for other networks"""
    torch_threads: int = 1
    """threads for torch (small nets learn fastest on one; more oversubscribe the cores)"""
    replay_size: int = 20_000
    batch_size: int = 256
    train_steps: int = 100
    """gradient steps per iteration"""
    learning_rate: float = 1e-3
    weight_decay: float = 1e-4
    value_coef: float = 1.0
    embedding_size: int = 128
    common_layers: list = field(default_factory=lambda: [128])
    conv_channels: list = field(default_factory=lambda: [32, 32])
    twists: bool = True
    """augment the training rows with the env's symmetries"""
    average_twists: bool = False
    """average the network over the env's symmetries at every leaf of the search"""
    arena_games: int = 20
    arena_threshold: float = 0.55
    arena_temp_moves: int = 2
    """arena moves drawn at temperature 1, so that games differ"""
    pure_simulations: int = 200
    """simulations of the pure-MCTS opponent in the arena (0: skip it)"""
    max_moves: int = 1000
    """a game longer than this is cut (counted as truncated)"""
    difficulty: int = 1
    """puzzles: the starting difficulty"""
    diff_threshold: float = 0.9
    diff_max: int = 32
    seed: int = 0


CHECKS: dict[str, Check] = {
    **COMMON,
    "num_games": number("int", 1, 1 << 24),
    "num_simulations": number("int", 1, 1 << 24),
    "c_puct": number("float", 0, 1e6, positive=True),
    "dirichlet_alpha": number("float", 0, 1e6, positive=True),
    "dirichlet_frac": number("float", 0, 1),
    "temperature": number("float", 0, 1e6),
    "temp_moves": number("int", 0, 1 << 24),
    "leaf_batch": number("int", 1, 4096),
    "concurrent_games": number("int", 1, 1 << 16),
    "replay_size": number("int", 1, 1 << 28),
    "batch_size": number("int", 1, 1 << 24),
    "train_steps": number("int", 0, 1 << 30),
    "weight_decay": number("float", 0, 1e6),
    "value_coef": number("float", 0, 1e6),
    "average_twists": number("bool"),
    "arena_games": number("int", 1, 1 << 24),
    "arena_threshold": number("float", 0, 1),
    "arena_temp_moves": number("int", 0, 1 << 24),
    "pure_simulations": number("int", 0, 1 << 24),
    "max_moves": number("int", 1, 1 << 30),
}
"""The type and range of every `Config` field (see `twisterl.train.config`)."""


def make_config(data, where: str) -> Config:
    """A checked `Config` from the keys in `data`; a `ConfigError` naming `where` and the field."""
    return build_config(Config, data, where, CHECKS)
