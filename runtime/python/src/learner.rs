//! The Rust learner's Python face: a policy with its optimizer, updated in place by PPO
//! minibatches or AlphaZero batches (see `twisterl_core::learn`).

use numpy::{PyArray1, PyReadonlyArray1, PyReadonlyArray2, PyUntypedArrayMethods};
use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyDict;
use std::panic::{catch_unwind, AssertUnwindSafe};
use twisterl_core::learn::{params, AdamConfig, Learner as CoreLearner, PpoCoefs, Rollout};
use twisterl_core::policy::{Input, Policy as CorePolicy};

use crate::policy::{layers, Policy};

#[pyclass(module = "twisterl._core", name = "Learner")]
pub struct Learner {
    inner: CoreLearner,
}

/// Observations as the learner reads them: sparse (indices `[N, nnz]` u32 and counts `[N]`
/// u32) or dense (`[N, features]` f32).
enum Obs<'py> {
    Sparse(PyReadonlyArray2<'py, u32>, PyReadonlyArray1<'py, u32>),
    Dense(PyReadonlyArray2<'py, f32>),
}

impl<'py> Obs<'py> {
    fn extract(obs: &Bound<'py, PyAny>, counts: Option<&Bound<'py, PyAny>>) -> PyResult<Obs<'py>> {
        Ok(match counts {
            Some(counts) => Obs::Sparse(obs.extract().map_err(|_| bad("sparse observations are a C-contiguous uint32 \
                                                                      array [rows, nnz]"))?,
                                        counts.extract().map_err(|_| bad("counts are a uint32 array [rows]"))?),
            None => Obs::Dense(obs.extract().map_err(|_| bad("dense observations are a C-contiguous float32 array \
                                                              [rows, features]"))?),
        })
    }

    fn input(&self) -> PyResult<Input<'_>> {
        Ok(match self {
            Obs::Sparse(i, c) => Input::Sparse { indices: i.as_slice()?, counts: c.as_slice()?, stride: i.shape()[1] },
            Obs::Dense(x) => Input::Dense { x: x.as_slice()?, width: x.shape()[1] },
        })
    }
}

fn bad(message: &str) -> PyErr {
    PyValueError::new_err(message.to_string())
}

fn rows_of(rows: &PyReadonlyArray1<'_, i64>) -> PyResult<Vec<usize>> {
    rows.as_slice()?.iter().map(|&r| usize::try_from(r).map_err(|_| bad("rows must not be negative"))).collect()
}

/// Run an update with the GIL released; a panic (a bug) is a RuntimeError, not an abort.
fn run<T: Send>(py: Python<'_>, f: impl FnOnce() -> Result<T, String> + Send) -> PyResult<T> {
    match py.detach(|| catch_unwind(AssertUnwindSafe(f))) {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(PyValueError::new_err(e)),
        Err(_) => Err(PyRuntimeError::new_err("the Rust learner panicked (a bug in twisterl; please report it)")),
    }
}

