//! Adam (Kingma and Ba), step for step as `torch.optim.Adam` computes it (L2 weight decay
//! added to the gradient, not decoupled), and gradient-norm clipping as
//! `torch.nn.utils.clip_grad_norm_`.

/// Adam's settings.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AdamConfig {
    pub lr: f64,
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    pub weight_decay: f64,
}

impl AdamConfig {
    /// torch's defaults with this learning rate and epsilon.
    pub fn new(lr: f64, eps: f64) -> AdamConfig {
        AdamConfig { lr, beta1: 0.9, beta2: 0.999, eps, weight_decay: 0.0 }
    }

    /// A readable error for settings Adam cannot run with.
    pub fn check(&self) -> Result<(), String> {
        let fine = |v: f64| v.is_finite() && v >= 0.0;
        if !fine(self.lr) || !fine(self.eps) || !fine(self.weight_decay) {
            return Err(format!("Adam needs a finite, non-negative learning rate, epsilon and weight decay, not \
                                lr={} eps={} weight_decay={}", self.lr, self.eps, self.weight_decay));
        }
        if !(0.0..1.0).contains(&self.beta1) || !(0.0..1.0).contains(&self.beta2) {
            return Err(format!("Adam's betas must be in [0, 1), not {} and {}", self.beta1, self.beta2));
        }
        Ok(())
    }
}

/// One Adam step on each tensor: `params[k] -= lr · m̂ / (sqrt(v̂) + eps)` from `grads[k]`,
/// with the moments `m[k]` and `v[k]`; `step` is the step's number, from 1.
pub fn adam_step(cfg: &AdamConfig, step: u64, params: &mut [&mut [f32]], grads: &[&[f32]], m: &mut [&mut [f32]],
                 v: &mut [&mut [f32]]) {
    let bias1 = 1.0 - cfg.beta1.powi(step as i32);
    let bias2_sqrt = (1.0 - cfg.beta2.powi(step as i32)).sqrt();
    let step_size = (cfg.lr / bias1) as f32;
    let (b1, b2) = (cfg.beta1 as f32, cfg.beta2 as f32);
    let (eps, wd, bias2_sqrt) = (cfg.eps as f32, cfg.weight_decay as f32, bias2_sqrt as f32);
    for k in 0..params.len() {
        let (p, g, mk, vk) = (&mut *params[k], grads[k], &mut *m[k], &mut *v[k]);
        for i in 0..p.len() {
            let grad = if wd != 0.0 { g[i] + wd * p[i] } else { g[i] };
            mk[i] += (1.0 - b1) * (grad - mk[i]);
            vk[i] = vk[i] * b2 + (1.0 - b2) * grad * grad;
            let denom = vk[i].sqrt() / bias2_sqrt + eps;
            p[i] -= step_size * (mk[i] / denom);
        }
    }
}

/// Scale the gradients so that their global L2 norm is at most `max_norm`; returns the
/// norm before scaling.
pub fn clip_grad_norm(grads: &mut [&mut [f32]], max_norm: f64) -> f64 {
    let total = grads.iter().map(|g| g.iter().map(|&x| x as f64 * x as f64).sum::<f64>()).sum::<f64>().sqrt();
    let coef = max_norm / (total + 1e-6);
    if coef < 1.0 {
        let c = coef as f32;
        for g in grads.iter_mut() {
            g.iter_mut().for_each(|x| *x *= c);
        }
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_step_moves_each_value_by_about_the_learning_rate() {
        let cfg = AdamConfig::new(0.1, 1e-8);
        let (mut p, g, mut m, mut v) = (vec![1.0f32, -2.0, 0.5], vec![3.0f32, -0.001, 0.0], vec![0.0f32; 3], vec![0.0f32; 3]);
        adam_step(&cfg, 1, &mut [&mut p], &[&g], &mut [&mut m], &mut [&mut v]);
        assert!((p[0] - 0.9).abs() < 1e-6 && (p[1] + 1.9).abs() < 1e-4 && p[2] == 0.5, "{p:?}");
    }

    #[test]
    fn weight_decay_pulls_towards_zero() {
        let cfg = AdamConfig { weight_decay: 0.5, ..AdamConfig::new(0.01, 1e-8) };
        let (mut p, g, mut m, mut v) = (vec![2.0f32], vec![0.0f32], vec![0.0f32], vec![0.0f32]);
        adam_step(&cfg, 1, &mut [&mut p], &[&g], &mut [&mut m], &mut [&mut v]);
        assert!((p[0] - 1.99).abs() < 1e-6);
    }

    #[test]
    fn clipping_bounds_the_global_norm() {
        let (mut a, mut b) = (vec![3.0f32], vec![4.0f32]);
        let norm = clip_grad_norm(&mut [&mut a, &mut b], 1.0);
        assert!((norm - 5.0).abs() < 1e-9);
        assert!(((a[0] * a[0] + b[0] * b[0]).sqrt() - 1.0).abs() < 1e-5);
        let mut c = vec![0.1f32];
        clip_grad_norm(&mut [&mut c], 1.0);
        assert_eq!(c[0], 0.1);
    }
}
