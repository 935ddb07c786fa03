//! Rollout collection for PPO: the policy and the envs run in Rust, batched.
//!
//! Each thread owns a contiguous range of envs and runs `steps` time steps on it: observe,
//! one batched forward pass, masked sampling, one batched step, then GAE(λ) at the end.
//! Truncated episodes are bootstrapped with the value of their final state; terminated
//! ones are not. Nothing calls back into Python.
//!
//! Two-player zero-sum games (self-play): each row is a decision of the player to move, with
//! that player's reward and the value from that player's view. Returns chain with a sign:
//! `G_t = r_t + γ s_t G_{t+1}`, `s_t = +1` when the same player moves again after step t and
//! −1 otherwise, and GAE likewise (`δ_t = r_t + γ s_t V_{t+1} − V_t`, `A_t = δ_t + γλ s_t A_{t+1}`).
//! For single-player envs `s_t = +1`, which is the usual GAE. With an `opponent` policy, an
//! env that starts an episode plays against it with probability `pool_prob`, the learner in a
//! random seat; the opponent's rows are sampled from its network, their values are still the
//! learner's critic's (so the sign chain holds), and they are marked not-for-learning.
//!
//! Discrete actions are drawn from the masked softmax of the policy head. Continuous ones
//! are drawn from a diagonal Gaussian: the policy head gives the means and `log_std` the
//! log standard deviations; the env clips the draw to its bounds, and the unclipped draw
//! is what is recorded and scored.

use numpy::{PyArray1, PyArray2, PyArray3, PyArrayMethods, PyReadonlyArray1, PyUntypedArrayMethods};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyDict;
use rayon::prelude::*;
use twisterl_core::abi::{FaultOut, Handle, PluginV1};
use twisterl_core::policy::{sample_masked, Input, Workspace};
use twisterl_core::rng::{Purpose, Rng};

use crate::batch::Batch;
use crate::error::fault_error;
use crate::policy::Policy;

/// Pointers to the output arrays, `[steps, num_envs, ...]`, as plain addresses.
#[derive(Clone, Copy)]
struct Out {
    obs: usize,
    idx: usize,
    counts: usize,
    masks: usize,
    actions: usize,
    action_values: usize,
    logp: usize,
    values: usize,
    rewards: usize,
    dones: usize,
    advantages: usize,
    returns: usize,
    player: usize,
    learn: usize,
}

#[derive(Default, Clone, Copy)]
struct Stats {
    episodes: u64,
    successes: u64,
    return_sum: f64,
    length_sum: u64,
}

/// One symmetry: feature `i` becomes `obs[i]`, action `a` becomes `act[a]`; `back` undoes `act`.
pub struct Twist {
    obs: Vec<u32>,
    act: Vec<u32>,
    back: Vec<u32>,
}

struct Shape {
    n: usize,
    steps: usize,
    obs: usize,
    nnz: usize,
    actions: usize,
    sparse: bool,
    /// Continuous actions: `actions` values per step, drawn with these log std devs.
    log_std: Option<Vec<f32>>,
    /// Rewards are multiplied by this before GAE (episode returns stay unscaled).
    reward_scale: f32,
    /// Two-player envs: the chance that an episode is played against the opponent.
    pool_prob: f64,
}

fn check(status: i32, out: &FaultOut) -> Result<(), FaultOut> {
    if status == 0 { Ok(()) } else { Err(*out) }
}

