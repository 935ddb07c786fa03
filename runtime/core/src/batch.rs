//! Batches of environments and the contract every env shares.
//!
//! A [`Slot`] wraps one generated env and enforces, once for all envs, what generated
//! code does not: action checks, step counting, the order of rewards and endings,
//! terminal states and auto-reset. A [`Batch`] owns `num_envs` slots in one allocation
//! that never moves, so disjoint ranges can be stepped from several threads at once.

use crate::env::Env;
use crate::fault::{At, Fault, FaultKind, R};

const NOWHERE: At = At { line: 0, col: 0 };

/// What one step produced for one env.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StepOut {
    pub terminated: bool,
    pub truncated: bool,
}

/// One environment and its episode bookkeeping.
#[derive(Clone, Debug)]
pub struct Slot<E> {
    pub env: E,
    /// The episode ended (terminated or truncated) and the env awaits a reset.
    pub over: bool,
    clipped: Vec<f64>,
}

impl<E: Env> Slot<E> {
    pub fn new(env: E) -> Slot<E> {
        let n = if E::CONTINUOUS { env.num_actions() } else { 0 };
        Slot { env, over: true, clipped: vec![0.0; n] }
    }

    pub fn reset(&mut self) -> R<()> {
        self.env.reset()?;
        self.env.set_steps(0);
        self.over = false;
        Ok(())
    }

    /// Step with discrete `action`; `rewards` receives one value per player.
    pub fn step(&mut self, action: i64, rewards: &mut [f64], autoreset: bool) -> R<StepOut> {
        rewards.iter_mut().for_each(|r| *r = 0.0);
        if self.over {
            return Err(Fault::new(FaultKind::EpisodeOver, NOWHERE, 0, 0, 0));
        }
        let n = self.env.num_actions();
        if E::CONTINUOUS || action < 0 || action as usize >= n {
            return Err(Fault::new(FaultKind::BadAction, NOWHERE, action, n as i64, 0));
        }
        if !self.env.allowed(action as usize)? {
            return Err(Fault::new(FaultKind::IllegalAction, NOWHERE, action, 0, 0));
        }
        self.env.apply(action as usize, rewards)?;
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
        let mut clipped = std::mem::take(&mut self.clipped);
        for (k, v) in values.iter().enumerate() {
            clipped[k] = if v.is_nan() { lows[k] } else { v.max(lows[k]).min(highs[k]) };
        }
        let applied = self.env.apply_values(&clipped, rewards);
        self.clipped = clipped;
        applied?;
        self.finish(rewards, autoreset)
    }

    fn finish(&mut self, rewards: &mut [f64], autoreset: bool) -> R<StepOut> {
        let steps = self.env.steps() + 1;
        self.env.set_steps(steps);
        self.env.add_step_rewards(rewards)?;
        let out = StepOut { terminated: self.env.terminated()?, truncated: self.env.truncated()? };
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
    pub params: Vec<f64>,
    pub lows: Vec<f64>,
    pub highs: Vec<f64>,
}

// Slots are reached through `ptr` only on disjoint ranges (see `range_mut`).
unsafe impl<E: Env> Send for Batch<E> {}
unsafe impl<E: Env> Sync for Batch<E> {}

impl<E: Env> Batch<E> {
    /// `num_envs` envs with `params`; env `i` draws from RNG stream `i` of `seed`.
    pub fn new(params: &[f64], num_envs: usize, seed: u64) -> R<Batch<E>> {
        let mut slots = Vec::with_capacity(num_envs);
        for i in 0..num_envs {
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

    pub fn slot_mut(&mut self, i: usize) -> &mut Slot<E> {
        &mut self.slots[i]
    }

    /// Restart env `i` with a fresh RNG stream from `seed`, keeping its difficulty.
    pub fn reseed(&mut self, i: usize, seed: u64) -> R<()> {
        let difficulty = self.slots[i].env.difficulty();
        let mut env = E::new(&self.params, seed, i as u64)?;
        env.set_difficulty(difficulty);
        self.slots[i] = Slot::new(env);
        Ok(())
    }
}
