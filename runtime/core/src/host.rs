//! What a batch of envs can do, for the drivers (rollouts, search) that run on every host.
//!
//! [`Host`] is one set of envs of one kind, addressed by their index in the batch. The
//! drivers in [`crate::rollout`] and [`crate::search`] are written against it alone, so
//! they run unchanged on a plugin loaded by the native runtime ([`crate::plugin`], through
//! the C table) and on an env linked statically into a WebAssembly module ([`Batch`]).
//!
//! A host may be a view of part of a bigger batch: [`Host::envs`] says which envs it may
//! touch, so that threads can each drive their own range of one batch. Ranges given to
//! the methods are batch indices inside `envs()`; every output slice has one row per env
//! of the range (`rewards`: `players` values per env, masks: `num_actions` per env, ...).

use std::ops::Range;

use crate::batch::{Batch, Slot};
use crate::env::{Env, Observation};
use crate::fault::Fault;
use crate::rng::Rng;
use crate::search::{AgentOptions, Searched};

/// Why a host or a driver could not do what was asked.
#[derive(Clone, Debug, PartialEq)]
pub enum Error {
    /// A run-time fault of env `env` of the batch (`None`: of no one env, like Ctrl-C).
    Fault { fault: Fault, env: Option<usize> },
    /// The request itself cannot be carried out; the message says why.
    Invalid(String),
}

impl Error {
    /// A fault of no particular env.
    pub fn fault(fault: Fault) -> Error {
        Error::Fault { fault, env: None }
    }

    /// A fault of env `env`.
    pub fn at(env: usize, fault: Fault) -> Error {
        Error::Fault { fault, env: Some(env) }
    }

    /// The env index of a fault, for picking the first of several (`usize::MAX` if none).
    pub fn env_index(&self) -> usize {
        match self {
            Error::Fault { env: Some(i), .. } => *i,
            _ => usize::MAX,
        }
    }
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::Fault { fault, env: Some(i) } => write!(f, "{fault} (in env {i})"),
            Error::Fault { fault, env: None } => write!(f, "{fault}"),
            Error::Invalid(message) => f.write_str(message),
        }
    }
}

impl std::error::Error for Error {}

/// `Err` once the host asked the work to stop (Ctrl-C); drivers call it in their loops.
#[inline]
pub fn poll() -> Result<(), Error> {
    crate::ops::poll(crate::fault::at(0, 0)).map_err(Error::fault)
}

/// The sizes and kind of a host's envs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Layout {
    pub num_actions: usize,
    pub obs_size: usize,
    /// The most indices a sparse observation can have.
    pub nnz_max: usize,
    pub state_len: usize,
    pub players: usize,
    pub observation: Observation,
    pub continuous: bool,
}

impl Layout {
    pub fn sparse(&self) -> bool {
        self.observation == Observation::Sparse
    }

    /// The width of a mask row: the actions, or none for continuous actions.
    pub fn mask_width(&self) -> usize {
        if self.continuous {
            0
        } else {
            self.num_actions
        }
    }
}

/// The actions of one step of a range: one number per env, or `dims` values per env.
#[derive(Clone, Copy, Debug)]
pub enum Actions<'a> {
    Discrete(&'a [i64]),
    Values(&'a [f64]),
}

/// How a step treats endings and masked-out actions.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StepFlags {
    /// Reset an env whose episode ended, at once (its new state is what gets observed).
    pub autoreset: bool,
    /// A masked-out action is a step that runs no effect, instead of a fault.
    pub illegal_noop: bool,
}

/// Where a step writes; the optional outputs are skipped when `None`.
#[derive(Debug)]
pub struct StepInto<'a> {
    /// `[n, players]`.
    pub rewards: &'a mut [f64],
    pub terminated: &'a mut [bool],
    pub truncated: &'a mut [bool],
    /// `[n, obs_size]` dense observations of the new states (after any auto-reset).
    pub obs: Option<&'a mut [f32]>,
    /// `[n, num_actions]` masks of the new states.
    pub masks: Option<&'a mut [bool]>,
    /// Whether the env counts the state the step reached as solved (before any reset).
    pub success: Option<&'a mut [bool]>,
    /// Whose turn it is in the new states.
    pub player: Option<&'a mut [i64]>,
}

