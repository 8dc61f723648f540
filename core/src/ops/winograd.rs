//! Kernel-3, stride-1 convolutions by Winograd's minimal filtering F(4, 3).
//!
//! Four outputs of a 3-tap correlation, `y[4j + i] = Σ_k g[k]·d[4j + i + k]`, are
//! `Aᵀ [(G g) ∘ (Bᵀ d)]` over the six inputs `d[4j .. 4j + 6]`, with the interpolation points
//! 0, ±1, ±2 and ∞ (Lavin & Gray, "Fast Algorithms for Convolutional Neural Networks", 2016):
//!
//! ```text
//!        | 4  0 -5  0  1  0 |        | 1/4    0     0   |        | 1  1  1  1  1  0 |
//!        | 0 -4 -4  1  1  0 |        | -1/6  -1/6  -1/6 |   Aᵀ = | 0  1 -1  2 -2  0 |
//!   Bᵀ = | 0  4 -4 -1  1  0 |    G = | -1/6   1/6  -1/6 |        | 0  1  1  4  4  0 |
//!        | 0 -2 -1  2  1  0 |        | 1/24  1/12  1/6  |        | 0  1 -1  8 -8  1 |
//!        | 0  2 -1 -2  1  0 |        | 1/24 -1/12  1/6  |
//!        | 0  4  0 -5  0  1 |        | 0      0     1   |
//! ```
//!
//! Summed over input channels, each of the six transformed points is an independent matrix
//! product `M_ξ[o, j] = Σ_c U_ξ[o, c]·V_ξ[c, j]` with `U = G g` and `V = Bᵀ d`: six 1x1
//! convolutions over a quarter of the time steps, run by the tap-list micro-kernels of
//! [`super::conv_kernel`]. That is 6/4 = 1.5 multiply-adds per output and input channel instead of
//! the direct form's 3. The transforms are O(input + output) and vectorise.
//!
//! Rounding: the transforms multiply values by at most 8 and the products are f32 sums over
//! `ci` terms as in the direct form; the tests bound the difference to the direct convolution.

#![allow(unsafe_code)]

use super::conv_kernel::{round_up, spec, SharedPtr, Spec, WEIGHT_CHUNK_BYTES};
use super::isa::Isa;
use candle_core::Result;

/// Input and output channels below which the direct kernel stays faster (the transforms are
/// memory-bound; the products must dominate them).
const MIN_CHANNELS: usize = 32;

/// Output samples below which the direct kernel stays faster: a 32-tile panel holds 128 outputs,
/// so shorter rows compute padding (512 ch: 0.43 vs 0.53 ms at 32 samples, 0.43 vs 0.69 at 64).
const MIN_T_OUT: usize = 32;

/// Whether a convolution of this geometry takes the Winograd path: kernel 3, stride 1, enough
/// channels and samples, and not switched off with `ADIFF_WINOGRAD=0`.
pub(crate) fn applies(ci: usize, co: usize, k: usize, stride: usize, t_out: usize) -> bool {
    k == 3
        && stride == 1
        && ci >= MIN_CHANNELS
        && co >= MIN_CHANNELS
        && t_out >= MIN_T_OUT
        && enabled()
}

/// Output samples below which the strided and transposed convolutions keep their direct
/// kernels: their polyphase forms have ci·s input or s·co output rows, and at the UNet's short
/// levels the Winograd form made the default forward slower (2^18: 279-283 ms without it,
/// 291-296 ms with it down to 32 samples, 270-274 ms from 512 samples).
const MIN_T_OUT_PHASED: usize = 512;

/// [`applies`] for the kernel-3 stride-1 form of a strided (`rows_in` = ci·s phase rows) or
/// transposed (`rows_out` = s·co phase rows) convolution.
pub(crate) fn applies_phased(rows_in: usize, rows_out: usize, t_out: usize) -> bool {
    t_out >= MIN_T_OUT_PHASED && applies(rows_in, rows_out, 3, 1, t_out)
}

