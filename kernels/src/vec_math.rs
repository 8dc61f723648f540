//! Row kernels for the fused normalisations: sums for group statistics and `silu(a·x + b)`, each
//! written once in plain Rust and compiled three times (portable, AVX2+FMA, AVX-512F) so that the
//! compiler vectorises it for the instruction set picked at run time.
#![allow(unsafe_code)]

use super::isa::Isa;

/// `exp(x)` for f32 without a libm call (so loops over it vectorise): range reduction
/// `x = n·ln2 + r`, a degree-6 polynomial for `e^r` on |r| <= ln2/2 (Cephes `expf` coefficients),
/// and `2^n` built from the exponent bits. Relative error below 2e-7 on [-87, 88]; inputs are
/// clamped to that range (so `exp(-inf)` gives about 1.6e-38, not 0).
#[inline(always)]
pub(crate) fn exp_approx(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    const ROUND: f32 = 12_582_912.0; // 1.5·2^23: adding and subtracting it rounds to an integer
    let x = x.clamp(-87.0, 88.0);
    let shifted = x * LOG2E + ROUND;
    let n = shifted - ROUND;
    // The integer n sits in the low mantissa bits of `shifted`: read it without a float-to-int
    // conversion (Rust's saturating `as` does not vectorise).
    let ni = shifted.to_bits().wrapping_sub(ROUND.to_bits()) as i32;
    let r = x - n * LN2_HI - n * LN2_LO;
    let p = 1.987_569_1e-4_f32;
    let p = p * r + 1.398_199_9e-3;
    let p = p * r + 8.333_452e-3;
    let p = p * r + 4.166_579_6e-2;
    let p = p * r + 1.666_666_5e-1;
    let p = p * r + 5e-1;
    let e = p * r * r + r + 1.0;
    e * f32::from_bits(((ni + 127) << 23) as u32)
}

/// Independent accumulators of [`lane_sum`], so that it vectorises (one running float is a
/// dependent chain the compiler may not reorder): four AVX-512 vectors, so that the adds do not
/// wait on each other's latency. With one vector (16 lanes) the Linear dot products of the time
/// mappings (1 x 512 -> 1024, weights cold in DRAM) took 0.45 ms, 4.5 GB/s; with four 0.16 ms.
const SUM_LANES: usize = 64;

/// `Σ_{i < len} term(i)` over [`SUM_LANES`] accumulators: the row reductions of the attention,
/// LayerNorm and Linear kernels (inlined into their per-ISA bodies).
#[inline(always)]
pub(crate) fn lane_sum(len: usize, term: impl Fn(usize) -> f32) -> f32 {
    let mut acc = [0f32; SUM_LANES];
    let whole = len / SUM_LANES * SUM_LANES;
    for i in (0..whole).step_by(SUM_LANES) {
        for (l, a) in acc.iter_mut().enumerate() {
            *a += term(i + l);
        }
    }
    (whole..len).map(&term).sum::<f32>() + acc.iter().sum::<f32>()
}

#[inline(always)]
fn affine_act_body(src: &[f32], dst: &mut [f32], a: f32, b: f32, silu: bool) {
    if silu {
        for (d, &s) in dst.iter_mut().zip(src) {
            let v = s * a + b;
            *d = v / (1.0 + exp_approx(-v));
        }
    } else {
        for (d, &s) in dst.iter_mut().zip(src) {
            *d = s * a + b;
        }
    }
}

