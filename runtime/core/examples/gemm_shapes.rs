//! Times the matrix products one PPO update of the default network runs, one by one:
//! `cargo run --release --example gemm_shapes -p twisterl-core -- [threads]`.
use std::time::Instant;
use twisterl_core::learn::gemm::{gemm, Mat, Start};

fn main() {
    let threads: usize = std::env::args().nth(1).and_then(|s| s.parse().ok()).unwrap_or(2);
    let (b, e, h) = (4096usize, 512usize, 256usize);
    let x = vec![0.5f32; b * e];
    let w = vec![0.25f32; e * h];
    let dy = vec![0.1f32; b * h];
    let mut out = vec![0.0f32; b * e];
    let bias = vec![0.0f32; h];
    let shapes: [(&str, Box<dyn Fn(&mut [f32])>); 3] = [
        ("forward  x·W      ", Box::new(|c: &mut [f32]| gemm(b, h, e, Mat::rows(&x, e), Mat::rows(&w, h), c, Start::Bias(&bias), threads))),
        ("weights  xᵀ·dy    ", Box::new(|c: &mut [f32]| gemm(e, h, b, Mat::rows(&x, e).t(), Mat::rows(&dy, h), c, Start::Add, threads))),
        ("inputs   dy·Wᵀ    ", Box::new(|c: &mut [f32]| gemm(b, e, h, Mat::rows(&dy, h), Mat::rows(&w, h).t(), c, Start::Zero, threads))),
    ];
    let heads: [(&str, Box<dyn Fn(&mut [f32])>); 3] = [
        ("head fwd x·W (n=4) ", Box::new(|c: &mut [f32]| gemm(b, 4, h, Mat::rows(&dy, h), Mat::rows(&w[..h * 4], 4), c, Start::Zero, threads))),
        ("head dW  xᵀ·dy(n=4)", Box::new(|c: &mut [f32]| gemm(h, 4, b, Mat::rows(&dy, h).t(), Mat::rows(&x[..b * 4], 4), c, Start::Add, threads))),
        ("head dx  dy·Wᵀ(k=4)", Box::new(|c: &mut [f32]| gemm(b, h, 4, Mat::rows(&x[..b * 4], 4), Mat::rows(&w[..h * 4], 4).t(), c, Start::Zero, threads))),
    ];
    for (name, f) in heads.iter() {
        f(&mut out);
        let t = Instant::now();
        for _ in 0..10 {
            f(&mut out);
        }
        println!("{name} {:.2} ms", t.elapsed().as_secs_f64() * 1e3 / 10.0);
    }
    for (name, f) in shapes.iter() {
        f(&mut out);
        let n = 10;
        let t = Instant::now();
        for _ in 0..n {
            f(&mut out);
        }
        let dt = t.elapsed().as_secs_f64() / n as f64;
        println!("{name} {:.2} ms  {:.0} GFLOP/s", dt * 1e3, 2.0 * (b * e * h) as f64 / dt / 1e9);
    }
}
