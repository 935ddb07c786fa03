//! The learner: a policy with its gradients and Adam's moments, and one update step for
//! each loss (a PPO minibatch, an AlphaZero batch), from rows of the data collection gave.

use super::adam::{adam_step, clip_grad_norm, AdamConfig};
use super::loss::{alphazero, ppo_discrete, ppo_gaussian, AzStats, PpoCoefs, PpoStats, PpoTargets};
use super::net::{backward, forward, Tape};
use super::params::{params, params_mut, zeros_like};
use crate::policy::{Input, Policy};

/// What collection gave, every row of it (`N` rows; `A` actions or action values).
#[derive(Clone, Copy, Debug)]
pub struct Rollout<'a> {
    pub obs: Input<'a>,
    /// `[N]`, for discrete actions
    pub actions: &'a [i64],
    /// `[N, A]`, for continuous actions
    pub action_values: &'a [f32],
    /// `[N, A]`, for discrete actions
    pub masks: &'a [bool],
    pub logp: &'a [f32],
    pub advantages: &'a [f32],
    pub returns: &'a [f32],
    pub values: &'a [f32],
}

/// The policy, what training it needs, and buffers reused from step to step.
#[derive(Debug)]
pub struct Learner {
    pub policy: Policy,
    /// The Gaussian policy's learned log standard deviations (continuous actions only).
    pub log_std: Option<Vec<f32>>,
    /// Parameter tensors (in [`params`] order) that training leaves alone, such as an
    /// observation normaliser's.
    pub frozen: Vec<bool>,
    pub adam: AdamConfig,
    /// Clip the gradients' global norm to this (None: no clipping).
    pub max_grad_norm: Option<f64>,
    /// Adam's step count so far.
    pub step: u64,
    pub threads: usize,
    grads: Policy,
    pub(crate) m: Policy,
    pub(crate) v: Policy,
    glog_std: Vec<f32>,
    pub(crate) mlog_std: Vec<f32>,
    pub(crate) vlog_std: Vec<f32>,
    tape: Tape,
    buf: Buffers,
}

#[derive(Default, Debug)]
struct Buffers {
    indices: Vec<u32>,
    counts: Vec<u32>,
    dense: Vec<f32>,
    logits: Vec<f32>,
    values: Vec<f32>,
    dlogits: Vec<f32>,
    dvalues: Vec<f32>,
    floats: [Vec<f32>; 4],
    actions: Vec<usize>,
    taken: Vec<f32>,
    masks: Vec<bool>,
}

impl Learner {
    /// A learner for `policy` (and `log_std` for a Gaussian one); `frozen` has one flag per
    /// parameter tensor, or is empty for none.
    pub fn new(policy: Policy, log_std: Option<Vec<f32>>, frozen: Vec<bool>, adam: AdamConfig,
               max_grad_norm: Option<f64>, threads: usize) -> Result<Learner, String> {
        adam.check()?;
        let tensors = params(&policy).len();
        if !frozen.is_empty() && frozen.len() != tensors {
            return Err(format!("the network has {tensors} parameter tensors; `frozen` has {} flags", frozen.len()));
        }
        if let Some(ls) = &log_std {
            if ls.len() != policy.num_actions {
                return Err(format!("log_std has {} values for {} action values", ls.len(), policy.num_actions));
            }
        }
        if let Some(norm) = max_grad_norm {
            if !(norm > 0.0 && norm.is_finite()) {
                return Err(format!("max_grad_norm must be a positive number, not {norm}"));
            }
        }
        let d = log_std.as_ref().map_or(0, |l| l.len());
        Ok(Learner {
            grads: zeros_like(&policy),
            m: zeros_like(&policy),
            v: zeros_like(&policy),
            frozen: if frozen.is_empty() { vec![false; tensors] } else { frozen },
            glog_std: vec![0.0; d],
            mlog_std: vec![0.0; d],
            vlog_std: vec![0.0; d],
            policy,
            log_std,
            adam,
            max_grad_norm,
            step: 0,
            threads: threads.max(1),
            tape: Tape::default(),
            buf: Buffers::default(),
        })
    }

