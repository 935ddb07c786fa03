//! `collect`: PPO rollouts (`twisterl_core::rollout`) on a batch's threads, as numpy arrays.

use numpy::{Element, PyArray1, PyArrayMethods, PyReadonlyArray1, PyUntypedArrayMethods};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyDict;
use twisterl_core::batch::RolloutStats;
use twisterl_core::host::Host;
use twisterl_core::rollout::{collect as collect_range, Collect, Rollout};
use twisterl_core::twist::Twist;

use crate::batch::{chunks, Batch};
use crate::error::{invalid, to_py};
use crate::policy::Policy;

/// One field of every range's rollout as one numpy array, `[steps, num_envs]`, or
/// `[steps, num_envs, width]` with a `width`.
fn stack<'py, T: Element + Copy>(
    py: Python<'py>, parts: &mut [(usize, Rollout)], field: fn(&mut Rollout) -> &mut Vec<T>, steps: usize, n: usize,
    width: Option<usize>,
) -> PyResult<Bound<'py, PyAny>> {
    let w = width.unwrap_or(1);
    let full = if let [(_, only)] = parts {
        std::mem::take(field(only))
    } else {
        let mut full = Vec::with_capacity(steps * n * w);
        for step in 0..steps {
            for (m, part) in parts.iter_mut() {
                full.extend_from_slice(&field(part)[step * *m * w..(step + 1) * *m * w]);
            }
        }
        full
    };
    let array = PyArray1::from_vec(py, full);
    Ok(match width {
        None => array.reshape([steps, n])?.into_any(),
        Some(w) => array.reshape([steps, n, w])?.into_any(),
    })
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
/// rewards the advantages and returns are computed from. See `twisterl_core::rollout`.
#[pyfunction]
#[pyo3(signature = (batch, policy, steps, seed, gamma=0.99, lam=0.95, deterministic=false, twists=None, log_std=None,
                    reward_scale=1.0, opponent=None, seats=None, pool_prob=0.0))]
#[allow(clippy::too_many_arguments)]
pub fn collect<'py>(
    py: Python<'py>, batch: &Batch, policy: &Policy, steps: usize, seed: u64, gamma: f32, lam: f32,
    deterministic: bool, twists: Option<Vec<(PyReadonlyArray1<'py, u32>, PyReadonlyArray1<'py, u32>)>>,
    log_std: Option<PyReadonlyArray1<'py, f32>>, reward_scale: f32, opponent: Option<PyRef<'py, Policy>>,
    seats: Option<Bound<'py, PyArray1<i64>>>, pool_prob: f64,
) -> PyResult<Bound<'py, PyDict>> {
    let (l, n) = (batch.layout, batch.sizes.num_envs);
    if l.players == 1 && seats.is_some() {
        return Err(PyValueError::new_err("an opponent and seats are for two-player games"));
    }
    let twists = twists
        .unwrap_or_default()
        .iter()
        .map(|(o, a)| {
            Ok(invalid(Twist::new(o.as_slice()?.to_vec(), a.as_slice()?.to_vec(), l.obs_size, l.num_actions))?)
        })
        .collect::<PyResult<Vec<Twist>>>()?;
    let log_std = log_std.map(|ls| ls.as_slice().map(<[f32]>::to_vec)).transpose()?;
    let cfg = Collect {
        steps,
        seed,
        gamma,
        lam,
        deterministic,
        twists: &twists,
        log_std: log_std.as_deref(),
        reward_scale,
        opponent: opponent.as_deref().map(|p| &p.inner),
        pool_prob,
    };
    invalid(cfg.check(&l, &policy.inner))?;
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
    let seat_slice = match seats_rw.as_mut() {
        Some(rw) => rw.as_slice_mut()?,
        None => &mut own_seats[..],
    };
    if seat_slice.iter().any(|&x| !(-1..=1).contains(&x)) {
        return Err(PyValueError::new_err("each entry of seats must be -1 (self-play), 0 or 1"));
    }
    let mut held = batch.enter(py)?;
    let inner = &mut *held;
    let views = inner.envs.split(0..n, batch.threads()).map_err(to_py)?;
    let parts: Vec<_> = chunks(&mut inner.episode_returns, &views, 1)
        .into_iter()
        .zip(chunks(seat_slice, &views, 1))
        .collect();
    let policy = &policy.inner;
    let mut rollouts = batch.parallel(py, views, parts, |v, (returns, seats)| {
        Ok((v.envs().len(), collect_range(v, policy, &cfg, returns, seats)?))
    })?;
    drop(held);
    let stats = rollouts.iter().fold(RolloutStats::default(), |mut t, (_, r)| {
        t.add(&r.stats);
        t
    });
    let sparse = l.sparse();
    let wide = |on: bool, w: usize| Some(if on { w } else { 0 });
    let r = &mut rollouts[..];
    let d = PyDict::new(py);
    d.set_item("obs", stack(py, r, |r| &mut r.obs, steps, n, wide(!sparse, l.obs_size))?)?;
    d.set_item("obs_indices", stack(py, r, |r| &mut r.indices, steps, n, wide(sparse, l.nnz_max))?)?;
    d.set_item("obs_counts", stack(py, r, |r| &mut r.counts, steps, n, None)?)?;
    d.set_item("masks", stack(py, r, |r| &mut r.masks, steps, n, Some(l.mask_width()))?)?;
    d.set_item("actions", stack(py, r, |r| &mut r.actions, steps, n, None)?)?;
    d.set_item("action_values", stack(py, r, |r| &mut r.action_values, steps, n, wide(l.continuous, l.num_actions))?)?;
    d.set_item("logp", stack(py, r, |r| &mut r.logp, steps, n, None)?)?;
    d.set_item("values", stack(py, r, |r| &mut r.values, steps, n, None)?)?;
    d.set_item("rewards", stack(py, r, |r| &mut r.rewards, steps, n, None)?)?;
    d.set_item("dones", stack(py, r, |r| &mut r.dones, steps, n, None)?)?;
    d.set_item("advantages", stack(py, r, |r| &mut r.advantages, steps, n, None)?)?;
    d.set_item("returns", stack(py, r, |r| &mut r.returns, steps, n, None)?)?;
    d.set_item("player", stack(py, r, |r| &mut r.player, steps, n, None)?)?;
    d.set_item("learn", stack(py, r, |r| &mut r.learn, steps, n, None)?)?;
    d.set_item("episodes", stats.episodes)?;
    d.set_item("successes", stats.successes)?;
    d.set_item("return_sum", stats.return_sum)?;
    d.set_item("length_sum", stats.length_sum)?;
    Ok(d)
}
