//! Empirical f32 FMA peak: every thread runs CHAINS independent FMA dependency chains
//! (`acc = acc * m + c`, enough chains to cover the FMA latency on all FMA ports) for a
//! fixed number of iterations; FLOPs = threads · iters · chains · lanes · 2, over the
//! wall time of the slowest thread. Median of REPEATS runs.
//!
//! Usage: fma-peak [--threads 1,2] [--iters N]   (prints one JSON line per case)

use std::arch::x86_64::*;
use std::hint::black_box;
use std::time::Instant;

const REPEATS: usize = 7;
/// AVX2 has 16 ymm registers: 12 accumulators + 2 constants.
const CHAINS_256: usize = 12;
/// AVX-512 has 32 zmm registers: 24 accumulators + 2 constants.
const CHAINS_512: usize = 24;

#[target_feature(enable = "avx2,fma")]
unsafe fn fma256<const N: usize>(iters: u64, seed: f32) -> f32 {
    let m = _mm256_set1_ps(0.999_9);
    let c = _mm256_set1_ps(1e-4);
    let mut acc = [_mm256_set1_ps(seed); N];
    for (i, a) in acc.iter_mut().enumerate() {
        *a = _mm256_add_ps(*a, _mm256_set1_ps(i as f32));
    }
    for _ in 0..iters {
        for a in acc.iter_mut() {
            *a = _mm256_fmadd_ps(*a, m, c);
        }
    }
    let mut s = _mm256_setzero_ps();
    for a in acc {
        s = _mm256_add_ps(s, a);
    }
    let mut out = [0f32; 8];
    _mm256_storeu_ps(out.as_mut_ptr(), s);
    out.iter().sum()
}

#[target_feature(enable = "avx512f")]
unsafe fn fma512<const N: usize>(iters: u64, seed: f32) -> f32 {
    let m = _mm512_set1_ps(0.999_9);
    let c = _mm512_set1_ps(1e-4);
    let mut acc = [_mm512_set1_ps(seed); N];
    for (i, a) in acc.iter_mut().enumerate() {
        *a = _mm512_add_ps(*a, _mm512_set1_ps(i as f32));
    }
    for _ in 0..iters {
        for a in acc.iter_mut() {
            *a = _mm512_fmadd_ps(*a, m, c);
        }
    }
    let mut s = _mm512_setzero_ps();
    for a in acc {
        s = _mm512_add_ps(s, a);
    }
    _mm512_reduce_add_ps(s)
}

/// GFLOP/s of `threads` threads each running `kernel`; median of REPEATS.
fn measure(threads: usize, iters: u64, flops_per_iter: f64, kernel: fn(u64, f32) -> f32) -> (f64, f64, f64) {
    let mut rates = Vec::with_capacity(REPEATS);
    for _ in 0..REPEATS {
        let t = Instant::now();
        std::thread::scope(|s| {
            for k in 0..threads {
                s.spawn(move || black_box(kernel(black_box(iters), k as f32)));
            }
        });
        let secs = t.elapsed().as_secs_f64();
        rates.push(threads as f64 * iters as f64 * flops_per_iter / secs / 1e9);
    }
    rates.sort_by(|a, b| a.partial_cmp(b).unwrap());
    (rates[REPEATS / 2], rates[0], rates[REPEATS - 1])
}

fn main() {
    let mut threads = vec![1, 2];
    let mut iters: u64 = 200_000_000;
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let mut it = argv.iter();
    while let Some(flag) = it.next() {
        let val = it.next().unwrap_or_else(|| panic!("{flag} needs a value"));
        match flag.as_str() {
            "--threads" => threads = val.split(',').map(|s| s.parse().expect("--threads")).collect(),
            "--iters" => iters = val.parse().expect("--iters"),
            _ => panic!("unknown flag {flag}"),
        }
    }
    let have512 = is_x86_feature_detected!("avx512f");
    let have256 = is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma");
    let k256: fn(u64, f32) -> f32 = |n, s| unsafe { fma256::<CHAINS_256>(n, s) };
    let k512: fn(u64, f32) -> f32 = |n, s| unsafe { fma512::<CHAINS_512>(n, s) };
    // One chain: bound by the FMA latency, not the ports (a probe of whether the two
    // vCPUs share a core's FMA units: then this one still scales with threads).
    let k512_lat: fn(u64, f32) -> f32 = |n, s| unsafe { fma512::<1>(n, s) };
    for &t in &threads {
        let mut cases: Vec<(&str, usize, usize, fn(u64, f32) -> f32)> = Vec::new();
        if have256 {
            cases.push(("avx2_fma256", CHAINS_256, 8, k256));
        }
        if have512 {
            cases.push(("avx512_fma512", CHAINS_512, 16, k512));
            cases.push(("avx512_1chain", 1, 16, k512_lat));
        }
        for (name, chains, lanes, k) in cases {
            // Fewer iterations for the wider kernel keep each run about the same length.
            let n = (iters * 8 / lanes as u64 * 12 / chains as u64).min(iters);
            let (med, lo, hi) = measure(t, n, (chains * lanes * 2) as f64, k);
            println!(
                "{{\"kernel\":\"{name}\",\"threads\":{t},\"chains\":{chains},\"lanes\":{lanes},\
                 \"iters\":{n},\"gflops\":{med:.2},\"gflops_min\":{lo:.2},\"gflops_max\":{hi:.2}}}"
            );
        }
    }
}
