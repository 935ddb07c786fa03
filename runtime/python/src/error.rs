//! Faults reported by a plugin, as Python exceptions.

use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;
use twisterl_core::abi::FaultOut;
use twisterl_core::fault::FaultKind;

/// A `RuntimeError` whose args are (message, kind, line, col, env index, a, b, c); the
/// Python layer re-raises it as `twisterl.EnvError` with the `.twl` file name. An
/// interrupted call raises what Python's SIGINT handler raises (`KeyboardInterrupt`).
pub fn fault_error(out: &FaultOut) -> PyErr {
    let fault = out.fault();
    if fault.kind == FaultKind::Interrupted {
        return crate::interrupt::error();
    }
    let kind = format!("{:?}", fault.kind);
    PyRuntimeError::new_err((fault.describe(), kind, out.line, out.col, out.env, out.a, out.b, out.c))
}

/// The fault of work stopped by Ctrl-C.
pub fn interrupted_fault() -> FaultOut {
    FaultOut { kind: FaultKind::Interrupted as u32, ..FaultOut::empty() }
}