/// Whether a kernel-3 stride-1 weight gradient takes [`weight_grad3`]. Its products run on the
/// weight-gradient kernel (tiles of 8 rows x 3 taps, which do not share input rows here), so the
/// transforms only pay off on wide layers (forward + backward, batch 4: 64 ch x 4096 7.6 ms
/// direct vs 8.2 Winograd; 128 ch x 1024 6.1 vs 6.1; 256 -> 128 ch x 1024 12.7 vs 10.1).
pub(crate) fn weight_grad_applies(ci: usize, co: usize, t_out: usize) -> bool {
    ci.min(co) >= 128 && ci.max(co) >= 256 && applies(ci, co, 3, 1, t_out)
}

fn enabled() -> bool {
    static ON: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ON.get_or_init(|| {
        !matches!(
            std::env::var("ADIFF_WINOGRAD").as_deref().map(str::trim),
            Ok("0") | Ok("off")
        )
    })
}

/// Tiles per task along time, at most.
const TILE_RANGE: usize = 256;

/// Bytes of transformed inputs (all six points, all channels) one tile range may span, so that
/// the row blocks after the first read them from L2.
const V_BLOCK_BYTES: usize = 1 << 20;

thread_local! {
    /// The transformed inputs of the last call on this thread (warm pages for the next one).
    static SCRATCH: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
    /// One task's transformed weights (a pool thread's).
    static WEIGHTS: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
    /// One task's six products (a pool thread's).
    static PRODUCTS: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// `y[b, o, t] = bias[o] + Σ_c Σ_{k<3} w[o, c, k]·x_pad[b, c, t + k]` for `t < t + 2·pad - 2`, where
/// `x_pad` is `x [b, ci, t]` with `pad` zeros on each side: PyTorch's `conv1d(x, w, bias,
/// padding = pad)` for `w [co, ci, 3]`. Returns `[b][co][t_out]`.
pub(crate) fn conv3(
    x: &[f32],
    w: &[f32],
    bias: &[f32],
    (b, ci, t): (usize, usize, usize),
    co: usize,
    pad: usize,
    isa: Isa,
) -> Result<Vec<f32>> {
    let t_out = (t + 2 * pad).saturating_sub(2);
    if x.len() != b * ci * t || w.len() != co * ci * 3 || bias.len() != co || t_out == 0 {
        candle_core::bail!(
            "adiff winograd conv: input [{b}, {ci}, {t}], {} weights, {} biases, padding {pad} do not fit",
            w.len(),
            bias.len()
        );
    }
    let tiles = t_out.div_ceil(4);
    let Spec { nr, w: wd, micro } = spec(isa);
    if !isa.is_supported() || nr > 16 {
        candle_core::bail!("adiff ops: this CPU cannot run {isa:?} kernels");
    }
    // Tiles are packed in panels of wd: V[b, ξ, panel, c, 0..wd], so that a micro-kernel call
    // streams one contiguous ci x wd panel.
    let nb = tiles.div_ceil(wd);
    let cols = nb * wd;

    // Each task transforms its own nr output rows' weights, U_ξ[o, c] = (G g)[ξ] with
    // g = w[o, c, ..], into a thread-local [ξ][nr][ldu] block right before its products: no
    // full-size U (six times the weights) is written and read back. A row stride of a multiple
    // of 512 bytes would map every row to the same cache sets.
    let out_pad = round_up(co, nr);
    let ldu = if (ci * 4) % 512 == 0 { ci + 16 } else { ci };

    let mut v = SCRATCH.with(|s| std::mem::take(&mut *s.borrow_mut()));
    let v_len = b * 6 * ci * cols;
    if v.len() < v_len {
        v.resize(v_len, 0.0);
    }
    // V[b, ξ, panel, c, i] = (Bᵀ d)[ξ] with d = x_pad[b, c, 4j .. 4j + 6], j = panel·wd + i.
    let vp = SharedPtr(v.as_mut_ptr());
    let panels = Panels {
        count: nb,
        width: wd,
        stride: ci * wd,
        xi_stride: nb * ci * wd,
    };
    candle_core::utils::barrier_pool().execute_chunked(b * ci, |rows| {
        let vp = vp;
        for row in rows {
            let (bi, c) = (row / ci, row % ci);
            // SAFETY: row (bi, c) of every panel of batch item bi lies inside V's b·6·ci·cols
            // values, and only this task writes it.
            unsafe {
                let dst = vp.0.add(bi * 6 * ci * cols + c * wd);
                transform_input(isa, &x[row * t..][..t], pad, panels, dst);
            }
        }
    });

    // Tasks: (batch item, tile range, row block), row blocks fastest so that one thread's
    // consecutive tasks read the same transformed inputs (sized to stay in L2). Each computes
    // the six products of its nr x range tile into a thread-local buffer, then applies Aᵀ and
    // writes its outputs.
    let range = (V_BLOCK_BYTES / (24 * ci) / wd * wd).clamp(wd, round_up(TILE_RANGE, wd));
    let range = range.min(round_up(tiles, wd));
    let n_cb = out_pad / nr;
    let n_tr = tiles.div_ceil(range);
    let offsets: Vec<usize> = (0..ci).map(|c| c * wd).collect();
    let tap_chunk = (WEIGHT_CHUNK_BYTES / (nr * 4)).max(1);
    let zeros = [0f32; 16];
    let mut y: Vec<f32> = Vec::with_capacity(b * co * t_out);
    let yp = SharedPtr(y.as_mut_ptr());
    let vs = &v[..v_len];
    candle_core::utils::barrier_pool().execute_chunked(b * n_tr * n_cb, |tasks| {
        let yp = yp;
        PRODUCTS.with(|buf| {
            let mut buf = buf.borrow_mut();
            buf.resize(6 * nr * range, 0.0);
            let mut u = WEIGHTS.with(|u| std::mem::take(&mut *u.borrow_mut()));
            u.resize(6 * nr * ldu, 0.0);
            for task in tasks {
                let cb = task % n_cb;
                let tr = (task / n_cb) % n_tr;
                let bi = task / (n_cb * n_tr);
                let (j0, j1) = (tr * range, ((tr + 1) * range).min(tiles));
                // Rows past co (a ragged last block) keep stale values: their products are
                // never transformed out.
                let rows = nr.min(co - cb * nr);
                transform_weights(
                    isa,
                    &w[cb * nr * ci * 3..][..rows * ci * 3],
                    ci,
                    nr,
                    ldu,
                    &mut u,
                );
                for xi in 0..6 {
                    for c0 in (0..ci).step_by(tap_chunk) {
                        let c1 = (c0 + tap_chunk).min(ci);
                        // SAFETY: panel p of (bi, ξ) holds ci x wd values at
                        // ((bi·6 + ξ)·nb + p)·ci·wd, p < nb, and the taps read c·wd .. c·wd + wd
                        // for c < ci; U holds out_pad rows of ldu >= ci values per ξ; the product
                        // buffer holds 6 x nr x range values and j - j0 + wd <= range (range is a
                        // multiple of wd). The first tap chunk starts every product from zero.
                        // `isa` was checked.
                        unsafe {
                            let ub = u.as_ptr().add(xi * nr * ldu + c0);
                            let mb = buf.as_mut_ptr().add(xi * nr * range);
                            let start = if c0 == 0 {
                                zeros.as_ptr()
                            } else {
                                std::ptr::null()
                            };
                            let mut j = j0;
                            while j < j1 {
                                let panel = ((bi * 6 + xi) * nb + j / wd) * ci * wd;
                                micro(
                                    &offsets[c0..c1],
                                    vs.as_ptr().add(panel),
                                    ub,
                                    ldu,
                                    mb.add(j - j0),
                                    range,
                                    start,
                                );
                                j += wd;
                            }
                        }
                    }
                }
                let (t0, t1) = (4 * j0, (4 * j1).min(t_out));
                for r in 0..rows {
                    let o = cb * nr + r;
                    let ms: [&[f32]; 6] =
                        std::array::from_fn(|xi| &buf[(xi * nr + r) * range..][..j1 - j0]);
                    // SAFETY: row (bi, o) of y, samples t0..t1 < t_out: this task alone writes them.
                    let dst = unsafe {
                        std::slice::from_raw_parts_mut(
                            yp.0.add((bi * co + o) * t_out + t0),
                            t1 - t0,
                        )
                    };
                    transform_output(isa, ms, bias[o], dst);
                }
            }
            WEIGHTS.with(|cell| *cell.borrow_mut() = u);
        });
    });
    SCRATCH.with(|s| *s.borrow_mut() = v);
    // SAFETY: the tasks cover every (batch, row block, tile range), so all outputs were written.
    unsafe { y.set_len(b * co * t_out) };
    Ok(y)
}

/// `gw[o, c, k] = Σ_b Σ_{u < t_out} dy[b, o, u]·x_pad[b, c, u + k]` for `k < 3`, with `x_pad` =
/// `x [b, ci, t]` zero-padded by `pad` on each side and `dy [b, co, t_out]`: the weight gradient
/// `[co][ci][3]` of [`conv3`]. Returns `None` when `t_out` does not fit `t` and `pad`, or this CPU
/// cannot run `isa`.
///
/// By the transposition principle the same six points give F(3, 4): for a tile of 4 output
/// gradients `f` and its 6 inputs `d`, `Σ_i f_i·d_{i+k} = (Gᵀ [(A f) ∘ (Bᵀ d)])_k`. Summed over
/// tiles and batch items, `gw[.., k] = Σ_ξ G[ξ, k]·M_ξ` with six products
/// `M_ξ[o, c] = Σ_{b, j} (A dy)_ξ[b, o, j]·(Bᵀ x)_ξ[b, c, j]`, each run by the weight-gradient
/// kernel of [`super::conv_wgrad`] over a quarter of the time steps: 6 multiply-adds per 4
/// outputs instead of 12.
pub(crate) fn weight_grad3(
    x: &[f32],
    dy: &[f32],
    (b, ci, t): (usize, usize, usize),
    co: usize,
    pad: usize,
    isa: Isa,
) -> Option<Vec<f32>> {
    let t_out = dy.len() / (b * co).max(1);
    if x.len() != b * ci * t
        || dy.len() != b * co * t_out
        || t + 2 * pad != t_out + 2
        || !isa.is_supported()
    {
        return None;
    }
    let tiles = t_out.div_ceil(4);
    let cols = round_up(tiles, 16);
    let m = if (cols * 4) % 512 == 0 {
        cols + 16
    } else {
        cols
    };
    // V[b, c, ξ, j] = (Bᵀ d)_ξ: the forward's input transform, one unpacked row per (b, c, ξ).
    let mut v: Vec<f32> = Vec::with_capacity(b * ci * 6 * m);
    let vp = SharedPtr(v.as_mut_ptr());
    let panels = Panels {
        count: 1,
        width: m,
        stride: 0,
        xi_stride: m,
    };
    candle_core::utils::barrier_pool().execute_chunked(b * ci, |rows| {
        let vp = vp;
        for row in rows {
            // SAFETY: row (b, c) owns values row·6·m .. (row + 1)·6·m of V's capacity, and only
            // this task writes them; the transform writes all of them (tiles past the output
            // are zeros).
            unsafe { transform_input(isa, &x[row * t..][..t], pad, panels, vp.0.add(row * 6 * m)) };
        }
    });
    // SAFETY: the tasks above initialised every value (b·ci rows of 6·m).
    unsafe { v.set_len(b * ci * 6 * m) };
    // DY[ξ, b, o, j] = (A f)_ξ with f = dy[b, o, 4j .. 4j + 4] (zeros past t_out).
    let dyt = super::vec_math::par_collect(6 * b * co * m, m, |row, dst| {
        let (xi, bo) = (row / (b * co), row % (b * co));
        let src = &dy[bo * t_out..][..t_out];
        for (j, d) in dst[..tiles].iter_mut().enumerate() {
            let f = |i: usize| src.get(4 * j + i).copied().unwrap_or(0.0);
            let (f0, f1, f2, f3) = (f(0), f(1), f(2), f(3));
            *d = match xi {
                0 => f0,
                1 => f0 + f1 + f2 + f3,
                2 => f0 - f1 + f2 - f3,
                3 => f0 + 2.0 * f1 + 4.0 * f2 + 8.0 * f3,
                4 => f0 - 2.0 * f1 + 4.0 * f2 - 8.0 * f3,
                _ => f3,
            };
        }
    });
    let products: Vec<Vec<f32>> = (0..6)
        .map(|xi| {
            let offsets: Vec<usize> = (0..ci).map(|c| (c * 6 + xi) * m).collect();
            super::conv_wgrad::weight_grad(
                &super::conv_wgrad::WeightGrad {
                    batch: b,
                    x: &v,
                    x_len: ci * 6 * m,
                    offsets: &offsets,
                    dy: &dyt[xi * b * co * m..][..b * co * m],
                    out: co,
                    t_out: m,
                },
                isa,
            )
        })
        .collect();
    const G: [[f32; 3]; 6] = [
        [0.25, 0.0, 0.0],
        [-1.0 / 6.0, -1.0 / 6.0, -1.0 / 6.0],
        [-1.0 / 6.0, 1.0 / 6.0, -1.0 / 6.0],
        [1.0 / 24.0, 1.0 / 12.0, 1.0 / 6.0],
        [1.0 / 24.0, -1.0 / 12.0, 1.0 / 6.0],
        [0.0, 0.0, 1.0],
    ];
    Some(super::vec_math::par_collect(
        co * ci * 3,
        ci * 3,
        |o, row| {
            for (i, d) in row.iter_mut().enumerate() {
                let (c, k) = (i / 3, i % 3);
                *d = (0..6).map(|xi| G[xi][k] * products[xi][o * ci + c]).sum();
            }
        },
    ))
}

fn transform_weights(isa: Isa, w: &[f32], ci: usize, nr: usize, ldu: usize, dst: &mut [f32]) {
    match isa {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `isa` is only Avx512 / Avx2 where the caller's kernel run checked support.
        Isa::Avx512 => unsafe { weights_avx512(w, ci, nr, ldu, dst) },
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 => unsafe { weights_avx2(w, ci, nr, ldu, dst) },
        _ => weights_body(w, ci, nr, ldu, dst),
    }
}

/// # Safety
/// As for [`input_body`].
unsafe fn transform_input(isa: Isa, x: &[f32], pad: usize, panels: Panels, dst: *mut f32) {
    match isa {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: as in `transform_weights`; the writes are the caller's contract.
        Isa::Avx512 => unsafe { input_avx512(x, pad, panels, dst) },
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 => unsafe { input_avx2(x, pad, panels, dst) },
        _ => unsafe { input_body(x, pad, panels, dst) },
    }
}

fn transform_output(isa: Isa, ms: [&[f32]; 6], bias: f32, dst: &mut [f32]) {
    match isa {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: as in `transform_weights`.
        Isa::Avx512 => unsafe { output_avx512(ms, bias, dst) },
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 => unsafe { output_avx2(ms, bias, dst) },
        _ => output_body(ms, bias, dst),
    }
}

/// Defines AVX-512 and AVX2+FMA copies of a transform body, so that its plain loops vectorise to
/// the instruction set's width.
macro_rules! isa_copies {
    ($body:ident => $avx512:ident, $avx2:ident ($($a:ident: $t:ty),*)) => {
        /// # Safety
        /// The CPU must support AVX-512F.
        #[cfg(target_arch = "x86_64")]
        #[target_feature(enable = "avx512f")]
        unsafe fn $avx512($($a: $t),*) {
            $body($($a),*)
        }
        /// # Safety
        /// The CPU must support AVX2 and FMA.
        #[cfg(target_arch = "x86_64")]
        #[target_feature(enable = "avx2,fma")]
        unsafe fn $avx2($($a: $t),*) {
            $body($($a),*)
        }
    };
}

/// AVX2+FMA copy of [`weights_body`].
///
/// # Safety
/// The CPU must support AVX2 and FMA.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn weights_avx2(w: &[f32], ci: usize, nr: usize, ldu: usize, dst: &mut [f32]) {
    weights_body(w, ci, nr, ldu, dst)
}
isa_copies!(output_body => output_avx512, output_avx2 (ms: [&[f32]; 6], bias: f32, dst: &mut [f32]));