#[pymethods]
impl Learner {
    /// A learner for the policy given as layer tuples (as `twisterl._core.Policy` takes
    /// them), with Adam (`lr`, `eps`, `weight_decay`) and, when given, gradient clipping to
    /// `max_grad_norm`. `log_std` makes it a Gaussian policy; `frozen` flags parameter
    /// tensors training must leave alone.
    #[new]
    #[pyo3(signature = (inputs, trunk, policy_head, value_head, *, log_std=None, frozen=None, lr=3e-4, eps=1e-5,
                        weight_decay=0.0, max_grad_norm=None, threads=1))]
    #[allow(clippy::too_many_arguments)]
    fn new(inputs: usize, trunk: &Bound<'_, PyAny>, policy_head: &Bound<'_, PyAny>, value_head: &Bound<'_, PyAny>,
           log_std: Option<Vec<f32>>, frozen: Option<Vec<bool>>, lr: f64, eps: f64, weight_decay: f64,
           max_grad_norm: Option<f64>, threads: usize) -> PyResult<Self> {
        let policy = CorePolicy::new(inputs, layers(trunk)?, layers(policy_head)?, layers(value_head)?)
            .map_err(PyValueError::new_err)?;
        let adam = AdamConfig { weight_decay, ..AdamConfig::new(lr, eps) };
        let inner = CoreLearner::new(policy, log_std, frozen.unwrap_or_default(), adam, max_grad_norm, threads)
            .map_err(PyValueError::new_err)?;
        Ok(Learner { inner })
    }

    /// One PPO minibatch update on `rows` of a rollout (the arrays `_core.collect` gives,
    /// flattened to rows). Returns the minibatch's losses and diagnostics.
    #[pyo3(signature = (obs, counts, actions, action_values, masks, logp, advantages, returns, values, rows, *,
                        clip_coef, vf_coef, ent_coef, norm_adv=true, clip_vloss=false))]
    #[allow(clippy::too_many_arguments)]
    fn ppo_step<'py>(&mut self, py: Python<'py>, obs: &Bound<'py, PyAny>, counts: Option<&Bound<'py, PyAny>>,
                     actions: PyReadonlyArray1<'py, i64>, action_values: PyReadonlyArray2<'py, f32>,
                     masks: PyReadonlyArray2<'py, bool>, logp: PyReadonlyArray1<'py, f32>,
                     advantages: PyReadonlyArray1<'py, f32>, returns: PyReadonlyArray1<'py, f32>,
                     values: PyReadonlyArray1<'py, f32>, rows: PyReadonlyArray1<'py, i64>, clip_coef: f32,
                     vf_coef: f32, ent_coef: f32, norm_adv: bool, clip_vloss: bool) -> PyResult<Bound<'py, PyDict>> {
        let obs = Obs::extract(obs, counts)?;
        let rows = rows_of(&rows)?;
        let data = Rollout {
            obs: obs.input()?,
            actions: actions.as_slice()?,
            action_values: action_values.as_slice()?,
            masks: masks.as_slice()?,
            logp: logp.as_slice()?,
            advantages: advantages.as_slice()?,
            returns: returns.as_slice()?,
            values: values.as_slice()?,
        };
        let coefs = PpoCoefs { clip_coef, vf_coef, ent_coef, norm_adv, clip_vloss };
        let inner = &mut self.inner;
        let s = run(py, || inner.ppo_step(&data, &rows, &coefs))?;
        let d = PyDict::new(py);
        d.set_item("policy_loss", s.policy_loss)?;
        d.set_item("value_loss", s.value_loss)?;
        d.set_item("entropy", s.entropy)?;
        d.set_item("approx_kl", s.approx_kl)?;
        d.set_item("clipfrac", s.clipfrac)?;
        Ok(d)
    }

    /// One AlphaZero update on `rows`: the masked policy against the search's visit
    /// distributions `target`, and the value against the outcomes `z`.
    #[pyo3(signature = (obs, counts, masks, target, z, rows, *, value_coef))]
    #[allow(clippy::too_many_arguments)]
    fn az_step<'py>(&mut self, py: Python<'py>, obs: &Bound<'py, PyAny>, counts: Option<&Bound<'py, PyAny>>,
                    masks: PyReadonlyArray2<'py, bool>, target: PyReadonlyArray2<'py, f32>,
                    z: PyReadonlyArray1<'py, f32>, rows: PyReadonlyArray1<'py, i64>, value_coef: f32)
                    -> PyResult<Bound<'py, PyDict>> {
        let obs = Obs::extract(obs, counts)?;
        let rows = rows_of(&rows)?;
        let input = obs.input()?;
        let (masks, target, z) = (masks.as_slice()?, target.as_slice()?, z.as_slice()?);
        let inner = &mut self.inner;
        let s = run(py, || inner.az_step(&input, masks, target, z, &rows, value_coef))?;
        let d = PyDict::new(py);
        d.set_item("policy_loss", s.policy_loss)?;
        d.set_item("value_loss", s.value_loss)?;
        d.set_item("entropy", s.entropy)?;
        Ok(d)
    }

    /// The current network as a `Policy`, for collection and search.
    fn policy(&self) -> Policy {
        Policy::from_core(self.inner.policy.clone())
    }

    /// The parameter tensors, flat, in torch's order and layouts (`log_std` last).
    fn parameters<'py>(&self, py: Python<'py>) -> Vec<Bound<'py, PyArray1<f32>>> {
        let mut out = params::to_torch(&self.inner.policy);
        if let Some(ls) = &self.inner.log_std {
            out.push(ls.clone());
        }
        out.into_iter().map(|v| PyArray1::from_vec(py, v)).collect()
    }

    /// Replace the parameters with flat tensors in the order and layouts `parameters` gives.
    fn set_parameters(&mut self, values: Vec<Vec<f32>>) -> PyResult<()> {
        let inner = &mut self.inner;
        let tensors = params::params(&inner.policy).len();
        let extra = inner.log_std.is_some() as usize;
        if values.len() != tensors + extra {
            return Err(bad(&format!("the network has {} parameter tensors, not {}", tensors + extra, values.len())));
        }
        params::set_from_torch(&mut inner.policy, &values[..tensors]).map_err(PyValueError::new_err)?;
        if let Some(ls) = inner.log_std.as_mut() {
            if values[tensors].len() != ls.len() {
                return Err(bad(&format!("log_std has {} values, not {}", ls.len(), values[tensors].len())));
            }
            ls.copy_from_slice(&values[tensors]);
        }
        Ok(())
    }

    /// Replace the weights with those of layer tuples of the same network (frozen layers
    /// included, such as an observation normaliser's) and, for a Gaussian policy, `log_std`;
    /// Adam's state is kept. A network of other sizes is a ValueError.
    #[pyo3(signature = (inputs, trunk, policy_head, value_head, log_std=None))]
    fn load_layers(&mut self, inputs: usize, trunk: &Bound<'_, PyAny>, policy_head: &Bound<'_, PyAny>,
                   value_head: &Bound<'_, PyAny>, log_std: Option<Vec<f32>>) -> PyResult<()> {
        let fresh = CorePolicy::new(inputs, layers(trunk)?, layers(policy_head)?, layers(value_head)?)
            .map_err(PyValueError::new_err)?;
        if inputs != self.inner.policy.inputs {
            return Err(bad(&format!("the network reads {} features, not {inputs}", self.inner.policy.inputs)));
        }
        let inner = &mut self.inner;
        let fits = match (&inner.log_std, &log_std) {
            (Some(mine), Some(given)) => mine.len() == given.len(),
            (None, None) => true,
            _ => false,
        };
        if !fits {
            return Err(bad("log_std must be given exactly for a Gaussian policy, one per action value"));
        }
        params::set_from_torch(&mut inner.policy, &params::to_torch(&fresh)).map_err(PyValueError::new_err)?;
        if let (Some(mine), Some(given)) = (inner.log_std.as_mut(), log_std) {
            mine.copy_from_slice(&given);
        }
        Ok(())
    }

    /// Adam's state: (first moments, second moments, step count), tensors as `parameters`.
    fn optimizer_state<'py>(&self, py: Python<'py>)
                            -> (Vec<Bound<'py, PyArray1<f32>>>, Vec<Bound<'py, PyArray1<f32>>>, u64) {
        let (m, v) = self.inner.moments();
        let arrays = |list: Vec<Vec<f32>>| list.into_iter().map(|x| PyArray1::from_vec(py, x)).collect();
        (arrays(m), arrays(v), self.inner.step)
    }

    /// Put back what `optimizer_state` gave.
    fn set_optimizer_state(&mut self, m: Vec<Vec<f32>>, v: Vec<Vec<f32>>, step: u64) -> PyResult<()> {
        self.inner.set_moments(&m, &v, step).map_err(PyValueError::new_err)
    }

    /// Adam's learning rate (settable, for annealing).
    #[getter]
    fn get_lr(&self) -> f64 {
        self.inner.adam.lr
    }

    #[setter]
    fn set_lr(&mut self, lr: f64) -> PyResult<()> {
        let adam = AdamConfig { lr, ..self.inner.adam };
        adam.check().map_err(PyValueError::new_err)?;
        self.inner.adam = adam;
        Ok(())
    }

    /// Adam steps taken so far.
    #[getter]
    fn steps(&self) -> u64 {
        self.inner.step
    }

    #[getter]
    fn num_actions(&self) -> usize {
        self.inner.policy.num_actions
    }
}
