//! A batch of envs from one plugin, stepped in parallel with the GIL released.

use std::ops::Range;
use std::sync::{Arc, Mutex, MutexGuard, TryLockError};
use std::time::Duration;

use numpy::{PyArray1, PyArray2, PyArrayMethods, PyReadonlyArray1, PyReadonlyArray2, PyUntypedArrayMethods};
use pyo3::exceptions::{PyIndexError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyDict;
use rayon::prelude::*;
use twisterl_core::abi::Sizes;
use twisterl_core::batch::{RolloutStats, MAX_REPORTED_PLAYERS};
use twisterl_core::host::{Actions, Error, Host, Layout, StatusInto, StepFlags, StepInto};
use twisterl_core::plugin::{PluginBatch, PluginEnvs};

use crate::error::{detached, to_py};
use crate::plugin::Loaded;

/// What a call holds while it uses the batch.
pub struct Inner {
    pub envs: PluginBatch,
    /// Each env's return so far in its current episode (player 0, or the learner's seat),
    /// kept across `collect` calls so that episodes spanning several calls are counted whole.
    pub episode_returns: Vec<f64>,
}

#[pyclass(module = "twisterl._core")]
pub struct Batch {
    /// Held by whichever Python thread is using the batch: one call at a time.
    inner: Mutex<Inner>,
    pool: Option<rayon::ThreadPool>,
    pub sizes: Sizes,
    pub layout: Layout,
    /// Declared after `inner`, so the library outlives the envs it made.
    _loaded: Arc<Loaded>,
}

/// `buf` cut into one chunk per host of `views`, `width` values per env.
pub fn chunks<'a, T>(mut buf: &'a mut [T], views: &[PluginEnvs<'_>], width: usize) -> Vec<&'a mut [T]> {
    views
        .iter()
        .map(|v| {
            let (head, tail) = std::mem::take(&mut buf).split_at_mut(v.envs().len() * width);
            buf = tail;
            head
        })
        .collect()
}

/// An array's data, mutably (arrays made here are contiguous and not shared yet).
fn data<'a, T: numpy::Element, D: numpy::ndarray::Dimension>(
    a: &'a Bound<'_, numpy::PyArray<T, D>>,
) -> PyResult<&'a mut [T]> {
    Ok(unsafe { a.as_slice_mut()? })
}

impl Batch {
    pub fn new(loaded: Arc<Loaded>, envs: PluginBatch, num_threads: usize) -> PyResult<Batch> {
        let pool = match num_threads {
            1 => None,
            n => Some(
                rayon::ThreadPoolBuilder::new()
                    .num_threads(n)
                    .build()
                    .map_err(|e| PyValueError::new_err(format!("cannot start {n} threads: {e}")))?,
            ),
        };
        let (sizes, layout) = (envs.sizes(), envs.layout());
        let episode_returns = vec![0.0; sizes.num_envs];
        Ok(Batch { inner: Mutex::new(Inner { envs, episode_returns }), pool, sizes, layout, _loaded: loaded })
    }

    /// Take the batch for one call. Another thread's call runs to its end first: the
    /// wait releases the GIL (so that thread can finish) and answers Ctrl-C.
    pub fn enter(&self, py: Python<'_>) -> PyResult<MutexGuard<'_, Inner>> {
        loop {
            let held = match self.inner.try_lock() {
                Ok(held) => held,
                Err(TryLockError::Poisoned(p)) => p.into_inner(),
                Err(TryLockError::WouldBlock) => {
                    py.detach(|| std::thread::sleep(Duration::from_micros(50)));
                    py.check_signals()?;
                    continue;
                }
            };
            crate::interrupt::arm();
            return Ok(held);
        }
    }

    /// Take two distinct batches in a fixed order (by address), so two threads taking the
    /// same pair in opposite roles cannot deadlock.
    pub fn enter_two<'a>(
        py: Python<'_>, a: &'a Batch, b: &'a Batch,
    ) -> PyResult<(MutexGuard<'a, Inner>, MutexGuard<'a, Inner>)> {
        if (a as *const Batch) < (b as *const Batch) {
            let first = a.enter(py)?;
            Ok((first, b.enter(py)?))
        } else {
            let second = b.enter(py)?;
            Ok((a.enter(py)?, second))
        }
    }

