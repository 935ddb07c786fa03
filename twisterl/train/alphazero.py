"""AlphaZero: self-play with MCTS in Rust, learning in Rust or torch (`learner`).

One iteration:
1. **Self-play, in Rust** (`twisterl._core.play`): `num_games` games on `num_threads`
   threads, each move a PUCT search of `num_simulations` simulations on the network's
   priors and values, with Dirichlet noise at the root. Moves are drawn from the visit
   counts at `temperature` for the first `temp_moves` moves, then the most visited is
   played. Each move gives a training row: the observation, the mask, the visit
   distribution (policy target) and the return from that move for the player to move
   (value target: the game's outcome in a two-player game, the return in a puzzle).
2. **Replay buffer** of the last `replay_size` rows; with `twists`, each row is added
   once per symmetry of the env (the twisted observation, mask and visit distribution).
3. **Learning** (in the Rust learner, or in torch): `train_steps` minibatches of cross-entropy on the visit
   distribution (logits masked), plus `value_coef` x MSE on the value, with Adam and
   `weight_decay`.
4. **Arena**. Two-player games: the new net plays `arena_games` against the current best
   (it replaces it at a score of `arena_threshold`), and against random play and pure
   MCTS (`pure_simulations` random-rollout simulations). Puzzles: the new net solves
   `arena_games` scrambles at the current difficulty with search; the difficulty rises
   when the success rate reaches `diff_threshold`.
"""

from __future__ import annotations

import copy
import time
from dataclasses import asdict, dataclass
from typing import Callable, Optional

import numpy as np

from ..search import agent, play_games
from .az_config import Config
from .networks import build_network, export_layers, runtime_policy
from .netspec import describe_policy
from .rust_learner import RustLearner, choose_learner
from .twists import twist_dense, twist_group, twist_indices


@dataclass
class IterationStats:
    iteration: int
    difficulty: int
    success_rate: float
    """puzzles: solved share of the arena scrambles; two-player: score against random play"""
    mean_return: float
    mean_length: float
    episodes: int
    env_steps: int
    policy_loss: float
    value_loss: float
    entropy: float
    seconds: float
    collect_seconds: float
    train_seconds: float
    arena_seconds: float
    arena_score: float
    vs_random: float
    vs_mcts: float
    best_updated: bool
    buffer_rows: int
    sims_per_second: float
    cut_short: bool = False
    """the time limit stopped this iteration's learning or arena early"""


class Replay:
    """The last `size` training rows, in preallocated arrays."""

    def __init__(self, size: int, obs_width: int, sparse: bool, num_actions: int):
        self.size, self.sparse, self.n, self.pos = size, sparse, 0, 0
        self.obs = np.zeros((size, obs_width), np.uint32 if sparse else np.float32)
        self.counts = np.zeros(size, np.uint32)
        self.masks = np.zeros((size, num_actions), bool)
        self.policy = np.zeros((size, num_actions), np.float32)
        self.value = np.zeros(size, np.float32)

    def add(self, obs: np.ndarray, counts: np.ndarray, masks: np.ndarray, policy: np.ndarray, value: np.ndarray):
        for k in range(0, len(value), self.size):
            sl = slice(k, k + self.size)
            m = len(value[sl])
            idx = (self.pos + np.arange(m)) % self.size
            self.obs[idx], self.counts[idx], self.masks[idx] = obs[sl], counts[sl], masks[sl]
            self.policy[idx], self.value[idx] = policy[sl], value[sl]
            self.pos = (self.pos + m) % self.size
            self.n = min(self.n + m, self.size)


def join_games(rounds: list[dict]) -> dict:
    """The results of consecutive `play_games` calls as one: per-game arrays (and recorded
    rows, their game numbers counted on) back to back."""
    if "game" in rounds[0]:
        offsets = np.cumsum([0] + [len(r["lengths"]) for r in rounds[:-1]])
        rounds = [{**r, "game": r["game"] + offset} for r, offset in zip(rounds, offsets)]
    out = {}
    for key, value in rounds[0].items():
        if isinstance(value, np.ndarray):
            out[key] = np.concatenate([r[key] for r in rounds])
        elif isinstance(value, list):
            out[key] = [x for r in rounds for x in r[key]]
        else:
            out[key] = value
    return out