impl<'a> StepInto<'a> {
    /// The outputs of the first `k` of its `n` envs, and those of the others.
    pub fn split_at(self, k: usize, n: usize) -> (StepInto<'a>, StepInto<'a>) {
        fn cut<T>(s: &mut [T], k: usize, n: usize) -> (&mut [T], &mut [T]) {
            let at = s.len().checked_div(n).unwrap_or(0) * k;
            s.split_at_mut(at)
        }
        fn cut_opt<T>(s: Option<&mut [T]>, k: usize, n: usize) -> (Option<&mut [T]>, Option<&mut [T]>) {
            match s {
                Some(s) => {
                    let (a, b) = cut(s, k, n);
                    (Some(a), Some(b))
                }
                None => (None, None),
            }
        }
        let (r0, r1) = cut(self.rewards, k, n);
        let (te0, te1) = cut(self.terminated, k, n);
        let (tr0, tr1) = cut(self.truncated, k, n);
        let (o0, o1) = cut_opt(self.obs, k, n);
        let (m0, m1) = cut_opt(self.masks, k, n);
        let (s0, s1) = cut_opt(self.success, k, n);
        let (p0, p1) = cut_opt(self.player, k, n);
        (
            StepInto { rewards: r0, terminated: te0, truncated: tr0, obs: o0, masks: m0, success: s0, player: p0 },
            StepInto { rewards: r1, terminated: te1, truncated: tr1, obs: o1, masks: m1, success: s1, player: p1 },
        )
    }
}

/// Where [`Host::status`] writes, one entry per env of the range.
#[derive(Debug)]
pub struct StatusInto<'a> {
    pub success: &'a mut [bool],
    pub player: &'a mut [i64],
    pub steps: &'a mut [i64],
    /// The episode ended (by a step) and awaits a reset.
    pub over: &'a mut [bool],
}

