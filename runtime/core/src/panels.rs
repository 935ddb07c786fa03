//! The products of batched inference (a rollout's hundreds of rows per forward pass).
//!
//! A wide layer's weight is packed once, per [`crate::policy::Packed`], into column
//! [`Panels`]: `NR` columns of every input row, contiguous (32 for the AVX-512 kernel, 16
//! for the others). The product then walks the rows in blocks of `MC` and the inputs in
//! blocks of `KC`, so each panel's slice (16-32 kB) stays in the first cache level while
//! every `MR`-row micro-panel of the block meets it, and a block of inputs' panels (256 kB
//! at 256 outputs) in the second. The direct kernel in `policy.rs` instead reads a strip of
//! the whole weight again for every 4 rows.
//!
//! Layers with few outputs (policy and value heads) take [`narrow`]: one row at a time,
//! a dot product per output over the transposed weight.
//!
//! **The order of the sums.** Each value of [`product`] is the bias, then the inputs'
//! products added one at a time in input order: a fused multiply-add per input where the
//! CPU has one (x86-64 with AVX2 and FMA, or AVX-512), else a product and a sum, as the
//! direct kernel does. Blocks of inputs carry their partial sums through C, never summing
//! partial sums, so no value depends on the block sizes or the kernel's tile, on how many
//! rows there are or on where its row sits among them: a batch split between threads gives
//! the same bits as one thread. [`narrow`]'s values depend on the layer's shape only, not
//! on the rows either.

/// Inputs per block: a panel's slice of `KC × NR` (16 or 32 kB) stays in L1.
const KC: usize = 256;

/// Rows per block (a multiple of every kernel's `MR`: 8, 6 and 4): a packed block of
/// `MC × KC` (120 kB) stays in L2 next to a block of inputs' panels (256 kB at 256 outputs).
const MC: usize = 120;

/// Layers with at most this many outputs take [`narrow`].
pub(crate) const NARROW: usize = 8;

/// The widest tile: 8 rows × 32 columns.
const TILE_MAX: usize = 8 * 32;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kernel {
    #[cfg(target_arch = "x86_64")]
    Avx512,
    #[cfg(target_arch = "x86_64")]
    Avx2,
    #[cfg(all(target_family = "wasm", target_feature = "simd128"))]
    Simd128,
    #[cfg_attr(all(target_family = "wasm", target_feature = "simd128"), allow(dead_code))]
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

    /// The panels' width.
    fn nr(self) -> usize {
        match self {
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx512 => 32,
            _ => 16,
        }
    }
}

/// A weight `[inputs, outputs]` (input-major, as `policy::Layer::Linear` stores it) in
/// column panels for this CPU's kernel, with its bias.
#[derive(Clone, Debug)]
pub struct Panels {
    inputs: usize,
    outputs: usize,
    kernel: Kernel,
    nr: usize,
    /// Panel `p` is `data[p * inputs * nr..][..inputs * nr]`, row `k` of it columns
    /// `p * nr..(p + 1) * nr` of weight row `k`; zero past the last column.
    data: Vec<f32>,
    /// The bias, zero past the last column.
    bias: Vec<f32>,
}

impl Panels {
    pub fn new(weight: &[f32], bias: &[f32], inputs: usize, outputs: usize) -> Panels {
        Panels::for_kernel(Kernel::detect(), weight, bias, inputs, outputs)
    }

    fn for_kernel(kernel: Kernel, weight: &[f32], bias: &[f32], inputs: usize, outputs: usize) -> Panels {
        assert!(weight.len() == inputs * outputs && bias.len() == outputs, "a weight of {inputs} x {outputs}");
        let nr = kernel.nr();
        let panels = outputs.div_ceil(nr);
        let mut data = vec![0.0f32; panels * inputs * nr];
        for p in 0..panels {
            let cols = nr.min(outputs - p * nr);
            for k in 0..inputs {
                data[(p * inputs + k) * nr..][..cols].copy_from_slice(&weight[k * outputs + p * nr..][..cols]);
            }
        }
        let mut padded = vec![0.0f32; panels * nr];
        padded[..outputs].copy_from_slice(bias);
        Panels { inputs, outputs, kernel, nr, data, bias: padded }
    }