class AlphaZero:
    def __init__(self, env_cls, config: Config, params: Optional[dict] = None):
        cfg = self.cfg = config
        self.env_cls, self.params = env_cls, dict(params or {})
        if env_cls.continuous:
            raise ValueError(f"AlphaZero needs discrete actions; {env_cls.name} has continuous ones")
        if env_cls.players > 2:
            raise ValueError(f"AlphaZero here supports one or two players; {env_cls.name} has {env_cls.players}")
        probe = env_cls(**self.params)
        self.players = env_cls.players
        self.num_actions = int(probe.action_space.n)
        kind = env_cls.spec["observation"]["kind"]
        self.sparse = kind == "sparse"
        _, _, self.obs_size, self.nnz, _ = probe.batch.sizes
        self.policy_desc = describe_policy(kind, env_cls.obs_shape(probe.batch), self.num_actions, False,
                                           cfg.embedding_size, cfg.common_layers, cfg.conv_channels)
        self.learner = choose_learner(cfg.learner)
        self.learner_reason = ""
        """why `learner` "auto" chose this learner (empty when the config named one)"""
        if cfg.learner == "auto" and self.learner == "rust":
            from .learner_choice import decide
            decision = decide(self.policy_desc, cfg.batch_size, max(1, cfg.num_threads), max(1, cfg.torch_threads),
                              self.sparse, self.nnz)
            self.learner, self.learner_reason = decision.learner, decision.reason
        if self.learner == "torch":
            import torch
            torch.manual_seed(cfg.seed)
            torch.set_num_threads(max(1, cfg.torch_threads))
        self.policy = build_network(self.policy_desc, cfg.seed, use_torch=self.learner == "torch")
        self.best = copy.deepcopy(self.policy)
        self.rust = None
        if self.learner == "torch":
            import torch
            self.optimizer = torch.optim.Adam(self.policy.parameters(), lr=cfg.learning_rate,
                                              weight_decay=cfg.weight_decay)
        else:
            self.rust = RustLearner(self.policy, lr=cfg.learning_rate, eps=1e-8, weight_decay=cfg.weight_decay,
                                    threads=max(1, cfg.num_threads))
            self.optimizer = self.rust  # its state saves and restores as a torch Adam's does
        twists = list(probe.twists().values()) if cfg.twists or cfg.average_twists else []
        self.group = twist_group(twists) if twists else []
        self.buffer = Replay(cfg.replay_size, self.nnz if self.sparse else self.obs_size, self.sparse,
                             self.num_actions)
        self.difficulty = cfg.difficulty if self.players == 1 else 0
        self.curriculum = env_cls.curriculum
        """whether `difficulty` climbs: only for a single-player env whose dynamics read it"""
        self.iteration = 0
        self.env_steps = 0
        self.remote = None
        """the Ray workers that play self-play games (`twisterl.train.distributed.SelfPlayFeed`)"""

    # ------------------------------------------------------------------ ALGO LOGIC

    def search_agent(self, net, noise: bool) -> dict:
        cfg = self.cfg
        return agent(runtime_policy(net), simulations=cfg.num_simulations, c_puct=cfg.c_puct, leaf_batch=cfg.leaf_batch,
                     dirichlet_alpha=cfg.dirichlet_alpha, dirichlet_frac=cfg.dirichlet_frac if noise else 0.0,
                     twists=self.group if cfg.average_twists else None)

    def play(self, agents: list, games: int, seed: int, deadline: Optional[float] = None, **kw) -> Optional[dict]:
        """`games` games (see `play_games`). With a `deadline`, in rounds of the games that run
        at once, checking it between rounds: None once it has passed."""
        cfg = self.cfg
        slots = min(games, cfg.concurrent_games * cfg.num_threads)

        def run(n: int, round_seed: int) -> dict:
            return play_games(self.env_cls, self.params, agents, n, seed=round_seed, num_threads=cfg.num_threads,
                              difficulty=self.difficulty, max_moves=cfg.max_moves,
                              concurrent=min(n * kw.get("tries", 1), cfg.concurrent_games * cfg.num_threads), **kw)

        if deadline is not None and time.perf_counter() >= deadline:
            return None
        if deadline is None or slots >= games:
            return run(games, seed)
        rounds = []
        for k, first in enumerate(range(0, games, slots)):
            if time.perf_counter() >= deadline:
                return None
            rounds.append(run(min(slots, games - first), (seed + k * 0x9E3779B97F4A7C15) % 2**64))
        return join_games(rounds)

    def self_play(self, deadline: Optional[float] = None) -> Optional[dict]:
        """`num_games` self-play games (here, or from the Ray workers of `remote`), their rows
        added to the buffer; None if the deadline stopped them (their rows are dropped)."""
        cfg = self.cfg
        if self.remote is not None:
            # Ray workers: at least `num_games` finished games, played as the weights arrived
            # (see `twisterl.train.distributed.SelfPlayFeed`).
            data = self.remote.self_play(export_layers(self.policy), self.difficulty, deadline)
        else:
            data = self.play([self.search_agent(self.policy, noise=True)], cfg.num_games,
                             seed=cfg.seed * 1_000_003 + self.iteration, deadline=deadline,
                             temperature=cfg.temperature, temp_moves=cfg.temp_moves, record=True)
        if data is None:
            return None
        obs = data["obs_indices"] if self.sparse else data["obs"]
        counts, masks, policy, value = data["obs_counts"], data["masks"], data["policy"], data["value"]
        for perm, act in (self.group if cfg.twists else []) or [(None, None)]:
            if perm is None:
                self.buffer.add(obs, counts, masks, policy, value)
                continue
            tobs = twist_indices(obs, counts, perm) if self.sparse else twist_dense(obs, perm)
            self.buffer.add(tobs, counts, twist_dense(masks, act), twist_dense(policy, act), value)
        return data

    def learn(self, deadline: Optional[float] = None) -> tuple[dict, bool]:
        """`train_steps` Adam steps on the buffer: the mean losses, and False when the deadline
        stopped them early (the steps done are kept)."""
        cfg, buf = self.cfg, self.buffer
        rng = np.random.default_rng(cfg.seed * 7919 + self.iteration)
        sums = np.zeros(3)
        steps = 0
        if self.rust is None:
            import torch
            from torch.nn import functional as F

            from .nets import SparseObs
        for _ in range(cfg.train_steps):
            if deadline is not None and time.perf_counter() >= deadline:
                break
            mb = rng.integers(0, buf.n, size=min(cfg.batch_size, buf.n))
            if self.rust is not None:
                out = self.rust.az_step(buf.obs, buf.counts if self.sparse else None, buf.masks, buf.policy,
                                        buf.value, mb, cfg.value_coef)
                sums += [out["policy_loss"], out["value_loss"], out["entropy"]]
                steps += 1
                continue
            if self.sparse:
                x = SparseObs(torch.from_numpy(buf.obs[mb].astype(np.int64)),
                              torch.from_numpy(buf.counts[mb].astype(np.int64)))
            else:
                x = torch.from_numpy(buf.obs[mb])
            logits, values = self.policy(x)
            mask = torch.from_numpy(buf.masks[mb])
            logp = F.log_softmax(logits.masked_fill(~mask, -1e9), dim=-1)
            target = torch.from_numpy(buf.policy[mb])
            policy_loss = -(target * logp).sum(-1).mean()
            value_loss = F.mse_loss(values, torch.from_numpy(buf.value[mb]))
            loss = policy_loss + cfg.value_coef * value_loss
            self.optimizer.zero_grad()
            loss.backward()
            self.optimizer.step()
            entropy = -(logp.exp() * logp).sum(-1).mean()
            sums += [policy_loss.item(), value_loss.item(), entropy.item()]
            steps += 1
        if self.rust is not None:
            self.rust.push()
        sums = sums / steps if steps else np.full(3, np.nan if cfg.train_steps else 0.0)
        return {"policy_loss": sums[0], "value_loss": sums[1], "entropy": sums[2]}, steps == cfg.train_steps

    def score(self, data: dict, seat: int = 0) -> float:
        """The mean score (win 1, draw 0.5, loss 0) of agent `seat` over two-player games."""
        mine = data["seats"] == seat
        ret = (data["returns"] * mine).sum(1)
        return float(np.mean((np.sign(ret) + 1) / 2))

    def arena(self, deadline: Optional[float] = None) -> dict:
        """The new net's results (see the module doc); NaN for whatever the deadline stopped,
        and then the best net is kept."""
        cfg = self.cfg
        seed = 10_000_019 + self.iteration
        new = self.search_agent(self.policy, noise=False)
        nan = float("nan")
        out = {"arena_score": nan, "vs_random": nan, "vs_mcts": nan, "best_updated": False, "success_rate": nan}

        def score(agents: list, games_seed: int, **kw) -> float:
            data = self.play(agents, cfg.arena_games, seed=games_seed, deadline=deadline, **kw)
            if data is None:
                return nan
            return float(np.mean(data["success"])) if self.players == 1 else self.score(data)

        if self.players == 1:
            out["success_rate"] = out["arena_score"] = score([new], seed, temperature=0.0)
            return out
        kw = {"temperature": 1.0, "temp_moves": cfg.arena_temp_moves}
        out["arena_score"] = score([new, self.search_agent(self.best, False)], seed, **kw)
        if out["arena_score"] >= cfg.arena_threshold:
            self.best.load_state_dict(self.policy.state_dict())
            out["best_updated"] = True
        out["vs_random"] = out["success_rate"] = score([new, agent(random=True)], seed + 1, **kw)
        if cfg.pure_simulations > 0:
            out["vs_mcts"] = score([new, agent(None, simulations=cfg.pure_simulations)], seed + 2, **kw)
        return out

    def iterate(self, deadline: Optional[float] = None) -> Optional[IterationStats]:
        """Self-play, learning and the arena. With a `deadline`, each phase stops once it has
        passed: self-play cut short gives None (nothing was learnt), learning cut short keeps
        its steps and skips the arena, an arena cut short reports NaN (`cut_short`)."""
        cfg = self.cfg
        t0 = time.perf_counter()
        self.iteration += 1
        data = self.self_play(deadline)
        if data is None:
            self.iteration -= 1  # nothing was learnt: the iteration did not happen
            return None
        t1 = time.perf_counter()
        losses, complete = self.learn(deadline)
        t2 = time.perf_counter()
        arena = self.arena(deadline if complete else t2)
        t3 = time.perf_counter()
        cut_short = not complete or any(np.isnan(arena[key]) for key in ("arena_score", "success_rate")) or \
            (self.players == 2 and cfg.pure_simulations > 0 and np.isnan(arena["vs_mcts"]))
        moves = int(data["lengths"].sum())
        self.env_steps += moves
        stats = IterationStats(
            iteration=self.iteration, difficulty=self.difficulty, success_rate=arena.pop("success_rate"),
            mean_return=float(data["returns"][:, 0].mean()), mean_length=float(data["lengths"].mean()),
            episodes=len(data["lengths"]), env_steps=moves, **losses, seconds=t3 - t0, collect_seconds=t1 - t0,
            train_seconds=t2 - t1, arena_seconds=t3 - t2, **arena, buffer_rows=self.buffer.n,
            sims_per_second=moves * cfg.num_simulations / max(t1 - t0, 1e-9), cut_short=cut_short)
        if self.curriculum and stats.success_rate >= cfg.diff_threshold and self.difficulty < cfg.diff_max:
            self.difficulty += 1
        return stats

    # ------------------------------------------------------------------ TRY NOT TO MODIFY

    def train(self, iterations: Optional[int] = None, time_limit: Optional[float] = None,
              on_iteration: Optional[Callable[[IterationStats], None]] = None) -> list[IterationStats]:
        """Iterate until `iterations`, `time_limit` seconds (a deadline every phase checks, see
        `iterate`), or, for envs with a curriculum, until the `diff_max` level is solved."""
        deadline = None if time_limit is None else time.perf_counter() + time_limit
        history: list[IterationStats] = []
        while True:
            stats = self.iterate(deadline)
            if stats is None:
                break
            history.append(stats)
            if on_iteration:
                on_iteration(stats)
            if iterations is not None and len(history) >= iterations:
                break
            if deadline is not None and time.perf_counter() >= deadline:
                break
            if self.curriculum and stats.difficulty >= self.cfg.diff_max and \
                    stats.success_rate >= self.cfg.diff_threshold:
                break  # the last level is solved
        return history

    def config_dict(self) -> dict:
        return asdict(self.cfg)

    def progress(self) -> dict:
        return {"difficulty": self.difficulty, "iteration": self.iteration, "env_steps": self.env_steps}

    def resume(self, progress: dict) -> None:
        self.difficulty = int(progress.get("difficulty", self.difficulty))
        self.iteration = int(progress.get("iteration", 0))
        self.env_steps = int(progress.get("env_steps", 0))
        if self.rust is not None:
            self.rust.pull()  # the weights `RunDir.load` put in the network (Adam's state came with restore_optimizer)