/// A batch of envs of one kind, as the drivers see it.
pub trait Host {
    /// The envs this host may touch, as batch indices.
    fn envs(&self) -> Range<usize>;
    fn layout(&self) -> Layout;
    /// Reset the state, player and steps of each env, then run its `reset` block.
    fn reset(&mut self, envs: Range<usize>) -> Result<(), Error>;
    /// The difficulty each env's next `reset` uses.
    fn set_difficulty(&mut self, envs: Range<usize>, difficulty: i64) -> Result<(), Error>;
    /// Restart each env with a fresh RNG stream from `seed` (stream: its index), keeping its difficulty.
    fn reseed(&mut self, envs: Range<usize>, seed: u64) -> Result<(), Error>;
    /// A fresh random stream for env `i` from `seed`, its state kept (see `Env::reseed_rng`).
    fn reseed_rng(&mut self, i: usize, seed: u64) -> Result<(), Error>;
    /// One step of each env of the range.
    fn step(
        &mut self, envs: Range<usize>, actions: Actions<'_>, flags: StepFlags, out: StepInto<'_>,
    ) -> Result<(), Error>;
    /// One discrete step of env `i`: its rewards into `rewards` (one per player), its new
    /// mask into `mask`; returns (terminated, truncated, player to move). A host may do it
    /// with fewer checks than a general `step`.
    fn step_one(&mut self, i: usize, action: i64, rewards: &mut [f64], mask: &mut [bool]) -> Result<(bool, bool, u32), Error> {
        step_single(self, i, action, rewards, Some(mask))
    }
    /// Whether discrete `action` is legal in env `i`'s state, as its mask says; `scratch`
    /// (one mask's room) may be overwritten. A host may test the one action alone.
    fn allowed(&mut self, i: usize, action: usize, scratch: &mut [bool]) -> Result<bool, Error> {
        self.masks(i..i + 1, scratch)?;
        Ok(scratch.get(action).copied().unwrap_or(false))
    }
    /// [`Host::step_one`] with an action that [`Host::allowed`] just found legal, making
    /// no mask: a search's replay of a path needs the leaf's mask alone.
    fn step_legal(&mut self, i: usize, action: i64, rewards: &mut [f64]) -> Result<(bool, bool, u32), Error> {
        step_single(self, i, action, rewards, None)
    }
    /// Env `i`'s mask into `mask`, which the env may keep for its next step.
    fn mask_into(&mut self, i: usize, mask: &mut [bool]) -> Result<(), Error> {
        self.masks(i..i + 1, mask)
    }
    /// The search's random playout from env `i`, whose current mask is `mask`: uniformly
    /// random legal actions (`mask::pick`, drawn from `rng`) until the episode ends, no
    /// action is legal or `limit` steps; the sum of player `player`'s rewards. `mask` and
    /// `rewards` are scratch. A host may run it without a call per step.
    fn rollout(
        &mut self, i: usize, player: u32, limit: usize, rng: &mut Rng, mask: &mut [bool], rewards: &mut [f64],
    ) -> Result<f64, Error> {
        let mut total = 0.0;
        for _ in 0..limit {
            poll()?;
            let Some(action) = crate::mask::pick(mask, rng) else {
                break;
            };
            let (term, trunc, _) = self.step_one(i, action as i64, rewards, mask)?;
            total += rewards[(player as usize).min(rewards.len() - 1)];
            if term || trunc {
                break;
            }
        }
        Ok(total)
    }
    /// Dense observations, `[n, obs_size]`.
    fn observe(&self, envs: Range<usize>, obs: &mut [f32]) -> Result<(), Error>;
    /// Sparse observations: indices `[n, nnz_max]` and how many of each row are used.
    fn observe_sparse(&self, envs: Range<usize>, indices: &mut [u32], counts: &mut [u32]) -> Result<(), Error>;
    /// Action masks, `[n, num_actions]`.
    fn masks(&self, envs: Range<usize>, masks: &mut [bool]) -> Result<(), Error>;
    fn status(&self, envs: Range<usize>, out: StatusInto<'_>) -> Result<(), Error>;
    /// Put env `i` in the state `values` (layout in the spec); like a reset, it starts an episode.
    fn set_state(&mut self, i: usize, values: &[f64]) -> Result<(), Error>;
    /// Whether the episode is over in env `i`'s current state (`done` or `truncate` holds).
    fn ends_here(&self, i: usize) -> Result<bool, Error>;
    /// Copy env `i` of this host over env `j` of `dst` (a host of the same env kind).
    fn copy_into(&self, i: usize, dst: &mut Self, j: usize) -> Result<(), Error>;
    /// A whole search from env `slot` with an agent that needs no network (pure MCTS), run
    /// inside the host on scratch envs of `scratch` from its first one, as
    /// [`crate::search::search_here`] would run it here. `None`: the host cannot, and the
    /// caller drives the search itself.
    fn search_within(
        &mut self, _slot: usize, _scratch: &mut Self, _options: &AgentOptions, _seed: u64,
    ) -> Option<Result<Searched, Error>> {
        None
    }
}

/// One discrete step of env `i` through the general [`Host::step`], with its mask into
/// `mask` when given: (terminated, truncated, player to move).
fn step_single<H: Host + ?Sized>(
    host: &mut H, i: usize, action: i64, rewards: &mut [f64], mask: Option<&mut [bool]>,
) -> Result<(bool, bool, u32), Error> {
    let (mut term, mut trunc, mut player) = ([false], [false], [0i64]);
    host.step(
        i..i + 1,
        Actions::Discrete(&[action]),
        StepFlags::default(),
        StepInto {
            rewards,
            terminated: &mut term,
            truncated: &mut trunc,
            obs: None,
            masks: mask,
            success: None,
            player: Some(&mut player),
        },
    )?;
    Ok((term[0], trunc[0], player[0] as u32))
}

/// The range's envs start..end, checked against what the host may touch.
fn checked(envs: Range<usize>, len: usize) -> Range<usize> {
    assert!(envs.start <= envs.end && envs.end <= len, "env range {envs:?} is outside 0..{len}");
    envs
}

fn at<T>(i: usize, r: crate::fault::R<T>) -> Result<T, Error> {
    r.map_err(|f| Error::at(i, f))
}

impl<E: Env> Batch<E> {
    /// One size of the batch's envs (0 for an empty batch). The per-step methods ask
    /// for the one they need: a whole [`Layout`] also measures the state, which for
    /// param-sized arrays walks their rows.
    fn size(&self, f: fn(&E) -> usize) -> usize {
        self.slots().first().map_or(0, |s| f(&s.env))
    }

