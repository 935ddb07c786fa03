//! A persistent pool of worker threads for the learner's parallel loops, started once and
//! woken per loop (starting threads per call cost about 20 µs each, and every call's fresh
//! packing buffers page-faulted).
//!
//! [`for_each`] runs `f(0)`, …, `f(tasks - 1)`, each task writing its own part of the
//! result, so which thread runs which task never changes what is computed: results depend
//! on how a loop is split into tasks (the callers split by the thread count), not on the
//! scheduling. When the pool is busy (another caller, or a loop inside a task), and on wasm
//! (no threads), the tasks run in order on the calling thread.

/// Run `f(t)` for every `t < tasks` on up to `threads` threads, the caller's among them.
pub fn for_each(tasks: usize, threads: usize, f: impl Fn(usize) + Sync) {
    let helpers = threads.min(tasks).saturating_sub(1);
    if helpers == 0 {
        (0..tasks).for_each(f);
        return;
    }
    #[cfg(target_family = "wasm")]
    (0..tasks).for_each(f);
    #[cfg(not(target_family = "wasm"))]
    threaded::run(tasks, helpers, &f);
}

/// The rows `[start, end)` of task `t` when `rows` are split into `tasks` parts whose sizes are
/// multiples of `align` (the last part takes the rest).
pub fn part(rows: usize, tasks: usize, align: usize, t: usize) -> (usize, usize) {
    let per = rows.div_ceil(tasks.max(1)).div_ceil(align) * align;
    ((t * per).min(rows), ((t + 1) * per).min(rows))
}

/// A slice that tasks write disjoint parts of.
pub(crate) struct Disjoint<'a, T> {
    ptr: *mut T,
    len: usize,
    _slice: std::marker::PhantomData<&'a mut [T]>,
}

// SAFETY: tasks only reach the slice through `part`, whose callers keep the ranges disjoint.
unsafe impl<T: Send> Sync for Disjoint<'_, T> {}

impl<'a, T> Disjoint<'a, T> {
    pub(crate) fn new(slice: &'a mut [T]) -> Self {
        Disjoint { ptr: slice.as_mut_ptr(), len: slice.len(), _slice: std::marker::PhantomData }
    }

    /// Elements `start..end`.
    ///
    /// # Safety
    /// No two live results may overlap.
    #[allow(clippy::mut_from_ref)]
    pub(crate) unsafe fn part(&self, start: usize, end: usize) -> &mut [T] {
        assert!(start <= end && end <= self.len, "part {start}..{end} of {}", self.len);
        std::slice::from_raw_parts_mut(self.ptr.add(start), end - start)
    }
}

#[cfg(not(target_family = "wasm"))]
mod threaded {
    use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{Condvar, Mutex, MutexGuard, OnceLock};

    /// One loop, as the workers see it. `f` and `next` live on the caller's stack: the
    /// caller does not return before every helper has let go of them.
    #[derive(Clone, Copy)]
    struct Job {
        f: *const (dyn Fn(usize) + Sync),
        next: *const AtomicUsize,
        tasks: usize,
        helpers: usize,
    }

    // SAFETY: `f` is `Sync`, `next` atomic; both outlive the job (see `Job`).
    unsafe impl Send for Job {}

    struct State {
        job: Option<Job>,
        /// Incremented per job, so a worker knows a job is new.
        epoch: u64,
        /// Helpers still running the current job.
        active: usize,
        panicked: bool,
        workers: usize,
    }

    struct Pool {
        state: Mutex<State>,
        wake: Condvar,
        finished: Condvar,
        /// Held by the one caller whose job the pool runs.
        busy: Mutex<()>,
    }

