//! Weight gradient of a convolution in tap-list form (see [`super::conv_kernel`]), without im2col:
//! `gw[o, j] = Σ_b Σ_{t < t_out} dy[b, o, t] · x[b][off[j] + t]`.
//!
//! It is a matrix product reduced along time. A micro-kernel holds an `NO x NT` block of
//! (output row, tap) sums as 16-lane vectors, streams 16 time steps at a time (`NO` loads of `dy`,
//! `NT` unaligned loads of `x`, `NO·NT` multiply-adds), and reduces the lanes once per time block.
//! On AVX-512 (4 rows x 3 taps) the three taps of a kernel-3 stride-1 channel are one row shifted
//! by 0, 1 and 2: one load per step and two lane rotations (`valignd`) instead of three loads, two
//! of which split cache lines. Time is cut into blocks whose `dy` and `x` rows fit in L2 (at most
//! 2048 steps); rows shorter than a block are summed over several batch items per kernel call.
//! The (batch, time) blocks, and groups of output rows where there are fewer blocks than threads,
//! are split over candle's thread pool, each part summing into its own copy of `gw`.
#![allow(unsafe_code)]

use super::isa::Isa;
use super::vec_math::par_chunks_mut;

/// Time steps per vector step.
const LANES: usize = 16;

/// Bytes of `dy` and `x` rows one time block may touch.
const BLOCK_BYTES: usize = 2 << 20;

/// The geometry of one weight gradient; `x` and `dy` are `batch` buffers of `x_len` and
/// `out * t_out` values.
pub(crate) struct WeightGrad<'a> {
    pub batch: usize,
    pub x: &'a [f32],
    pub x_len: usize,
    pub offsets: &'a [usize],
    pub dy: &'a [f32],
    pub out: usize,
    pub t_out: usize,
}

/// `NO x NT` sums over `span.batches` batch items (row pointers advanced by the span's strides)
/// and `span.len` time steps of `dy_rows[r][t] · x_rows[j][t]`.
type Micro = unsafe fn(&[*const f32], &[*const f32], Span, &mut [f32]);

/// The runs one micro-kernel call sums over: `len` steps in each of `batches` batch items, whose
/// `dy` and `x` rows lie `dy_stride` and `x_stride` values after the previous item's.
#[derive(Clone, Copy)]
struct Span {
    len: usize,
    batches: usize,
    dy_stride: usize,
    x_stride: usize,
}