    /// [`Layout::mask_width`].
    fn mask_width(&self) -> usize {
        if E::CONTINUOUS {
            0
        } else {
            self.size(E::num_actions)
        }
    }
}

/// A batch of statically linked envs (the WebAssembly runtime's, and tests').
impl<E: Env> Host for Batch<E> {
    fn envs(&self) -> Range<usize> {
        0..self.len()
    }

    fn layout(&self) -> Layout {
        Layout {
            num_actions: self.size(E::num_actions),
            obs_size: self.size(E::obs_size),
            nnz_max: self.size(E::obs_nnz_max),
            state_len: self.size(E::state_len),
            players: E::PLAYERS.max(1),
            observation: E::OBSERVATION,
            continuous: E::CONTINUOUS,
        }
    }

    fn reset(&mut self, envs: Range<usize>) -> Result<(), Error> {
        let envs = checked(envs, self.len());
        for i in envs {
            at(i, self.slot_mut(i).reset())?;
        }
        Ok(())
    }

    fn set_difficulty(&mut self, envs: Range<usize>, difficulty: i64) -> Result<(), Error> {
        for i in checked(envs, self.len()) {
            self.slot_mut(i).env.set_difficulty(difficulty);
        }
        Ok(())
    }

    fn reseed(&mut self, envs: Range<usize>, seed: u64) -> Result<(), Error> {
        let envs = checked(envs, self.len());
        for i in envs {
            at(i, Batch::reseed(self, i, seed))?;
        }
        Ok(())
    }

    fn reseed_rng(&mut self, i: usize, seed: u64) -> Result<(), Error> {
        self.slot_mut(i).env.reseed_rng(seed);
        Ok(())
    }

    fn step(
        &mut self, envs: Range<usize>, actions: Actions<'_>, flags: StepFlags, mut out: StepInto<'_>,
    ) -> Result<(), Error> {
        let envs = checked(envs, self.len());
        let (players, width, n_act) = (E::PLAYERS, self.size(E::obs_size), self.mask_width());
        let (slots, lows, highs) = self.slots_and_bounds();
        let dims = lows.len();
        for (k, i) in envs.enumerate() {
            let slot: &mut Slot<E> = &mut slots[i];
            let rewards = &mut out.rewards[k * players..(k + 1) * players];
            let result = match actions {
                Actions::Values(v) => slot.step_values(&v[k * dims..(k + 1) * dims], lows, highs, rewards, false),
                Actions::Discrete(a) => slot.step_with(a[k], rewards, false, flags.illegal_noop),
            };
            let step = at(i, result)?;
            if let Some(success) = out.success.as_deref_mut() {
                success[k] = at(i, slot.env.success())?;
            }
            if flags.autoreset && (step.terminated || step.truncated) {
                at(i, slot.reset())?;
            }
            out.terminated[k] = step.terminated;
            out.truncated[k] = step.truncated;
            if let Some(obs) = out.obs.as_deref_mut() {
                at(i, slot.env.observe_dense(&mut obs[k * width..(k + 1) * width]))?;
            }
            if let Some(masks) = out.masks.as_deref_mut() {
                if n_act > 0 {
                    at(i, slot.legal_into(&mut masks[k * n_act..(k + 1) * n_act]))?;
                }
            }
            if let Some(player) = out.player.as_deref_mut() {
                player[k] = slot.env.player() as i64;
            }
        }
        Ok(())
    }

