//! Batches of environments and the contract every env shares.
//!
//! A [`Slot`] wraps one generated env and enforces, once for all envs, what generated
//! code does not: action checks, step counting, the order of rewards and endings,
//! terminal states and auto-reset. A [`Batch`] owns `num_envs` slots in one allocation
//! that never moves, so disjoint ranges can be stepped from several threads at once.

use crate::env::Env;
use crate::fault::{At, Fault, FaultKind, R};
use crate::param::Param;

const NOWHERE: At = At { line: 0, col: 0 };

/// How a random playout draws its actions. A mask costs a guard per id, or less where
/// hoisted tests skip ids; a draw by rejection ([`Env::draw_allowed`]) costs a guard per
/// try. So a playout draws by rejection first
/// - up to `DRAWS` times while at least one action in `DENSE` was legal in the last state
///   whose whole mask it computed, in envs of at least `SMALL` actions: the tries then all
///   miss with chance `(1 - 1/DENSE)^DRAWS` (13% at most);
/// - up to `num_actions` times (at least `DRAWS`) in an env whose mask pays a looping
///   guard for every id (`Env::GUARD_LOOPS`). A try then costs what an id of the mask
///   does, and with `L` legal actions the tries and the mask that may follow cost
///   `n (1 - (1 - L/n)^n) / L + n (1 - L/n)^n` ids: one mask when `L = 1`, less for
///   every larger `L` (with `L` unknown, no smaller budget does better).
///
/// When every try misses, the state's mask decides.
const DENSE: usize = 8;
const DRAWS: usize = 16;
/// A mask of fewer actions costs about what the draws would: it is always computed.
const SMALL: usize = 2 * DRAWS;

/// What one step produced for one env.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StepOut {
    pub terminated: bool,
    pub truncated: bool,
}

/// One environment and its episode bookkeeping.
#[derive(Debug)]
pub struct Slot<E> {
    pub env: E,
    /// The episode ended (terminated or truncated) and the env awaits a reset.
    pub over: bool,
    /// Truncate episodes after this many steps, beyond the env's own endings (0: never).
    pub step_limit: i64,
    clipped: Vec<f64>,
    mask: Vec<bool>,
    /// Scratch for [`Env::legal_ids`] (`num_actions` long): never copied with the slot.
    ids: Vec<u32>,
    /// `mask` is the env's mask in its current state (see [`Slot::legal_into`]): the next
    /// step reads legality from it instead of evaluating the guard again. Every change of
    /// the env through the slot clears it; who changes `env` directly calls
    /// [`Slot::forget_mask`].
    fresh: bool,
}

/// Totals of a run of random steps (see [`Slot::random_steps`]).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct RolloutStats {
    pub steps: u64,
    pub episodes: u64,
    pub successes: u64,
    /// Sum of player 0's episode returns over finished episodes.
    pub return_sum: f64,
    pub length_sum: u64,
    /// Episodes cut short by a length limit of the caller's (see [`Slot::random_episodes`]).
    pub cut: u64,
    /// Per player (the first [`MAX_REPORTED_PLAYERS`]), the sum of episode returns.
    pub player_returns: [f64; MAX_REPORTED_PLAYERS],
}

/// How many players' returns [`RolloutStats`] keeps.
pub const MAX_REPORTED_PLAYERS: usize = 8;

impl RolloutStats {
    pub fn add(&mut self, other: &RolloutStats) {
        self.steps += other.steps;
        self.episodes += other.episodes;
        self.successes += other.successes;
        self.return_sum += other.return_sum;
        self.length_sum += other.length_sum;
        self.cut += other.cut;
        for (a, b) in self.player_returns.iter_mut().zip(other.player_returns.iter()) {
            *a += b;
        }
    }
}

impl<E: Clone> Clone for Slot<E> {
    fn clone(&self) -> Self {
        Slot { env: self.env.clone(), over: self.over, step_limit: self.step_limit, clipped: self.clipped.clone(),
               mask: self.mask.clone(), ids: self.ids.clone(), fresh: self.fresh }
    }

    /// Copies into the target's own buffers: no allocation when the shapes match.
    fn clone_from(&mut self, source: &Self) {
        self.env.clone_from(&source.env);
        self.over = source.over;
        self.step_limit = source.step_limit;
        self.clipped.clone_from(&source.clipped);
        self.mask.clone_from(&source.mask);
        if self.ids.len() != source.ids.len() {
            self.ids.resize(source.ids.len(), 0);
        }
        self.fresh = source.fresh;
    }
}

impl<E: Env> Slot<E> {
    pub fn new(env: E) -> Slot<E> {
        let n = if E::CONTINUOUS { env.num_actions() } else { 0 };
        let m = if E::CONTINUOUS { 0 } else { env.num_actions() };
        Slot { env, over: true, step_limit: 0, clipped: vec![0.0; n], mask: vec![false; m], ids: vec![0; m], fresh: false }
    }