    pub fn outputs(&self) -> usize {
        self.outputs
    }
}

/// `out = x · W + bias` for `batch` rows of `x` (`[batch, inputs]`) into `out`
/// (`[batch, outputs]`), in the order the module's doc describes. `apack` is scratch for
/// the packed rows, kept by the caller.
pub fn product(p: &Panels, x: &[f32], batch: usize, out: &mut [f32], apack: &mut Vec<f32>) {
    assert!(x.len() >= batch * p.inputs && out.len() >= batch * p.outputs, "product: {batch} rows");
    if batch == 0 {
        return;
    }
    if p.inputs == 0 {
        out[..batch * p.outputs].chunks_mut(p.outputs).for_each(|row| row.copy_from_slice(&p.bias[..p.outputs]));
        return;
    }
    match p.kernel {
        // SAFETY: `Kernel::detect` saw the CPU features these kernels are compiled for.
        #[cfg(target_arch = "x86_64")]
        Kernel::Avx512 => unsafe { product_avx512(p, x, batch, out, apack) },
        #[cfg(target_arch = "x86_64")]
        Kernel::Avx2 => unsafe { product_avx2(p, x, batch, out, apack) },
        #[cfg(all(target_family = "wasm", target_feature = "simd128"))]
        Kernel::Simd128 => blocked::<6, 16>(p, x, batch, out, apack, &tile_simd128),
        Kernel::Portable => blocked::<4, 16>(p, x, batch, out, apack, &tile_portable::<4>),
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn product_avx512(p: &Panels, x: &[f32], batch: usize, out: &mut [f32], apack: &mut Vec<f32>) {
    blocked::<8, 32>(p, x, batch, out, apack, &|kc, ap, bp, c, ld, bias| unsafe { tile_avx512(kc, ap, bp, c, ld, bias) });
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn product_avx2(p: &Panels, x: &[f32], batch: usize, out: &mut [f32], apack: &mut Vec<f32>) {
    blocked::<6, 16>(p, x, batch, out, apack, &|kc, ap, bp, c, ld, bias| unsafe { tile_avx2(kc, ap, bp, c, ld, bias) });
}

/// A tile kernel: `MR` rows × `NR` columns of C at `c` (rows `ld` apart), started from
/// `bias` (the tile's `NR` columns of it) when given, else from what C holds, plus the
/// products over `kc` inputs of the packed rows `ap` (`[kc][MR]`) and the panel slice `bp`
/// (`[kc][NR]`).
type Tile<'a> = dyn Fn(usize, &[f32], &[f32], &mut [f32], usize, Option<&[f32]>) + 'a;

#[inline(always)]
fn blocked<const MR: usize, const NR: usize>(p: &Panels, x: &[f32], batch: usize, out: &mut [f32],
                                             apack: &mut Vec<f32>, tile_fn: &Tile<'_>) {
    debug_assert_eq!(p.nr, NR);
    let (k, n) = (p.inputs, p.outputs);
    let panels = n.div_ceil(NR);
    let depth = KC.min(k);
    if apack.len() < MC * depth {
        apack.resize(MC * depth, 0.0);
    }
    let mut edge = [0.0f32; TILE_MAX];
    let edge = &mut edge[..MR * NR];
    for m0 in (0..batch).step_by(MC) {
        let block = MC.min(batch - m0);
        let micro = block.div_ceil(MR);
        for k0 in (0..k).step_by(KC) {
            let kc = KC.min(k - k0);
            pack_rows::<MR>(x, k, m0, block, k0, kc, apack);
            for pn in 0..panels {
                let (j0, cols) = (pn * NR, NR.min(n - pn * NR));
                let bp = &p.data[(pn * k + k0) * NR..][..kc * NR];
                let bias = (k0 == 0).then(|| &p.bias[j0..j0 + NR]);
                for u in 0..micro {
                    let (i0, rows) = (m0 + u * MR, MR.min(block - u * MR));
                    let ap = &apack[u * MR * kc..(u + 1) * MR * kc];
                    if rows == MR && cols == NR {
                        tile_fn(kc, ap, bp, &mut out[i0 * n + j0..(i0 + MR - 1) * n + j0 + NR], n, bias);
                        continue;
                    }
                    // An edge tile runs on a copy of its part of C.
                    if bias.is_none() {
                        for r in 0..rows {
                            edge[r * NR..r * NR + cols].copy_from_slice(&out[(i0 + r) * n + j0..][..cols]);
                        }
                    }
                    tile_fn(kc, ap, bp, edge, NR, bias);
                    for r in 0..rows {
                        out[(i0 + r) * n + j0..][..cols].copy_from_slice(&edge[r * NR..r * NR + cols]);
                    }
                }
            }
        }
    }
}

/// Rows `m0..m0 + block` and inputs `k0..k0 + kc` of `x` (rows `k` apart) as micro-panels
/// `[block / MR][kc][MR]`, rows past the block zero.
#[inline(always)]
fn pack_rows<const MR: usize>(x: &[f32], k: usize, m0: usize, block: usize, k0: usize, kc: usize, apack: &mut [f32]) {
    for u in 0..block.div_ceil(MR) {
        let rows = MR.min(block - u * MR);
        let dst = &mut apack[u * MR * kc..(u + 1) * MR * kc];
        if rows < MR {
            dst.fill(0.0);
        }
        for r in 0..rows {
            let src = &x[(m0 + u * MR + r) * k + k0..][..kc];
            for (kk, &v) in src.iter().enumerate() {
                dst[kk * MR + r] = v;
            }
        }
    }
}

/// The portable tile, `MR` × 16: a product and a sum per input (no fused multiply-add, as
/// the direct kernel's portable loop).
#[cfg_attr(all(target_family = "wasm", target_feature = "simd128"), allow(dead_code))]
fn tile_portable<const MR: usize>(kc: usize, ap: &[f32], bp: &[f32], c: &mut [f32], ld: usize, bias: Option<&[f32]>) {
    const NR: usize = 16;
    let mut acc = [[0.0f32; NR]; MR];
    for (r, row) in acc.iter_mut().enumerate() {
        row.copy_from_slice(match bias {
            Some(b) => &b[..NR],
            None => &c[r * ld..r * ld + NR],
        });
    }
    for kk in 0..kc {
        let brow = &bp[kk * NR..(kk + 1) * NR];
        for (r, row) in acc.iter_mut().enumerate() {
            let av = ap[kk * MR + r];
            for (o, &bv) in row.iter_mut().zip(brow) {
                *o += av * bv;
            }
        }
    }
    for (r, row) in acc.iter().enumerate() {
        c[r * ld..r * ld + NR].copy_from_slice(row);
    }
}

/// The AVX-512 tile, 8 × 32: 16 accumulators of the 32 registers.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn tile_avx512(kc: usize, ap: &[f32], bp: &[f32], c: &mut [f32], ld: usize, bias: Option<&[f32]>) {
    use std::arch::x86_64::*;
    assert!(ap.len() >= kc * 8 && bp.len() >= kc * 32 && c.len() >= 7 * ld + 32, "tile operands");
    let (a, b, cp) = (ap.as_ptr(), bp.as_ptr(), c.as_mut_ptr());
    let mut acc = [[_mm512_setzero_ps(); 2]; 8];
    match bias {
        Some(bias) => {
            let (b0, b1) = (_mm512_loadu_ps(bias.as_ptr()), _mm512_loadu_ps(bias.as_ptr().add(16)));
            acc = [[b0, b1]; 8];
        }
        None => {
            for (r, row) in acc.iter_mut().enumerate() {
                row[0] = _mm512_loadu_ps(cp.add(r * ld));
                row[1] = _mm512_loadu_ps(cp.add(r * ld + 16));
            }
        }
    }
    for kk in 0..kc {
        let b0 = _mm512_loadu_ps(b.add(kk * 32));
        let b1 = _mm512_loadu_ps(b.add(kk * 32 + 16));
        for (r, row) in acc.iter_mut().enumerate() {
            let av = _mm512_set1_ps(*a.add(kk * 8 + r));
            row[0] = _mm512_fmadd_ps(av, b0, row[0]);
            row[1] = _mm512_fmadd_ps(av, b1, row[1]);
        }
    }
    for (r, row) in acc.iter().enumerate() {
        _mm512_storeu_ps(cp.add(r * ld), row[0]);
        _mm512_storeu_ps(cp.add(r * ld + 16), row[1]);
    }
}

/// The AVX2 tile, 6 × 16: 12 accumulators, two panel vectors and a broadcast in the 16
/// registers.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn tile_avx2(kc: usize, ap: &[f32], bp: &[f32], c: &mut [f32], ld: usize, bias: Option<&[f32]>) {
    use std::arch::x86_64::*;
    assert!(ap.len() >= kc * 6 && bp.len() >= kc * 16 && c.len() >= 5 * ld + 16, "tile operands");
    let (a, b, cp) = (ap.as_ptr(), bp.as_ptr(), c.as_mut_ptr());
    let mut acc = [[_mm256_setzero_ps(); 2]; 6];
    match bias {
        Some(bias) => {
            let (b0, b1) = (_mm256_loadu_ps(bias.as_ptr()), _mm256_loadu_ps(bias.as_ptr().add(8)));
            acc = [[b0, b1]; 6];
        }
        None => {
            for (r, row) in acc.iter_mut().enumerate() {
                row[0] = _mm256_loadu_ps(cp.add(r * ld));
                row[1] = _mm256_loadu_ps(cp.add(r * ld + 8));
            }
        }
    }
    for kk in 0..kc {
        let b0 = _mm256_loadu_ps(b.add(kk * 16));
        let b1 = _mm256_loadu_ps(b.add(kk * 16 + 8));
        for (r, row) in acc.iter_mut().enumerate() {
            let av = _mm256_broadcast_ss(&*a.add(kk * 6 + r));
            row[0] = _mm256_fmadd_ps(av, b0, row[0]);
            row[1] = _mm256_fmadd_ps(av, b1, row[1]);
        }
    }
    for (r, row) in acc.iter().enumerate() {
        _mm256_storeu_ps(cp.add(r * ld), row[0]);
        _mm256_storeu_ps(cp.add(r * ld + 8), row[1]);
    }
}

/// wasm's tile, 6 × 16 as two 6 × 8 halves in 128-bit vectors (12 accumulators, two
/// panel vectors and a splat fit the 16 registers engines map them to); a product and a
/// sum per input, as the portable loop.
#[cfg(all(target_family = "wasm", target_feature = "simd128"))]
fn tile_simd128(kc: usize, ap: &[f32], bp: &[f32], c: &mut [f32], ld: usize, bias: Option<&[f32]>) {
    use std::arch::wasm32::*;
    const NR: usize = 16;
    assert!(ap.len() >= kc * 6 && bp.len() >= kc * NR && c.len() >= 5 * ld + NR, "tile operands");
    for half in [0usize, 8] {
        let mut acc = [[f32x4_splat(0.0); 2]; 6];
        for (r, row) in acc.iter_mut().enumerate() {
            let src = match bias {
                Some(b) => &b[half..half + 8],
                None => &c[r * ld + half..r * ld + half + 8],
            };
            // SAFETY: `src` holds 8 floats: two unaligned v128 loads.
            unsafe {
                row[0] = v128_load(src.as_ptr() as *const v128);
                row[1] = v128_load(src.as_ptr().add(4) as *const v128);
            }
        }
        for kk in 0..kc {
            // SAFETY: `kk * NR + half + 8 <= bp.len()` (asserted above); v128 loads may be unaligned.
            let (b0, b1) = unsafe {
                let p = bp.as_ptr().add(kk * NR + half);
                (v128_load(p as *const v128), v128_load(p.add(4) as *const v128))
            };
            for (row, &av) in acc.iter_mut().zip(&ap[kk * 6..kk * 6 + 6]) {
                let av = f32x4_splat(av);
                row[0] = f32x4_add(row[0], f32x4_mul(av, b0));
                row[1] = f32x4_add(row[1], f32x4_mul(av, b1));
            }
        }
        for (r, row) in acc.iter().enumerate() {
            let d = &mut c[r * ld + half..r * ld + half + 8];
            // SAFETY: `d` holds 8 floats: two unaligned v128 stores.
            unsafe {
                v128_store(d.as_mut_ptr() as *mut v128, row[0]);
                v128_store(d.as_mut_ptr().add(4) as *mut v128, row[1]);
            }
        }
    }
}

/// `out = x · W + bias` for a layer of at most [`NARROW`] outputs, from its transposed
/// weight `wt` (`[outputs, inputs]`): each value is a dot product of its row with a column
/// of W in 8-lane partial sums (several per output when there are few outputs, so that
/// the sums overlap), added up in a fixed order, then the bias.
pub fn narrow(wt: &[f32], bias: &[f32], inputs: usize, outputs: usize, x: &[f32], batch: usize, out: &mut [f32]) {
    assert!(outputs <= NARROW && wt.len() == inputs * outputs && bias.len() == outputs, "a narrow layer");
    assert!(x.len() >= batch * inputs && out.len() >= batch * outputs, "narrow: {batch} rows");
    if inputs == 0 || outputs == 0 {
        out[..batch * outputs].chunks_mut(outputs.max(1)).for_each(|row| row.copy_from_slice(&bias[..row.len()]));
        return;
    }
    macro_rules! shapes {
        ($f:ident) => {
            match outputs {
                1 => $f::<1, 4>(wt, bias, inputs, x, batch, out),
                2 => $f::<2, 4>(wt, bias, inputs, x, batch, out),
                3 => $f::<3, 2>(wt, bias, inputs, x, batch, out),
                4 => $f::<4, 2>(wt, bias, inputs, x, batch, out),
                5 => $f::<5, 1>(wt, bias, inputs, x, batch, out),
                6 => $f::<6, 1>(wt, bias, inputs, x, batch, out),
                7 => $f::<7, 1>(wt, bias, inputs, x, batch, out),
                _ => $f::<8, 1>(wt, bias, inputs, x, batch, out),
            }
        };
    }
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
            // SAFETY: the CPU has the features the kernel is compiled for; the sizes were checked above.
            unsafe { shapes!(narrow_avx2) };
            return;
        }
    }
    shapes!(narrow_portable)
}

