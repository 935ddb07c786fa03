//! Policy inference: batched forward passes of small feed-forward policies, and masked
//! sampling.
//!
//! A [`Policy`] is a trunk of layers followed by a policy head (action logits) and a value
//! head (one value). The first trunk layer reads the observation: a sparse one
//! (the indices of the ones, TwisteRL's format) is summed row by row — an embedding bag,
//! the same as a linear layer on the 0/1 vector without touching its zeros — and a dense
//! one is multiplied. Layers process the whole batch at once, in blocks of rows that
//! share each weight row while it is in cache. On x86-64 with AVX2 and FMA the same code
//! is compiled a second time for those instructions and picked at run time.
//!
//! Many forward passes with the same weights (a rollout's) go through [`Packed`], which
//! packs the wide layers' weights once for [`crate::panels`]' blocked products; layers with
//! few outputs (the heads) take its narrow kernel either way.

use crate::learn::wide::wide;
use crate::panels::{self, Panels, NARROW};
use crate::rng::Rng;

/// An activation, applied in place.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Activation {
    Relu,
    Tanh,
    /// The tanh approximation of GELU, as `torch.nn.GELU(approximate="tanh")`.
    GeluTanh,
}

/// One layer. Linear weights are stored input-major, `[inputs, outputs]` (the transpose
/// of torch's `[out, in]`), so a layer is a sum of weight rows scaled by its inputs.
#[derive(Clone, Debug)]
pub enum Layer {
    Linear { weight: Vec<f32>, bias: Vec<f32>, inputs: usize, outputs: usize },
    Act(Activation),
    LayerNorm { gamma: Vec<f32>, beta: Vec<f32>, eps: f32 },
    /// `x + body(x)`; the body keeps the width.
    Residual(Vec<Layer>),
    /// A 2-D convolution over channels-first rows, `[channels, height, width]` flattened;
    /// its output is channels-first too, so a following linear layer reads it as torch's
    /// `Flatten` does.
    Conv2d(Conv2d),
}

/// A convolution's weights and geometry. The weight is stored patch-major,
/// `[in_channels * kernel_h * kernel_w, out_channels]`, so a convolution is a linear layer
/// over the image's patches.
#[derive(Clone, Debug)]
pub struct Conv2d {
    pub weight: Vec<f32>,
    pub bias: Vec<f32>,
    pub in_channels: usize,
    pub out_channels: usize,
    pub kernel: (usize, usize),
    pub stride: (usize, usize),
    pub padding: (usize, usize),
    /// The input's height and width.
    pub input: (usize, usize),
}

impl Conv2d {
    /// A convolution from torch's `weight [out, in, kh, kw]` and `bias [out]`, over inputs
    /// of `input = (height, width)`.
    pub fn from_torch(weight: &[f32], bias: &[f32], in_channels: usize, out_channels: usize, kernel: (usize, usize),
                      stride: (usize, usize), padding: (usize, usize), input: (usize, usize)) -> Result<Conv2d, String> {
        let patch = in_channels * kernel.0 * kernel.1;
        if weight.len() != patch * out_channels || bias.len() != out_channels {
            return Err(format!("a {in_channels} -> {out_channels} convolution with a {}x{} kernel needs {} weights \
                                and {out_channels} biases, not {} and {}", kernel.0, kernel.1, patch * out_channels,
                               weight.len(), bias.len()));
        }
        if stride.0 == 0 || stride.1 == 0 || kernel.0 == 0 || kernel.1 == 0 {
            return Err("a convolution needs a positive kernel size and stride".into());
        }
        if input.0 + 2 * padding.0 < kernel.0 || input.1 + 2 * padding.1 < kernel.1 {
            return Err(format!("a {}x{} kernel does not fit a {}x{} input with padding {:?}", kernel.0, kernel.1,
                               input.0, input.1, padding));
        }
        let mut w = vec![0.0f32; weight.len()];
        for o in 0..out_channels {
            for k in 0..patch {
                w[k * out_channels + o] = weight[o * patch + k];
            }
        }
        Ok(Conv2d { weight: w, bias: bias.to_vec(), in_channels, out_channels, kernel, stride, padding, input })
    }

    /// The output's height and width.
    pub fn output(&self) -> (usize, usize) {
        ((self.input.0 + 2 * self.padding.0 - self.kernel.0) / self.stride.0 + 1,
         (self.input.1 + 2 * self.padding.1 - self.kernel.1) / self.stride.1 + 1)
    }

    pub(crate) fn inputs(&self) -> usize {
        self.in_channels * self.input.0 * self.input.1
    }

    pub(crate) fn outputs(&self) -> usize {
        let (h, w) = self.output();
        self.out_channels * h * w
    }
}

impl Layer {
    /// A linear layer from torch's `weight [outputs, inputs]` and `bias [outputs]`.
    pub fn linear_from_torch(weight: &[f32], bias: &[f32], inputs: usize, outputs: usize) -> Result<Layer, String> {
        if weight.len() != inputs * outputs || bias.len() != outputs {
            return Err(format!(
                "a linear layer {inputs} -> {outputs} needs {} weights and {outputs} biases, not {} and {}",
                inputs * outputs, weight.len(), bias.len()
            ));
        }
        let mut w = vec![0.0f32; inputs * outputs];
        for o in 0..outputs {
            for i in 0..inputs {
                w[i * outputs + o] = weight[o * inputs + i];
            }
        }
        Ok(Layer::Linear { weight: w, bias: bias.to_vec(), inputs, outputs })
    }

    fn width(&self, input: usize) -> usize {
        match self {
            Layer::Linear { outputs, .. } => *outputs,
            Layer::Conv2d(conv) => conv.outputs(),
            _ => input,
        }
    }
}

