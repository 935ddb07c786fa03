//! The versioned C ABI between the runtime and a compiled environment plugin.
//!
//! A plugin is a `cdylib` built from generated code. It exports one symbol,
//! `twisterl_plugin_v1`, returning a [`PluginV1`] table of `extern "C"` functions that
//! work on batches of envs. Every function catches panics and reports failures through
//! [`FaultOut`], so nothing unwinds across the boundary. The host checks
//! `abi_version` and `core_version` before calling anything else.

use std::ffi::c_void;
use std::sync::atomic::AtomicBool;
use std::panic::{catch_unwind, AssertUnwindSafe};

use crate::batch::{Batch, RolloutStats};
use crate::env::{Env, Observation};
use crate::fault::{At, Fault, FaultKind, R};
use crate::host::{Error, Host};
use crate::param::Param;
use crate::search::{Agent, AgentOptions};

/// Bumped whenever `PluginV1` or the meaning of its functions changes.
pub const ABI_VERSION: u32 = 7;
/// The core's version; host and plugin must be built from the same core.
pub const CORE_VERSION: &str = env!("CARGO_PKG_VERSION");

/// A fault as plain C data; `kind` is a [`FaultKind`] number, `env` the env index.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct FaultOut {
    pub kind: u32,
    pub line: u32,
    pub col: u32,
    pub a: i64,
    pub b: i64,
    pub c: i64,
    pub env: i64,
}

impl FaultOut {
    pub fn empty() -> FaultOut {
        FaultOut { kind: 0, line: 0, col: 0, a: 0, b: 0, c: 0, env: -1 }
    }

    pub fn fault(&self) -> Fault {
        Fault::new(FaultKind::from_u32(self.kind), At { line: self.line, col: self.col }, self.a, self.b, self.c)
    }
}

/// Sizes of a batch.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct Sizes {
    pub num_envs: usize,
    pub num_actions: usize,
    pub obs_size: usize,
    pub nnz_max: usize,
    pub state_len: usize,
    /// `[channels, rows, cols]` for planes; `[obs_size, 1, 1]` otherwise.
    pub obs_shape: [usize; 3],
    /// About how many bytes one env takes (its slot and its state), for memory estimates.
    pub env_bytes: usize,
}

pub type Handle = *mut c_void;

/// Flags of `step`: reset finished episodes at once.
pub const STEP_AUTORESET: u8 = 1;
/// Flags of `step`: a masked-out action is a no-op step instead of a fault.
pub const STEP_ILLEGAL_NOOP: u8 = 2;

