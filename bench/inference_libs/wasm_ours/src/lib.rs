//! Wasm size probe for TwisteRL's own inference: one export that builds the 8-puzzle
//! policy from a seed and runs one forward pass on `batch` random boards.

#[path = "../../src/net.rs"]
mod net;

use net::*;
use twisterl_core::policy::{Activation, Input, Layer, Policy, Workspace};

/// Sum of all logits and values (so nothing is dead-stripped); NaN on a bad shape.
#[no_mangle]
pub extern "C" fn forward_puzzle(seed: u32, batch: u32) -> f32 {
    let batch = batch as usize;
    let w = random_weights(seed as u64);
    let layers = (|| -> Result<_, String> {
        Ok((
            Layer::linear_from_torch(&w.w1, &w.b1, OBS, H1)?,
            Layer::linear_from_torch(&w.w2, &w.b2, H1, H2)?,
            Layer::linear_from_torch(&w.wp, &w.bp, H2, ACTIONS)?,
            Layer::linear_from_torch(&w.wv, &w.bv, H2, 1)?,
        ))
    })();
    let Ok((l1, l2, p, v)) = layers else { return f32::NAN };
    let trunk = vec![l1, Layer::Act(Activation::Relu), l2, Layer::Act(Activation::Relu)];
    let Ok(policy) = Policy::new(OBS, trunk, vec![p], vec![v]) else { return f32::NAN };
    let (idx, _) = observations(batch, seed as u64 + 1);
    let counts = vec![ONES as u32; batch];
    let (mut logits, mut values) = (vec![0.0f32; batch * ACTIONS], vec![0.0f32; batch]);
    let mut ws = Workspace::default();
    let input = Input::Sparse { indices: &idx, counts: &counts, stride: ONES };
    policy.forward(input, batch, &mut logits, &mut values, &mut ws);
    logits.iter().chain(&values).sum()
}
