//! The host side of the plugin ABI: a batch of envs inside a loaded plugin, driven through
//! its function table ([`crate::abi::PluginV1`]).
//!
//! [`PluginBatch`] owns the plugin's batch handle and wraps every table function in a safe
//! method that checks buffer sizes and turns a [`FaultOut`] into an [`Error`]. Its ranges,
//! [`PluginEnvs`], are [`Host`]s, so the drivers in [`crate::rollout`] and
//! [`crate::search`] run on a plugin exactly as on a statically linked env. Ranges are
//! handed out from a `&mut PluginBatch`, disjoint, so each can go to its own thread.
//! Loading the library itself is the host's business (it needs `dlopen`).

use std::ops::Range;

use crate::abi::{
    FaultOut, Handle, MessageOut, PluginV1, SearchOutputs, Sizes, StepOutputs, REFUSED, STEP_AUTORESET,
    STEP_ILLEGAL_NOOP,
};
use crate::batch::RolloutStats;
use crate::env::Observation;
use crate::host::{Actions, Error, Host, Layout, StatusInto, StepFlags, StepInto};
use crate::param::Param;
use crate::rng::Rng;
use crate::search::{AgentOptions, Searched};

impl FaultOut {
    /// The fault as an [`Error`], with its env index when it has one.
    pub fn error(&self) -> Error {
        Error::Fault { fault: self.fault(), env: usize::try_from(self.env).ok() }
    }
}

/// Run one table call that reports through a `FaultOut`.
#[inline]
fn call(f: impl FnOnce(*mut FaultOut) -> i32) -> Result<(), Error> {
    let mut out = FaultOut::empty();
    if f(&mut out) == 0 {
        Ok(())
    } else {
        Err(out.error())
    }
}

/// An error unless a buffer has room for `want` values.
#[inline]
fn room(len: usize, want: usize, what: &str) -> Result<(), Error> {
    if len < want {
        return Err(too_small(len, want, what));
    }
    Ok(())
}

#[cold]
fn too_small(len: usize, want: usize, what: &str) -> Error {
    Error::Invalid(format!("{what} has {len} values, but {want} are needed"))
}

/// A batch of envs made by a plugin, destroyed with it.
pub struct PluginBatch {
    table: &'static PluginV1,
    handle: Handle,
    sizes: Sizes,
    /// The envs' layout, read from the table once: the step path asks for it every step.
    layout: Layout,
    lows: Vec<f64>,
    highs: Vec<f64>,
}

// The handle is used only through `&mut PluginBatch` or disjoint `PluginEnvs` ranges.
unsafe impl Send for PluginBatch {}
unsafe impl Sync for PluginBatch {}

impl PluginBatch {
    /// `num_envs` envs with `params` (declaration order); env `i` draws from stream `i` of `seed`.
    ///
    /// # Safety
    /// `table` must be the table of a loaded plugin whose `abi_version`, `table_size` and
    /// core version the host has checked, and the library must stay loaded while the batch lives.
    pub unsafe fn create(
        table: &'static PluginV1, params: &[Param], num_envs: usize, seed: u64,
    ) -> Result<PluginBatch, Error> {
        let mut out = FaultOut::empty();
        let handle = (table.create)(params.as_ptr(), params.len(), num_envs, seed, &mut out);
        if handle.is_null() {
            return Err(out.error());
        }
        let sizes = (table.sizes)(handle);
        let n = if table.continuous != 0 { sizes.num_actions } else { 0 };
        let (mut lows, mut highs) = (vec![0.0; n], vec![0.0; n]);
        (table.value_bounds)(handle, lows.as_mut_ptr(), highs.as_mut_ptr());
        let layout = Layout {
            num_actions: sizes.num_actions,
            obs_size: sizes.obs_size,
            nnz_max: sizes.nnz_max,
            state_len: sizes.state_len,
            players: table.players.max(1) as usize,
            observation: match table.observation {
                0 => Observation::Sparse,
                1 => Observation::Dense,
                _ => Observation::Planes,
            },
            continuous: table.continuous != 0,
        };
        Ok(PluginBatch { table, handle, sizes, layout, lows, highs })
    }

