//! The losses of the learners and their gradients with respect to the network's outputs,
//! written to match the torch learners term for term (`twisterl/train/ppo.py` and
//! `alphazero.py`): masked logits are filled with -1e9 and get no gradient; where torch
//! takes `max(a, b)` of two equal values, each side gets half the gradient; `clamp` passes
//! the gradient inside its bounds.

/// The PPO loss's settings.
#[derive(Clone, Copy, Debug)]
pub struct PpoCoefs {
    pub clip_coef: f32,
    pub vf_coef: f32,
    pub ent_coef: f32,
    pub norm_adv: bool,
    pub clip_vloss: bool,
}

/// The mean losses of one minibatch, and the diagnostics CleanRL logs.
#[derive(Clone, Copy, Debug, Default)]
pub struct PpoStats {
    pub policy_loss: f64,
    pub value_loss: f64,
    pub entropy: f64,
    pub approx_kl: f64,
    pub clipfrac: f64,
}

/// One minibatch's targets, row by row.
pub struct PpoTargets<'a> {
    pub old_logp: &'a [f32],
    pub advantages: &'a [f32],
    pub returns: &'a [f32],
    pub old_values: &'a [f32],
}

const MASKED: f32 = -1e9;

/// The masked log-softmax of one row into `logp`; returns false when no action is legal
/// (every logit is then -1e9, and the row is uniform, as torch computes it).
fn log_softmax(logits: &[f32], mask: &[bool], logp: &mut [f32]) -> bool {
    let legal = mask.iter().any(|&m| m);
    let z = |j: usize| if mask[j] { logits[j] } else { MASKED };
    let max = (0..logits.len()).map(z).fold(f32::NEG_INFINITY, f32::max);
    let sum: f64 = (0..logits.len()).map(|j| ((z(j) - max) as f64).exp()).sum();
    let log_sum = sum.ln() as f32;
    for (j, l) in logp.iter_mut().enumerate() {
        *l = (z(j) - max) - log_sum;
    }
    legal
}

/// Advantages normalised to mean 0 and (unbiased) standard deviation 1, as `norm_adv` asks.
fn normalised(adv: &[f32], norm: bool) -> Vec<f32> {
    let n = adv.len();
    if !norm || n <= 1 {
        return adv.to_vec();
    }
    let mean = adv.iter().map(|&a| a as f64).sum::<f64>() / n as f64;
    let var = adv.iter().map(|&a| (a as f64 - mean).powi(2)).sum::<f64>() / (n - 1) as f64;
    let (mean, std) = (mean as f32, var.sqrt() as f32);
    adv.iter().map(|&a| (a - mean) / (std + 1e-8)).collect()
}

/// The clipped surrogate for one row: its loss, and the factor `d loss / d ratio` divided by
/// `-adv`, which is 1 where the unclipped side is the larger or the ratio is inside the clip
/// range, 0.5 where they tie outside it, 0 else.
fn surrogate(adv: f32, ratio: f32, clip: f32) -> (f32, f32) {
    let clamped = ratio.clamp(1.0 - clip, 1.0 + clip);
    let (u, c) = (-adv * ratio, -adv * clamped);
    let inside = (1.0 - clip..=1.0 + clip).contains(&ratio);
    let factor = if u > c { 1.0 } else if u < c { if inside { 1.0 } else { 0.0 } } else if inside { 1.0 } else { 0.5 };
    (u.max(c), factor)
}

/// The value loss of one row and its gradient with respect to the value.
fn value_term(v: f32, ret: f32, old: f32, clip: f32, clip_vloss: bool) -> (f32, f32) {
    let plain = 0.5 * (v - ret) * (v - ret);
    if !clip_vloss {
        return (plain, v - ret);
    }
    let delta = v - old;
    let clipped = old + delta.clamp(-clip, clip);
    let other = 0.5 * (clipped - ret) * (clipped - ret);
    let pass = if (-clip..=clip).contains(&delta) { 1.0 } else { 0.0 };
    let (g_plain, g_other) = (v - ret, (clipped - ret) * pass);
    let grad = if plain > other { g_plain } else if plain < other { g_other } else { 0.5 * (g_plain + g_other) };
    (plain.max(other), grad)
}

