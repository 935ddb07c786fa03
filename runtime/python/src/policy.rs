//! The policy network on the Rust side, built from weights sent by torch.

use numpy::{PyArray1, PyArray2, PyArrayMethods, PyReadonlyArray1, PyReadonlyArray2, PyReadonlyArray4,
            PyUntypedArrayMethods};
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyTuple;
use twisterl_core::policy::{Activation, Conv2d, Input, Layer, Policy as CorePolicy, Workspace};

#[pyclass(module = "twisterl._core", name = "Policy")]
pub struct Policy {
    pub inner: CorePolicy,
    ws: std::sync::Mutex<Workspace>,
}

/// One layer from a tuple: ("linear", weight [out, in], bias [out]), ("relu",), ("tanh",),
/// ("gelu_tanh",), ("layernorm", gamma, beta, eps), ("residual", [layers]),
/// ("conv2d", weight [out, in, kh, kw], bias [out], (stride_h, stride_w), (pad_h, pad_w),
/// (height, width)).
fn layer(item: &Bound<'_, PyAny>) -> PyResult<Layer> {
    let t = item.cast::<PyTuple>().map_err(|_| PyTypeError::new_err("each layer is a tuple like (\"linear\", w, b)"))?;
    let kind: String = t.get_item(0)?.extract()?;
    match kind.as_str() {
        "linear" => {
            let w: PyReadonlyArray2<'_, f32> = t.get_item(1)?.extract()?;
            let b: PyReadonlyArray1<'_, f32> = t.get_item(2)?.extract()?;
            let (outputs, inputs) = (w.shape()[0], w.shape()[1]);
            let w = w.as_array().iter().copied().collect::<Vec<f32>>();
            Layer::linear_from_torch(&w, b.as_slice()?, inputs, outputs).map_err(PyValueError::new_err)
        }
        "relu" => Ok(Layer::Act(Activation::Relu)),
        "tanh" => Ok(Layer::Act(Activation::Tanh)),
        "gelu_tanh" => Ok(Layer::Act(Activation::GeluTanh)),
        "layernorm" => {
            let g: PyReadonlyArray1<'_, f32> = t.get_item(1)?.extract()?;
            let b: PyReadonlyArray1<'_, f32> = t.get_item(2)?.extract()?;
            let eps: f32 = t.get_item(3)?.extract()?;
            Ok(Layer::LayerNorm { gamma: g.as_slice()?.to_vec(), beta: b.as_slice()?.to_vec(), eps })
        }
        "residual" => Ok(Layer::Residual(layers(&t.get_item(1)?)?)),
        "conv2d" => {
            let w: PyReadonlyArray4<'_, f32> = t.get_item(1)?.extract()?;
            let b: PyReadonlyArray1<'_, f32> = t.get_item(2)?.extract()?;
            let stride: (usize, usize) = t.get_item(3)?.extract()?;
            let padding: (usize, usize) = t.get_item(4)?.extract()?;
            let input: (usize, usize) = t.get_item(5)?.extract()?;
            let shape = w.shape();
            let weight = w.as_array().iter().copied().collect::<Vec<f32>>();
            Conv2d::from_torch(&weight, b.as_slice()?, shape[1], shape[0], (shape[2], shape[3]), stride, padding, input)
                .map(Layer::Conv2d)
                .map_err(PyValueError::new_err)
        }
        other => Err(PyValueError::new_err(format!("unknown layer kind {other:?}"))),
    }
}

pub(crate) fn layers(items: &Bound<'_, PyAny>) -> PyResult<Vec<Layer>> {
    items.try_iter()?.map(|item| layer(&item?)).collect()
}

#[pymethods]
impl Policy {
    /// A policy over `inputs` observation features: trunk, policy head, value head, each a
    /// list of layer tuples (see `twisterl.nets.export`).
    #[new]
    fn new(inputs: usize, trunk: &Bound<'_, PyAny>, policy_head: &Bound<'_, PyAny>, value_head: &Bound<'_, PyAny>) -> PyResult<Self> {
        let inner = CorePolicy::new(inputs, layers(trunk)?, layers(policy_head)?, layers(value_head)?)
            .map_err(PyValueError::new_err)?;
        Ok(Policy { inner, ws: std::sync::Mutex::new(Workspace::default()) })
    }

    #[getter]
    fn num_actions(&self) -> usize {
        self.inner.num_actions
    }

    /// (logits [B, A], values [B]) for dense observations [B, inputs].
    fn forward_dense<'py>(&self, py: Python<'py>, x: PyReadonlyArray2<'py, f32>)
                          -> PyResult<(Bound<'py, PyArray2<f32>>, Bound<'py, PyArray1<f32>>)> {
        let (batch, width) = (x.shape()[0], x.shape()[1]);
        if width != self.inner.inputs {
            return Err(PyValueError::new_err(format!("observations have {width} features; the policy expects {}", self.inner.inputs)));
        }
        let x = x.as_slice()?;
        self.run(py, Input::Dense { x, width }, batch)
    }

    /// (logits, values) for sparse observations: indices [B, nnz] and counts [B].
    fn forward_sparse<'py>(&self, py: Python<'py>, indices: PyReadonlyArray2<'py, u32>, counts: PyReadonlyArray1<'py, u32>)
                           -> PyResult<(Bound<'py, PyArray2<f32>>, Bound<'py, PyArray1<f32>>)> {
        let (batch, stride) = (indices.shape()[0], indices.shape()[1]);
        if counts.len() != batch || counts.as_slice()?.iter().any(|&c| c as usize > stride) {
            return Err(PyValueError::new_err("counts must have one entry per row, each at most the row length"));
        }
        self.run(py, Input::Sparse { indices: indices.as_slice()?, counts: counts.as_slice()?, stride }, batch)
    }
}

impl Policy {
    /// The Python face of a core policy.
    pub fn from_core(inner: CorePolicy) -> Policy {
        Policy { inner, ws: std::sync::Mutex::new(Workspace::default()) }
    }

    fn run<'py>(&self, py: Python<'py>, input: Input<'_>, batch: usize)
                -> PyResult<(Bound<'py, PyArray2<f32>>, Bound<'py, PyArray1<f32>>)> {
        let logits = PyArray2::<f32>::zeros(py, [batch, self.inner.num_actions], false);
        let values = PyArray1::<f32>::zeros(py, batch, false);
        {
            let mut ws = self.ws.lock().map_err(|_| PyValueError::new_err("policy workspace poisoned"))?;
            let (l, v) = unsafe { (logits.as_slice_mut()?, values.as_slice_mut()?) };
            self.inner.forward(input, batch, l, v, &mut ws);
        }
        Ok((logits, values))
    }
}
