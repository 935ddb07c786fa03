//! Training passes of a [`Policy`]: a forward pass that keeps each layer's input on a
//! [`Tape`], and the backward pass that turns the gradients of the logits and values into
//! gradients of every parameter (a policy of the same shape, see [`super::params`]).
//!
//! The first trunk layer, when linear, reads the observation as it comes: a sparse one is an
//! embedding bag forward and a scatter of rows backward. No gradient flows into the
//! observation itself.

use super::gemm::{gemm, gemm_sums, gemm_then, Mat, Start};
use super::pool::{self, Disjoint};
use super::wide::wide;
use std::sync::Mutex;
use crate::policy::{activate, densify, Activation, Conv2d, Input, Layer, Policy};

/// What the backward pass needs from the forward pass, reused between minibatches.
#[derive(Default, Debug)]
pub struct Tape {
    /// The input of every trunk layer after the first, then of the policy head's and the
    /// value head's, in pre-order (a residual block's own slot, then its body's).
    trunk: Vec<Vec<f32>>,
    policy: Vec<Vec<f32>>,
    value: Vec<Vec<f32>>,
    /// The trunk's output and its width.
    hidden: Vec<f32>,
    width: usize,
    /// Whether the first trunk layer read the observation directly.
    input_layer: bool,
    dense: Vec<f32>,
    tmp: Vec<f32>,
    dh: Vec<f32>,
    dh2: Vec<f32>,
    /// Both heads' first linear layers side by side: `[Wp | Wv]`, then `[bp | bv]`.
    joined: Vec<f32>,
    conv: ConvScratch,
}

#[derive(Default, Debug)]
struct ConvScratch {
    patches: Vec<f32>,
    rows: Vec<f32>,
    dpatches: Vec<f32>,
}

/// Logits `[batch, num_actions]` and values `[batch]` for `input`, keeping on `tape` what
/// [`backward`] needs.
pub fn forward(policy: &Policy, input: Input<'_>, batch: usize, tape: &mut Tape, logits: &mut Vec<f32>,
               values: &mut Vec<f32>, threads: usize) {
    let Tape { trunk, policy: ptape, value: vtape, hidden, width, input_layer, dense, tmp, joined, conv, .. } = tape;
    let mut fused = false;
    let rest = match policy.trunk.first() {
        Some(Layer::Linear { weight, bias, inputs, outputs }) => {
            room(hidden, batch * outputs);
            // The activation after the input layer, applied as its rows are made.
            let act = fusable(&policy.trunk, 1, true);
            fused = act.is_some();
            let then = |_: usize, rows: &mut [f32]| if let Some(act) = act { activate(act, rows) };
            match input {
                Input::Sparse { indices, counts, stride } => {
                    let bag = Bag { indices, counts, stride, inputs: *inputs, outputs: *outputs };
                    bag_forward(&bag, weight, bias, &mut hidden[..batch * outputs], threads, &then);
                }
                Input::Dense { x, width } => {
                    gemm_then(batch, *outputs, *inputs, Mat::rows(&x[..batch * width], width),
                              Mat::rows(weight, *outputs), hidden, Start::Bias(bias), threads, &then);
                }
            }
            *width = *outputs;
            *input_layer = true;
            &policy.trunk[1..]
        }
        _ => {
            densify(input, policy.inputs, batch, hidden);
            *width = policy.inputs;
            *input_layer = false;
            &policy.trunk[..]
        }
    };
    if let Input::Dense { x, .. } = input {
        dense.clear();
        dense.extend_from_slice(&x[..batch * policy.inputs]);
    }
    let mut slot = 0;
    *width = run(rest, batch, *width, hidden, trunk, &mut slot, conv, threads, true, fused);
    // Both heads' first linear layers, side by side, in one product: `hidden` is read once.
    let heads = first_linears(policy);
    if let Some(h) = &heads {
        let k = h.op + h.ov;
        join_heads(h, *width, joined);
        room(tmp, batch * k);
        gemm(batch, k, *width, Mat::rows(&hidden[..batch * *width], *width), Mat::rows(&joined[..*width * k], k),
             tmp, Start::Bias(&joined[*width * k..]), threads);
        for (out, lo, n) in [(&mut *logits, 0, h.op), (&mut *values, h.op, h.ov)] {
            out.clear();
            out.extend(tmp[..batch * k].chunks_exact(k).flat_map(|row| &row[lo..lo + n]));
        }
    }
    for (layers, tape, out) in [(&policy.policy_head, ptape, &mut *logits), (&policy.value_head, vtape, &mut *values)] {
        let mut slot = 0;
        let rest = match layers.first() {
            // A head's first linear layer reads the trunk's output where it is: its tape
            // slot stays empty, and backward reads `hidden`.
            // (Its output is already in `out`, from the joined product.)
            Some(Layer::Linear { outputs, .. }) if heads.is_some() => {
                empty_slot(tape, &mut slot);
                let w = run(&layers[1..], batch, *outputs, out, tape, &mut slot, conv, threads, false, false);
                out.truncate(batch * w);
                continue;
            }
            Some(Layer::Linear { weight, bias, inputs, outputs }) => {
                empty_slot(tape, &mut slot);
                out.resize(batch * outputs, 0.0);
                gemm(batch, *outputs, *inputs, Mat::rows(&hidden[..batch * inputs], *inputs),
                     Mat::rows(weight, *outputs), out, Start::Bias(bias), threads);
                let w = run(&layers[1..], batch, *outputs, out, tape, &mut slot, conv, threads, false, false);
                out.truncate(batch * w);
                continue;
            }
            _ => layers,
        };
        out.clear();
        out.extend_from_slice(&hidden[..batch * *width]);
        let w = run(rest, batch, *width, out, tape, &mut slot, conv, threads, false, false);
        out.truncate(batch * w);
    }
}

