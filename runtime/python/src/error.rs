//! Faults reported by a plugin, as Python exceptions.

use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;
use twisterl_core::abi::FaultOut;
use twisterl_core::fault::FaultKind;

/// A `RuntimeError` whose args are (message, kind, line, col, env index); the Python
/// layer re-raises it as `twisterl.EnvError` with the `.twl` file name.
pub fn fault_error(out: &FaultOut) -> PyErr {
    let fault = out.fault();
    let kind = format!("{:?}", FaultKind::from_u32(out.kind));
    PyRuntimeError::new_err((fault.describe(), kind, out.line, out.col, out.env))
}