/// The function table of a plugin. All ranges are `start..end` env indices.
#[repr(C)]
pub struct PluginV1 {
    pub abi_version: u32,
    /// `size_of::<PluginV1>()` in the plugin: a second guard against a stale layout.
    pub table_size: usize,
    pub core_version_ptr: *const u8,
    pub core_version_len: usize,
    pub spec_ptr: *const u8,
    pub spec_len: usize,
    /// 0 sparse, 1 dense, 2 planes.
    pub observation: u32,
    pub players: u32,
    pub continuous: u32,
    /// How many symmetries (twists) the env declares.
    pub twists: u32,
    pub create: unsafe extern "C" fn(*const Param, usize, usize, u64, *mut FaultOut) -> Handle,
    pub destroy: unsafe extern "C" fn(Handle),
    pub sizes: unsafe extern "C" fn(Handle) -> Sizes,
    pub value_bounds: unsafe extern "C" fn(Handle, *mut f64, *mut f64),
    pub set_difficulty: unsafe extern "C" fn(Handle, usize, usize, i64),
    pub reseed: unsafe extern "C" fn(Handle, usize, usize, u64, *mut FaultOut) -> i32,
    pub reset: unsafe extern "C" fn(Handle, usize, usize, *mut FaultOut) -> i32,
    pub step: unsafe extern "C" fn(Handle, usize, usize, *const i64, *mut f64, *mut u8, *mut u8, u8, *mut FaultOut) -> i32,
    pub step_values: unsafe extern "C" fn(Handle, usize, usize, *const f64, *mut f64, *mut u8, *mut u8, u8, *mut FaultOut) -> i32,
    pub observe: unsafe extern "C" fn(Handle, usize, usize, *mut f32, *mut FaultOut) -> i32,
    pub observe_sparse: unsafe extern "C" fn(Handle, usize, usize, *mut u32, *mut u32, *mut FaultOut) -> i32,
    pub masks: unsafe extern "C" fn(Handle, usize, usize, *mut u8, *mut FaultOut) -> i32,
    /// Per env: success, player, steps, episode over (ended by a step, awaiting a reset).
    pub status: unsafe extern "C" fn(Handle, usize, usize, *mut u8, *mut i64, *mut i64, *mut u8, *mut FaultOut) -> i32,
    /// Render env `i` into a buffer; the needed length is written even when it does not fit.
    pub render: unsafe extern "C" fn(Handle, usize, *mut u8, usize, *mut usize, *mut FaultOut) -> i32,
    pub get_state: unsafe extern "C" fn(Handle, usize, *mut f64, *mut FaultOut) -> i32,
    pub set_state: unsafe extern "C" fn(Handle, usize, *const f64, usize, *mut FaultOut) -> i32,
    /// Copy env `i` of the first batch over env `j` of the second (same plugin).
    pub copy_env: unsafe extern "C" fn(Handle, usize, Handle, usize, *mut FaultOut) -> i32,
    /// `steps` random legal steps for each env of the range, all inside the plugin.
    /// With a non-zero flag, each new state is also observed (into scratch space).
    pub random_steps: unsafe extern "C" fn(Handle, usize, usize, u64, u64, u8, *mut RolloutStats, *mut FaultOut) -> i32,
    /// The name of action `a` of env `i`, like `drop(3)`, into a buffer (as `render`).
    pub action_label: unsafe extern "C" fn(Handle, usize, usize, *mut u8, usize, *mut usize) -> i32,
    /// Symmetry `k` of env `i` as an observation and an action permutation.
    pub twist: unsafe extern "C" fn(Handle, usize, usize, *mut u32, *mut u32, *mut FaultOut) -> i32,
    /// Step, then observe, in one pass over the range (see [`StepOutputs`]).
    pub step_observe: unsafe extern "C" fn(Handle, usize, usize, *const i64, *const f64, u8, *const StepOutputs,
                                           *mut FaultOut) -> i32,
    /// How many values of env `i`'s state vector each state variable takes (`n` of them).
    pub state_lengths: unsafe extern "C" fn(Handle, usize, *mut usize, usize, *mut FaultOut) -> i32,
    /// For each env `i` of the range, `episodes[i - start]` whole random episodes (see
    /// `Slot::random_episodes`), each cut after `max_len` steps.
    pub random_episodes: unsafe extern "C" fn(Handle, usize, usize, *const u64, u64, u64, *mut RolloutStats,
                                              *mut FaultOut) -> i32,
    /// A fresh random stream for env `i` from `seed`, its state kept (see `Env::reseed_rng`).
    pub reseed_rng: unsafe extern "C" fn(Handle, usize, u64, *mut FaultOut) -> i32,
    /// Whether `done` or `truncate` holds in env `i`'s current state (1 or 0 in `*ended`).
    pub ends_here: unsafe extern "C" fn(Handle, usize, *mut u8, *mut FaultOut) -> i32,
    /// Truncate the episodes of envs `start..end` after `limit` steps (0: only the env's own endings).
    pub set_step_limit: unsafe extern "C" fn(Handle, usize, usize, i64),
    /// Where the plugin's loops look for the host's request to stop (see `ops::poll`).
    pub set_interrupt_flag: extern "C" fn(*const AtomicBool),
    /// The search's random playout from env `i` (`Slot::rollout`): `player`'s summed
    /// rewards into `*total`, for at most `limit` steps, the actions drawn from the random
    /// stream whose state is `rng` (four words, updated in place).
    pub rollout: unsafe extern "C" fn(Handle, usize, u32, u64, *mut u64, *mut f64, *mut FaultOut) -> i32,
    /// One whole search from env `slot` of the first batch with an agent that needs no
    /// network, on scratch envs `0..` of the second (`search::search_here`, run inside the
    /// plugin). Returns 0, or 1 with a fault in the `FaultOut`, or [`REFUSED`] with the
    /// reason in the `MessageOut`.
    pub search: unsafe extern "C" fn(Handle, usize, Handle, *const AgentOptions, u64, *const SearchOutputs,
                                     *mut FaultOut, *mut MessageOut) -> i32,
}