/// Collect `steps` transitions from envs `start..end`.
#[allow(clippy::too_many_arguments)]
unsafe fn collect_range(t: &PluginV1, h: Handle, policy: &Policy, shape: &Shape, start: usize, end: usize,
                        o: Out, returns_so_far: usize, twists: &[Twist], seed: u64, gamma: f32, lam: f32,
                        deterministic: bool, opponent: Option<&Policy>, seats: usize) -> Result<Stats, FaultOut> {
    let (n, m) = (shape.n, end - start);
    let mut out = FaultOut::empty();
    let mut stats = Stats::default();
    let mut ws = Workspace::default();
    let a = shape.actions;
    let mut logits = vec![0.0f32; m * a];
    let mut values = vec![0.0f32; m];
    let mut obs = vec![0.0f32; m * shape.obs];
    let mut idx = vec![0u32; m * shape.nnz];
    let mut counts = vec![0u32; m];
    let mut mask = vec![0u8; m * a];
    let mut actions = vec![0i64; m];
    let mut action_values = vec![0.0f64; if shape.log_std.is_some() { m * a } else { 0 }];
    let mut rewards = vec![0.0f64; m * 16];
    let (mut term, mut trunc) = (vec![0u8; m], vec![0u8; m]);
    let (mut success, mut player, mut steps_done, mut over) = (vec![0u8; m], vec![0i64; m], vec![0i64; m], vec![0u8; m]);
    let players = t.players as usize;
    // The player to move at each row, and the sign that chains its return to the next row's.
    let mut mover = vec![0i64; m];
    let mut sign = vec![1.0f32; shape.steps * m];
    let mut opp_logits = vec![0.0f32; if opponent.is_some() { m * a } else { 0 }];
    let mut opp_values = vec![0.0f32; if opponent.is_some() { m } else { 0 }];
    let mut opp_ws = Workspace::default();
    // This range's slice of the learner's seats: -1 self-play, else the seat against the opponent.
    let seat = std::slice::from_raw_parts_mut((seats as *mut i64).add(start), m);
    let mut final_value = vec![0.0f32; shape.steps * m];
    let mut truncated_at = vec![false; shape.steps * m];
    // This range's slice of the batch's running episode returns (disjoint per thread).
    let episode_return = std::slice::from_raw_parts_mut((returns_so_far as *mut f64).add(start), m);
    let mut rngs: Vec<Rng> = (start..end).map(|i| Rng::for_purpose(seed, Purpose::Sampling, i as u64)).collect();
    let mut chosen = vec![0usize; m];
    let mut scratch = vec![0.0f32; shape.obs];
    let mut mask_scratch = vec![0u8; a];

    let observe = |obs: &mut [f32], idx: &mut [u32], counts: &mut [u32], out: &mut FaultOut| -> Result<(), FaultOut> {
        if shape.sparse {
            check((t.observe_sparse)(h, start, end, idx.as_mut_ptr(), counts.as_mut_ptr(), out), out)
        } else {
            check((t.observe)(h, start, end, obs.as_mut_ptr(), out), out)
        }
    };
    let forward = |ws: &mut Workspace, obs: &[f32], idx: &[u32], counts: &[u32], logits: &mut [f32], values: &mut [f32]| {
        let input = if shape.sparse {
            Input::Sparse { indices: idx, counts, stride: shape.nnz }
        } else {
            Input::Dense { x: obs, width: shape.obs }
        };
        policy.inner.forward(input, m, logits, values, ws);
    };
    let forward_opponent = |ws: &mut Workspace, obs: &[f32], idx: &[u32], counts: &[u32], logits: &mut [f32],
                            values: &mut [f32]| {
        let input = if shape.sparse {
            Input::Sparse { indices: idx, counts, stride: shape.nnz }
        } else {
            Input::Dense { x: obs, width: shape.obs }
        };
        if let Some(p) = opponent {
            p.inner.forward(input, m, logits, values, ws);
        }
    };

    for step in 0..shape.steps {
        if crate::interrupt::requested() {
            return Err(crate::error::interrupted_fault());
        }
        observe(&mut obs, &mut idx, &mut counts, &mut out)?;
        if players > 1 {
            check((t.status)(h, start, end, success.as_mut_ptr(), mover.as_mut_ptr(), steps_done.as_mut_ptr(),
                             over.as_mut_ptr(), &mut out), &out)?;
        }
        if shape.log_std.is_none() {
            check((t.masks)(h, start, end, mask.as_mut_ptr(), &mut out), &out)?;
        }
        // A random twist per env and step (0 = none): the policy sees, and learns from,
        // the twisted observation and mask; its action is untwisted for the env.
        for k in 0..m {
            chosen[k] = if twists.is_empty() { 0 } else { rngs[k].below(twists.len() as u64 + 1) as usize };
            if chosen[k] == 0 {
                continue;
            }
            let tw = &twists[chosen[k] - 1];
            if shape.sparse {
                for x in &mut idx[k * shape.nnz..k * shape.nnz + counts[k] as usize] {
                    *x = tw.obs[*x as usize];
                }
            } else {
                scratch.copy_from_slice(&obs[k * shape.obs..(k + 1) * shape.obs]);
                for (i, &v) in scratch.iter().enumerate() {
                    obs[k * shape.obs + tw.obs[i] as usize] = v;
                }
            }
            mask_scratch.copy_from_slice(&mask[k * a..(k + 1) * a]);
            for (i, &v) in mask_scratch.iter().enumerate() {
                mask[k * a + tw.act[i] as usize] = v;
            }
        }
        forward(&mut ws, &obs, &idx, &counts, &mut logits, &mut values);
        // The opponent's turn in an env playing against it: its network picks the move.
        let opp_turn = |k: usize| opponent.is_some() && seat[k] >= 0 && seat[k] != mover[k];
        if (0..m).any(opp_turn) {
            forward_opponent(&mut opp_ws, &obs, &idx, &counts, &mut opp_logits, &mut opp_values);
        }
        for k in 0..m {
            let row = step * n + start + k;
            *(o.player as *mut i64).add(row) = mover[k];
            *(o.learn as *mut u8).add(row) = !opp_turn(k) as u8;
        }
        if let Some(log_std) = &shape.log_std {
            for k in 0..m {
                let row = step * n + start + k;
                let mut lp = 0.0f32;
                for j in 0..a {
                    let mean = logits[k * a + j];
                    let z = if deterministic { 0.0 } else { rngs[k].normal() as f32 };
                    let v = mean + log_std[j].exp() * z;
                    lp += -0.5 * z * z - log_std[j] - 0.5 * (2.0 * std::f32::consts::PI).ln();
                    action_values[k * a + j] = v as f64;
                    *(o.action_values as *mut f32).add(row * a + j) = v;
                }
                *(o.logp as *mut f32).add(row) = lp;
                *(o.values as *mut f32).add(row) = values[k];
            }
        } else {
            for k in 0..m {
                let legal: &[bool] = std::slice::from_raw_parts(mask.as_ptr().add(k * a) as *const bool, a);
                let source = if opp_turn(k) { &opp_logits } else { &logits };
                let (action, lp) = sample_masked(&source[k * a..(k + 1) * a], legal, &mut rngs[k], deterministic);
                actions[k] = if chosen[k] == 0 { action as i64 } else { twists[chosen[k] - 1].back[action] as i64 };
                let row = step * n + start + k;
                *(o.actions as *mut i64).add(row) = action as i64; // in the frame the policy saw
                *(o.logp as *mut f32).add(row) = lp;
                *(o.values as *mut f32).add(row) = values[k];
            }
        }
        // Save what the policy saw.
        let row0 = step * n + start;
        if shape.sparse {
            std::ptr::copy_nonoverlapping(idx.as_ptr(), (o.idx as *mut u32).add(row0 * shape.nnz), m * shape.nnz);
            std::ptr::copy_nonoverlapping(counts.as_ptr(), (o.counts as *mut u32).add(row0), m);
        } else {
            std::ptr::copy_nonoverlapping(obs.as_ptr(), (o.obs as *mut f32).add(row0 * shape.obs), m * shape.obs);
        }
        if shape.log_std.is_none() {
            std::ptr::copy_nonoverlapping(mask.as_ptr(), (o.masks as *mut u8).add(row0 * a), m * a);
        }

        if shape.log_std.is_some() {
            check((t.step_values)(h, start, end, action_values.as_ptr(), rewards.as_mut_ptr(), term.as_mut_ptr(),
                                  trunc.as_mut_ptr(), 0, &mut out), &out)?;
        } else {
            check((t.step)(h, start, end, actions.as_ptr(), rewards.as_mut_ptr(), term.as_mut_ptr(), trunc.as_mut_ptr(),
                           0, &mut out), &out)?;
        }
        check((t.status)(h, start, end, success.as_mut_ptr(), player.as_mut_ptr(), steps_done.as_mut_ptr(),
                         over.as_mut_ptr(), &mut out), &out)?;
        let mut any_truncated = false;
        for k in 0..m {
            // (A mover outside 0..players cannot come from the generated envs; clamped to stay in bounds.)
            let r = rewards[k * players + (mover[k].max(0) as usize).min(players - 1)];
            let row = step * n + start + k;
            if players > 1 && player[k] != mover[k] {
                sign[step * m + k] = -1.0;
            }
            *(o.rewards as *mut f32).add(row) = r as f32 * shape.reward_scale;
            let done = term[k] != 0 || trunc[k] != 0;
            *(o.dones as *mut u8).add(row) = done as u8;
            // The learner's return: its seat against an opponent, else player 0's.
            episode_return[k] += rewards[k * players + seat[k].max(0) as usize];
            if done {
                stats.episodes += 1;
                stats.successes += success[k] as u64;
                stats.return_sum += episode_return[k];
                stats.length_sum += steps_done[k] as u64;
                episode_return[k] = 0.0;
                if trunc[k] != 0 && term[k] == 0 {
                    truncated_at[step * m + k] = true;
                    any_truncated = true;
                }
            }
        }
        if any_truncated {
            // Bootstrap truncated episodes from the value of their final state.
            observe(&mut obs, &mut idx, &mut counts, &mut out)?;
            forward(&mut ws, &obs, &idx, &counts, &mut logits, &mut values);
            for k in 0..m {
                if truncated_at[step * m + k] {
                    final_value[step * m + k] = values[k];
                }
            }
        }
        for k in 0..m {
            if term[k] != 0 || trunc[k] != 0 {
                check((t.reset)(h, start + k, start + k + 1, &mut out), &out)?;
                // A new episode: against the opponent (the learner in a random seat), or self-play.
                seat[k] = -1;
                if opponent.is_some() && rngs[k].next_f64() < shape.pool_prob {
                    seat[k] = rngs[k].below(players as u64) as i64;
                }
            }
        }
    }
    // The value of the state after the last step, then GAE backwards in time.
    observe(&mut obs, &mut idx, &mut counts, &mut out)?;
    forward(&mut ws, &obs, &idx, &counts, &mut logits, &mut values);
    for k in 0..m {
        let mut next_value = values[k];
        let mut gae = 0.0f32;
        for step in (0..shape.steps).rev() {
            let row = step * n + start + k;
            let v = *(o.values as *const f32).add(row);
            let r = *(o.rewards as *const f32).add(row);
            let done = *(o.dones as *const u8).add(row) != 0;
            let s = sign[step * m + k];
            let bootstrap = if done {
                if truncated_at[step * m + k] { final_value[step * m + k] } else { 0.0 }
            } else {
                next_value
            };
            let delta = r + gamma * (s * bootstrap) - v;
            gae = delta + if done { 0.0 } else { gamma * lam * (s * gae) };
            *(o.advantages as *mut f32).add(row) = gae;
            *(o.returns as *mut f32).add(row) = gae + v;
            next_value = v;
        }
    }
    Ok(stats)
}

