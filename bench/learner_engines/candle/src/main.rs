//! candle-learner-bench: times full PPO learner steps of TwisteRL's default network in
//! candle on the CPU (the network, loss and FLOP count are in `learner.rs`).
//!
//! Usage: candle-learner-bench --batch B --obs O --nnz K --emb E --hidden H[,H2,...]
//!        --actions A --steps N --threads T [--input bag|onehot] [--seed S]
//! Runs 3 warm-up steps, then N timed steps; prints one JSON line with the median, and the
//! loss at the first step, after the warm-up (3 updates) and at the last timed step.

mod learner;

use std::time::Instant;

use candle_core::{Device, Result};
use learner::{Batch, Config, Input, Learner};

const WARMUP: usize = 3;

struct Args {
    config: Config,
    steps: usize,
    threads: usize,
    seed: u64,
}

fn parse_args() -> std::result::Result<Args, String> {
    let mut c = Config { batch: 1024, obs: 81, nnz: 9, emb: 512, hidden: vec![256], actions: 4, input: Input::Bag };
    let (mut steps, mut threads, mut seed) = (20, 1, 0u64);
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let mut it = argv.iter();
    while let Some(flag) = it.next() {
        let val = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
        let num = || val.parse::<usize>().map_err(|e| format!("{flag} {val}: {e}"));
        match flag.as_str() {
            "--batch" => c.batch = num()?,
            "--obs" => c.obs = num()?,
            "--nnz" => c.nnz = num()?,
            "--emb" => c.emb = num()?,
            "--actions" => c.actions = num()?,
            "--steps" => steps = num()?,
            "--threads" => threads = num()?,
            "--seed" => seed = num()? as u64,
            "--hidden" => {
                c.hidden = val
                    .split(',')
                    .map(|s| s.parse::<usize>().map_err(|e| format!("--hidden {val}: {e}")))
                    .collect::<std::result::Result<_, _>>()?
            }
            "--input" => {
                c.input = match val.as_str() {
                    "bag" => Input::Bag,
                    "onehot" => Input::OneHot,
                    _ => return Err(format!("--input must be bag or onehot, not {val}")),
                }
            }
            _ => return Err(format!("unknown flag {flag}")),
        }
    }
    let sizes = [c.batch, c.obs, c.nnz, c.emb, c.actions, steps, threads];
    if sizes.contains(&0) || c.hidden.is_empty() || c.hidden.contains(&0) || c.nnz > c.obs {
        return Err("sizes, --steps and --threads must be positive, and nnz <= obs".into());
    }
    Ok(Args { config: c, steps, threads, seed })
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        0.5 * (v[n / 2 - 1] + v[n / 2])
    }
}

fn run(a: &Args) -> Result<String> {
    let dev = Device::Cpu;
    let c = &a.config;
    let x = Batch::random(c, a.seed + 1, &dev)?;
    let mut learner = Learner::new(c.clone(), a.seed, &dev)?;
    let loss_first = learner.step(&x)?;
    for _ in 1..WARMUP {
        learner.step(&x)?;
    }
    let mut ms = Vec::with_capacity(a.steps);
    let (mut loss_warm, mut loss_last) = (0.0, 0.0);
    for i in 0..a.steps {
        let t = Instant::now();
        loss_last = learner.step(&x)?;
        ms.push(t.elapsed().as_secs_f64() * 1e3);
        if i == 0 {
            loss_warm = loss_last; // after the warm-up steps' updates
        }
    }
    let ms_min = ms.iter().cloned().fold(f64::INFINITY, f64::min);
    let ms_med = median(&mut ms);
    let flops = c.flops_per_step();
    let hidden = c.hidden.iter().map(|h| h.to_string()).collect::<Vec<_>>().join(",");
    let input = if c.input == Input::Bag { "bag" } else { "onehot" };
    Ok(format!(
        "{{\"engine\":\"candle\",\"input\":\"{input}\",\"batch\":{},\"obs\":{},\"nnz\":{},\"emb\":{},\
         \"hidden\":[{hidden}],\"actions\":{},\"threads\":{},\"steps\":{},\"ms_per_step\":{ms_med:.4},\
         \"ms_min\":{ms_min:.4},\"flops_per_step\":{flops:.0},\"gflops\":{:.3},\
         \"loss_first\":{loss_first:.6},\"loss_warm\":{loss_warm:.6},\"loss_last\":{loss_last:.6}}}",
        c.batch,
        c.obs,
        c.nnz,
        c.emb,
        c.actions,
        a.threads,
        a.steps,
        flops / (ms_med * 1e-3) / 1e9,
    ))
}

fn main() {
    let a = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("candle-learner-bench: {e}");
            std::process::exit(2);
        }
    };
    // candle's CPU matmul reads RAYON_NUM_THREADS for how many threads to split a gemm
    // over (1 = no parallelism) and runs it on rayon's global pool: both are set to T
    // before candle first asks.
    std::env::set_var("RAYON_NUM_THREADS", a.threads.to_string());
    rayon::ThreadPoolBuilder::new().num_threads(a.threads).build_global().ok();
    match run(&a) {
        Ok(line) => println!("{line}"),
        Err(e) => {
            eprintln!("candle-learner-bench: {e}");
            std::process::exit(1);
        }
    }
}