/// What a table function returns when it refuses a request (the reason is a message).
pub const REFUSED: i32 = 2;

/// Where `search` writes: `num_actions` visits, priors and mean values (NaN: unvisited)
/// for the player to move, then the root's value and the most visited action (-1: none).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct SearchOutputs {
    pub visits: *mut f32,
    pub priors: *mut f32,
    pub q: *mut f32,
    pub value: *mut f64,
    pub best: *mut i64,
}

/// A message into a host buffer of `cap` bytes; `len` is its whole length, even when it
/// did not fit (the host then shows what fitted).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct MessageOut {
    pub ptr: *mut u8,
    pub cap: usize,
    pub len: usize,
}

/// Where `step_observe` writes, for the range it was given; any pointer may be null.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct StepOutputs {
    /// `[n, players]` rewards.
    pub rewards: *mut f64,
    pub terminated: *mut u8,
    pub truncated: *mut u8,
    /// `[n, obs_size]` dense observations, after any auto-reset.
    pub obs: *mut f32,
    /// `[n, num_actions]` masks of the new states.
    pub masks: *mut u8,
    pub success: *mut u8,
    pub player: *mut i64,
}

// The table holds only pointers to static data and functions.
unsafe impl Sync for PluginV1 {}

impl PluginV1 {
    /// The table for env type `E`; `spec` is its JSON spec.
    pub const fn of<E: Env>() -> PluginV1 {
        PluginV1 {
            abi_version: ABI_VERSION,
            table_size: std::mem::size_of::<PluginV1>(),
            core_version_ptr: CORE_VERSION.as_ptr(),
            core_version_len: CORE_VERSION.len(),
            spec_ptr: E::SPEC.as_ptr(),
            spec_len: E::SPEC.len(),
            observation: match E::OBSERVATION {
                Observation::Sparse => 0,
                Observation::Dense => 1,
                Observation::Planes => 2,
            },
            players: E::PLAYERS as u32,
            continuous: E::CONTINUOUS as u32,
            twists: E::TWISTS as u32,
            create: create::<E>,
            destroy: destroy::<E>,
            sizes: sizes::<E>,
            value_bounds: value_bounds::<E>,
            set_difficulty: set_difficulty::<E>,
            reseed: reseed::<E>,
            reset: reset::<E>,
            step: step::<E>,
            step_values: step_values::<E>,
            observe: observe::<E>,
            observe_sparse: observe_sparse::<E>,
            masks: masks::<E>,
            status: status::<E>,
            render: render::<E>,
            get_state: get_state::<E>,
            set_state: set_state::<E>,
            copy_env: copy_env::<E>,
            random_steps: random_steps::<E>,
            action_label: action_label::<E>,
            step_observe: step_observe::<E>,
            twist: twist::<E>,
            state_lengths: state_lengths::<E>,
            random_episodes: random_episodes::<E>,
            reseed_rng: reseed_rng::<E>,
            ends_here: ends_here::<E>,
            set_step_limit: set_step_limit::<E>,
            set_interrupt_flag,
            rollout: rollout::<E>,
            search: search::<E>,
        }
    }
}

/// Export `$t` as this plugin's environment.
#[macro_export]
macro_rules! export_env {
    ($t:ty) => {
        static TWISTERL_PLUGIN: $crate::abi::PluginV1 = $crate::abi::PluginV1::of::<$t>();

        /// The plugin's function table (see `twisterl_core::abi`).
        #[no_mangle]
        pub extern "C" fn twisterl_plugin_v1() -> *const $crate::abi::PluginV1 {
            &TWISTERL_PLUGIN
        }
    };
}

// ---------------------------------------------------------------- the functions