/// Collect `steps` transitions from every env of `batch` with `policy` (single-player envs,
/// or two-player zero-sum games by self-play). Returns a dict of numpy arrays
/// `[steps, num_envs, ...]` and episode statistics; `player` is the player who moved at each
/// row and `learn` whether the learner made that move (false for the opponent's moves).
///
/// Two-player envs: `opponent` (a policy like `policy`) plays against the learner in the envs
/// whose entry of `seats` (int64, one per env, kept between calls) is the learner's seat (0 or
/// 1); -1 is self-play. Whenever an env starts a new episode its entry is drawn again: the
/// learner's seat with probability `pool_prob` (when an opponent is given), else -1.
///
/// With `twists` (a list of (obs permutation, action permutation) pairs), each env step
/// draws one of them, or none, and the policy acts on the twisted observation. Envs with
/// continuous actions need `log_std`, one per action value. `reward_scale` multiplies the
/// rewards the advantages and returns are computed from.
#[pyfunction]
#[pyo3(signature = (batch, policy, steps, seed, gamma=0.99, lam=0.95, deterministic=false, twists=None, log_std=None,
                    reward_scale=1.0, opponent=None, seats=None, pool_prob=0.0))]
#[allow(clippy::too_many_arguments)]
pub fn collect<'py>(py: Python<'py>, batch: &Batch, policy: &Policy, steps: usize, seed: u64, gamma: f32, lam: f32,
                    deterministic: bool, twists: Option<Vec<(PyReadonlyArray1<'py, u32>, PyReadonlyArray1<'py, u32>)>>,
                    log_std: Option<PyReadonlyArray1<'py, f32>>, reward_scale: f32, opponent: Option<PyRef<'py, Policy>>,
                    seats: Option<Bound<'py, PyArray1<i64>>>, pool_prob: f64) -> PyResult<Bound<'py, PyDict>> {
    let _held = batch.enter(py)?;
    let t = batch.table();
    if t.players != 1 && t.players != 2 {
        return Err(PyValueError::new_err(format!(
            "PPO collection supports single-player envs and two-player games; this env has {} players", t.players)));
    }
    let (n, num_actions, obs_size, nnz, _) = batch.sizes_tuple();
    if t.players == 1 && (opponent.is_some() || seats.is_some()) {
        return Err(PyValueError::new_err("an opponent and seats are for two-player games"));
    }
    if !(0.0..=1.0).contains(&pool_prob) {
        return Err(PyValueError::new_err(format!("pool_prob must be between 0 and 1, not {pool_prob}")));
    }
    if let Some(p) = &opponent {
        if p.inner.inputs != obs_size || p.inner.num_actions != num_actions {
            return Err(PyValueError::new_err(format!(
                "the opponent maps {} features to {} actions, but the env has {obs_size} features and {num_actions} \
                 actions", p.inner.inputs, p.inner.num_actions)));
        }
    }
    let mut own_seats = vec![-1i64; n];
    let mut seats_rw = match &seats {
        Some(s) => {
            let rw = s.try_readwrite().map_err(|_| PyValueError::new_err("seats must be a writable int64 array"))?;
            if rw.len() != n || !rw.is_c_contiguous() {
                return Err(PyValueError::new_err(format!("seats needs one contiguous int64 entry per env ({n})")));
            }
            Some(rw)
        }
        None => None,
    };
    let seats_addr = match seats_rw.as_mut() {
        Some(rw) => {
            let sl = rw.as_slice_mut()?;
            if sl.iter().any(|&x| !(-1..=1).contains(&x)) {
                return Err(PyValueError::new_err("each entry of seats must be -1 (self-play), 0 or 1"));
            }
            sl.as_mut_ptr() as usize
        }
        None => own_seats.as_mut_ptr() as usize,
    };
    let opponent_ref: Option<&Policy> = opponent.as_deref();
    let sparse = t.observation == 0;
    if policy.inner.inputs != obs_size || policy.inner.num_actions != num_actions {
        return Err(PyValueError::new_err(format!(
            "the policy maps {} features to {} actions, but the env has {obs_size} features and {num_actions} actions",
            policy.inner.inputs, policy.inner.num_actions)));
    }
    let continuous = t.continuous != 0;
    let log_std = match (continuous, log_std) {
        (true, Some(ls)) => {
            let ls = ls.as_slice()?.to_vec();
            if ls.len() != num_actions || ls.iter().any(|v| !v.is_finite()) {
                return Err(PyValueError::new_err(format!(
                    "log_std needs {num_actions} finite values, one per action value; got {}", ls.len())));
            }
            Some(ls)
        }
        (true, None) => return Err(PyValueError::new_err("this env has continuous actions: give log_std")),
        (false, Some(_)) => return Err(PyValueError::new_err("log_std is for envs with continuous actions")),
        (false, None) => None,
    };
    if continuous && t.players != 1 {
        return Err(PyValueError::new_err("two-player collection needs discrete actions"));
    }
    if continuous && twists.as_ref().is_some_and(|t| !t.is_empty()) {
        return Err(PyValueError::new_err("twists are for envs with discrete actions"));
    }
    if !(reward_scale.is_finite() && reward_scale > 0.0) {
        return Err(PyValueError::new_err(format!("reward_scale must be a positive number, not {reward_scale}")));
    }
    let shape = Shape { n, steps, obs: obs_size, nnz, actions: num_actions, sparse, log_std, reward_scale,
                        pool_prob };
    let mut twist_list = Vec::new();
    for (obs_perm, act_perm) in twists.unwrap_or_default() {
        let (obs_perm, act) = (obs_perm.as_slice()?.to_vec(), act_perm.as_slice()?.to_vec());
        if obs_perm.len() != obs_size || act.len() != num_actions || !is_permutation(&obs_perm) || !is_permutation(&act) {
            return Err(PyValueError::new_err("each twist must be a permutation of the observation and of the actions"));
        }
        let mut back = vec![0u32; act.len()];
        for (a, &b) in act.iter().enumerate() {
            back[b as usize] = a as u32;
        }
        twist_list.push(Twist { obs: obs_perm, act, back });
    }
    let obs = PyArray3::<f32>::zeros(py, [steps, n, if sparse { 0 } else { obs_size }], false);
    let idx = PyArray3::<u32>::zeros(py, [steps, n, if sparse { nnz } else { 0 }], false);
    let counts = PyArray2::<u32>::zeros(py, [steps, n], false);
    let masks = PyArray3::<bool>::zeros(py, [steps, n, if continuous { 0 } else { num_actions }], false);
    let actions = PyArray2::<i64>::zeros(py, [steps, n], false);
    let action_values = PyArray3::<f32>::zeros(py, [steps, n, if continuous { num_actions } else { 0 }], false);
    let logp = PyArray2::<f32>::zeros(py, [steps, n], false);
    let values = PyArray2::<f32>::zeros(py, [steps, n], false);
    let rewards = PyArray2::<f32>::zeros(py, [steps, n], false);
    let dones = PyArray2::<bool>::zeros(py, [steps, n], false);
    let advantages = PyArray2::<f32>::zeros(py, [steps, n], false);
    let returns = PyArray2::<f32>::zeros(py, [steps, n], false);
    let player = PyArray2::<i64>::zeros(py, [steps, n], false);
    let learn = PyArray2::<bool>::zeros(py, [steps, n], false);
    let o = unsafe {
        Out {
            obs: obs.as_slice_mut()?.as_mut_ptr() as usize,
            idx: idx.as_slice_mut()?.as_mut_ptr() as usize,
            counts: counts.as_slice_mut()?.as_mut_ptr() as usize,
            masks: masks.as_slice_mut()?.as_mut_ptr() as usize,
            actions: actions.as_slice_mut()?.as_mut_ptr() as usize,
            action_values: action_values.as_slice_mut()?.as_mut_ptr() as usize,
            logp: logp.as_slice_mut()?.as_mut_ptr() as usize,
            values: values.as_slice_mut()?.as_mut_ptr() as usize,
            rewards: rewards.as_slice_mut()?.as_mut_ptr() as usize,
            dones: dones.as_slice_mut()?.as_mut_ptr() as usize,
            advantages: advantages.as_slice_mut()?.as_mut_ptr() as usize,
            returns: returns.as_slice_mut()?.as_mut_ptr() as usize,
            player: player.as_slice_mut()?.as_mut_ptr() as usize,
            learn: learn.as_slice_mut()?.as_mut_ptr() as usize,
        }
    };
    let h = batch.handle_addr();
    let ranges = batch.ranges(0, n);
    let mut returns_guard = batch.episode_returns.lock().map_err(|_| PyValueError::new_err("batch state poisoned"))?;
    let returns_so_far = returns_guard.as_mut_ptr() as usize;
    let run = || -> Result<Stats, FaultOut> {
        let body = |&(s, e): &(usize, usize)| unsafe {
            collect_range(t, h as Handle, policy, &shape, s, e, o, returns_so_far, &twist_list, seed, gamma, lam,
                          deterministic, opponent_ref, seats_addr)
        };
        let results: Vec<Result<Stats, FaultOut>> = match batch.pool() {
            Some(pool) => pool.install(|| ranges.par_iter().map(body).collect()),
            None => ranges.iter().map(body).collect(),
        };
        let mut total = Stats::default();
        for r in results {
            let s = r?;
            total.episodes += s.episodes;
            total.successes += s.successes;
            total.return_sum += s.return_sum;
            total.length_sum += s.length_sum;
        }
        Ok(total)
    };
    let stats = py.detach(run).map_err(|f| fault_error(&f));
    drop(returns_guard);
    drop(seats_rw);
    let stats = stats?;
    let d = PyDict::new(py);
    d.set_item("obs", obs)?;
    d.set_item("obs_indices", idx)?;
    d.set_item("obs_counts", counts)?;
    d.set_item("masks", masks)?;
    d.set_item("actions", actions)?;
    d.set_item("action_values", action_values)?;
    d.set_item("logp", logp)?;
    d.set_item("values", values)?;
    d.set_item("rewards", rewards)?;
    d.set_item("dones", dones)?;
    d.set_item("advantages", advantages)?;
    d.set_item("returns", returns)?;
    d.set_item("player", player)?;
    d.set_item("learn", learn)?;
    d.set_item("episodes", stats.episodes)?;
    d.set_item("successes", stats.successes)?;
    d.set_item("return_sum", stats.return_sum)?;
    d.set_item("length_sum", stats.length_sum)?;
    Ok(d)
}

fn is_permutation(p: &[u32]) -> bool {
    let mut seen = vec![false; p.len()];
    p.iter().all(|&x| (x as usize) < seen.len() && !std::mem::replace(&mut seen[x as usize], true))
}
