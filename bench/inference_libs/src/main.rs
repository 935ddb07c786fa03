//! Single-threaded forward throughput of the 8-puzzle policy: TwisteRL's hand-written
//! inference (`twisterl_core::policy`) against candle-core and (feature `tract`, on by
//! default) tract-core, side by side.
//!
//!   inference_bench [--quick]
//!
//! Prints a correctness check (every variant against an f64 reference and against ours;
//! exits 1 on a mismatch over 1e-4) and, per batch size, rows/s, GFLOP/s and the ratio
//! to ours.

mod net;
#[cfg(feature = "tract")]
mod tract_net;

use candle_core::{Device, Tensor};
use net::*;
use std::time::{Duration, Instant};
use twisterl_core::policy::{Activation, Input, Layer, Policy, Workspace};

const BATCHES: [usize; 3] = [1, 64, 256];

// ---------------------------------------------------------------------------------------
// Ours

struct Ours {
    policy: Policy,
    ws: Workspace,
}

impl Ours {
    fn new(w: &Weights) -> Ours {
        let l1 = Layer::linear_from_torch(&w.w1, &w.b1, OBS, H1).unwrap();
        let l2 = Layer::linear_from_torch(&w.w2, &w.b2, H1, H2).unwrap();
        let p = Layer::linear_from_torch(&w.wp, &w.bp, H2, ACTIONS).unwrap();
        let v = Layer::linear_from_torch(&w.wv, &w.bv, H2, 1).unwrap();
        let trunk = vec![l1, Layer::Act(Activation::Relu), l2, Layer::Act(Activation::Relu)];
        Ours { policy: Policy::new(OBS, trunk, vec![p], vec![v]).unwrap(), ws: Workspace::default() }
    }

    fn sparse(&mut self, idx: &[u32], counts: &[u32], batch: usize, logits: &mut [f32], values: &mut [f32]) {
        let input = Input::Sparse { indices: idx, counts: &counts[..batch], stride: ONES };
        self.policy.forward(input, batch, logits, values, &mut self.ws);
    }

    fn dense(&mut self, x: &[f32], batch: usize, logits: &mut [f32], values: &mut [f32]) {
        self.policy.forward(Input::Dense { x, width: OBS }, batch, logits, values, &mut self.ws);
    }
}

// ---------------------------------------------------------------------------------------
// candle: what a user would write with candle-core alone. Each call takes the batch from a
// slice and copies the results back into slices, as the rollout loop needs.

struct Candle {
    dev: Device,
    w1: Tensor,  // torch layout [H1, OBS], used through .t() as candle-nn's Linear does
    w1t: Tensor, // [OBS, H1], contiguous
    b1: Tensor,
    w2: Tensor,
    w2t: Tensor,
    b2: Tensor,
    wp: Tensor,
    wpt: Tensor,
    bp: Tensor,
    wv: Tensor,
    wvt: Tensor,
    bv: Tensor,
}

type R<T> = candle_core::Result<T>;

impl Candle {
    fn new(w: &Weights) -> R<Candle> {
        let dev = Device::Cpu;
        let t = |v: &[f32], r: usize, c: usize| Tensor::from_slice(v, (r, c), &Device::Cpu);
        let tt = |v: &[f32], r: usize, c: usize| Tensor::from_vec(transpose(v, r, c), (c, r), &Device::Cpu);
        let b = |v: &[f32]| Tensor::from_slice(v, v.len(), &Device::Cpu);
        Ok(Candle {
            w1: t(&w.w1, H1, OBS)?,
            w1t: tt(&w.w1, H1, OBS)?,
            b1: b(&w.b1)?,
            w2: t(&w.w2, H2, H1)?,
            w2t: tt(&w.w2, H2, H1)?,
            b2: b(&w.b2)?,
            wp: t(&w.wp, ACTIONS, H2)?,
            wpt: tt(&w.wp, ACTIONS, H2)?,
            bp: b(&w.bp)?,
            wv: t(&w.wv, 1, H2)?,
            wvt: tt(&w.wv, 1, H2)?,
            bv: b(&w.bv)?,
            dev,
        })
    }