    /// The env's action mask into `out` (of `num_actions`), remembered for the next step.
    pub fn legal_into(&mut self, out: &mut [bool]) -> R<()> {
        self.fresh = false;
        self.env.legal(&mut self.mask)?;
        out.copy_from_slice(&self.mask);
        self.fresh = true;
        Ok(())
    }

    /// Forget the remembered mask: the env was changed other than through the slot.
    pub fn forget_mask(&mut self) {
        self.fresh = false;
    }

    /// Whether discrete `action` (in range) is allowed: from the remembered mask when
    /// it is the current state's, else by the guard.
    #[inline]
    pub(crate) fn allowed(&self, action: usize) -> R<bool> {
        if self.fresh && !E::ADVISORY {
            return Ok(self.mask[action]);
        }
        self.env.allowed(action)
    }

    /// Put a fresh `env` in this slot (a reseed), keeping the slot's step limit.
    pub fn renew(&mut self, env: E) {
        let step_limit = self.step_limit;
        *self = Slot::new(env);
        self.step_limit = step_limit;
    }

    pub fn reset(&mut self) -> R<()> {
        self.fresh = false;
        self.env.reset()?;
        self.env.set_steps(0);
        self.over = false;
        Ok(())
    }

    /// Step with discrete `action`; `rewards` receives one value per player.
    pub fn step(&mut self, action: i64, rewards: &mut [f64], autoreset: bool) -> R<StepOut> {
        self.step_with(action, rewards, autoreset, false)
    }

    /// Like [`Slot::step`]; with `illegal_noop`, a masked-out action runs no effect but
    /// still counts as a step (rewards and endings are evaluated as usual).
    pub fn step_with(&mut self, action: i64, rewards: &mut [f64], autoreset: bool, illegal_noop: bool) -> R<StepOut> {
        rewards.iter_mut().for_each(|r| *r = 0.0);
        if self.over {
            return Err(Fault::new(FaultKind::EpisodeOver, NOWHERE, 0, 0, 0));
        }
        let n = self.env.num_actions();
        if E::CONTINUOUS || action < 0 || action as usize >= n {
            return Err(Fault::new(FaultKind::BadAction, NOWHERE, action, n as i64, 0));
        }
        let allowed = self.allowed(action as usize)?;
        self.fresh = false;
        if !allowed {
            if !illegal_noop {
                return Err(Fault::new(FaultKind::IllegalAction, NOWHERE, action, 0, 0));
            }
        } else {
            self.env.apply(action as usize, rewards)?;
        }
        self.finish(rewards, autoreset)
    }

    /// Step with continuous `values`, clipped to `lows..=highs` (NaN becomes the low bound).
    pub fn step_values(&mut self, values: &[f64], lows: &[f64], highs: &[f64], rewards: &mut [f64],
                       autoreset: bool) -> R<StepOut> {
        rewards.iter_mut().for_each(|r| *r = 0.0);
        if self.over {
            return Err(Fault::new(FaultKind::EpisodeOver, NOWHERE, 0, 0, 0));
        }
        if !E::CONTINUOUS || values.len() != self.clipped.len() {
            return Err(Fault::new(FaultKind::BadAction, NOWHERE, values.len() as i64, self.clipped.len() as i64, 0));
        }
        self.fresh = false;
        let mut clipped = std::mem::take(&mut self.clipped);
        for (k, v) in values.iter().enumerate() {
            clipped[k] = if v.is_nan() { lows[k] } else { v.max(lows[k]).min(highs[k]) };
        }
        let applied = self.env.apply_values(&clipped, rewards);
        self.clipped = clipped;
        applied?;
        self.finish(rewards, autoreset)
    }

    /// Take `steps` steps with uniformly random legal actions (uniform values for a
    /// continuous action), resetting finished episodes; `rng` drives the choices.
    /// With `obs`, each new state is also observed into it (as a training loop would).
    pub fn random_steps(&mut self, steps: u64, rng: &mut crate::rng::Rng, lows: &[f64], highs: &[f64],
                        stats: &mut RolloutStats, mut obs: Option<&mut [f32]>) -> R<()> {
        let mut rewards = [0.0f64; 16];
        let rewards = &mut rewards[..E::PLAYERS.min(16)];
        let mut values = vec![0.0; lows.len()];
        let mut dense = false;
        let mut episode_return = 0.0;
        if self.over {
            self.reset()?;
        }
        for _ in 0..steps {
            crate::ops::poll(NOWHERE)?;
            let out = self.random_step(rng, &mut dense, &mut values, lows, highs, rewards)?;
            stats.steps += 1;
            episode_return += rewards[0];
            if out.terminated || out.truncated {
                stats.episodes += 1;
                stats.return_sum += episode_return;
                stats.length_sum += self.env.steps() as u64;
                stats.successes += self.env.success()? as u64;
                episode_return = 0.0;
                self.reset()?;
            }
            if let Some(buf) = obs.as_deref_mut() {
                self.env.observe_dense(buf)?;
            }
        }
        Ok(())
    }