#[inline(always)]
fn shifted_sums_body(src: &[f32], shift: f32) -> (f64, f64) {
    // 64 lanes: four independent vector accumulators per sum, so the adds do not wait on each
    // other's latency.
    const LANES: usize = 64;
    const BLOCK: usize = 1024;
    let (mut sum, mut sq) = (0f64, 0f64);
    for block in src.chunks(BLOCK) {
        let (mut s, mut q) = ([0f32; LANES], [0f32; LANES]);
        let mut it = block.chunks_exact(LANES);
        for lane in &mut it {
            let Ok(lane) = <&[f32; LANES]>::try_from(lane) else {
                continue;
            };
            for i in 0..LANES {
                let v = lane[i] - shift;
                s[i] += v;
                q[i] += v * v;
            }
        }
        for &v in it.remainder() {
            let v = v - shift;
            s[0] += v;
            q[0] += v * v;
        }
        sum += s.iter().map(|&v| v as f64).sum::<f64>();
        sq += q.iter().map(|&v| v as f64).sum::<f64>();
    }
    (sum, sq)
}

/// `dst[i] = act(a·src[i] + b)` with `act` = SiLU (`v·sigmoid(v)`) or the identity.
pub(crate) fn affine_act(isa: Isa, src: &[f32], dst: &mut [f32], a: f32, b: f32, silu: bool) {
    match isa {
        // SAFETY: `Isa::Avx512` / `Isa::Avx2` are only chosen when `is_supported()` said the CPU
        // has the features these functions are compiled for (checked again here).
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 if isa.is_supported() => unsafe { affine_act_avx512(src, dst, a, b, silu) },
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 if isa.is_supported() => unsafe { affine_act_avx2(src, dst, a, b, silu) },
        _ => affine_act_body(src, dst, a, b, silu),
    }
}

/// `(Σ (x - shift), Σ (x - shift)²)` over `src`, in f32 lanes of 1024-sample blocks summed in f64.
pub(crate) fn shifted_sums(isa: Isa, src: &[f32], shift: f32) -> (f64, f64) {
    match isa {
        // SAFETY: as in `affine_act`: the feature set is checked before the call.
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 if isa.is_supported() => unsafe { shifted_sums_avx512(src, shift) },
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 if isa.is_supported() => unsafe { shifted_sums_avx2(src, shift) },
        _ => shifted_sums_body(src, shift),
    }
}

/// `dz` of `y = act(z)`, `z = a·n + b`, `n = (x - mean)·rstd`, and `n` itself, for one value.
#[inline(always)]
fn gn_dz(x: f32, dy: f32, g: GnRow) -> (f32, f32) {
    let n = (x - g.mean) * g.rstd;
    if !g.silu {
        return (dy, n);
    }
    let z = g.a * n + g.b;
    let s = 1.0 / (1.0 + exp_approx(-z));
    (dy * s * (1.0 + z * (1.0 - s)), n)
}

/// One normalised row's constants for the GroupNorm backward kernels.
#[derive(Clone, Copy)]
pub(crate) struct GnRow {
    /// Group mean.
    pub mean: f32,
    /// Group 1/std.
    pub rstd: f32,
    /// Per-(batch, channel) scale of the normalised value.
    pub a: f32,
    /// Per-(batch, channel) shift.
    pub b: f32,
    /// Whether SiLU follows.
    pub silu: bool,
}

#[inline(always)]
fn gn_bwd_sums_body(x: &[f32], dy: &[f32], g: GnRow) -> (f64, f64) {
    // Two independent vector accumulators per sum (see `shifted_sums_body`).
    const LANES: usize = 32;
    const BLOCK: usize = 1024;
    let (mut s1, mut s2) = (0f64, 0f64);
    for (xb, db) in x.chunks(BLOCK).zip(dy.chunks(BLOCK)) {
        let (mut a, mut q) = ([0f32; LANES], [0f32; LANES]);
        let (mut xi, mut di) = (xb.chunks_exact(LANES), db.chunks_exact(LANES));
        for (xl, dl) in (&mut xi).zip(&mut di) {
            let (Ok(xl), Ok(dl)) = (<&[f32; LANES]>::try_from(xl), <&[f32; LANES]>::try_from(dl))
            else {
                continue;
            };
            for i in 0..LANES {
                let (dz, n) = gn_dz(xl[i], dl[i], g);
                a[i] += dz;
                q[i] += dz * n;
            }
        }
        for (&xv, &dv) in xi.remainder().iter().zip(di.remainder()) {
            let (dz, n) = gn_dz(xv, dv, g);
            a[0] += dz;
            q[0] += dz * n;
        }
        s1 += a.iter().map(|&v| v as f64).sum::<f64>();
        s2 += q.iter().map(|&v| v as f64).sum::<f64>();
    }
    (s1, s2)
}

