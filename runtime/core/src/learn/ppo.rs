//! The whole PPO loop on any [`Host`]: collect, learn, raise the difficulty. It is what
//! `twisterl/train/ppo.py` runs with the Rust learner, for hosts that have no Python (the
//! browser, node): the same collection ([`crate::rollout::collect`]), the same minibatch
//! updates ([`Learner::ppo_step`]) and the same curriculum rule.
//!
//! What the Python driver adds on top stays there: evals, the self-play arena and opponent
//! pool, exploration bonuses, observation normalisation, deadlines, checkpoints and Ray.
//! Minibatch orders are drawn from the runtime's own random streams, so a run here and a run
//! in Python from the same seed are alike in distribution, not bit for bit.

use super::explore::CountBonus;
use super::learner::{Learner, Rollout as Batch};
use super::loss::{PpoCoefs, PpoStats};
use crate::host::{Error, Host, Layout};
use crate::policy::Input;
use crate::rng::{Purpose, Rng};
use crate::rollout::{collect, Collect, Rollout};
use crate::twist::Twist;

/// The settings of a run: the `twisterl train` config keys of the same names.
#[derive(Clone, Debug, PartialEq)]
pub struct PpoSettings {
    pub num_steps: usize,
    pub gamma: f32,
    pub gae_lambda: f32,
    pub update_epochs: usize,
    pub num_minibatches: usize,
    pub clip_coef: f32,
    pub clip_vloss: bool,
    pub target_kl: Option<f64>,
    pub vf_coef: f32,
    pub ent_coef: f32,
    pub learning_rate: f64,
    /// Decay the rate linearly to 0 over `max_env_steps`.
    pub anneal_lr: bool,
    /// Stop after this many env steps (0: no limit).
    pub max_env_steps: u64,
    pub norm_adv: bool,
    /// Divide rewards by the running standard deviation of the discounted return.
    pub norm_reward: bool,
    /// Whether the difficulty climbs: false for an env whose dynamics do not read it.
    pub curriculum: bool,
    /// An exploration bonus added to what the update learns from (never to reported returns).
    pub intrinsic: Intrinsic,
    /// The bonus's weight against the env's rewards.
    pub intrinsic_coef: f32,
    pub diff_threshold: f64,
    pub diff_max: i64,
    pub min_episodes: u64,
    pub seed: u64,
}

/// Exploration bonuses the loop can add (`twisterl train`'s `intrinsic`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Intrinsic {
    None,
    /// `intrinsic_coef / sqrt(visits)` of the observation each step leads to ([`CountBonus`]).
    Count,
}

impl Default for PpoSettings {
    /// `twisterl train`'s defaults.
    fn default() -> PpoSettings {
        PpoSettings {
            num_steps: 64,
            gamma: 0.995,
            gae_lambda: 0.995,
            update_epochs: 4,
            num_minibatches: 4,
            clip_coef: 0.1,
            clip_vloss: false,
            target_kl: None,
            vf_coef: 0.8,
            ent_coef: 0.01,
            learning_rate: 3e-4,
            anneal_lr: false,
            max_env_steps: 0,
            norm_adv: true,
            norm_reward: false,
            curriculum: true,
            intrinsic: Intrinsic::None,
            intrinsic_coef: 0.1,
            diff_threshold: 0.85,
            diff_max: 32,
            min_episodes: 100,
            seed: 0,
        }
    }
}