/// Run `f`, turning a fault or a panic into a status code and a `FaultOut`.
fn guarded(out: *mut FaultOut, f: impl FnOnce() -> Result<(), (usize, Fault)>) -> i32 {
    let (env, fault) = match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(())) => return 0,
        Ok(Err(e)) => e,
        Err(_) => (usize::MAX, Fault::new(FaultKind::Panic, At { line: 0, col: 0 }, 0, 0, 0)),
    };
    if !out.is_null() {
        // SAFETY: the host passes a valid FaultOut or null.
        unsafe {
            *out = FaultOut {
                kind: fault.kind as u32,
                line: fault.at.line,
                col: fault.at.col,
                a: fault.a,
                b: fault.b,
                c: fault.c,
                env: if env == usize::MAX { -1 } else { env as i64 },
            };
        }
    }
    1
}

fn at_env<T>(i: usize, r: R<T>) -> Result<T, (usize, Fault)> {
    r.map_err(|f| (i, f))
}

unsafe fn batch<'a, E: Env>(h: Handle) -> &'a Batch<E> {
    &*(h as *const Batch<E>)
}

unsafe extern "C" fn create<E: Env>(params: *const Param, n_params: usize, num_envs: usize, seed: u64,
                                    out: *mut FaultOut) -> Handle {
    let mut handle: Handle = std::ptr::null_mut();
    let slot = &mut handle;
    guarded(out, move || {
        let params = if n_params == 0 { &[][..] } else { std::slice::from_raw_parts(params, n_params) };
        let b = at_env(0, Batch::<E>::new(params, num_envs, seed))?;
        *slot = Box::into_raw(Box::new(b)) as Handle;
        Ok(())
    });
    handle
}

unsafe extern "C" fn destroy<E: Env>(h: Handle) {
    if !h.is_null() {
        let _ = catch_unwind(AssertUnwindSafe(|| drop(Box::from_raw(h as *mut Batch<E>))));
    }
}

unsafe extern "C" fn sizes<E: Env>(h: Handle) -> Sizes {
    let b = batch::<E>(h);
    match b.len() {
        0 => Sizes::default(),
        n => {
            let env = &b.slot(0).env;
            let env_bytes = std::mem::size_of::<crate::batch::Slot<E>>() + 8 * env.state_len() + 2 * env.num_actions();
            Sizes { num_envs: n, num_actions: env.num_actions(), obs_size: env.obs_size(),
                    nnz_max: env.obs_nnz_max(), state_len: env.state_len(), obs_shape: env.obs_shape(), env_bytes }
        }
    }
}

unsafe extern "C" fn value_bounds<E: Env>(h: Handle, lows: *mut f64, highs: *mut f64) {
    let b = batch::<E>(h);
    let n = b.lows.len();
    std::slice::from_raw_parts_mut(lows, n).copy_from_slice(&b.lows);
    std::slice::from_raw_parts_mut(highs, n).copy_from_slice(&b.highs);
}

unsafe extern "C" fn set_difficulty<E: Env>(h: Handle, start: usize, end: usize, difficulty: i64) {
    for slot in batch::<E>(h).range_mut(start, end) {
        slot.env.set_difficulty(difficulty);
        slot.forget_mask(); // guards may read `difficulty`
    }
}

unsafe extern "C" fn reseed<E: Env>(h: Handle, start: usize, end: usize, seed: u64, out: *mut FaultOut) -> i32 {
    let b = batch::<E>(h);
    guarded(out, || {
        for (k, slot) in b.range_mut(start, end).iter_mut().enumerate() {
            let i = start + k;
            let difficulty = slot.env.difficulty();
            let mut env = at_env(i, E::new(&b.params, seed, i as u64))?;
            env.set_difficulty(difficulty);
            slot.renew(env);
        }
        Ok(())
    })
}

unsafe extern "C" fn reset<E: Env>(h: Handle, start: usize, end: usize, out: *mut FaultOut) -> i32 {
    let b = batch::<E>(h);
    guarded(out, || {
        for (k, slot) in b.range_mut(start, end).iter_mut().enumerate() {
            at_env(start + k, slot.reset())?;
        }
        Ok(())
    })
}

