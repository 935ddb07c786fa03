//! The same network as a tract-core `TypedModel`, built by hand (no ONNX file), one model per
//! batch size, as tract is normally used with concrete shapes. Optimised once, then run
//! through a reusable `SimpleState`. tract's default executor is single-threaded.

use crate::net::*;
use tract_core::internal::*;
use tract_core::ops::array::Gather;
use tract_core::ops::einsum::EinSum;
use tract_core::ops::math::{add, max};
use tract_core::ops::nn::{Reduce, Reducer};

pub struct Tract {
    state: TypedSimpleState,
    batch: usize,
    sparse: bool,
}

fn konst(model: &mut TypedModel, name: &str, shape: &[usize], data: &[f32]) -> TractResult<OutletId> {
    model.add_const(name, Tensor::from_shape(shape, data)?)
}

/// `x [batch, in] · W^T + b`, W^T stored `[in, out]`; optionally ReLU.
fn linear(m: &mut TypedModel, name: &str, x: OutletId, wt: Vec<f32>, b: &[f32], relu: bool) -> TractResult<OutletId> {
    let (outputs, inputs) = (b.len(), wt.len() / b.len());
    let w = konst(m, &format!("{name}.w"), &[inputs, outputs], &wt)?;
    let y = m.wire_node(format!("{name}.mm"), EinSum::new("mk,kn->mn".parse()?, f32::datum_type()), &[x, w])?[0];
    let bias = konst(m, &format!("{name}.b"), &[1, outputs], b)?;
    let y = m.wire_node(format!("{name}.add"), add(), &[y, bias])?[0];
    if relu { relu_(m, name, y) } else { Ok(y) }
}

fn relu_(m: &mut TypedModel, name: &str, y: OutletId) -> TractResult<OutletId> {
    let zero = konst(m, &format!("{name}.zero"), &[1, 1], &[0.0])?;
    Ok(m.wire_node(format!("{name}.relu"), max(), &[y, zero])?[0])
}

impl Tract {
    /// `sparse`: the input is the `[batch, 9]` indices (i64) and layer 1 is Gather + Sum
    /// (an embedding bag); otherwise the `[batch, 81]` 0/1 matrix and a matmul.
    pub fn new(w: &Weights, batch: usize, sparse: bool) -> TractResult<Tract> {
        let mut m = TypedModel::default();
        let h1 = if sparse {
            let ids = m.add_source("ids", i64::fact([batch, ONES]))?;
            let table = konst(&mut m, "l1.table", &[OBS, H1], &transpose(&w.w1, H1, OBS))?;
            let g = m.wire_node("l1.gather", Gather::new(0), &[table, ids])?[0]; // [batch, 9, H1]
            let s = m.wire_node("l1.sum", Reduce::new(tvec![1], Reducer::Sum), &[g])?[0]; // [batch, 1, H1]
            let s = m.wire_node("l1.squeeze", AxisOp::Rm(1), &[s])?[0];
            let bias = konst(&mut m, "l1.b", &[1, H1], &w.b1)?;
            let y = m.wire_node("l1.add", add(), &[s, bias])?[0];
            relu_(&mut m, "l1", y)?
        } else {
            let x = m.add_source("x", f32::fact([batch, OBS]))?;
            linear(&mut m, "l1", x, transpose(&w.w1, H1, OBS), &w.b1, true)?
        };
        let h2 = linear(&mut m, "l2", h1, transpose(&w.w2, H2, H1), &w.b2, true)?;
        let l = linear(&mut m, "policy", h2, transpose(&w.wp, ACTIONS, H2), &w.bp, false)?;
        let v = linear(&mut m, "value", h2, transpose(&w.wv, 1, H2), &w.bv, false)?;
        m.select_output_outlets(&[l, v])?;
        let plan = SimplePlan::new(m.into_optimized()?)?;
        Ok(Tract { state: SimpleState::new(&plan)?, batch, sparse })
    }

    pub fn forward_dense(&mut self, x: &[f32], logits: &mut [f32], values: &mut [f32]) -> TractResult<()> {
        assert!(!self.sparse);
        let x = Tensor::from_shape(&[self.batch, OBS], &x[..self.batch * OBS])?;
        self.run(x, logits, values)
    }

    pub fn forward_sparse(&mut self, idx: &[u32], logits: &mut [f32], values: &mut [f32]) -> TractResult<()> {
        assert!(self.sparse);
        let ids: Vec<i64> = idx[..self.batch * ONES].iter().map(|&i| i as i64).collect();
        let ids = Tensor::from_shape(&[self.batch, ONES], &ids)?;
        self.run(ids, logits, values)
    }

    fn run(&mut self, input: Tensor, logits: &mut [f32], values: &mut [f32]) -> TractResult<()> {
        let out = self.state.run(tvec!(input.into_tvalue()))?;
        logits[..self.batch * ACTIONS].copy_from_slice(out[0].try_as_plain_ram()?.as_slice::<f32>()?);
        values[..self.batch].copy_from_slice(out[1].try_as_plain_ram()?.as_slice::<f32>()?);
        Ok(())
    }
}