/// The gradients of every parameter of `policy` into `grads` (a policy of the same shape,
/// added to what it holds), from those of the logits and values of the last [`forward`].
/// `dlogits` and `dvalues` are used as scratch.
#[allow(clippy::too_many_arguments)]
pub fn backward(policy: &Policy, grads: &mut Policy, input: Input<'_>, batch: usize, tape: &mut Tape,
                dlogits: &mut Vec<f32>, dvalues: &mut Vec<f32>, threads: usize) {
    let Tape { trunk, policy: ptape, value: vtape, hidden, width, input_layer, dense, tmp, dh, dh2, joined, conv } = tape;
    let width = *width;
    // With no trunk the heads read the observation, whose gradient nothing needs.
    let heads_dx = !policy.trunk.is_empty();
    let trunk_out = &hidden[..batch * width];
    let parts = Parts { input: Some(trunk_out), output: None };
    let (mut rest, mut grest) = if *input_layer {
        (&policy.trunk[1..], &mut grads.trunk[1..])
    } else {
        (&policy.trunk[..], &mut grads.trunk[..])
    };
    if let Some(h) = first_linears(policy) {
        // Both heads start with a linear layer: each head's backward stops at the gradient of
        // that layer's output, and the two layers side by side, `[Wp | Wv]`, take one product
        // for their weight gradients, `hᵀ·[dp | dv]` (the biases' are its column sums), and one
        // for the trunk's output gradient, `[dp | dv]·[Wp | Wv]ᵀ` (no per-head buffers, no sum),
        // with the gradient of a last ReLU or tanh whose output is the trunk's applied to its
        // rows as they are made.
        let none = Parts { input: None, output: None };
        back(&policy.policy_head[1..], &mut grads.policy_head[1..], batch, dlogits, tmp, ptape, 1, conv, true, threads,
             none);
        back(&policy.value_head[1..], &mut grads.value_head[1..], batch, dvalues, tmp, vtape, 1, conv, true, threads,
             none);
        let (op, ov) = (h.op, h.ov);
        let k = op + ov;
        tmp.clear();
        for (p, v) in dlogits[..batch * op].chunks_exact(op).zip(dvalues[..batch * ov].chunks_exact(ov)) {
            tmp.extend_from_slice(p);
            tmp.extend_from_slice(v);
        }
        room(dh2, width * k);
        let mut sums = vec![0.0f32; k];
        gemm_sums(width, k, batch, Mat::rows(trunk_out, width).t(), Mat::rows(tmp, k), dh2, Start::Zero, threads,
                  &mut sums);
        let (Layer::Linear { weight: gwp, bias: gbp, .. }, Layer::Linear { weight: gwv, bias: gbv, .. }) =
            (&mut grads.policy_head[0], &mut grads.value_head[0]) else { unreachable!("gradients have the policy's shape") };
        for (i, row) in dh2[..width * k].chunks_exact(k).enumerate() {
            gwp[i * op..(i + 1) * op].iter_mut().zip(&row[..op]).for_each(|(g, d)| *g += d);
            gwv[i * ov..(i + 1) * ov].iter_mut().zip(&row[op..]).for_each(|(g, d)| *g += d);
        }
        gbp.iter_mut().zip(&sums[..op]).for_each(|(g, d)| *g += d);
        gbv.iter_mut().zip(&sums[op..]).for_each(|(g, d)| *g += d);
        if !heads_dx {
            return;
        }
        join_heads(&h, width, joined);
        let act = match rest.last() {
            Some(Layer::Act(act)) if from_output(*act) && trunk[slots_before(rest)].is_empty() => Some(*act),
            _ => None,
        };
        if act.is_some() {
            // The activation's gradient is applied here: the trunk's backward starts before it.
            let last = rest.len() - 1;
            rest = &rest[..last];
            grest = &mut grest[..last];
        }
        let then = |first: usize, rows: &mut [f32]| if let Some(act) = act {
            let y = &trunk_out[first * width..first * width + rows.len()];
            wide!(act_backward_from_output_plain(act, y, rows))
        };
        room(dh, batch * width);
        gemm_then(batch, width, k, Mat::rows(tmp, k), Mat::rows(&joined[..width * k], k).t(), dh, Start::Zero, threads,
                  &then);
    } else {
        back(&policy.policy_head, &mut grads.policy_head, batch, dlogits, tmp, ptape, 0, conv, heads_dx, threads, parts);
        back(&policy.value_head, &mut grads.value_head, batch, dvalues, tmp, vtape, 0, conv, heads_dx, threads, parts);
        if !heads_dx {
            return;
        }
        // Heads that are empty pass their gradients through unchanged.
        room(dh, batch * width);
        let (dl, dv) = (&dlogits[..batch * width], &dvalues[..batch * width]);
        elementwise(&mut dh[..batch * width], threads, |lo, d| {
            for ((o, a), b) in d.iter_mut().zip(&dl[lo..]).zip(&dv[lo..]) {
                *o = a + b;
            }
        });
    }
    let parts = Parts { input: None, output: Some(trunk_out) };
    back(rest, grest, batch, dh, dh2, trunk, 0, conv, *input_layer, threads, parts);
    if !*input_layer {
        return;
    }
    let (Layer::Linear { inputs, outputs, .. }, Layer::Linear { weight: gw, bias: gb, .. }) =
        (&policy.trunk[0], &mut grads.trunk[0]) else { unreachable!("the input layer is linear") };
    let dy = &dh[..batch * outputs];
    match input {
        Input::Sparse { indices, counts, stride } => {
            let bag = Bag { indices, counts, stride, inputs: *inputs, outputs: *outputs };
            bag_backward(&bag, dy, gw, gb, threads, tmp);
        }
        Input::Dense { .. } => {
            gemm_sums(*inputs, *outputs, batch, Mat::rows(&dense[..batch * inputs], *inputs).t(),
                      Mat::rows(dy, *outputs), gw, Start::Add, threads, gb);
        }
    }
}

/// Both heads' first layers, when both are linear (they read the trunk's output).
struct FirstLinears<'a> {
    wp: &'a [f32],
    bp: &'a [f32],
    op: usize,
    wv: &'a [f32],
    bv: &'a [f32],
    ov: usize,
}

fn first_linears(policy: &Policy) -> Option<FirstLinears<'_>> {
    match (policy.policy_head.first(), policy.value_head.first()) {
        (Some(Layer::Linear { weight: wp, bias: bp, outputs: op, .. }),
         Some(Layer::Linear { weight: wv, bias: bv, outputs: ov, .. })) =>
            Some(FirstLinears { wp, bp, op: *op, wv, bv, ov: *ov }),
        _ => None,
    }
}

/// `[Wp | Wv]` (`[width, op + ov]`, row-major), then `[bp | bv]`, into `out`.
fn join_heads(h: &FirstLinears<'_>, width: usize, out: &mut Vec<f32>) {
    out.clear();
    for i in 0..width {
        out.extend_from_slice(&h.wp[i * h.op..(i + 1) * h.op]);
        out.extend_from_slice(&h.wv[i * h.ov..(i + 1) * h.ov]);
    }
    out.extend_from_slice(&h.bp[..h.op]);
    out.extend_from_slice(&h.bv[..h.ov]);
}