/// An observation batch, as the env gives it.
#[derive(Clone, Copy, Debug)]
pub enum Input<'a> {
    /// `indices[b * stride..][..counts[b]]` are the ones of row `b`.
    Sparse { indices: &'a [u32], counts: &'a [u32], stride: usize },
    /// `x[b * width..][..width]` is row `b`.
    Dense { x: &'a [f32], width: usize },
}

/// A policy: trunk, policy head, value head.
#[derive(Clone, Debug)]
pub struct Policy {
    pub inputs: usize,
    pub trunk: Vec<Layer>,
    pub policy_head: Vec<Layer>,
    pub value_head: Vec<Layer>,
    pub num_actions: usize,
}

/// Reusable buffers for forward passes, so inference does not allocate once warm.
#[derive(Default, Debug)]
pub struct Workspace {
    a: Vec<f32>,
    b: Vec<f32>,
    head: Vec<f32>,
    head2: Vec<f32>,
    scratch: Scratch,
}

/// Buffers for layers that need more than an input and an output: patches and outputs of
/// a convolution, the saved inputs of residual blocks (one per nesting depth), and the
/// products' own.
#[derive(Default, Debug)]
struct Scratch {
    patches: Vec<f32>,
    conv_out: Vec<f32>,
    saved: Vec<Vec<f32>>,
    product: ProductScratch,
}

/// The packed rows of a blocked product, and a narrow layer's transposed weight when it
/// is not packed.
#[derive(Default, Debug)]
struct ProductScratch {
    rows: Vec<f32>,
    columns: Vec<f32>,
}

/// A policy's weights packed for many batched forward passes (a rollout's): each wide
/// layer's weight in column panels ([`crate::panels`]), each narrow layer's transposed.
/// It borrows the policy, which therefore cannot change while it is in use; made once per
/// rollout, it costs one pass over the weights.
///
/// [`Packed::forward`] gives what [`Policy::forward`] gives, to float rounding: both add a
/// value's products in input order from its bias, but the direct kernel skips zero inputs
/// on rows past its 4-row tiles (which changes at most a zero's sign). Its results do not
/// depend on the batch: a row gives the same bits alone, among others, or on another thread.
#[derive(Debug)]
pub struct Packed<'a> {
    policy: &'a Policy,
    /// Keyed by the address of the weight they come from.
    packs: Vec<(usize, Pack)>,
}

#[derive(Debug)]
enum Pack {
    Panels(Panels),
    Columns(Vec<f32>),
}

impl<'a> Packed<'a> {
    /// Logits and values, as [`Policy::forward`].
    pub fn forward(&self, input: Input<'_>, batch: usize, logits: &mut [f32], values: &mut [f32], ws: &mut Workspace) {
        self.policy.forward_with(Some(self), input, batch, logits, values, ws);
    }

    pub fn policy(&self) -> &'a Policy {
        self.policy
    }

    fn find(&self, weight: &[f32]) -> Option<&Pack> {
        let key = weight.as_ptr() as usize;
        self.packs.iter().find(|(k, _)| *k == key).map(|(_, p)| p)
    }

    fn add(&mut self, weight: &[f32], bias: &[f32], inputs: usize, outputs: usize) {
        let pack = if outputs <= NARROW {
            let mut columns = Vec::new();
            panels::transpose_into(weight, inputs, outputs, &mut columns);
            Pack::Columns(columns)
        } else {
            Pack::Panels(Panels::new(weight, bias, inputs, outputs))
        };
        self.packs.push((weight.as_ptr() as usize, pack));
    }

    fn add_layers(&mut self, layers: &[Layer]) {
        for layer in layers {
            match layer {
                Layer::Linear { weight, bias, inputs, outputs } => self.add(weight, bias, *inputs, *outputs),
                Layer::Conv2d(conv) => {
                    self.add(&conv.weight, &conv.bias, conv.in_channels * conv.kernel.0 * conv.kernel.1, conv.out_channels)
                }
                Layer::Residual(body) => self.add_layers(body),
                Layer::Act(_) | Layer::LayerNorm { .. } => {}
            }
        }
    }
}

impl Policy {
    /// Check that the layers fit together: the trunk reads `inputs` features (its first
    /// layer is usually linear, which also makes it an embedding bag for sparse input), the
    /// policy head ends with `num_actions` outputs and the value head with 1.
    pub fn new(inputs: usize, trunk: Vec<Layer>, policy_head: Vec<Layer>, value_head: Vec<Layer>) -> Result<Policy, String> {
        if inputs == 0 {
            return Err("a policy needs at least one input feature".into());
        }
        let mut width = inputs;
        for (k, layer) in trunk.iter().enumerate() {
            width = check_layer(layer, width, &format!("trunk layer {k}"))?;
        }
        let trunk_width = width;
        for (k, layer) in policy_head.iter().enumerate() {
            width = check_layer(layer, width, &format!("policy head layer {k}"))?;
        }
        let num_actions = width;
        let mut vwidth = trunk_width;
        for (k, layer) in value_head.iter().enumerate() {
            vwidth = check_layer(layer, vwidth, &format!("value head layer {k}"))?;
        }
        if vwidth != 1 {
            return Err(format!("the value head must end with 1 output, not {vwidth}"));
        }
        Ok(Policy { inputs, trunk, policy_head, value_head, num_actions })
    }

    /// Logits `[batch, num_actions]` and values `[batch]` for a batch of observations.
    pub fn forward(&self, input: Input<'_>, batch: usize, logits: &mut [f32], values: &mut [f32], ws: &mut Workspace) {
        self.forward_with(None, input, batch, logits, values, ws);
    }