/// `dst[(ξ·nr + r)·ldu + c] = (G g)[ξ]` with `g = w[(r·ci + c)·3 ..][..3]`, for the
/// `w.len() / (3·ci)` rows of `w` (at most `nr`).
#[inline(always)]
fn weights_body(w: &[f32], ci: usize, nr: usize, ldu: usize, dst: &mut [f32]) {
    for (r, g) in w.chunks_exact(3 * ci).enumerate().take(nr) {
        let row = |xi: usize| (xi * nr + r) * ldu;
        let [u0, u1, u2, u3, u4, u5] = dst_rows(dst, row, ci);
        // Multiplications by the rounded reciprocals (as G's entries would be): a division per
        // value made this transform cost as much as the products at 1024 channels.
        const SIXTH: f32 = 1.0 / 6.0;
        const TWELFTH: f32 = 1.0 / 12.0;
        const TWENTY_FOURTH: f32 = 1.0 / 24.0;
        let it = g
            .chunks_exact(3)
            .zip(u0.iter_mut().zip(u1.iter_mut().zip(u2.iter_mut())));
        let it = it.zip(u3.iter_mut().zip(u4.iter_mut().zip(u5.iter_mut())));
        for ((g, (u0, (u1, u2))), (u3, (u4, u5))) in it {
            let (g0, g1, g2) = (g[0], g[1], g[2]);
            let (s, p, q) = (g0 + g2, g0 * TWENTY_FOURTH + g2 * SIXTH, g1 * TWELFTH);
            *u0 = g0 * 0.25;
            *u1 = -(s + g1) * SIXTH;
            *u2 = -(s - g1) * SIXTH;
            *u3 = p + q;
            *u4 = p - q;
            *u5 = g2;
        }
    }
}