    /// Play `episodes` whole episodes with uniformly random legal actions (uniform values
    /// for a continuous action), from a reset each, counting every player's return. An
    /// episode still going after `max_len` steps is cut: counted in `stats.cut`, not as an
    /// episode. An env with no legal action ends its episode there.
    pub fn random_episodes(&mut self, episodes: u64, max_len: u64, rng: &mut crate::rng::Rng, lows: &[f64],
                           highs: &[f64], stats: &mut RolloutStats) -> R<()> {
        let players = E::PLAYERS.min(16);
        let mut rewards = [0.0f64; 16];
        let mut totals = [0.0f64; 16];
        let mut values = vec![0.0; lows.len()];
        let mut dense = false;
        for _ in 0..episodes {
            self.reset()?;
            totals.iter_mut().for_each(|t| *t = 0.0);
            let mut length = 0u64;
            let mut ended = false;
            while length < max_len {
                crate::ops::poll(NOWHERE)?;
                let out = self.random_step(rng, &mut dense, &mut values, lows, highs, &mut rewards[..players])?;
                length += 1;
                for p in 0..players {
                    totals[p] += rewards[p];
                }
                if out.terminated || out.truncated {
                    ended = true;
                    break;
                }
            }
            stats.steps += length;
            if !ended {
                stats.cut += 1;
                continue;
            }
            stats.episodes += 1;
            stats.return_sum += totals[0];
            stats.length_sum += length;
            stats.successes += self.env.success()? as u64;
            for p in 0..players.min(MAX_REPORTED_PLAYERS) {
                stats.player_returns[p] += totals[p];
            }
        }
        self.over = true;
        Ok(())
    }

    /// One step with a uniformly random legal action (uniform `values` for a continuous
    /// action). With no legal action the episode cannot go on: it counts as terminated.
    fn random_step(&mut self, rng: &mut crate::rng::Rng, dense: &mut bool, values: &mut [f64], lows: &[f64],
                   highs: &[f64], rewards: &mut [f64]) -> R<StepOut> {
        if E::CONTINUOUS {
            for (k, v) in values.iter_mut().enumerate() {
                *v = rng.uniform(lows[k], highs[k]);
            }
            return self.step_values(values, lows, highs, rewards, false);
        }
        match self.pick_legal(dense, rng)? {
            Some(a) => self.apply_picked(a, rewards, false),
            None => Ok(StepOut { terminated: true, truncated: false }),
        }
    }

    /// The search's random playout from the current state: uniformly random legal actions
    /// until the episode ends, no action is legal, or `limit` steps; the sum of player
    /// `player`'s rewards. Actions are drawn as [`Slot::pick_legal`] draws them.
    /// It runs next to the env, so a step costs no call across the plugin boundary.
    pub fn rollout(&mut self, player: usize, limit: u64, rng: &mut crate::rng::Rng) -> R<f64> {
        let mut rewards = [0.0f64; 16];
        let rewards = &mut rewards[..E::PLAYERS.clamp(1, 16)];
        let player = player.min(rewards.len() - 1);
        let mut total = 0.0;
        let mut dense = false;
        for _ in 0..limit {
            crate::ops::poll(NOWHERE)?;
            let Some(action) = self.pick_legal(&mut dense, rng)? else { break };
            let out = self.apply_picked(action, rewards, false)?;
            total += rewards[player];
            if out.terminated || out.truncated {
                break;
            }
        }
        Ok(total)
    }

    /// A uniformly random legal action of the current state, or `None` when none is
    /// legal: by rejection where that is cheaper than the mask (see [`DENSE`]), else from
    /// the mask. `dense` carries, from one call to the next of the same playout, whether
    /// the last mask computed had at least one legal action in `DENSE`. Envs with advisory
    /// masks always draw from the mask.
    #[inline]
    fn pick_legal(&mut self, dense: &mut bool, rng: &mut crate::rng::Rng) -> R<Option<usize>> {
        let n = self.env.num_actions();
        // Whether the slot already holds this state's mask does not change the draws: a
        // playout draws the same actions whichever way its host replayed the path to it.
        let draws = if E::ADVISORY || n == 0 {
            0
        } else if E::GUARD_LOOPS {
            n.max(DRAWS)
        } else if *dense && n >= SMALL {
            DRAWS
        } else {
            0
        };
        if draws > 0 {
            if let Some(action) = self.env.draw_allowed(draws, rng)? {
                return Ok(Some(action));
            }
        }
        // The mask this state already has, else the list of legal ids (no mask to fill,
        // count and walk): the same draw either way, the `k`-th legal action in order.
        let legal = match self.fresh {
            true => crate::mask::count(&self.mask),
            false => self.env.legal_ids(&mut self.mask, &mut self.ids)?,
        };
        *dense = legal * DENSE >= n;
        if legal == 0 {
            return Ok(None);
        }
        let k = rng.below(legal as u64) as usize;
        Ok(match self.fresh {
            true => crate::mask::nth(&self.mask, k),
            false => Some(self.ids[k] as usize),
        })
    }