    /// How many threads (and so ranges) a call uses.
    pub fn threads(&self) -> usize {
        self.pool.as_ref().map(|p| p.current_num_threads()).unwrap_or(1)
    }

    /// Run `f` on each host of `views` with its part, on the batch's threads with the GIL
    /// released; the fault of the lowest env wins.
    pub fn parallel<'v, P: Send, T: Send>(
        &self, py: Python<'_>, views: Vec<PluginEnvs<'v>>, parts: Vec<P>,
        f: impl Fn(&mut PluginEnvs<'v>, P) -> Result<T, Error> + Sync + Send,
    ) -> PyResult<Vec<T>> {
        detached(py, || {
            let body = |(mut v, p): (PluginEnvs<'v>, P)| f(&mut v, p);
            let results: Vec<Result<T, Error>> = match &self.pool {
                Some(pool) => pool.install(|| views.into_par_iter().zip(parts).map(body).collect()),
                None => views.into_iter().zip(parts).map(body).collect(),
            };
            if let Some(e) = results.iter().filter_map(|r| r.as_ref().err()).min_by_key(|e| e.env_index()) {
                return Err(e.clone());
            }
            Ok(results.into_iter().filter_map(Result::ok).collect())
        })
    }

    fn range(&self, start: Option<usize>, end: Option<usize>) -> PyResult<Range<usize>> {
        let n = self.sizes.num_envs;
        let (s, e) = (start.unwrap_or(0), end.unwrap_or(n));
        if s > e || e > n {
            return Err(PyIndexError::new_err(format!("env range {s}..{e} is outside 0..{n}")));
        }
        Ok(s..e)
    }

    fn index(&self, i: usize) -> PyResult<usize> {
        if i >= self.sizes.num_envs {
            return Err(PyIndexError::new_err(format!("env {i} is outside 0..{}", self.sizes.num_envs)));
        }
        Ok(i)
    }

    /// Split `envs` over the threads and run `f` on each part with its share of `outs`.
    fn each<T: Send>(
        &self, py: Python<'_>, envs: Range<usize>, outs: Vec<(&mut [T], usize)>,
        f: impl Fn(&mut PluginEnvs<'_>, Vec<&mut [T]>) -> Result<(), Error> + Sync + Send,
    ) -> PyResult<()> {
        let mut inner = self.enter(py)?;
        let views = inner.envs.split(envs, self.threads()).map_err(to_py)?;
        let mut parts: Vec<Vec<&mut [T]>> = views.iter().map(|_| Vec::new()).collect();
        for (buf, width) in outs {
            for (part, chunk) in parts.iter_mut().zip(chunks(buf, &views, width)) {
                part.push(chunk);
            }
        }
        self.parallel(py, views, parts, f).map(drop)
    }
}

/// Random-play totals from all ranges, in range order.
fn total(parts: Vec<RolloutStats>) -> RolloutStats {
    parts.iter().fold(RolloutStats::default(), |mut t, s| {
        t.add(s);
        t
    })
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
        let inner = self.enter(py)?;
        let (lows, highs) = inner.envs.value_bounds();
        Ok((PyArray1::from_slice(py, lows), PyArray1::from_slice(py, highs)))
    }

    #[pyo3(signature = (difficulty, start=None, end=None))]
    fn set_difficulty(
        &self, py: Python<'_>, difficulty: i64, start: Option<usize>, end: Option<usize>,
    ) -> PyResult<()> {
        let envs = self.range(start, end)?;
        self.enter(py)?.envs.set_difficulty(envs, difficulty).map_err(to_py)
    }

    /// Truncate episodes after `limit` steps, beyond the env's own endings (0: never).
    #[pyo3(signature = (limit, start=None, end=None))]
    fn set_step_limit(&self, py: Python<'_>, limit: i64, start: Option<usize>, end: Option<usize>) -> PyResult<()> {
        let envs = self.range(start, end)?;
        self.enter(py)?.envs.set_step_limit(envs, limit).map_err(to_py)
    }

    #[pyo3(signature = (seed, start=None, end=None))]
    fn reseed(&self, py: Python<'_>, seed: u64, start: Option<usize>, end: Option<usize>) -> PyResult<()> {
        let envs = self.range(start, end)?;
        self.each::<u8>(py, envs, vec![], |v, _| v.reseed(v.envs(), seed))
    }

    #[pyo3(signature = (start=None, end=None))]
    fn reset(&self, py: Python<'_>, start: Option<usize>, end: Option<usize>) -> PyResult<()> {
        let envs = self.range(start, end)?;
        self.enter(py)?.episode_returns[envs.clone()].iter_mut().for_each(|r| *r = 0.0);
        self.each::<u8>(py, envs, vec![], |v, _| v.reset(v.envs()))
    }

    /// Dense observations, float32 [n, obs_size].
    #[pyo3(signature = (start=None, end=None))]
    fn observe<'py>(
        &self, py: Python<'py>, start: Option<usize>, end: Option<usize>,
    ) -> PyResult<Bound<'py, PyArray2<f32>>> {
        let envs = self.range(start, end)?;
        let obs = PyArray2::<f32>::zeros(py, [envs.len(), self.sizes.obs_size], false);
        self.each(py, envs, vec![(data(&obs)?, self.sizes.obs_size)], |v, mut o| v.observe(v.envs(), o.remove(0)))?;
        Ok(obs)
    }

    /// Sparse observations: (indices uint32 [n, nnz_max], counts uint32 [n]).
    #[pyo3(signature = (start=None, end=None))]
    fn observe_sparse<'py>(
        &self, py: Python<'py>, start: Option<usize>, end: Option<usize>,
    ) -> PyResult<(Bound<'py, PyArray2<u32>>, Bound<'py, PyArray1<u32>>)> {
        let envs = self.range(start, end)?;
        let idx = PyArray2::<u32>::zeros(py, [envs.len(), self.sizes.nnz_max], false);
        let counts = PyArray1::<u32>::zeros(py, envs.len(), false);
        self.each(py, envs, vec![(data(&idx)?, self.sizes.nnz_max), (data(&counts)?, 1)], |v, mut o| {
            let counts = o.pop().unwrap_or_default();
            v.observe_sparse(v.envs(), o.remove(0), counts)
        })?;
        Ok((idx, counts))
    }

    /// Action masks, bool [n, num_actions].
    #[pyo3(signature = (start=None, end=None))]
    fn masks<'py>(
        &self, py: Python<'py>, start: Option<usize>, end: Option<usize>,
    ) -> PyResult<Bound<'py, PyArray2<bool>>> {
        let envs = self.range(start, end)?;
        let width = self.layout.mask_width();
        let m = PyArray2::<bool>::zeros(py, [envs.len(), width], false);
        self.each(py, envs, vec![(data(&m)?, width)], |v, mut o| v.masks(v.envs(), o.remove(0)))?;
        Ok(m)
    }

    /// (success [n], player [n], steps [n], episode over [n]).
    #[pyo3(signature = (start=None, end=None))]
    #[allow(clippy::type_complexity)]
    fn status<'py>(
        &self, py: Python<'py>, start: Option<usize>, end: Option<usize>,
    ) -> PyResult<(
        Bound<'py, PyArray1<bool>>,
        Bound<'py, PyArray1<i64>>,
        Bound<'py, PyArray1<i64>>,
        Bound<'py, PyArray1<bool>>,
    )> {
        let envs = self.range(start, end)?;
        let n = envs.len();
        let (success, over) = (PyArray1::<bool>::zeros(py, n, false), PyArray1::<bool>::zeros(py, n, false));
        let (player, steps) = (PyArray1::<i64>::zeros(py, n, false), PyArray1::<i64>::zeros(py, n, false));
        let mut inner = self.enter(py)?;
        let views = inner.envs.split(envs, self.threads()).map_err(to_py)?;
        let parts: Vec<_> = chunks(data(&success)?, &views, 1)
            .into_iter()
            .zip(chunks(data(&player)?, &views, 1))
            .zip(chunks(data(&steps)?, &views, 1))
            .zip(chunks(data(&over)?, &views, 1))
            .collect();
        self.parallel(py, views, parts, |v, (((success, player), steps), over)| {
            v.status(v.envs(), StatusInto { success, player, steps, over })
        })?;
        Ok((success, player, steps, over))
    }

    /// The text picture of env `i`.
    fn render(&self, py: Python<'_>, i: usize) -> PyResult<String> {
        let i = self.index(i)?;
        self.enter(py)?.envs.render(i).map_err(to_py)
    }

    /// The state of env `i` as a flat float64 vector (layout in the spec).
    fn get_state<'py>(&self, py: Python<'py>, i: usize) -> PyResult<Bound<'py, PyArray1<f64>>> {
        let i = self.index(i)?;
        let state = PyArray1::<f64>::zeros(py, self.sizes.state_len, false);
        self.enter(py)?.envs.get_state(i, data(&state)?).map_err(to_py)?;
        Ok(state)
    }

    /// How many values of env `i`'s state vector each of its `n` state variables takes.
    fn state_lengths(&self, py: Python<'_>, i: usize, n: usize) -> PyResult<Vec<usize>> {
        let i = self.index(i)?;
        self.enter(py)?.envs.state_lengths(i, n).map_err(to_py)
    }

    fn set_state(&self, py: Python<'_>, i: usize, values: PyReadonlyArray1<'_, f64>) -> PyResult<()> {
        let (i, values) = (self.index(i)?, values.as_slice()?);
        let mut inner = self.enter(py)?;
        inner.envs.envs(i..i + 1).and_then(|mut v| v.set_state(i, values)).map_err(to_py)
    }

    /// Step and observe in one pass per env: the fast path of the vector API.
    /// `actions` ([n] int64) or `values` ([n, dims] float64) as the env needs.
    /// Returns (obs [n, obs_size] f32, rewards [n, players], terminated, truncated,
    /// masks [n, num_actions], success [n] (before auto-reset), player [n]).
    #[pyo3(signature = (actions=None, values=None, autoreset=true, illegal_noop=false))]
    #[allow(clippy::type_complexity)]
    fn step_observe<'py>(
        &self, py: Python<'py>, actions: Option<PyReadonlyArray1<'py, i64>>,
        values: Option<PyReadonlyArray2<'py, f64>>, autoreset: bool, illegal_noop: bool,
    ) -> PyResult<(
        Bound<'py, PyArray2<f32>>,
        Bound<'py, PyArray2<f64>>,
        Bound<'py, PyArray1<bool>>,
        Bound<'py, PyArray1<bool>>,
        Bound<'py, PyArray2<bool>>,
        Bound<'py, PyArray1<bool>>,
        Bound<'py, PyArray1<i64>>,
    )> {
        let (n, l) = (self.sizes.num_envs, self.layout);
        let (acts, vals): (&[i64], &[f64]) = match (l.continuous, &actions, &values) {
            (false, Some(a), _) if a.len() == n => (a.as_slice()?, &[]),
            (true, _, Some(v)) if v.shape() == [n, l.num_actions] => (&[], v.as_slice()?),
            (false, _, _) => return Err(PyValueError::new_err(format!("give {n} int actions, one per env"))),
            (true, _, _) => {
                return Err(PyValueError::new_err(format!("give values of shape ({n}, {})", l.num_actions)))
            }
        };
        let obs = PyArray2::<f32>::zeros(py, [n, l.obs_size], false);
        let rewards = PyArray2::<f64>::zeros(py, [n, l.players], false);
        let (term, trunc) = (PyArray1::<bool>::zeros(py, n, false), PyArray1::<bool>::zeros(py, n, false));
        let masks = PyArray2::<bool>::zeros(py, [n, l.mask_width()], false);
        let success = PyArray1::<bool>::zeros(py, n, false);
        let player = PyArray1::<i64>::zeros(py, n, false);
        let mut into = StepInto {
            rewards: data(&rewards)?,
            terminated: data(&term)?,
            truncated: data(&trunc)?,
            obs: Some(data(&obs)?),
            masks: Some(data(&masks)?),
            success: Some(data(&success)?),
            player: Some(data(&player)?),
        };
        let mut inner = self.enter(py)?;
        let views = inner.envs.split(0..n, self.threads()).map_err(to_py)?;
        let mut parts = Vec::new();
        for v in &views {
            let (head, tail) = into.split_at(v.envs().len(), n - v.envs().start);
            parts.push(head);
            into = tail;
        }
        let flags = StepFlags { autoreset, illegal_noop };
        self.parallel(py, views, parts, |v, out| {
            let r = v.envs();
            let a = if l.continuous {
                Actions::Values(&vals[r.start * l.num_actions..r.end * l.num_actions])
            } else {
                Actions::Discrete(&acts[r.clone()])
            };
            v.step(r, a, flags, out)
        })?;
        Ok((obs, rewards, term, trunc, masks, success, player))
    }

    /// `steps` random legal steps per env, run entirely in Rust on the batch's threads.
    /// Returns (steps, episodes, successes, return_sum, length_sum).
    #[pyo3(signature = (steps, seed, start=None, end=None, observe=false))]
    fn random_steps(
        &self, py: Python<'_>, steps: u64, seed: u64, start: Option<usize>, end: Option<usize>, observe: bool,
    ) -> PyResult<(u64, u64, u64, f64, u64)> {
        let envs = self.range(start, end)?;
        let mut inner = self.enter(py)?;
        let views = inner.envs.split(envs, self.threads()).map_err(to_py)?;
        let parts = vec![(); views.len()];
        let r = total(self.parallel(py, views, parts, |v, _| v.random_steps(steps, seed, observe))?);
        Ok((r.steps, r.episodes, r.successes, r.return_sum, r.length_sum))
    }

    /// Exactly `episodes` whole episodes of random legal actions, spread over the batch's
    /// envs, each from a reset and cut after `max_len` steps. Returns a dict: episodes,
    /// cut, steps, successes, length_sum and `returns` (per player, summed).
    #[pyo3(signature = (episodes, seed, max_len))]
    fn random_episodes<'py>(
        &self, py: Python<'py>, episodes: u64, seed: u64, max_len: u64,
    ) -> PyResult<Bound<'py, PyDict>> {
        let n = self.sizes.num_envs as u64;
        let quota: Vec<u64> = (0..n).map(|i| episodes / n + u64::from(i < episodes % n)).collect();
        let mut inner = self.enter(py)?;
        let views = inner.envs.split(0..n as usize, self.threads()).map_err(to_py)?;
        let parts: Vec<&[u64]> = views.iter().map(|v| &quota[v.envs()]).collect();
        let r = total(self.parallel(py, views, parts, |v, q| v.random_episodes(q, max_len, seed))?);
        let d = PyDict::new(py);
        for (k, v) in [
            ("episodes", r.episodes),
            ("cut", r.cut),
            ("steps", r.steps),
            ("successes", r.successes),
            ("length_sum", r.length_sum),
        ] {
            d.set_item(k, v)?;
        }
        d.set_item("returns", r.player_returns[..self.layout.players.min(MAX_REPORTED_PLAYERS)].to_vec())?;
        Ok(d)
    }

    /// Symmetry `k` of env `i`: (obs permutation [obs_size], action permutation [num_actions]).
    /// Feature `j` of an observation becomes feature `obs[j]`; action `a` becomes `act[a]`.
    fn twist<'py>(
        &self, py: Python<'py>, i: usize, k: usize,
    ) -> PyResult<(Bound<'py, PyArray1<u32>>, Bound<'py, PyArray1<u32>>)> {
        let i = self.index(i)?;
        let twists = self._loaded.table.twists as usize;
        if k >= twists {
            return Err(PyIndexError::new_err(format!("symmetry {k} is outside 0..{twists}")));
        }
        let obs = PyArray1::<u32>::zeros(py, self.sizes.obs_size, false);
        let act = PyArray1::<u32>::zeros(py, self.layout.mask_width(), false);
        self.enter(py)?.envs.twist(i, k, data(&obs)?, data(&act)?).map_err(to_py)?;
        Ok((obs, act))
    }

    /// The name of action `action` of env `i`, like `drop(3)`.
    fn action_label(&self, py: Python<'_>, i: usize, action: usize) -> PyResult<String> {
        let i = self.index(i)?;
        self.enter(py)?.envs.action_label(i, action).map_err(to_py)
    }

    /// Copy env `i` of this batch over env `j` of `other` (a batch of the same plugin).
    fn copy_env(&self, py: Python<'_>, i: usize, other: &Batch, j: usize) -> PyResult<()> {
        let (i, j) = (self.index(i)?, other.index(j)?);
        if std::ptr::eq(self, other) {
            return self.enter(py)?.envs.copy_within(i, j).map_err(to_py);
        }
        let (mut a, mut b) = Batch::enter_two(py, self, other)?;
        let (src, mut dst) = (a.envs.envs(i..i + 1).map_err(to_py)?, b.envs.envs(j..j + 1).map_err(to_py)?);
        src.copy_into(i, &mut dst, j).map_err(to_py)
    }
}