impl PpoSettings {
    /// Whether the settings make sense; the error names the first key that does not.
    pub fn check(&self) -> Result<(), String> {
        let positive = [("num_steps", self.num_steps), ("update_epochs", self.update_epochs),
                        ("num_minibatches", self.num_minibatches)];
        for (key, v) in positive {
            if v == 0 {
                return Err(format!("{key} must be a positive int, not 0"));
            }
        }
        for (key, v) in [("gamma", self.gamma), ("gae_lambda", self.gae_lambda)] {
            if !(0.0..=1.0).contains(&v) {
                return Err(format!("{key} must be between 0 and 1, not {v}"));
            }
        }
        for (key, v) in [("clip_coef", self.clip_coef), ("vf_coef", self.vf_coef), ("ent_coef", self.ent_coef),
                         ("intrinsic_coef", self.intrinsic_coef)] {
            if !(v.is_finite() && v >= 0.0) {
                return Err(format!("{key} must be a non-negative number, not {v}"));
            }
        }
        if !(self.learning_rate.is_finite() && self.learning_rate > 0.0) {
            return Err(format!("learning_rate must be a positive number, not {}", self.learning_rate));
        }
        if let Some(kl) = self.target_kl {
            if !(kl.is_finite() && kl > 0.0) {
                return Err(format!("target_kl must be a positive number or null, not {kl}"));
            }
        }
        if self.anneal_lr && self.max_env_steps == 0 {
            return Err("anneal_lr needs max_env_steps: the rate decays to 0 over that many env steps".into());
        }
        if !(0.0..=1.0).contains(&self.diff_threshold) {
            return Err(format!("diff_threshold must be between 0 and 1, not {}", self.diff_threshold));
        }
        if self.diff_max < 0 {
            return Err(format!("diff_max must be a non-negative int, not {}", self.diff_max));
        }
        Ok(())
    }
}

/// What one iteration did: the rows of `metrics.csv` that the loop itself knows.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Iteration {
    pub iteration: u64,
    /// The difficulty the iteration collected at.
    pub difficulty: i64,
    /// Of the episodes that ended in this iteration: success rate, mean return (player 0's)
    /// and mean length; NaN when none ended.
    pub success_rate: f64,
    pub mean_return: f64,
    pub mean_length: f64,
    pub episodes: u64,
    /// Env steps collected in this iteration.
    pub env_steps: u64,
    pub policy_loss: f64,
    pub value_loss: f64,
    pub entropy: f64,
    pub approx_kl: f64,
    pub clipfrac: f64,
    pub explained_variance: f64,
    /// The mean exploration bonus per step, before `intrinsic_coef` (NaN without one).
    pub intrinsic: f64,
    /// Minibatch updates made.
    pub updates: u64,
}

/// The running mean and variance of a stream of numbers, merged batch by batch (Chan et
/// al.), as `twisterl.train.stats.RunningVariance`.
#[derive(Clone, Copy, Debug)]
struct RunningVariance {
    mean: f64,
    var: f64,
    count: f64,
}

impl RunningVariance {
    fn new() -> RunningVariance {
        RunningVariance { mean: 0.0, var: 1.0, count: 1e-4 }
    }

    fn update(&mut self, x: &[f64]) {
        if x.is_empty() {
            return;
        }
        let n = x.len() as f64;
        let mean = x.iter().sum::<f64>() / n;
        let var = x.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / n;
        let (delta, total) = (mean - self.mean, self.count + n);
        self.mean += delta * n / total;
        self.var = (self.var * self.count + var * n + delta * delta * self.count * n / total) / total;
        self.count = total;
    }
}

/// A learner, its settings and where the run stands.
#[derive(Debug)]
pub struct PpoTrainer {
    pub learner: Learner,
    pub settings: PpoSettings,
    /// Iterations done.
    pub iteration: u64,
    pub env_steps: u64,
    /// The difficulty the next iteration collects at.
    pub difficulty: i64,
    /// Each env's learner seat against an opponent: always -1 here (self-play).
    seats: Vec<i64>,
    episode_returns: Vec<f64>,
    twists: Vec<Twist>,
    reward_scale: f32,
    running_return: Vec<f64>,
    return_stats: RunningVariance,
    /// The visit counts of `Intrinsic::Count`, made at the first iteration that uses them.
    bonus: Option<CountBonus>,
}

