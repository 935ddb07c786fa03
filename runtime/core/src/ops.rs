//! Checked operations with the language's semantics, used by generated code.
//!
//! Integer arithmetic is 64-bit and checked; `/` on ints floors, `%` is floored modulo
//! for ints and floats (the sign of the divisor, like Python); `round` rounds half to even.

use std::sync::atomic::{AtomicBool, AtomicPtr, Ordering};

use crate::fault::{At, Fault, FaultKind, R};
use crate::param::Param;

/// The most iterations one loop may run: more is refused before the loop starts.
pub const MAX_LOOP: i64 = 1 << 32;

/// The host's interrupt flag (null: never interrupted), read by [`poll`].
static INTERRUPT: AtomicPtr<AtomicBool> = AtomicPtr::new(std::ptr::null_mut());

/// Make [`poll`] read `flag`, which the host sets to stop long work (on Ctrl-C).
/// The flag must live as long as this code can run (a `static` of the host).
pub fn set_interrupt_flag(flag: *const AtomicBool) {
    INTERRUPT.store(flag as *mut AtomicBool, Ordering::Release);
}

/// Whether the host asked the work to stop.
#[inline]
pub fn interrupted() -> bool {
    let flag = INTERRUPT.load(Ordering::Relaxed);
    // SAFETY: a non-null flag is a host static (see `set_interrupt_flag`).
    !flag.is_null() && unsafe { (*flag).load(Ordering::Relaxed) }
}

/// A fault if the host asked the work to stop; loops call it once per iteration.
#[inline]
pub fn poll(at: At) -> R<()> {
    if interrupted() {
        return Err(fault(FaultKind::Interrupted, at, 0, 0, 0));
    }
    Ok(())
}

/// Division by a number known only at run time but fixed for long (the span of an action
/// family's index, from params), by multiplication: one `div` costs 10-40 cycles, the
/// multiplies a few. Exact for dividends below 2^32 (Lemire, Kaser and Kurz, "Faster
/// remainder by direct computation", 2019); others, and divisors of 1 or from 2^32 on,
/// take the `div`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Divisor {
    d: u64,
    /// `ceil(2^64 / d)`, or 0 where the division must be done by `div`.
    m: u64,
}

impl Divisor {
    /// Dividing by `d`; a `d` below 1 divides by 1 (an empty family is never decoded).
    pub fn new(d: i64) -> Divisor {
        let d = d.max(1) as u64;
        let m = if d == 1 || d > u32::MAX as u64 { 0 } else { u64::MAX / d + 1 };
        Divisor { d, m }
    }

    /// `(a / d, a % d)`.
    #[inline]
    pub fn div_rem(self, a: u64) -> (u64, u64) {
        if self.m == 0 || a > u32::MAX as u64 {
            return (a / self.d, a % self.d);
        }
        // The high 64 bits of the 128-bit `m * a`, from 64-bit products (a < 2^32).
        let q = ((self.m >> 32) * a + (((self.m & 0xffff_ffff) * a) >> 32)) >> 32;
        (q, a - q * self.d)
    }
}

/// The most elements one array may hold (the language's limit), and the most bytes.
pub const MAX_ARRAY_LEN: i64 = 100_000_000;
pub const MAX_ARRAY_BYTES: i64 = 1 << 34;

/// `len` copies of `value`, for an array whose size is known only at run time (from
/// params): a negative or absurd size, or memory that cannot be had, is a fault.
pub fn filled<T: Clone>(value: T, len: i64, at: At) -> R<Vec<T>> {
    let bytes = std::mem::size_of::<T>().max(1) as i64;
    if !(0..=MAX_ARRAY_LEN).contains(&len) || len.saturating_mul(bytes) > MAX_ARRAY_BYTES {
        return Err(fault(FaultKind::TooLarge, at, len, bytes, 0));
    }
    let mut v = Vec::new();
    v.try_reserve_exact(len as usize).map_err(|_| fault(FaultKind::TooLarge, at, len, bytes, 0))?;
    v.resize(len as usize, value);
    Ok(v)
}

/// `values` as an array of `N`: where an array sized by params meets one of literal size,
/// their lengths must agree at run time.
pub fn fixed<T: Copy, const N: usize>(values: &[T], at: At) -> R<[T; N]> {
    <[T; N]>::try_from(values).map_err(|_| fault(FaultKind::LengthMismatch, at, values.len() as i64, N as i64, 0))
}

/// The range `lo..hi` of a loop, refused when it would run more than [`MAX_LOOP`] times.
#[inline]
pub fn span(lo: i64, hi: i64, at: At) -> R<std::ops::Range<i64>> {
    let trips = (hi as i128 - lo as i128).max(0);
    if trips > MAX_LOOP as i128 {
        return Err(fault(FaultKind::LoopTooLong, at, trips.min(i64::MAX as i128) as i64, MAX_LOOP, 0));
    }
    Ok(lo..hi)
}

#[inline]
fn fault(kind: FaultKind, at: At, a: i64, b: i64, c: i64) -> Fault {
    Fault::new(kind, at, a, b, c)
}

