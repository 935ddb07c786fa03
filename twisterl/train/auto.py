"""The auto config: PPO settings chosen from what an env's spec and a probe of random play
say about it, each with its reason.

`auto_config` probes the env (`twisterl.train.probe.probe_env`) at the config's starting
difficulty, and at `diff_max` when the env has a curriculum (random play differs there),
then runs `RULES` in order. A rule reads the probe (`Facts`) and the config as chosen so
far, and returns the keys it sets with one reason, or None when the `Config` default
stands. A key the user's config sets is never chosen. The rules name no env: they read
only the spec's kinds and sizes and random play's numbers, so they apply alike to envs
nobody has seen. `docs/training.md` has the table.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Any, Callable, Optional

from .probe import Profile, auto_episode_limit, probe_env

# Random play "shows a signal" in an episode that succeeds (envs with `success`) or whose
# return is not the most common one. Below this share of episodes, rewards are sparse.
SPARSE_SIGNAL = 0.03
# Observations recur when at most this share of the probe's steps saw a new one: a count
# of visits means something there, so the count bonus suits it.
RECURRING_OBS = 0.1
# gamma's effective horizon 1 / (1 - gamma) covers this many random episode lengths (a
# policy that learns may take longer than random play, or survive longer), rounded to the
# nearest of these values (on a log scale of 1 - gamma, so that probe noise rarely moves it).
HORIZON_LENGTHS, GAMMA_STEPS = 3, (0.98, 0.99, 0.995, 0.998, 0.999)
GAMMA_RANGE = (GAMMA_STEPS[0], GAMMA_STEPS[-1])
# Dense features whose standard deviation is off 1 by more than this factor get normalised.
SCALE_FACTOR = 10.0
# The widths of the default networks.
DENSE_WIDTH, TABLE_WIDTH, EMBEDDING_RANGE, EMBEDDING_PER_FEATURE = 64, 64, (64, 512), 4
# Small networks learn from small batches (many updates per env step): this many
# transitions an iteration, in rollouts between these lengths.
SMALL_BATCH, ROLLOUT_RANGE = 1024, (32, 128)
# Updates for small networks on small batches: the usual PPO settings (CleanRL's lambda,
# clip and value weight; the PPO paper's 10 epochs) with the larger learning rate that
# rl-baselines3-zoo tunes for classic control (on CartPole: return 500 within 100k steps,
# against ~270 with CleanRL's 4 epochs at 2.5e-4).
SMALL_NET_UPDATE = {"gae_lambda": 0.95, "clip_coef": 0.2, "vf_coef": 0.5, "update_epochs": 10,
                    "num_minibatches": 4, "learning_rate": 1e-3}
# Self-play PPO's update: the settings tic-tac-toe's self-play test was tuned with. On
# Connect Four (with twists) they scored 0.30-0.46 against pure MCTS with 100 simulations
# after 4-5 minutes, where the single-player defaults scored 0.04-0.24 and fell as the
# policy's entropy collapsed (1.9 to 0.4 nats in 11 minutes).
SELF_PLAY_UPDATE = {"ent_coef": 0.03, "learning_rate": 1e-3, "clip_coef": 0.2}
# A table (one one-hot over its states) learns each state from that state's own visits: an
# iteration holds this many transitions per state (up to TABLE_BATCH_MAX in all). Batches
# larger than SMALL_BATCH take CleanRL's rate, TABLE_RATE, which was stable where 1e-3 was
# not: on a 500-state table (Taxi) 1e-3 learnt, then unlearnt (mean return +7.5, then -115
# after 130 s); 3e-4 held +7.8. With 1,024 transitions, 1e-3 collapsed the policy onto
# never picking up within 25 iterations.
VISITS_PER_STATE, TABLE_BATCH_MAX, TABLE_RATE = 16, 65536, 3e-4


@dataclass
class Facts:
    """What the rules read: the probe at the starting difficulty, and at the curriculum's
    hardest level (`hardest`, None when the env has no curriculum)."""
    start: Profile
    hardest: Optional[Profile] = None

    @property
    def horizon(self) -> float:
        """Random play's episode length, at the hardest level of a curriculum."""
        return (self.hardest or self.start).horizon