impl PpoTrainer {
    /// A run on `host`'s envs from `learner`'s weights, starting at `difficulty`: sets the
    /// difficulty and resets every env. `twists`, if any, are the env's symmetries (each
    /// step draws one, or none).
    pub fn new<H: Host>(host: &mut H, learner: Learner, settings: PpoSettings, difficulty: i64,
                        twists: Vec<Twist>) -> Result<PpoTrainer, Error> {
        settings.check().map_err(Error::Invalid)?;
        let layout = host.layout();
        check_fits(&layout, &learner).map_err(Error::Invalid)?;
        check_intrinsic(&layout, &settings).map_err(Error::Invalid)?;
        if difficulty < 0 {
            return Err(Error::Invalid(format!("difficulty must be a non-negative int, not {difficulty}")));
        }
        let n = host.envs().len();
        if n == 0 {
            return Err(Error::Invalid("training needs at least one env".into()));
        }
        let mut trainer = PpoTrainer {
            learner, settings, iteration: 0, env_steps: 0, difficulty, seats: vec![-1; n],
            episode_returns: vec![0.0; n], twists, reward_scale: 1.0, running_return: vec![0.0; n],
            return_stats: RunningVariance::new(), bonus: None,
        };
        trainer.restart(host, difficulty)?;
        Ok(trainer)
    }

    /// Set every env's difficulty and start new episodes.
    pub fn restart<H: Host>(&mut self, host: &mut H, difficulty: i64) -> Result<(), Error> {
        let envs = host.envs();
        host.set_difficulty(envs.clone(), difficulty)?;
        host.reset(envs)?;
        self.difficulty = difficulty;
        self.episode_returns.iter_mut().for_each(|r| *r = 0.0);
        Ok(())
    }

    /// Whether the run is over: `max_env_steps` reached.
    pub fn out_of_steps(&self) -> bool {
        self.settings.max_env_steps > 0 && self.env_steps >= self.settings.max_env_steps
    }

    /// One iteration: `num_steps` steps of every env, `update_epochs` epochs of minibatch
    /// updates, then the curriculum (the difficulty goes up by one when at least
    /// `min_episodes` episodes ended and `diff_threshold` of them succeeded, up to `diff_max`;
    /// never for two-player games or without `curriculum`).
    pub fn iterate<H: Host>(&mut self, host: &mut H) -> Result<Iteration, Error> {
        let s = self.settings.clone();
        let layout = host.layout();
        if host.envs().len() != self.seats.len() {
            return Err(Error::Invalid(format!("the trainer was made for {} envs; this host has {}",
                                              self.seats.len(), host.envs().len())));
        }
        s.check().map_err(Error::Invalid)?;
        check_fits(&layout, &self.learner).map_err(Error::Invalid)?;
        check_intrinsic(&layout, &s).map_err(Error::Invalid)?;
        if s.anneal_lr {
            let left = (1.0 - self.env_steps as f64 / s.max_env_steps as f64).max(0.0);
            self.learner.adam.lr = s.learning_rate * left;
        } else {
            self.learner.adam.lr = s.learning_rate;
        }
        let cfg = Collect {
            steps: s.num_steps,
            seed: s.seed.wrapping_mul(1_000_003).wrapping_add(self.iteration),
            gamma: s.gamma,
            lam: s.gae_lambda,
            deterministic: false,
            twists: &self.twists,
            log_std: self.learner.log_std.as_deref(),
            reward_scale: self.reward_scale,
            opponent: None,
            pool_prob: 0.0,
        };
        cfg.check(&layout, &self.learner.policy).map_err(Error::Invalid)?;
        let mut data = collect(host, &self.learner.policy, &cfg, &mut self.episode_returns, &mut self.seats)?;
        if s.norm_reward {
            self.update_reward_scale(&data);
        }
        let intrinsic = match s.intrinsic {
            Intrinsic::None => f64::NAN,
            Intrinsic::Count => {
                let bonus = self.bonus.get_or_insert_with(|| CountBonus::new(layout.obs_size, s.seed));
                bonus.add(&mut data, self.seats.len(), layout.nnz_max, s.intrinsic_coef, s.gamma, s.gae_lambda)
            }
        };
        let (losses, updates, explained) = self.update(&data, &layout)?;
        let st = data.stats;
        let ended = st.episodes as f64;
        let mean = |x: f64| if st.episodes > 0 { x / ended } else { f64::NAN };
        let out = Iteration {
            iteration: self.iteration,
            difficulty: self.difficulty,
            success_rate: mean(st.successes as f64),
            mean_return: mean(st.return_sum),
            mean_length: mean(st.length_sum as f64),
            episodes: st.episodes,
            env_steps: (s.num_steps * self.seats.len()) as u64,
            policy_loss: losses.policy_loss,
            value_loss: losses.value_loss,
            entropy: losses.entropy,
            approx_kl: losses.approx_kl,
            clipfrac: losses.clipfrac,
            explained_variance: explained,
            intrinsic,
            updates,
        };
        self.iteration += 1;
        self.env_steps += out.env_steps;
        if self.solved(&out, &layout) && self.difficulty < s.diff_max {
            self.restart(host, self.difficulty + 1)?;
        }
        Ok(out)
    }

