"""What `twisterl export --train` puts in a package: the training recipe and the starting
weights, resolved exactly as `twisterl train` resolves them (the config file, the auto
config's choices, the network), so that the page trains what the command line would.

The page runs the runtime core's PPO loop (`runtime/core/src/learn/ppo.rs`), count-based
exploration included. It has no evals, RND bonus, observation normalisation or self-play
opponent pool: a config that asks for one of them is refused here, by name, rather than
trained differently.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Optional, TextIO

# The keys the page's loop reads (runtime/wasm/src/trainer.rs, `KEYS`), by their config names.
RECIPE_KEYS = ("num_envs", "num_steps", "gamma", "gae_lambda", "update_epochs", "num_minibatches", "clip_coef",
               "clip_vloss", "target_kl", "vf_coef", "ent_coef", "learning_rate", "anneal_lr", "max_env_steps",
               "max_grad_norm", "norm_adv", "norm_reward", "intrinsic", "intrinsic_coef", "max_episode_steps",
               "difficulty", "curriculum", "diff_threshold", "diff_max", "min_episodes", "twists", "seed")


# What the page's loop has no counterpart for: the config key, the value that asks for it,
# the value that leaves it out, and what it is.
PAGE_LACKS = (("norm_obs", True, False, "observation normalisation"),
              ("intrinsic", "rnd", "none", "RND exploration bonus (its predictor trains in torch)"))


class TrainingRecipeError(ValueError):
    """The config asks for something the page's trainer does not do; the message says what."""


@dataclass(frozen=True)
class BrowserTraining:
    """The recipe (JSON text, `RECIPE_KEYS` only), the starting weights (a policy file) and
    notes on what the page leaves out for this env."""
    recipe: str
    start: bytes
    notes: tuple[str, ...]

    def settings(self) -> dict:
        return json.loads(self.recipe)


def browser_training(path: str, config_path: Optional[str] = None, seed: Optional[int] = None,
                     stream: Optional[TextIO] = None) -> BrowserTraining:
    """The recipe and starting weights for training the env at `path` in the page, with the
    config at `config_path` (as `twisterl train --config`) and `seed`."""
    from ..envs import compile as compile_env
    from ..train.config import load_config
    from ..train.driver import PPORecipe
    from ..train.ppo import PPO
    from .policy_file import save_policy

    overrides = load_config(config_path)
    overrides.pop("ray", None)  # where collection runs natively; the page has its own
    if seed is not None:
        overrides["seed"] = seed
    overrides["learner"] = "rust"
    cls = compile_env(path)
    recipe_maker = PPORecipe()
    cfg = recipe_maker.configure(overrides, cls, config_path or "the config", {}, stream or _Null())
    notes = []
    # What the auto config chose and the page cannot do is left out, with a note; what the
    # user's config asks for is refused.
    chosen = recipe_maker.record.get("auto", {})
    for key, on, off, what in PAGE_LACKS:
        if key in chosen and key not in overrides and getattr(cfg, key) == on:
            notes.append(f"the page trains without the auto config's {key} {str(on).lower()} (it has no {what})")
            cfg = replace(cfg, **{key: off})
    refused = [(cfg.norm_obs, "norm_obs"), (cfg.intrinsic == "rnd", "intrinsic 'rnd'"),
               (bool(cfg.evals), "evals"), (cfg.diff_metric != "train", f"diff_metric {cfg.diff_metric!r}")]
    asked = [what for on, what in refused if on]
    if asked:
        raise TrainingRecipeError(f"{path}: the browser's trainer does not do {', '.join(asked)} (set in "
                                  f"{config_path or 'the config'}); export --train with a config without them")
    if cls.players == 2:
        notes.append("two-player games train by pure self-play in the page: no opponent pool and no arena")
    learner = PPO(cls, cfg, {})
    with tempfile.TemporaryDirectory() as tmp:
        file = Path(tmp) / "start.safetensors"
        save_policy(learner.policy, file, {"env": cls.name, "checkpoint": "start", "params": "{}",
                                           "difficulty": str(cfg.difficulty), "iteration": "0"})
        start = file.read_bytes()
    # `curriculum` is the env's, not the config's: whether its dynamics read `difficulty`.
    recipe = {key: cls.curriculum if key == "curriculum" else getattr(cfg, key) for key in RECIPE_KEYS}
    return BrowserTraining(json.dumps(recipe, sort_keys=True), start, tuple(notes))


class _Null:
    def write(self, text: str) -> int:
        return len(text)