#[inline]
pub fn add(a: i64, b: i64, at: At) -> R<i64> {
    a.checked_add(b).ok_or_else(|| fault(FaultKind::Overflow, at, a, b, 0))
}

#[inline]
pub fn sub(a: i64, b: i64, at: At) -> R<i64> {
    a.checked_sub(b).ok_or_else(|| fault(FaultKind::Overflow, at, a, b, 0))
}

#[inline]
pub fn mul(a: i64, b: i64, at: At) -> R<i64> {
    a.checked_mul(b).ok_or_else(|| fault(FaultKind::Overflow, at, a, b, 0))
}

#[inline]
pub fn neg(a: i64, at: At) -> R<i64> {
    a.checked_neg().ok_or_else(|| fault(FaultKind::Overflow, at, a, 0, 0))
}

/// Floor division of ints.
#[inline]
pub fn div(a: i64, b: i64, at: At) -> R<i64> {
    if b == 0 {
        return Err(fault(FaultKind::DivisionByZero, at, a, b, 0));
    }
    let q = a.checked_div(b).ok_or_else(|| fault(FaultKind::Overflow, at, a, b, 0))?;
    Ok(if (a % b != 0) && ((a < 0) != (b < 0)) { q - 1 } else { q })
}

/// Floored modulo of ints: the result has the sign of the divisor.
#[inline]
pub fn rem(a: i64, b: i64, at: At) -> R<i64> {
    if b == 0 {
        return Err(fault(FaultKind::DivisionByZero, at, a, b, 0));
    }
    let m = a.checked_rem(b).unwrap_or(0);
    Ok(if m != 0 && ((m < 0) != (b < 0)) { m + b } else { m })
}

/// `a ** b` on floats: C's `pow`, as Python and numpy's scalar `**` compute it. The
/// exponent goes through `black_box` so the compiler cannot turn `x ** 2.0` into `x * x`,
/// which differs from `pow` in the last bit for some inputs.
#[inline]
pub fn powf(a: f64, b: f64) -> f64 {
    a.powf(std::hint::black_box(b))
}

/// Floored modulo of floats, as Python computes it.
#[inline]
pub fn fmod(a: f64, b: f64) -> f64 {
    let m = a % b;
    if m != 0.0 && ((b < 0.0) != (m < 0.0)) {
        m + b
    } else {
        m
    }
}

#[inline]
pub fn pow(a: i64, b: i64, at: At) -> R<i64> {
    if b < 0 {
        return Err(fault(FaultKind::NegativeExponent, at, b, 0, 0));
    }
    let e = u32::try_from(b).map_err(|_| fault(FaultKind::Overflow, at, a, b, 0))?;
    a.checked_pow(e).ok_or_else(|| fault(FaultKind::Overflow, at, a, b, 0))
}

/// An index checked against a length.
#[inline]
pub fn ix(i: i64, len: usize, at: At) -> R<usize> {
    if i >= 0 && (i as u64) < len as u64 {
        Ok(i as usize)
    } else {
        Err(fault(FaultKind::IndexOutOfBounds, at, i, len as i64, 0))
    }
}

/// A value checked against a declared range `lo..hi` (hi exclusive).
#[inline]
pub fn range(v: i64, lo: i64, hi: i64, at: At) -> R<i64> {
    if v >= lo && v < hi {
        Ok(v)
    } else {
        Err(fault(FaultKind::OutOfRange, at, v, lo, hi))
    }
}

/// `int(x)`: truncation toward zero, refusing NaN, infinities and out-of-range values.
#[inline]
pub fn to_int(x: f64, at: At) -> R<i64> {
    if x.is_finite() && x >= -9.223372036854776e18 && x < 9.223372036854776e18 {
        Ok(x.trunc() as i64)
    } else {
        Err(fault(FaultKind::BadConversion, at, 0, 0, 0))
    }
}

/// `round(x)`: half to even, like Python and numpy.
#[inline]
pub fn round(x: f64) -> f64 {
    x.round_ties_even()
}

/// `f32(x)`: rounded to float32 precision.
#[inline]
pub fn f32r(x: f64) -> f64 {
    x as f32 as f64
}

#[inline]
pub fn sign_i(x: i64) -> i64 {
    x.signum()
}

#[inline]
pub fn sign_f(x: f64) -> f64 {
    if x > 0.0 {
        1.0
    } else if x < 0.0 {
        -1.0
    } else {
        0.0
    }
}

#[inline]
pub fn abs_i(x: i64, at: At) -> R<i64> {
    x.checked_abs().ok_or_else(|| fault(FaultKind::Overflow, at, x, 0, 0))
}

/// `clamp` that never panics: the lower bound wins when the bounds cross.
#[inline]
pub fn clamp_i(x: i64, lo: i64, hi: i64) -> i64 {
    x.min(hi).max(lo)
}

#[inline]
pub fn clamp_f(x: f64, lo: f64, hi: f64) -> f64 {
    x.min(hi).max(lo)
}

/// Python's `min`/`max` on floats: the first argument wins ties, NaN propagates as in a loop.
#[inline]
pub fn min_f(a: f64, b: f64) -> f64 {
    if b < a {
        b
    } else {
        a
    }
}