    /// From the first hidden pre-activation to the outputs, weights pre-transposed.
    fn rest(&self, h1: Tensor, logits: &mut [f32], values: &mut [f32]) -> R<()> {
        let h = h1.broadcast_add(&self.b1)?.relu()?;
        let h = h.matmul(&self.w2t)?.broadcast_add(&self.b2)?.relu()?;
        let l = h.matmul(&self.wpt)?.broadcast_add(&self.bp)?;
        let v = h.matmul(&self.wvt)?.broadcast_add(&self.bv)?;
        copy_out(&l, logits)?;
        copy_out(&v, values)
    }

    /// Dense 0/1 input, `x · W^T` with W^T stored contiguous.
    fn dense(&self, x: &[f32], batch: usize, logits: &mut [f32], values: &mut [f32]) -> R<()> {
        let x = Tensor::from_slice(&x[..batch * OBS], (batch, OBS), &self.dev)?;
        self.rest(x.matmul(&self.w1t)?, logits, values)
    }

    /// Dense 0/1 input, torch-layout weights used as `x.matmul(&w.t())` (candle-nn's Linear).
    fn dense_linear_style(&self, x: &[f32], batch: usize, logits: &mut [f32], values: &mut [f32]) -> R<()> {
        let lin = |x: &Tensor, w: &Tensor, b: &Tensor| x.matmul(&w.t()?)?.broadcast_add(b);
        let x = Tensor::from_slice(&x[..batch * OBS], (batch, OBS), &self.dev)?;
        let h = lin(&x, &self.w1, &self.b1)?.relu()?;
        let h = lin(&h, &self.w2, &self.b2)?.relu()?;
        let l = lin(&h, &self.wp, &self.bp)?;
        let v = lin(&h, &self.wv, &self.bv)?;
        copy_out(&l, logits)?;
        copy_out(&v, values)
    }

    /// Sparse input: gather the 9 weight rows of each board with `index_select` and sum them
    /// (an embedding bag built from candle ops).
    fn bag(&self, idx: &[u32], batch: usize, logits: &mut [f32], values: &mut [f32]) -> R<()> {
        let ids = Tensor::from_slice(&idx[..batch * ONES], batch * ONES, &self.dev)?;
        let h1 = self.w1t.index_select(&ids, 0)?.reshape((batch, ONES, H1))?.sum(1)?;
        self.rest(h1, logits, values)
    }
}