    /// Whether an iteration met the curriculum's bar.
    pub fn solved(&self, it: &Iteration, layout: &Layout) -> bool {
        self.settings.curriculum && layout.players == 1 && it.episodes >= self.settings.min_episodes
            && it.success_rate >= self.settings.diff_threshold
    }

    /// Epochs of minibatch updates over the learner's rows: the mean losses (the last
    /// epoch's KL), how many updates ran, and the explained variance of the values.
    fn update(&mut self, data: &Rollout, layout: &Layout) -> Result<(PpoStats, u64, f64), Error> {
        let s = &self.settings;
        let obs = if layout.sparse() {
            Input::Sparse { indices: &data.indices, counts: &data.counts, stride: layout.nnz_max }
        } else {
            Input::Dense { x: &data.obs, width: layout.obs_size }
        };
        let batch = Batch {
            obs, actions: &data.actions, action_values: &data.action_values, masks: &data.masks, logp: &data.logp,
            advantages: &data.advantages, returns: &data.returns, values: &data.values,
        };
        let mut rows: Vec<usize> = (0..data.logp.len()).filter(|&r| data.learn[r]).collect();
        let total = rows.len();
        let explained = explained_variance(&rows, &data.values, &data.returns);
        let mb = (total / s.num_minibatches).max(1);
        let coefs = PpoCoefs { clip_coef: s.clip_coef, vf_coef: s.vf_coef, ent_coef: s.ent_coef,
                               norm_adv: s.norm_adv, clip_vloss: s.clip_vloss };
        let mut rng = Rng::for_purpose(s.seed, Purpose::Sampling, u64::MAX - self.iteration);
        let mut sums = PpoStats::default();
        let (mut count, mut kl_sum, mut kl_n) = (0u64, 0.0f64, 0u64);
        for _ in 0..s.update_epochs {
            shuffle(&mut rows, &mut rng);
            (kl_sum, kl_n) = (0.0, 0);
            for chunk in rows.chunks(mb) {
                let out = self.learner.ppo_step(&batch, chunk, &coefs).map_err(Error::Invalid)?;
                sums.policy_loss += out.policy_loss;
                sums.value_loss += out.value_loss;
                sums.entropy += out.entropy;
                sums.clipfrac += out.clipfrac;
                kl_sum += out.approx_kl;
                kl_n += 1;
                count += 1;
            }
            if matches!(s.target_kl, Some(kl) if kl_n > 0 && kl_sum / kl_n as f64 > kl) {
                break;
            }
        }
        let per = |x: f64| if count > 0 { x / count as f64 } else { f64::NAN };
        let losses = PpoStats {
            policy_loss: per(sums.policy_loss),
            value_loss: per(sums.value_loss),
            entropy: per(sums.entropy),
            clipfrac: per(sums.clipfrac),
            approx_kl: if kl_n > 0 { kl_sum / kl_n as f64 } else { f64::NAN },
        };
        Ok((losses, count, explained))
    }