    fn rollout(
        &mut self, i: usize, player: u32, limit: usize, rng: &mut Rng, _mask: &mut [bool], _rewards: &mut [f64],
    ) -> Result<f64, Error> {
        let i = checked(i..i + 1, self.len()).start;
        match self.slot_mut(i).rollout(player as usize, limit as u64, rng) {
            Err(f) if f.kind == crate::fault::FaultKind::Interrupted => Err(Error::fault(f)),
            r => at(i, r),
        }
    }

    fn allowed(&mut self, i: usize, action: usize, scratch: &mut [bool]) -> Result<bool, Error> {
        let i = checked(i..i + 1, self.len()).start;
        if action >= self.mask_width() {
            return Ok(false);
        }
        if E::ADVISORY {
            // The mask advises and the guard does not enforce: the mask is the answer.
            at(i, self.slot(i).env.legal(scratch))?;
            return Ok(scratch[action]);
        }
        at(i, self.slot(i).allowed(action))
    }

    fn step_legal(&mut self, i: usize, action: i64, rewards: &mut [f64]) -> Result<(bool, bool, u32), Error> {
        let i = checked(i..i + 1, self.len()).start;
        let n = self.mask_width();
        let slot = self.slot_mut(i);
        if slot.over || E::CONTINUOUS || !(0..n as i64).contains(&action) {
            // Not the case `allowed` vouched for: the general step says what is wrong.
            let out = at(i, slot.step(action, rewards, false))?;
            return Ok((out.terminated, out.truncated, slot.env.player() as u32));
        }
        let out = at(i, slot.apply_picked(action as usize, rewards, false))?;
        Ok((out.terminated, out.truncated, slot.env.player() as u32))
    }

    fn mask_into(&mut self, i: usize, mask: &mut [bool]) -> Result<(), Error> {
        let i = checked(i..i + 1, self.len()).start;
        at(i, self.slot_mut(i).legal_into(mask))
    }

    fn observe(&self, envs: Range<usize>, obs: &mut [f32]) -> Result<(), Error> {
        let envs = checked(envs, self.len());
        let width = self.size(E::obs_size);
        for (k, i) in envs.enumerate() {
            at(i, self.slot(i).env.observe_dense(&mut obs[k * width..(k + 1) * width]))?;
        }
        Ok(())
    }

    fn observe_sparse(&self, envs: Range<usize>, indices: &mut [u32], counts: &mut [u32]) -> Result<(), Error> {
        let envs = checked(envs, self.len());
        let nnz = self.size(E::obs_nnz_max);
        for (k, i) in envs.enumerate() {
            counts[k] = at(i, self.slot(i).env.observe_sparse(&mut indices[k * nnz..(k + 1) * nnz]))? as u32;
        }
        Ok(())
    }

    fn masks(&self, envs: Range<usize>, masks: &mut [bool]) -> Result<(), Error> {
        let envs = checked(envs, self.len());
        let n = self.mask_width();
        for (k, i) in envs.enumerate() {
            at(i, self.slot(i).env.legal(&mut masks[k * n..(k + 1) * n]))?;
        }
        Ok(())
    }

    fn status(&self, envs: Range<usize>, out: StatusInto<'_>) -> Result<(), Error> {
        let envs = checked(envs, self.len());
        for (k, i) in envs.enumerate() {
            let slot = self.slot(i);
            out.success[k] = at(i, slot.env.success())?;
            out.player[k] = slot.env.player() as i64;
            out.steps[k] = slot.env.steps();
            out.over[k] = slot.over;
        }
        Ok(())
    }

    fn set_state(&mut self, i: usize, values: &[f64]) -> Result<(), Error> {
        let slot = self.slot_mut(i);
        let mut env = slot.env.clone();
        at(i, env.set_state(values))?;
        slot.env = env;
        slot.forget_mask();
        slot.over = false;
        Ok(())
    }

    fn ends_here(&self, i: usize) -> Result<bool, Error> {
        let env = &self.slot(i).env;
        Ok(at(i, env.terminated())? || at(i, env.truncated())?)
    }

    fn copy_into(&self, i: usize, dst: &mut Self, j: usize) -> Result<(), Error> {
        dst.slot_mut(j).clone_from(self.slot(i));
        Ok(())
    }
}
