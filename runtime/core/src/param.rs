//! Param values as they cross from the host into an env: 64 bits each, exact.

/// One param value: an int (ints, bools as 0/1, enum variants by index) or a float.
/// Ints travel as ints, so every `i64` arrives exactly (no detour through `f64`).
#[repr(transparent)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Param(u64);

impl Param {
    pub const fn int(v: i64) -> Param {
        Param(v as u64)
    }

    pub fn float(v: f64) -> Param {
        Param(v.to_bits())
    }

    pub const fn as_int(self) -> i64 {
        self.0 as i64
    }

    pub fn as_float(self) -> f64 {
        f64::from_bits(self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::Param;

    #[test]
    fn ints_and_floats_travel_exactly() {
        for v in [i64::MIN, -1, 0, 9_007_199_254_740_993, i64::MAX] {
            assert_eq!(Param::int(v).as_int(), v);
        }
        for v in [0.0, -2.5, f64::MAX, f64::MIN_POSITIVE] {
            assert_eq!(Param::float(v).as_float(), v);
        }
    }
}