#[inline(always)]
fn gn_bwd_dx_body(x: &[f32], dy: &[f32], dx: &mut [f32], g: GnRow, m1: f32, m2: f32) {
    for ((d, &xv), &dv) in dx.iter_mut().zip(x).zip(dy) {
        let (dz, n) = gn_dz(xv, dv, g);
        *d = g.rstd * (g.a * dz - m1 - n * m2);
    }
}

/// `(Σ dz, Σ dz·n)` over one row of the GroupNorm backward, where `dz` is the gradient at
/// `z = a·n + b` (through SiLU when `g.silu`) and `n` the normalised input.
pub(crate) fn gn_bwd_sums(isa: Isa, x: &[f32], dy: &[f32], g: GnRow) -> (f64, f64) {
    match isa {
        // SAFETY: as in `affine_act`: the feature set is checked before the call.
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 if isa.is_supported() => unsafe { gn_bwd_sums_avx512(x, dy, g) },
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 if isa.is_supported() => unsafe { gn_bwd_sums_avx2(x, dy, g) },
        _ => gn_bwd_sums_body(x, dy, g),
    }
}

/// `dx = rstd·(a·dz - m1 - n·m2)` over one row (`m1`, `m2`: the group means of `a·dz` and
/// `a·dz·n`).
pub(crate) fn gn_bwd_dx(isa: Isa, x: &[f32], dy: &[f32], dx: &mut [f32], g: GnRow, m: (f32, f32)) {
    match isa {
        // SAFETY: as in `affine_act`: the feature set is checked before the call.
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 if isa.is_supported() => unsafe { gn_bwd_dx_avx512(x, dy, dx, g, m.0, m.1) },
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 if isa.is_supported() => unsafe { gn_bwd_dx_avx2(x, dy, dx, g, m.0, m.1) },
        _ => gn_bwd_dx_body(x, dy, dx, g, m.0, m.1),
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn gn_bwd_sums_avx512(x: &[f32], dy: &[f32], g: GnRow) -> (f64, f64) {
    gn_bwd_sums_body(x, dy, g)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn gn_bwd_sums_avx2(x: &[f32], dy: &[f32], g: GnRow) -> (f64, f64) {
    gn_bwd_sums_body(x, dy, g)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn gn_bwd_dx_avx512(x: &[f32], dy: &[f32], dx: &mut [f32], g: GnRow, m1: f32, m2: f32) {
    gn_bwd_dx_body(x, dy, dx, g, m1, m2)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn gn_bwd_dx_avx2(x: &[f32], dy: &[f32], dx: &mut [f32], g: GnRow, m1: f32, m2: f32) {
    gn_bwd_dx_body(x, dy, dx, g, m1, m2)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn affine_act_avx512(src: &[f32], dst: &mut [f32], a: f32, b: f32, silu: bool) {
    affine_act_body(src, dst, a, b, silu)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn affine_act_avx2(src: &[f32], dst: &mut [f32], a: f32, b: f32, silu: bool) {
    affine_act_body(src, dst, a, b, silu)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn shifted_sums_avx512(src: &[f32], shift: f32) -> (f64, f64) {
    shifted_sums_body(src, shift)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn shifted_sums_avx2(src: &[f32], shift: f32) -> (f64, f64) {
    shifted_sums_body(src, shift)
}

/// A `len`-long vector built by `f(index, chunk)` over chunks of `chunk` values in parallel, as
/// [`par_chunks_mut`] on `vec![0.0; len]` would, but each chunk is zeroed by its own task right
/// before `f` (cache-hot, on both cores) instead of in one serial pass of the allocation: that
/// pass was 9% of a UNet forward's wall time, with the second core idle.
pub(crate) fn par_collect(
    len: usize,
    chunk: usize,
    f: impl Fn(usize, &mut [f32]) + Sync,
) -> Vec<f32> {
    let mut v: Vec<f32> = Vec::with_capacity(len);
    par_chunks_mut(&mut v.spare_capacity_mut()[..len], chunk, |i, piece| {
        for p in piece.iter_mut() {
            p.write(0.0);
        }
        // SAFETY: every element of `piece` was initialised just above, and `MaybeUninit<f32>`
        // has the layout of `f32`.
        let piece = unsafe { &mut *(piece as *mut [std::mem::MaybeUninit<f32>] as *mut [f32]) };
        f(i, piece);
    });
    // SAFETY: the chunks cover 0..len and each task initialised its whole chunk.
    unsafe { v.set_len(len) };
    v
}

/// Calls `f(i, chunk_i)` for the `chunk`-long pieces of `data` (the last one may be shorter),
/// spread over candle's CPU thread pool.
pub fn par_chunks_mut<T: Send>(data: &mut [T], chunk: usize, f: impl Fn(usize, &mut [T]) + Sync) {
    let (len, chunk) = (data.len(), chunk.max(1));
    let n = len.div_ceil(chunk);
    let base = ChunkPtr(data.as_mut_ptr());
    let base = &base;
    candle_core::utils::barrier_pool().execute_chunked(n, |range| {
        for i in range {
            let start = i * chunk;
            let end = (start + chunk).min(len);
            // SAFETY: chunk i is data[start..end], inside `data` and disjoint from every other
            // chunk; `data` is mutably borrowed for the whole parallel section, which joins
            // before this function returns.
            let piece = unsafe { std::slice::from_raw_parts_mut(base.0.add(start), end - start) };
            f(i, piece);
        }
    });
}

/// A raw pointer handed to the tasks of [`par_chunks_mut`], each of which owns a disjoint chunk.
struct ChunkPtr<T>(*mut T);
// SAFETY: the pointer is only used to form pairwise-disjoint chunks, one per task (see below).
unsafe impl<T: Send> Send for ChunkPtr<T> {}
unsafe impl<T: Send> Sync for ChunkPtr<T> {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_approx_is_within_2e7_relative_of_std() {
        let mut worst = 0f32;
        for i in -8700..8799 {
            let x = i as f32 * 0.01 + 0.003;
            let rel = ((exp_approx(x) - x.exp()) / x.exp()).abs();
            worst = worst.max(rel);
        }
        assert!(worst < 2e-7, "worst relative error {worst:e}");
    }

    #[test]
    fn row_kernels_agree_with_scalar_math_on_every_isa() {
        let src: Vec<f32> = (0..1037)
            .map(|i| ((i * 37 % 101) as f32 - 50.0) * 0.13)
            .collect();
        for isa in Isa::runnable() {
            let mut dst = vec![0f32; src.len()];
            affine_act(isa, &src, &mut dst, 0.7, -0.2, true);
            for (&s, &d) in src.iter().zip(&dst) {
                let v = s as f64 * 0.7 - 0.2;
                let want = v / (1.0 + (-v).exp());
                assert!(
                    (d as f64 - want).abs() <= 1e-6 * (1.0 + want.abs()),
                    "{isa:?}: {d} vs {want}"
                );
            }
            let (s, q) = shifted_sums(isa, &src, 1.5);
            let s_ref: f64 = src.iter().map(|&v| (v - 1.5) as f64).sum();
            let q_ref: f64 = src.iter().map(|&v| ((v - 1.5) as f64).powi(2)).sum();
            assert!(
                (s - s_ref).abs() < 1e-3 && (q - q_ref).abs() < 1e-2,
                "{isa:?}: {s} {q}"
            );
        }
    }
}
