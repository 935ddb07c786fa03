//! Errors of the runtime core as Python exceptions, and work run with the GIL released.

use std::panic::{catch_unwind, AssertUnwindSafe};

use pyo3::create_exception;
use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use twisterl_core::fault::FaultKind;
use twisterl_core::host::Error;

create_exception!(
    twisterl._core,
    EnvFault,
    PyRuntimeError,
    "A run-time fault of an env, with named fields: `message`, `kind` (like \"IndexOutOfBounds\"), the \
     `.twl` position `line` and `col` (0 when unknown), `env` (the env's index in its batch, -1 if none) and the \
     kind's numbers `a`, `b`, `c`. `twisterl` re-raises it as `EnvError` naming the `.twl` file."
);

/// A core error as a Python exception: a fault as `EnvFault`, an interrupted call as what
/// Python's SIGINT handler raises (`KeyboardInterrupt`), an invalid request as `ValueError`.
pub fn to_py(error: Error) -> PyErr {
    let (fault, env) = match error {
        Error::Invalid(message) => return PyValueError::new_err(message),
        Error::Fault { fault, .. } if fault.kind == FaultKind::Interrupted => return crate::interrupt::error(),
        Error::Fault { fault, env } => (fault, env.map(|i| i as i64).unwrap_or(-1)),
    };
    Python::attach(|py| {
        let err = EnvFault::new_err(fault.describe());
        let value = err.value(py);
        let fields = || -> PyResult<()> {
            value.setattr("message", fault.describe())?;
            value.setattr("kind", format!("{:?}", fault.kind))?;
            value.setattr("line", fault.at.line)?;
            value.setattr("col", fault.at.col)?;
            value.setattr("env", env)?;
            value.setattr("a", fault.a)?;
            value.setattr("b", fault.b)?;
            value.setattr("c", fault.c)
        };
        match fields() {
            Ok(()) => err,
            Err(e) => e,
        }
    })
}

/// Run `f` with the GIL released; its error becomes an exception, and a panic (a bug)
/// becomes a `RuntimeError` instead of aborting the process.
pub fn detached<T: Send>(py: Python<'_>, f: impl FnOnce() -> Result<T, Error> + Send) -> PyResult<T> {
    match py.detach(|| catch_unwind(AssertUnwindSafe(f))) {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(to_py(e)),
        Err(_) => Err(PyRuntimeError::new_err("the runtime panicked (a bug in twisterl; please report it)")),
    }
}

/// An `Err` as a `ValueError`.
pub fn invalid<T>(r: Result<T, String>) -> PyResult<T> {
    r.map_err(PyValueError::new_err)
}