    /// One PPO minibatch update on `rows` of `data`: forward, the clipped loss, backward,
    /// clipping and an Adam step. The minibatch's losses and diagnostics.
    pub fn ppo_step(&mut self, data: &Rollout<'_>, rows: &[usize], coefs: &PpoCoefs) -> Result<PpoStats, String> {
        let n = data.logp.len();
        let a = self.policy.num_actions;
        check_rows(rows, n)?;
        check_obs(&data.obs, n, self.policy.inputs)?;
        for (name, len) in [("advantages", data.advantages.len()), ("returns", data.returns.len()),
                            ("values", data.values.len())] {
            if len != n {
                return Err(format!("{name} has {len} rows; logp has {n}"));
            }
        }
        let continuous = self.log_std.is_some();
        if continuous && data.action_values.len() != n * a {
            return Err(format!("action_values has {} values, not {n} rows of {a}", data.action_values.len()));
        }
        if !continuous && (data.actions.len() != n || data.masks.len() != n * a) {
            return Err(format!("actions and masks must have {n} rows (masks of {a}), not {} and {} values",
                               data.actions.len(), data.masks.len()));
        }
        let b = rows.len();
        let input = self.gather(&data.obs, rows);
        let buf = &mut self.buf;
        for (dst, src) in buf.floats.iter_mut().zip([data.logp, data.advantages, data.returns, data.values]) {
            dst.clear();
            dst.extend(rows.iter().map(|&r| src[r]));
        }
        if continuous {
            buf.taken.clear();
            buf.taken.extend(rows.iter().flat_map(|&r| data.action_values[r * a..(r + 1) * a].iter().copied()));
        } else {
            buf.actions.clear();
            for &r in rows {
                let act = data.actions[r];
                if act < 0 || act as usize >= a {
                    return Err(format!("row {r} took action {act}; the policy has {a} actions"));
                }
                buf.actions.push(act as usize);
            }
            buf.masks.clear();
            buf.masks.extend(rows.iter().flat_map(|&r| data.masks[r * a..(r + 1) * a].iter().copied()));
        }
        let view = input.view(&buf.indices, &buf.counts, &buf.dense);
        forward(&self.policy, view, b, &mut self.tape, &mut buf.logits, &mut buf.values, self.threads);
        buf.dlogits.resize(b * a, 0.0);
        buf.dvalues.resize(b, 0.0);
        let [logp, adv, ret, old_v] = &buf.floats;
        let targets = PpoTargets { old_logp: logp, advantages: adv, returns: ret, old_values: old_v };
        let stats = match &self.log_std {
            Some(log_std) => ppo_gaussian(&buf.logits, &buf.values, log_std, &buf.taken, &targets, coefs,
                                          &mut buf.dlogits, &mut buf.dvalues, &mut self.glog_std),
            None => ppo_discrete(&buf.logits, &buf.values, &buf.actions, &buf.masks, &targets, coefs, a,
                                 &mut buf.dlogits, &mut buf.dvalues),
        };
        self.apply(input, b);
        Ok(stats)
    }

    /// One AlphaZero update on `rows`: cross-entropy against `target` (`[N, A]` visit
    /// distributions) and `value_coef` times the squared error against `z` (`[N]`).
    pub fn az_step(&mut self, obs: &Input<'_>, masks: &[bool], target: &[f32], z: &[f32], rows: &[usize],
                   value_coef: f32) -> Result<AzStats, String> {
        let (n, a) = (z.len(), self.policy.num_actions);
        check_rows(rows, n)?;
        check_obs(obs, n, self.policy.inputs)?;
        if masks.len() != n * a || target.len() != n * a {
            return Err(format!("masks and target must have {n} rows of {a}, not {} and {} values", masks.len(),
                               target.len()));
        }
        if self.log_std.is_some() {
            return Err("AlphaZero trains policies over discrete actions, not a Gaussian".into());
        }
        let b = rows.len();
        let input = self.gather(obs, rows);
        let buf = &mut self.buf;
        buf.masks.clear();
        buf.masks.extend(rows.iter().flat_map(|&r| masks[r * a..(r + 1) * a].iter().copied()));
        let [tgt, zs, _, _] = &mut buf.floats;
        tgt.clear();
        tgt.extend(rows.iter().flat_map(|&r| target[r * a..(r + 1) * a].iter().copied()));
        zs.clear();
        zs.extend(rows.iter().map(|&r| z[r]));
        let view = input.view(&buf.indices, &buf.counts, &buf.dense);
        forward(&self.policy, view, b, &mut self.tape, &mut buf.logits, &mut buf.values, self.threads);
        buf.dlogits.resize(b * a, 0.0);
        buf.dvalues.resize(b, 0.0);
        let stats = alphazero(&buf.logits, &buf.values, &buf.masks, &buf.floats[0], &buf.floats[1], value_coef, a,
                              &mut buf.dlogits, &mut buf.dvalues);
        self.apply(input, b);
        Ok(stats)
    }