/// The tape slot of the last of `layers` (whose slots start at 0).
fn slots_before(layers: &[Layer]) -> usize {
    layers[..layers.len() - 1].iter().map(slots).sum()
}

/// How many tape slots a layer takes: one, and a residual block's body's.
fn slots(layer: &Layer) -> usize {
    match layer {
        Layer::Residual(body) => 1 + body.iter().map(slots).sum::<usize>(),
        _ => 1,
    }
}

fn take_slot(tape: &mut Vec<Vec<f32>>, slot: &mut usize, x: &[f32]) {
    if tape.len() <= *slot {
        tape.resize_with(*slot + 1, Vec::new);
    }
    tape[*slot].clear();
    tape[*slot].extend_from_slice(x);
    *slot += 1;
}

/// Make `v` hold at least `len` values, to be overwritten: a longer one is kept as it is, so
/// that buffers that trade places (see [`move_slot`]) are not cleared again on every step.
/// Readers slice them to their rows.
fn room(v: &mut Vec<f32>, len: usize) {
    if v.len() < len {
        v.resize(len, 0.0);
    }
}

/// Move `x` onto the tape (no copy) and give `x` the slot's old buffer to write into.
fn move_slot(tape: &mut Vec<Vec<f32>>, slot: &mut usize, x: &mut Vec<f32>) {
    if tape.len() <= *slot {
        tape.resize_with(*slot + 1, Vec::new);
    }
    std::mem::swap(&mut tape[*slot], x);
    *slot += 1;
}

/// A slot whose layer's backward needs no saved input (see [`from_output`]).
fn empty_slot(tape: &mut Vec<Vec<f32>>, slot: &mut usize) {
    if tape.len() <= *slot {
        tape.resize_with(*slot + 1, Vec::new);
    }
    tape[*slot].clear();
    *slot += 1;
}

/// Whether an activation's gradient comes from its output (ReLU: where it is positive;
/// tanh: 1 - y²), which the next layer keeps anyway.
fn from_output(act: Activation) -> bool {
    matches!(act, Activation::Relu | Activation::Tanh)
}

/// What a part's backward may read beside its tape: the input of a first layer whose slot
/// is empty (a head's first linear layer reads the trunk's output), and the part's own
/// output (for a last activation whose slot is empty).
#[derive(Clone, Copy)]
struct Parts<'a> {
    input: Option<&'a [f32]>,
    output: Option<&'a [f32]>,
}

/// The activation at `layers[i]` when it saves nothing for backward (a ReLU or tanh whose
/// output is kept: by the next layer's slot, or by the caller when `kept`), so the layer
/// before it can apply it to its rows as it makes them.
fn fusable(layers: &[Layer], i: usize, kept: bool) -> Option<Activation> {
    let Some(Layer::Act(act)) = layers.get(i) else { return None };
    let output_kept = match layers.get(i + 1) {
        Some(Layer::Act(next)) => !from_output(*next),
        Some(_) => true,
        None => kept,
    };
    (from_output(*act) && output_kept).then_some(*act)
}

/// Apply `layers` to `x` (`[batch, width]`, the result left in `x`), saving what backward
/// needs: each layer's input, moved onto the tape where the layer writes a new buffer, and
/// nothing for a ReLU or tanh whose output is kept (see [`fusable`]; a linear layer before
/// one applies it itself). `fused`: the first layer is an activation already applied.
#[allow(clippy::too_many_arguments)]
fn run(layers: &[Layer], batch: usize, mut width: usize, x: &mut Vec<f32>, tape: &mut Vec<Vec<f32>>,
       slot: &mut usize, conv: &mut ConvScratch, threads: usize, kept: bool, mut fused: bool) -> usize {
    for (i, layer) in layers.iter().enumerate() {
        let mine = *slot;
        match layer {
            Layer::Linear { weight, bias, inputs, outputs } => {
                move_slot(tape, slot, x);
                room(x, batch * outputs);
                let act = fusable(layers, i + 1, kept);
                let then = |_: usize, rows: &mut [f32]| if let Some(act) = act { activate(act, rows) };
                gemm_then(batch, *outputs, *inputs, Mat::rows(&tape[mine][..batch * inputs], *inputs),
                          Mat::rows(weight, *outputs), x, Start::Bias(bias), threads, &then);
                fused = act.is_some();
                width = *outputs;
                continue;
            }
            Layer::Act(act) => {
                if fused {
                    empty_slot(tape, slot);
                } else if fusable(layers, i, kept).is_some() {
                    empty_slot(tape, slot);
                    elementwise(&mut x[..batch * width], threads, |_, part| activate(*act, part));
                } else {
                    take_slot(tape, slot, &x[..batch * width]);
                    elementwise(&mut x[..batch * width], threads, |_, part| activate(*act, part));
                }
            }
            Layer::LayerNorm { gamma, beta, eps } => {
                take_slot(tape, slot, &x[..batch * width]);
                for row in x[..batch * width].chunks_mut(width) {
                    let (mean, inv) = moments(row, *eps);
                    for (k, v) in row.iter_mut().enumerate() {
                        *v = (*v - mean) * inv * gamma[k] + beta[k];
                    }
                }
            }
            Layer::Residual(body) => {
                take_slot(tape, slot, &x[..batch * width]);
                let w = run(body, batch, width, x, tape, slot, conv, threads, false, false);
                debug_assert_eq!(w, width);
                for (v, s) in x[..batch * width].iter_mut().zip(&tape[mine]) {
                    *v += s;
                }
            }
            Layer::Conv2d(c) => {
                move_slot(tape, slot, x);
                let (inw, outw) = (width, c.outputs());
                room(x, batch * outw);
                let input = &tape[mine];
                let tasks = threads.min(batch).max(1);
                let out = Disjoint::new(&mut x[..batch * outw]);
                // Images split between threads, each with its own scratch (the tape's for one).
                let one = Mutex::new(&mut *conv);
                pool::for_each(tasks, tasks, |t| {
                    let (b0, b1) = pool::part(batch, tasks, 1, t);
                    let mut own = ConvScratch::default();
                    let mut shared = one.try_lock().ok();
                    let s = shared.as_deref_mut().map_or(&mut own, |s| &mut **s);
                    for b in b0..b1 {
                        // SAFETY: each image's output is written by one task.
                        let o = unsafe { out.part(b * outw, (b + 1) * outw) };
                        conv_forward(c, &input[b * inw..(b + 1) * inw], o, s);
                    }
                });
                width = outw;
            }
        }
        fused = false;
    }
    width
}

