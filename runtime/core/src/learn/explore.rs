//! Count-based exploration (Bellemare et al. 2016; Strehl and Littman's MBIE-EB), as
//! `twisterl.train.intrinsic` gives the native trainer: each step earns `1 / sqrt(n)`, with
//! `n` the visits of the exact observation it led to, counted over the whole run.
//!
//! The bonus is added through the advantages: GAE is linear in the rewards, so a bonus `b`
//! adds GAE(b) computed with zero values, and the env's own rewards and the critic's
//! bootstraps stay as collection computed them.

use std::collections::HashMap;

use crate::rng::{Purpose, Rng};
use crate::rollout::Rollout;

/// Visit counts of observations, keyed by a 64-bit hash of their features.
#[derive(Clone, Debug)]
pub struct CountBonus {
    /// A random odd weight per feature: an observation's key is the wrapping sum of the
    /// weights of its ones (sparse) or of the weights times its features' bits (dense).
    weights: Vec<u64>,
    counts: HashMap<u64, u32>,
}

impl CountBonus {
    pub fn new(obs_size: usize, seed: u64) -> CountBonus {
        let mut rng = Rng::for_purpose(seed, Purpose::Sampling, 0xC0047);
        CountBonus { weights: (0..obs_size).map(|_| rng.next_u64() | 1).collect(), counts: HashMap::new() }
    }

    /// Observations seen so far, each counted once.
    pub fn distinct(&self) -> usize {
        self.counts.len()
    }

    fn key(&self, data: &Rollout, row: usize, nnz_max: usize) -> u64 {
        if data.indices.is_empty() {
            let width = self.weights.len();
            let x = &data.obs[row * width..(row + 1) * width];
            x.iter().zip(&self.weights).fold(0u64, |h, (v, w)| h.wrapping_add((v.to_bits() as u64).wrapping_mul(*w)))
        } else {
            let ones = &data.indices[row * nnz_max..row * nnz_max + data.counts[row] as usize];
            ones.iter().fold(0u64, |h, &i| h.wrapping_add(self.weights[(i as usize).min(self.weights.len() - 1)]))
        }
    }

    /// Count this rollout's observations, then add `coef` times each step's bonus (the
    /// bonus of the observation it led to, where the rollout holds it) to the advantages,
    /// as GAE(`gamma`, `lam`) with zero values; the returns become advantages + values.
    /// `envs` envs stepped in lockstep, rows time-major. The mean bonus per step (NaN when
    /// no step's next observation is in the rollout).
    pub fn add(&mut self, data: &mut Rollout, envs: usize, nnz_max: usize, coef: f32, gamma: f32, lam: f32) -> f64 {
        let rows = data.logp.len();
        let keys: Vec<u64> = (0..rows).map(|r| self.key(data, r, nnz_max)).collect();
        for &k in &keys {
            *self.counts.entry(k).or_insert(0) += 1;
        }
        let score = |row: usize| 1.0 / (self.counts[&keys[row]] as f64).sqrt();
        let steps = rows / envs.max(1);
        let (mut sum, mut n) = (0.0f64, 0u64);
        for k in 0..envs {
            let mut running = 0.0f64;
            for t in (0..steps).rev() {
                let row = t * envs + k;
                let has_next = t + 1 < steps && !data.dones[row];
                let bonus = if has_next { score(row + envs) } else { 0.0 };
                if has_next {
                    sum += bonus;
                    n += 1;
                }
                let carry = if data.dones[row] { 0.0 } else { running };
                running = coef as f64 * bonus + (gamma * lam) as f64 * carry;
                data.advantages[row] += running as f32;
                data.returns[row] = data.advantages[row] + data.values[row];
            }
        }
        if n > 0 { sum / n as f64 } else { f64::NAN }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A dense rollout of `envs` envs whose observations are the given numbers.
    fn rollout(obs: &[f32], dones: &[bool]) -> Rollout {
        let rows = obs.len();
        Rollout {
            obs: obs.to_vec(), indices: Vec::new(), counts: vec![0; rows], masks: Vec::new(), actions: vec![0; rows],
            action_values: Vec::new(), logp: vec![0.0; rows], values: vec![0.5; rows], rewards: vec![0.0; rows],
            dones: dones.to_vec(), advantages: vec![0.0; rows], returns: vec![0.5; rows], player: vec![0; rows],
            learn: vec![true; rows], stats: Default::default(),
        }
    }

    #[test]
    fn the_bonus_is_gae_of_inverse_root_visits_of_the_next_observation() {
        // One env, observations 1, 2, 1, 3; the episode ends after the third step.
        let mut data = rollout(&[1.0, 2.0, 1.0, 3.0], &[false, false, true, false]);
        let mut bonus = CountBonus::new(1, 0);
        let mean = bonus.add(&mut data, 1, 0, 1.0, 0.5, 1.0);
        let (b0, b1) = (1.0, 1.0 / 2f64.sqrt()); // next obs 2 (seen once), then 1 (seen twice)
        let a1 = b1;
        let a0 = b0 + 0.5 * a1;
        assert!((data.advantages[0] as f64 - a0).abs() < 1e-6 && (data.advantages[1] as f64 - a1).abs() < 1e-6);
        assert_eq!((data.advantages[2], data.advantages[3]), (0.0, 0.0), "no next observation: no bonus");
        assert!((data.returns[0] - data.advantages[0] - 0.5).abs() < 1e-6);
        assert!((mean - (b0 + b1) / 2.0).abs() < 1e-9);
        assert_eq!(bonus.distinct(), 3);
    }

    #[test]
    fn visits_accumulate_over_rollouts_and_envs_are_chained_apart() {
        let mut bonus = CountBonus::new(1, 7);
        // Two envs, time-major rows: env 0 sees 5 then 6, env 1 sees 6 then 6.
        let mut first = rollout(&[5.0, 6.0, 6.0, 6.0], &[false; 4]);
        bonus.add(&mut first, 2, 0, 1.0, 1.0, 1.0);
        assert!((first.advantages[0] - 1.0 / 3f32.sqrt()).abs() < 1e-6); // 6 was seen 3 times
        assert!((first.advantages[1] - 1.0 / 3f32.sqrt()).abs() < 1e-6);
        let mut again = rollout(&[5.0, 5.0], &[false, false]);
        bonus.add(&mut again, 1, 0, 1.0, 1.0, 1.0);
        assert!((again.advantages[0] - 1.0 / 3f32.sqrt()).abs() < 1e-6); // 5: once before, twice now
    }

    #[test]
    fn sparse_observations_are_keyed_by_their_ones() {
        let mut bonus = CountBonus::new(8, 1);
        let mut data = rollout(&[0.0; 3], &[false; 3]);
        data.obs.clear();
        data.indices = vec![1, 4, 4, 1, 2, 0];
        data.counts = vec![2, 2, 1];
        bonus.add(&mut data, 1, 2, 1.0, 1.0, 1.0);
        assert_eq!(bonus.distinct(), 2, "{{1, 4}} and {{4, 1}} are one observation");
    }
}