unsafe extern "C" fn step<E: Env>(h: Handle, start: usize, end: usize, actions: *const i64, rewards: *mut f64,
                                  terminated: *mut u8, truncated: *mut u8, autoreset: u8,
                                  out: *mut FaultOut) -> i32 {
    let b = batch::<E>(h);
    let n = end - start;
    let players = E::PLAYERS;
    let actions = std::slice::from_raw_parts(actions, n);
    let rewards = std::slice::from_raw_parts_mut(rewards, n * players);
    let terminated = std::slice::from_raw_parts_mut(terminated, n);
    let truncated = std::slice::from_raw_parts_mut(truncated, n);
    guarded(out, || {
        for (k, slot) in b.range_mut(start, end).iter_mut().enumerate() {
            let r = &mut rewards[k * players..(k + 1) * players];
            let o = at_env(start + k, slot.step_with(actions[k], r, autoreset & 1 != 0, autoreset & 2 != 0))?;
            terminated[k] = o.terminated as u8;
            truncated[k] = o.truncated as u8;
        }
        Ok(())
    })
}

unsafe extern "C" fn step_values<E: Env>(h: Handle, start: usize, end: usize, values: *const f64, rewards: *mut f64,
                                         terminated: *mut u8, truncated: *mut u8, autoreset: u8,
                                         out: *mut FaultOut) -> i32 {
    let b = batch::<E>(h);
    let n = end - start;
    let dims = b.lows.len();
    let players = E::PLAYERS;
    let values = std::slice::from_raw_parts(values, n * dims);
    let rewards = std::slice::from_raw_parts_mut(rewards, n * players);
    let terminated = std::slice::from_raw_parts_mut(terminated, n);
    let truncated = std::slice::from_raw_parts_mut(truncated, n);
    guarded(out, || {
        for (k, slot) in b.range_mut(start, end).iter_mut().enumerate() {
            let r = &mut rewards[k * players..(k + 1) * players];
            let v = &values[k * dims..(k + 1) * dims];
            let o = at_env(start + k, slot.step_values(v, &b.lows, &b.highs, r, autoreset != 0))?;
            terminated[k] = o.terminated as u8;
            truncated[k] = o.truncated as u8;
        }
        Ok(())
    })
}

unsafe extern "C" fn observe<E: Env>(h: Handle, start: usize, end: usize, obs: *mut f32, out: *mut FaultOut) -> i32 {
    let b = batch::<E>(h);
    guarded(out, || {
        let slots = b.range_mut(start, end);
        let size = slots.first().map(|s| s.env.obs_size()).unwrap_or(0);
        let obs = std::slice::from_raw_parts_mut(obs, slots.len() * size);
        for (k, slot) in slots.iter().enumerate() {
            at_env(start + k, slot.env.observe_dense(&mut obs[k * size..(k + 1) * size]))?;
        }
        Ok(())
    })
}

unsafe extern "C" fn observe_sparse<E: Env>(h: Handle, start: usize, end: usize, idx: *mut u32, counts: *mut u32,
                                            out: *mut FaultOut) -> i32 {
    let b = batch::<E>(h);
    guarded(out, || {
        let slots = b.range_mut(start, end);
        let nnz = slots.first().map(|s| s.env.obs_nnz_max()).unwrap_or(0);
        let idx = std::slice::from_raw_parts_mut(idx, slots.len() * nnz);
        let counts = std::slice::from_raw_parts_mut(counts, slots.len());
        for (k, slot) in slots.iter().enumerate() {
            let n = at_env(start + k, slot.env.observe_sparse(&mut idx[k * nnz..(k + 1) * nnz]))?;
            counts[k] = n as u32;
        }
        Ok(())
    })
}

unsafe extern "C" fn masks<E: Env>(h: Handle, start: usize, end: usize, out_masks: *mut u8, out: *mut FaultOut) -> i32 {
    let b = batch::<E>(h);
    guarded(out, || {
        let slots = b.range_mut(start, end);
        let n = slots.first().map(|s| if E::CONTINUOUS { 0 } else { s.env.num_actions() }).unwrap_or(0);
        let dst = std::slice::from_raw_parts_mut(out_masks as *mut bool, slots.len() * n);
        for (k, slot) in slots.iter().enumerate() {
            at_env(start + k, slot.env.legal(&mut dst[k * n..(k + 1) * n]))?;
        }
        Ok(())
    })
}

