//! Matrix products for training: `C = A·B`, started from zero, a bias row or C itself.
//!
//! Operands are read through strides ([`Mat`]), so the transposes that backward passes
//! need (`xᵀ·dy` for weight gradients, `dy·Wᵀ` for input gradients) cost no copies: both
//! operands are packed into cache-sized panels first, in the order the kernel reads them.
//! The kernel computes one `MR × NR` tile of C in registers over a block of `KC` inner
//! indices. On x86-64 it is an AVX-512 kernel (8 × 32) or an AVX2 kernel (6 × 16) picked at
//! run time; elsewhere (wasm) a portable one. Rows of C are split between the pool's
//! threads ([`super::pool`]), each with its own packing buffers kept from call to call, so
//! threads share nothing they write. Products with few columns or inner indices skip the
//! tiles (see [`NARROW`]).

use super::pool::{self, Disjoint};
use super::wide::wide;
use std::cell::RefCell;

/// A read-only matrix view: element `(i, j)` is `data[i * rs + j * cs]`.
#[derive(Clone, Copy, Debug)]
pub struct Mat<'a> {
    pub data: &'a [f32],
    pub rs: usize,
    pub cs: usize,
}

impl<'a> Mat<'a> {
    /// A row-major matrix with `cols` columns.
    pub fn rows(data: &'a [f32], cols: usize) -> Mat<'a> {
        Mat { data, rs: cols, cs: 1 }
    }

    /// The transpose, as a view.
    pub fn t(self) -> Mat<'a> {
        Mat { data: self.data, rs: self.cs, cs: self.rs }
    }

    #[inline(always)]
    fn at(&self, i: usize, j: usize) -> f32 {
        self.data[i * self.rs + j * self.cs]
    }
}

/// What C holds before the product is added.
#[derive(Clone, Copy, Debug)]
pub enum Start<'a> {
    /// `C = A·B`
    Zero,
    /// `C = A·B + bias` (one bias per column)
    Bias(&'a [f32]),
    /// `C += A·B`
    Add,
}

/// Inner indices per packed block, per kernel: AVX-512's 8 × 256 block of A and 256 × 32
/// panel of B (40 kB) stay in the first cache level (256 measured faster than 128 and 512 on
/// the Xeon); AVX2's 6 × 512 and 512 × 16 (44 kB) halve the passes over C that the blocks
/// make, and measured faster than 256 on Zen 3 (the panel streams from L2 well enough).
const KC: usize = 256;
#[cfg(target_arch = "x86_64")]
const KC_AVX2: usize = 512;

/// Rows of A packed at a time: a block of about 128 × 256 (128 kB) stays in L2. Blocks are
/// whole micro-panels (126 rows for 6-row tiles), so that only the matrix's last one has a
/// partial tile.
const MC: usize = 128;

/// Below this many columns (or inner indices) a product takes the narrow path instead of
/// the tiles, whose 8 to 32 columns would be mostly padding (a policy head's few logits, a
/// value head's one column, and the input gradient through them).
const NARROW: usize = 8;

/// `C[m × n] (row-major) = start + A[m × k] · B[k × n]`, over `threads` threads.
#[allow(clippy::too_many_arguments)]
pub fn gemm(m: usize, n: usize, k: usize, a: Mat<'_>, b: Mat<'_>, c: &mut [f32], start: Start<'_>, threads: usize) {
    run_gemm(m, n, k, a, b, c, start, threads, None, None);
}

/// Element-wise work fused into a product: `then(first, rows)` on each block of C's rows as
/// soon as it is final (while it is still in cache), `first` the index of its first row.
pub type Then<'a> = &'a (dyn Fn(usize, &mut [f32]) + Sync);

/// [`gemm`], then `then` on every row of C (each row once, in blocks).
#[allow(clippy::too_many_arguments)]
pub fn gemm_then(m: usize, n: usize, k: usize, a: Mat<'_>, b: Mat<'_>, c: &mut [f32], start: Start<'_>,
                 threads: usize, then: Then<'_>) {
    run_gemm(m, n, k, a, b, c, start, threads, Some(then), None);
}

/// [`gemm`], also adding B's column sums to `sums` (`n` values): a weight gradient `xᵀ·dy`
/// and its bias's gradient, the sums of dy's columns, made while dy is packed. Each column
/// adds up in row order, whatever the thread count.
#[allow(clippy::too_many_arguments)]
pub fn gemm_sums(m: usize, n: usize, k: usize, a: Mat<'_>, b: Mat<'_>, c: &mut [f32], start: Start<'_>,
                 threads: usize, sums: &mut [f32]) {
    run_gemm(m, n, k, a, b, c, start, threads, None, Some(&mut sums[..n]));
}