    /// The weights packed for many forward passes with them ([`Packed`]). With
    /// `sparse_input`, a linear first layer is read as an embedding bag and is not packed.
    pub fn packed(&self, sparse_input: bool) -> Packed<'_> {
        let mut packed = Packed { policy: self, packs: Vec::new() };
        let trunk = match self.trunk.first() {
            Some(Layer::Linear { .. }) if sparse_input => &self.trunk[1..],
            _ => &self.trunk[..],
        };
        for layers in [trunk, &self.policy_head, &self.value_head] {
            packed.add_layers(layers);
        }
        packed
    }

    fn forward_with(&self, packs: Option<&Packed<'_>>, input: Input<'_>, batch: usize, logits: &mut [f32],
                    values: &mut [f32], ws: &mut Workspace) {
        let Workspace { a, b, head, head2, scratch } = ws;
        // A linear first layer reads the observation as it comes; any other sees it dense.
        let (mut width, rest) = match (self.trunk.first(), input) {
            (Some(first @ Layer::Linear { weight, bias, inputs, outputs }), input) => {
                a.resize(batch * outputs, 0.0);
                match input {
                    Input::Sparse { indices, counts, stride } => {
                        // A ReLU after the bag is applied as its rows are made.
                        let relu = matches!(self.trunk.get(1), Some(Layer::Act(Activation::Relu)));
                        embedding_bag(first, indices, counts, stride, batch, a, relu);
                        (*outputs, &self.trunk[1 + relu as usize..])
                    }
                    Input::Dense { x, .. } => {
                        product(weight, bias, *inputs, *outputs, x, batch, a, packs, &mut scratch.product);
                        (*outputs, &self.trunk[1..])
                    }
                }
            }
            (_, input) => {
                densify(input, self.inputs, batch, a);
                (self.inputs, &self.trunk[..])
            }
        };
        for layer in rest {
            width = apply(layer, batch, width, a, b, scratch, 0, packs);
        }
        // Heads read the trunk's output in `a`: a linear first layer in place, else a copy.
        for (layers, out, per_row) in [(&self.policy_head, &mut *logits, self.num_actions), (&self.value_head, &mut *values, 1)] {
            let (mut w, rest) = match layers.first() {
                Some(Layer::Linear { weight, bias, inputs, outputs }) => {
                    head.resize(batch * outputs, 0.0);
                    product(weight, bias, *inputs, *outputs, &a[..batch * width], batch, head, packs, &mut scratch.product);
                    (*outputs, &layers[1..])
                }
                _ => {
                    head.clear();
                    head.extend_from_slice(&a[..batch * width]);
                    (width, &layers[..])
                }
            };
            for layer in rest {
                w = apply(layer, batch, w, head, head2, scratch, 0, packs);
            }
            out[..batch * per_row].copy_from_slice(&head[..batch * per_row]);
        }
    }
}

/// The observation batch as dense rows of `inputs` floats in `out`.
pub(crate) fn densify(input: Input<'_>, inputs: usize, batch: usize, out: &mut Vec<f32>) {
    out.clear();
    match input {
        Input::Dense { x, .. } => out.extend_from_slice(&x[..batch * inputs]),
        Input::Sparse { indices, counts, stride } => {
            out.resize(batch * inputs, 0.0);
            for b in 0..batch {
                for &i in &indices[b * stride..b * stride + counts[b] as usize] {
                    if (i as usize) < inputs {
                        out[b * inputs + i as usize] = 1.0;
                    }
                }
            }
        }
    }
}

fn check_layer(layer: &Layer, width: usize, name: &str) -> Result<usize, String> {
    match layer {
        Layer::Linear { weight, bias, inputs, outputs } => {
            if *inputs != width {
                return Err(format!("{name} expects {inputs} inputs but receives {width}"));
            }
            if weight.len() != inputs * outputs || bias.len() != *outputs {
                return Err(format!("{name} has weights of the wrong size"));
            }
        }
        Layer::LayerNorm { gamma, beta, .. } => {
            if gamma.len() != width || beta.len() != width {
                return Err(format!("{name} normalises {} values but receives {width}", gamma.len()));
            }
        }
        Layer::Act(_) => {}
        Layer::Residual(body) => {
            let mut w = width;
            for (k, inner) in body.iter().enumerate() {
                w = check_layer(inner, w, &format!("{name}, residual layer {k}"))?;
            }
            if w != width {
                return Err(format!("{name} is a residual block whose body maps {width} values to {w}"));
            }
        }
        Layer::Conv2d(conv) => {
            if conv.inputs() != width {
                return Err(format!("{name} convolves {} channels of {}x{} ({} values) but receives {width}",
                                   conv.in_channels, conv.input.0, conv.input.1, conv.inputs()));
            }
        }
    }
    Ok(layer.width(width))
}

/// Apply one layer to `x` (`[batch, width]`), leaving the result in `x`; returns its width.
/// `depth` is the residual nesting depth, which picks the buffer a block saves its input in.
#[allow(clippy::too_many_arguments)]
fn apply(layer: &Layer, batch: usize, width: usize, x: &mut Vec<f32>, tmp: &mut Vec<f32>, scratch: &mut Scratch,
         depth: usize, packs: Option<&Packed<'_>>) -> usize {
    match layer {
        Layer::Residual(body) => {
            if scratch.saved.len() <= depth {
                scratch.saved.resize_with(depth + 1, Vec::new);
            }
            let mut saved = std::mem::take(&mut scratch.saved[depth]);
            saved.clear();
            saved.extend_from_slice(&x[..batch * width]);
            let mut w = width;
            for inner in body {
                w = apply(inner, batch, w, x, tmp, scratch, depth + 1, packs);
            }
            for (v, s) in x[..batch * width].iter_mut().zip(&saved) {
                *v += s;
            }
            scratch.saved[depth] = saved;
            width
        }
        Layer::Conv2d(conv) => {
            tmp.resize(batch * conv.outputs(), 0.0);
            convolve(conv, &x[..batch * width], batch, tmp, scratch, packs);
            std::mem::swap(x, tmp);
            conv.outputs()
        }
        Layer::Linear { weight, bias, inputs, outputs } => {
            tmp.resize(batch * outputs, 0.0);
            product(weight, bias, *inputs, *outputs, &x[..batch * width], batch, tmp, packs, &mut scratch.product);
            std::mem::swap(x, tmp);
            *outputs
        }
        Layer::Act(act) => {
            activate(*act, &mut x[..batch * width]);
            width
        }
        Layer::LayerNorm { gamma, beta, eps } => {
            for row in x[..batch * width].chunks_mut(width) {
                let n = width as f32;
                let mean = row.iter().sum::<f32>() / n;
                let var = row.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / n;
                let inv = 1.0 / (var + eps).sqrt();
                for (k, v) in row.iter_mut().enumerate() {
                    *v = (*v - mean) * inv * gamma[k] + beta[k];
                }
            }
            width
        }
    }
}