/// Returns `gw` as `[out][taps]`.
pub(crate) fn weight_grad(g: &WeightGrad, isa: Isa) -> Vec<f32> {
    let (no, nt, micro): (usize, usize, Micro) = match isa {
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 if isa.is_supported() => (4, 3, micro_avx512),
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 if isa.is_supported() => (2, 4, micro_avx2),
        _ => (2, 4, micro_portable),
    };
    let ntaps = g.offsets.len();
    let n = g.out * ntaps;
    if n == 0 || g.t_out == 0 || g.batch == 0 {
        return vec![0.0; n];
    }
    let rows = g.out + ntaps;
    let tb = (BLOCK_BYTES / (4 * rows)).clamp(256, 2048) / LANES * LANES;
    let n_tb = g.t_out.div_ceil(tb);
    // Rows shorter than a block: one kernel call sums its tile over as many batch items as fit
    // the block before reducing its lanes (one item per call, short layers spent a third of the
    // call on the reductions: 128 ch x 256 steps, batch 4, ran at 120 GFLOP/s).
    let per_call = if n_tb == 1 {
        (tb / g.t_out.max(1)).clamp(1, g.batch)
    } else {
        1
    };
    let n_bg = g.batch.div_ceil(per_call);
    let threads = candle_core::utils::get_num_threads().max(1);
    // Output rows are split into groups when there are fewer (batch, time) blocks than threads.
    let n_ob = g.out.div_ceil(no);
    let groups = threads.div_ceil(n_bg * n_tb).clamp(1, n_ob);
    let units = n_bg * n_tb * groups;
    let parts = threads.clamp(1, units);
    let mut partial = vec![0f32; parts * n];
    let span = |len, batches| Span {
        len,
        batches,
        dy_stride: g.out * g.t_out,
        x_stride: g.x_len,
    };
    par_chunks_mut(&mut partial, n, |part, gw| {
        let mut dy_rows = vec![std::ptr::null::<f32>(); no];
        let mut x_rows = vec![std::ptr::null::<f32>(); nt];
        let mut sums = vec![0f32; no * nt];
        for unit in (part..units).step_by(parts) {
            let (og, rest) = (unit % groups, unit / groups);
            let (t0, b0) = ((rest % n_tb) * tb, (rest / n_tb) * per_call);
            let (len, nb) = (tb.min(g.t_out - t0), per_call.min(g.batch - b0));
            let (o_lo, o_hi) = (
                og * n_ob / groups * no,
                ((og + 1) * n_ob / groups * no).min(g.out),
            );
            let dyb = &g.dy[b0 * g.out * g.t_out..];
            let xb = &g.x[b0 * g.x_len..];
            for o0 in (o_lo..o_hi).step_by(no) {
                // Rows past `out` (a ragged last block) read the last row; their sums are
                // dropped below.
                for (r, p) in dy_rows.iter_mut().enumerate() {
                    *p = dyb[(o0 + r).min(g.out - 1) * g.t_out + t0..][..len].as_ptr();
                }
                for j0 in (0..ntaps).step_by(nt) {
                    for (j, p) in x_rows.iter_mut().enumerate() {
                        let off = g.offsets[(j0 + j).min(ntaps - 1)];
                        *p = xb[off + t0..][..len].as_ptr();
                    }
                    // SAFETY: every row pointer starts a readable run of `len` values in each of
                    // the span's nb batch items (item b0 + i's rows are i·stride further on,
                    // inside `dy` and `x`, which hold `batch` items of `out·t_out` and `x_len`
                    // values), and `micro` matches `isa`, whose support was checked when it was
                    // picked.
                    unsafe { micro(&dy_rows, &x_rows, span(len, nb), &mut sums) };
                    for r in 0..no.min(g.out - o0) {
                        for j in 0..nt.min(ntaps - j0) {
                            gw[(o0 + r) * ntaps + j0 + j] += sums[r * nt + j];
                        }
                    }
                }
            }
        }
    });
    let (first, rest) = partial.split_at_mut(n);
    for other in rest.chunks(n) {
        for (a, b) in first.iter_mut().zip(other) {
            *a += b;
        }
    }
    partial.truncate(n);
    partial
}

/// Portable body: `NO x NT` accumulators of 16 lanes, auto-vectorised for the enclosing target.
///
/// # Safety
/// For every batch item `b < span.batches`, `dy[r] + b·span.dy_stride` and `x[j] +
/// b·span.x_stride` must each start `span.len` readable values (`NO`, `NT` pointers).
#[inline(always)]
unsafe fn micro_body<const NO: usize, const NT: usize>(
    dy: &[*const f32],
    x: &[*const f32],
    span: Span,
    out: &mut [f32],
) {
    let mut acc = [[[0f32; LANES]; NT]; NO];
    let mut tail = [[0f32; NT]; NO];
    let len = span.len;
    let full = len / LANES * LANES;
    for bi in 0..span.batches {
        let (dyo, xo) = (bi * span.dy_stride, bi * span.x_stride);
        let mut t = 0;
        while t < full {
            let mut dv = [[0f32; LANES]; NO];
            for (r, d) in dv.iter_mut().enumerate() {
                *d = *(dy[r].add(dyo + t) as *const [f32; LANES]);
            }
            for j in 0..NT {
                let xv = *(x[j].add(xo + t) as *const [f32; LANES]);
                for r in 0..NO {
                    for l in 0..LANES {
                        acc[r][j][l] += dv[r][l] * xv[l];
                    }
                }
            }
            t += LANES;
        }
        for (r, row) in tail.iter_mut().enumerate() {
            for (j, s) in row.iter_mut().enumerate() {
                for tt in full..len {
                    *s += *dy[r].add(dyo + tt) * *x[j].add(xo + tt);
                }
            }
        }
    }
    for r in 0..NO {
        for j in 0..NT {
            out[r * NT + j] = acc[r][j].iter().sum::<f32>() + tail[r][j];
        }
    }
}