unsafe extern "C" fn status<E: Env>(h: Handle, start: usize, end: usize, success: *mut u8, player: *mut i64,
                                    steps: *mut i64, over: *mut u8, out: *mut FaultOut) -> i32 {
    let b = batch::<E>(h);
    guarded(out, || {
        let slots = b.range_mut(start, end);
        let n = slots.len();
        let (success, player) = (std::slice::from_raw_parts_mut(success, n), std::slice::from_raw_parts_mut(player, n));
        let (steps, over) = (std::slice::from_raw_parts_mut(steps, n), std::slice::from_raw_parts_mut(over, n));
        for (k, slot) in slots.iter().enumerate() {
            success[k] = at_env(start + k, slot.env.success())? as u8;
            player[k] = slot.env.player() as i64;
            steps[k] = slot.env.steps();
            over[k] = slot.over as u8;
        }
        Ok(())
    })
}

unsafe extern "C" fn render<E: Env>(h: Handle, i: usize, buf: *mut u8, cap: usize, len: *mut usize,
                                    out: *mut FaultOut) -> i32 {
    let b = batch::<E>(h);
    guarded(out, || {
        let text = at_env(i, b.slot(i).env.render())?;
        *len = text.len();
        if text.len() <= cap {
            std::slice::from_raw_parts_mut(buf, text.len()).copy_from_slice(text.as_bytes());
        }
        Ok(())
    })
}

unsafe extern "C" fn get_state<E: Env>(h: Handle, i: usize, values: *mut f64, out: *mut FaultOut) -> i32 {
    let b = batch::<E>(h);
    guarded(out, || {
        let env = &b.slot(i).env;
        env.get_state(std::slice::from_raw_parts_mut(values, env.state_len()));
        Ok(())
    })
}

unsafe extern "C" fn set_state<E: Env>(h: Handle, i: usize, values: *const f64, n: usize, out: *mut FaultOut) -> i32 {
    let b = batch::<E>(h);
    guarded(out, || {
        let slot = &mut b.range_mut(i, i + 1)[0];
        let mut env = slot.env.clone();
        at_env(i, env.set_state(std::slice::from_raw_parts(values, n)))?;
        // Like a reset, a set state starts an episode: endings are judged after steps.
        slot.env = env;
        slot.forget_mask();
        slot.over = false;
        Ok(())
    })
}

unsafe extern "C" fn copy_env<E: Env>(src: Handle, i: usize, dst: Handle, j: usize, out: *mut FaultOut) -> i32 {
    guarded(out, || {
        if src == dst && i == j {
            return Ok(());
        }
        // Distinct slots (of one batch or two): copied in place, into the target's buffers.
        let from: *const crate::batch::Slot<E> = &batch::<E>(src).range_mut(i, i + 1)[0];
        batch::<E>(dst).range_mut(j, j + 1)[0].clone_from(&*from);
        Ok(())
    })
}

unsafe extern "C" fn random_steps<E: Env>(h: Handle, start: usize, end: usize, steps: u64, seed: u64,
                                          observe: u8, stats: *mut RolloutStats, out: *mut FaultOut) -> i32 {
    let b = batch::<E>(h);
    guarded(out, || {
        let mut total = RolloutStats::default();
        let slots = b.range_mut(start, end);
        let mut scratch = vec![0.0f32; if observe != 0 { slots.first().map(|s| s.env.obs_size()).unwrap_or(0) } else { 0 }];
        for (k, slot) in slots.iter_mut().enumerate() {
            let i = start + k;
            let mut rng = crate::rng::Rng::for_purpose(seed, crate::rng::Purpose::Actions, i as u64);
            let obs = if observe != 0 { Some(&mut scratch[..]) } else { None };
            at_env(i, slot.random_steps(steps, &mut rng, &b.lows, &b.highs, &mut total, obs))?;
        }
        *stats = total;
        Ok(())
    })
}