pub(crate) fn activate(act: Activation, x: &mut [f32]) {
    match act {
        Activation::Relu => x.iter_mut().for_each(|v| *v = v.max(0.0)),
        Activation::Tanh => x.iter_mut().for_each(|v| *v = v.tanh()),
        Activation::GeluTanh => x.iter_mut().for_each(|v| {
            let c = (2.0f32 / std::f32::consts::PI).sqrt();
            *v = 0.5 * *v * (1.0 + (c * (*v + 0.044715 * *v * *v * *v)).tanh());
        }),
    }
}

/// A convolution of each row: its patches (`[positions, in * kh * kw]`) times the
/// patch-major weight with the linear kernel, then transposed to channels-first.
fn convolve(conv: &Conv2d, x: &[f32], batch: usize, out: &mut [f32], scratch: &mut Scratch, packs: Option<&Packed<'_>>) {
    let (oh, ow) = conv.output();
    let (kh, kw) = conv.kernel;
    let (h, w) = conv.input;
    let patch = conv.in_channels * kh * kw;
    let positions = oh * ow;
    scratch.patches.resize(positions * patch, 0.0);
    scratch.conv_out.resize(positions * conv.out_channels, 0.0);
    for b in 0..batch {
        let image = &x[b * conv.inputs()..(b + 1) * conv.inputs()];
        for oy in 0..oh {
            for ox in 0..ow {
                let row = &mut scratch.patches[(oy * ow + ox) * patch..(oy * ow + ox + 1) * patch];
                let mut k = 0;
                for c in 0..conv.in_channels {
                    for ky in 0..kh {
                        let y = (oy * conv.stride.0 + ky) as isize - conv.padding.0 as isize;
                        for kx in 0..kw {
                            let xx = (ox * conv.stride.1 + kx) as isize - conv.padding.1 as isize;
                            row[k] = if y >= 0 && (y as usize) < h && xx >= 0 && (xx as usize) < w {
                                image[c * h * w + y as usize * w + xx as usize]
                            } else {
                                0.0
                            };
                            k += 1;
                        }
                    }
                }
            }
        }
        product(&conv.weight, &conv.bias, patch, conv.out_channels, &scratch.patches, positions, &mut scratch.conv_out,
                packs, &mut scratch.product);
        let dst = &mut out[b * conv.outputs()..(b + 1) * conv.outputs()];
        for p in 0..positions {
            for o in 0..conv.out_channels {
                dst[o * positions + p] = scratch.conv_out[p * conv.out_channels + o];
            }
        }
    }
}

/// `out[b] = bias + sum of weight rows at row b's indices` (added in the indices' order),
/// then a ReLU if `relu`.
#[allow(clippy::too_many_arguments)]
fn embedding_bag(layer: &Layer, indices: &[u32], counts: &[u32], stride: usize, batch: usize, out: &mut [f32],
                 relu: bool) {
    let (weight, bias, inputs, outputs) = match layer {
        Layer::Linear { weight, bias, inputs, outputs } => (weight, bias, *inputs, *outputs),
        _ => unreachable!(),
    };
    wide!(bag_rows(weight, bias, inputs, outputs, indices, counts, stride, batch, out, relu));
}

/// [`embedding_bag`] a strip of columns at a time, summed in registers.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn bag_rows(weight: &[f32], bias: &[f32], inputs: usize, outputs: usize, indices: &[u32], counts: &[u32],
            stride: usize, batch: usize, out: &mut [f32], relu: bool) {
    const STRIP: usize = 128;
    #[inline(always)]
    fn strip<const W: usize>(weight: &[f32], bias: &[f32], inputs: usize, outputs: usize, idx: &[u32], c0: usize,
                             dst: &mut [f32], relu: bool) {
        let mut acc: [f32; W] = bias[c0..c0 + W].try_into().unwrap();
        for &i in idx {
            let i = i as usize;
            if i < inputs {
                let w: &[f32; W] = weight[i * outputs + c0..][..W].try_into().unwrap();
                for (a, v) in acc.iter_mut().zip(w) {
                    *a += v;
                }
            }
        }
        if relu {
            acc.iter_mut().for_each(|v| *v = v.max(0.0));
        }
        dst.copy_from_slice(&acc);
    }
    // Strips of 128 columns (8 AVX-512 or 16 AVX2 registers of sums), then of 16, then single columns.
    let wide_end = outputs / STRIP * STRIP;
    let narrow_end = outputs / 16 * 16;
    for b in 0..batch {
        let row = &mut out[b * outputs..(b + 1) * outputs];
        let idx = &indices[b * stride..b * stride + counts[b] as usize];
        for c0 in (0..wide_end).step_by(STRIP) {
            strip::<STRIP>(weight, bias, inputs, outputs, idx, c0, &mut row[c0..c0 + STRIP], relu);
        }
        for c0 in (wide_end..narrow_end).step_by(16) {
            strip::<16>(weight, bias, inputs, outputs, idx, c0, &mut row[c0..c0 + 16], relu);
        }
        for c0 in narrow_end..outputs {
            strip::<1>(weight, bias, inputs, outputs, idx, c0, &mut row[c0..c0 + 1], relu);
        }
    }
}