unsafe fn micro_portable(dy: &[*const f32], x: &[*const f32], span: Span, out: &mut [f32]) {
    micro_body::<2, 4>(dy, x, span, out)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn micro_avx2(dy: &[*const f32], x: &[*const f32], span: Span, out: &mut [f32]) {
    micro_body::<2, 4>(dy, x, span, out)
}

/// AVX-512: 4 rows x 3 taps = 12 zmm accumulators in named variables (the `dy` rows of a time
/// block stay in L1 across tap blocks). With 8 rows (24 accumulators) in arrays of vectors the
/// compiler kept part of them on the stack; this form and the rotated taps took the 64-channel
/// x 4096, batch 4 gradient from 141 to about 240 GFLOP/s.
///
/// # Safety
/// The CPU must support AVX-512F; bounds as for [`micro_body`].
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn micro_avx512(dy: &[*const f32], x: &[*const f32], span: Span, out: &mut [f32]) {
    use std::arch::x86_64::*;
    const NT: usize = 3;
    let z = _mm512_setzero_ps();
    let mut a00 = z;
    let mut a01 = z;
    let mut a02 = z;
    let mut a10 = z;
    let mut a11 = z;
    let mut a12 = z;
    let mut a20 = z;
    let mut a21 = z;
    let mut a22 = z;
    let mut a30 = z;
    let mut a31 = z;
    let mut a32 = z;
    let mut tail = [[0f32; NT]; 4];
    let len = span.len;
    let full = len / LANES * LANES;
    for bi in 0..span.batches {
        let (dyo, xo) = (bi * span.dy_stride, bi * span.x_stride);
        let (d0, d1, d2, d3) = (
            dy[0].add(dyo),
            dy[1].add(dyo),
            dy[2].add(dyo),
            dy[3].add(dyo),
        );
        let (x0, x1, x2) = (x[0].add(xo), x[1].add(xo), x[2].add(xo));
        // One time step of the 4 x 3 tile (named accumulators, not an array: see above).
        macro_rules! step {
            ($t:expr, $xv0:expr, $xv1:expr, $xv2:expr) => {{
                let (t, xv0, xv1, xv2) = ($t, $xv0, $xv1, $xv2);
                // One dy row against the three taps.
                macro_rules! row {
                    ($d:ident, $b0:ident, $b1:ident, $b2:ident) => {{
                        let dv = _mm512_loadu_ps($d.add(t));
                        $b0 = _mm512_fmadd_ps(dv, xv0, $b0);
                        $b1 = _mm512_fmadd_ps(dv, xv1, $b1);
                        $b2 = _mm512_fmadd_ps(dv, xv2, $b2);
                    }};
                }
                row!(d0, a00, a01, a02);
                row!(d1, a10, a11, a12);
                row!(d2, a20, a21, a22);
                row!(d3, a30, a31, a32);
            }};
        }
        let mut t = 0;
        // Taps that are one row shifted by 0, 1, 2 (a kernel-3 stride-1 channel): one aligned-
        // independent load per step, the shifted vectors by lane rotation from the next one.
        let shifted = x1 == x0.add(1) && x2 == x0.add(2);
        if shifted && full > LANES {
            let mut cur = _mm512_castps_si512(_mm512_loadu_ps(x0));
            while t + LANES < full {
                let next = _mm512_castps_si512(_mm512_loadu_ps(x0.add(t + LANES)));
                let xv0 = _mm512_castsi512_ps(cur);
                let xv1 = _mm512_castsi512_ps(_mm512_alignr_epi32::<1>(next, cur));
                let xv2 = _mm512_castsi512_ps(_mm512_alignr_epi32::<2>(next, cur));
                step!(t, xv0, xv1, xv2);
                cur = next;
                t += LANES;
            }
        }
        while t < full {
            let xv0 = _mm512_loadu_ps(x0.add(t));
            let xv1 = _mm512_loadu_ps(x1.add(t));
            let xv2 = _mm512_loadu_ps(x2.add(t));
            step!(t, xv0, xv1, xv2);
            t += LANES;
        }
        let (ds, xs) = ([d0, d1, d2, d3], [x0, x1, x2]);
        for (r, row) in tail.iter_mut().enumerate() {
            for (j, s) in row.iter_mut().enumerate() {
                for tt in full..len {
                    *s += *ds[r].add(tt) * *xs[j].add(tt);
                }
            }
        }
    }
    let acc = [
        [a00, a01, a02],
        [a10, a11, a12],
        [a20, a21, a22],
        [a30, a31, a32],
    ];
    for (r, row) in acc.iter().enumerate() {
        for (j, &v) in row.iter().enumerate() {
            out[r * NT + j] = _mm512_reduce_add_ps(v) + tail[r][j];
        }
    }
}
