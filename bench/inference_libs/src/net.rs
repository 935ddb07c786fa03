//! The benchmarked network and its inputs, shared by the native benchmark and the two
//! wasm size probes (included with `#[path]`, so it has no dependencies).
//!
//! The 8-puzzle policy of TwisteRL: a one-hot observation of 81 features (9 cells x 9
//! tiles, so exactly 9 ones per row), Linear 81->512 (an embedding bag on the indices of
//! the ones), ReLU, Linear 512->256, ReLU, policy head Linear 256->4, value head
//! Linear 256->1. Weights are in torch's layout, `[outputs, inputs]`.
#![allow(dead_code)]

pub const OBS: usize = 81;
pub const ONES: usize = 9;
pub const H1: usize = 512;
pub const H2: usize = 256;
pub const ACTIONS: usize = 4;

/// Nominal FLOPs per row: 2 * (9*512 bag adds + 512*256 + 256*(4+1)). Biases and ReLUs are
/// not counted, and the dense variants are charged the same (not 2*81*512 for layer 1), so
/// GFLOP/s is proportional to rows/s across variants.
pub const FLOP_PER_ROW: f64 = 2.0 * (ONES * H1 + H1 * H2 + H2 * (ACTIONS + 1)) as f64;

/// A tiny deterministic generator (splitmix64), so every build makes the same weights.
pub struct SplitMix(pub u64);

impl SplitMix {
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in [-a, a).
    pub fn sym(&mut self, a: f32) -> f32 {
        let u = (self.next_u64() >> 40) as f32 / (1u64 << 24) as f32;
        (2.0 * u - 1.0) * a
    }
}

/// Weights and biases in torch's layout.
pub struct Weights {
    pub w1: Vec<f32>, // [H1, OBS]
    pub b1: Vec<f32>,
    pub w2: Vec<f32>, // [H2, H1]
    pub b2: Vec<f32>,
    pub wp: Vec<f32>, // [ACTIONS, H2]
    pub bp: Vec<f32>,
    pub wv: Vec<f32>, // [1, H2]
    pub bv: Vec<f32>,
}

fn uniform(rng: &mut SplitMix, n: usize, fan_in: usize) -> Vec<f32> {
    let a = 1.0 / (fan_in as f32).sqrt(); // torch's default init range for Linear
    (0..n).map(|_| rng.sym(a)).collect()
}

/// Random weights, as torch initialises a fresh `nn.Linear`.
pub fn random_weights(seed: u64) -> Weights {
    let mut r = SplitMix(seed);
    Weights {
        w1: uniform(&mut r, H1 * OBS, OBS),
        b1: uniform(&mut r, H1, OBS),
        w2: uniform(&mut r, H2 * H1, H1),
        b2: uniform(&mut r, H2, H1),
        wp: uniform(&mut r, ACTIONS * H2, H2),
        bp: uniform(&mut r, ACTIONS, H2),
        wv: uniform(&mut r, H2, H2),
        bv: uniform(&mut r, 1, H2),
    }
}

/// `[rows, cols]` -> `[cols, rows]`, both row-major.
pub fn transpose(w: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    let mut t = vec![0.0f32; w.len()];
    for r in 0..rows {
        for c in 0..cols {
            t[c * rows + r] = w[r * cols + c];
        }
    }
    t
}

/// `batch` random 8-puzzle boards: row `b` has a one at `cell * 9 + tile` for each cell.
/// Returns the indices of the ones (`[batch, 9]`, TwisteRL's sparse format) and the same
/// observation as a dense 0/1 matrix (`[batch, 81]`).
pub fn observations(batch: usize, seed: u64) -> (Vec<u32>, Vec<f32>) {
    let mut r = SplitMix(seed);
    let mut idx = Vec::with_capacity(batch * ONES);
    let mut dense = vec![0.0f32; batch * OBS];
    for b in 0..batch {
        let mut tiles: [u32; ONES] = [0, 1, 2, 3, 4, 5, 6, 7, 8];
        for i in (1..ONES).rev() {
            let j = (r.next_u64() % (i as u64 + 1)) as usize;
            tiles.swap(i, j);
        }
        for (cell, &tile) in tiles.iter().enumerate() {
            let f = cell * ONES + tile as usize;
            idx.push(f as u32);
            dense[b * OBS + f] = 1.0;
        }
    }
    (idx, dense)
}
