//! A batch of envs from one plugin, stepped in parallel with the GIL released.

use std::sync::{Arc, Mutex, MutexGuard, TryLockError};
use std::time::Duration;

use numpy::{PyArray1, PyArray2, PyArrayMethods, PyReadonlyArray1, PyReadonlyArray2, PyUntypedArrayMethods};
use pyo3::exceptions::{PyIndexError, PyValueError};
use pyo3::prelude::*;
use rayon::prelude::*;
use twisterl_core::abi::{FaultOut, Handle, PluginV1, Sizes, StepOutputs};
use twisterl_core::batch::RolloutStats;

use crate::error::fault_error;
use crate::plugin::Loaded;

#[pyclass(module = "twisterl._core")]
pub struct Batch {
    loaded: Arc<Loaded>,
    handle: usize,
    sizes: Sizes,
    pool: Option<rayon::ThreadPool>,
    /// Each env's return so far in its current episode (player 0), kept across
    /// `collect` calls so that episodes spanning several calls are counted whole.
    pub(crate) episode_returns: Mutex<Vec<f64>>,
    /// Held by whichever Python thread is using the batch: one call at a time.
    busy: Mutex<()>,
}

/// A batch held for one call (see [`Batch::enter`]).
pub(crate) type Held<'a> = MutexGuard<'a, ()>;

/// Split `start..end` into at most `parts` contiguous ranges.
fn split(start: usize, end: usize, parts: usize) -> Vec<(usize, usize)> {
    let n = end - start;
    let parts = parts.max(1).min(n.max(1));
    let chunk = n.div_ceil(parts).max(1);
    (start..end).step_by(chunk).map(|s| (s, (s + chunk).min(end))).collect()
}

impl Batch {
    pub fn new(loaded: Arc<Loaded>, handle: Handle, num_threads: usize) -> PyResult<Batch> {
        let sizes = unsafe { (loaded.table.sizes)(handle) };
        let pool = if num_threads > 1 {
            Some(rayon::ThreadPoolBuilder::new().num_threads(num_threads).build()
                .map_err(|e| PyValueError::new_err(format!("cannot start {num_threads} threads: {e}")))?)
        } else {
            None
        };
        let episode_returns = Mutex::new(vec![0.0; sizes.num_envs]);
        Ok(Batch { loaded, handle: handle as usize, sizes, pool, episode_returns, busy: Mutex::new(()) })
    }

    /// Take the batch for one call. Another thread's call runs to its end first: the
    /// wait releases the GIL (so that thread can finish) and answers Ctrl-C.
    pub(crate) fn enter(&self, py: Python<'_>) -> PyResult<Held<'_>> {
        loop {
            match self.busy.try_lock() {
                Ok(held) => {
                    crate::interrupt::arm();
                    return Ok(held);
                }
                Err(TryLockError::Poisoned(p)) => {
                    crate::interrupt::arm();
                    return Ok(p.into_inner());
                }
                Err(TryLockError::WouldBlock) => {
                    py.detach(|| std::thread::sleep(Duration::from_micros(50)));
                    py.check_signals()?;
                }
            }
        }
    }

    /// Take two batches in a fixed order (by address), so two threads taking the same
    /// pair in opposite roles cannot deadlock. The same batch twice is taken once.
    pub(crate) fn enter_pair<'a>(py: Python<'_>, a: &'a Batch, b: &'a Batch) -> PyResult<(Held<'a>, Option<Held<'a>>)> {
        if std::ptr::eq(a, b) {
            return Ok((a.enter(py)?, None));
        }
        let (first, second) = if (a as *const Batch) < (b as *const Batch) { (a, b) } else { (b, a) };
        let held = first.enter(py)?;
        Ok((held, Some(second.enter(py)?)))
    }

