//! Wasm size probe for candle: one export that builds TwisteRL's default PPO network and a
//! random minibatch from a seed, runs one full learner step (forward, PPO loss, backward,
//! gradient-norm clip, Adam) and returns the loss. The learner is the native benchmark's.

#[path = "../../candle/src/learner.rs"]
#[allow(dead_code)] // the one-hot input and the FLOP count serve the native benchmark
mod learner;

use candle_core::{Device, Result};
use learner::{Batch, Config, Input, Learner};

fn step(seed: u64, batch: usize) -> Result<f32> {
    let dev = Device::Cpu;
    let c = Config { batch, obs: 81, nnz: 9, emb: 512, hidden: vec![256], actions: 4, input: Input::Bag };
    let x = Batch::random(&c, seed + 1, &dev)?;
    let mut l = Learner::new(c, seed, &dev)?;
    l.step(&x)
}

/// The 8-puzzle net's PPO loss before one learner step on `batch` random rows; NaN on error.
#[no_mangle]
pub extern "C" fn train_step(seed: u32, batch: u32) -> f32 {
    step(seed as u64, batch as usize).unwrap_or(f32::NAN)
}
