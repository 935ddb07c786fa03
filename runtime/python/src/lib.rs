//! `twisterl._core`: the compiled half of the Python package.
//!
//! It loads environment plugins built by `twisterl compile` (see `twisterl_core::abi`)
//! and steps their batches on several threads with the GIL released. Python sees numpy
//! arrays throughout; faults become `EnvFault` exceptions with named fields, which the
//! Python layer re-raises as `twisterl.EnvError`. What it runs (rollouts, search, policy
//! kernels) lives in `twisterl_core`; this crate only converts, releases the GIL, hooks
//! Ctrl-C and checks options.

mod batch;
mod collect;
mod error;
mod interrupt;
mod learner;
mod mcts;
mod plugin;
mod policy;

use pyo3::prelude::*;

#[pymodule]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    interrupt::install(None);
    m.add_class::<plugin::Plugin>()?;
    m.add_class::<batch::Batch>()?;
    m.add_class::<policy::Policy>()?;
    m.add_class::<learner::Learner>()?;
    m.add("EnvFault", m.py().get_type::<error::EnvFault>())?;
    m.add("ABI_VERSION", twisterl_core::abi::ABI_VERSION)?;
    m.add("CORE_VERSION", twisterl_core::abi::CORE_VERSION)?;
    m.add("MAX_THREADS", plugin::MAX_THREADS)?;
    m.add("MAX_LOOP", twisterl_core::ops::MAX_LOOP)?;
    m.add_function(wrap_pyfunction!(plugin::load_plugin, m)?)?;
    m.add_function(wrap_pyfunction!(collect::collect, m)?)?;
    m.add_function(wrap_pyfunction!(mcts::play, m)?)?;
    m.add_function(wrap_pyfunction!(mcts::search, m)?)?;
    Ok(())
}