    /// Backward from the output gradients in the buffers, then clipping and Adam.
    fn apply(&mut self, gathered: Gathered, batch: usize) {
        super::params::zero(&mut self.grads);
        let buf = &mut self.buf;
        let input = gathered.view(&buf.indices, &buf.counts, &buf.dense);
        backward(&self.policy, &mut self.grads, input, batch, &mut self.tape, &mut buf.dlogits, &mut buf.dvalues,
                 self.threads);
        let frozen = &self.frozen;
        let mut grads = trainable(params_mut(&mut self.grads), frozen);
        let mut ps = trainable(params_mut(&mut self.policy), frozen);
        let mut ms = trainable(params_mut(&mut self.m), frozen);
        let mut vs = trainable(params_mut(&mut self.v), frozen);
        if let Some(ls) = self.log_std.as_mut() {
            grads.push(&mut self.glog_std);
            ps.push(ls);
            ms.push(&mut self.mlog_std);
            vs.push(&mut self.vlog_std);
        }
        if let Some(norm) = self.max_grad_norm {
            clip_grad_norm(&mut grads, norm);
        }
        self.step += 1;
        let grads: Vec<&[f32]> = grads.into_iter().map(|g| &*g).collect();
        adam_step(&self.adam, self.step, &mut ps, &grads, &mut ms, &mut vs);
    }

    /// Copy `rows` of the observations into the buffers; what the view over them is.
    fn gather(&mut self, obs: &Input<'_>, rows: &[usize]) -> Gathered {
        let buf = &mut self.buf;
        match *obs {
            Input::Sparse { indices, counts, stride } => {
                buf.indices.clear();
                buf.counts.clear();
                for &r in rows {
                    buf.indices.extend_from_slice(&indices[r * stride..(r + 1) * stride]);
                    buf.counts.push(counts[r].min(stride as u32));
                }
                Gathered::Sparse(stride)
            }
            Input::Dense { x, width } => {
                buf.dense.clear();
                for &r in rows {
                    buf.dense.extend_from_slice(&x[r * width..(r + 1) * width]);
                }
                Gathered::Dense(width)
            }
        }
    }

    /// Adam's moments (first, second) in torch's layouts, in [`params`] order with
    /// `log_std`'s last, and the step count.
    pub fn moments(&self) -> (Vec<Vec<f32>>, Vec<Vec<f32>>) {
        let mut m = super::params::to_torch(&self.m);
        let mut v = super::params::to_torch(&self.v);
        if self.log_std.is_some() {
            m.push(self.mlog_std.clone());
            v.push(self.vlog_std.clone());
        }
        (m, v)
    }

    /// Put back moments that [`Learner::moments`] gave (for resuming).
    pub fn set_moments(&mut self, m: &[Vec<f32>], v: &[Vec<f32>], step: u64) -> Result<(), String> {
        let extra = self.log_std.is_some() as usize;
        let tensors = params(&self.policy).len();
        if m.len() != tensors + extra || v.len() != tensors + extra {
            return Err(format!("the optimizer state has {} and {} tensors; the network has {}", m.len(), v.len(),
                               tensors + extra));
        }
        super::params::set_from_torch(&mut self.m, &m[..tensors])?;
        super::params::set_from_torch(&mut self.v, &v[..tensors])?;
        if extra == 1 {
            if m[tensors].len() != self.mlog_std.len() || v[tensors].len() != self.vlog_std.len() {
                return Err("the optimizer state's log_std moments have the wrong size".into());
            }
            self.mlog_std.copy_from_slice(&m[tensors]);
            self.vlog_std.copy_from_slice(&v[tensors]);
        }
        self.step = step;
        Ok(())
    }
}

/// The tensors of `list` that are not frozen.
fn trainable<'a>(list: Vec<&'a mut [f32]>, frozen: &[bool]) -> Vec<&'a mut [f32]> {
    list.into_iter().zip(frozen).filter(|(_, &f)| !f).map(|(p, _)| p).collect()
}

/// Which kind of observation the buffers hold.
#[derive(Clone, Copy)]
enum Gathered {
    Sparse(usize),
    Dense(usize),
}

impl Gathered {
    fn view<'a>(self, indices: &'a [u32], counts: &'a [u32], dense: &'a [f32]) -> Input<'a> {
        match self {
            Gathered::Sparse(stride) => Input::Sparse { indices, counts, stride },
            Gathered::Dense(width) => Input::Dense { x: dense, width },
        }
    }
}

fn check_rows(rows: &[usize], n: usize) -> Result<(), String> {
    if rows.is_empty() {
        return Err("a minibatch needs at least one row".into());
    }
    if let Some(bad) = rows.iter().find(|&&r| r >= n) {
        return Err(format!("row {bad} is out of range: the data has {n} rows"));
    }
    Ok(())
}

fn check_obs(obs: &Input<'_>, n: usize, inputs: usize) -> Result<(), String> {
    match *obs {
        Input::Sparse { indices, counts, stride } => {
            if counts.len() != n || indices.len() != n * stride {
                return Err(format!("sparse observations need {n} counts and {n} rows of {stride} indices, not {} \
                                    and {} values", counts.len(), indices.len()));
            }
        }
        Input::Dense { x, width } => {
            if width != inputs || x.len() != n * width {
                return Err(format!("observations need {n} rows of {inputs} features, not {} values of width {width}",
                                   x.len()));
            }
        }
    }
    Ok(())
}
