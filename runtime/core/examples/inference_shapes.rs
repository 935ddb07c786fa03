//! Times one thread's batched inference of the 8-puzzle's default network (81 sparse
//! features -> 512 -> ReLU -> 256 -> ReLU -> 4 logits and a value) at several batch sizes,
//! by the direct kernel (`Policy::forward`, what search and play use) and through packed
//! weights (`Packed::forward`, what a rollout uses):
//! `cargo run --release --example inference_shapes -p twisterl-core -- [batches...]`.
//! GFLOP/s count the dense products only, 2 × (512 × 256 + 256 × 5) per row.
use std::time::Instant;
use twisterl_core::policy::{Activation, Input, Layer, Policy, Workspace};
use twisterl_core::rng::Rng;

fn linear(rng: &mut Rng, inputs: usize, outputs: usize) -> Layer {
    let bound = 1.0 / (inputs as f64).sqrt();
    let w: Vec<f32> = (0..inputs * outputs).map(|_| rng.uniform(-bound, bound) as f32).collect();
    let b: Vec<f32> = (0..outputs).map(|_| rng.uniform(-bound, bound) as f32).collect();
    Layer::linear_from_torch(&w, &b, inputs, outputs).unwrap()
}

fn main() {
    let batches: Vec<usize> = std::env::args().skip(1).filter_map(|s| s.parse().ok()).collect();
    let batches = if batches.is_empty() { vec![1, 2, 4, 8, 16, 32, 64, 128, 256] } else { batches };
    let mut rng = Rng::new(0, 0);
    let trunk = vec![linear(&mut rng, 81, 512), Layer::Act(Activation::Relu), linear(&mut rng, 512, 256),
                     Layer::Act(Activation::Relu)];
    let policy = Policy::new(81, trunk, vec![linear(&mut rng, 256, 4)], vec![linear(&mut rng, 256, 1)]).unwrap();
    let packed = policy.packed(true);
    let flop_per_row = 2.0 * (512.0 * 256.0 + 256.0 * 5.0);
    println!("{:>6} {:>22} {:>22}", "rows", "direct µs/call GFLOP/s", "packed µs/call GFLOP/s");
    for &batch in &batches {
        // 9 ones per row out of 81, as the 8-puzzle's observation.
        let indices: Vec<u32> = (0..batch * 9).map(|i| ((i % 9) * 9) as u32 + rng.below(9) as u32).collect();
        let counts = vec![9u32; batch];
        let input = Input::Sparse { indices: &indices, counts: &counts, stride: 9 };
        let (mut logits, mut values) = (vec![0.0f32; batch * 4], vec![0.0f32; batch]);
        let mut ws = Workspace::default();
        let reps = (2_000_000 / batch).clamp(20, 20_000);
        let mut time = |f: &mut dyn FnMut(&mut [f32], &mut [f32], &mut Workspace)| {
            f(&mut logits, &mut values, &mut ws);
            let mut best = f64::INFINITY;
            for _ in 0..5 {
                let t = Instant::now();
                for _ in 0..reps / 5 {
                    f(&mut logits, &mut values, &mut ws);
                }
                best = best.min(t.elapsed().as_secs_f64() / (reps / 5) as f64);
            }
            best
        };
        let direct = time(&mut |l, v, ws| policy.forward(input, batch, l, v, ws));
        let fast = time(&mut |l, v, ws| packed.forward(input, batch, l, v, ws));
        let rate = |t: f64| flop_per_row * batch as f64 / t / 1e9;
        println!("{batch:>6} {:>12.1} {:>9.1} {:>12.1} {:>9.1}", direct * 1e6, rate(direct), fast * 1e6, rate(fast));
    }
}