#[allow(clippy::too_many_arguments)]
fn run_gemm(m: usize, n: usize, k: usize, a: Mat<'_>, b: Mat<'_>, c: &mut [f32], start: Start<'_>, threads: usize,
            then: Option<Then<'_>>, sums: Option<&mut [f32]>) {
    assert!(c.len() >= m * n, "gemm: C holds {} values, not {m} x {n}", c.len());
    if n == 0 {
        return;
    }
    let kernel = Kernel::detect();
    // With no rows of C, B's column sums are still made, by the narrow path's packing.
    let narrow = n <= NARROW || k <= NARROW || m == 0;
    let mut sums = sums;
    let b_small = if narrow { pack_small(n, k, b, sums.take()) } else { Vec::new() };
    if m == 0 {
        return;
    }
    // Enough work per task to pay for waking a thread (a few µs), and whole tiles of rows.
    let align = if narrow { 1 } else { kernel.mr() };
    let tasks = threads.max(1).min((m * n * k.max(1) / 250_000).max(1)).min(m.div_ceil(align));
    let c = Disjoint::new(&mut c[..m * n]);
    // Every task packs all of B; task t sums the columns of its share of B's panels.
    let panels = n.div_ceil(kernel.nr());
    let sums = sums.map(Disjoint::new);
    pool::for_each(tasks, tasks, |t| {
        let (r0, r1) = pool::part(m, tasks, align, t);
        // SAFETY: tasks' row ranges are disjoint.
        let mine = unsafe { c.part(r0 * n, r1 * n) };
        let a_part = Mat { data: &a.data[r0 * a.rs..], rs: a.rs, cs: a.cs };
        if narrow {
            // In blocks of about 32 kB of C, each finished (`then`) while it is in cache.
            let rows = (8192 / n).max(1);
            for (blk, part) in mine.chunks_mut(rows * n).enumerate() {
                let first = blk * rows;
                let a_blk = Mat { data: &a_part.data[first * a.rs..], rs: a.rs, cs: a.cs };
                wide!(narrow_product(part.len() / n, n, k, a_blk, &b_small, part, start));
                if let Some(then) = then {
                    then(r0 + first, part);
                }
            }
        } else {
            let sums = sums.as_ref().map(|s| {
                let (p0, p1) = pool::part(panels, tasks, 1, t);
                let nr = kernel.nr();
                // SAFETY: tasks' panel ranges, so their column ranges, are disjoint.
                (p0, unsafe { s.part((p0 * nr).min(n), (p1 * nr).min(n)) })
            });
            kernel.run(r1 - r0, n, k, a_part, b, mine, start, then.map(|f| (f, r0)), sums);
        }
    });
}

/// B for the narrow path: `[n][k]` (B's columns, for dot products with A's rows) when `n` is
/// the narrow side, else `[k][n]` (B's rows, to add up along C's rows); B's column sums
/// added to `sums`, if asked.
fn pack_small(n: usize, k: usize, b: Mat<'_>, sums: Option<&mut [f32]>) -> Vec<f32> {
    if let Some(sums) = sums {
        let mut own = vec![0.0f32; n];
        for kk in 0..k {
            own.iter_mut().enumerate().for_each(|(j, s)| *s += b.at(kk, j));
        }
        sums.iter_mut().zip(&own).for_each(|(s, o)| *s += o);
    }
    if n <= NARROW {
        (0..n * k).map(|x| b.at(x % k, x / k)).collect()
    } else {
        (0..k * n).map(|x| b.at(x / n, x % n)).collect()
    }
}