unsafe extern "C" fn random_episodes<E: Env>(h: Handle, start: usize, end: usize, episodes: *const u64, max_len: u64,
                                             seed: u64, stats: *mut RolloutStats, out: *mut FaultOut) -> i32 {
    let b = batch::<E>(h);
    guarded(out, || {
        let mut total = RolloutStats::default();
        let episodes = std::slice::from_raw_parts(episodes, end - start);
        for (k, slot) in b.range_mut(start, end).iter_mut().enumerate() {
            let i = start + k;
            let mut rng = crate::rng::Rng::for_purpose(seed, crate::rng::Purpose::Actions, i as u64);
            at_env(i, slot.random_episodes(episodes[k], max_len, &mut rng, &b.lows, &b.highs, &mut total))?;
        }
        *stats = total;
        Ok(())
    })
}

unsafe extern "C" fn action_label<E: Env>(h: Handle, i: usize, action: usize, buf: *mut u8, cap: usize,
                                          len: *mut usize) -> i32 {
    guarded(std::ptr::null_mut(), || {
        let text = batch::<E>(h).slot(i).env.action_label(action);
        *len = text.len();
        if text.len() <= cap {
            std::slice::from_raw_parts_mut(buf, text.len()).copy_from_slice(text.as_bytes());
        }
        Ok(())
    })
}

/// One pass per env: step (discrete `actions` or continuous `values`), then write the
/// new observation, mask and status. `success` is read before any auto-reset.
unsafe extern "C" fn step_observe<E: Env>(h: Handle, start: usize, end: usize, actions: *const i64,
                                          values: *const f64, flags: u8, outs: *const StepOutputs,
                                          out: *mut FaultOut) -> i32 {
    let b = batch::<E>(h);
    let o = *outs;
    guarded(out, || {
        let slots = b.range_mut(start, end);
        let players = E::PLAYERS;
        let dims = b.lows.len();
        let (obs_size, n_actions) = match slots.first() {
            Some(s) => (s.env.obs_size(), if E::CONTINUOUS { 0 } else { s.env.num_actions() }),
            None => return Ok(()),
        };
        let autoreset = flags & STEP_AUTORESET != 0;
        let noop = flags & STEP_ILLEGAL_NOOP != 0;
        for (k, slot) in slots.iter_mut().enumerate() {
            let i = start + k;
            let rewards = std::slice::from_raw_parts_mut(o.rewards.add(k * players), players);
            let result = if E::CONTINUOUS {
                let v = std::slice::from_raw_parts(values.add(k * dims), dims);
                slot.step_values(v, &b.lows, &b.highs, rewards, false)
            } else {
                slot.step_with(*actions.add(k), rewards, false, noop)
            };
            let step = at_env(i, result)?;
            if !o.success.is_null() {
                *o.success.add(k) = at_env(i, slot.env.success())? as u8;
            }
            if autoreset && (step.terminated || step.truncated) {
                at_env(i, slot.reset())?;
            }
            *o.terminated.add(k) = step.terminated as u8;
            *o.truncated.add(k) = step.truncated as u8;
            if !o.obs.is_null() {
                let dst = std::slice::from_raw_parts_mut(o.obs.add(k * obs_size), obs_size);
                at_env(i, slot.env.observe_dense(dst))?;
            }
            if !o.masks.is_null() && n_actions > 0 {
                let dst = std::slice::from_raw_parts_mut(o.masks.add(k * n_actions) as *mut bool, n_actions);
                at_env(i, slot.legal_into(dst))?;
            }
            if !o.player.is_null() {
                *o.player.add(k) = slot.env.player() as i64;
            }
        }
        Ok(())
    })
}

unsafe extern "C" fn rollout<E: Env>(h: Handle, i: usize, player: u32, limit: u64, rng: *mut u64, total: *mut f64,
                                     out: *mut FaultOut) -> i32 {
    let b = batch::<E>(h);
    guarded(out, || {
        let state = std::slice::from_raw_parts_mut(rng, 4);
        let mut stream = crate::rng::Rng::from_state([state[0], state[1], state[2], state[3]]);
        let result = b.range_mut(i, i + 1)[0].rollout(player as usize, limit, &mut stream);
        state.copy_from_slice(&stream.state());
        *total = match result {
            // The host's request to stop is no fault of this env.
            Err(f) if f.kind == FaultKind::Interrupted => return Err((usize::MAX, f)),
            r => at_env(i, r)?,
        };
        Ok(())
    })
}