/// `out = x · W + bias` for a batch of rows, `W` input-major (`[inputs, outputs]`): with
/// few outputs by the narrow kernel, else from the weight's panels when `packs` has them,
/// else by the direct kernel.
#[allow(clippy::too_many_arguments)]
fn product(weight: &[f32], bias: &[f32], inputs: usize, outputs: usize, x: &[f32], batch: usize, out: &mut [f32],
           packs: Option<&Packed<'_>>, scratch: &mut ProductScratch) {
    match packs.and_then(|p| p.find(weight)) {
        Some(Pack::Columns(columns)) => panels::narrow(columns, bias, inputs, outputs, x, batch, out),
        Some(Pack::Panels(p)) => panels::product(p, x, batch, out, &mut scratch.rows),
        None if outputs <= NARROW => {
            panels::transpose_into(weight, inputs, outputs, &mut scratch.columns);
            panels::narrow(&scratch.columns, bias, inputs, outputs, x, batch, out)
        }
        None => linear_raw(weight, bias, inputs, outputs, x, batch, out),
    }
}

/// `out = x · W + bias` for a batch of rows, by the direct kernel (whatever its width).
#[cfg(test)]
fn linear(layer: &Layer, x: &[f32], batch: usize, out: &mut [f32]) {
    match layer {
        Layer::Linear { weight, bias, inputs, outputs } => linear_raw(weight, bias, *inputs, *outputs, x, batch, out),
        _ => unreachable!("linear() is only called on linear layers"),
    }
}

/// `out = x · W + bias` with `W` input-major, `[inputs, outputs]`.
fn linear_raw(weight: &[f32], bias: &[f32], inputs: usize, outputs: usize, x: &[f32], batch: usize, out: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
            // SAFETY: the CPU has the features the function is compiled for.
            unsafe { linear_avx2(weight, bias, inputs, outputs, x, batch, out) };
            return;
        }
    }
    linear_portable(weight, bias, inputs, outputs, x, batch, out);
}

/// AVX2/FMA kernel: the output is computed in register tiles of 4 rows x 16 columns, each
/// accumulated over all inputs before it is stored; edges fall back to the blocked loop.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn linear_avx2(w: &[f32], bias: &[f32], inputs: usize, outputs: usize, x: &[f32], batch: usize, out: &mut [f32]) {
    use std::arch::x86_64::*;
    const ROWS: usize = 4;
    const COLS: usize = 16;
    let full_rows = batch / ROWS * ROWS;
    let full_cols = outputs / COLS * COLS;
    let (wp, xp, op, bp) = (w.as_ptr(), x.as_ptr(), out.as_mut_ptr(), bias.as_ptr());
    for r0 in (0..full_rows).step_by(ROWS) {
        for c0 in (0..full_cols).step_by(COLS) {
            let b0 = _mm256_loadu_ps(bp.add(c0));
            let b1 = _mm256_loadu_ps(bp.add(c0 + 8));
            let mut acc = [[b0, b1]; ROWS];
            for k in 0..inputs {
                let w0 = _mm256_loadu_ps(wp.add(k * outputs + c0));
                let w1 = _mm256_loadu_ps(wp.add(k * outputs + c0 + 8));
                for (r, a) in acc.iter_mut().enumerate() {
                    let xv = _mm256_broadcast_ss(&*xp.add((r0 + r) * inputs + k));
                    a[0] = _mm256_fmadd_ps(xv, w0, a[0]);
                    a[1] = _mm256_fmadd_ps(xv, w1, a[1]);
                }
            }
            for (r, a) in acc.iter().enumerate() {
                _mm256_storeu_ps(op.add((r0 + r) * outputs + c0), a[0]);
                _mm256_storeu_ps(op.add((r0 + r) * outputs + c0 + 8), a[1]);
            }
        }
        // Columns past the last full tile, for these rows.
        if full_cols < outputs {
            for r in r0..r0 + ROWS {
                for c in full_cols..outputs {
                    let mut acc = bias[c];
                    for k in 0..inputs {
                        acc = x[r * inputs + k].mul_add(w[k * outputs + c], acc);
                    }
                    out[r * outputs + c] = acc;
                }
            }
        }
    }
    // Rows past the last full tile.
    if full_rows < batch {
        linear_blocked::<true>(w, bias, inputs, outputs, &x[full_rows * inputs..], batch - full_rows,
                               &mut out[full_rows * outputs..]);
    }
}

fn linear_portable(w: &[f32], bias: &[f32], inputs: usize, outputs: usize, x: &[f32], batch: usize, out: &mut [f32]) {
    linear_blocked::<false>(w, bias, inputs, outputs, x, batch, out)
}

/// Rows are processed in blocks of `BLOCK`, so each weight row is read once per block.
const BLOCK: usize = 8;

#[inline(always)]
fn linear_blocked<const FMA: bool>(w: &[f32], bias: &[f32], inputs: usize, outputs: usize, x: &[f32],
                                   batch: usize, out: &mut [f32]) {
    for start in (0..batch).step_by(BLOCK) {
        let rows = BLOCK.min(batch - start);
        for r in 0..rows {
            out[(start + r) * outputs..(start + r + 1) * outputs].copy_from_slice(bias);
        }
        for k in 0..inputs {
            let wrow = &w[k * outputs..(k + 1) * outputs];
            for r in 0..rows {
                let a = x[(start + r) * inputs + k];
                if a == 0.0 {
                    continue; // ReLU outputs are often zero
                }
                let orow = &mut out[(start + r) * outputs..(start + r + 1) * outputs];
                if FMA {
                    for (o, &wv) in orow.iter_mut().zip(wrow) {
                        *o = a.mul_add(wv, *o);
                    }
                } else {
                    for (o, &wv) in orow.iter_mut().zip(wrow) {
                        *o += a * wv;
                    }
                }
            }
        }
    }
}