/// `C = start + A·B` for a narrow product on one task's rows, `packed` from [`pack_small`]:
/// with few columns, each value is a dot product of A's row and B's column (or, when A is a
/// transpose, each inner index adds a scaled row of A's storage to C's columns); with few
/// inner indices, each run of a row of C adds up `k` scaled runs of B's rows in registers.
#[inline(always)]
fn narrow_product(m: usize, n: usize, k: usize, a: Mat<'_>, packed: &[f32], c: &mut [f32], start: Start<'_>) {
    match start {
        Start::Zero => c.fill(0.0),
        Start::Bias(bias) => c.chunks_mut(n).for_each(|row| row.copy_from_slice(&bias[..n])),
        Start::Add => {}
    }
    if n > NARROW {
        // Each run of `LANES` values of a row adds up its `k` products in registers.
        let whole = n / LANES * LANES;
        for (i, row) in c.chunks_mut(n).enumerate() {
            for j0 in (0..whole).step_by(LANES) {
                let mut acc = [0.0f32; LANES];
                for kk in 0..k {
                    let av = a.at(i, kk);
                    let bv: &[f32; LANES] = packed[kk * n + j0..][..LANES].try_into().unwrap();
                    for l in 0..LANES {
                        acc[l] += av * bv[l];
                    }
                }
                row[j0..j0 + LANES].iter_mut().zip(&acc).for_each(|(o, s)| *o += s);
            }
            for (j, o) in row.iter_mut().enumerate().skip(whole) {
                *o += (0..k).map(|kk| a.at(i, kk) * packed[kk * n + j]).sum::<f32>();
            }
        }
    } else if a.cs == 1 {
        match n {
            1 => dots::<1>(k, a, packed, c),
            2 => dots::<2>(k, a, packed, c),
            3 => dots::<3>(k, a, packed, c),
            4 => dots::<4>(k, a, packed, c),
            5 => dots::<5>(k, a, packed, c),
            6 => dots::<6>(k, a, packed, c),
            7 => dots::<7>(k, a, packed, c),
            _ => dots::<8>(k, a, packed, c),
        }
    } else if a.rs == 1 {
        // A's column kk is the contiguous run `a.data[kk * a.cs..][..m]`.
        let mut cols = vec![0.0f32; n * m];
        for kk in 0..k {
            let ac = &a.data[kk * a.cs..][..m];
            for j in 0..n {
                let bv = packed[j * k + kk];
                for (o, av) in cols[j * m..(j + 1) * m].iter_mut().zip(ac) {
                    *o += av * bv;
                }
            }
        }
        for (i, row) in c.chunks_mut(n).enumerate() {
            for (j, o) in row.iter_mut().enumerate() {
                *o += cols[j * m + i];
            }
        }
    } else {
        for (i, row) in c.chunks_mut(n).enumerate() {
            for (j, o) in row.iter_mut().enumerate() {
                *o += (0..k).map(|kk| a.at(i, kk) * packed[j * k + kk]).sum::<f32>();
            }
        }
    }
}

/// Lanes of the narrow path's partial sums: two AVX2 vectors, one AVX-512 vector.
const LANES: usize = 16;

/// `c[i][j] += A's row i · B's column j` for `N` columns (`packed`: `[N][k]`): each row of
/// A is read once, `LANES` values at a time, into `N × LANES` partial sums.
#[inline(always)]
fn dots<const N: usize>(k: usize, a: Mat<'_>, packed: &[f32], c: &mut [f32]) {
    let whole = k / LANES * LANES;
    let cols: [&[f32]; N] = std::array::from_fn(|j| &packed[j * k..(j + 1) * k]);
    for (i, row) in c.chunks_exact_mut(N).enumerate() {
        let ar = &a.data[i * a.rs..][..k];
        let mut acc = [[0.0f32; LANES]; N];
        for k0 in (0..whole).step_by(LANES) {
            let x: &[f32; LANES] = ar[k0..k0 + LANES].try_into().unwrap();
            for (acc, col) in acc.iter_mut().zip(&cols) {
                let y: &[f32; LANES] = col[k0..k0 + LANES].try_into().unwrap();
                for l in 0..LANES {
                    acc[l] += x[l] * y[l];
                }
            }
        }
        for ((o, acc), col) in row.iter_mut().zip(&mut acc).zip(&cols) {
            let tail: f32 = ar[whole..].iter().zip(&col[whole..]).map(|(a, b)| a * b).sum();
            let mut width = LANES;
            while width > 1 {
                width /= 2;
                for l in 0..width {
                    acc[l] += acc[l + width];
                }
            }
            *o += acc[0] + tail;
        }
    }
}

#[derive(Clone, Copy, Debug)]
enum Kernel {
    #[cfg(target_arch = "x86_64")]
    Avx512,
    #[cfg(target_arch = "x86_64")]
    Avx2,
    #[cfg(all(target_family = "wasm", target_feature = "simd128"))]
    Simd128,
    Portable,
}