    pub fn table(&self) -> &'static PluginV1 {
        self.table
    }

    pub fn sizes(&self) -> Sizes {
        self.sizes
    }

    pub fn len(&self) -> usize {
        self.sizes.num_envs
    }

    pub fn is_empty(&self) -> bool {
        self.sizes.num_envs == 0
    }

    #[inline]
    pub fn layout(&self) -> Layout {
        self.layout
    }

    /// Lower and upper bounds of a continuous action's values (empty for discrete ones).
    pub fn value_bounds(&self) -> (&[f64], &[f64]) {
        (&self.lows, &self.highs)
    }

    fn check(&self, envs: &Range<usize>) -> Result<(), Error> {
        if envs.start > envs.end || envs.end > self.len() {
            return Err(Error::Invalid(format!("env range {}..{} is outside 0..{}", envs.start, envs.end, self.len())));
        }
        Ok(())
    }

    /// Envs `envs` as a host.
    pub fn envs(&mut self, envs: Range<usize>) -> Result<PluginEnvs<'_>, Error> {
        self.check(&envs)?;
        Ok(PluginEnvs { batch: self, envs })
    }

    /// `envs` split into at most `parts` contiguous ranges, each a host of its own.
    pub fn split(&mut self, envs: Range<usize>, parts: usize) -> Result<Vec<PluginEnvs<'_>>, Error> {
        self.check(&envs)?;
        let n = envs.len();
        let chunk = n.div_ceil(parts.max(1).min(n.max(1))).max(1);
        let batch: &PluginBatch = self;
        Ok(envs
            .clone()
            .step_by(chunk)
            .map(|s| PluginEnvs { batch, envs: s..(s + chunk).min(envs.end) })
            .collect())
    }

    pub fn set_difficulty(&mut self, envs: Range<usize>, difficulty: i64) -> Result<(), Error> {
        self.check(&envs)?;
        unsafe { (self.table.set_difficulty)(self.handle, envs.start, envs.end, difficulty) };
        Ok(())
    }

    /// Truncate episodes after `limit` steps, beyond the env's own endings (0: never).
    pub fn set_step_limit(&mut self, envs: Range<usize>, limit: i64) -> Result<(), Error> {
        self.check(&envs)?;
        unsafe { (self.table.set_step_limit)(self.handle, envs.start, envs.end, limit) };
        Ok(())
    }

    /// Read a text the plugin writes into a buffer, growing it until the text fits.
    fn text(&self, mut f: impl FnMut(*mut u8, usize, *mut usize) -> Result<(), Error>) -> Result<String, Error> {
        let mut buf = vec![0u8; 256];
        loop {
            let mut len = 0usize;
            f(buf.as_mut_ptr(), buf.len(), &mut len)?;
            if len <= buf.len() {
                buf.truncate(len);
                return Ok(String::from_utf8_lossy(&buf).into_owned());
            }
            buf.resize(len, 0);
        }
    }

    /// The text picture of env `i`.
    pub fn render(&self, i: usize) -> Result<String, Error> {
        self.check(&(i..i + 1))?;
        let (t, h) = (self.table, self.handle);
        self.text(|buf, cap, len| call(|out| unsafe { (t.render)(h, i, buf, cap, len, out) }))
    }

    /// The name of action `action` of env `i`, like `drop(3)`.
    pub fn action_label(&self, i: usize, action: usize) -> Result<String, Error> {
        self.check(&(i..i + 1))?;
        let (t, h) = (self.table, self.handle);
        self.text(|buf, cap, len| match unsafe { (t.action_label)(h, i, action, buf, cap, len) } {
            0 => Ok(()),
            _ => Err(Error::Invalid(format!("no label for action {action}"))),
        })
    }

    /// The state of env `i` as a flat vector (layout in the spec), into `values`.
    pub fn get_state(&self, i: usize, values: &mut [f64]) -> Result<(), Error> {
        self.check(&(i..i + 1))?;
        room(values.len(), self.sizes.state_len, "the state buffer")?;
        call(|out| unsafe { (self.table.get_state)(self.handle, i, values.as_mut_ptr(), out) })
    }

    /// How many values of env `i`'s state vector each of its `n` state variables takes.
    pub fn state_lengths(&self, i: usize, n: usize) -> Result<Vec<usize>, Error> {
        self.check(&(i..i + 1))?;
        let mut lengths = vec![0usize; n];
        call(|out| unsafe { (self.table.state_lengths)(self.handle, i, lengths.as_mut_ptr(), n, out) })?;
        Ok(lengths)
    }

    /// Symmetry `k` of env `i`: the observation permutation into `obs`, the action one into `act`.
    pub fn twist(&self, i: usize, k: usize, obs: &mut [u32], act: &mut [u32]) -> Result<(), Error> {
        self.check(&(i..i + 1))?;
        if k >= self.table.twists as usize {
            return Err(Error::Invalid(format!("symmetry {k} is outside 0..{}", self.table.twists)));
        }
        room(obs.len(), self.sizes.obs_size, "the observation permutation")?;
        room(act.len(), self.layout().mask_width(), "the action permutation")?;
        call(|out| unsafe { (self.table.twist)(self.handle, i, k, obs.as_mut_ptr(), act.as_mut_ptr(), out) })
    }

    /// Copy env `i` over env `j` of the same batch.
    pub fn copy_within(&mut self, i: usize, j: usize) -> Result<(), Error> {
        self.check(&(i..i + 1))?;
        self.check(&(j..j + 1))?;
        call(|out| unsafe { (self.table.copy_env)(self.handle, i, self.handle, j, out) })
    }
}