/// The mean and `1 / sqrt(var + eps)` of a row (the biased variance, as torch's LayerNorm).
fn moments(row: &[f32], eps: f32) -> (f32, f32) {
    let n = row.len() as f32;
    let mean = row.iter().sum::<f32>() / n;
    let var = row.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / n;
    (mean, 1.0 / (var + eps).sqrt())
}

/// Backward through `layers`, whose inputs are on `tape` from slot `first`: `dy` (the
/// gradient of their output) becomes the gradient of their input, unless `need_dx` is
/// false for the first layer (nothing reads it).
#[allow(clippy::too_many_arguments)]
fn back(layers: &[Layer], grads: &mut [Layer], batch: usize, dy: &mut Vec<f32>, tmp: &mut Vec<f32>, tape: &[Vec<f32>],
        first: usize, conv: &mut ConvScratch, need_dx: bool, threads: usize, parts: Parts<'_>) {
    let mut starts = Vec::with_capacity(layers.len());
    let mut s = first;
    for layer in layers {
        starts.push(s);
        s += slots(layer);
    }
    // An activation before a linear layer whose gradient that layer's input product applied.
    let mut fused = false;
    for (i, (layer, grad)) in layers.iter().zip(grads.iter_mut()).enumerate().rev() {
        let saved = &tape[starts[i]];
        let x: &[f32] = match parts.input {
            Some(input) if i == 0 && saved.is_empty() => input,
            _ => saved,
        };
        let dx_needed = need_dx || i > 0;
        match (layer, grad) {
            (Layer::Linear { weight, inputs, outputs, .. }, Layer::Linear { weight: gw, bias: gb, .. }) => {
                let d = &dy[..batch * outputs];
                gemm_sums(*inputs, *outputs, batch, Mat::rows(&x[..batch * inputs], *inputs).t(), Mat::rows(d, *outputs),
                          gw, Start::Add, threads, gb);
                if dx_needed {
                    // A ReLU or tanh before this layer takes its gradient from its output, which
                    // is this layer's input: applied to the rows of dx as they are made.
                    let act = match i.checked_sub(1).map(|p| (&layers[p], &tape[starts[p]])) {
                        Some((Layer::Act(act), before)) if from_output(*act) && before.is_empty() => Some(*act),
                        _ => None,
                    };
                    fused = act.is_some();
                    let y = &x[..batch * inputs];
                    let then = |first: usize, rows: &mut [f32]| if let Some(act) = act {
                        let y = &y[first * inputs..first * inputs + rows.len()];
                        wide!(act_backward_from_output_plain(act, y, rows))
                    };
                    room(tmp, batch * inputs);
                    gemm_then(batch, *inputs, *outputs, Mat::rows(d, *outputs), Mat::rows(weight, *outputs).t(), tmp,
                              Start::Zero, threads, &then);
                    std::mem::swap(dy, tmp);
                }
            }
            (Layer::Act(act), _) => {
                if !dx_needed || std::mem::take(&mut fused) {
                    continue;
                }
                if x.is_empty() {
                    // Its output: the next layer's input, or the part's output.
                    let y: &[f32] = match starts.get(i + 1) {
                        Some(&next) => &tape[next],
                        None => parts.output.expect("a last activation without a saved input has a kept output"),
                    };
                    act_backward(*act, true, y, dy, threads);
                } else {
                    act_backward(*act, false, x, dy, threads);
                }
            }
            (Layer::LayerNorm { gamma, eps, .. }, Layer::LayerNorm { gamma: gg, beta: gbeta, .. }) => {
                let width = gamma.len();
                for (row, d) in x.chunks(width).zip(dy.chunks_mut(width)).take(batch) {
                    let (mean, inv) = moments(row, *eps);
                    let n = width as f32;
                    let (mut sum_g, mut sum_gx) = (0.0f32, 0.0f32);
                    for k in 0..width {
                        let xhat = (row[k] - mean) * inv;
                        gg[k] += d[k] * xhat;
                        gbeta[k] += d[k];
                        let g = d[k] * gamma[k];
                        sum_g += g;
                        sum_gx += g * xhat;
                    }
                    for k in 0..width {
                        let xhat = (row[k] - mean) * inv;
                        d[k] = inv / n * (n * d[k] * gamma[k] - sum_g - xhat * sum_gx);
                    }
                }
            }
            (Layer::Residual(body), Layer::Residual(gbody)) => {
                let skip = dy.clone();
                back(body, gbody, batch, dy, tmp, tape, starts[i] + 1, conv, true, threads, Parts { input: None, output: None });
                for (d, s) in dy.iter_mut().zip(&skip) {
                    *d += s;
                }
            }
            (Layer::Conv2d(c), Layer::Conv2d(g)) => {
                let (inw, outw) = (c.inputs(), c.outputs());
                if dx_needed {
                    tmp.clear();
                    tmp.resize(batch * inw, 0.0);
                }
                let tasks = threads.min(batch).max(1);
                if tasks == 1 {
                    for b in 0..batch {
                        let dx = if dx_needed { Some(&mut tmp[b * inw..(b + 1) * inw]) } else { None };
                        conv_backward(c, g, &x[b * inw..(b + 1) * inw], &dy[b * outw..(b + 1) * outw], dx, conv);
                    }
                } else {
                    // Images split between threads, each summing its own weight gradient;
                    // the parts are added in task order.
                    let dxs = Disjoint::new(&mut tmp[..if dx_needed { batch * inw } else { 0 }]);
                    let parts: Vec<Mutex<Conv2d>> = (0..tasks).map(|_| {
                        let mut part = g.clone();
                        part.weight.fill(0.0);
                        part.bias.fill(0.0);
                        Mutex::new(part)
                    }).collect();
                    let dy = &dy[..];
                    pool::for_each(tasks, tasks, |t| {
                        let (b0, b1) = pool::part(batch, tasks, 1, t);
                        let mut part = parts[t].lock().unwrap_or_else(|e| e.into_inner());
                        let mut s = ConvScratch::default();
                        for b in b0..b1 {
                            // SAFETY: each image's input gradient is written by one task.
                            let dx = dx_needed.then(|| unsafe { dxs.part(b * inw, (b + 1) * inw) });
                            conv_backward(c, &mut part, &x[b * inw..(b + 1) * inw], &dy[b * outw..(b + 1) * outw], dx,
                                          &mut s);
                        }
                    });
                    for part in parts {
                        let part = part.into_inner().unwrap_or_else(|e| e.into_inner());
                        g.weight.iter_mut().zip(&part.weight).for_each(|(o, p)| *o += p);
                        g.bias.iter_mut().zip(&part.bias).for_each(|(o, p)| *o += p);
                    }
                }
                if dx_needed {
                    std::mem::swap(dy, tmp);
                }
            }
            _ => unreachable!("gradients have the policy's shape"),
        }
    }
}