    /// Step with `action`, which [`Slot::pick_legal`] found legal in the current state
    /// (of an episode not over): no check again.
    #[inline]
    pub(crate) fn apply_picked(&mut self, action: usize, rewards: &mut [f64], autoreset: bool) -> R<StepOut> {
        rewards.iter_mut().for_each(|r| *r = 0.0);
        self.fresh = false;
        self.env.apply(action, rewards)?;
        self.finish(rewards, autoreset)
    }

    fn finish(&mut self, rewards: &mut [f64], autoreset: bool) -> R<StepOut> {
        let steps = self.env.steps() + 1;
        self.env.set_steps(steps);
        self.env.add_step_rewards(rewards)?;
        let limited = self.step_limit > 0 && steps >= self.step_limit;
        let out = StepOut { terminated: self.env.terminated()?, truncated: limited || self.env.truncated()? };
        if out.terminated || out.truncated {
            self.over = true;
            if autoreset {
                self.reset()?;
            }
        }
        Ok(out)
    }
}

/// `num_envs` envs of one kind, with the params they were made with.
pub struct Batch<E: Env> {
    slots: Box<[Slot<E>]>,
    ptr: *mut Slot<E>,
    pub params: Vec<Param>,
    pub lows: Vec<f64>,
    pub highs: Vec<f64>,
}

// Slots are reached through `ptr` only on disjoint ranges (see `range_mut`).
unsafe impl<E: Env> Send for Batch<E> {}
unsafe impl<E: Env> Sync for Batch<E> {}

impl<E: Env> Batch<E> {
    /// `num_envs` envs with `params`; env `i` draws from RNG stream `i` of `seed`.
    pub fn new(params: &[Param], num_envs: usize, seed: u64) -> R<Batch<E>> {
        let mut slots = Vec::new();
        if slots.try_reserve_exact(num_envs).is_err() {
            let bytes = std::mem::size_of::<Slot<E>>() as i64;
            return Err(Fault::new(FaultKind::TooLarge, NOWHERE, num_envs.min(i64::MAX as usize) as i64, bytes, 0));
        }
        for i in 0..num_envs {
            crate::ops::poll(NOWHERE)?;
            slots.push(Slot::new(E::new(params, seed, i as u64)?));
        }
        let probe = match slots.first() {
            Some(s) => s.env.clone(),
            None => E::new(params, seed, 0)?,
        };
        let n_values = if E::CONTINUOUS { probe.num_actions() } else { 0 };
        let mut lows = vec![0.0; n_values];
        let mut highs = vec![0.0; n_values];
        probe.value_bounds(&mut lows, &mut highs);
        let mut slots = slots.into_boxed_slice();
        let ptr = slots.as_mut_ptr();
        Ok(Batch { slots, ptr, params: params.to_vec(), lows, highs })
    }

    pub fn len(&self) -> usize {
        self.slots.len()
    }

    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    pub fn slot(&self, i: usize) -> &Slot<E> {
        &self.slots[i]
    }

    /// The slots `start..end`, mutably, through a shared batch.
    ///
    /// # Safety
    /// No other live reference may cover any slot of the range: callers that run on
    /// several threads must hand each thread its own, non-overlapping range.
    pub unsafe fn range_mut(&self, start: usize, end: usize) -> &mut [Slot<E>] {
        assert!(start <= end && end <= self.slots.len(), "slot range out of bounds");
        std::slice::from_raw_parts_mut(self.ptr.add(start), end - start)
    }

    pub fn slots(&self) -> &[Slot<E>] {
        &self.slots
    }

    /// The slots, mutably, with the bounds of a continuous action's values.
    pub fn slots_and_bounds(&mut self) -> (&mut [Slot<E>], &[f64], &[f64]) {
        (&mut self.slots, &self.lows, &self.highs)
    }

    pub fn slot_mut(&mut self, i: usize) -> &mut Slot<E> {
        &mut self.slots[i]
    }

    /// Restart env `i` with a fresh RNG stream from `seed`, keeping its difficulty.
    pub fn reseed(&mut self, i: usize, seed: u64) -> R<()> {
        let difficulty = self.slots[i].env.difficulty();
        let mut env = E::new(&self.params, seed, i as u64)?;
        env.set_difficulty(difficulty);
        self.slots[i].renew(env);
        Ok(())
    }
}
