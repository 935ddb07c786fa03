"""PPO's hyperparameters: the `Config` fields, their checks, and `make_config`.

Kept apart from the learner so a config can be read and checked without torch.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from .config import COMMON, MAX_COUNT, Check, ConfigError, build_config, choice, device, number, optional
from .evaluation import EvalSpec

# Hidden activations the default networks take (see `nets.ACTIVATIONS`).
ACTIVATION_NAMES = ("relu", "tanh", "gelu")

# The most transitions one iteration may collect (its arrays are allocated at once).
MAX_BATCH = 1 << 26


@dataclass
class Config:
    """PPO hyperparameters; the names follow CleanRL and the PPO paper."""

    num_envs: int = 256
    """envs stepped in lock-step"""
    num_steps: int = 64
    """steps per env per iteration"""
    num_threads: int = 2
    """threads for rollouts"""
    learner: str = "auto"
    """where updates run: "rust" (twisterl's own learner, no torch needed for the update), "torch", or
    "auto": Rust on the CPU for the networks it supports, torch on a GPU or for other networks"""
    torch_threads: int = 0
    """threads for torch's update; 0: `num_threads` for networks of 100k parameters or more, else 1
    (small networks lose far more to thread synchronisation than they gain)"""
    gamma: float = 0.995
    gae_lambda: float = 0.995
    update_epochs: int = 4
    num_minibatches: int = 4
    clip_coef: float = 0.1
    clip_vloss: bool = False
    """clip the value loss around the values seen in collection, by `clip_coef` (as CleanRL)"""
    target_kl: Optional[float] = None
    """stop the epochs of an update early once the approximate KL passes this (None: never)"""
    vf_coef: float = 0.8
    ent_coef: float = 0.01
    learning_rate: float = 3e-4
    anneal_lr: bool = False
    """decay the learning rate linearly to 0 over `max_env_steps` (as CleanRL)"""
    max_grad_norm: float = 0.5
    norm_adv: bool = True
    embedding_size: int = 512
    """first layer's width (for continuous actions: the first hidden layer of actor and critic)"""
    common_layers: list = field(default_factory=lambda: [256])
    network: str = "auto"
    """"auto" (by the env's kind, see twisterl.nets) or "actor_critic" (separate actor and critic
    MLPs, orthogonal init, for dense observations)"""
    activation: str = "relu"
    """hidden activation of the default networks: relu, tanh or gelu (continuous: always tanh)"""
    conv_channels: list = field(default_factory=lambda: [32, 32])
    """conv layers of the default network for `planes` observations"""
    init_log_std: float = 0.0
    """continuous actions: initial log standard deviation of the Gaussian"""
    norm_reward: bool = False
    """scale rewards by the running std of the discounted return (as Gymnasium's NormalizeReward)"""
    norm_obs: bool = False
    """dense observations: feed the network (observation - running mean) / running std, the
    statistics updated after each iteration and stored with the weights (as Gymnasium's
    NormalizeObservation, without its clipping)"""
    intrinsic: str = "none"
    """an exploration bonus added to the rewards training learns from, never to the returns it
    reports: "none", "count" (intrinsic_coef / sqrt(visits) of the next observation, for
    envs whose states recur) or "rnd" (random network distillation: the error of a trained
    predictor of a fixed random network's features, normalised by its running std)"""
    intrinsic_coef: float = 0.1
    """the weight of the exploration bonus against the env's (scaled) rewards"""
    max_env_steps: int = 0
    """stop after this many env steps (0: no limit)"""
    max_episode_steps: int = 0
    """truncate training episodes after this many steps (0: the env's own endings only);
    `twisterl train` picks one for envs that declare no `truncate` (see `auto_episode_limit`)"""
    difficulty: int = 1
    """starting difficulty"""
    diff_threshold: float = 0.85
    diff_max: int = 32
    min_episodes: int = 100
    """finished episodes an iteration needs before it can raise the difficulty"""
    evals: dict = field(default_factory=dict)
    """evaluations run after each iteration, as TwisteRL's:
    {name: {"num_episodes": 100, "deterministic": false, "num_searches": 1}}"""
    diff_metric: str = "train"
    """what raises the difficulty: "train" (the iteration's own sampled episodes) or an eval's name"""
    device: str = "cpu"
    """where torch learns: "cpu", "cuda", "cuda:N" or "auto" (rollouts always run in Rust on the CPU)"""
    twists: bool = False
    """act on a randomly twisted observation at each step (the env's `symmetry` blocks)"""
    pool_prob: float = 0.5
    """two-player games: the chance that an episode is played against a past policy from the
    pool rather than by pure self-play"""
    pool_size: int = 8
    """two-player games: the most past policies the pool keeps (the oldest goes first)"""
    pool_every: int = 5
    """two-player games: iterations between snapshots of the policy into the pool"""
    arena_every: int = 1
    """two-player games: iterations between arena evaluations (the others report NaN)"""
    arena_share: float = 0.1
    """two-player games: the most of the run's time the arena may take; an arena is skipped
    (NaN) while the arenas so far took more than this share of the run (1: never skipped)"""
    arena_games: int = 100
    """two-player games: games against each arena opponent (random play, pure MCTS)"""
    pure_simulations: int = 100
    """two-player games: simulations per move of the pure-MCTS arena opponent (0: skip it)"""
    seed: int = 0


def _evals(value) -> Optional[str]:
    if not isinstance(value, dict):
        return f"must be an object of named evals, not {value!r}"
    try:
        for name, spec in value.items():
            EvalSpec.from_dict(name, spec)
    except ValueError as exc:
        return f"is wrong: {exc}"
    return None


CHECKS: dict[str, Check] = {
    **COMMON,
    "num_envs": number("int", 1, 1 << 20),
    "num_steps": number("int", 1, 1 << 20),
    "gamma": number("float", 0, 1),
    "gae_lambda": number("float", 0, 1),
    "update_epochs": number("int", 1, 1 << 20),
    "num_minibatches": number("int", 1, 1 << 30),
    "clip_coef": number("float", 0, 1e6, positive=True),
    "clip_vloss": number("bool"),
    "target_kl": optional(number("float", 0, 1e6, positive=True)),
    "vf_coef": number("float", 0, 1e6),
    "ent_coef": number("float", -1e6, 1e6),
    "anneal_lr": number("bool"),
    "max_grad_norm": number("float", 0, 1e12, positive=True),
    "norm_adv": number("bool"),
    "network": choice("auto", "actor_critic"),
    "activation": choice(*ACTIVATION_NAMES),
    "init_log_std": number("float", -20, 20),
    "norm_reward": number("bool"),
    "norm_obs": number("bool"),
    "intrinsic": choice("none", "count", "rnd"),
    "intrinsic_coef": number("float", 0, 1e6),
    "max_env_steps": number("int", 0, MAX_COUNT),
    "max_episode_steps": number("int", 0, MAX_COUNT),
    "min_episodes": number("int", 0, MAX_COUNT),
    "evals": _evals,
    "diff_metric": number("str"),
    "device": device,
    "pool_prob": number("float", 0, 1),
    "pool_size": number("int", 1, 1 << 16),
    "pool_every": number("int", 1, 1 << 30),
    "arena_every": number("int", 1, 1 << 30),
    "arena_share": number("float", 0, 1, positive=True),
    "arena_games": number("int", 1, 1 << 24),
    "pure_simulations": number("int", 0, 1 << 24),
}
"""The type and range of every `Config` field (see `twisterl.train.config`)."""


def make_config(data, where: str, base: Optional[dict] = None) -> Config:
    """A checked `Config` from the keys in `data` over `base`; a `ConfigError` naming `where`
    and the field for anything wrong, including a `diff_metric` that names no eval."""
    cfg = build_config(Config, data, where, CHECKS, base)
    if cfg.num_envs * cfg.num_steps > MAX_BATCH:
        raise ConfigError(f"{where}: `num_envs` x `num_steps` is {cfg.num_envs * cfg.num_steps:,} transitions per "
                          f"iteration; at most {MAX_BATCH:,} fit in memory")
    if cfg.diff_metric != "train" and cfg.diff_metric not in cfg.evals:
        raise ConfigError(f"{where}: `diff_metric` {cfg.diff_metric!r} is neither \"train\" nor one of the evals "
                          f"({', '.join(cfg.evals) or 'none configured'})")
    if cfg.anneal_lr and not cfg.max_env_steps:
        raise ConfigError(f"{where}: `anneal_lr` needs `max_env_steps`: the rate decays to 0 over that many env steps")
    return cfg