    fn pool() -> &'static Pool {
        static POOL: OnceLock<Pool> = OnceLock::new();
        POOL.get_or_init(|| Pool {
            state: Mutex::new(State { job: None, epoch: 0, active: 0, panicked: false, workers: 0 }),
            wake: Condvar::new(),
            finished: Condvar::new(),
            busy: Mutex::new(()),
        })
    }

    fn lock(m: &Mutex<State>) -> MutexGuard<'_, State> {
        m.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Claim tasks from `next` until none is left.
    fn drain(f: &(dyn Fn(usize) + Sync), next: &AtomicUsize, tasks: usize) {
        loop {
            let t = next.fetch_add(1, Ordering::Relaxed);
            if t >= tasks {
                return;
            }
            f(t);
        }
    }

    fn worker(index: usize) {
        let pool = pool();
        let mut seen = 0u64;
        loop {
            let job = {
                let mut s = lock(&pool.state);
                while s.epoch == seen {
                    s = pool.wake.wait(s).unwrap_or_else(|e| e.into_inner());
                }
                seen = s.epoch;
                match s.job {
                    Some(job) if index < job.helpers => job,
                    _ => continue,
                }
            };
            // SAFETY: the caller waits for `active` to reach zero before `f` and `next` go.
            let ok = catch_unwind(AssertUnwindSafe(|| unsafe { drain(&*job.f, &*job.next, job.tasks) })).is_ok();
            let mut s = lock(&pool.state);
            s.panicked |= !ok;
            s.active -= 1;
            if s.active == 0 {
                pool.finished.notify_all();
            }
        }
    }

    pub(super) fn run(tasks: usize, helpers: usize, f: &(dyn Fn(usize) + Sync)) {
        let pool = pool();
        let Ok(_busy) = pool.busy.try_lock() else {
            (0..tasks).for_each(f);
            return;
        };
        let next = AtomicUsize::new(0);
        {
            let mut s = lock(&pool.state);
            while s.workers < helpers {
                let index = s.workers;
                let started = std::thread::Builder::new().name(format!("twisterl-learn-{index}"))
                    .spawn(move || worker(index));
                if started.is_err() {
                    break;
                }
                s.workers += 1;
            }
            let helpers = helpers.min(s.workers);
            // SAFETY (of erasing the lifetimes): see `Job`.
            let f: *const (dyn Fn(usize) + Sync) = unsafe { std::mem::transmute(f) };
            s.job = Some(Job { f, next: &next, tasks, helpers });
            s.epoch += 1;
            s.active = helpers;
            s.panicked = false;
            pool.wake.notify_all();
        }
        let mine = catch_unwind(AssertUnwindSafe(|| drain(f, &next, tasks)));
        let panicked = {
            let mut s = lock(&pool.state);
            while s.active > 0 {
                s = pool.finished.wait(s).unwrap_or_else(|e| e.into_inner());
            }
            s.job = None;
            s.panicked
        };
        if let Err(payload) = mine {
            resume_unwind(payload);
        }
        assert!(!panicked, "a learner worker thread panicked");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn every_task_runs_once_whatever_the_threads() {
        for threads in [1, 2, 3, 8] {
            for tasks in [0, 1, 2, 5, 64] {
                let hits: Vec<AtomicUsize> = (0..tasks).map(|_| AtomicUsize::new(0)).collect();
                for_each(tasks, threads, |t| {
                    // A loop inside a task runs on its thread.
                    for_each(3, threads, |_| {});
                    hits[t].fetch_add(1, Ordering::Relaxed);
                });
                assert!(hits.iter().all(|h| h.load(Ordering::Relaxed) == 1), "{threads} threads, {tasks} tasks");
            }
        }
    }

    #[test]
    fn a_panicking_task_reaches_the_caller_and_the_pool_keeps_working() {
        let caught = std::panic::catch_unwind(|| for_each(4, 2, |t| assert!(t != 2, "task 2 fails")));
        assert!(caught.is_err());
        let count = AtomicUsize::new(0);
        for_each(10, 2, |_| {
            count.fetch_add(1, Ordering::Relaxed);
        });
        assert_eq!(count.load(Ordering::Relaxed), 10);
    }

    #[test]
    fn parts_cover_the_rows_in_aligned_pieces() {
        for (rows, tasks, align) in [(10, 3, 4), (4096, 2, 8), (5, 8, 1), (0, 2, 8)] {
            let mut end = 0;
            for t in 0..tasks {
                let (a, b) = part(rows, tasks, align, t);
                assert_eq!(a, end);
                assert!(b >= a && (b == rows || (b - a) % align == 0));
                end = b;
            }
            assert_eq!(end, rows);
        }
    }
}
