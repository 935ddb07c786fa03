"""A run dir's pieces, read back and checked against each other: the env compiled from
its own env.twl, its learner config, and its policy network with a checkpoint's weights."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from . import az_config, ppo_config
from .config import ConfigError
from .rundir import CheckpointError, RunDir, check_env

# Defaults for envs with continuous actions (PPO's usual settings for small control tasks:
# separate 64x64 tanh actor and critic, short horizon, normalised rewards).
CONTINUOUS_DEFAULTS = {
    "num_envs": 64, "num_steps": 256, "gamma": 0.9, "gae_lambda": 0.95, "update_epochs": 10,
    "num_minibatches": 32, "clip_coef": 0.2, "vf_coef": 0.5, "ent_coef": 0.0, "learning_rate": 1e-3,
    "embedding_size": 64, "common_layers": [64], "norm_reward": True, "max_env_steps": 1_000_000,
}


def make_ppo_config(overrides: dict, cls=None, where: str = "the config") -> ppo_config.Config:
    """The PPO config: the defaults for the env's kind, then `overrides`, every field checked
    (a `ConfigError` names `where` and the field)."""
    base = dict(CONTINUOUS_DEFAULTS) if cls is not None and cls.continuous else {}
    return ppo_config.make_config(overrides, where, base)


def make_az_config(overrides: dict, where: str = "the config") -> az_config.Config:
    """The AlphaZero config: the defaults, then `overrides`, every field checked."""
    return az_config.make_config(overrides, where)


def run_env(run: RunDir):
    """The env class compiled from the run's own env.twl, and that source."""
    from ..envs import CheckError, compile
    path = run.path / "env.twl"
    try:
        source = path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"{path} cannot be read: {getattr(exc, 'strerror', None) or exc}") from None
    try:
        return compile(path), source
    except CheckError as exc:
        raise CheckpointError(f"{path}, the source this run trained on, has errors:\n{exc}") from None


def run_config(run: RunDir):
    """config.json of a run (checked by `RunDir.config`), and its learner config, every
    field checked as a `--config` file's would be, and its network description."""
    from .netspec import check_description
    saved = run.config()
    path = run.path / "config.json"
    if "policy" in saved:
        try:
            check_description(saved["policy"])
        except ValueError as exc:
            raise CheckpointError(f"{path}: the field `policy` describes no network this version can build: "
                                  f"{exc}") from None
    where = f"{path}: config"
    try:
        if saved.get("algo") == "az":
            return saved, make_az_config(saved["config"], where)
        return saved, make_ppo_config(saved["config"], None, where)
    except ConfigError as exc:
        raise CheckpointError(str(exc)) from None


def check_network(saved: dict, desc: dict, run: RunDir) -> None:
    """The network a run's config gives must be the one its config.json records."""
    if "policy" in saved and saved["policy"] != desc:
        raise CheckpointError(f"{run.path / 'config.json'}: the field `policy` ({saved['policy']}) is not the "
                              f"network its `config` gives ({desc})")


def env_checker(cls, params: dict, source: Optional[str] = None, config=None, what: Optional[str] = None):
    """A `check` for `RunDir.load`: the checkpoint was made for `cls` with `params` (and
    `source`), and its difficulty is one the run's `config` can reach. `what` names the
    env's file in messages (default: the file `cls` was first compiled from)."""

    def check(meta: dict, path: Path) -> None:
        check_env(meta, cls, params, source, path, what or cls.source_path)
        if config is not None and meta["difficulty"] > max(config.difficulty, config.diff_max):
            raise CheckpointError(f"{path}: the metadata field `difficulty` is {meta['difficulty']}, above the "
                                  f"run's diff_max ({config.diff_max})")
    return check


def load_policy(run: RunDir, which: str = "best", cls=None, params: Optional[dict] = None,
                source: Optional[str] = None, what: Optional[str] = None):
    """The torch network of a run, with the weights of checkpoint `which`, its metadata and
    the run's config.json. With `cls`, the checkpoint must have been made for that env with
    `params` (default: the run's) and, when `source` is given, from that source; what
    differs is a `CheckpointError` (`what` names the env's file)."""
    from .networks import build_network
    cfg, config = run_config(run)
    desc = cfg.get("policy") or {"kind": "basic", "obs_size": cfg["obs_size"], "num_actions": cfg["num_actions"],
                                 "embedding_size": config.embedding_size, "common_layers": config.common_layers}
    try:
        net = build_network(desc)
    except (KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(f"{run.path / 'config.json'}: the field `policy` describes no network this version "
                              f"can build: {exc}") from None
    check = None
    if cls is not None:
        check = env_checker(cls, cfg.get("params", {}) if params is None else params, source, config, what)
    meta = run.load(which, net, {"env": cfg["env"], "obs_size": cfg["obs_size"], "num_actions": cfg["num_actions"]},
                    check)
    return net, meta, cfg