@dataclass
class Choice:
    """Config keys one rule chose, and why."""
    values: dict
    reason: str

    def line(self) -> str:
        what = ", ".join(f"{k} {_show(v)}" for k, v in self.values.items())
        keys = ", ".join(self.values)
        return f"auto: {what} because {self.reason} (set {keys} to choose)"


Rule = Callable[[Facts, dict], Optional[Choice]]


def _show(value: Any) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


def _pow2(x: float) -> int:
    return 1 << max(0, math.ceil(math.log2(max(1.0, x))))


def _discrete(f: Facts) -> bool:
    return not f.start.continuous


def _single(f: Facts) -> bool:
    return f.start.players == 1


# ---------------------------------------------------------------- the rules


def network(f: Facts, cfg: dict) -> Optional[Choice]:
    """The network's width from what an observation holds."""
    p = f.start
    if p.continuous or p.obs_kind == "planes":
        return None  # the continuous defaults' 64x64 Gaussian; the conv net for planes
    if p.obs_kind == "dense":
        w = DENSE_WIDTH if p.obs_size <= DENSE_WIDTH else 4 * DENSE_WIDTH
        return Choice({"network": "actor_critic", "embedding_size": w, "common_layers": [w], "activation": "tanh"},
                      f"the observation is {p.obs_size} dense features: separate {w}x{w} tanh actor and critic "
                      "networks, as CleanRL's PPO for low-dimensional observations")
    if p.obs_ones == 1:
        return Choice({"embedding_size": TABLE_WIDTH, "common_layers": [TABLE_WIDTH]},
                      f"each observation is one of {p.obs_size} states (a single one-hot): a table, which a "
                      f"{TABLE_WIDTH}-wide network holds")
    lo, hi = EMBEDDING_RANGE
    w = min(hi, max(lo, _pow2(EMBEDDING_PER_FEATURE * p.obs_size)))
    return Choice({"embedding_size": w, "common_layers": [w // 2]},
                  f"observations combine up to {p.obs_ones} ones over {p.obs_size} one-hot features: an embedding "
                  f"{EMBEDDING_PER_FEATURE} wide per feature, as a power of 2 from {lo} to {hi}")


def batch(f: Facts, cfg: dict) -> Optional[Choice]:
    """Small networks: small batches and larger update steps."""
    if not (_discrete(f) and _single(f)) or not _small_network(cfg):
        return None
    lo, hi = ROLLOUT_RANGE
    steps = min(hi, max(lo, _pow2(f.horizon)))
    spans = f"{steps}-step rollouts span random play's ~{f.horizon:.0f}-step episodes ({lo} to {hi})"
    states = f.start.obs_size if f.start.obs_kind == "sparse" and f.start.obs_ones == 1 else 0
    if states * VISITS_PER_STATE > SMALL_BATCH:
        rows = min(TABLE_BATCH_MAX, _pow2(states * VISITS_PER_STATE))
        return Choice({"num_envs": max(1, rows // steps), "num_steps": steps, **SMALL_NET_UPDATE,
                       "learning_rate": TABLE_RATE},
                      f"a table of {states} states learns each state from its own visits: batches of {rows} "
                      f"transitions, about {VISITS_PER_STATE} a state (10 epochs at CleanRL's learning rate "
                      f"{TABLE_RATE:g}, stable at batches this large where 1e-3 is not); {spans}")
    return Choice({"num_envs": SMALL_BATCH // steps, "num_steps": steps, **SMALL_NET_UPDATE},
                  f"a network of {cfg['embedding_size']} units updates in milliseconds, so batches of "
                  f"{SMALL_BATCH} transitions give many updates per env step (10 epochs at learning rate 1e-3); "
                  f"{spans}")


def gamma(f: Facts, cfg: dict) -> Optional[Choice]:
    """The discount from the episodes' horizon."""
    if not (_discrete(f) and _single(f)):
        return None  # the continuous defaults' short horizon suits per-step control costs
    lo, hi = GAMMA_RANGE
    ends = [p for p in (f.start, f.hardest) if p is not None]
    if all(p.end_reward_only for p in ends):
        return Choice({"gamma": hi}, "rewards come only as episodes end, with no cost per step: discounting "
                                     "would only trade success for speed, so gamma is as high as it goes")
    h = f.horizon
    ideal = 1.0 / (HORIZON_LENGTHS * h)
    value = min(GAMMA_STEPS, key=lambda g: abs(math.log((1.0 - g) / ideal)))
    where = " at the curriculum's hardest level" if f.hardest is not None else ""
    return Choice({"gamma": value}, f"random episodes last ~{h:.0f} steps{where}: an effective horizon "
                                    f"1/(1-gamma) of about {HORIZON_LENGTHS}x that (the nearest of "
                                    f"{', '.join(map(str, GAMMA_STEPS))})")


def entropy(f: Facts, cfg: dict) -> Optional[Choice]:
    """The entropy bonus against the most entropy a policy can have."""
    p = f.start
    if p.continuous or p.num_actions < 2 or not _single(f):
        return None
    value = float(f"{0.01 * math.log(4) / math.log(p.num_actions):.2g}")
    value = min(0.05, max(0.001, value))
    return Choice({"ent_coef": value}, f"{p.num_actions} actions, so at most ln {p.num_actions} = "
                                       f"{math.log(p.num_actions):.2f} nats of entropy: 0.01 per ln 4 keeps the "
                                       "bonus's pull the same for any action count")


def reward_scale(f: Facts, cfg: dict) -> Optional[Choice]:
    """Normalised rewards when they are large."""
    top = max(p.reward_max_abs for p in (f.start, f.hardest) if p is not None)
    if top <= 1.0 or cfg.get("norm_reward"):
        return None
    return Choice({"norm_reward": True}, f"random play's rewards reach +-{top:g}: scaling them by the running std "
                                         "of the discounted return keeps the critic's targets near 1")


def obs_scale(f: Facts, cfg: dict) -> Optional[Choice]:
    """Normalised observations when dense features are far from unit scale."""
    p = f.start
    if p.obs_kind != "dense" or not (p.continuous or cfg.get("network") == "actor_critic"):
        return None
    lo, hi = p.obs_scale
    if SCALE_FACTOR ** -1 <= lo and hi <= SCALE_FACTOR:
        return None
    return Choice({"norm_obs": True}, f"the dense features' standard deviations in random play range from {lo:.3g} "
                                      f"to {hi:.3g}, beyond {1 / SCALE_FACTOR:g} to {SCALE_FACTOR:g}: the network "
                                      "reads them normalised by their running mean and std")


def exploration(f: Facts, cfg: dict) -> Optional[Choice]:
    """An exploration bonus when random play rarely sees a reward, and a count bonus for
    every table whose states recur."""
    p = f.start
    if not _single(f) or p.episodes == 0:
        return None
    recurring = p.obs_kind == "sparse" and p.distinct_obs <= RECURRING_OBS
    if p.signal >= SPARSE_SIGNAL:
        if not (recurring and p.obs_ones == 1):
            return None
        return Choice({"intrinsic": "count"}, f"each observation is one of {p.obs_size} states and they recur "
                                              f"({p.distinct_obs:.1%} of the probe's observations were new): a bonus "
                                              "1/sqrt(visits), which fades as the table fills, keeps the policy trying "
                                              "actions whose immediate cost hides where they lead (MBIE-EB)")
    what = "succeeded" if p.has_success else "had a return other than the most common"
    shown = round(p.signal * p.episodes)
    sparse = f"only {shown} of {p.episodes} random episodes {what} (under {SPARSE_SIGNAL:.0%}): sparse rewards"
    if recurring:
        return Choice({"intrinsic": "count"}, f"{sparse}; states recur ({p.distinct_obs:.1%} of the probe's "
                                              "observations were new), so a bonus 1/sqrt(visits) leads to the "
                                              "less visited ones")
    return Choice({"intrinsic": "rnd"}, f"{sparse}; observations rarely recur ({p.distinct_obs:.0%} new), so random "
                                        "network distillation scores their novelty")


def self_play(f: Facts, cfg: dict) -> Optional[Choice]:
    """Self-play: a policy that stays mixed and keeps up with itself, and learns from the
    game's symmetries."""
    p = f.start
    if _single(f) or p.continuous:
        return None
    values = dict(SELF_PLAY_UPDATE)
    why = ("the opponent is the policy itself, so it must stay mixed and keep up with itself: a larger entropy "
           "bonus, step and clip than single-player PPO's defaults")
    if p.symmetries:
        values["twists"] = True
        why += f"; the game declares {p.symmetries} symmetr{'y' if p.symmetries == 1 else 'ies'}, so each step " \
               "learns from one of its images too"
    return Choice(values, why)


RULES: list[Rule] = [network, batch, gamma, entropy, reward_scale, obs_scale, exploration, self_play]
"""The rules in the order they run (later rules see earlier choices in `cfg`)."""


def _small_network(cfg: dict) -> bool:
    return cfg.get("network") == "actor_critic" or cfg.get("embedding_size", 512) <= TABLE_WIDTH


# ---------------------------------------------------------------- applying them


def run_rules(facts: Facts, overrides: dict, base: dict) -> list[Choice]:
    """The choices of `RULES` for `facts`, without the keys `overrides` sets; `base` is the
    config the rules start from (defaults with the kind's base)."""
    cfg = {**base, **overrides}
    out = []
    for rule in RULES:
        choice = rule(facts, cfg)
        if choice is None:
            continue
        values = {k: v for k, v in choice.values.items() if k not in overrides}
        if values:
            out.append(Choice(values, choice.reason))
            cfg.update(values)
    return out


def gather_facts(cls, params: dict, difficulty: int, diff_max: int, seed: int, max_episode_steps: int) -> Facts:
    """The probe at `difficulty`, and at `diff_max` when random play differs there (a
    curriculum)."""
    start = probe_env(cls, params, difficulty, seed, max_episode_steps)
    if diff_max <= difficulty:
        return Facts(start)
    hardest = probe_env(cls, params, diff_max, seed, max_episode_steps)
    same = (math.isclose(start.horizon, hardest.horizon, rel_tol=0.1)
            and abs(start.signal - hardest.signal) < 0.1)
    return Facts(start, None if same else hardest)


def auto_config(cls, params: dict, overrides: dict, base: dict) -> tuple[dict, list[Choice], Facts]:
    """The auto config for `cls`: the keys chosen (to go under `overrides`), the choices with
    their reasons (the step limit's first, from `auto_episode_limit`), and the probe."""
    from .ppo_config import Config
    defaults = {f.name: getattr(Config(), f.name) for f in fields(Config)}
    merged = {**defaults, **base, **overrides}
    choices = []
    if "max_episode_steps" not in overrides:
        limit, reason = auto_episode_limit(cls, params, merged["difficulty"], merged["seed"])
        if limit:
            choices.append(Choice({"max_episode_steps": limit}, reason))
            merged["max_episode_steps"] = limit
    hardest = merged["diff_max"] if cls.curriculum else merged["difficulty"]
    facts = gather_facts(cls, params, merged["difficulty"], hardest, merged["seed"], merged["max_episode_steps"])
    choices += run_rules(facts, overrides, {**defaults, **base, **{k: v for c in choices for k, v in c.values.items()}})
    chosen = {k: v for c in choices for k, v in c.values.items()}
    return chosen, choices, facts