/// The lanes of a partial sum: one 256-bit vector.
const LANES: usize = 8;

/// [`narrow`] for `N` outputs with `P` partial sums each: chunk `q` of 8 inputs goes to
/// partial sum `q % P`; the partial sums are added in order, their lanes as
/// `((0 + 4) + (2 + 6)) + ((1 + 5) + (3 + 7))`, then the inputs past the last whole chunk
/// one by one, then the bias.
fn narrow_portable<const N: usize, const P: usize>(wt: &[f32], bias: &[f32], inputs: usize, x: &[f32], batch: usize,
                                                   out: &mut [f32]) {
    let chunks = inputs / LANES;
    let whole = chunks * LANES;
    let cols: [&[f32]; N] = std::array::from_fn(|j| &wt[j * inputs..(j + 1) * inputs]);
    for (row, o) in x[..batch * inputs].chunks_exact(inputs).zip(out.chunks_exact_mut(N)) {
        let mut acc = [[[0.0f32; LANES]; P]; N];
        for (q, xs) in row[..whole].chunks_exact(LANES).enumerate() {
            for (a, col) in acc.iter_mut().zip(&cols) {
                let part = &mut a[q % P];
                for ((s, &xv), &wv) in part.iter_mut().zip(xs).zip(&col[q * LANES..q * LANES + LANES]) {
                    *s += xv * wv;
                }
            }
        }
        for (j, a) in acc.iter().enumerate() {
            let mut l = a[0];
            for part in &a[1..] {
                for (v, p) in l.iter_mut().zip(part) {
                    *v += p;
                }
            }
            let mut s = ((l[0] + l[4]) + (l[2] + l[6])) + ((l[1] + l[5]) + (l[3] + l[7]));
            for k in whole..inputs {
                s += row[k] * cols[j][k];
            }
            o[j] = bias[j] + s;
        }
    }
}