/// A masked categorical draw from `logits`: returns the action and its log-probability.
/// Masked-out actions are never drawn; with no legal action, action 0 with log-prob 0.
pub fn sample_masked(logits: &[f32], mask: &[bool], rng: &mut Rng, deterministic: bool) -> (usize, f32) {
    let max = logits.iter().zip(mask).filter(|(_, &m)| m).map(|(&l, _)| l).fold(f32::NEG_INFINITY, f32::max);
    if max == f32::NEG_INFINITY {
        return (0, 0.0);
    }
    let total: f64 = logits.iter().zip(mask).filter(|(_, &m)| m).map(|(&l, _)| ((l - max) as f64).exp()).sum();
    let log_total = total.ln() as f32;
    let chosen = if deterministic {
        logits.iter().zip(mask).enumerate().filter(|(_, (_, &m))| m)
            .fold((0usize, f32::NEG_INFINITY), |best, (a, (&l, _))| if l > best.1 { (a, l) } else { best }).0
    } else {
        let mut u = rng.next_f64() * total;
        let mut pick = None;
        for (a, (&l, &m)) in logits.iter().zip(mask).enumerate() {
            if m {
                pick = Some(a);
                u -= ((l - max) as f64).exp();
                if u < 0.0 {
                    break;
                }
            }
        }
        pick.unwrap_or(0)
    };
    (chosen, logits[chosen] - max - log_total)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tiny() -> Policy {
        // 4 inputs -> 3 (relu) -> heads: 2 actions, 1 value. Torch layout [out, in].
        let l1 = Layer::linear_from_torch(&[0.1, -0.2, 0.3, 0.4, 0.5, 0.6, -0.7, 0.8, -0.9, 1.0, 1.1, -1.2],
                                          &[0.01, 0.02, 0.03], 4, 3).unwrap();
        let p = Layer::linear_from_torch(&[1.0, -1.0, 0.5, 0.2, 0.3, -0.4], &[0.0, 0.1], 3, 2).unwrap();
        let v = Layer::linear_from_torch(&[0.7, -0.3, 0.2], &[0.05], 3, 1).unwrap();
        Policy::new(4, vec![l1, Layer::Act(Activation::Relu)], vec![p], vec![v]).unwrap()
    }

    fn random_linear(rng: &mut Rng, inputs: usize, outputs: usize) -> Layer {
        let w: Vec<f32> = (0..inputs * outputs).map(|_| rng.uniform(-0.3, 0.3) as f32).collect();
        let b: Vec<f32> = (0..outputs).map(|_| rng.uniform(-0.3, 0.3) as f32).collect();
        Layer::linear_from_torch(&w, &b, inputs, outputs).unwrap()
    }

    /// A bag of 200 columns (every strip width), a wide layer with a partial panel, a
    /// residual block, a LayerNorm, a head of two layers and a value head of one.
    fn wide_policy(rng: &mut Rng) -> Policy {
        let trunk = vec![
            random_linear(rng, 60, 200), Layer::Act(Activation::Relu),
            random_linear(rng, 200, 37), Layer::Act(Activation::Tanh),
            Layer::Residual(vec![random_linear(rng, 37, 37), Layer::Act(Activation::Relu)]),
            Layer::LayerNorm { gamma: vec![1.1; 37], beta: vec![-0.1; 37], eps: 1e-5 },
        ];
        let head = vec![random_linear(rng, 37, 20), Layer::Act(Activation::Relu), random_linear(rng, 20, 5)];
        Policy::new(60, trunk, head, vec![random_linear(rng, 37, 1)]).unwrap()
    }

    #[test]
    fn packed_forward_matches_the_direct_kernel_and_ignores_the_batch() {
        let mut rng = Rng::new(21, 0);
        let policy = wide_policy(&mut rng);
        let batch = 131;
        let nnz = 7;
        let indices: Vec<u32> = (0..batch * nnz).map(|_| rng.below(60) as u32).collect();
        let counts: Vec<u32> = (0..batch).map(|_| 1 + rng.below(nnz as u64) as u32).collect();
        let mut dense = vec![0.0f32; batch * 60];
        densify(Input::Sparse { indices: &indices, counts: &counts, stride: nnz }, 60, batch, &mut dense);
        for sparse in [true, false] {
            let input = |r0: usize, rows: usize| -> Input<'_> {
                if sparse {
                    Input::Sparse { indices: &indices[r0 * nnz..], counts: &counts[r0..r0 + rows], stride: nnz }
                } else {
                    Input::Dense { x: &dense[r0 * 60..], width: 60 }
                }
            };
            let packed = policy.packed(sparse);
            // Every linear layer is packed (the first only for dense input) and found again.
            assert_eq!(packed.packs.len(), if sparse { 5 } else { 6 });
            for (key, _) in &packed.packs {
                assert!(packed.packs.iter().filter(|(k, _)| k == key).count() == 1);
            }
            let mut ws = Workspace::default();
            let (mut direct_l, mut direct_v) = (vec![0.0f32; batch * 5], vec![0.0f32; batch]);
            policy.forward(input(0, batch), batch, &mut direct_l, &mut direct_v, &mut ws);
            let (mut whole_l, mut whole_v) = (vec![0.0f32; batch * 5], vec![0.0f32; batch]);
            packed.forward(input(0, batch), batch, &mut whole_l, &mut whole_v, &mut ws);
            for (a, b) in direct_l.iter().zip(&whole_l).chain(direct_v.iter().zip(&whole_v)) {
                assert!((a - b).abs() < 1e-5 * (1.0 + a.abs()), "sparse {sparse}: {a} vs {b}");
            }
            // The same rows in other batches, with a fresh workspace: the same bits.
            for split in [1usize, 3, 8, 64, 130] {
                let mut ws = Workspace::default();
                let (mut l, mut v) = (vec![0.0f32; batch * 5], vec![0.0f32; batch]);
                let mut r0 = 0;
                while r0 < batch {
                    let rows = split.min(batch - r0);
                    packed.forward(input(r0, rows), rows, &mut l[r0 * 5..], &mut v[r0..], &mut ws);
                    r0 += rows;
                }
                let same = |x: &[f32], y: &[f32]| x.iter().zip(y).all(|(a, b)| a.to_bits() == b.to_bits());
                assert!(same(&l, &whole_l) && same(&v, &whole_v), "sparse {sparse}, split {split}");
            }
        }
    }

    #[test]
    fn packed_convolutions_match_the_direct_kernel() {
        let mut rng = Rng::new(22, 0);
        let (cin, cout, input) = (3usize, 20usize, (5usize, 6usize));
        let torch_w: Vec<f32> = (0..cout * cin * 9).map(|_| rng.uniform(-0.3, 0.3) as f32).collect();
        let bias: Vec<f32> = (0..cout).map(|_| rng.uniform(-0.3, 0.3) as f32).collect();
        let conv = Conv2d::from_torch(&torch_w, &bias, cin, cout, (3, 3), (1, 1), (1, 1), input).unwrap();
        let flat = cout * input.0 * input.1;
        let trunk = vec![Layer::Conv2d(conv), Layer::Act(Activation::Relu), random_linear(&mut rng, flat, 24)];
        let policy = Policy::new(cin * 30, trunk, vec![random_linear(&mut rng, 24, 3)],
                                 vec![random_linear(&mut rng, 24, 1)]).unwrap();
        let batch = 9;
        let x: Vec<f32> = (0..batch * cin * 30).map(|_| rng.uniform(-1.0, 1.0) as f32).collect();
        let mut ws = Workspace::default();
        let (mut l1, mut v1) = (vec![0.0f32; batch * 3], vec![0.0f32; batch]);
        let (mut l2, mut v2) = (vec![0.0f32; batch * 3], vec![0.0f32; batch]);
        policy.forward(Input::Dense { x: &x, width: cin * 30 }, batch, &mut l1, &mut v1, &mut ws);
        policy.packed(false).forward(Input::Dense { x: &x, width: cin * 30 }, batch, &mut l2, &mut v2, &mut ws);
        for (a, b) in l1.iter().zip(&l2).chain(v1.iter().zip(&v2)) {
            assert!((a - b).abs() < 1e-5 * (1.0 + a.abs()), "{a} vs {b}");
        }
    }

    #[test]
    fn sparse_and_dense_inputs_agree() {
        let policy = tiny();
        let mut ws = Workspace::default();
        let (mut l1, mut v1) = (vec![0.0; 4], vec![0.0; 2]);
        let (mut l2, mut v2) = (vec![0.0; 4], vec![0.0; 2]);
        let dense = [1.0, 0.0, 1.0, 0.0, 0.0, 1.0, 0.0, 0.0];
        policy.forward(Input::Dense { x: &dense, width: 4 }, 2, &mut l1, &mut v1, &mut ws);
        let idx = [0u32, 2, 1, 0];
        policy.forward(Input::Sparse { indices: &idx, counts: &[2, 1], stride: 2 }, 2, &mut l2, &mut v2, &mut ws);
        for (a, b) in l1.iter().zip(&l2).chain(v1.iter().zip(&v2)) {
            assert!((a - b).abs() < 1e-6, "{l1:?} {l2:?}");
        }
        // Row 0 by hand: h = relu([0.1+0.3, 0.5-0.7, -0.9+1.1] + bias) = [0.41, 0, 0.23]
        let h = [0.41f32, 0.0, 0.23];
        let logit0 = 1.0 * h[0] - 1.0 * h[1] + 0.5 * h[2];
        assert!((l1[0] - logit0).abs() < 1e-6);
        let value0 = 0.7 * h[0] - 0.3 * h[1] + 0.2 * h[2] + 0.05;
        assert!((v1[0] - value0).abs() < 1e-6);
    }

    #[test]
    fn all_kernels_agree_on_odd_sizes() {
        let mut rng = Rng::new(5, 0);
        for &(inputs, outputs, batch) in &[(7usize, 37usize, 11usize), (64, 16, 8), (3, 5, 1), (33, 48, 13)] {
            let torch_w: Vec<f32> = (0..inputs * outputs).map(|_| rng.uniform(-1.0, 1.0) as f32).collect();
            let bias: Vec<f32> = (0..outputs).map(|_| rng.uniform(-1.0, 1.0) as f32).collect();
            let layer = Layer::linear_from_torch(&torch_w, &bias, inputs, outputs).unwrap();
            let x: Vec<f32> = (0..batch * inputs).map(|_| rng.uniform(-1.0, 1.0) as f32).collect();
            let mut fast = vec![0.0f32; batch * outputs];
            linear(&layer, &x, batch, &mut fast);
            for b in 0..batch {
                for o in 0..outputs {
                    let mut want = bias[o] as f64;
                    for i in 0..inputs {
                        want += x[b * inputs + i] as f64 * torch_w[o * inputs + i] as f64;
                    }
                    assert!((fast[b * outputs + o] as f64 - want).abs() < 1e-4, "{inputs}x{outputs} b{b} o{o}");
                }
            }
        }
    }

    #[test]
    fn convolution_matches_the_direct_sum() {
        let mut rng = Rng::new(9, 0);
        let (cin, cout, kernel, stride, padding, input) = (2usize, 3usize, (3usize, 2usize), (1usize, 2usize), (1usize, 1usize), (4usize, 5usize));
        let patch = cin * kernel.0 * kernel.1;
        let torch_w: Vec<f32> = (0..cout * patch).map(|_| rng.uniform(-1.0, 1.0) as f32).collect();
        let bias: Vec<f32> = (0..cout).map(|_| rng.uniform(-1.0, 1.0) as f32).collect();
        let conv = Conv2d::from_torch(&torch_w, &bias, cin, cout, kernel, stride, padding, input).unwrap();
        let (oh, ow) = conv.output();
        assert_eq!((oh, ow), (4, 3));
        let batch = 3;
        let x: Vec<f32> = (0..batch * cin * input.0 * input.1).map(|_| rng.uniform(-1.0, 1.0) as f32).collect();
        let mut out = vec![0.0f32; batch * conv.outputs()];
        convolve(&conv, &x, batch, &mut out, &mut Scratch::default(), None);
        for b in 0..batch {
            for o in 0..cout {
                for oy in 0..oh {
                    for ox in 0..ow {
                        let mut want = bias[o] as f64;
                        for c in 0..cin {
                            for ky in 0..kernel.0 {
                                for kx in 0..kernel.1 {
                                    let y = (oy * stride.0 + ky) as isize - padding.0 as isize;
                                    let xx = (ox * stride.1 + kx) as isize - padding.1 as isize;
                                    if y < 0 || xx < 0 || y as usize >= input.0 || xx as usize >= input.1 {
                                        continue;
                                    }
                                    let v = x[b * cin * 20 + c * 20 + y as usize * input.1 + xx as usize];
                                    want += v as f64 * torch_w[((o * cin + c) * kernel.0 + ky) * kernel.1 + kx] as f64;
                                }
                            }
                        }
                        let got = out[b * conv.outputs() + o * oh * ow + oy * ow + ox] as f64;
                        assert!((got - want).abs() < 1e-5, "b{b} o{o} ({oy},{ox}): {got} vs {want}");
                    }
                }
            }
        }
    }

    #[test]
    fn residual_blocks_add_their_input_and_check_widths() {
        let l = Layer::linear_from_torch(&[1.0, 0.0, 0.0, 2.0], &[0.5, -0.5], 2, 2).unwrap();
        let head = Layer::linear_from_torch(&[1.0, 1.0], &[0.0], 2, 1).unwrap();
        let inner = Layer::Residual(vec![l.clone(), Layer::Act(Activation::Relu)]);
        let nested = Layer::Residual(vec![inner, l.clone()]);
        let policy = Policy::new(2, vec![nested], vec![head.clone()], vec![head.clone()]).unwrap();
        let (mut logits, mut values) = (vec![0.0f32; 1], vec![0.0f32; 1]);
        policy.forward(Input::Dense { x: &[1.0, 1.0], width: 2 }, 1, &mut logits, &mut values, &mut Workspace::default());
        // inner: [1,1] + relu([1.5, 1.5]) = [2.5, 2.5]; l: [3.0, 4.5]; outer: + [1,1] = [4.0, 5.5]
        assert!((logits[0] - 9.5).abs() < 1e-6 && (values[0] - 9.5).abs() < 1e-6, "{logits:?}");
        let widen = Layer::linear_from_torch(&[0.0; 6], &[0.0; 3], 2, 3).unwrap();
        assert!(Policy::new(2, vec![Layer::Residual(vec![widen])], vec![head.clone()], vec![head]).is_err());
    }

    #[test]
    fn sparse_input_reaches_a_first_layer_that_is_not_linear() {
        let head = Layer::linear_from_torch(&[1.0, 2.0, 3.0], &[0.0], 3, 1).unwrap();
        let policy = Policy::new(3, vec![Layer::Act(Activation::Tanh)], vec![head.clone()], vec![head]).unwrap();
        let (mut logits, mut values) = (vec![0.0f32; 2], vec![0.0f32; 2]);
        let idx = [2u32, 0, 1, 9];
        policy.forward(Input::Sparse { indices: &idx, counts: &[1, 2], stride: 2 }, 2, &mut logits, &mut values,
                       &mut Workspace::default());
        let t = 1.0f32.tanh();
        assert!((logits[0] - 3.0 * t).abs() < 1e-6 && (logits[1] - 2.0 * t).abs() < 1e-6, "{logits:?}");
    }

    #[test]
    fn shapes_are_checked() {
        let l1 = Layer::linear_from_torch(&[0.0; 12], &[0.0; 3], 4, 3).unwrap();
        assert!(Policy::new(5, vec![l1.clone()], vec![], vec![]).is_err());
        let bad_value = Layer::linear_from_torch(&[0.0; 6], &[0.0; 2], 3, 2).unwrap();
        assert!(Policy::new(4, vec![l1], vec![], vec![bad_value]).is_err());
        assert!(Layer::linear_from_torch(&[0.0; 5], &[0.0; 3], 4, 3).is_err());
    }

    #[test]
    fn masked_actions_are_never_sampled_and_logprobs_normalise() {
        let mut rng = Rng::new(1, 0);
        let logits = [2.0f32, 0.5, -1.0, 3.0];
        let mask = [true, false, true, false];
        let mut counts = [0u32; 4];
        for _ in 0..20_000 {
            let (a, lp) = sample_masked(&logits, &mask, &mut rng, false);
            counts[a] += 1;
            assert!(lp <= 0.0);
        }
        assert_eq!(counts[1] + counts[3], 0);
        let p0 = 1.0 / (1.0 + (-3.0f64).exp());
        let freq = counts[0] as f64 / 20_000.0;
        assert!((freq - p0).abs() < 0.01, "{freq} vs {p0}");
        let (a, lp) = sample_masked(&logits, &mask, &mut rng, true);
        assert_eq!(a, 0);
        assert!((lp as f64 - p0.ln()).abs() < 1e-6);
        assert_eq!(sample_masked(&logits, &[false; 4], &mut rng, false), (0, 0.0));
    }

    #[test]
    fn activations_match_their_definitions() {
        let mut x = [-1.0f32, 0.0, 2.0];
        activate(Activation::Relu, &mut x);
        assert_eq!(x, [0.0, 0.0, 2.0]);
        let mut x = [0.5f32];
        activate(Activation::Tanh, &mut x);
        assert!((x[0] - 0.5f32.tanh()).abs() < 1e-7);
        let mut x = [1.0f32];
        activate(Activation::GeluTanh, &mut x);
        assert!((x[0] - 0.841192).abs() < 1e-5);
    }
}