/// Element-wise work on `x` split between threads in runs of 64 values (so the result does not
/// depend on the split): `f(offset, part)`.
fn elementwise(x: &mut [f32], threads: usize, f: impl Fn(usize, &mut [f32]) + Sync) {
    let len = x.len();
    let tasks = threads.min(len / 32_768).max(1);
    let x = Disjoint::new(x);
    pool::for_each(tasks, tasks, |t| {
        let (lo, hi) = pool::part(len, tasks, 64, t);
        // SAFETY: the tasks' ranges are disjoint.
        f(lo, unsafe { x.part(lo, hi) });
    });
}

/// The rows an embedding bag sums: row `b` reads `indices[b * stride..][..counts[b]]`.
struct Bag<'a> {
    indices: &'a [u32],
    counts: &'a [u32],
    stride: usize,
    inputs: usize,
    outputs: usize,
}

impl Bag<'_> {
    /// The weight rows that row `b` reads (indices past the input are skipped).
    #[inline(always)]
    fn rows(&self, b: usize) -> impl Iterator<Item = usize> + '_ {
        let inputs = self.inputs;
        self.indices[b * self.stride..b * self.stride + self.counts[b] as usize].iter().map(|&i| i as usize)
            .filter(move |&i| i < inputs)
    }
}

/// `out[b] = bias + Σ weight rows at row b's indices`, the rows split between threads; then
/// `then(first_row, rows)` on each block of rows.
fn bag_forward(bag: &Bag<'_>, weight: &[f32], bias: &[f32], out: &mut [f32], threads: usize,
               then: &(dyn Fn(usize, &mut [f32]) + Sync)) {
    let n = bag.outputs;
    let batch = out.len() / n.max(1);
    let tasks = threads.min(batch * n / 32_768).max(1);
    let out = Disjoint::new(out);
    pool::for_each(tasks, tasks, |t| {
        let (r0, r1) = pool::part(batch, tasks, 1, t);
        // SAFETY: the tasks' rows are disjoint.
        let rows = unsafe { out.part(r0 * n, r1 * n) };
        // In blocks of 64 rows, each finished while it is in cache.
        for (blk, part) in rows.chunks_mut(64 * n).enumerate() {
            wide!(bag_forward_plain(bag, weight, bias, r0 + blk * 64, part));
            then(r0 + blk * 64, part);
        }
    });
}

#[inline(always)]
fn bag_forward_plain(bag: &Bag<'_>, weight: &[f32], bias: &[f32], first: usize, out: &mut [f32]) {
    let n = bag.outputs;
    for (b, row) in out.chunks_mut(n).enumerate() {
        row.copy_from_slice(bias);
        for i in bag.rows(first + b) {
            for (o, w) in row.iter_mut().zip(&weight[i * n..(i + 1) * n]) {
                *o += w;
            }
        }
    }
}

/// Weights of at most this many values take [`bag_backward`]'s split by columns.
const BAG_COLUMNS: usize = 1 << 20;

/// The embedding bag's weight and bias gradients: each row's `dy` added to the weight rows it
/// read and to the bias (a row every row reads, after the weight's). Each weight adds up in
/// row order whatever the split between threads. A small weight's columns are split: each
/// task reads its part of every row of dy, once, and sums its columns of every weight row
/// into its own part of `scratch` (zeroed, added to the gradients at the end). A large one's
/// rows are split, each part about as often read as the others.
fn bag_backward(bag: &Bag<'_>, dy: &[f32], gw: &mut [f32], gb: &mut [f32], threads: usize, scratch: &mut Vec<f32>) {
    let n = bag.outputs;
    let batch = dy.len() / n.max(1);
    let (gw, gb) = (&mut gw[..bag.inputs * n], &mut gb[..n]);
    let rows = bag.inputs + 1;
    if rows * n <= BAG_COLUMNS {
        let tasks = threads.min(batch * n / 32_768).min(n.div_ceil(16)).max(1);
        // Task t's sums, `[rows][hi - lo]`, start at `rows * lo`.
        scratch.clear();
        scratch.resize(rows * n, 0.0);
        let parts = Disjoint::new(&mut scratch[..]);
        pool::for_each(tasks, tasks, |t| {
            let (lo, hi) = pool::part(n, tasks, 16, t);
            // SAFETY: the tasks' column ranges, so their parts, are disjoint.
            let sums = unsafe { parts.part(rows * lo, rows * hi) };
            wide!(bag_columns_plain(bag, dy, lo, hi, sums));
        });
        for t in 0..tasks {
            let (lo, hi) = pool::part(n, tasks, 16, t);
            let sums = &scratch[rows * lo..rows * hi];
            for (i, s) in sums.chunks_exact((hi - lo).max(1)).enumerate() {
                let dst = if i < bag.inputs { &mut gw[i * n + lo..i * n + hi] } else { &mut gb[lo..hi] };
                dst.iter_mut().zip(s).for_each(|(g, v)| *g += v);
            }
        }
        return;
    }
    let tasks = threads.min(batch * n / 32_768).min(rows).max(1);
    if tasks == 1 {
        wide!(bag_backward_plain(bag, dy, 0, bag.inputs, gw, Some(gb)));
        return;
    }
    // `uses[i]`: how often rows before `i` are read, the bias as row `inputs`.
    let mut uses = vec![0usize; rows + 1];
    for b in 0..batch {
        bag.rows(b).for_each(|i| uses[i + 1] += 1);
    }
    uses[rows] = batch;
    for i in 0..rows {
        uses[i + 1] += uses[i];
    }
    let total = uses[rows];
    let bounds: Vec<usize> = (0..tasks).map(|t| uses.partition_point(|&u| u * tasks < total * t).min(rows))
        .chain(std::iter::once(rows)).collect();
    let gw = Disjoint::new(gw);
    let gb = Disjoint::new(gb);
    pool::for_each(tasks, tasks, |t| {
        let (i0, i1) = (bounds[t], bounds[t + 1]);
        let w1 = i1.min(bag.inputs);
        // SAFETY: the tasks' row ranges are disjoint, and one of them holds the bias.
        let part = unsafe { gw.part(i0.min(w1) * n, w1 * n) };
        let bias = (i0 <= bag.inputs && bag.inputs < i1).then(|| unsafe { gb.part(0, n) });
        wide!(bag_backward_plain(bag, dy, i0.min(w1), w1, part, bias));
    });
}