impl Drop for PluginBatch {
    fn drop(&mut self) {
        unsafe { (self.table.destroy)(self.handle) }
    }
}

/// A range of a plugin batch's envs, for one thread: a [`Host`].
pub struct PluginEnvs<'a> {
    batch: &'a PluginBatch,
    envs: Range<usize>,
}

impl<'a> PluginEnvs<'a> {
    /// The envs before batch index `at`, and those from it on.
    pub fn split_at(self, at: usize) -> Result<(PluginEnvs<'a>, PluginEnvs<'a>), Error> {
        if !self.envs.contains(&at) && at != self.envs.end {
            return Err(Error::Invalid(format!("env {at} is outside {}..{}", self.envs.start, self.envs.end)));
        }
        let (batch, envs) = (self.batch, self.envs);
        Ok((PluginEnvs { batch, envs: envs.start..at }, PluginEnvs { batch, envs: at..envs.end }))
    }

    fn t(&self) -> &'static PluginV1 {
        self.batch.table
    }

    fn h(&self) -> Handle {
        self.batch.handle
    }

    /// An error unless `envs` lies inside this range.
    #[inline]
    fn inside(&self, envs: &Range<usize>) -> Result<usize, Error> {
        if envs.start < self.envs.start || envs.end > self.envs.end || envs.start > envs.end {
            return Err(self.outside(envs));
        }
        Ok(envs.len())
    }

    #[cold]
    fn outside(&self, envs: &Range<usize>) -> Error {
        Error::Invalid(format!(
            "env range {}..{} is outside {}..{}",
            envs.start, envs.end, self.envs.start, self.envs.end
        ))
    }

    /// `steps` random legal steps per env, inside the plugin (see `Slot::random_steps`).
    pub fn random_steps(&mut self, steps: u64, seed: u64, observe: bool) -> Result<RolloutStats, Error> {
        let mut stats = RolloutStats::default();
        let (s, e) = (self.envs.start, self.envs.end);
        call(|out| unsafe { (self.t().random_steps)(self.h(), s, e, steps, seed, observe as u8, &mut stats, out) })?;
        Ok(stats)
    }

    /// `episodes[k]` whole random episodes for the range's env `k` (see `Slot::random_episodes`).
    pub fn random_episodes(&mut self, episodes: &[u64], max_len: u64, seed: u64) -> Result<RolloutStats, Error> {
        room(episodes.len(), self.envs.len(), "the episode quota")?;
        let mut stats = RolloutStats::default();
        let (s, e) = (self.envs.start, self.envs.end);
        call(|out| unsafe {
            (self.t().random_episodes)(self.h(), s, e, episodes.as_ptr(), max_len, seed, &mut stats, out)
        })?;
        Ok(stats)
    }
}

/// A `bool` buffer as the `u8` buffer the ABI writes 0 or 1 into.
fn bytes(b: &mut [bool]) -> *mut u8 {
    b.as_mut_ptr() as *mut u8
}

fn bytes_opt(b: &mut Option<&mut [bool]>) -> *mut u8 {
    b.as_deref_mut().map(bytes).unwrap_or(std::ptr::null_mut())
}

