//! Views computed once per state: a generated env reads a scalar view (`let over = ...`)
//! from its guards, mask, rewards and endings, several times a step. [`Cached`] holds the
//! value from the first read until the env changes: it is filled through `&self` (the
//! readers), and generated code clears it in every method that can change the state.
//!
//! The value lives in atomics so that an env stays `Sync` (it is never shared between
//! threads while stepping; relaxed loads and stores compile to plain moves).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use crate::fault::R;

/// A scalar that fits in 64 bits: what a view can be cached as.
pub trait Bits: Copy {
    fn to_bits(self) -> u64;
    fn from_bits(bits: u64) -> Self;
}

impl Bits for bool {
    fn to_bits(self) -> u64 {
        self as u64
    }
    fn from_bits(bits: u64) -> bool {
        bits != 0
    }
}

impl Bits for i64 {
    fn to_bits(self) -> u64 {
        self as u64
    }
    fn from_bits(bits: u64) -> i64 {
        bits as i64
    }
}

impl Bits for f64 {
    fn to_bits(self) -> u64 {
        f64::to_bits(self)
    }
    fn from_bits(bits: u64) -> f64 {
        f64::from_bits(bits)
    }
}

/// One view's value in the current state, once computed.
#[derive(Debug, Default)]
pub struct Cached<T> {
    bits: AtomicU64,
    known: AtomicBool,
    _kind: std::marker::PhantomData<T>,
}

impl<T: Bits> Cached<T> {
    /// The value, computed by `compute` on the first read since the last [`Cached::clear`].
    /// A fault is returned and nothing is kept, so the next read faults the same way.
    #[inline]
    pub fn get(&self, compute: impl FnOnce() -> R<T>) -> R<T> {
        if self.known.load(Ordering::Relaxed) {
            return Ok(T::from_bits(self.bits.load(Ordering::Relaxed)));
        }
        let value = compute()?;
        self.bits.store(value.to_bits(), Ordering::Relaxed);
        self.known.store(true, Ordering::Relaxed);
        Ok(value)
    }

    /// Forget the value: the state may have changed.
    #[inline]
    pub fn clear(&mut self) {
        *self.known.get_mut() = false;
    }
}

impl<T> Clone for Cached<T> {
    fn clone(&self) -> Self {
        Cached {
            bits: AtomicU64::new(self.bits.load(Ordering::Relaxed)),
            known: AtomicBool::new(self.known.load(Ordering::Relaxed)),
            _kind: std::marker::PhantomData,
        }
    }

    fn clone_from(&mut self, source: &Self) {
        *self.bits.get_mut() = source.bits.load(Ordering::Relaxed);
        *self.known.get_mut() = source.known.load(Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn computes_once_until_cleared_and_keeps_no_fault() {
        let mut c: Cached<i64> = Cached::default();
        let calls = std::cell::Cell::new(0);
        let f = || {
            calls.set(calls.get() + 1);
            Ok(-7)
        };
        assert_eq!(c.get(f), Ok(-7));
        assert_eq!(c.get(f), Ok(-7));
        assert_eq!(calls.get(), 1);
        c.clear();
        assert_eq!(c.get(f), Ok(-7));
        assert_eq!(calls.get(), 2);
        c.clear();
        let fault = crate::fault::Fault::new(crate::fault::FaultKind::Empty, crate::fault::at(3, 4), 0, 0, 0);
        assert_eq!(c.get(|| Err(fault)), Err(fault));
        assert_eq!(c.get(f), Ok(-7));
    }
}