/// Columns `lo..hi` of every weight row's gradient, then the bias's, into `sums` (`[inputs +
/// 1][hi - lo]`).
#[inline(always)]
fn bag_columns_plain(bag: &Bag<'_>, dy: &[f32], lo: usize, hi: usize, sums: &mut [f32]) {
    let w = hi - lo;
    for (b, row) in dy.chunks_exact(bag.outputs).enumerate() {
        let part = &row[lo..hi];
        for i in bag.rows(b).chain(std::iter::once(bag.inputs)) {
            sums[i * w..(i + 1) * w].iter_mut().zip(part).for_each(|(s, v)| *s += v);
        }
    }
}

/// The gradient of weight rows `i0..i1` (`gw` holds those rows), and of the bias if given.
#[inline(always)]
fn bag_backward_plain(bag: &Bag<'_>, dy: &[f32], i0: usize, i1: usize, gw: &mut [f32], mut gb: Option<&mut [f32]>) {
    let n = bag.outputs;
    for (b, row) in dy.chunks_exact(n).enumerate() {
        for i in bag.rows(b).filter(|i| (i0..i1).contains(i)) {
            for (g, d) in gw[(i - i0) * n..(i - i0 + 1) * n].iter_mut().zip(row) {
                *g += d;
            }
        }
        if let Some(gb) = gb.as_deref_mut() {
            gb.iter_mut().zip(row).for_each(|(g, d)| *g += d);
        }
    }
}

/// The gradient through an activation from its input, or (`from_output`) from its output.
fn act_backward(act: Activation, from_output: bool, x: &[f32], dy: &mut [f32], threads: usize) {
    let len = dy.len().min(x.len());
    elementwise(&mut dy[..len], threads, |lo, d| {
        let x = &x[lo..lo + d.len()];
        if from_output {
            wide!(act_backward_from_output_plain(act, x, d))
        } else {
            wide!(act_backward_plain(act, x, d))
        }
    });
}

/// The gradient through ReLU or tanh from its output `y` (ReLU's is zero where `y <= 0`,
/// exactly where the input was; tanh's is `1 - y²`).
#[inline(always)]
fn act_backward_from_output_plain(act: Activation, y: &[f32], dy: &mut [f32]) {
    match act {
        Activation::Relu => dy.iter_mut().zip(y).for_each(|(d, &v)| if v <= 0.0 { *d = 0.0 }),
        Activation::Tanh => dy.iter_mut().zip(y).for_each(|(d, &t)| *d *= 1.0 - t * t),
        Activation::GeluTanh => unreachable!("GELU's gradient needs its input"),
    }
}

#[inline(always)]
fn act_backward_plain(act: Activation, x: &[f32], dy: &mut [f32]) {
    match act {
        Activation::Relu => dy.iter_mut().zip(x).for_each(|(d, &v)| if v <= 0.0 { *d = 0.0 }),
        Activation::Tanh => dy.iter_mut().zip(x).for_each(|(d, &v)| {
            let t = v.tanh();
            *d *= 1.0 - t * t;
        }),
        Activation::GeluTanh => dy.iter_mut().zip(x).for_each(|(d, &v)| {
            let c = (2.0f32 / std::f32::consts::PI).sqrt();
            let u = c * (v + 0.044715 * v * v * v);
            let t = u.tanh();
            let du = c * (1.0 + 3.0 * 0.044715 * v * v);
            *d *= 0.5 * (1.0 + t) + 0.5 * v * (1.0 - t * t) * du;
        }),
    }
}

/// The patches of one image, `[positions, in_channels * kh * kw]` (the weight's patch order).
fn im2col(c: &Conv2d, image: &[f32], patches: &mut Vec<f32>) {
    let (oh, ow) = c.output();
    patches.clear();
    patches.resize(oh * ow * c.in_channels * c.kernel.0 * c.kernel.1, 0.0);
    patch_cells(c, |cell, pixel| patches[cell] = image[pixel]);
}

/// Every cell of the patch matrix (`[positions, in_channels * kh * kw]`, flat) that reads a
/// pixel of the image (channels-first, flat) rather than the zero padding: `f(cell, pixel)`.
fn patch_cells(c: &Conv2d, mut f: impl FnMut(usize, usize)) {
    let (oh, ow) = c.output();
    let (kh, kw) = c.kernel;
    let (h, w) = c.input;
    let mut cell = 0;
    for oy in 0..oh {
        for ox in 0..ow {
            for ch in 0..c.in_channels {
                for ky in 0..kh {
                    let y = (oy * c.stride.0 + ky) as isize - c.padding.0 as isize;
                    for kx in 0..kw {
                        let xx = (ox * c.stride.1 + kx) as isize - c.padding.1 as isize;
                        if y >= 0 && (y as usize) < h && xx >= 0 && (xx as usize) < w {
                            f(cell, ch * h * w + y as usize * w + xx as usize);
                        }
                        cell += 1;
                    }
                }
            }
        }
    }
}

fn conv_forward(c: &Conv2d, image: &[f32], out: &mut [f32], s: &mut ConvScratch) {
    let (oh, ow) = c.output();
    let positions = oh * ow;
    let patch = c.in_channels * c.kernel.0 * c.kernel.1;
    im2col(c, image, &mut s.patches);
    s.rows.resize(positions * c.out_channels, 0.0);
    gemm(positions, c.out_channels, patch, Mat::rows(&s.patches, patch), Mat::rows(&c.weight, c.out_channels),
         &mut s.rows, Start::Bias(&c.bias), 1);
    for p in 0..positions {
        for o in 0..c.out_channels {
            out[o * positions + p] = s.rows[p * c.out_channels + o];
        }
    }
}