/// [`narrow_portable`] in AVX2 registers, each step a fused multiply-add.
///
/// # Safety
/// The CPU has AVX2 and FMA; `wt` holds `N * inputs` values, `x` `batch * inputs`, `out`
/// `batch * N`, `bias` `N`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn narrow_avx2<const N: usize, const P: usize>(wt: &[f32], bias: &[f32], inputs: usize, x: &[f32],
                                                      batch: usize, out: &mut [f32]) {
    use std::arch::x86_64::*;
    let chunks = inputs / LANES;
    let whole = chunks * LANES;
    let (w, xp, op) = (wt.as_ptr(), x.as_ptr(), out.as_mut_ptr());
    for r in 0..batch {
        let row = xp.add(r * inputs);
        let mut acc = [[_mm256_setzero_ps(); P]; N];
        // Chunk `q` into partial sum `p` (a macro, so that it is compiled with the features).
        macro_rules! step {
            ($p:expr, $q:expr) => {{
                let (p, q) = ($p, $q);
                let xv = _mm256_loadu_ps(row.add(q * LANES));
                for (j, a) in acc.iter_mut().enumerate() {
                    a[p] = _mm256_fmadd_ps(xv, _mm256_loadu_ps(w.add(j * inputs + q * LANES)), a[p]);
                }
            }};
        }
        for g in 0..chunks / P {
            for p in 0..P {
                step!(p, g * P + p);
            }
        }
        for t in 0..chunks % P {
            step!(t, chunks / P * P + t);
        }
        for (j, a) in acc.iter().enumerate() {
            let mut l = a[0];
            for part in &a[1..] {
                l = _mm256_add_ps(l, *part);
            }
            // [0+4, 1+5, 2+6, 3+7], then [(0+4)+(2+6), (1+5)+(3+7)], then their sum.
            let s4 = _mm_add_ps(_mm256_castps256_ps128(l), _mm256_extractf128_ps(l, 1));
            let s2 = _mm_add_ps(s4, _mm_movehl_ps(s4, s4));
            let mut s = _mm_cvtss_f32(_mm_add_ss(s2, _mm_shuffle_ps(s2, s2, 1)));
            for k in whole..inputs {
                s = (*row.add(k)).mul_add(*w.add(j * inputs + k), s);
            }
            *op.add(r * N + j) = bias[j] + s;
        }
    }
}