    pub(crate) fn table(&self) -> &'static PluginV1 {
        self.loaded.table
    }

    pub(crate) fn handle_addr(&self) -> usize {
        self.handle
    }

    pub(crate) fn sizes_tuple(&self) -> (usize, usize, usize, usize, usize) {
        let s = self.sizes;
        (s.num_envs, s.num_actions, s.obs_size, s.nnz_max, s.state_len)
    }

    pub(crate) fn pool(&self) -> Option<&rayon::ThreadPool> {
        self.pool.as_ref()
    }

    /// `start..end` split into one contiguous range per thread.
    pub(crate) fn ranges(&self, start: usize, end: usize) -> Vec<(usize, usize)> {
        split(start, end, self.pool.as_ref().map(|p| p.current_num_threads()).unwrap_or(1))
    }

    fn h(&self) -> Handle {
        self.handle as Handle
    }

    fn range(&self, start: Option<usize>, end: Option<usize>) -> PyResult<(usize, usize)> {
        let n = self.sizes.num_envs;
        let (s, e) = (start.unwrap_or(0), end.unwrap_or(n));
        if s > e || e > n {
            return Err(PyIndexError::new_err(format!("env range {s}..{e} is outside 0..{n}")));
        }
        Ok((s, e))
    }

    fn index(&self, i: usize) -> PyResult<usize> {
        if i >= self.sizes.num_envs {
            return Err(PyIndexError::new_err(format!("env {i} is outside 0..{}", self.sizes.num_envs)));
        }
        Ok(i)
    }

    /// Run `f(start, end, fault)` over parallel sub-ranges; the first fault wins.
    fn parallel(&self, py: Python<'_>, start: usize, end: usize,
                f: impl Fn(usize, usize, &mut FaultOut) -> i32 + Sync + Send) -> PyResult<()> {
        let run = || -> Option<FaultOut> {
            match &self.pool {
                None => {
                    let mut out = FaultOut::empty();
                    (f(start, end, &mut out) != 0).then_some(out)
                }
                Some(pool) => {
                    let ranges = split(start, end, pool.current_num_threads());
                    pool.install(|| {
                        ranges.par_iter().filter_map(|&(s, e)| {
                            let mut out = FaultOut::empty();
                            (f(s, e, &mut out) != 0).then_some(out)
                        }).min_by_key(|o| o.env)
                    })
                }
            }
        };
        match py.detach(run) {
            None => Ok(()),
            Some(out) => Err(fault_error(&out)),
        }
    }
}

impl Drop for Batch {
    fn drop(&mut self) {
        unsafe { (self.table().destroy)(self.h()) }
    }
}

#[pymethods]
impl Batch {
    /// `(channels, rows, cols)` of planes observations; `(obs_size, 1, 1)` otherwise.
    #[getter]
    fn obs_shape(&self) -> (usize, usize, usize) {
        let [c, h, w] = self.sizes.obs_shape;
        (c, h, w)
    }

    /// About how many bytes one env of this batch takes, for memory estimates.
    #[getter]
    fn env_bytes(&self) -> usize {
        self.sizes.env_bytes
    }

    /// (num_envs, num_actions, obs_size, nnz_max, state_len)
    #[getter]
    fn sizes(&self) -> (usize, usize, usize, usize, usize) {
        let s = self.sizes;
        (s.num_envs, s.num_actions, s.obs_size, s.nnz_max, s.state_len)
    }

