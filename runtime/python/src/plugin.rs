//! Loading a compiled environment plugin and checking its ABI.

use std::sync::Arc;

use libloading::Library;
use pyo3::exceptions::{PyOSError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyFloat;
use twisterl_core::abi::{PluginV1, ABI_VERSION, CORE_VERSION};
use twisterl_core::param::Param;
use twisterl_core::plugin::PluginBatch;

use crate::batch::Batch;
use crate::error::detached;

/// A loaded plugin. The library stays loaded as long as any batch made from it lives.
pub struct Loaded {
    pub table: &'static PluginV1,
    _lib: Library,
}

// The table is immutable static data inside the loaded library.
unsafe impl Send for Loaded {}
unsafe impl Sync for Loaded {}

/// The most threads one batch may use.
pub const MAX_THREADS: usize = 256;

#[pyclass(module = "twisterl._core", frozen)]
pub struct Plugin {
    pub loaded: Arc<Loaded>,
    spec: String,
}

/// Param `k` from Python: an int (ints, bools, enum variant numbers) travels as an int,
/// a float as a float.
fn param(k: usize, v: &Bound<'_, PyAny>) -> PyResult<Param> {
    if v.is_instance_of::<PyFloat>() {
        return Ok(Param::float(v.extract::<f64>()?));
    }
    v.extract::<i64>().map(Param::int).map_err(|_| {
        PyValueError::new_err(format!("param #{k} must be an int in the 64-bit range or a float, not {v}"))
    })
}

unsafe fn text(ptr: *const u8, len: usize) -> String {
    String::from_utf8_lossy(std::slice::from_raw_parts(ptr, len)).into_owned()
}

/// Load the plugin at `path`, refusing one built for another ABI or core version.
#[pyfunction]
pub fn load_plugin(path: &str) -> PyResult<Plugin> {
    // SAFETY: loading runs the library's initialisers; plugins are built by twisterl itself.
    let lib = unsafe { Library::new(path) }.map_err(|e| PyOSError::new_err(format!("cannot load {path}: {e}")))?;
    let table: &'static PluginV1 = unsafe {
        let entry = lib
            .get::<unsafe extern "C" fn() -> *const PluginV1>(b"twisterl_plugin_v1\0")
            .map_err(|_| PyValueError::new_err(format!("{path} is not a twisterl env plugin")))?;
        &*entry()
    };
    if table.abi_version != ABI_VERSION || table.table_size != std::mem::size_of::<PluginV1>() {
        return Err(PyValueError::new_err(format!(
            "{path} was built for plugin ABI {}, but this runtime speaks ABI {ABI_VERSION}; recompile it",
            table.abi_version
        )));
    }
    let core = unsafe { text(table.core_version_ptr, table.core_version_len) };
    if core != CORE_VERSION {
        return Err(PyValueError::new_err(format!(
            "{path} was built against runtime core {core}, but this runtime is {CORE_VERSION}; recompile it"
        )));
    }
    crate::interrupt::install(Some(table));
    let spec = unsafe { text(table.spec_ptr, table.spec_len) };
    Ok(Plugin { loaded: Arc::new(Loaded { table, _lib: lib }), spec })
}

#[pymethods]
impl Plugin {
    /// The env's JSON spec, as written by code generation.
    #[getter]
    fn spec(&self) -> &str {
        &self.spec
    }

    #[getter]
    fn players(&self) -> u32 {
        self.loaded.table.players
    }

    #[getter]
    fn continuous(&self) -> bool {
        self.loaded.table.continuous != 0
    }

    /// 0 sparse, 1 dense, 2 planes.
    #[getter]
    fn observation(&self) -> u32 {
        self.loaded.table.observation
    }

    /// A batch of `num_envs` envs with `params` (declaration order), seeded with `seed`.
    #[pyo3(signature = (params, num_envs, seed, num_threads=1))]
    fn create(&self, py: Python<'_>, params: Vec<Bound<'_, PyAny>>, num_envs: usize, seed: u64, num_threads: usize)
              -> PyResult<Batch> {
        let params = params.iter().enumerate().map(|(k, v)| param(k, v)).collect::<PyResult<Vec<Param>>>()?;
        if !(1..=MAX_THREADS).contains(&num_threads) {
            return Err(PyValueError::new_err(format!("num_threads must be in 1..={MAX_THREADS}, not {num_threads}")));
        }
        crate::interrupt::arm();
        let table = self.loaded.table;
        // SAFETY: `load_plugin` checked the table's ABI and core version; `Batch` keeps the library loaded.
        let envs = detached(py, || unsafe { PluginBatch::create(table, &params, num_envs, seed) })?;
        Batch::new(self.loaded.clone(), envs, num_threads)
    }
}
