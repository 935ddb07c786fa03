//! TwisteRL's default PPO network and one learner step in candle (shared by the native
//! benchmark `main.rs` and the wasm size probe `../candle-wasm`).
//!
//! The network (`BasicPolicy` in `twisterl/train/nets.py`):
//!   embedding bag over K indices of an O-wide one-hot row (`sum W_emb[O,E][idx] + b`)
//!   -> ReLU -> Linear E->H1 -> ReLU [-> Linear H1->H2 -> ReLU ...]
//!   -> policy head Linear H->A and value head Linear H->1.
//! The loss is `twisterl/train/ppo.py`'s: masked log-softmax (illegal logits set to -1e9),
//! clipped surrogate (clip 0.1) on ratio = exp(logp_a - old_logp), plus 0.8 x the value
//! loss (0.5 x squared error, mean), minus 0.01 x the entropy over the legal actions.
//! Then the gradients are clipped to a global norm of 0.5 (as torch's clip_grad_norm_) and
//! an Adam step is taken (lr 3e-4, eps 1e-5, betas 0.9/0.999, no weight decay: candle-nn's
//! AdamW with weight_decay 0 is Adam).
//!
//! FLOPs charged per step (dense matmul work only; biases, activations, loss and Adam
//! are not counted), with Σ_L = Σ in·out over the Linear layers E->H1, ..., H->A, H->1:
//!   forward      2·B·Σ_L   + 2·B·K·E  (the bag's gathered adds)
//!   backward     4·B·Σ_L   + 2·B·K·E  (input and weight grads; the bag's scatter)
//!   total        6·B·Σ_L   + 4·B·K·E
//! For one hidden layer Σ_L = E·H + H·A + H. The `OneHot` input (a dense [B,O] 0/1 matrix
//! times W_emb) does more real work but is charged the same nominal figure.

use candle_core::{DType, Device, Result, Tensor, Var, D};
use candle_nn::{AdamW, Linear, Module, Optimizer, ParamsAdamW};

pub const CLIP_COEF: f64 = 0.1;
pub const VF_COEF: f64 = 0.8;
pub const ENT_COEF: f64 = 0.01;
pub const MAX_GRAD_NORM: f64 = 0.5;

#[derive(Clone, Copy, PartialEq, Debug)]
pub enum Input {
    /// `index_select` of the K rows, reshaped to `[B, K, E]`, summed over K.
    Bag,
    /// Dense `[B, O]` 0/1 rows times `W_emb`.
    OneHot,
}

#[derive(Clone, Debug)]
pub struct Config {
    pub batch: usize,
    pub obs: usize,
    pub nnz: usize,
    pub emb: usize,
    pub hidden: Vec<usize>,
    pub actions: usize,
    pub input: Input,
}

impl Config {
    /// `6·B·Σ_L + 4·B·K·E` (see the module doc).
    pub fn flops_per_step(&self) -> f64 {
        let mut sum_l = 0usize;
        let mut width = self.emb;
        for &h in &self.hidden {
            sum_l += width * h;
            width = h;
        }
        sum_l += width * (self.actions + 1);
        let b = self.batch as f64;
        6.0 * b * sum_l as f64 + 4.0 * b * (self.nnz * self.emb) as f64
    }
}

/// splitmix64: weights and random data need no distribution library (and no OS entropy,
/// which a bare wasm module has not got).
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    /// Uniform in [0, 1).
    pub fn uniform(&mut self) -> f32 {
        (self.next() >> 40) as f32 / (1u64 << 24) as f32
    }
    /// Standard normal (Box-Muller).
    pub fn normal(&mut self) -> f32 {
        let u = self.uniform().max(1e-7);
        let v = self.uniform();
        (-2.0 * u.ln()).sqrt() * (std::f32::consts::TAU * v).cos()
    }
}

/// One minibatch of random PPO data, on the device.
pub struct Batch {
    /// `[B*K]` u32 feature indices (bag input).
    ids: Tensor,
    /// `[B, O]` f32 0/1 rows (one-hot input).
    dense: Tensor,
    /// `[B, A]` u8, 1 = legal.
    mask: Tensor,
    /// `[B, A]` f32 filled with -1e9 (what illegal logits become).
    neg: Tensor,
    /// `[B, A]` f32 zeros (masked-out entropy terms).
    zeros: Tensor,
    /// `[B, 1]` u32 taken (legal) action.
    actions: Tensor,
    old_logp: Tensor,
    adv: Tensor,
    returns: Tensor,
}

