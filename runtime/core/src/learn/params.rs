//! A policy's parameters as one ordered list, the order torch's `parameters()` gives for the
//! same network: trunk, policy head, value head, each layer's weight before its bias
//! (LayerNorm: scale, then shift). Gradients and Adam's moments are policies of the same
//! shape, so every list lines up with every other.

use crate::policy::{Conv2d, Layer, Policy};

/// Every parameter tensor of `policy`, in order.
pub fn params(policy: &Policy) -> Vec<&[f32]> {
    let mut out = Vec::new();
    for layers in [&policy.trunk, &policy.policy_head, &policy.value_head] {
        collect(layers, &mut out);
    }
    out
}

/// Every parameter tensor of `policy`, in order, to write.
pub fn params_mut(policy: &mut Policy) -> Vec<&mut [f32]> {
    let mut out = Vec::new();
    let Policy { trunk, policy_head, value_head, .. } = policy;
    for layers in [trunk, policy_head, value_head] {
        collect_mut(layers, &mut out);
    }
    out
}

fn collect<'a>(layers: &'a [Layer], out: &mut Vec<&'a [f32]>) {
    for layer in layers {
        match layer {
            Layer::Linear { weight, bias, .. } | Layer::Conv2d(Conv2d { weight, bias, .. }) => {
                out.push(weight);
                out.push(bias);
            }
            Layer::LayerNorm { gamma, beta, .. } => {
                out.push(gamma);
                out.push(beta);
            }
            Layer::Residual(body) => collect(body, out),
            Layer::Act(_) => {}
        }
    }
}

fn collect_mut<'a>(layers: &'a mut [Layer], out: &mut Vec<&'a mut [f32]>) {
    for layer in layers {
        match layer {
            Layer::Linear { weight, bias, .. } | Layer::Conv2d(Conv2d { weight, bias, .. }) => {
                out.push(weight);
                out.push(bias);
            }
            Layer::LayerNorm { gamma, beta, .. } => {
                out.push(gamma);
                out.push(beta);
            }
            Layer::Residual(body) => collect_mut(body, out),
            Layer::Act(_) => {}
        }
    }
}

/// A policy of the same shape with every parameter zero.
pub fn zeros_like(policy: &Policy) -> Policy {
    let mut out = policy.clone();
    zero(&mut out);
    out
}

/// Set every parameter of `policy` to zero.
pub fn zero(policy: &mut Policy) {
    for p in params_mut(policy) {
        p.fill(0.0);
    }
}

/// How many parameter values `policy` has.
pub fn count(policy: &Policy) -> usize {
    params(policy).iter().map(|p| p.len()).sum()
}

/// The parameters of `policy` in torch's layouts, in order: linear weights `[out, in]`,
/// convolution weights `[out, in, kh, kw]` (flattened), the rest as stored.
pub fn to_torch(policy: &Policy) -> Vec<Vec<f32>> {
    let mut out = Vec::new();
    for layers in [&policy.trunk, &policy.policy_head, &policy.value_head] {
        torch_layout(layers, &mut out);
    }
    out
}

fn torch_layout(layers: &[Layer], out: &mut Vec<Vec<f32>>) {
    for layer in layers {
        match layer {
            Layer::Linear { weight, bias, inputs, outputs } => {
                out.push(transpose(weight, *inputs, *outputs));
                out.push(bias.clone());
            }
            Layer::Conv2d(conv) => {
                let patch = conv.in_channels * conv.kernel.0 * conv.kernel.1;
                out.push(transpose(&conv.weight, patch, conv.out_channels));
                out.push(conv.bias.clone());
            }
            Layer::LayerNorm { gamma, beta, .. } => {
                out.push(gamma.clone());
                out.push(beta.clone());
            }
            Layer::Residual(body) => torch_layout(body, out),
            Layer::Act(_) => {}
        }
    }
}

/// Replace the parameters of `policy` with `values`, given in torch's layouts (as
/// [`to_torch`] gives them); the count and every size must match.
pub fn set_from_torch(policy: &mut Policy, values: &[Vec<f32>]) -> Result<(), String> {
    let shapes = to_torch(policy);
    if shapes.len() != values.len() {
        return Err(format!("the network has {} parameter tensors, not {}", shapes.len(), values.len()));
    }
    for (k, (want, got)) in shapes.iter().zip(values).enumerate() {
        if want.len() != got.len() {
            return Err(format!("parameter tensor {k} has {} values, not {}", want.len(), got.len()));
        }
    }
    let mut next = values.iter();
    let Policy { trunk, policy_head, value_head, .. } = policy;
    for layers in [trunk, policy_head, value_head] {
        from_torch_layout(layers, &mut next);
    }
    Ok(())
}

fn from_torch_layout<'a>(layers: &mut [Layer], next: &mut impl Iterator<Item = &'a Vec<f32>>) {
    for layer in layers {
        match layer {
            Layer::Linear { weight, bias, inputs, outputs } => {
                *weight = transpose(next.next().expect("counted"), *outputs, *inputs);
                bias.copy_from_slice(next.next().expect("counted"));
            }
            Layer::Conv2d(conv) => {
                let patch = conv.in_channels * conv.kernel.0 * conv.kernel.1;
                conv.weight = transpose(next.next().expect("counted"), conv.out_channels, patch);
                conv.bias.copy_from_slice(next.next().expect("counted"));
            }
            Layer::LayerNorm { gamma, beta, .. } => {
                gamma.copy_from_slice(next.next().expect("counted"));
                beta.copy_from_slice(next.next().expect("counted"));
            }
            Layer::Residual(body) => from_torch_layout(body, next),
            Layer::Act(_) => {}
        }
    }
}

/// The transpose of a row-major `rows × cols` matrix.
fn transpose(x: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    let mut out = vec![0.0f32; x.len()];
    for r in 0..rows {
        for c in 0..cols {
            out[c * rows + r] = x[r * cols + c];
        }
    }
    out
}