/// A weight `[inputs, outputs]` transposed to `[outputs, inputs]`, into `out`.
pub fn transpose_into(weight: &[f32], inputs: usize, outputs: usize, out: &mut Vec<f32>) {
    out.clear();
    out.resize(inputs * outputs, 0.0);
    for k in 0..inputs {
        for j in 0..outputs {
            out[j * inputs + k] = weight[k * outputs + j];
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Rng;

    fn random(rng: &mut Rng, n: usize) -> Vec<f32> {
        (0..n).map(|_| rng.uniform(-1.0, 1.0) as f32).collect()
    }

    /// Each value as the module's doc says: the bias, then one step per input in order.
    fn in_order(w: &[f32], bias: &[f32], k: usize, n: usize, x: &[f32], batch: usize, fma: bool) -> Vec<f32> {
        let mut out = vec![0.0f32; batch * n];
        for r in 0..batch {
            for j in 0..n {
                let mut s = bias[j];
                for i in 0..k {
                    s = if fma { x[r * k + i].mul_add(w[i * n + j], s) } else { s + x[r * k + i] * w[i * n + j] };
                }
                out[r * n + j] = s;
            }
        }
        out
    }

    /// The kernels this CPU runs, each with whether it fuses its multiply-adds.
    fn kernels() -> Vec<(Kernel, bool)> {
        #[allow(unused_mut)]
        let mut ks = vec![(Kernel::Portable, false)];
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
                ks.push((Kernel::Avx2, true));
            }
            if std::arch::is_x86_feature_detected!("avx512f") {
                ks.push((Kernel::Avx512, true));
            }
        }
        #[cfg(all(target_family = "wasm", target_feature = "simd128"))]
        ks.push((Kernel::Simd128, false));
        ks
    }

    #[test]
    fn every_kernel_adds_each_input_in_order() {
        let mut rng = Rng::new(11, 0);
        let mut apack = Vec::new();
        // Edges in every direction: rows past a micro-panel and a block (MC), columns past a
        // panel, inputs past a block (KC), and zero inputs.
        for &(k, n, batch) in &[(512usize, 256usize, 128usize), (7, 37, 11), (300, 16, 121), (1, 9, 1), (0, 20, 3),
                                (513, 33, 250), (40, 48, 17)] {
            let w = random(&mut rng, k * n);
            let bias = random(&mut rng, n);
            let x = random(&mut rng, batch * k);
            for (kernel, fma) in kernels() {
                let mut out = vec![f32::NAN; batch * n];
                product(&Panels::for_kernel(kernel, &w, &bias, k, n), &x, batch, &mut out, &mut apack);
                let want = in_order(&w, &bias, k, n, &x, batch, fma);
                assert!(out.iter().zip(&want).all(|(a, b)| a.to_bits() == b.to_bits()),
                        "{kernel:?} {k} x {n}, {batch} rows");
            }
        }
    }

    #[test]
    fn a_row_gives_the_same_bits_whatever_the_rows_around_it() {
        let mut rng = Rng::new(12, 0);
        let (k, n, batch) = (512usize, 256usize, 257usize);
        let w = random(&mut rng, k * n);
        let bias = random(&mut rng, n);
        let mut x = random(&mut rng, batch * k);
        // ReLU-like zeros, as a trunk's hidden rows have.
        x.iter_mut().step_by(3).for_each(|v| *v = 0.0);
        for (kernel, _) in kernels() {
            let panels = Panels::for_kernel(kernel, &w, &bias, k, n);
            let mut apack = Vec::new();
            let mut whole = vec![0.0f32; batch * n];
            product(&panels, &x, batch, &mut whole, &mut apack);
            for split in [1usize, 2, 5, 6, 7, 8, 64, 120, 121, 128, 200] {
                let mut parts = vec![0.0f32; batch * n];
                let mut r0 = 0;
                while r0 < batch {
                    let rows = split.min(batch - r0);
                    product(&panels, &x[r0 * k..], rows, &mut parts[r0 * n..], &mut apack);
                    r0 += rows;
                }
                assert!(whole.iter().zip(&parts).all(|(a, b)| a.to_bits() == b.to_bits()), "{kernel:?} split {split}");
            }
        }
    }

    #[test]
    fn narrow_layers_match_the_exact_sum_and_do_not_depend_on_the_rows() {
        let mut rng = Rng::new(13, 0);
        for &(k, n, batch) in &[(256usize, 4usize, 130usize), (256, 1, 7), (19, 8, 5), (3, 2, 4), (64, 5, 9), (0, 3, 2)] {
            let w = random(&mut rng, k * n);
            let bias = random(&mut rng, n);
            let x = random(&mut rng, batch * k);
            let mut wt = Vec::new();
            transpose_into(&w, k, n, &mut wt);
            let mut out = vec![0.0f32; batch * n];
            narrow(&wt, &bias, k, n, &x, batch, &mut out);
            for r in 0..batch {
                for j in 0..n {
                    let want = bias[j] as f64 + (0..k).map(|i| x[r * k + i] as f64 * w[i * n + j] as f64).sum::<f64>();
                    assert!((out[r * n + j] as f64 - want).abs() < 1e-4, "{k} x {n} row {r} col {j}");
                }
                let mut one = vec![0.0f32; n];
                narrow(&wt, &bias, k, n, &x[r * k..], 1, &mut one);
                assert_eq!(&one[..], &out[r * n..(r + 1) * n], "row {r} alone");
            }
        }
    }
}