/// One image's weight and bias gradients (added to `g`), and its input gradient when asked.
fn conv_backward(c: &Conv2d, g: &mut Conv2d, image: &[f32], dy: &[f32], dx: Option<&mut [f32]>, s: &mut ConvScratch) {
    let (oh, ow) = c.output();
    let positions = oh * ow;
    let patch = c.in_channels * c.kernel.0 * c.kernel.1;
    im2col(c, image, &mut s.patches);
    // dy is channels-first, [out_channels, positions]: read as the transpose of [positions, out].
    let dyt = Mat { data: dy, rs: 1, cs: positions };
    gemm(patch, c.out_channels, positions, Mat::rows(&s.patches, patch).t(), dyt, &mut g.weight, Start::Add, 1);
    for o in 0..c.out_channels {
        g.bias[o] += dy[o * positions..(o + 1) * positions].iter().sum::<f32>();
    }
    let Some(dx) = dx else { return };
    s.dpatches.resize(positions * patch, 0.0);
    gemm(positions, patch, c.out_channels, dyt, Mat::rows(&c.weight, c.out_channels).t(), &mut s.dpatches,
         Start::Zero, 1);
    let dpatches = &s.dpatches;
    patch_cells(c, |cell, pixel| dx[pixel] += dpatches[cell]);
}

#[cfg(test)]
mod tests {
    use super::super::params::{params, params_mut, zeros_like};
    use super::*;
    use crate::policy::Conv2d;
    use crate::rng::Rng;

    fn linear(rng: &mut Rng, inputs: usize, outputs: usize) -> Layer {
        let w: Vec<f32> = (0..inputs * outputs).map(|_| rng.uniform(-0.6, 0.6) as f32).collect();
        let b: Vec<f32> = (0..outputs).map(|_| rng.uniform(-0.2, 0.2) as f32).collect();
        Layer::linear_from_torch(&w, &b, inputs, outputs).unwrap()
    }

    /// `Σ c · logits + Σ d · values` for fixed random `c`, `d`.
    fn score(policy: &Policy, input: Input<'_>, batch: usize, c: &[f32], d: &[f32]) -> f64 {
        let (mut logits, mut values) = (Vec::new(), Vec::new());
        forward(policy, input, batch, &mut Tape::default(), &mut logits, &mut values, 1);
        logits.iter().zip(c).chain(values.iter().zip(d)).map(|(x, y)| *x as f64 * *y as f64).sum()
    }

    fn check_gradients(policy: Policy, input: Input<'_>, batch: usize, rng: &mut Rng) {
        let a = policy.num_actions;
        let c: Vec<f32> = (0..batch * a).map(|_| rng.uniform(-1.0, 1.0) as f32).collect();
        let d: Vec<f32> = (0..batch).map(|_| rng.uniform(-1.0, 1.0) as f32).collect();
        let mut tape = Tape::default();
        let (mut logits, mut values) = (Vec::new(), Vec::new());
        let mut grads = zeros_like(&policy);
        // Twice on the same tape: the second pass reuses buffers that traded places.
        for _ in 0..2 {
            forward(&policy, input, batch, &mut tape, &mut logits, &mut values, 2);
            grads = zeros_like(&policy);
            let (mut dl, mut dv) = (c.clone(), d.clone());
            backward(&policy, &mut grads, input, batch, &mut tape, &mut dl, &mut dv, 2);
        }
        let analytic: Vec<Vec<f32>> = params(&grads).iter().map(|g| g.to_vec()).collect();
        let h = 1e-3f32;
        for (t, g) in analytic.iter().enumerate() {
            for k in (0..g.len()).step_by(g.len().div_ceil(7)) {
                let mut up = policy.clone();
                params_mut(&mut up)[t][k] += h;
                let mut down = policy.clone();
                params_mut(&mut down)[t][k] -= h;
                let num = (score(&up, input, batch, &c, &d) - score(&down, input, batch, &c, &d)) / (2.0 * h as f64);
                let tol = 2e-2 * (1.0 + num.abs());
                assert!((num - g[k] as f64).abs() < tol, "tensor {t} value {k}: finite differences {num}, backward {}",
                        g[k]);
            }
        }
    }

    #[test]
    fn backward_matches_finite_differences_for_every_layer_kind() {
        let mut rng = Rng::new(11, 0);
        // Sparse input into an embedding bag, then every flat layer kind.
        let trunk = vec![
            linear(&mut rng, 6, 5),
            Layer::Act(Activation::Tanh),
            Layer::LayerNorm { gamma: vec![1.2, 0.8, 1.0, 0.9, 1.1], beta: vec![0.1, -0.1, 0.0, 0.2, -0.2], eps: 1e-5 },
            Layer::Residual(vec![linear(&mut rng, 5, 5), Layer::Act(Activation::GeluTanh)]),
            linear(&mut rng, 5, 4),
            Layer::Act(Activation::Relu),
        ];
        let policy = Policy::new(6, trunk, vec![linear(&mut rng, 4, 3)], vec![linear(&mut rng, 4, 2),
                                 Layer::Act(Activation::Tanh), linear(&mut rng, 2, 1)]).unwrap();
        let indices = [0u32, 3, 5, 1, 2, 9, 4, 4, 0];
        let counts = [3u32, 2, 3];
        check_gradients(policy.clone(), Input::Sparse { indices: &indices, counts: &counts, stride: 3 }, 3, &mut rng);
        let x: Vec<f32> = (0..4 * 6).map(|_| rng.uniform(-1.0, 1.0) as f32).collect();
        check_gradients(policy, Input::Dense { x: &x, width: 6 }, 4, &mut rng);
        // Planes through a convolution first (no input layer), then flat layers.
        let (cin, cout, h, w) = (2usize, 3usize, 4usize, 3usize);
        let cw: Vec<f32> = (0..cout * cin * 9).map(|_| rng.uniform(-0.5, 0.5) as f32).collect();
        let cb: Vec<f32> = (0..cout).map(|_| rng.uniform(-0.1, 0.1) as f32).collect();
        let conv = Conv2d::from_torch(&cw, &cb, cin, cout, (3, 3), (1, 1), (1, 1), (h, w)).unwrap();
        let conv2 = Conv2d::from_torch(&cw[..cout * cout * 4], &cb, cout, cout, (2, 2), (2, 1), (0, 1), (h, w)).unwrap();
        let flat = conv2.outputs();
        let policy = Policy::new(cin * h * w, vec![Layer::Conv2d(conv), Layer::Act(Activation::Relu), Layer::Conv2d(conv2)],
                                 vec![linear(&mut rng, flat, 4)], vec![linear(&mut rng, flat, 1)]).unwrap();
        let x: Vec<f32> = (0..3 * cin * h * w).map(|_| rng.uniform(-1.0, 1.0) as f32).collect();
        check_gradients(policy, Input::Dense { x: &x, width: cin * h * w }, 3, &mut rng);
        // A trunk of one input layer and its ReLU: the heads' merged input-gradient product
        // applies the ReLU's gradient, and nothing is left between it and the input layer.
        let policy = Policy::new(6, vec![linear(&mut rng, 6, 5), Layer::Act(Activation::Relu)],
                                 vec![linear(&mut rng, 5, 3)], vec![linear(&mut rng, 5, 1)]).unwrap();
        check_gradients(policy, Input::Sparse { indices: &indices, counts: &counts, stride: 3 }, 3, &mut rng);
        // No trunk at all: the heads read the observation.
        let policy = Policy::new(3, vec![], vec![linear(&mut rng, 3, 2)], vec![linear(&mut rng, 3, 1)]).unwrap();
        let x: Vec<f32> = (0..2 * 3).map(|_| rng.uniform(-1.0, 1.0) as f32).collect();
        check_gradients(policy, Input::Dense { x: &x, width: 3 }, 2, &mut rng);
    }

