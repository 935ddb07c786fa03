//! Wasm size probe for candle-core: one export that builds the 8-puzzle policy from a seed
//! and runs one forward pass on `batch` random boards (dense 0/1 input, `x · W^T + b`).

#[path = "../../src/net.rs"]
mod net;

use candle_core::{Device, Result, Tensor};
use net::*;

fn forward(seed: u64, batch: usize) -> Result<f32> {
    let dev = Device::Cpu;
    let w = random_weights(seed);
    let wt = |v: &[f32], r: usize, c: usize| Tensor::from_vec(transpose(v, r, c), (c, r), &dev);
    let b = |v: &[f32]| Tensor::from_slice(v, v.len(), &dev);
    let (w1, b1, w2, b2) = (wt(&w.w1, H1, OBS)?, b(&w.b1)?, wt(&w.w2, H2, H1)?, b(&w.b2)?);
    let (wp, bp, wv, bv) = (wt(&w.wp, ACTIONS, H2)?, b(&w.bp)?, wt(&w.wv, 1, H2)?, b(&w.bv)?);
    let (_, dense) = observations(batch, seed + 1);
    let x = Tensor::from_vec(dense, (batch, OBS), &dev)?;
    let h = x.matmul(&w1)?.broadcast_add(&b1)?.relu()?;
    let h = h.matmul(&w2)?.broadcast_add(&b2)?.relu()?;
    let logits = h.matmul(&wp)?.broadcast_add(&bp)?.flatten_all()?.to_vec1::<f32>()?;
    let values = h.matmul(&wv)?.broadcast_add(&bv)?.flatten_all()?.to_vec1::<f32>()?;
    Ok(logits.iter().chain(&values).sum())
}

/// Sum of all logits and values (so nothing is dead-stripped); NaN on an error.
#[no_mangle]
pub extern "C" fn forward_puzzle(seed: u32, batch: u32) -> f32 {
    forward(seed as u64, batch as usize).unwrap_or(f32::NAN)
}
