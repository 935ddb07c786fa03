//! Times the phases of one PPO update of the default network (forward, backward, the whole
//! step), the median of 15 runs, and the step's arithmetic rate (the FLOP of its dense
//! products: forward, weight and input gradients, 2·batch·inputs·outputs each):
//! `cargo run --release --example learner_phases -p twisterl-core -- [threads] [batch] [peak GFLOP/s]`.
use std::time::Instant;
use twisterl_core::learn::net::{backward, forward, Tape};
use twisterl_core::learn::params::zeros_like;
use twisterl_core::learn::{AdamConfig, Learner, PpoCoefs, Rollout};
use twisterl_core::policy::{Activation, Input, Layer, Policy};

fn linear(inputs: usize, outputs: usize) -> Layer {
    let w: Vec<f32> = (0..inputs * outputs).map(|k| ((k * 7919 % 1000) as f32 / 1000.0 - 0.5) * 0.1).collect();
    Layer::linear_from_torch(&w, &vec![0.01; outputs], inputs, outputs).unwrap()
}

/// The median time of `reps` runs after one warm-up, in seconds.
fn time(name: &str, reps: usize, mut f: impl FnMut()) -> f64 {
    f();
    let mut times: Vec<f64> = (0..reps).map(|_| {
        let t = Instant::now();
        f();
        t.elapsed().as_secs_f64()
    }).collect();
    times.sort_by(f64::total_cmp);
    let median = times[reps / 2];
    println!("{name:<10} {:8.2} ms", median * 1e3);
    median
}

fn main() {
    let mut args = std::env::args().skip(1);
    let threads: usize = args.next().and_then(|s| s.parse().ok()).unwrap_or(2);
    let batch: usize = args.next().and_then(|s| s.parse().ok()).unwrap_or(4096);
    let peak: Option<f64> = args.next().and_then(|s| s.parse().ok());
    let (o, k, e, h, a) = (81usize, 9usize, 512usize, 256usize, 4usize);
    let policy = Policy::new(o, vec![linear(o, e), Layer::Act(Activation::Relu), linear(e, h), Layer::Act(Activation::Relu)],
                             vec![linear(h, a)], vec![linear(h, 1)]).unwrap();
    let indices: Vec<u32> = (0..batch * k).map(|x| ((x % k) * 9 + x / k % 9) as u32).collect();
    let counts = vec![k as u32; batch];
    let input = Input::Sparse { indices: &indices, counts: &counts, stride: k };
    let mut tape = Tape::default();
    let (mut logits, mut values) = (Vec::new(), Vec::new());
    time("forward", 15, || forward(&policy, input, batch, &mut tape, &mut logits, &mut values, threads));
    let mut grads = zeros_like(&policy);
    time("backward", 15, || {
        let (mut dl, mut dv) = (vec![0.01f32; batch * a], vec![0.01f32; batch]);
        backward(&policy, &mut grads, input, batch, &mut tape, &mut dl, &mut dv, threads)
    });
    let mut learner = Learner::new(policy, None, vec![], AdamConfig::new(3e-4, 1e-5), Some(0.5), threads).unwrap();
    let actions: Vec<i64> = (0..batch as i64).map(|x| x % a as i64).collect();
    let masks = vec![true; batch * a];
    let f: Vec<f32> = (0..batch).map(|x| (x % 7) as f32 * 0.1 - 0.3).collect();
    let logp = vec![-1.4f32; batch];
    let data = Rollout { obs: input, actions: &actions, action_values: &[], masks: &masks, logp: &logp, advantages: &f,
                         returns: &f, values: &f };
    let rows: Vec<usize> = (0..batch).collect();
    let coefs = PpoCoefs { clip_coef: 0.1, vf_coef: 0.8, ent_coef: 0.01, norm_adv: true, clip_vloss: false };
    let step = time("ppo_step", 15, || { learner.ppo_step(&data, &rows, &coefs).unwrap(); });
    // The bag is no product; every other linear layer runs three.
    let flop = 3.0 * 2.0 * batch as f64 * (e * h + h * a + h) as f64;
    let rate = flop / step / 1e9;
    match peak {
        Some(p) => println!("{:.2} GFLOP per step, {rate:.0} GFLOP/s, {:.0}% of {p} GFLOP/s", flop / 1e9, 100.0 * rate / p),
        None => println!("{:.2} GFLOP per step, {rate:.0} GFLOP/s", flop / 1e9),
    }
}
