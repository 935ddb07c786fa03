//! Element-wise loops compiled a second time for AVX-512 and AVX2 and picked at run time
//! (the crate itself targets baseline x86-64, whose vectors are 4 floats wide).

/// Call `f(args...)`, an `#[inline(always)]` function, through a copy compiled for the widest
/// vectors the CPU has: `wide!(f(a, b))`.
macro_rules! wide {
    ($f:ident($($arg:expr),* $(,)?)) => {{
        #[cfg(target_arch = "x86_64")]
        {
            #[target_feature(enable = "avx512f")]
            unsafe fn avx512<R>(run: impl FnOnce() -> R) -> R { run() }
            #[target_feature(enable = "avx2,fma")]
            unsafe fn avx2<R>(run: impl FnOnce() -> R) -> R { run() }
            if std::arch::is_x86_feature_detected!("avx512f") {
                // SAFETY: the CPU has the features the copy is compiled for.
                unsafe { avx512(#[inline(always)] || $f($($arg),*)) }
            } else if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
                // SAFETY: as above.
                unsafe { avx2(#[inline(always)] || $f($($arg),*)) }
            } else {
                $f($($arg),*)
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            $f($($arg),*)
        }
    }};
}

pub(crate) use wide;
