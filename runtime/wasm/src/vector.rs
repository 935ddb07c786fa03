//! A batch of envs stepped in one call, for hosts where each call costs more than a step
//! (about 1.5 µs in node, 25 µs from Python through wasmtime).
//!
//! `step_many` follows the Python `VectorEnv`: env `i` takes action `i`, a finished
//! episode is reset at once (same-step auto-reset), and the new observations, masks and
//! per-env results land in buffers the host reads afterwards.

use twisterl_core::batch::{RolloutStats, Slot};
use twisterl_core::env::Env;
use twisterl_core::rng::Rng;

use crate::params::ParamValue;
use crate::session::Info;

pub struct VecSession<E: Env> {
    pub info: Info,
    slots: Vec<Slot<E>>,
    lows: Vec<f64>,
    highs: Vec<f64>,
    obs_size: usize,
    num_actions: usize,
    /// Scratch: one env's rewards per player.
    step_rewards: Vec<f64>,
    /// After `step_many`: the reward of the player who moved, per env.
    pub rewards: Vec<f64>,
    pub terminated: Vec<u8>,
    pub truncated: Vec<u8>,
    pub success: Vec<u8>,
    /// `[num_envs, obs_size]`, after any auto-reset.
    pub obs: Vec<f32>,
    /// `[num_envs, num_actions]`, 0 or 1, after any auto-reset.
    pub masks: Vec<u8>,
}

impl<E: Env> VecSession<E> {
    /// `num_envs` envs; env `i` draws from stream `i` of `seed`, as in the native batch.
    pub fn new(info: Info, params: &[(String, ParamValue)], num_envs: usize, seed: u64, difficulty: i64)
               -> Result<VecSession<E>, String> {
        if num_envs == 0 {
            return Err("numEnvs must be a positive int".to_string());
        }
        if difficulty < 0 {
            return Err(format!("difficulty must be a non-negative int, not {difficulty}"));
        }
        let params = info.param_vector(params)?;
        let mut slots = Vec::with_capacity(num_envs);
        for i in 0..num_envs {
            let mut env = E::new(&params, seed, i as u64)
                .map_err(|f| format!("invalid params for {}: {}", info.name, f.describe()))?;
            env.set_difficulty(difficulty);
            slots.push(Slot::new(env));
        }
        let probe = &slots[0].env;
        let (obs_size, num_actions) = (probe.obs_size(), probe.num_actions());
        let n_values = if E::CONTINUOUS { num_actions } else { 0 };
        let (mut lows, mut highs) = (vec![0.0; n_values], vec![0.0; n_values]);
        probe.value_bounds(&mut lows, &mut highs);
        let mask_width = if E::CONTINUOUS { 0 } else { num_actions };
        Ok(VecSession {
            info, slots, lows, highs, obs_size, num_actions, step_rewards: vec![0.0; E::PLAYERS],
            rewards: vec![0.0; num_envs], terminated: vec![0; num_envs], truncated: vec![0; num_envs],
            success: vec![0; num_envs], obs: vec![0.0; num_envs * obs_size], masks: vec![0; num_envs * mask_width],
        })
    }

    pub fn len(&self) -> usize {
        self.slots.len()
    }

    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    pub fn obs_size(&self) -> usize {
        self.obs_size
    }

    pub fn num_actions(&self) -> usize {
        self.num_actions
    }

    fn error(&self, i: usize, f: twisterl_core::fault::Fault) -> String {
        format!("{} (in env {i})", self.info.describe(&f))
    }

    /// Reset every env and observe them all.
    pub fn reset(&mut self) -> Result<(), String> {
        for i in 0..self.slots.len() {
            self.slots[i].reset().map_err(|f| self.error(i, f))?;
            self.observe(i)?;
        }
        Ok(())
    }

    fn observe(&mut self, i: usize) -> Result<(), String> {
        let env = &self.slots[i].env;
        let obs = &mut self.obs[i * self.obs_size..(i + 1) * self.obs_size];
        let observed = env.observe_dense(obs);
        let legal = if E::CONTINUOUS {
            Ok(())
        } else {
            let n = self.num_actions;
            // SAFETY: `bool` and `u8` share size and alignment, and the env writes only 0 or 1.
            let masks: &mut [bool] = unsafe {
                std::slice::from_raw_parts_mut(self.masks.as_mut_ptr().add(i * n) as *mut bool, n)
            };
            env.legal(masks)
        };
        observed.and(legal).map_err(|f| self.error(i, f))
    }

    /// Step env `i` with `actions[i]` (discrete) or `values[i * dims..]` (continuous), for
    /// every env; returns how many episodes ended.
    pub fn step_many(&mut self, actions: &[i32], values: &[f64]) -> Result<usize, String> {
        let n = self.slots.len();
        let dims = self.lows.len();
        if E::CONTINUOUS {
            if values.len() != n * dims {
                return Err(format!("stepMany needs {} action values ({n} envs x {dims}), not {}", n * dims,
                                   values.len()));
            }
        } else if actions.len() != n {
            return Err(format!("stepMany needs one action per env ({n}), not {}", actions.len()));
        }
        let mut ended = 0;
        for i in 0..n {
            let slot = &mut self.slots[i];
            let actor = slot.env.player();
            let out = if E::CONTINUOUS {
                slot.step_values(&values[i * dims..(i + 1) * dims], &self.lows, &self.highs, &mut self.step_rewards,
                                 false)
            } else {
                slot.step(actions[i] as i64, &mut self.step_rewards, false)
            };
            let out = out.map_err(|f| self.error(i, f))?;
            let slot = &mut self.slots[i];
            let success = slot.env.success();
            self.rewards[i] = self.step_rewards[actor];
            self.terminated[i] = out.terminated as u8;
            self.truncated[i] = out.truncated as u8;
            self.success[i] = success.map_err(|f| self.error(i, f))? as u8;
            if out.terminated || out.truncated {
                ended += 1;
                let slot = &mut self.slots[i];
                slot.reset().map_err(|f| self.error(i, f))?;
            }
            self.observe(i)?;
        }
        Ok(ended)
    }

    /// `steps` random legal steps per env, entirely inside the module (the core's
    /// `Slot::random_steps`, as `VectorEnv.random_steps` natively).
    pub fn random_steps(&mut self, steps: u64, seed: u64) -> Result<RolloutStats, String> {
        let mut total = RolloutStats::default();
        for i in 0..self.slots.len() {
            let mut rng = Rng::for_purpose(seed, twisterl_core::rng::Purpose::Actions, i as u64);
            let slot = &mut self.slots[i];
            let result = slot.random_steps(steps, &mut rng, &self.lows, &self.highs, &mut total, None);
            result.map_err(|f| self.error(i, f))?;
        }
        Ok(total)
    }
}