impl Host for PluginEnvs<'_> {
    fn envs(&self) -> Range<usize> {
        self.envs.clone()
    }

    #[inline]
    fn layout(&self) -> Layout {
        self.batch.layout
    }

    fn reset(&mut self, envs: Range<usize>) -> Result<(), Error> {
        self.inside(&envs)?;
        call(|out| unsafe { (self.t().reset)(self.h(), envs.start, envs.end, out) })
    }

    fn set_difficulty(&mut self, envs: Range<usize>, difficulty: i64) -> Result<(), Error> {
        self.inside(&envs)?;
        unsafe { (self.t().set_difficulty)(self.h(), envs.start, envs.end, difficulty) };
        Ok(())
    }

    fn reseed(&mut self, envs: Range<usize>, seed: u64) -> Result<(), Error> {
        self.inside(&envs)?;
        call(|out| unsafe { (self.t().reseed)(self.h(), envs.start, envs.end, seed, out) })
    }

    fn reseed_rng(&mut self, i: usize, seed: u64) -> Result<(), Error> {
        self.inside(&(i..i + 1))?;
        call(|out| unsafe { (self.t().reseed_rng)(self.h(), i, seed, out) })
    }

    #[inline]
    fn step(
        &mut self, envs: Range<usize>, actions: Actions<'_>, flags: StepFlags, mut into: StepInto<'_>,
    ) -> Result<(), Error> {
        let n = self.inside(&envs)?;
        let l = self.layout();
        let (actions, values) = match actions {
            Actions::Discrete(a) if !l.continuous => {
                room(a.len(), n, "the actions")?;
                (a.as_ptr(), std::ptr::null())
            }
            Actions::Values(v) if l.continuous => {
                room(v.len(), n * l.num_actions, "the action values")?;
                (std::ptr::null(), v.as_ptr())
            }
            _ => return Err(Error::Invalid("discrete actions need action numbers, continuous ones values".into())),
        };
        room(into.rewards.len(), n * l.players, "the rewards")?;
        room(into.terminated.len().min(into.truncated.len()), n, "the endings")?;
        for (len, want, what) in [
            (into.obs.as_ref().map(|o| o.len()), n * l.obs_size, "the observations"),
            (into.masks.as_ref().map(|m| m.len()), n * l.mask_width(), "the masks"),
            (into.success.as_ref().map(|s| s.len()), n, "the successes"),
            (into.player.as_ref().map(|p| p.len()), n, "the players"),
        ] {
            if let Some(len) = len {
                room(len, want, what)?;
            }
        }
        let outs = StepOutputs {
            rewards: into.rewards.as_mut_ptr(),
            terminated: bytes(into.terminated),
            truncated: bytes(into.truncated),
            obs: into.obs.as_deref_mut().map(|o| o.as_mut_ptr()).unwrap_or(std::ptr::null_mut()),
            masks: bytes_opt(&mut into.masks),
            success: bytes_opt(&mut into.success),
            player: into.player.as_deref_mut().map(|p| p.as_mut_ptr()).unwrap_or(std::ptr::null_mut()),
        };
        let flags =
            if flags.autoreset { STEP_AUTORESET } else { 0 } | if flags.illegal_noop { STEP_ILLEGAL_NOOP } else { 0 };
        call(|out| unsafe {
            (self.t().step_observe)(self.h(), envs.start, envs.end, actions, values, flags, &outs, out)
        })
    }

    #[inline]
    fn step_one(
        &mut self, i: usize, action: i64, rewards: &mut [f64], mask: &mut [bool],
    ) -> Result<(bool, bool, u32), Error> {
        self.inside(&(i..i + 1))?;
        let l = &self.batch.layout;
        if l.continuous {
            return Err(Error::Invalid("a search steps discrete actions; this env's are continuous".into()));
        }
        room(rewards.len(), l.players, "the rewards")?;
        room(mask.len(), l.mask_width(), "the masks")?;
        let (mut term, mut trunc, mut player) = (0u8, 0u8, 0i64);
        let outs = StepOutputs {
            rewards: rewards.as_mut_ptr(),
            terminated: &mut term,
            truncated: &mut trunc,
            obs: std::ptr::null_mut(),
            masks: bytes(mask),
            success: std::ptr::null_mut(),
            player: &mut player,
        };
        call(|out| unsafe {
            (self.t().step_observe)(self.h(), i, i + 1, &action, std::ptr::null(), 0, &outs, out)
        })?;
        Ok((term != 0, trunc != 0, player as u32))
    }

    fn rollout(
        &mut self, i: usize, player: u32, limit: usize, rng: &mut Rng, _mask: &mut [bool], _rewards: &mut [f64],
    ) -> Result<f64, Error> {
        self.inside(&(i..i + 1))?;
        if self.batch.layout.continuous {
            return Err(Error::Invalid("a search steps discrete actions; this env's are continuous".into()));
        }
        let mut state = rng.state();
        let mut total = 0.0;
        let result = call(|out| unsafe {
            (self.t().rollout)(self.h(), i, player, limit as u64, state.as_mut_ptr(), &mut total, out)
        });
        *rng = Rng::from_state(state);
        result.map(|()| total)
    }

    fn observe(&self, envs: Range<usize>, obs: &mut [f32]) -> Result<(), Error> {
        let n = self.inside(&envs)?;
        room(obs.len(), n * self.batch.sizes.obs_size, "the observations")?;
        call(|out| unsafe { (self.t().observe)(self.h(), envs.start, envs.end, obs.as_mut_ptr(), out) })
    }

    fn observe_sparse(&self, envs: Range<usize>, indices: &mut [u32], counts: &mut [u32]) -> Result<(), Error> {
        let n = self.inside(&envs)?;
        room(indices.len(), n * self.batch.sizes.nnz_max, "the observation indices")?;
        room(counts.len(), n, "the observation counts")?;
        call(|out| unsafe {
            (self.t().observe_sparse)(self.h(), envs.start, envs.end, indices.as_mut_ptr(), counts.as_mut_ptr(), out)
        })
    }

    fn masks(&self, envs: Range<usize>, masks: &mut [bool]) -> Result<(), Error> {
        let n = self.inside(&envs)?;
        room(masks.len(), n * self.layout().mask_width(), "the masks")?;
        call(|out| unsafe { (self.t().masks)(self.h(), envs.start, envs.end, bytes(masks), out) })
    }

    fn status(&self, envs: Range<usize>, into: StatusInto<'_>) -> Result<(), Error> {
        let n = self.inside(&envs)?;
        let shortest = into.success.len().min(into.player.len()).min(into.steps.len()).min(into.over.len());
        room(shortest, n, "the status buffers")?;
        call(|out| unsafe {
            (self.t().status)(
                self.h(),
                envs.start,
                envs.end,
                bytes(into.success),
                into.player.as_mut_ptr(),
                into.steps.as_mut_ptr(),
                bytes(into.over),
                out,
            )
        })
    }

    fn set_state(&mut self, i: usize, values: &[f64]) -> Result<(), Error> {
        self.inside(&(i..i + 1))?;
        call(|out| unsafe { (self.t().set_state)(self.h(), i, values.as_ptr(), values.len(), out) })
    }

    fn ends_here(&self, i: usize) -> Result<bool, Error> {
        self.inside(&(i..i + 1))?;
        let mut ended = 0u8;
        call(|out| unsafe { (self.t().ends_here)(self.h(), i, &mut ended, out) })?;
        Ok(ended != 0)
    }

    fn copy_into(&self, i: usize, dst: &mut Self, j: usize) -> Result<(), Error> {
        self.inside(&(i..i + 1))?;
        dst.inside(&(j..j + 1))?;
        if !std::ptr::eq(self.t(), dst.t()) {
            return Err(Error::Invalid("both batches must come from the same env plugin".into()));
        }
        call(|out| unsafe { (self.t().copy_env)(self.h(), i, dst.h(), j, out) })
    }

    fn search_within(
        &mut self, slot: usize, scratch: &mut Self, options: &AgentOptions, seed: u64,
    ) -> Option<Result<Searched, Error>> {
        // The plugin's search uses the scratch batch's envs from 0; anything else (and every
        // request it would refuse for its ranges) is left to the driver, which says why.
        let usable = self.envs.contains(&slot)
            && scratch.envs.start == 0
            && scratch.envs.len() >= options.leaf_batch
            && std::ptr::eq(self.t(), scratch.t())
            && !std::ptr::eq(self.batch, scratch.batch);
        if !usable || self.batch.layout.continuous {
            return None;
        }
        let n = self.batch.layout.num_actions;
        let (mut visits, mut priors, mut q) = (vec![0.0f32; n], vec![0.0f32; n], vec![f32::NAN; n]);
        let (mut value, mut best) = (0.0f64, -1i64);
        let outs = SearchOutputs {
            visits: visits.as_mut_ptr(),
            priors: priors.as_mut_ptr(),
            q: q.as_mut_ptr(),
            value: &mut value,
            best: &mut best,
        };
        let mut fault = FaultOut::empty();
        let mut text = vec![0u8; 1024];
        let mut message = MessageOut { ptr: text.as_mut_ptr(), cap: text.len(), len: 0 };
        let code = unsafe {
            (self.t().search)(self.h(), slot, scratch.h(), options, seed, &outs, &mut fault, &mut message)
        };
        Some(match code {
            0 => Ok(Searched { visits, value, best: u32::try_from(best).ok(), priors, q }),
            REFUSED => {
                text.truncate(message.len.min(message.cap));
                Err(Error::Invalid(String::from_utf8_lossy(&text).into_owned()))
            }
            _ => Err(fault.error()),
        })
    }
}
