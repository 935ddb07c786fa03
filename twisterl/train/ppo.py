"""PPO with masks and a difficulty curriculum: rollouts in Rust, learning in Rust or torch.

One iteration: export the policy to the runtime, collect `num_steps` transitions from each
of `num_envs` envs in Rust (batched inference, masked sampling or Gaussian draws, GAE), then
run `update_epochs` epochs of clipped-objective minibatch updates with the same masks, in
the Rust learner (`learner` "rust", no torch needed; the network is then a `NumpyPolicy`)
or in torch (a torch module). The curriculum raises `difficulty` when the success rate of
the iteration's finished episodes (sampled, single try) reaches `diff_threshold`, up to
`diff_max`.

Two-player zero-sum games train by self-play: every row is a decision of the player to
move, with that player's reward and value, and returns chain with a sign (see
runtime/python/src/collect.rs). A pool of past policies (a snapshot every `pool_every`
iterations, the last `pool_size` kept, in memory only) supplies an opponent: an episode is
played against the iteration's opponent with probability `pool_prob`, the learner in a
random seat, and only the learner's moves are learnt from. After every `arena_every`
iterations the policy (its most likely legal move, no search) plays `arena_games` games
against random play and against pure MCTS, each side moving first in half of them, unless
the arenas so far took more than `arena_share` of the run's time.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Callable, Optional

import numpy as np

from .. import _core
from .evaluation import EvalSpec, evaluate_policy
from .intrinsic import intrinsic_advantages, make_bonus, next_observation_rows
from .networks import build_network, export_layers, log_std_of, runtime_policy
from .netspec import describe_policy, spec
from .ppo_config import Config
from .rollout import collect_rollout, join_rollouts  # noqa: F401 (join_rollouts: part of this module's face)
from .rust_learner import RustLearner, choose_learner
from .stats import RunningMeanVar, RunningVariance

# Collection with a deadline runs in chunks of about this many env steps, so the deadline is
# checked every few milliseconds (see `twisterl.train.rollout.collect_rollout`).
COLLECT_CHUNK = 4096


@dataclass
class IterationStats:
    iteration: int
    difficulty: int
    success_rate: float
    mean_return: float
    mean_length: float
    episodes: int
    env_steps: int
    seconds: float
    collect_seconds: float
    train_seconds: float
    policy_loss: float
    value_loss: float
    entropy: float
    approx_kl: float = float("nan")
    """the mean approximate KL divergence of the updated policy from the collecting one
    (Schulman's k3 estimator, as CleanRL), over the last epoch's minibatches"""
    clipfrac: float = float("nan")
    """the fraction of samples whose probability ratio was clipped, over all minibatches"""
    explained_variance: float = float("nan")
    """1 - Var(returns - values) / Var(returns) of the values seen in collection"""
    intrinsic: float = float("nan")
    """the mean exploration bonus per step, before `intrinsic_coef` (NaN without one); it is
    in no return or success this row reports"""
    evals: dict = field(default_factory=dict)
    """success rate of each named eval, at this iteration's difficulty"""
    cut_short: bool = False
    """the time limit stopped this iteration's update or evals early"""
    arena: dict = field(default_factory=dict)
    """two-player games: the arena's results (`vs_random`, `vs_mcts`: scores, win 1, draw 0.5,
    loss 0; `vs_random_win`, `vs_random_draw`, `vs_random_loss` and the same for `vs_mcts`:
    rates), NaN when the arena did not run"""


class PPO:
    """The learner: holds the env batch, the policy and the optimizer."""

    def __init__(self, env_cls, config: Config, params: Optional[dict] = None):
        if env_cls.players > 2:
            raise ValueError(f"{env_cls.name} has {env_cls.players} players; PPO trains single-player envs and "
                             "two-player zero-sum games (by self-play), not games of more players")
        if env_cls.players == 2 and env_cls.continuous:
            raise ValueError(f"{env_cls.name}: self-play PPO needs discrete actions")
        if env_cls.players == 2 and config.intrinsic != "none":
            raise ValueError(f"{env_cls.name}: intrinsic rewards are for single-player envs, not self-play")
        self.players = int(env_cls.players)
        self.cfg = config
        self.env_cls, self.params = env_cls, dict(params or {})
        self.evals = {name: EvalSpec.from_dict(name, spec) for name, spec in config.evals.items()}
        if config.diff_metric != "train" and config.diff_metric not in self.evals:
            raise ValueError(f"diff_metric {config.diff_metric!r} is neither \"train\" nor one of the evals "
                             f"({', '.join(self.evals) or 'none configured'})")
        self.vec = env_cls.vector(config.num_envs, seed=config.seed, num_threads=config.num_threads,
                                  difficulty=config.difficulty, max_episode_steps=config.max_episode_steps,
                                  **(params or {}))
        self.continuous = bool(env_cls.continuous)
        kind = env_cls.spec["observation"]["kind"]
        self.sparse = kind == "sparse"
        space = self.vec.single_action_space
        self.num_actions = int(space.shape[0] if self.continuous else space.n)
        self.policy_desc = describe_policy(kind, self.vec.single_observation_space.shape, self.num_actions,
                                           self.continuous, config.embedding_size, config.common_layers,
                                           config.conv_channels, config.init_log_std, config.activation,
                                           config.network, config.norm_obs)
        if config.anneal_lr and not config.max_env_steps:
            raise ValueError("anneal_lr needs max_env_steps: the rate decays to 0 over that many env steps")
        # Where updates run decides the network's form: a torch module, or numpy arrays (no torch).
        self.learner = choose_learner(config.learner, config.device)
        self.learner_reason = ""
        """why `learner` "auto" chose this learner (empty when the config named one)"""
        if config.learner == "auto" and self.learner == "rust":
            from .learner_choice import decide
            rows = max(1, config.num_envs * config.num_steps // config.num_minibatches)
            params = sum(int(np.prod(t.shape)) for t in spec(self.policy_desc).tensors() if not t.buffer)
            decision = decide(self.policy_desc, rows, max(1, config.num_threads), learner_threads(params, config),
                              self.sparse, int(self.vec.batch.sizes[3]), config.device)
            self.learner, self.learner_reason = decision.learner, decision.reason
        if self.learner == "torch":
            import torch
            torch.manual_seed(config.seed)
        self.policy = build_network(self.policy_desc, config.seed, use_torch=self.learner == "torch")
        self.rust = None
        if self.learner == "torch":
            import torch
            self.device = resolve_device(config.device)
            self.policy = self.policy.to(self.device)
            torch.set_num_threads(learner_threads(sum(p.numel() for p in self.policy.parameters()), config))
            self.optimizer = torch.optim.Adam(self.policy.parameters(), lr=config.learning_rate, eps=1e-5)
        else:
            self.device = None
            self.rust = RustLearner(self.policy, lr=config.learning_rate, eps=1e-5,
                                    max_grad_norm=config.max_grad_norm, threads=max(1, config.num_threads))
            self.optimizer = self.rust  # its state saves and restores as a torch Adam's does
        if config.twists and self.continuous:
            raise ValueError("twists apply to envs with discrete actions")
        self.twists = list(self.vec.twists().values()) if config.twists else None
        self.reward_scale = 1.0
        self.return_stats = RunningVariance()
        obs_size = int(np.prod(self.vec.single_observation_space.shape))
        self.obs_stats = RunningMeanVar(obs_size) if config.norm_obs else None
        self.bonus = make_bonus(config.intrinsic, obs_size, config.seed, self.device)
        self.running_return = np.zeros(config.num_envs)
        self.difficulty = config.difficulty
        self.curriculum = env_cls.curriculum
        """whether `difficulty` climbs: only for a single-player env whose dynamics read it"""
        self.iteration = 0
        self.seconds = 0.0
        """time spent in `iterate` so far"""
        self.arena_seconds = 0.0
        """of which in the arena"""
        self.env_steps = 0
        # Two-player games: each env's learner seat against the opponent (-1: self-play), and
        # the pool of past policies.
        self.seats = np.full(config.num_envs, -1, dtype=np.int64)
        self.pool: list = []
        """past policies as layer tuples (`networks.export_layers`)"""
        self.remote = None
        """the Ray workers that collect instead of `vec` (`twisterl.train.distributed.RayCollector`)"""
        self.vec.reset()

    def set_difficulty(self, difficulty: int) -> None:
        self.difficulty = difficulty
        self.vec.set_difficulty(difficulty)
        self.vec.reset()
        if self.remote is not None:
            self.remote.set_difficulty(difficulty)

    def iterate(self, deadline: Optional[float] = None) -> Optional[IterationStats]:
        """Collect one batch of rollouts and learn from it.

        With a `deadline` (a `time.perf_counter()` time), every phase stops once it has
        passed: a collection cut short is dropped and gives None (nothing was learnt), an
        update cut short keeps the minibatches it did, and an eval cut short reports NaN;
        `cut_short` says so in the stats."""
        cfg = self.cfg
        start = time.perf_counter()
        if cfg.anneal_lr:
            left = max(0.0, 1.0 - self.env_steps / cfg.max_env_steps)
            if self.rust is not None:
                self.rust.lr = cfg.learning_rate * left
            else:
                for group in self.optimizer.param_groups:
                    group["lr"] = cfg.learning_rate * left
        if self.players == 2 and self.iteration % cfg.pool_every == 0:
            self.pool.append(export_layers(self.policy))
            del self.pool[:-cfg.pool_size]
        data = self.collect(deadline)
        if data is None:
            return None
        if cfg.norm_reward:
            self.update_reward_scale(data["rewards"] / self.reward_scale, data["dones"])
        intrinsic = self.add_intrinsic(data)
        collected = time.perf_counter()
        losses, complete = self.update(data, deadline)
        if self.bonus is not None:
            self.bonus.learn(data, deadline)
        if self.obs_stats is not None:
            self.update_obs_norm(data)
        trained = time.perf_counter()
        evals = self.run_evals(deadline)
        arena_start = time.perf_counter()
        arena = self.arena(deadline, arena_start - start) if self.players == 2 else {}
        self.arena_seconds += time.perf_counter() - arena_start
        episodes = int(data["episodes"])
        n = episodes if episodes else float("nan")  # no finished episode: no mean to report
        success, mean_return = data["successes"] / n, data["return_sum"] / n
        arena_cut = False
        if self.players == 2:
            # The learner's results: its score and mean return against random play.
            success, mean_return = arena["vs_random"], arena.pop("return_vs_random")
            arena_cut = arena.pop("cut_short")
        stats = IterationStats(
            iteration=self.iteration, difficulty=self.difficulty, success_rate=success,
            mean_return=mean_return, mean_length=data["length_sum"] / n, episodes=episodes,
            env_steps=cfg.num_steps * cfg.num_envs, seconds=trained - start,
            collect_seconds=collected - start, train_seconds=trained - collected, evals=evals,
            cut_short=not complete or arena_cut or any(np.isnan(v) for v in evals.values()), arena=arena,
            intrinsic=intrinsic, **losses)
        self.iteration += 1
        self.env_steps += stats.env_steps
        self.seconds += time.perf_counter() - start
        if self.solved(stats) and self.difficulty < cfg.diff_max:
            self.set_difficulty(self.difficulty + 1)
        return stats

    def collect(self, deadline: Optional[float] = None) -> Optional[dict]:
        """`num_steps` transitions from every env, in Rust (`_core.collect`), here or on the
        Ray workers of `remote` (see `twisterl.train.distributed`). With a deadline, in
        chunks of about `COLLECT_CHUNK` env steps, checking it between them (None once it
        has passed); the chunks' advantages are then joined into those of one rollout."""
        cfg = self.cfg
        seed = cfg.seed * 1_000_003 + self.iteration
        log_std = log_std_of(self.policy) if self.continuous else None
        extra = {}
        opponent = None
        if self.players == 2:
            if self.pool and cfg.pool_prob > 0:
                pick = np.random.default_rng([cfg.seed, self.iteration, 0x5EA7]).integers(len(self.pool))
                opponent = self.pool[pick]
            extra = {"pool_prob": cfg.pool_prob}
        options = {"log_std": log_std, "reward_scale": self.reward_scale, **extra}
        if self.remote is not None:
            return self.remote.collect(export_layers(self.policy), opponent, cfg.num_steps, seed, cfg.gamma,
                                       cfg.gae_lambda, COLLECT_CHUNK, deadline, twists=self.twists is not None,
                                       **options)
        if self.players == 2:
            options.update(seats=self.seats, opponent=None if opponent is None else _core.Policy(*opponent))
        return collect_rollout(self.vec.batch, self.runtime_policy(), cfg.num_envs, cfg.num_steps, seed, cfg.gamma,
                               cfg.gae_lambda, COLLECT_CHUNK, deadline, twists=self.twists, **options)

    def solved(self, stats: IterationStats) -> bool:
        """Whether the iteration's curriculum metric reached `diff_threshold` (never for
        envs without a curriculum: two-player games, and envs that do not read `difficulty`)."""
        if not self.curriculum:
            return False
        if self.cfg.diff_metric == "train":
            return stats.episodes >= self.cfg.min_episodes and stats.success_rate >= self.cfg.diff_threshold
        return stats.evals[self.cfg.diff_metric] >= self.cfg.diff_threshold

    def run_evals(self, deadline: Optional[float] = None) -> dict:
        """Each configured eval's success rate at the current difficulty, on fresh episodes
        (NaN for an eval the deadline stopped)."""
        if not self.evals:
            return {}
        policy = self.runtime_policy()
        log_std = log_std_of(self.policy).astype(np.float64) if self.continuous else None
        return {name: evaluate_policy(self.env_cls, policy, spec.num_episodes, spec.deterministic, self.difficulty,
                                      self.cfg.seed * 7_919 + self.iteration, self.params, tries=spec.num_searches,
                                      log_std=log_std, deadline=deadline,
                                      max_episode_steps=self.cfg.max_episode_steps)["success"]
                for name, spec in self.evals.items()}

    def arena(self, deadline: Optional[float] = None, spent: float = 0.0) -> dict:
        """Two-player games: the policy, playing its most likely legal move (a one-simulation
        search, which picks the highest prior), against random play and against pure MCTS
        (`pure_simulations`), `arena_games` games each, the seats alternating. Scores and
        win/draw/loss rates (see `IterationStats.arena`), the learner's mean return against
        random play (`return_vs_random`), and `cut_short`; NaN for what did not run (not
        an arena iteration; the arenas' share of the run, with this iteration's `spent`
        seconds so far, above `arena_share`; or the deadline had passed)."""
        from ..search import agent, play_games
        cfg = self.cfg
        nan = float("nan")
        out = {"cut_short": False, "return_vs_random": nan}
        opponents = {"vs_random": agent(random=True)}
        if cfg.pure_simulations > 0:
            opponents["vs_mcts"] = agent(None, simulations=cfg.pure_simulations)
        for name in ("vs_random", "vs_mcts"):
            out.update({name: nan, f"{name}_win": nan, f"{name}_draw": nan, f"{name}_loss": nan})
        if self.iteration % cfg.arena_every != 0:
            return out
        if self.iteration > 0 and self.arena_seconds > cfg.arena_share * (self.seconds + spent):
            return out
        me = agent(self.runtime_policy(), simulations=1)
        for k, (name, opp) in enumerate(opponents.items()):
            if deadline is not None and time.perf_counter() >= deadline:
                out["cut_short"] = True
                break
            data = play_games(self.env_cls, self.params, [me, opp], cfg.arena_games,
                              seed=cfg.seed * 7_919 + 10_007 * self.iteration + k, num_threads=cfg.num_threads,
                              difficulty=self.difficulty, temperature=0.0)
            mine = (data["returns"] * (data["seats"] == 0)).sum(1)
            win, draw, loss = float(np.mean(mine > 0)), float(np.mean(mine == 0)), float(np.mean(mine < 0))
            out.update({name: win + 0.5 * draw, f"{name}_win": win, f"{name}_draw": draw, f"{name}_loss": loss})
            if name == "vs_random":
                out["return_vs_random"] = float(np.mean(mine))
        return out

    def add_intrinsic(self, data: dict) -> float:
        """Add `intrinsic_coef` times the exploration bonus of the observation each step led
        to (see `twisterl.train.intrinsic`) to the advantages and returns training learns
        from; the reported returns are the env's alone. The mean bonus (NaN without one)."""
        if self.bonus is None:
            return float("nan")
        dones = data["dones"]
        score = self.bonus.score(data).reshape(dones.shape)
        has_next = next_observation_rows(dones)
        bonus = np.zeros(dones.shape)
        bonus[:-1] = np.where(has_next[:-1], score[1:], 0.0)
        adv = intrinsic_advantages(self.cfg.intrinsic_coef * bonus, dones, self.cfg.gamma, self.cfg.gae_lambda)
        data["advantages"] = data["advantages"] + adv
        data["returns"] = data["advantages"] + data["values"]
        return float(bonus[has_next].mean()) if has_next.any() else float("nan")

    def update_obs_norm(self, data: dict) -> None:
        """Merge the rollout's observations into the running statistics and give them to the
        network's `ObsNorm` layers (after the update, which used the ones collection used)."""
        self.obs_stats.update(data["obs"].reshape(-1, data["obs"].shape[-1]).astype(np.float64))
        self._set_obs_norm()

    def _set_obs_norm(self) -> None:
        if self.rust is not None:
            self.policy.set_obs_norm(self.obs_stats.mean, self.obs_stats.var)
            self.rust.pull()
            return
        from .nets import ObsNorm
        for module in self.policy.modules():
            if isinstance(module, ObsNorm):
                module.set_stats(self.obs_stats.mean, self.obs_stats.var)

    def runtime_policy(self) -> "_core.Policy":
        """The current network as a runtime policy, for collection, evals and the arena."""
        return self.rust.runtime_policy() if self.rust is not None else runtime_policy(self.policy)

    def update_reward_scale(self, rewards: np.ndarray, dones: np.ndarray) -> None:
        """Track the variance of each env's discounted return; the next iteration's rewards
        are divided by its square root."""
        returns = np.empty_like(rewards, dtype=np.float64)
        for t in range(rewards.shape[0]):
            self.running_return = self.running_return * self.cfg.gamma + rewards[t]
            returns[t] = self.running_return
            self.running_return[dones[t]] = 0.0
        self.return_stats.update(returns.reshape(-1))
        self.reward_scale = float(1.0 / np.sqrt(self.return_stats.var + 1e-8))

    def observations(self, data: dict, rows: np.ndarray):
        import torch

        from .nets import SparseObs
        if self.sparse:
            idx = data["obs_indices"].reshape(-1, data["obs_indices"].shape[-1])[rows]
            counts = data["obs_counts"].reshape(-1)[rows]
            return SparseObs(torch.from_numpy(idx.astype(np.int64)).to(self.device),
                             torch.from_numpy(counts.astype(np.int64)).to(self.device))
        return torch.from_numpy(data["obs"].reshape(-1, data["obs"].shape[-1])[rows]).to(self.device)

    def update(self, data: dict, deadline: Optional[float] = None) -> tuple[dict, bool]:
        """`update_epochs` epochs of minibatch updates on `data`: the mean losses, and False
        when the deadline stopped them early (the minibatches done are kept)."""
        cfg = self.cfg
        if self.rust is not None:
            return self.update_rust(data, deadline)
        import torch
        from torch import nn

        def tensor(key: str, *shape: int) -> "torch.Tensor":
            return torch.from_numpy(data[key].reshape(-1, *shape)).to(self.device)

        b_actions = tensor("action_values", self.num_actions) if self.continuous else tensor("actions")
        b_logp, b_adv, b_returns = tensor("logp"), tensor("advantages"), tensor("returns")
        b_values = tensor("values")
        b_masks = None if self.continuous else tensor("masks", self.num_actions)
        # Only the learner's own moves are learnt from (an opponent's are not).
        rows = np.flatnonzero(data["learn"].reshape(-1)) if "learn" in data else np.arange(b_actions.shape[0])
        total = len(rows)
        mb_size = max(1, total // cfg.num_minibatches)
        rng = np.random.default_rng(cfg.seed + self.iteration)
        sums = {"policy_loss": 0.0, "value_loss": 0.0, "entropy": 0.0, "clipfrac": 0.0}
        count = 0

        def means() -> dict:
            out = {k: v / count if count else float("nan") for k, v in sums.items()}
            out["approx_kl"] = float(np.mean(epoch_kl)) if epoch_kl else float("nan")
            out["explained_variance"] = explained_variance(data["values"].reshape(-1)[rows],
                                                           data["returns"].reshape(-1)[rows])
            return out

        epoch_kl: list[float] = []
        for _ in range(cfg.update_epochs):
            order = rows[rng.permutation(total)]
            epoch_kl = []
            for s in range(0, total, mb_size):
                if deadline is not None and time.perf_counter() >= deadline:
                    return means(), False
                mb = order[s:s + mb_size]
                mb_t = torch.from_numpy(mb).to(self.device)
                out, values = self.policy(self.observations(data, mb))
                if self.continuous:
                    dist = torch.distributions.Normal(out, self.policy.log_std.exp())
                    new_logp = dist.log_prob(b_actions[mb_t]).sum(-1)
                    entropy = dist.entropy().sum(-1).mean()
                else:
                    logits = out.masked_fill(~b_masks[mb_t], -1e9)
                    logp_all = torch.log_softmax(logits, dim=-1)
                    new_logp = logp_all.gather(1, b_actions[mb_t][:, None]).squeeze(1)
                    probs = logp_all.exp()
                    entropy = -(probs * logp_all).masked_fill(~b_masks[mb_t], 0.0).sum(-1).mean()
                adv = b_adv[mb_t]
                if cfg.norm_adv and len(mb) > 1:
                    adv = (adv - adv.mean()) / (adv.std() + 1e-8)
                log_ratio = new_logp - b_logp[mb_t]
                ratio = log_ratio.exp()
                with torch.no_grad():
                    epoch_kl.append(((ratio - 1) - log_ratio).mean().item())
                    sums["clipfrac"] += ((ratio - 1.0).abs() > cfg.clip_coef).float().mean().item()
                pg_loss = torch.max(-adv * ratio, -adv * ratio.clamp(1 - cfg.clip_coef, 1 + cfg.clip_coef)).mean()
                v_loss = 0.5 * ((values - b_returns[mb_t]) ** 2)
                if cfg.clip_vloss:
                    old = b_values[mb_t]
                    clipped = old + (values - old).clamp(-cfg.clip_coef, cfg.clip_coef)
                    v_loss = torch.max(v_loss, 0.5 * ((clipped - b_returns[mb_t]) ** 2))
                v_loss = v_loss.mean()
                loss = pg_loss + cfg.vf_coef * v_loss - cfg.ent_coef * entropy
                self.optimizer.zero_grad()
                loss.backward()
                nn.utils.clip_grad_norm_(self.policy.parameters(), cfg.max_grad_norm)
                self.optimizer.step()
                sums["policy_loss"] += pg_loss.item()
                sums["value_loss"] += v_loss.item()
                sums["entropy"] += entropy.item()
                count += 1
            if cfg.target_kl is not None and epoch_kl and np.mean(epoch_kl) > cfg.target_kl:
                break
        return means(), True

    def update_rust(self, data: dict, deadline: Optional[float] = None) -> tuple[dict, bool]:
        """`update` in the Rust learner: the same minibatches in the same order, the same
        losses; the learner's weights are written back into the network afterwards (Adam's
        state stays in the learner, which checkpoints save as the optimizer)."""
        cfg = self.cfg
        rows = np.flatnonzero(data["learn"].reshape(-1)) if "learn" in data else np.arange(data["logp"].size)
        total = len(rows)
        mb_size = max(1, total // cfg.num_minibatches)
        rng = np.random.default_rng(cfg.seed + self.iteration)
        sums = {"policy_loss": 0.0, "value_loss": 0.0, "entropy": 0.0, "clipfrac": 0.0}
        count, epoch_kl, complete = 0, [], True
        batch = self.rust.ppo_batch(data, self.sparse)
        for _ in range(cfg.update_epochs):
            order = rows[rng.permutation(total)]
            epoch_kl = []
            for s in range(0, total, mb_size):
                if deadline is not None and time.perf_counter() >= deadline:
                    complete = False
                    break
                out = self.rust.ppo_step(batch, order[s:s + mb_size], clip_coef=cfg.clip_coef, vf_coef=cfg.vf_coef,
                                         ent_coef=cfg.ent_coef, norm_adv=cfg.norm_adv, clip_vloss=cfg.clip_vloss)
                epoch_kl.append(out["approx_kl"])
                for key in sums:
                    sums[key] += out[key]
                count += 1
            if not complete or (cfg.target_kl is not None and epoch_kl and np.mean(epoch_kl) > cfg.target_kl):
                break
        self.rust.push()
        means = {k: v / count if count else float("nan") for k, v in sums.items()}
        means["approx_kl"] = float(np.mean(epoch_kl)) if epoch_kl else float("nan")
        means["explained_variance"] = explained_variance(data["values"].reshape(-1)[rows],
                                                         data["returns"].reshape(-1)[rows])
        return means, complete

    def train(self, iterations: Optional[int] = None, time_limit: Optional[float] = None,
              on_iteration: Optional[Callable[[IterationStats], None]] = None) -> list[IterationStats]:
        """Iterate until `iterations`, `time_limit` seconds, or `diff_max` is solved. The time
        limit is a deadline every phase checks (see `iterate`); an iteration it cuts short
        is reported (and saved by `on_iteration`) unless nothing was learnt in it."""
        history: list[IterationStats] = []
        deadline = None if time_limit is None else time.perf_counter() + time_limit
        while True:
            stats = self.iterate(deadline)
            if stats is None:
                return history
            history.append(stats)
            if on_iteration:
                on_iteration(stats)
            done_curriculum = stats.difficulty >= self.cfg.diff_max and self.solved(stats)
            out_of_steps = self.cfg.max_env_steps and self.env_steps >= self.cfg.max_env_steps
            if done_curriculum or out_of_steps or (iterations is not None and len(history) >= iterations) or \
                    (deadline is not None and time.perf_counter() >= deadline):
                return history

    def config_dict(self) -> dict:
        return asdict(self.cfg)

    def progress(self) -> dict:
        """What a checkpoint needs to resume: the curriculum, the counters and the reward scale."""
        obs = self.obs_stats.state("obs") if self.obs_stats is not None else {}
        return {"difficulty": self.difficulty, "iteration": self.iteration, "env_steps": self.env_steps,
                "reward_scale": self.reward_scale, **self.return_stats.state(), **obs}

    def resume(self, progress: dict) -> None:
        self.iteration = int(progress["iteration"]) + 1
        self.env_steps = int(progress.get("env_steps", 0))
        self.reward_scale = float(progress.get("reward_scale", 1.0))
        self.return_stats.load(progress)
        if self.obs_stats is not None:
            self.obs_stats.load(progress, "obs")
        if self.rust is not None:
            self.rust.pull()  # the weights `RunDir.load` put in the network (Adam's state came with restore_optimizer)
        self.set_difficulty(int(progress["difficulty"]))


def explained_variance(values: np.ndarray, returns: np.ndarray) -> float:
    """How much of the returns' variance the value estimates explain: 1 is perfect, 0 is
    no better than a constant, negative is worse (NaN when the returns do not vary)."""
    var = float(np.var(returns))
    return float("nan") if var == 0 else 1.0 - float(np.var(returns - values)) / var


def learner_threads(params: int, config: Config) -> int:
    """The torch thread count for a network of `params` parameters (see `Config.torch_threads`)."""
    if config.torch_threads > 0:
        return config.torch_threads
    return max(1, config.num_threads) if params >= 100_000 else 1


def resolve_device(name: str) -> "torch.device":
    """The torch device for `name`; "auto" is CUDA when torch sees one, else the CPU."""
    import torch
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError as exc:
        raise ValueError(f"device {name!r} is not a torch device: {exc}") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {name!r}: torch sees no CUDA device here; use \"cpu\" or \"auto\"")
    return device