/// AVX-512 [`weights_body`]: 16 channels at a time, their `(g0, g1, g2)` triples split out of
/// three loaded vectors by two-source permutes (the compiler left the stride-3 reads scalar,
/// which made the transform 7% of a UNet forward).
///
/// # Safety
/// The CPU must support AVX-512F.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn weights_avx512(w: &[f32], ci: usize, nr: usize, ldu: usize, dst: &mut [f32]) {
    use std::arch::x86_64::*;
    // Lane i of tap k is element 3i + k of the 48 loaded values: first from (a, b) where
    // 3i + k < 32, then the rest from c.
    let idx = |k: usize, second: bool| {
        let lanes: [i32; 16] = std::array::from_fn(|i| {
            let e = 3 * i + k;
            match (second, e < 32) {
                (false, true) => e as i32,
                (false, false) => 0,
                (true, true) => i as i32,
                (true, false) => (16 + e - 32) as i32,
            }
        });
        _mm512_loadu_si512(lanes.as_ptr().cast())
    };
    let (i0a, i0b, i1a, i1b, i2a, i2b) = (
        idx(0, false),
        idx(0, true),
        idx(1, false),
        idx(1, true),
        idx(2, false),
        idx(2, true),
    );
    let sixth = _mm512_set1_ps(1.0 / 6.0);
    let neg_sixth = _mm512_set1_ps(-1.0 / 6.0);
    let twelfth = _mm512_set1_ps(1.0 / 12.0);
    let twenty_fourth = _mm512_set1_ps(1.0 / 24.0);
    let quarter = _mm512_set1_ps(0.25);
    let full = ci / 16 * 16;
    for (r, g) in w.chunks_exact(3 * ci).enumerate().take(nr) {
        let rows: [usize; 6] = std::array::from_fn(|xi| (xi * nr + r) * ldu);
        assert!(rows[5] + ci <= dst.len());
        let mut c = 0;
        while c < full {
            // SAFETY: c + 16 <= ci, so g[3c .. 3c + 48] and dst[row + c .. row + c + 16] are in
            // bounds (asserted above); the CPU supports AVX-512F (caller).
            unsafe {
                let gp = g.as_ptr().add(3 * c);
                let (a, b, cc) = (
                    _mm512_loadu_ps(gp),
                    _mm512_loadu_ps(gp.add(16)),
                    _mm512_loadu_ps(gp.add(32)),
                );
                let g0 = _mm512_permutex2var_ps(_mm512_permutex2var_ps(a, i0a, b), i0b, cc);
                let g1 = _mm512_permutex2var_ps(_mm512_permutex2var_ps(a, i1a, b), i1b, cc);
                let g2 = _mm512_permutex2var_ps(_mm512_permutex2var_ps(a, i2a, b), i2b, cc);
                let s = _mm512_add_ps(g0, g2);
                let p = _mm512_fmadd_ps(g0, twenty_fourth, _mm512_mul_ps(g2, sixth));
                let q = _mm512_mul_ps(g1, twelfth);
                let d = dst.as_mut_ptr();
                _mm512_storeu_ps(d.add(rows[0] + c), _mm512_mul_ps(g0, quarter));
                _mm512_storeu_ps(
                    d.add(rows[1] + c),
                    _mm512_mul_ps(_mm512_add_ps(s, g1), neg_sixth),
                );
                _mm512_storeu_ps(
                    d.add(rows[2] + c),
                    _mm512_mul_ps(_mm512_sub_ps(s, g1), neg_sixth),
                );
                _mm512_storeu_ps(d.add(rows[3] + c), _mm512_add_ps(p, q));
                _mm512_storeu_ps(d.add(rows[4] + c), _mm512_sub_ps(p, q));
                _mm512_storeu_ps(d.add(rows[5] + c), g2);
            }
            c += 16;
        }
        if full < ci {
            // The ragged channels, one row of w at a time through the plain body.
            let mut one = [0f32; 6 * 16];
            weights_body(&g[3 * full..], ci - full, 1, 16, &mut one);
            for (xi, &row) in rows.iter().enumerate() {
                dst[row + full..row + ci].copy_from_slice(&one[xi * 16..xi * 16 + ci - full]);
            }
        }
    }
}

