//! The transforms of Winograd's F(4, 3) (the parent module gives the algorithm): `G g` of the
//! weights, `Bᵀ d` of the input tiles into panels, and `Aᵀ m` of the products back to outputs,
//! each a plain loop compiled once per instruction set (on AVX-512 the weights' stride-3 triples
//! are split by permutes, and the inputs' stride-4 tiles de-interleaved by permutes).
#![allow(unsafe_code)]

use super::super::isa::Isa;

pub(super) fn transform_weights(
    isa: Isa,
    w: &[f32],
    ci: usize,
    nr: usize,
    ldu: usize,
    dst: &mut [f32],
) {
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
pub(super) unsafe fn transform_input(
    isa: Isa,
    x: &[f32],
    pad: usize,
    panels: Panels,
    dst: *mut f32,
) {
    match isa {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: as in `transform_weights`; the writes are the caller's contract.
        Isa::Avx512 => unsafe { input_avx512(x, pad, panels, dst) },
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 => unsafe { input_avx2(x, pad, panels, dst) },
        _ => unsafe { input_body(x, pad, panels, dst) },
    }
}

pub(super) fn transform_output(isa: Isa, ms: [&[f32]; 6], bias: f32, dst: &mut [f32]) {
    match isa {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: as in `transform_weights`.
        Isa::Avx512 => unsafe { output_avx512(ms, bias, dst) },
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 => unsafe { output_avx2(ms, bias, dst) },
        _ => output_body(ms, bias, dst),
    }
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

/// AVX-512 copy of [`output_body`].
///
/// # Safety
/// The CPU must support AVX-512F.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn output_avx512(ms: [&[f32]; 6], bias: f32, dst: &mut [f32]) {
    output_body(ms, bias, dst)
}

/// AVX2+FMA copy of [`output_body`].
///
/// # Safety
/// The CPU must support AVX2 and FMA.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn output_avx2(ms: [&[f32]; 6], bias: f32, dst: &mut [f32]) {
    output_body(ms, bias, dst)
}

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
pub(super) struct Panels {
    pub count: usize,
    pub width: usize,
    pub stride: usize,
    pub xi_stride: usize,
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
    padded_row(x, pad, panels, |xp| {
        let Panels {
            count,
            width,
            stride,
            xi_stride,
        } = panels;
        for p in 0..count {
            // SAFETY: tile p·width + i reads xp[4(p·width + i) .. + 6] <= 4·count·width + 2 <
            // xp.len(); the writes are the caller's contract.
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

/// Calls `f` with `x` zero-padded by `pad` on the left and with zeros past its end, in a per-thread
/// buffer of `4·count·width + 4` values plus 16 (what one 16-lane read past the last tile
/// touches).
fn padded_row(x: &[f32], pad: usize, panels: Panels, f: impl FnOnce(&[f32])) {
    ROW.with(|row| {
        let mut xp = row.borrow_mut();
        let len = 4 * panels.count * panels.width + 4;
        if xp.len() < len + 16 {
            xp.resize(len + 16, 0.0);
        }
        let xp = &mut xp[..len + 16];
        let i0 = pad.min(len);
        let n = x.len().min(len - i0);
        xp[..i0].fill(0.0);
        xp[i0..i0 + n].copy_from_slice(&x[..n]);
        xp[i0 + n..].fill(0.0);
        f(xp)
    })
}

/// AVX-512 form of [`input_body`], 16 tiles per step: the four 16-lane reads of the tiles' 64
/// inputs are de-interleaved by permutes into `d0 .. d3` (`dk[i] = x_pad[4i + k]`), `d4`, `d5` are
/// `d0`, `d1` moved by one tile, and the six rows of `Bᵀ d` are vector sums. Panels whose width
/// is not a multiple of 16 take [`input_body`]. The scalar loop wrote six strided values per tile
/// and was a fifth of a kernel-3 convolution's time (256 channels x 4096).
///
/// # Safety
/// The CPU must support AVX-512F; the rest as for [`input_body`].
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn input_avx512(x: &[f32], pad: usize, panels: Panels, dst: *mut f32) {
    use std::arch::x86_64::*;
    if !panels.width.is_multiple_of(16) {
        return unsafe { input_body(x, pad, panels, dst) };
    }
    let Panels {
        count,
        width,
        stride,
        xi_stride,
    } = panels;
    // Lanes 0-7 of a permute of (a, b): inputs k, k+4, ... k+28; lanes 8-15: k+1, k+5, ...
    let even = _mm512_setr_epi32(0, 4, 8, 12, 16, 20, 24, 28, 1, 5, 9, 13, 17, 21, 25, 29);
    let odd = _mm512_setr_epi32(2, 6, 10, 14, 18, 22, 26, 30, 3, 7, 11, 15, 19, 23, 27, 31);
    // One tile on: lanes 1..16 of (d, next) for d4; lane 16 + 1 of next for d5's last.
    let next4 = _mm512_setr_epi32(1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16);
    let next5 = _mm512_setr_epi32(1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 17);
    let (c2, c4, c5) = (
        _mm512_set1_ps(2.0),
        _mm512_set1_ps(4.0),
        _mm512_set1_ps(5.0),
    );
    padded_row(x, pad, panels, |xp| {
        for p in 0..count {
            for i0 in (0..width).step_by(16) {
                // SAFETY: tiles p·width + i0 .. + 16 read xp[4(p·width + i0) .. + 80] <=
                // 4·count·width + 16 < xp.len(); the writes are the caller's contract.
                unsafe {
                    let base = xp.as_ptr().add(4 * (p * width + i0));
                    let v0 = _mm512_loadu_ps(base);
                    let v1 = _mm512_loadu_ps(base.add(16));
                    let v2 = _mm512_loadu_ps(base.add(32));
                    let v3 = _mm512_loadu_ps(base.add(48));
                    let v4 = _mm512_loadu_ps(base.add(64));
                    let p01 = _mm512_permutex2var_ps(v0, even, v1);
                    let p23 = _mm512_permutex2var_ps(v2, even, v3);
                    let q01 = _mm512_permutex2var_ps(v0, odd, v1);
                    let q23 = _mm512_permutex2var_ps(v2, odd, v3);
                    let d0 = _mm512_shuffle_f32x4::<0x44>(p01, p23);
                    let d1 = _mm512_shuffle_f32x4::<0xEE>(p01, p23);
                    let d2 = _mm512_shuffle_f32x4::<0x44>(q01, q23);
                    let d3 = _mm512_shuffle_f32x4::<0xEE>(q01, q23);
                    let d4 = _mm512_permutex2var_ps(d0, next4, v4);
                    let d5 = _mm512_permutex2var_ps(d1, next5, v4);
                    let pp = _mm512_sub_ps(d1, d3);
                    let q = _mm512_sub_ps(d1, d2);
                    let o0 = _mm512_add_ps(_mm512_fmsub_ps(c4, d0, _mm512_mul_ps(c5, d2)), d4);
                    let o1 = _mm512_add_ps(_mm512_fnmadd_ps(c4, _mm512_add_ps(d1, d2), d3), d4);
                    let o2 = _mm512_add_ps(_mm512_fmsub_ps(c4, q, d3), d4);
                    let d4m2 = _mm512_sub_ps(d4, d2);
                    let o3 = _mm512_fnmadd_ps(c2, pp, d4m2);
                    let o4 = _mm512_fmadd_ps(c2, pp, d4m2);
                    let o5 = _mm512_add_ps(_mm512_fmsub_ps(c4, d1, _mm512_mul_ps(c5, d3)), d5);
                    let dp = dst.add(p * stride + i0);
                    _mm512_storeu_ps(dp, o0);
                    _mm512_storeu_ps(dp.add(xi_stride), o1);
                    _mm512_storeu_ps(dp.add(2 * xi_stride), o2);
                    _mm512_storeu_ps(dp.add(3 * xi_stride), o3);
                    _mm512_storeu_ps(dp.add(4 * xi_stride), o4);
                    _mm512_storeu_ps(dp.add(5 * xi_stride), o5);
                }
            }
        }
    });
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