impl Kernel {
    fn detect() -> Kernel {
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx512f") {
                return Kernel::Avx512;
            }
            if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
                return Kernel::Avx2;
            }
        }
        #[cfg(all(target_family = "wasm", target_feature = "simd128"))]
        return Kernel::Simd128;
        #[allow(unreachable_code)]
        Kernel::Portable
    }

    fn nr(self) -> usize {
        match self {
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx512 => 32,
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx2 => 16,
            #[cfg(all(target_family = "wasm", target_feature = "simd128"))]
            Kernel::Simd128 => 8,
            Kernel::Portable => 16,
        }
    }

    fn mr(self) -> usize {
        match self {
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx512 => 8,
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx2 => 6,
            #[cfg(all(target_family = "wasm", target_feature = "simd128"))]
            Kernel::Simd128 => 6,
            Kernel::Portable => 4,
        }
    }

    /// The product on one task's rows; `sums`: the first panel whose columns this task sums,
    /// and those columns' sums.
    #[allow(clippy::too_many_arguments)]
    fn run(self, m: usize, n: usize, k: usize, a: Mat<'_>, b: Mat<'_>, c: &mut [f32], start: Start<'_>,
           then: Option<(Then<'_>, usize)>, sums: Option<(usize, &mut [f32])>) {
        match self {
            // SAFETY: `detect` saw the CPU features these kernels are compiled for.
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx512 => blocked::<8, 32, KC>(m, n, k, a, b, c, start, then, sums, |kc, ap, bp, out| unsafe {
                tile_avx512(kc, ap, bp, out)
            }),
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx2 => blocked::<6, 16, KC_AVX2>(m, n, k, a, b, c, start, then, sums, |kc, ap, bp, out| unsafe {
                tile_avx2(kc, ap, bp, out)
            }),
            #[cfg(all(target_family = "wasm", target_feature = "simd128"))]
            Kernel::Simd128 => blocked::<6, 8, KC>(m, n, k, a, b, c, start, then, sums, tile_simd128),
            Kernel::Portable => blocked::<4, 16, KC>(m, n, k, a, b, c, start, then, sums, tile_portable::<4, 16>),
        }
    }
}

/// Where a tile kernel puts its `MR × NR` product: straight into C (rows `ld` apart; added to
/// what C holds, or `set` in place of it, plus the `bias` row of `NR` values if any) when the
/// tile is whole, else into a scratch tile (set) that the caller adds to C's edge.
enum Out<'a> {
    C { c: &'a mut [f32], ld: usize, set: bool, bias: Option<&'a [f32]> },
    Tile(&'a mut [f32]),
}