    fn value_bounds<'py>(&self, py: Python<'py>) -> PyResult<(Bound<'py, PyArray1<f64>>, Bound<'py, PyArray1<f64>>)> {
        let _held = self.enter(py)?;
        let n = if self.table().continuous != 0 { self.sizes.num_actions } else { 0 };
        let lows = PyArray1::<f64>::zeros(py, n, false);
        let highs = PyArray1::<f64>::zeros(py, n, false);
        unsafe {
            (self.table().value_bounds)(self.h(), lows.as_slice_mut().unwrap().as_mut_ptr(),
                                        highs.as_slice_mut().unwrap().as_mut_ptr());
        }
        Ok((lows, highs))
    }

    #[pyo3(signature = (difficulty, start=None, end=None))]
    fn set_difficulty(&self, py: Python<'_>, difficulty: i64, start: Option<usize>, end: Option<usize>) -> PyResult<()> {
        let _held = self.enter(py)?;
        let (s, e) = self.range(start, end)?;
        unsafe { (self.table().set_difficulty)(self.h(), s, e, difficulty) };
        Ok(())
    }

    /// Truncate episodes after `limit` steps, beyond the env's own endings (0: never).
    #[pyo3(signature = (limit, start=None, end=None))]
    fn set_step_limit(&self, py: Python<'_>, limit: i64, start: Option<usize>, end: Option<usize>) -> PyResult<()> {
        let _held = self.enter(py)?;
        let (s, e) = self.range(start, end)?;
        unsafe { (self.table().set_step_limit)(self.h(), s, e, limit) };
        Ok(())
    }

    #[pyo3(signature = (seed, start=None, end=None))]
    fn reseed(&self, py: Python<'_>, seed: u64, start: Option<usize>, end: Option<usize>) -> PyResult<()> {
        let _held = self.enter(py)?;
        let (s, e) = self.range(start, end)?;
        let (t, h) = (self.table(), self.handle);
        self.parallel(py, s, e, move |a, b, out| unsafe { (t.reseed)(h as Handle, a, b, seed, out) })
    }

    #[pyo3(signature = (start=None, end=None))]
    fn reset(&self, py: Python<'_>, start: Option<usize>, end: Option<usize>) -> PyResult<()> {
        let _held = self.enter(py)?;
        let (s, e) = self.range(start, end)?;
        if let Ok(mut returns) = self.episode_returns.lock() {
            returns[s..e].iter_mut().for_each(|r| *r = 0.0);
        }
        let (t, h) = (self.table(), self.handle);
        self.parallel(py, s, e, move |a, b, out| unsafe { (t.reset)(h as Handle, a, b, out) })
    }

    /// Dense observations, float32 [n, obs_size].
    #[pyo3(signature = (start=None, end=None))]
    fn observe<'py>(&self, py: Python<'py>, start: Option<usize>, end: Option<usize>) -> PyResult<Bound<'py, PyArray2<f32>>> {
        let _held = self.enter(py)?;
        let (s, e) = self.range(start, end)?;
        let size = self.sizes.obs_size;
        let obs = PyArray2::<f32>::zeros(py, [e - s, size], false);
        let o = unsafe { obs.as_slice_mut()?.as_mut_ptr() as usize };
        let (t, h) = (self.table(), self.handle);
        self.parallel(py, s, e, move |a, b, out| unsafe {
            (t.observe)(h as Handle, a, b, (o as *mut f32).add((a - s) * size), out)
        })?;
        Ok(obs)
    }

    /// Sparse observations: (indices uint32 [n, nnz_max], counts uint32 [n]).
    #[pyo3(signature = (start=None, end=None))]
    fn observe_sparse<'py>(&self, py: Python<'py>, start: Option<usize>, end: Option<usize>)
                           -> PyResult<(Bound<'py, PyArray2<u32>>, Bound<'py, PyArray1<u32>>)> {
        let _held = self.enter(py)?;
        let (s, e) = self.range(start, end)?;
        let nnz = self.sizes.nnz_max;
        let idx = PyArray2::<u32>::zeros(py, [e - s, nnz], false);
        let counts = PyArray1::<u32>::zeros(py, e - s, false);
        let (ip, cp) = unsafe { (idx.as_slice_mut()?.as_mut_ptr() as usize, counts.as_slice_mut()?.as_mut_ptr() as usize) };
        let (t, h) = (self.table(), self.handle);
        self.parallel(py, s, e, move |a, b, out| unsafe {
            (t.observe_sparse)(h as Handle, a, b, (ip as *mut u32).add((a - s) * nnz), (cp as *mut u32).add(a - s), out)
        })?;
        Ok((idx, counts))
    }

    /// Action masks, bool [n, num_actions].
    #[pyo3(signature = (start=None, end=None))]
    fn masks<'py>(&self, py: Python<'py>, start: Option<usize>, end: Option<usize>) -> PyResult<Bound<'py, PyArray2<bool>>> {
        let _held = self.enter(py)?;
        let (s, e) = self.range(start, end)?;
        let n_actions = if self.table().continuous != 0 { 0 } else { self.sizes.num_actions };
        let m = PyArray2::<bool>::zeros(py, [e - s, n_actions], false);
        let mp = unsafe { m.as_slice_mut()?.as_mut_ptr() as usize };
        let (t, h) = (self.table(), self.handle);
        self.parallel(py, s, e, move |a, b, out| unsafe {
            (t.masks)(h as Handle, a, b, (mp as *mut u8).add((a - s) * n_actions), out)
        })?;
        Ok(m)
    }

    /// (success [n], player [n], steps [n], episode over [n]).
    #[pyo3(signature = (start=None, end=None))]
    #[allow(clippy::type_complexity)]
    fn status<'py>(&self, py: Python<'py>, start: Option<usize>, end: Option<usize>)
                   -> PyResult<(Bound<'py, PyArray1<bool>>, Bound<'py, PyArray1<i64>>, Bound<'py, PyArray1<i64>>, Bound<'py, PyArray1<bool>>)> {
        let _held = self.enter(py)?;
        let (s, e) = self.range(start, end)?;
        let n = e - s;
        let success = PyArray1::<bool>::zeros(py, n, false);
        let player = PyArray1::<i64>::zeros(py, n, false);
        let steps = PyArray1::<i64>::zeros(py, n, false);
        let over = PyArray1::<bool>::zeros(py, n, false);
        let ptrs = unsafe {
            (success.as_slice_mut()?.as_mut_ptr() as usize, player.as_slice_mut()?.as_mut_ptr() as usize,
             steps.as_slice_mut()?.as_mut_ptr() as usize, over.as_slice_mut()?.as_mut_ptr() as usize)
        };
        let (t, h) = (self.table(), self.handle);
        self.parallel(py, s, e, move |a, b, out| unsafe {
            let k = a - s;
            (t.status)(h as Handle, a, b, (ptrs.0 as *mut u8).add(k), (ptrs.1 as *mut i64).add(k),
                       (ptrs.2 as *mut i64).add(k), (ptrs.3 as *mut u8).add(k), out)
        })?;
        Ok((success, player, steps, over))
    }

    /// The text picture of env `i`.
    fn render(&self, py: Python<'_>, i: usize) -> PyResult<String> {
        let _held = self.enter(py)?;
        let i = self.index(i)?;
        let mut buf = vec![0u8; 4096];
        loop {
            let mut out = FaultOut::empty();
            let mut len = 0usize;
            let status = unsafe { (self.table().render)(self.h(), i, buf.as_mut_ptr(), buf.len(), &mut len, &mut out) };
            if status != 0 {
                return Err(fault_error(&out));
            }
            if len <= buf.len() {
                buf.truncate(len);
                return Ok(String::from_utf8_lossy(&buf).into_owned());
            }
            buf.resize(len, 0);
        }
    }

    /// The state of env `i` as a flat float64 vector (layout in the spec).
    fn get_state<'py>(&self, py: Python<'py>, i: usize) -> PyResult<Bound<'py, PyArray1<f64>>> {
        let _held = self.enter(py)?;
        let i = self.index(i)?;
        let state = PyArray1::<f64>::zeros(py, self.sizes.state_len, false);
        let mut out = FaultOut::empty();
        let status = unsafe { (self.table().get_state)(self.h(), i, state.as_slice_mut()?.as_mut_ptr(), &mut out) };
        if status != 0 {
            return Err(fault_error(&out));
        }
        Ok(state)
    }

    /// How many values of env `i`'s state vector each of its `n` state variables takes.
    fn state_lengths(&self, py: Python<'_>, i: usize, n: usize) -> PyResult<Vec<usize>> {
        let _held = self.enter(py)?;
        let i = self.index(i)?;
        let mut lengths = vec![0usize; n];
        let mut out = FaultOut::empty();
        let status = unsafe { (self.table().state_lengths)(self.h(), i, lengths.as_mut_ptr(), n, &mut out) };
        if status != 0 {
            return Err(fault_error(&out));
        }
        Ok(lengths)
    }

    fn set_state(&self, py: Python<'_>, i: usize, values: PyReadonlyArray1<'_, f64>) -> PyResult<()> {
        let _held = self.enter(py)?;
        let i = self.index(i)?;
        let v = values.as_slice()?;
        let mut out = FaultOut::empty();
        let status = unsafe { (self.table().set_state)(self.h(), i, v.as_ptr(), v.len(), &mut out) };
        if status != 0 {
            return Err(fault_error(&out));
        }
        Ok(())
    }

    /// Step and observe in one pass per env: the fast path of the vector API.
    /// `actions` ([n] int64) or `values` ([n, dims] float64) as the env needs.
    /// Returns (obs [n, obs_size] f32, rewards [n, players], terminated, truncated,
    /// masks [n, num_actions], success [n] (before auto-reset), player [n]).
    #[pyo3(signature = (actions=None, values=None, autoreset=true, illegal_noop=false))]
    #[allow(clippy::type_complexity)]
    fn step_observe<'py>(&self, py: Python<'py>, actions: Option<PyReadonlyArray1<'py, i64>>,
                         values: Option<PyReadonlyArray2<'py, f64>>, autoreset: bool, illegal_noop: bool)
                         -> PyResult<(Bound<'py, PyArray2<f32>>, Bound<'py, PyArray2<f64>>, Bound<'py, PyArray1<bool>>,
                                      Bound<'py, PyArray1<bool>>, Bound<'py, PyArray2<bool>>, Bound<'py, PyArray1<bool>>,
                                      Bound<'py, PyArray1<i64>>)> {
        let _held = self.enter(py)?;
        let n = self.sizes.num_envs;
        let continuous = self.table().continuous != 0;
        let dims = if continuous { self.sizes.num_actions } else { 0 };
        let (acts, vals) = match (continuous, &actions, &values) {
            (false, Some(a), _) if a.len() == n => (a.as_slice()?.as_ptr() as usize, 0usize),
            (true, _, Some(v)) if v.shape() == [n, dims] => (0usize, v.as_slice()?.as_ptr() as usize),
            (false, _, _) => return Err(PyValueError::new_err(format!("give {n} int actions, one per env"))),
            (true, _, _) => return Err(PyValueError::new_err(format!("give values of shape ({n}, {dims})"))),
        };
        let players = self.table().players as usize;
        let n_actions = if continuous { 0 } else { self.sizes.num_actions };
        let obs_size = self.sizes.obs_size;
        let obs = PyArray2::<f32>::zeros(py, [n, obs_size], false);
        let rewards = PyArray2::<f64>::zeros(py, [n, players], false);
        let term = PyArray1::<bool>::zeros(py, n, false);
        let trunc = PyArray1::<bool>::zeros(py, n, false);
        let masks = PyArray2::<bool>::zeros(py, [n, n_actions], false);
        let success = PyArray1::<bool>::zeros(py, n, false);
        let player = PyArray1::<i64>::zeros(py, n, false);
        let p = unsafe {
            [obs.as_slice_mut()?.as_mut_ptr() as usize, rewards.as_slice_mut()?.as_mut_ptr() as usize,
             term.as_slice_mut()?.as_mut_ptr() as usize, trunc.as_slice_mut()?.as_mut_ptr() as usize,
             masks.as_slice_mut()?.as_mut_ptr() as usize, success.as_slice_mut()?.as_mut_ptr() as usize,
             player.as_slice_mut()?.as_mut_ptr() as usize]
        };
        let flags = autoreset as u8 | ((illegal_noop as u8) << 1);
        let (t, h) = (self.table(), self.handle);
        self.parallel(py, 0, n, move |a, b, out| unsafe {
            let outs = StepOutputs {
                obs: (p[0] as *mut f32).add(a * obs_size),
                rewards: (p[1] as *mut f64).add(a * players),
                terminated: (p[2] as *mut u8).add(a),
                truncated: (p[3] as *mut u8).add(a),
                masks: if n_actions > 0 { (p[4] as *mut u8).add(a * n_actions) } else { std::ptr::null_mut() },
                success: (p[5] as *mut u8).add(a),
                player: (p[6] as *mut i64).add(a),
            };
            (t.step_observe)(h as Handle, a, b, (acts as *const i64).add(if continuous { 0 } else { a }),
                             (vals as *const f64).add(a * dims), flags, &outs, out)
        })?;
        Ok((obs, rewards, term, trunc, masks, success, player))
    }

    /// `steps` random legal steps per env, run entirely in Rust on the batch's threads.
    /// Returns (steps, episodes, successes, return_sum, length_sum).
    #[pyo3(signature = (steps, seed, start=None, end=None, observe=false))]
    fn random_steps(&self, py: Python<'_>, steps: u64, seed: u64, start: Option<usize>, end: Option<usize>,
                    observe: bool)
                    -> PyResult<(u64, u64, u64, f64, u64)> {
        let _held = self.enter(py)?;
        let (s, e) = self.range(start, end)?;
        let (t, h) = (self.table(), self.handle);
        let totals = std::sync::Mutex::new(RolloutStats::default());
        self.parallel(py, s, e, |a, b, out| unsafe {
            let mut stats = RolloutStats::default();
            let status = (t.random_steps)(h as Handle, a, b, steps, seed, observe as u8, &mut stats, out);
            totals.lock().unwrap().add(&stats);
            status
        })?;
        let r = totals.into_inner().unwrap();
        Ok((r.steps, r.episodes, r.successes, r.return_sum, r.length_sum))
    }

    /// Exactly `episodes` whole episodes of random legal actions, spread over the batch's
    /// envs, each from a reset and cut after `max_len` steps. Returns a dict: episodes,
    /// cut, steps, successes, length_sum and `returns` (per player, summed).
    #[pyo3(signature = (episodes, seed, max_len))]
    fn random_episodes<'py>(&self, py: Python<'py>, episodes: u64, seed: u64, max_len: u64)
                            -> PyResult<Bound<'py, pyo3::types::PyDict>> {
        let _held = self.enter(py)?;
        let n = self.sizes.num_envs as u64;
        let quota: Vec<u64> = (0..n).map(|i| episodes / n + u64::from(i < episodes % n)).collect();
        let (t, h) = (self.table(), self.handle);
        let totals = std::sync::Mutex::new(RolloutStats::default());
        let q = &quota;
        self.parallel(py, 0, n as usize, |a, b, out| unsafe {
            let mut stats = RolloutStats::default();
            let status = (t.random_episodes)(h as Handle, a, b, q[a..b].as_ptr(), max_len, seed, &mut stats, out);
            totals.lock().unwrap_or_else(|e| e.into_inner()).add(&stats);
            status
        })?;
        let r = totals.into_inner().unwrap_or_else(|e| e.into_inner());
        let players = (t.players as usize).min(twisterl_core::batch::MAX_REPORTED_PLAYERS);
        let d = pyo3::types::PyDict::new(py);
        d.set_item("episodes", r.episodes)?;
        d.set_item("cut", r.cut)?;
        d.set_item("steps", r.steps)?;
        d.set_item("successes", r.successes)?;
        d.set_item("length_sum", r.length_sum)?;
        d.set_item("returns", r.player_returns[..players].to_vec())?;
        Ok(d)
    }

    /// Symmetry `k` of env `i`: (obs permutation [obs_size], action permutation [num_actions]).
    /// Feature `j` of an observation becomes feature `obs[j]`; action `a` becomes `act[a]`.
    fn twist<'py>(&self, py: Python<'py>, i: usize, k: usize)
                  -> PyResult<(Bound<'py, PyArray1<u32>>, Bound<'py, PyArray1<u32>>)> {
        let _held = self.enter(py)?;
        let i = self.index(i)?;
        if k >= self.table().twists as usize {
            return Err(PyIndexError::new_err(format!("symmetry {k} is outside 0..{}", self.table().twists)));
        }
        let n_act = if self.table().continuous != 0 { 0 } else { self.sizes.num_actions };
        let obs = PyArray1::<u32>::zeros(py, self.sizes.obs_size, false);
        let act = PyArray1::<u32>::zeros(py, n_act, false);
        let mut out = FaultOut::empty();
        let status = unsafe {
            (self.table().twist)(self.h(), i, k, obs.as_slice_mut()?.as_mut_ptr(), act.as_slice_mut()?.as_mut_ptr(), &mut out)
        };
        if status != 0 {
            return Err(fault_error(&out));
        }
        Ok((obs, act))
    }

    /// The name of action `action` of env `i`, like `drop(3)`.
    fn action_label(&self, py: Python<'_>, i: usize, action: usize) -> PyResult<String> {
        let _held = self.enter(py)?;
        let i = self.index(i)?;
        let mut buf = vec![0u8; 256];
        loop {
            let mut len = 0usize;
            if unsafe { (self.table().action_label)(self.h(), i, action, buf.as_mut_ptr(), buf.len(), &mut len) } != 0 {
                return Err(PyValueError::new_err(format!("no label for action {action}")));
            }
            if len <= buf.len() {
                buf.truncate(len);
                return Ok(String::from_utf8_lossy(&buf).into_owned());
            }
            buf.resize(len, 0);
        }
    }

    /// Copy env `i` of this batch over env `j` of `other` (a batch of the same plugin).
    fn copy_env(&self, py: Python<'_>, i: usize, other: &Batch, j: usize) -> PyResult<()> {
        let _held = Batch::enter_pair(py, self, other)?;
        let i = self.index(i)?;
        let j = other.index(j)?;
        if !std::ptr::eq(self.table(), other.table()) {
            return Err(PyValueError::new_err("both batches must come from the same env plugin"));
        }
        let mut out = FaultOut::empty();
        let status = unsafe { (self.table().copy_env)(self.h(), i, other.h(), j, &mut out) };
        if status != 0 {
            return Err(fault_error(&out));
        }
        Ok(())
    }
}