#[inline]
pub fn max_f(a: f64, b: f64) -> f64 {
    if b > a {
        b
    } else {
        a
    }
}

/// The relabelling of `as seen by`: marks 1..=players rotate so `p` sees itself as 1.
#[inline]
pub fn seen_by(v: i64, p: i64, players: i64) -> i64 {
    if v <= 0 || v > players {
        v
    } else {
        (v - 1 - p).rem_euclid(players) + 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fault::at;

    #[test]
    fn a_divisor_divides_exactly_like_div() {
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let divisors = [-5, 0, 1, 2, 3, 5, 6, 7, 10, 11, 26, 64, 100, 641, 1 << 16, 65_537, 1_000_003,
                        (1 << 31) - 1, 1 << 31, u32::MAX as i64, 1 << 32, (1 << 40) + 7];
        for &d in &divisors {
            let div = Divisor::new(d);
            let e = d.max(1) as u64;
            let edges = [0, 1, e - 1, e, e + 1, 2 * e, u32::MAX as u64, u32::MAX as u64 - 1,
                         1 << 32, u64::MAX];
            let random = (0..20_000).map(|k| if k % 2 == 0 { next() >> 32 } else { next() % (4 * e + 1) });
            for a in edges.into_iter().chain(random) {
                assert_eq!(div.div_rem(a), (a / e, a % e), "{a} by {d}");
            }
        }
    }

    #[test]
    fn floor_division_and_modulo_match_python() {
        let cases = [(7, 2), (-7, 2), (7, -2), (-7, -2), (6, 3), (-6, 3)];
        let python = [(3, 1), (-4, 1), (-4, -1), (3, -1), (2, 0), (-2, 0)];
        for ((a, b), (q, m)) in cases.iter().zip(python.iter()) {
            assert_eq!(div(*a, *b, at(1, 1)).unwrap(), *q);
            assert_eq!(rem(*a, *b, at(1, 1)).unwrap(), *m);
        }
        assert_eq!(fmod(-7.5, 2.0), 0.5);
        assert_eq!(fmod(7.5, -2.0), -0.5);
        assert!(div(1, 0, at(3, 4)).is_err());
        assert!(div(i64::MIN, -1, at(1, 1)).is_err());
    }

    #[test]
    fn checked_operations_fault_with_positions() {
        let f = add(i64::MAX, 1, at(7, 9)).unwrap_err();
        assert_eq!((f.kind, f.at.line, f.at.col), (FaultKind::Overflow, 7, 9));
        let f = ix(5, 5, at(2, 3)).unwrap_err();
        assert_eq!(f.kind, FaultKind::IndexOutOfBounds);
        assert_eq!(ix(-1, 5, at(1, 1)).unwrap_err().a, -1);
        assert!(range(10, 0, 10, at(1, 1)).is_err());
        assert_eq!(range(9, 0, 10, at(1, 1)).unwrap(), 9);
        assert!(to_int(f64::NAN, at(1, 1)).is_err());
        assert_eq!(to_int(-2.7, at(1, 1)).unwrap(), -2);
        assert_eq!(round(2.5), 2.0);
        assert_eq!(round(3.5), 4.0);
    }

    #[test]
    fn seen_by_rotates_player_marks() {
        assert_eq!(seen_by(1, 0, 2), 1);
        assert_eq!(seen_by(2, 0, 2), 2);
        assert_eq!(seen_by(1, 1, 2), 2);
        assert_eq!(seen_by(2, 1, 2), 1);
        assert_eq!(seen_by(0, 1, 2), 0);
    }
}

/// Param `index` as an int in `lo..hi`: it must be integral.
pub fn param_int(params: &[Param], index: usize, lo: i64, hi: i64) -> R<i64> {
    let bad = Fault::new(FaultKind::BadParam, At { line: 0, col: 0 }, index as i64, 0, 0);
    let v = params.get(index).ok_or(bad)?.as_int();
    // `hi == i64::MAX` means "no upper bound": every int fits.
    if v < lo || (hi != i64::MAX && v >= hi) {
        return Err(bad);
    }
    Ok(v)
}

/// Param `index` as a finite float in `[lo, hi]`.
pub fn param_float(params: &[Param], index: usize, lo: f64, hi: f64) -> R<f64> {
    let bad = Fault::new(FaultKind::BadParam, At { line: 0, col: 0 }, index as i64, 0, 0);
    let v = params.get(index).ok_or(bad)?.as_float();
    if !v.is_finite() || v < lo || v > hi {
        return Err(bad);
    }
    Ok(v)
}

/// Param `index` as a bool: 0 or 1.
pub fn param_bool(params: &[Param], index: usize) -> R<bool> {
    Ok(param_int(params, index, 0, 2)? == 1)
}

/// A state value that must be an integer in `lo..hi`.
pub fn state_int(v: f64, lo: i64, hi: i64, at: At) -> R<i64> {
    if v.fract() != 0.0 || !(v >= lo as f64 && (hi == i64::MAX || v < hi as f64)) {
        return Err(Fault::new(FaultKind::BadStateValue, at, v.to_bits() as i64, lo, hi));
    }
    Ok(v as i64)
}