    /// Track the variance of each env's discounted return; the next iteration's rewards are
    /// divided by its square root.
    fn update_reward_scale(&mut self, data: &Rollout) {
        let n = self.running_return.len();
        let mut returns = Vec::with_capacity(data.rewards.len());
        for t in 0..data.rewards.len() / n {
            for k in 0..n {
                let row = t * n + k;
                let r = data.rewards[row] as f64 / self.reward_scale as f64;
                self.running_return[k] = self.running_return[k] * self.settings.gamma as f64 + r;
                returns.push(self.running_return[k]);
                if data.dones[row] {
                    self.running_return[k] = 0.0;
                }
            }
        }
        self.return_stats.update(&returns);
        self.reward_scale = (1.0 / (self.return_stats.var + 1e-8).sqrt()) as f32;
    }
}

/// Whether the learner's network fits the host's envs.
fn check_fits(layout: &Layout, learner: &Learner) -> Result<(), String> {
    let p = &learner.policy;
    if p.inputs != layout.obs_size || p.num_actions != layout.num_actions {
        return Err(format!("the network maps {} features to {} actions, but the env has {} features and {} actions",
                           p.inputs, p.num_actions, layout.obs_size, layout.num_actions));
    }
    if layout.continuous != learner.log_std.is_some() {
        return Err(if layout.continuous {
            "this env has continuous actions: the network needs a Gaussian head (log_std)".into()
        } else {
            "the network is a Gaussian policy (log_std) but this env has discrete actions".into()
        });
    }
    Ok(())
}

/// Exploration bonuses are for single-player envs: a self-play opponent's novelty is no goal.
fn check_intrinsic(layout: &Layout, settings: &PpoSettings) -> Result<(), String> {
    if layout.players > 1 && settings.intrinsic != Intrinsic::None {
        return Err("intrinsic rewards are for single-player envs, not self-play".into());
    }
    Ok(())
}

/// Fisher-Yates, from the runtime's random stream.
fn shuffle(rows: &mut [usize], rng: &mut Rng) {
    for i in (1..rows.len()).rev() {
        let j = rng.below(i as u64 + 1) as usize;
        rows.swap(i, j);
    }
}

/// 1 - Var(returns - values) / Var(returns) over `rows` (NaN when the returns do not vary).
fn explained_variance(rows: &[usize], values: &[f32], returns: &[f32]) -> f64 {
    let n = rows.len() as f64;
    if rows.is_empty() {
        return f64::NAN;
    }
    let var = |f: &dyn Fn(usize) -> f64| {
        let mean = rows.iter().map(|&r| f(r)).sum::<f64>() / n;
        rows.iter().map(|&r| (f(r) - mean).powi(2)).sum::<f64>() / n
    };
    let v_ret = var(&|r| returns[r] as f64);
    if v_ret == 0.0 {
        return f64::NAN;
    }
    1.0 - var(&|r| (returns[r] - values[r]) as f64) / v_ret
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_shuffle_is_a_permutation() {
        let mut rows: Vec<usize> = (0..100).collect();
        shuffle(&mut rows, &mut Rng::new(3, 0));
        let mut sorted = rows.clone();
        sorted.sort();
        assert_eq!(sorted, (0..100).collect::<Vec<_>>());
        assert_ne!(rows, sorted);
    }

    #[test]
    fn explained_variance_is_one_for_exact_values_and_nan_for_flat_returns() {
        let rows = [0, 1, 2];
        assert_eq!(explained_variance(&rows, &[1.0, 2.0, 3.0], &[1.0, 2.0, 3.0]), 1.0);
        assert!(explained_variance(&rows, &[1.0, 2.0, 3.0], &[2.0, 2.0, 2.0]).is_nan());
    }

    #[test]
    fn settings_name_the_key_that_is_wrong() {
        let bad = PpoSettings { gamma: 1.5, ..PpoSettings::default() };
        assert!(bad.check().unwrap_err().contains("gamma"));
        let bad = PpoSettings { anneal_lr: true, ..PpoSettings::default() };
        assert!(bad.check().unwrap_err().contains("max_env_steps"));
        assert!(PpoSettings::default().check().is_ok());
    }
}