/// PPO with discrete actions: the loss of `n` rows of `logits` (`[n, a]`) and `values`, and
/// its gradients in `dlogits` and `dvalues`.
#[allow(clippy::too_many_arguments)]
pub fn ppo_discrete(logits: &[f32], values: &[f32], actions: &[usize], masks: &[bool], t: &PpoTargets<'_>,
                    coefs: &PpoCoefs, a: usize, dlogits: &mut [f32], dvalues: &mut [f32]) -> PpoStats {
    let n = values.len();
    let adv = normalised(t.advantages, coefs.norm_adv);
    let mut logp = vec![0.0f32; a];
    let mut s = PpoStats::default();
    let inv = 1.0 / n as f32;
    for i in 0..n {
        let (row, mask) = (&logits[i * a..(i + 1) * a], &masks[i * a..(i + 1) * a]);
        let d = &mut dlogits[i * a..(i + 1) * a];
        let legal = log_softmax(row, mask, &mut logp);
        let act = actions[i];
        let entropy: f32 = if legal { -(0..a).filter(|&j| mask[j]).map(|j| logp[j].exp() * logp[j]).sum::<f32>() } else { 0.0 };
        s.entropy += entropy as f64;
        // d loss / d logp[act], then through the masked log-softmax; the entropy's own term.
        let dlogp = ppo_row(i, logp[act], &adv, values, t, coefs, &mut s, dvalues);
        for j in 0..a {
            d[j] = if legal && mask[j] {
                let p = logp[j].exp();
                let from_logp = dlogp * ((j == act) as u8 as f32 - p);
                let from_entropy = -coefs.ent_coef * inv * (-p * (logp[j] + entropy));
                from_logp + from_entropy
            } else {
                0.0
            };
        }
    }
    s.mean(n)
}

/// What every PPO row shares, from its action's new log-probability: its losses and
/// diagnostics added to `s`, `dvalues[i]` set, and `d loss / d logp` returned.
#[allow(clippy::too_many_arguments)]
fn ppo_row(i: usize, logp: f32, adv: &[f32], values: &[f32], t: &PpoTargets<'_>, coefs: &PpoCoefs, s: &mut PpoStats,
           dvalues: &mut [f32]) -> f32 {
    let inv = 1.0 / values.len() as f32;
    let log_ratio = logp - t.old_logp[i];
    let ratio = log_ratio.exp();
    let (pg, factor) = surrogate(adv[i], ratio, coefs.clip_coef);
    let (vl, dv) = value_term(values[i], t.returns[i], t.old_values[i], coefs.clip_coef, coefs.clip_vloss);
    s.policy_loss += pg as f64;
    s.value_loss += vl as f64;
    s.approx_kl += ((ratio - 1.0) - log_ratio) as f64;
    s.clipfrac += ((ratio - 1.0).abs() > coefs.clip_coef) as u8 as f64;
    dvalues[i] = coefs.vf_coef * dv * inv;
    -adv[i] * factor * ratio * inv
}

impl PpoStats {
    /// Sums over `n` rows as means.
    fn mean(self, n: usize) -> PpoStats {
        let nf = n as f64;
        PpoStats { policy_loss: self.policy_loss / nf, value_loss: self.value_loss / nf, entropy: self.entropy / nf,
                   approx_kl: self.approx_kl / nf, clipfrac: self.clipfrac / nf }
    }
}

const HALF_LOG_2PI: f32 = 0.918_938_5;

/// PPO with a diagonal Gaussian over `d` action values: `means` (`[n, d]`) and `log_std`,
/// the actions taken (`[n, d]`); gradients into `dmeans`, `dvalues` and `dlog_std`.
#[allow(clippy::too_many_arguments)]
pub fn ppo_gaussian(means: &[f32], values: &[f32], log_std: &[f32], taken: &[f32], t: &PpoTargets<'_>,
                    coefs: &PpoCoefs, dmeans: &mut [f32], dvalues: &mut [f32], dlog_std: &mut [f32]) -> PpoStats {
    let (n, d) = (values.len(), log_std.len());
    let adv = normalised(t.advantages, coefs.norm_adv);
    let var: Vec<f32> = log_std.iter().map(|&l| (2.0 * l).exp()).collect();
    let entropy: f32 = log_std.iter().map(|&l| 0.5 + HALF_LOG_2PI + l).sum();
    dlog_std.iter_mut().for_each(|g| *g = -coefs.ent_coef);
    let mut s = PpoStats::default();
    for i in 0..n {
        let (mu, act) = (&means[i * d..(i + 1) * d], &taken[i * d..(i + 1) * d]);
        let logp: f32 = (0..d).map(|j| -((act[j] - mu[j]).powi(2)) / (2.0 * var[j]) - log_std[j] - HALF_LOG_2PI).sum();
        let dlogp = ppo_row(i, logp, &adv, values, t, coefs, &mut s, dvalues);
        for j in 0..d {
            let z = act[j] - mu[j];
            dmeans[i * d + j] = dlogp * z / var[j];
            dlog_std[j] += dlogp * (z * z / var[j] - 1.0);
        }
    }
    // The Gaussian's entropy is the same for every row.
    PpoStats { entropy: entropy as f64, ..s.mean(n) }
}