fn copy_out(t: &Tensor, out: &mut [f32]) -> R<()> {
    let v = t.flatten_all()?.to_vec1::<f32>()?;
    out[..v.len()].copy_from_slice(&v);
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Reference and checks

fn reference(w: &Weights, x: &[f32], batch: usize) -> (Vec<f32>, Vec<f32>) {
    fn lin(w: &[f32], b: &[f32], x: &[f64], inputs: usize, outputs: usize, relu: bool) -> Vec<f64> {
        (0..outputs)
            .map(|o| {
                let s = b[o] as f64 + (0..inputs).map(|i| w[o * inputs + i] as f64 * x[i]).sum::<f64>();
                if relu { s.max(0.0) } else { s }
            })
            .collect()
    }
    let (mut logits, mut values) = (Vec::new(), Vec::new());
    for r in 0..batch {
        let xr: Vec<f64> = x[r * OBS..(r + 1) * OBS].iter().map(|&v| v as f64).collect();
        let h = lin(&w.w1, &w.b1, &xr, OBS, H1, true);
        let h = lin(&w.w2, &w.b2, &h, H1, H2, true);
        logits.extend(lin(&w.wp, &w.bp, &h, H2, ACTIONS, false).iter().map(|&v| v as f32));
        values.extend(lin(&w.wv, &w.bv, &h, H2, 1, false).iter().map(|&v| v as f32));
    }
    (logits, values)
}

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

// ---------------------------------------------------------------------------------------
// Timing

/// calls/s of each of `fs`: all are warmed up, then timed in `reps` rounds, each round one
/// `window` per variant in turn, so that load from other processes on a shared machine
/// falls on all variants alike; returns each variant's median round.
fn time_interleaved(fs: &mut [Box<dyn FnMut() + '_>], warm: Duration, window: Duration, reps: usize) -> Vec<f64> {
    for f in fs.iter_mut() {
        let t0 = Instant::now();
        while t0.elapsed() < warm {
            f();
        }
    }
    let mut rates = vec![Vec::with_capacity(reps); fs.len()];
    for _ in 0..reps {
        for (f, r) in fs.iter_mut().zip(&mut rates) {
            let (t, mut n) = (Instant::now(), 0u64);
            loop {
                for _ in 0..8 {
                    f();
                }
                n += 8;
                if t.elapsed() >= window {
                    break;
                }
            }
            r.push(n as f64 / t.elapsed().as_secs_f64());
        }
    }
    rates
        .into_iter()
        .map(|mut r| {
            r.sort_by(|a, b| a.partial_cmp(b).unwrap());
            r[reps / 2]
        })
        .collect()
}

type Outs = (Vec<f32>, Vec<f32>);

/// tract's variants through the same check as the others.
#[cfg(feature = "tract")]
fn tract_checks(
    w: &Weights, b: usize, idx: &[u32], dense: &[f32],
    run: &mut dyn FnMut(&str, &mut dyn FnMut(&mut [f32], &mut [f32])) -> Outs,
) -> Vec<(&'static str, Outs)> {
    let mut td = tract_net::Tract::new(w, b, false).expect("tract dense model");
    let mut ts = tract_net::Tract::new(w, b, true).expect("tract bag model");
    vec![
        ("tract dense (EinSum)", run("tract dense (EinSum)", &mut |l, v| td.forward_dense(dense, l, v).unwrap())),
        ("tract bag (Gather+Sum)", run("tract bag (Gather+Sum)", &mut |l, v| ts.forward_sparse(idx, l, v).unwrap())),
    ]
}

/// Without the `tract` feature there are no tract variants.
#[cfg(not(feature = "tract"))]
fn tract_checks(
    _: &Weights, _: usize, _: &[u32], _: &[f32],
    _: &mut dyn FnMut(&str, &mut dyn FnMut(&mut [f32], &mut [f32])) -> Outs,
) -> Vec<(&'static str, Outs)> {
    Vec::new()
}

fn main() {
    // candle's CPU matmul (gemm) runs on rayon with RAYON_NUM_THREADS threads; 1 means no
    // thread pool at all. Set before candle first reads it.
    if std::env::var_os("RAYON_NUM_THREADS").is_none() {
        std::env::set_var("RAYON_NUM_THREADS", "1");
    }
    let quick = std::env::args().any(|a| a == "--quick");
    let (warm, window, reps) = if quick {
        (Duration::from_millis(50), Duration::from_millis(100), 3)
    } else {
        (Duration::from_millis(300), Duration::from_millis(400), 7)
    };
    #[cfg(target_arch = "x86_64")]
    println!(
        "cpu: avx2={} fma={} (ours dispatches to its AVX2/FMA kernel when both are true)",
        std::arch::is_x86_feature_detected!("avx2"),
        std::arch::is_x86_feature_detected!("fma")
    );
    println!("RAYON_NUM_THREADS={}", std::env::var("RAYON_NUM_THREADS").unwrap());
    println!("FLOP/row = 2*(9*512 + 512*256 + 256*5) = {FLOP_PER_ROW}");

    let w = random_weights(0x5EED);
    let mut ours = Ours::new(&w);
    let candle = Candle::new(&w).expect("candle weights");
    let max_batch = *BATCHES.iter().max().unwrap();
    let (idx, dense) = observations(max_batch, 7);
    let counts = vec![ONES as u32; max_batch];

    // Correctness at every batch size: each variant vs the f64 reference, and vs ours.
    println!("\ncorrectness (max |diff| of logits / values; tolerance 1e-4):");
    let mut ok = true;
    for &b in &BATCHES {
        let (rl, rv) = reference(&w, &dense, b);
        let mut run = |name: &str, f: &mut dyn FnMut(&mut [f32], &mut [f32])| -> (Vec<f32>, Vec<f32>) {
            let (mut l, mut v) = (vec![f32::NAN; b * ACTIONS], vec![f32::NAN; b]);
            f(&mut l, &mut v);
            let (dl, dv) = (max_diff(&l, &rl), max_diff(&v, &rv));
            let pass = dl <= 1e-4 && dv <= 1e-4;
            ok &= pass;
            println!("  batch {b:>3} {name:<28} vs f64 reference: {dl:.2e} / {dv:.2e} {}", if pass { "ok" } else { "FAIL" });
            (l, v)
        };
        let (ol, ov) = run("ours sparse", &mut |l, v| ours.sparse(&idx, &counts, b, l, v));
        run("ours dense", &mut |l, v| ours.dense(&dense, b, l, v));
        for (name, res) in [
            ("candle dense (W^T stored)", run("candle dense (W^T stored)", &mut |l, v| candle.dense(&dense, b, l, v).unwrap())),
            ("candle dense (Linear-style)", run("candle dense (Linear-style)", &mut |l, v| candle.dense_linear_style(&dense, b, l, v).unwrap())),
            ("candle bag (index_select)", run("candle bag (index_select)", &mut |l, v| candle.bag(&idx, b, l, v).unwrap())),
        ]
        .into_iter()
        .chain(tract_checks(&w, b, &idx, &dense, &mut run))
        {
            let (dl, dv) = (max_diff(&res.0, &ol), max_diff(&res.1, &ov));
            let pass = dl <= 1e-4 && dv <= 1e-4;
            ok &= pass;
            println!("  batch {b:>3} {name:<28} vs ours sparse:     {dl:.2e} / {dv:.2e} {}", if pass { "ok" } else { "FAIL" });
        }
    }
    println!("correctness: {}", if ok { "PASS" } else { "FAIL" });

    println!("\nthroughput, single thread: {reps} rounds, each timing every variant for {window:?} in turn \
              (after {warm:?} warm-up each); median round:");
    println!("| batch | variant | rows/s | GFLOP/s | vs ours sparse |");
    println!("|---:|---|---:|---:|---:|");
    for &b in &BATCHES {
        // Each variant owns its output buffers (and ours has one policy per variant), so
        // all the closures can live side by side.
        let bufs = || (vec![0.0f32; b * ACTIONS], vec![0.0f32; b]);
        let (idx, dense, counts, candle) = (&idx, &dense, &counts, &candle);
        let mut names: Vec<&str> = Vec::new();
        let mut fs: Vec<Box<dyn FnMut() + '_>> = Vec::new();
        let (mut o1, (mut l, mut v)) = (Ours::new(&w), bufs());
        names.push("ours sparse (embedding bag)");
        fs.push(Box::new(move || o1.sparse(idx, counts, b, &mut l, &mut v)));
        let (mut o2, (mut l, mut v)) = (Ours::new(&w), bufs());
        names.push("ours dense");
        fs.push(Box::new(move || o2.dense(dense, b, &mut l, &mut v)));
        let (mut l, mut v) = bufs();
        names.push("candle dense (W^T stored)");
        fs.push(Box::new(move || candle.dense(dense, b, &mut l, &mut v).unwrap()));
        let (mut l, mut v) = bufs();
        names.push("candle dense (Linear-style)");
        fs.push(Box::new(move || candle.dense_linear_style(dense, b, &mut l, &mut v).unwrap()));
        let (mut l, mut v) = bufs();
        names.push("candle bag (index_select+sum)");
        fs.push(Box::new(move || candle.bag(idx, b, &mut l, &mut v).unwrap()));
        #[cfg(feature = "tract")]
        {
            let (mut td, (mut l, mut v)) = (tract_net::Tract::new(&w, b, false).expect("tract dense model"), bufs());
            names.push("tract dense (EinSum)");
            fs.push(Box::new(move || td.forward_dense(dense, &mut l, &mut v).unwrap()));
            let (mut ts, (mut l, mut v)) = (tract_net::Tract::new(&w, b, true).expect("tract bag model"), bufs());
            names.push("tract bag (Gather+Sum)");
            fs.push(Box::new(move || ts.forward_sparse(idx, &mut l, &mut v).unwrap()));
        }
        let rates: Vec<(&str, f64)> = names.into_iter().zip(time_interleaved(&mut fs, warm, window, reps)).collect();
        let base = rates[0].1 * b as f64;
        for (name, calls) in rates {
            let rows = calls * b as f64;
            println!("| {b} | {name} | {rows:.0} | {:.2} | {:.2}x |", rows * FLOP_PER_ROW / 1e9, rows / base);
        }
    }
    if !ok {
        std::process::exit(1);
    }
}