    #[test]
    fn backward_gives_the_same_bits_on_one_and_two_threads() {
        let mut rng = Rng::new(13, 0);
        let policy = Policy::new(81, vec![linear(&mut rng, 81, 128), Layer::Act(Activation::Relu),
                                          linear(&mut rng, 128, 64), Layer::Act(Activation::Relu)],
                                 vec![linear(&mut rng, 64, 4)], vec![linear(&mut rng, 64, 1)]).unwrap();
        let batch = 600;
        let indices: Vec<u32> = (0..batch * 9).map(|x| (x * 37 % 81) as u32).collect();
        let counts: Vec<u32> = (0..batch).map(|b| (b % 10) as u32).collect();
        let input = Input::Sparse { indices: &indices, counts: &counts, stride: 9 };
        let c: Vec<f32> = (0..batch * 4).map(|_| rng.uniform(-1.0, 1.0) as f32).collect();
        let d: Vec<f32> = (0..batch).map(|_| rng.uniform(-1.0, 1.0) as f32).collect();
        // Each pass twice on the same tape: the second reuses buffers that traded places.
        let grads = |threads: usize| {
            let mut tape = Tape::default();
            let (mut logits, mut values) = (Vec::new(), Vec::new());
            let mut steps = Vec::new();
            for _ in 0..2 {
                forward(&policy, input, batch, &mut tape, &mut logits, &mut values, threads);
                let mut grads = zeros_like(&policy);
                let (mut dl, mut dv) = (c.clone(), d.clone());
                backward(&policy, &mut grads, input, batch, &mut tape, &mut dl, &mut dv, threads);
                steps.push((logits.clone(), values.clone(), params(&grads).iter().map(|g| g.to_vec()).collect::<Vec<_>>()));
            }
            assert_eq!(steps[0], steps[1]);
            steps.pop().unwrap()
        };
        assert_eq!(grads(1), grads(2));
    }

    #[test]
    fn the_bags_scatter_matches_the_plain_sum_whatever_the_split() {
        let mut rng = Rng::new(14, 0);
        // A small weight (split by columns) and one past `BAG_COLUMNS` (split by rows).
        for inputs in [81usize, BAG_COLUMNS / 128 + 7] {
            let (n, batch, stride) = (128usize, 600usize, 5usize);
            let indices: Vec<u32> = (0..batch * stride).map(|_| (rng.next_u64() % (inputs as u64 + 3)) as u32).collect();
            let counts: Vec<u32> = (0..batch).map(|b| (b % (stride + 1)) as u32).collect();
            let bag = Bag { indices: &indices, counts: &counts, stride, inputs, outputs: n };
            let dy: Vec<f32> = (0..batch * n).map(|_| rng.uniform(-1.0, 1.0) as f32).collect();
            let (mut want_w, mut want_b) = (vec![0.0f32; inputs * n], vec![0.0f32; n]);
            for (b, row) in dy.chunks_exact(n).enumerate() {
                for i in bag.rows(b) {
                    want_w[i * n..(i + 1) * n].iter_mut().zip(row).for_each(|(g, d)| *g += d);
                }
                want_b.iter_mut().zip(row).for_each(|(g, d)| *g += d);
            }
            for threads in [1, 2, 3] {
                let (mut gw, mut gb) = (vec![0.0f32; inputs * n], vec![0.0f32; n]);
                bag_backward(&bag, &dy, &mut gw, &mut gb, threads, &mut Vec::new());
                assert!(gw == want_w && gb == want_b, "{inputs} inputs, {threads} threads");
            }
        }
    }

    #[test]
    fn training_forward_matches_inference() {
        let mut rng = Rng::new(12, 0);
        let policy = Policy::new(9, vec![linear(&mut rng, 9, 40), Layer::Act(Activation::Relu), linear(&mut rng, 40, 33),
                                         Layer::Act(Activation::Relu)],
                                 vec![linear(&mut rng, 33, 5)], vec![linear(&mut rng, 33, 1)]).unwrap();
        let batch = 37;
        let indices: Vec<u32> = (0..batch * 3).map(|k| (k * 7 % 9) as u32).collect();
        let counts: Vec<u32> = (0..batch).map(|b| (b % 4) as u32).collect();
        let input = Input::Sparse { indices: &indices, counts: &counts, stride: 3 };
        let (mut l1, mut v1) = (vec![0.0; batch * 5], vec![0.0; batch]);
        policy.forward(input, batch, &mut l1, &mut v1, &mut crate::policy::Workspace::default());
        let (mut l2, mut v2) = (Vec::new(), Vec::new());
        forward(&policy, input, batch, &mut Tape::default(), &mut l2, &mut v2, 2);
        assert!(l1.iter().zip(&l2).chain(v1.iter().zip(&v2)).all(|(a, b)| (a - b).abs() < 1e-4));
    }
}