/// The six disjoint `len`-long rows of `dst` starting at `row(ξ)`, ξ = 0..6 (increasing).
#[inline(always)]
fn dst_rows(dst: &mut [f32], row: impl Fn(usize) -> usize, len: usize) -> [&mut [f32]; 6] {
    let mut rest = dst;
    let mut taken = 0;
    std::array::from_fn(|xi| {
        let (_, tail) = std::mem::take(&mut rest).split_at_mut(row(xi) - taken);
        let (head, tail) = tail.split_at_mut(len);
        taken = row(xi) + len;
        rest = tail;
        head
    })
}

thread_local! {
    /// One zero-padded input row.
    static ROW: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Where the transformed inputs of one (batch item, channel) row go: value (ξ, panel p, i) at
/// `ξ·xi_stride + p·stride + i` from the row's start, for `count` panels of `width` tiles.
#[derive(Clone, Copy)]
struct Panels {
    count: usize,
    width: usize,
    stride: usize,
    xi_stride: usize,
}

/// Writes `Bᵀ d` for every tile `j = p·width + i` of the panels, with `d = x_pad[4j .. 4j + 6]`
/// and `x_pad` = `x` zero-padded by `pad` on the left and past its end (so tiles past the output
/// are zeros).
///
/// # Safety
/// Every position `dst + ξ·xi_stride + p·stride + i` (ξ < 6, p < count, i < width) must be valid
/// for writes, and written by no one else meanwhile.
#[inline(always)]
unsafe fn input_body(x: &[f32], pad: usize, panels: Panels, dst: *mut f32) {
    let Panels {
        count,
        width,
        stride,
        xi_stride,
    } = panels;
    ROW.with(|row| {
        let mut xp = row.borrow_mut();
        let len = 4 * count * width + 4;
        if xp.len() < len {
            xp.resize(len, 0.0);
        }
        let xp = &mut xp[..len];
        let i0 = pad.min(len);
        let n = x.len().min(len - i0);
        xp[..i0].fill(0.0);
        xp[i0..i0 + n].copy_from_slice(&x[..n]);
        xp[i0 + n..].fill(0.0);
        for p in 0..count {
            // SAFETY: tile p·width + i reads xp[4(p·width + i) .. + 6] <= 4·count·width + 2 <
            // len; the writes are the caller's contract.
            unsafe {
                let xs = xp.as_ptr().add(4 * p * width);
                let dp = dst.add(p * stride);
                for i in 0..width {
                    let d = xs.add(4 * i);
                    let (d0, d1, d2, d3, d4, d5) =
                        (*d, *d.add(1), *d.add(2), *d.add(3), *d.add(4), *d.add(5));
                    let (p, q) = (d1 - d3, d1 - d2);
                    *dp.add(i) = 4.0 * d0 - 5.0 * d2 + d4;
                    *dp.add(xi_stride + i) = -4.0 * (d1 + d2) + d3 + d4;
                    *dp.add(2 * xi_stride + i) = 4.0 * q - d3 + d4;
                    *dp.add(3 * xi_stride + i) = -2.0 * p - d2 + d4;
                    *dp.add(4 * xi_stride + i) = 2.0 * p - d2 + d4;
                    *dp.add(5 * xi_stride + i) = 4.0 * d1 - 5.0 * d3 + d5;
                }
            }
        }
    });
}

/// AVX-512 copy of [`input_body`].
///
/// # Safety
/// The CPU must support AVX-512F; the rest as for [`input_body`].
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn input_avx512(x: &[f32], pad: usize, panels: Panels, dst: *mut f32) {
    unsafe { input_body(x, pad, panels, dst) }
}

/// AVX2+FMA copy of [`input_body`].
///
/// # Safety
/// The CPU must support AVX2 and FMA; the rest as for [`input_body`].
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn input_avx2(x: &[f32], pad: usize, panels: Panels, dst: *mut f32) {
    unsafe { input_body(x, pad, panels, dst) }
}

/// `dst[4j + i] = bias + (Aᵀ m_j)[i]` for `4j + i < dst.len()`, with `m_j[ξ] = ms[ξ][j]`.
#[inline(always)]
fn output_body(ms: [&[f32]; 6], bias: f32, dst: &mut [f32]) {
    let tiles = dst.len().div_ceil(4);
    assert!(ms.iter().all(|r| r.len() >= tiles));
    let tile = |j: usize| {
        // SAFETY: callers pass j < tiles <= every row's length (asserted above).
        let [m0, m1, m2, m3, m4, m5] = ms.map(|r| unsafe { *r.get_unchecked(j) });
        let (a, b, c, d) = (m1 + m2, m1 - m2, m3 + m4, m3 - m4);
        [
            bias + m0 + a + c,
            bias + b + 2.0 * d,
            bias + a + 4.0 * c,
            bias + b + 8.0 * d + m5,
        ]
    };
    let full = dst.len() / 4;
    for (j, out) in dst.chunks_exact_mut(4).enumerate() {
        out.copy_from_slice(&tile(j));
    }
    if full < tiles {
        let rest = &mut dst[4 * full..];
        let n = rest.len();
        rest.copy_from_slice(&tile(full)[..n]);
    }
}