unsafe extern "C" fn search<E: Env>(games: Handle, slot: usize, scratch: Handle, options: *const AgentOptions,
                                    seed: u64, outs: *const SearchOutputs, out: *mut FaultOut,
                                    message: *mut MessageOut) -> i32 {
    let mut refused = None;
    let code = guarded(out, || {
        // SAFETY: the host holds both batches, which are distinct, for the whole call.
        let (games, scratch) = (&mut *(games as *mut Batch<E>), &mut *(scratch as *mut Batch<E>));
        let found = Agent::new(*options, None, Vec::new(), &games.layout())
            .map_err(Error::Invalid)
            .and_then(|agent| crate::search::search_here(games, slot, scratch, &agent, seed));
        let found = match found {
            Ok(found) => found,
            Err(Error::Fault { fault, env }) => return Err((env.unwrap_or(usize::MAX), fault)),
            Err(Error::Invalid(why)) => {
                refused = Some(why);
                return Ok(());
            }
        };
        let o = *outs;
        let n = found.visits.len();
        std::slice::from_raw_parts_mut(o.visits, n).copy_from_slice(&found.visits);
        std::slice::from_raw_parts_mut(o.priors, n).copy_from_slice(&found.priors);
        std::slice::from_raw_parts_mut(o.q, n).copy_from_slice(&found.q);
        *o.value = found.value;
        *o.best = found.best.map_or(-1, i64::from);
        Ok(())
    });
    match refused {
        Some(why) => {
            let m = &mut *message;
            m.len = why.len();
            let fits = why.len().min(m.cap);
            std::slice::from_raw_parts_mut(m.ptr, fits).copy_from_slice(&why.as_bytes()[..fits]);
            REFUSED
        }
        None => code,
    }
}

unsafe extern "C" fn state_lengths<E: Env>(h: Handle, i: usize, out_lengths: *mut usize, n: usize,
                                           out: *mut FaultOut) -> i32 {
    let b = batch::<E>(h);
    guarded(out, || {
        b.slot(i).env.state_lengths(std::slice::from_raw_parts_mut(out_lengths, n));
        Ok(())
    })
}

unsafe extern "C" fn reseed_rng<E: Env>(h: Handle, i: usize, seed: u64, out: *mut FaultOut) -> i32 {
    let b = batch::<E>(h);
    guarded(out, || {
        b.range_mut(i, i + 1)[0].env.reseed_rng(seed);
        Ok(())
    })
}

unsafe extern "C" fn ends_here<E: Env>(h: Handle, i: usize, ended: *mut u8, out: *mut FaultOut) -> i32 {
    let b = batch::<E>(h);
    guarded(out, || {
        let env = &b.slot(i).env;
        *ended = (at_env(i, env.terminated())? || at_env(i, env.truncated())?) as u8;
        Ok(())
    })
}

unsafe extern "C" fn set_step_limit<E: Env>(h: Handle, start: usize, end: usize, limit: i64) {
    for slot in batch::<E>(h).range_mut(start, end) {
        slot.step_limit = limit.max(0);
    }
}

extern "C" fn set_interrupt_flag(flag: *const AtomicBool) {
    crate::ops::set_interrupt_flag(flag);
}

unsafe extern "C" fn twist<E: Env>(h: Handle, i: usize, k: usize, obs: *mut u32, act: *mut u32,
                                   out: *mut FaultOut) -> i32 {
    let b = batch::<E>(h);
    guarded(out, || {
        let env = &b.slot(i).env;
        let n_act = if E::CONTINUOUS { 0 } else { env.num_actions() };
        let obs = std::slice::from_raw_parts_mut(obs, env.obs_size());
        let act = std::slice::from_raw_parts_mut(act, n_act);
        at_env(i, env.twist(k, obs, act))
    })
}
