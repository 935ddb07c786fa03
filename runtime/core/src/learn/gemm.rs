//! Matrix products for training: `C = A·B`, started from zero, a bias row or C itself.
//!
//! Operands are read through strides ([`Mat`]), so the transposes that backward passes
//! need (`xᵀ·dy` for weight gradients, `dy·Wᵀ` for input gradients) cost no copies: both
//! operands are packed into cache-sized panels first, in the order the kernel reads them.
//! The kernel computes one `MR × NR` tile of C in registers over a block of `KC` inner
//! indices. On x86-64 it is an AVX-512 kernel (8 × 32) or an AVX2 kernel (6 × 16) picked at
//! run time; elsewhere (wasm) a portable one. Rows of C are split between threads, each
//! with its own packing buffers, so threads share nothing they write.

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

/// Inner indices per packed block: an 8 × 256 block of A and a 256 × 32 panel of B (40 kB)
/// stay in the first cache level (256 measured faster than 128 and 512 here).
const KC: usize = 256;

/// Rows of A packed at a time: a 128 × 256 block (128 kB) stays in L2.
const MC: usize = 128;

/// `C[m × n] (row-major) = start + A[m × k] · B[k × n]`, over `threads` threads.
#[allow(clippy::too_many_arguments)]
pub fn gemm(m: usize, n: usize, k: usize, a: Mat<'_>, b: Mat<'_>, c: &mut [f32], start: Start<'_>, threads: usize) {
    assert!(c.len() >= m * n, "gemm: C holds {} values, not {m} x {n}", c.len());
    if m == 0 || n == 0 {
        return;
    }
    let kernel = Kernel::detect();
    let mr = kernel.mr();
    // Enough work per thread to pay for starting it (about 20 µs).
    let threads = threads.max(1).min((m * n * k / 2_000_000).max(1)).min(m.div_ceil(mr));
    // wasm32 without its threads proposal cannot start threads.
    #[cfg(target_family = "wasm")]
    let threads = threads.min(1);
    if threads == 1 {
        kernel.run(m, n, k, a, b, c, start);
        return;
    }
    let rows_per = m.div_ceil(threads).div_ceil(mr) * mr;
    std::thread::scope(|scope| {
        let mut rest = &mut c[..m * n];
        let mut first = 0;
        while first < m {
            let rows = rows_per.min(m - first);
            let (mine, tail) = rest.split_at_mut(rows * n);
            rest = tail;
            let a_part = Mat { data: &a.data[first * a.rs..], rs: a.rs, cs: a.cs };
            if first + rows >= m {
                kernel.run(rows, n, k, a_part, b, mine, start);
            } else {
                scope.spawn(move || kernel.run(rows, n, k, a_part, b, mine, start));
            }
            first += rows;
        }
    });
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

    #[allow(clippy::too_many_arguments)]
    fn run(self, m: usize, n: usize, k: usize, a: Mat<'_>, b: Mat<'_>, c: &mut [f32], start: Start<'_>) {
        match self {
            // SAFETY: `detect` saw the CPU features these kernels are compiled for.
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx512 => blocked::<8, 32>(m, n, k, a, b, c, start, |kc, ap, bp, out| unsafe {
                tile_avx512(kc, ap, bp, out)
            }),
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx2 => blocked::<6, 16>(m, n, k, a, b, c, start, |kc, ap, bp, out| unsafe {
                tile_avx2(kc, ap, bp, out)
            }),
            #[cfg(all(target_family = "wasm", target_feature = "simd128"))]
            Kernel::Simd128 => blocked::<6, 8>(m, n, k, a, b, c, start, tile_simd128),
            Kernel::Portable => blocked::<4, 16>(m, n, k, a, b, c, start, tile_portable::<4, 16>),
        }
    }
}