impl Batch {
    pub fn random(c: &Config, seed: u64, dev: &Device) -> Result<Batch> {
        let (b, o, k, na) = (c.batch, c.obs, c.nnz, c.actions);
        let mut rng = Rng(seed ^ 0xDA7A);
        // One index per group of O/K features when O splits into K groups (a cell-major
        // one-hot board, as the 8-puzzle's 9 cells x 9 tiles); otherwise K distinct ones.
        let mut ids = Vec::with_capacity(b * k);
        let mut dense = vec![0f32; b * o];
        let mut row: Vec<usize> = Vec::with_capacity(k);
        for r in 0..b {
            row.clear();
            if o % k == 0 {
                let g = o / k;
                row.extend((0..k).map(|cell| cell * g + rng.below(g)));
            } else {
                while row.len() < k {
                    let f = rng.below(o);
                    if !row.contains(&f) {
                        row.push(f);
                    }
                }
            }
            for &f in &row {
                dense[r * o + f] = 1.0;
                ids.push(f as u32);
            }
        }
        let mut mask = vec![0u8; b * na];
        let mut acts = Vec::with_capacity(b);
        let mut old_logp = Vec::with_capacity(b);
        for r in 0..b {
            let m = &mut mask[r * na..(r + 1) * na];
            for x in m.iter_mut() {
                *x = (rng.uniform() < 0.5) as u8;
            }
            m[rng.below(na)] = 1; // at least one legal action
            let legal: Vec<usize> = (0..na).filter(|&i| m[i] == 1).collect();
            acts.push(legal[rng.below(legal.len())] as u32);
            old_logp.push(-(legal.len() as f32).ln() + 0.1 * rng.normal());
        }
        let adv: Vec<f32> = (0..b).map(|_| rng.normal()).collect();
        let returns: Vec<f32> = (0..b).map(|_| rng.normal()).collect();
        Ok(Batch {
            ids: Tensor::from_vec(ids, b * k, dev)?,
            dense: Tensor::from_vec(dense, (b, o), dev)?,
            mask: Tensor::from_vec(mask, (b, na), dev)?,
            neg: Tensor::full(-1e9f32, (b, na), dev)?,
            zeros: Tensor::zeros((b, na), DType::F32, dev)?,
            actions: Tensor::from_vec(acts, (b, 1), dev)?,
            old_logp: Tensor::from_vec(old_logp, b, dev)?,
            adv: Tensor::from_vec(adv, b, dev)?,
            returns: Tensor::from_vec(returns, b, dev)?,
        })
    }
}

/// A trainable tensor with torch's default init range, uniform ±1/sqrt(fan_in).
fn param(rng: &mut Rng, shape: &[usize], fan_in: usize, dev: &Device) -> Result<Var> {
    let bound = 1.0 / (fan_in as f32).sqrt();
    let n = shape.iter().product();
    let v: Vec<f32> = (0..n).map(|_| (2.0 * rng.uniform() - 1.0) * bound).collect();
    Var::from_tensor(&Tensor::from_vec(v, shape, dev)?)
}

pub struct Net {
    /// `[O, E]`, input-major as TwisteRL's `InputLayer` stores it.
    w_emb: Tensor,
    b_emb: Tensor,
    common: Vec<Linear>,
    policy: Linear,
    value: Linear,
}

impl Net {
    /// The network and its trainable variables.
    pub fn new(c: &Config, seed: u64, dev: &Device) -> Result<(Net, Vec<Var>)> {
        let mut rng = Rng(seed);
        let mut vars = Vec::new();
        let push = |v: Var, vars: &mut Vec<Var>| {
            let t = v.as_tensor().clone();
            vars.push(v);
            t
        };
        let w_emb = push(param(&mut rng, &[c.obs, c.emb], c.obs, dev)?, &mut vars);
        let b_emb = push(param(&mut rng, &[c.emb], c.obs, dev)?, &mut vars);
        // candle_nn::Linear: weight `[out, in]` (torch's layout), y = x·Wᵀ + b.
        let mut linear = |inp: usize, out: usize, vars: &mut Vec<Var>| -> Result<Linear> {
            let w = push(param(&mut rng, &[out, inp], inp, dev)?, vars);
            let b = push(param(&mut rng, &[out], inp, dev)?, vars);
            Ok(Linear::new(w, Some(b)))
        };
        let mut common = Vec::new();
        let mut width = c.emb;
        for &h in &c.hidden {
            common.push(linear(width, h, &mut vars)?);
            width = h;
        }
        let policy = linear(width, c.actions, &mut vars)?;
        let value = linear(width, 1, &mut vars)?;
        Ok((Net { w_emb, b_emb, common, policy, value }, vars))
    }

