//! Ctrl-C during long Rust work.
//!
//! Python handles SIGINT by tripping a flag that only its main thread reads, between
//! bytecodes: while that thread is inside a plugin call, nothing would read it. So the
//! runtime hooks SIGINT in front of Python's own handler: the hook sets [`FLAG`], which
//! every plugin loop polls (`twisterl_core::ops::poll`), and then calls Python's handler
//! as before. The interrupted call ends with an `Interrupted` fault, and the host runs
//! Python's pending signal handlers, so the user sees the usual `KeyboardInterrupt`.
//!
//! `signal.signal(SIGINT, ...)` puts Python's handler back in place; [`arm`] re-hooks it
//! at the start of calls, at most every few milliseconds.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use pyo3::exceptions::PyKeyboardInterrupt;
use pyo3::prelude::*;

/// Set by the SIGINT hook; cleared when a call starts.
pub static FLAG: AtomicBool = AtomicBool::new(false);

/// The handler that was installed before the hook, and its `sa_flags`.
static PREVIOUS: AtomicUsize = AtomicUsize::new(0);
static PREVIOUS_FLAGS: AtomicUsize = AtomicUsize::new(0);
/// Milliseconds (since the epoch) of the last check that the hook is in place.
static LAST_ARMED: AtomicU64 = AtomicU64::new(0);

#[cfg(unix)]
extern "C" fn on_sigint(sig: libc::c_int, info: *mut libc::siginfo_t, context: *mut libc::c_void) {
    FLAG.store(true, Ordering::SeqCst);
    let previous = PREVIOUS.load(Ordering::SeqCst);
    if previous == libc::SIG_IGN {
        return;
    }
    if previous == libc::SIG_DFL {
        // Nobody handles SIGINT: die of it, as the process would have without the hook.
        unsafe {
            libc::signal(sig, libc::SIG_DFL);
            libc::raise(sig);
        }
        return;
    }
    unsafe {
        if PREVIOUS_FLAGS.load(Ordering::SeqCst) as libc::c_int & libc::SA_SIGINFO != 0 {
            let handler: extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void) =
                std::mem::transmute(previous);
            handler(sig, info, context);
        } else {
            let handler: extern "C" fn(libc::c_int) = std::mem::transmute(previous);
            handler(sig);
        }
    }
}

/// Put the hook in front of whatever SIGINT handler is installed, unless it already is.
#[cfg(unix)]
fn hook() {
    unsafe {
        let mut current: libc::sigaction = std::mem::zeroed();
        if libc::sigaction(libc::SIGINT, std::ptr::null(), &mut current) != 0 {
            return;
        }
        let ours = on_sigint as *const () as usize;
        if current.sa_sigaction == ours {
            return;
        }
        PREVIOUS.store(current.sa_sigaction, Ordering::SeqCst);
        PREVIOUS_FLAGS.store(current.sa_flags as usize, Ordering::SeqCst);
        let mut hooked = current;
        hooked.sa_sigaction = ours;
        hooked.sa_flags = current.sa_flags | libc::SA_SIGINFO;
        libc::sigaction(libc::SIGINT, &hooked, std::ptr::null_mut());
    }
}

#[cfg(not(unix))]
fn hook() {}

/// Start of a call that may run long: clear the flag and make sure the hook is in place.
pub fn arm() {
    FLAG.store(false, Ordering::Relaxed);
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0);
    if now.saturating_sub(LAST_ARMED.load(Ordering::Relaxed)) >= 5 {
        LAST_ARMED.store(now, Ordering::Relaxed);
        hook();
    }
}

/// The error for an interrupted call: the exception Python's own SIGINT handler raises
/// (normally `KeyboardInterrupt`), or a plain `KeyboardInterrupt`.
pub fn error() -> PyErr {
    Python::attach(|py| match py.check_signals() {
        Err(err) => err,
        Ok(()) => PyKeyboardInterrupt::new_err("interrupted"),
    })
}

/// Point the runtime core's own loops (and those of `plugin`, when given) at [`FLAG`].
pub fn install(plugin: Option<&twisterl_core::abi::PluginV1>) {
    twisterl_core::ops::set_interrupt_flag(&FLAG);
    if let Some(table) = plugin {
        (table.set_interrupt_flag)(&FLAG);
    }
}