/// Where a tile kernel adds its `MR × NR` product: straight into C (rows `ld` apart) when
/// the tile is whole, else into a scratch tile that the caller adds to C's edge.
enum Out<'a> {
    C { c: &'a mut [f32], ld: usize },
    Tile(&'a mut [f32]),
}

/// The blocked product for one thread's rows: for each block of `KC` inner indices, pack
/// B's panels once, then each `MR`-row block of A, and run the tile kernel on every pair.
#[allow(clippy::too_many_arguments)]
fn blocked<const MR: usize, const NR: usize>(m: usize, n: usize, k: usize, a: Mat<'_>, b: Mat<'_>, c: &mut [f32],
                                              start: Start<'_>, tile_fn: impl Fn(usize, &[f32], &[f32], Out<'_>)) {
    match start {
        Start::Zero => c[..m * n].fill(0.0),
        Start::Bias(bias) => c[..m * n].chunks_mut(n).for_each(|row| row.copy_from_slice(&bias[..n])),
        Start::Add => {}
    }
    let panels = n.div_ceil(NR);
    let depth = KC.min(k.max(1));
    let mut bpack = vec![0.0f32; panels * NR * depth];
    let mut apack = vec![0.0f32; MC.div_ceil(MR) * MR * depth];
    let mut tile = vec![0.0f32; MR * NR];
    for k0 in (0..k).step_by(KC) {
        let kc = KC.min(k - k0);
        for p in 0..panels {
            let cols = NR.min(n - p * NR);
            pack_b::<NR>(b, k0, kc, p * NR, cols, &mut bpack[p * NR * kc..(p + 1) * NR * kc]);
        }
        // A block of MC rows stays in L2 while each panel of B, in L1, meets all its
        // MR-row micro-panels.
        for m0 in (0..m).step_by(MC) {
            let block = MC.min(m - m0);
            let micro = block.div_ceil(MR);
            for u in 0..micro {
                let rows = MR.min(block - u * MR);
                pack_a::<MR>(a, m0 + u * MR, rows, k0, kc, &mut apack[u * MR * kc..(u + 1) * MR * kc]);
            }
            for p in 0..panels {
                let cols = NR.min(n - p * NR);
                let bp = &bpack[p * NR * kc..(p + 1) * NR * kc];
                for u in 0..micro {
                    let (i0, rows) = (m0 + u * MR, MR.min(block - u * MR));
                    let ap = &apack[u * MR * kc..(u + 1) * MR * kc];
                    if rows == MR && cols == NR {
                        tile_fn(kc, ap, bp, Out::C { c: &mut c[i0 * n + p * NR..(i0 + MR - 1) * n + p * NR + NR], ld: n });
                        continue;
                    }
                    tile.fill(0.0);
                    tile_fn(kc, ap, bp, Out::Tile(&mut tile));
                    for r in 0..rows {
                        let dst = &mut c[(i0 + r) * n + p * NR..][..cols];
                        for (d, t) in dst.iter_mut().zip(&tile[r * NR..r * NR + cols]) {
                            *d += t;
                        }
                    }
                }
            }
        }
    }
}

/// Rows `i0..i0 + rows` and inner indices `k0..k0 + kc` of A, as `[kc][MR]` (rows past the
/// edge are zero). Contiguous runs of A are read as slices.
fn pack_a<const MR: usize>(a: Mat<'_>, i0: usize, rows: usize, k0: usize, kc: usize, out: &mut [f32]) {
    if rows < MR {
        out.fill(0.0);
    }
    if a.cs == 1 {
        for r in 0..rows {
            let row = &a.data[(i0 + r) * a.rs + k0..][..kc];
            for (kk, &v) in row.iter().enumerate() {
                out[kk * MR + r] = v;
            }
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
    if b.cs == 1 {
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
    let (dst, ld) = match out {
        Out::C { c, ld } => (c, ld),
        Out::Tile(t) => (t, NR),
    };
    for (r, row) in acc.iter().enumerate() {
        for (d, v) in dst[r * ld..r * ld + NR].iter_mut().zip(row) {
            *d += v;
        }
    }
}

/// Add register rows to C (or the scratch tile): row `r`'s `W` vectors go to `dst + r * ld`.
#[cfg(target_arch = "x86_64")]
macro_rules! add_rows {
    ($acc:expr, $out:expr, $nr:expr, $load:ident, $add:ident, $store:ident, $lanes:expr) => {{
        let (dst, ld) = match $out {
            Out::C { c, ld } => (c.as_mut_ptr(), ld),
            Out::Tile(t) => (t.as_mut_ptr(), $nr),
        };
        for (r, row) in $acc.iter().enumerate() {
            for (w, v) in row.iter().enumerate() {
                let p = dst.add(r * ld + w * $lanes);
                $store(p, $add($load(p), *v));
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
    let (dst, ld) = match out {
        Out::C { c, ld } => (c, ld),
        Out::Tile(t) => (t, 8),
    };
    for (r, row) in acc.iter().enumerate() {
        let d = &mut dst[r * ld..r * ld + 8];
        // SAFETY: `d` holds 8 floats: two unaligned v128 loads and stores.
        unsafe {
            let p = d.as_mut_ptr() as *mut v128;
            v128_store(p, f32x4_add(v128_load(p), row[0]));
            v128_store(p.add(1), f32x4_add(v128_load(p.add(1)), row[1]));
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
        for &(m, n, k) in &[(1usize, 1usize, 1usize), (7, 33, 5), (17, 40, 600), (64, 16, 1030), (3, 100, 2), (9, 1, 13)] {
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
                            kernel.run(m, n, k, a, b, &mut c, start);
                            for i in 0..m * n {
                                let extra = match offset { 0 => 0.0, 1 => bias[i % n] as f64, _ => before[i] as f64 };
                                assert!((c[i] as f64 - want[i] - extra).abs() < 1e-3, "{kernel:?} {m}x{n}x{k} at {i}");
                            }
                        }
                    }
                }
            }
            // And through the threaded entry point.
            let mut c = vec![0.0f32; m * n];
            gemm(m, n, k, a_views[1], b_views[1], &mut c, Start::Zero, 2);
            assert!(c.iter().zip(&want).all(|(x, y)| (*x as f64 - y).abs() < 1e-3));
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
        gemm(m, n, k, Mat::rows(&av, k), Mat::rows(&bv, n), &mut one, Start::Zero, 1);
        gemm(m, n, k, Mat::rows(&av, k), Mat::rows(&bv, n), &mut three, Start::Zero, 3);
        assert_eq!(one, three);
    }
}