/// The blocked product for one thread's rows: for each block of `KC` inner indices, pack
/// B's panels once, then each `MR`-row block of A, and run the tile kernel on every pair.
#[allow(clippy::too_many_arguments)]
fn blocked<const MR: usize, const NR: usize, const KC: usize>(
    m: usize, n: usize, k: usize, a: Mat<'_>, b: Mat<'_>, c: &mut [f32], start: Start<'_>,
    then: Option<(Then<'_>, usize)>, sums: Option<(usize, &mut [f32])>,
    tile_fn: impl Fn(usize, &[f32], &[f32], Out<'_>)) {
    thread_local! {
        /// Packed panels of B and blocks of A, kept for the thread's next product.
        static PACKS: RefCell<(Vec<f32>, Vec<f32>)> = const { RefCell::new((Vec::new(), Vec::new())) };
    }
    PACKS.with(|packs| match packs.try_borrow_mut() {
        Ok(mut packs) => {
            let (bpack, apack) = &mut *packs;
            blocked_in::<MR, NR, KC>(m, n, k, a, b, c, start, then, sums, &tile_fn, bpack, apack)
        }
        Err(_) => blocked_in::<MR, NR, KC>(m, n, k, a, b, c, start, then, sums, &tile_fn, &mut Vec::new(), &mut Vec::new()),
    });
}

#[allow(clippy::too_many_arguments)]
fn blocked_in<const MR: usize, const NR: usize, const KC: usize>(
    m: usize, n: usize, k: usize, a: Mat<'_>, b: Mat<'_>, c: &mut [f32], start: Start<'_>,
    then: Option<(Then<'_>, usize)>, sums: Option<(usize, &mut [f32])>,
    tile_fn: &impl Fn(usize, &[f32], &[f32], Out<'_>), bpack: &mut Vec<f32>, apack: &mut Vec<f32>) {
    // A zero or bias start is the first block's products set in place, plus the bias (no
    // pass over C first).
    match start {
        Start::Zero if k == 0 => c[..m * n].fill(0.0),
        Start::Bias(bias) if k == 0 => c[..m * n].chunks_mut(n).for_each(|row| row.copy_from_slice(&bias[..n])),
        _ => {}
    }
    if k == 0 {
        if let Some((then, first)) = then {
            then(first, &mut c[..m * n]);
        }
        return;
    }
    // Column sums of the panels this task sums, from zero, added to the caller's at the end.
    let (sum_from, mut own_sums) = match &sums {
        Some((p0, s)) => (*p0, vec![0.0f32; s.len()]),
        None => (0, Vec::new()),
    };
    let panels = n.div_ceil(NR);
    let depth = KC.min(k.max(1));
    grow(bpack, panels * NR * depth);
    let mc = MC / MR * MR;
    grow(apack, mc * depth);
    let mut tile = [0.0f32; 8 * 32];
    let tile = &mut tile[..MR * NR];
    for k0 in (0..k).step_by(KC) {
        let kc = KC.min(k - k0);
        let set = k0 == 0 && !matches!(start, Start::Add);
        let bias = match start {
            Start::Bias(bias) if k0 == 0 => Some(bias),
            _ => None,
        };
        for p in 0..panels {
            let cols = NR.min(n - p * NR);
            let packed = &mut bpack[p * NR * kc..(p + 1) * NR * kc];
            pack_b::<NR>(b, k0, kc, p * NR, cols, packed);
            let j = (p * NR).wrapping_sub(sum_from * NR);
            if j < own_sums.len() {
                let end = (j + cols).min(own_sums.len());
                let own = &mut own_sums[j..end];
                for row in packed.chunks_exact(NR) {
                    own.iter_mut().zip(row).for_each(|(s, v)| *s += v);
                }
            }
        }
        // A block of MC rows stays in L2 while each panel of B, in L1, meets all its
        // MR-row micro-panels.
        for m0 in (0..m).step_by(mc) {
            let block = mc.min(m - m0);
            let micro = block.div_ceil(MR);
            let mut packed = 0;
            if a.rs == 1 {
                // A transposed: each inner index's run of the block's rows is contiguous in
                // memory, read once, in order (whole micro-panels; a partial one is left to
                // `pack_a`).
                packed = block / MR;
                for kk in 0..kc {
                    let run = &a.data[(k0 + kk) * a.cs + m0..][..packed * MR];
                    for (u, src) in run.chunks_exact(MR).enumerate() {
                        let src: &[f32; MR] = src.try_into().unwrap();
                        apack[u * MR * kc + kk * MR..][..MR].copy_from_slice(src);
                    }
                }
            }
            for u in packed..micro {
                let rows = MR.min(block - u * MR);
                pack_a::<MR>(a, m0 + u * MR, rows, k0, kc, &mut apack[u * MR * kc..(u + 1) * MR * kc]);
            }
            for p in 0..panels {
                let cols = NR.min(n - p * NR);
                let bp = &bpack[p * NR * kc..(p + 1) * NR * kc];
                for u in 0..micro {
                    let (i0, rows) = (m0 + u * MR, MR.min(block - u * MR));
                    let ap = &apack[u * MR * kc..(u + 1) * MR * kc];
                    let bias = bias.map(|b| &b[p * NR..p * NR + cols]);
                    if rows == MR && cols == NR {
                        let c = &mut c[i0 * n + p * NR..(i0 + MR - 1) * n + p * NR + NR];
                        tile_fn(kc, ap, bp, Out::C { c, ld: n, set, bias });
                        continue;
                    }
                    tile_fn(kc, ap, bp, Out::Tile(tile));
                    for r in 0..rows {
                        let dst = &mut c[(i0 + r) * n + p * NR..][..cols];
                        let src = &tile[r * NR..r * NR + cols];
                        if let Some(bias) = bias {
                            dst.iter_mut().zip(src).zip(bias).for_each(|((d, t), b)| *d = t + b);
                        } else if set {
                            dst.copy_from_slice(src);
                        } else {
                            dst.iter_mut().zip(src).for_each(|(d, t)| *d += t);
                        }
                    }
                }
            }
            match then {
                Some((then, first)) if k0 + kc == k => then(first + m0, &mut c[m0 * n..(m0 + block) * n]),
                _ => {}
            }
        }
    }
    if let Some((_, s)) = sums {
        s.iter_mut().zip(&own_sums).for_each(|(s, o)| *s += o);
    }
}

/// Grow `v` to hold at least `len` values (what it held is overwritten before it is read).
fn grow(v: &mut Vec<f32>, len: usize) {
    if v.len() < len {
        v.resize(len, 0.0);
    }
}

/// Rows `i0..i0 + rows` and inner indices `k0..k0 + kc` of A, as `[kc][MR]` (rows past the
/// edge are zero). Contiguous runs of A are read as slices.
fn pack_a<const MR: usize>(a: Mat<'_>, i0: usize, rows: usize, k0: usize, kc: usize, out: &mut [f32]) {
    if rows < MR {
        out.fill(0.0);
    }
    if a.cs == 1 && rows == MR {
        let start: [usize; MR] = std::array::from_fn(|r| (i0 + r) * a.rs + k0);
        for (kk, col) in out[..kc * MR].chunks_exact_mut(MR).enumerate() {
            for (o, s) in col.iter_mut().zip(&start) {
                *o = a.data[s + kk];
            }
        }
    } else if a.cs == 1 {
        for r in 0..rows {
            let row = &a.data[(i0 + r) * a.rs + k0..][..kc];
            for (kk, &v) in row.iter().enumerate() {
                out[kk * MR + r] = v;
            }
        }
    } else if a.rs == 1 && rows == MR {
        for kk in 0..kc {
            let src: &[f32; MR] = a.data[(k0 + kk) * a.cs + i0..][..MR].try_into().unwrap();
            out[kk * MR..kk * MR + MR].copy_from_slice(src);
        }
    } else if a.rs == 1 {
        for kk in 0..kc {
            out[kk * MR..kk * MR + rows].copy_from_slice(&a.data[(k0 + kk) * a.cs + i0..][..rows]);
        }
    } else {
        for kk in 0..kc {
            for r in 0..rows {
                out[kk * MR + r] = a.at(i0 + r, k0 + kk);
            }
        }
    }
}

/// Inner indices `k0..k0 + kc` and columns `j0..j0 + cols` of B, as `[kc][NR]` (columns
/// past the edge are zero).
fn pack_b<const NR: usize>(b: Mat<'_>, k0: usize, kc: usize, j0: usize, cols: usize, out: &mut [f32]) {
    if cols < NR {
        out.fill(0.0);
    }
    if b.cs == 1 && cols == NR {
        for kk in 0..kc {
            let src: &[f32; NR] = b.data[(k0 + kk) * b.rs + j0..][..NR].try_into().unwrap();
            out[kk * NR..kk * NR + NR].copy_from_slice(src);
        }
    } else if b.cs == 1 {
        for kk in 0..kc {
            out[kk * NR..kk * NR + cols].copy_from_slice(&b.data[(k0 + kk) * b.rs + j0..][..cols]);
        }
    } else if b.rs == 1 {
        for j in 0..cols {
            let col = &b.data[(j0 + j) * b.cs + k0..][..kc];
            for (kk, &v) in col.iter().enumerate() {
                out[kk * NR + j] = v;
            }
        }
    } else {
        for kk in 0..kc {
            for j in 0..cols {
                out[kk * NR + j] = b.at(k0 + kk, j0 + j);
            }
        }
    }
}

/// `out[MR × NR] += Σ_kk apack[kk][r] · bpack[kk][j]`.
fn tile_portable<const MR: usize, const NR: usize>(kc: usize, ap: &[f32], bp: &[f32], out: Out<'_>) {
    let mut acc = [[0.0f32; NR]; MR];
    for kk in 0..kc {
        let brow = &bp[kk * NR..(kk + 1) * NR];
        for r in 0..MR {
            let av = ap[kk * MR + r];
            for j in 0..NR {
                acc[r][j] += av * brow[j];
            }
        }
    }
    let (dst, ld, set, bias) = match out {
        Out::C { c, ld, set, bias } => (c, ld, set, bias),
        Out::Tile(t) => (t, NR, true, None),
    };
    for (r, row) in acc.iter().enumerate() {
        for (j, (d, v)) in dst[r * ld..r * ld + NR].iter_mut().zip(row).enumerate() {
            let v = bias.map_or(*v, |b| v + b[j]);
            *d = if set { v } else { *d + v };
        }
    }
}

/// Put register rows into C (or the scratch tile), added or set: row `r`'s `W` vectors go to `dst + r * ld`.
#[cfg(target_arch = "x86_64")]
macro_rules! add_rows {
    ($acc:expr, $out:expr, $nr:expr, $load:ident, $add:ident, $store:ident, $lanes:expr) => {{
        let (dst, ld, set, bias) = match $out {
            Out::C { c, ld, set, bias } => (c.as_mut_ptr(), ld, set, bias),
            Out::Tile(t) => (t.as_mut_ptr(), $nr, true, None),
        };
        for (r, row) in $acc.iter().enumerate() {
            for (w, v) in row.iter().enumerate() {
                let p = dst.add(r * ld + w * $lanes);
                let v = match bias {
                    Some(b) => $add($load(b.as_ptr().add(w * $lanes)), *v),
                    None => *v,
                };
                $store(p, if set { v } else { $add($load(p), v) });
            }
        }
    }};
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn tile_avx512(kc: usize, ap: &[f32], bp: &[f32], out: Out<'_>) {
    use std::arch::x86_64::*;
    debug_assert!(ap.len() >= kc * 8 && bp.len() >= kc * 32);
    let (a, b) = (ap.as_ptr(), bp.as_ptr());
    let mut acc = [[_mm512_setzero_ps(); 2]; 8];
    for kk in 0..kc {
        let b0 = _mm512_loadu_ps(b.add(kk * 32));
        let b1 = _mm512_loadu_ps(b.add(kk * 32 + 16));
        for (r, row) in acc.iter_mut().enumerate() {
            let av = _mm512_set1_ps(*a.add(kk * 8 + r));
            row[0] = _mm512_fmadd_ps(av, b0, row[0]);
            row[1] = _mm512_fmadd_ps(av, b1, row[1]);
        }
    }
    add_rows!(acc, out, 32, _mm512_loadu_ps, _mm512_add_ps, _mm512_storeu_ps, 16);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn tile_avx2(kc: usize, ap: &[f32], bp: &[f32], out: Out<'_>) {
    use std::arch::x86_64::*;
    debug_assert!(ap.len() >= kc * 6 && bp.len() >= kc * 16);
    let (a, b) = (ap.as_ptr(), bp.as_ptr());
    let mut acc = [[_mm256_setzero_ps(); 2]; 6];
    for kk in 0..kc {
        let b0 = _mm256_loadu_ps(b.add(kk * 16));
        let b1 = _mm256_loadu_ps(b.add(kk * 16 + 8));
        for (r, row) in acc.iter_mut().enumerate() {
            let av = _mm256_broadcast_ss(&*a.add(kk * 6 + r));
            row[0] = _mm256_fmadd_ps(av, b0, row[0]);
            row[1] = _mm256_fmadd_ps(av, b1, row[1]);
        }
    }
    add_rows!(acc, out, 16, _mm256_loadu_ps, _mm256_add_ps, _mm256_storeu_ps, 8);
}

/// The 6 × 8 tile in wasm's 128-bit vectors: 12 accumulators, two B vectors and a broadcast
/// fit the 16 vector registers engines map them to.
#[cfg(all(target_family = "wasm", target_feature = "simd128"))]
fn tile_simd128(kc: usize, ap: &[f32], bp: &[f32], out: Out<'_>) {
    use std::arch::wasm32::*;
    assert!(ap.len() >= kc * 6 && bp.len() >= kc * 8, "the packed panels hold kc rows");
    let mut acc = [[f32x4_splat(0.0); 2]; 6];
    for kk in 0..kc {
        // SAFETY: `kk * 8 + 8 <= bp.len()` (asserted above); v128 loads may be unaligned.
        let (b0, b1) = unsafe {
            let p = bp.as_ptr().add(kk * 8);
            (v128_load(p as *const v128), v128_load(p.add(4) as *const v128))
        };
        let a = &ap[kk * 6..kk * 6 + 6];
        for (row, &av) in acc.iter_mut().zip(a) {
            let av = f32x4_splat(av);
            row[0] = f32x4_add(row[0], f32x4_mul(av, b0));
            row[1] = f32x4_add(row[1], f32x4_mul(av, b1));
        }
    }
    let (dst, ld, set, bias) = match out {
        Out::C { c, ld, set, bias } => (c, ld, set, bias),
        Out::Tile(t) => (t, 8, true, None),
    };
    // SAFETY: a bias row holds 8 floats: two unaligned v128 loads.
    let bias = bias.map(|b| unsafe {
        let p = b[..8].as_ptr() as *const v128;
        [v128_load(p), v128_load(p.add(1))]
    });
    for (r, row) in acc.iter().enumerate() {
        let d = &mut dst[r * ld..r * ld + 8];
        let row = match bias {
            Some(b) => [f32x4_add(b[0], row[0]), f32x4_add(b[1], row[1])],
            None => *row,
        };
        // SAFETY: `d` holds 8 floats: two unaligned v128 loads and stores.
        unsafe {
            let p = d.as_mut_ptr() as *mut v128;
            if set {
                v128_store(p, row[0]);
                v128_store(p.add(1), row[1]);
            } else {
                v128_store(p, f32x4_add(v128_load(p), row[0]));
                v128_store(p.add(1), f32x4_add(v128_load(p.add(1)), row[1]));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Rng;

    fn naive(m: usize, n: usize, k: usize, a: Mat<'_>, b: Mat<'_>) -> Vec<f64> {
        let mut out = vec![0.0f64; m * n];
        for i in 0..m {
            for j in 0..n {
                out[i * n + j] = (0..k).map(|kk| a.at(i, kk) as f64 * b.at(kk, j) as f64).sum();
            }
        }
        out
    }

    #[test]
    fn every_kernel_layout_and_start_matches_the_naive_product() {
        let mut rng = Rng::new(3, 0);
        let kernels: Vec<Kernel> = {
            let mut ks = vec![Kernel::Portable];
            #[cfg(target_arch = "x86_64")]
            {
                if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
                    ks.push(Kernel::Avx2);
                }
                if std::arch::is_x86_feature_detected!("avx512f") {
                    ks.push(Kernel::Avx512);
                }
            }
            ks
        };
        for &(m, n, k) in &[(1usize, 1usize, 1usize), (7, 33, 5), (17, 40, 600), (64, 16, 1030), (3, 100, 2), (9, 1, 13),
                             (33, 5, 300), (60, 300, 5)] {
            let av: Vec<f32> = (0..m * k).map(|_| rng.uniform(-1.0, 1.0) as f32).collect();
            let bv: Vec<f32> = (0..k * n).map(|_| rng.uniform(-1.0, 1.0) as f32).collect();
            let bias: Vec<f32> = (0..n).map(|_| rng.uniform(-1.0, 1.0) as f32).collect();
            // A given row-major and as the transpose of a row-major k × m matrix; the same for B.
            let at: Vec<f32> = (0..k * m).map(|x| av[(x % m) * k + x / m]).collect();
            let bt: Vec<f32> = (0..n * k).map(|x| bv[(x % k) * n + x / k]).collect();
            let a_views = [Mat::rows(&av, k), Mat::rows(&at, m).t()];
            let b_views = [Mat::rows(&bv, n), Mat::rows(&bt, k).t()];
            let want = naive(m, n, k, a_views[0], b_views[0]);
            for &kernel in &kernels {
                for a in a_views {
                    for b in b_views {
                        for (start, offset) in [(Start::Zero, 0usize), (Start::Bias(&bias), 1), (Start::Add, 2)] {
                            let mut c: Vec<f32> = (0..m * n).map(|x| x as f32 * 0.01).collect();
                            let before = c.clone();
                            kernel.run(m, n, k, a, b, &mut c, start, None, None);
                            for i in 0..m * n {
                                let extra = match offset { 0 => 0.0, 1 => bias[i % n] as f64, _ => before[i] as f64 };
                                assert!((c[i] as f64 - want[i] - extra).abs() < 1e-3, "{kernel:?} {m}x{n}x{k} at {i}");
                            }
                        }
                    }
                }
            }
            // And through the threaded entry points, with B's column sums.
            let mut c = vec![0.0f32; m * n];
            gemm(m, n, k, a_views[1], b_views[1], &mut c, Start::Zero, 2);
            assert!(c.iter().zip(&want).all(|(x, y)| (*x as f64 - y).abs() < 1e-3));
            for b in b_views {
                let mut sums = bias.clone();
                gemm_sums(m, n, k, a_views[0], b, &mut c, Start::Zero, 2, &mut sums);
                assert!(c.iter().zip(&want).all(|(x, y)| (*x as f64 - y).abs() < 1e-3));
                for j in 0..n {
                    let col: f64 = (0..k).map(|kk| bv[kk * n + j] as f64).sum();
                    assert!((sums[j] as f64 - bias[j] as f64 - col).abs() < 1e-3, "{m}x{n}x{k} column {j}");
                }
            }
        }
    }

    #[test]
    fn threads_split_rows_without_changing_the_result() {
        let mut rng = Rng::new(4, 0);
        let (m, n, k) = (301, 77, 257);
        let av: Vec<f32> = (0..m * k).map(|_| rng.uniform(-1.0, 1.0) as f32).collect();
        let bv: Vec<f32> = (0..k * n).map(|_| rng.uniform(-1.0, 1.0) as f32).collect();
        let mut one = vec![0.0f32; m * n];
        let mut three = vec![0.0f32; m * n];
        let (mut sums1, mut sums3) = (vec![0.0f32; n], vec![0.0f32; n]);
        gemm_sums(m, n, k, Mat::rows(&av, k), Mat::rows(&bv, n), &mut one, Start::Zero, 1, &mut sums1);
        gemm_sums(m, n, k, Mat::rows(&av, k), Mat::rows(&bv, n), &mut three, Start::Zero, 3, &mut sums3);
        assert_eq!(one, three);
        assert_eq!(sums1, sums3);
    }
}