    /// Logits `[B, A]` and values `[B]`.
    pub fn forward(&self, c: &Config, x: &Batch) -> Result<(Tensor, Tensor)> {
        let e = match c.input {
            Input::Bag => self
                .w_emb
                .index_select(&x.ids, 0)?
                .reshape((c.batch, c.nnz, c.emb))?
                .sum(1)?,
            Input::OneHot => x.dense.matmul(&self.w_emb)?,
        };
        let mut h = e.broadcast_add(&self.b_emb)?.relu()?;
        for layer in &self.common {
            h = layer.forward(&h)?.relu()?;
        }
        let logits = self.policy.forward(&h)?;
        let values = self.value.forward(&h)?.squeeze(1)?;
        Ok((logits, values))
    }
}

/// `ppo.py`'s loss on one minibatch.
pub fn ppo_loss(logits: &Tensor, values: &Tensor, x: &Batch) -> Result<Tensor> {
    let masked = x.mask.where_cond(logits, &x.neg)?;
    let logp_all = candle_nn::ops::log_softmax(&masked, D::Minus1)?;
    let logp = logp_all.gather(&x.actions, 1)?.squeeze(1)?;
    let ratio = (logp - &x.old_logp)?.exp()?;
    let neg_adv = x.adv.neg()?;
    let pg1 = (&neg_adv * &ratio)?;
    let pg2 = (&neg_adv * ratio.clamp(1.0 - CLIP_COEF, 1.0 + CLIP_COEF)?)?;
    let pg_loss = pg1.maximum(&pg2)?.mean_all()?;
    let v_loss = ((values - &x.returns)?.sqr()? * 0.5)?.mean_all()?;
    let plogp = (logp_all.exp()? * &logp_all)?;
    let entropy = x.mask.where_cond(&plogp, &x.zeros)?.sum(1)?.neg()?.mean_all()?;
    pg_loss + (v_loss * VF_COEF)? - (entropy * ENT_COEF)?
}

pub struct Learner {
    pub config: Config,
    net: Net,
    vars: Vec<Var>,
    opt: AdamW,
}

impl Learner {
    pub fn new(config: Config, seed: u64, dev: &Device) -> Result<Learner> {
        let (net, vars) = Net::new(&config, seed, dev)?;
        let params = ParamsAdamW { lr: 3e-4, beta1: 0.9, beta2: 0.999, eps: 1e-5, weight_decay: 0.0 };
        let opt = AdamW::new(vars.clone(), params)?;
        Ok(Learner { config, net, vars, opt })
    }

    /// One full step (forward, loss, backward, clip, Adam); returns the loss before it.
    pub fn step(&mut self, x: &Batch) -> Result<f32> {
        let (logits, values) = self.net.forward(&self.config, x)?;
        let loss = ppo_loss(&logits, &values, x)?;
        let mut grads = loss.backward()?;
        // Global norm over every parameter's gradient, then all scaled by
        // min(1, max_norm / (norm + 1e-6)), as torch.nn.utils.clip_grad_norm_.
        let mut sq = Vec::with_capacity(self.vars.len());
        for v in &self.vars {
            if let Some(g) = grads.get(v.as_tensor()) {
                sq.push(g.sqr()?.sum_all()?);
            }
        }
        let norm = Tensor::stack(&sq, 0)?.sum_all()?.sqrt()?.to_scalar::<f32>()? as f64;
        let scale = (MAX_GRAD_NORM / (norm + 1e-6)).min(1.0);
        for v in &self.vars {
            if let Some(g) = grads.remove(v.as_tensor()) {
                grads.insert(v.as_tensor(), (g * scale)?);
            }
        }
        self.opt.step(&grads)?;
        loss.to_scalar::<f32>()
    }
}