/// AlphaZero's mean losses of one minibatch.
#[derive(Clone, Copy, Debug, Default)]
pub struct AzStats {
    pub policy_loss: f64,
    pub value_loss: f64,
    pub entropy: f64,
}

/// AlphaZero: cross-entropy of the masked policy against the search's visit distribution
/// `target` (`[n, a]`), plus `value_coef` times the squared error of the value against the
/// game's outcome `z`.
#[allow(clippy::too_many_arguments)]
pub fn alphazero(logits: &[f32], values: &[f32], masks: &[bool], target: &[f32], z: &[f32], value_coef: f32, a: usize,
                 dlogits: &mut [f32], dvalues: &mut [f32]) -> AzStats {
    let n = values.len();
    let inv = 1.0 / n as f32;
    let mut logp = vec![0.0f32; a];
    let mut s = AzStats::default();
    for i in 0..n {
        let (row, mask, tgt) = (&logits[i * a..(i + 1) * a], &masks[i * a..(i + 1) * a], &target[i * a..(i + 1) * a]);
        let legal = log_softmax(row, mask, &mut logp);
        let mass: f32 = tgt.iter().sum();
        s.policy_loss -= (0..a).map(|j| (tgt[j] * logp[j]) as f64).sum::<f64>();
        s.entropy -= (0..a).map(|j| (logp[j].exp() * logp[j]) as f64).sum::<f64>();
        let err = values[i] - z[i];
        s.value_loss += (err * err) as f64;
        dvalues[i] = value_coef * 2.0 * err * inv;
        for j in 0..a {
            dlogits[i * a + j] = if legal && mask[j] { inv * (logp[j].exp() * mass - tgt[j]) } else { 0.0 };
        }
    }
    let nf = n as f64;
    AzStats { policy_loss: s.policy_loss / nf, value_loss: s.value_loss / nf, entropy: s.entropy / nf }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The gradients against central differences of the loss.
    #[test]
    fn ppo_gradients_match_finite_differences() {
        let (n, a) = (5, 4);
        let logits: Vec<f32> = (0..n * a).map(|x| ((x * 37 % 11) as f32 - 5.0) * 0.3).collect();
        let values: Vec<f32> = (0..n).map(|x| x as f32 * 0.2 - 0.3).collect();
        let masks: Vec<bool> = (0..n * a).map(|x| x % 4 != 1 || x == 1).collect();
        let actions = [0usize, 2, 3, 0, 2];
        let old_logp = [-1.2f32, -0.9, -1.5, -1.1, -0.7];
        let adv = [0.5f32, -1.0, 2.0, 0.1, -0.4];
        let ret = [0.3f32, -0.2, 1.0, 0.0, 0.5];
        let old_v = [0.1f32, 0.0, 0.9, 0.2, 0.3];
        let t = PpoTargets { old_logp: &old_logp, advantages: &adv, returns: &ret, old_values: &old_v };
        for clip_vloss in [false, true] {
            let coefs = PpoCoefs { clip_coef: 0.2, vf_coef: 0.8, ent_coef: 0.05, norm_adv: true, clip_vloss };
            let loss = |l: &[f32], v: &[f32]| {
                let (mut dl, mut dv) = (vec![0.0; n * a], vec![0.0; n]);
                let s = ppo_discrete(l, v, &actions, &masks, &t, &coefs, a, &mut dl, &mut dv);
                s.policy_loss + 0.8 * s.value_loss - 0.05 * s.entropy
            };
            let (mut dl, mut dv) = (vec![0.0; n * a], vec![0.0; n]);
            ppo_discrete(&logits, &values, &actions, &masks, &t, &coefs, a, &mut dl, &mut dv);
            let h = 1e-3f32;
            for k in 0..n * a {
                let (mut up, mut down) = (logits.clone(), logits.clone());
                up[k] += h;
                down[k] -= h;
                let num = (loss(&up, &values) - loss(&down, &values)) / (2.0 * h as f64);
                assert!((num - dl[k] as f64).abs() < 2e-3, "logit {k}: {num} vs {}", dl[k]);
            }
            for k in 0..n {
                let (mut up, mut down) = (values.clone(), values.clone());
                up[k] += h;
                down[k] -= h;
                let num = (loss(&logits, &up) - loss(&logits, &down)) / (2.0 * h as f64);
                assert!((num - dv[k] as f64).abs() < 2e-3, "value {k}: {num} vs {}", dv[k]);
            }
        }
    }

    #[test]
    fn gaussian_and_alphazero_gradients_match_finite_differences() {
        let (n, d) = (4, 2);
        let means: Vec<f32> = (0..n * d).map(|x| x as f32 * 0.1 - 0.3).collect();
        let values = vec![0.2f32, -0.1, 0.4, 0.0];
        let log_std = vec![-0.3f32, 0.2];
        let taken: Vec<f32> = (0..n * d).map(|x| (x as f32 * 0.7).sin()).collect();
        let old_logp = [-1.5f32, -2.0, -1.8, -2.5];
        let adv = [1.0f32, -0.5, 0.3, 0.8];
        let ret = [0.1f32, 0.2, 0.3, 0.4];
        let t = PpoTargets { old_logp: &old_logp, advantages: &adv, returns: &ret, old_values: &ret };
        let coefs = PpoCoefs { clip_coef: 0.2, vf_coef: 0.5, ent_coef: 0.01, norm_adv: false, clip_vloss: false };
        let loss = |m: &[f32], ls: &[f32]| {
            let (mut a, mut b, mut c) = (vec![0.0; n * d], vec![0.0; n], vec![0.0; d]);
            let s = ppo_gaussian(m, &values, ls, &taken, &t, &coefs, &mut a, &mut b, &mut c);
            s.policy_loss + 0.5 * s.value_loss - 0.01 * s.entropy
        };
        let (mut dm, mut dv, mut dls) = (vec![0.0; n * d], vec![0.0; n], vec![0.0; d]);
        ppo_gaussian(&means, &values, &log_std, &taken, &t, &coefs, &mut dm, &mut dv, &mut dls);
        let h = 1e-3f32;
        for k in 0..n * d {
            let (mut up, mut down) = (means.clone(), means.clone());
            up[k] += h;
            down[k] -= h;
            let num = (loss(&up, &log_std) - loss(&down, &log_std)) / (2.0 * h as f64);
            assert!((num - dm[k] as f64).abs() < 2e-3, "mean {k}: {num} vs {}", dm[k]);
        }
        for k in 0..d {
            let (mut up, mut down) = (log_std.clone(), log_std.clone());
            up[k] += h;
            down[k] -= h;
            let num = (loss(&means, &up) - loss(&means, &down)) / (2.0 * h as f64);
            assert!((num - dls[k] as f64).abs() < 2e-3, "log_std {k}: {num} vs {}", dls[k]);
        }
        // AlphaZero.
        let a = 3;
        let logits: Vec<f32> = (0..n * a).map(|x| (x as f32 * 1.3).cos()).collect();
        let masks: Vec<bool> = (0..n * a).map(|x| x % 3 != 2 || x == 11).collect();
        let target: Vec<f32> = (0..n * a).map(|x| if masks[x] { 0.25 + (x % 2) as f32 * 0.25 } else { 0.0 }).collect();
        let z = [1.0f32, -1.0, 0.0, 1.0];
        let az = |l: &[f32]| {
            let (mut a1, mut b1) = (vec![0.0; n * a], vec![0.0; n]);
            let s = alphazero(l, &values, &masks, &target, &z, 1.5, a, &mut a1, &mut b1);
            s.policy_loss + 1.5 * s.value_loss
        };
        let (mut dl, mut dv) = (vec![0.0; n * a], vec![0.0; n]);
        alphazero(&logits, &values, &masks, &target, &z, 1.5, a, &mut dl, &mut dv);
        for k in 0..n * a {
            let (mut up, mut down) = (logits.clone(), logits.clone());
            up[k] += h;
            down[k] -= h;
            let num = (az(&up) - az(&down)) / (2.0 * h as f64);
            assert!((num - dl[k] as f64).abs() < 2e-3, "az logit {k}: {num} vs {}", dl[k]);
        }
        for (k, &g) in dv.iter().enumerate() {
            assert!((g - 1.5 * 2.0 * (values[k] - z[k]) / n as f32).abs() < 1e-6);
        }
    }
}
