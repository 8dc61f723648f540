//! Dense products of small row-major matrices on the convolutions' micro-kernels, one thread:
//! what the attention runs per head and query block.
//!
//! A micro-kernel accumulates `nr` rows x `w` columns of `y` as `Σ_i wt[r·ldw + i]·x[taps[i] + j]`
//! (see [`super::conv_kernel`]). With `wt` = rows of `a` and `taps[i] = i·ldb` it is a block of
//! `c = a·b`: `nr` rows of `a` broadcast against `w` columns of `b` streamed row by row. Blocks
//! that do not fill a whole tile (rows past the last multiple of `nr`, columns past the last
//! multiple of `w`) are summed by plain loops.
#![allow(unsafe_code)]

use super::conv_kernel::{spec, Spec, WEIGHT_CHUNK_BYTES};
use super::isa::Isa;
use candle_core::{bail, Result};

/// Zero starting values for a tile's first chunk of the inner dimension (at least `nr`).
const ZEROS: [f32; 16] = [0.0; 16];

/// A row-major matrix operand: element `(i, j)` at `data[i·ld + j]`.
#[derive(Clone, Copy)]
pub(crate) struct Mat<'a> {
    pub data: &'a [f32],
    pub ld: usize,
}

/// `c[i·ldc + j] = (accumulate ? c[i·ldc + j] : 0) + Σ_{p<k} a(i, p)·b(p, j)` for `i < m`, `j < n`.
/// `taps` is scratch for the tap list (reused between calls).
#[allow(clippy::too_many_arguments)]
pub(crate) fn gemm(
    isa: Isa,
    (m, n, k): (usize, usize, usize),
    a: Mat,
    b: Mat,
    c: &mut [f32],
    ldc: usize,
    accumulate: bool,
    taps: &mut Vec<usize>,
) -> Result<()> {
    if m == 0 || n == 0 {
        return Ok(());
    }
    let fits = |len: usize, rows: usize, ld: usize, cols: usize| {
        rows == 0 || cols == 0 || (ld >= cols && len >= (rows - 1) * ld + cols)
    };
    if !fits(a.data.len(), m, a.ld, k)
        || !fits(b.data.len(), k, b.ld, n)
        || !fits(c.len(), m, ldc, n)
    {
        bail!("adiff gemm: operands do not hold a [{m} x {k}]·[{k} x {n}] product");
    }
    if !isa.is_supported() {
        bail!("adiff ops: this CPU cannot run {isa:?} kernels");
    }
    let Spec { nr, w, micro } = spec(isa);
    let (m_full, n_full) = if k == 0 || nr > ZEROS.len() {
        (0, 0)
    } else {
        (m / nr * nr, n / w * w)
    };
    if !accumulate {
        // The whole tiles start from zero in their first call; the edges are zeroed here.
        for i in 0..m {
            let from = if i < m_full { n_full } else { 0 };
            c[i * ldc + from..i * ldc + n].fill(0.0);
        }
    }
    taps.clear();
    taps.extend((0..k).map(|p| p * b.ld));
    let chunk = (WEIGHT_CHUNK_BYTES / (nr * 4)).max(1);
    for j0 in (0..n_full).step_by(w) {
        for i0 in (0..m_full).step_by(nr) {
            for p0 in (0..k).step_by(chunk) {
                let p1 = (p0 + chunk).min(k);
                // SAFETY: rows i0..i0 + nr < m of `a` hold k values from a.ld·i, columns j0..j0 + w
                // <= n of `b` rows p < k and of `c` rows i < m are inside their slices (checked
                // above); the taps p·b.ld + j0 + w stay inside `b`. The first chunk starts from
                // zero (ZEROS holds >= nr values) or, accumulating, from `c`; later ones from `c`.
                let start = if p0 == 0 && !accumulate {
                    ZEROS.as_ptr()
                } else {
                    std::ptr::null()
                };
                unsafe {
                    micro(
                        &taps[p0..p1],
                        b.data.as_ptr().add(j0),
                        a.data.as_ptr().add(i0 * a.ld + p0),
                        a.ld,
                        c.as_mut_ptr().add(i0 * ldc + j0),
                        ldc,
                        start,
                    );
                }
            }
        }
    }
    // Edges: the rows below the last whole row block (all columns), and the columns right of
    // the last whole column block (the whole-block rows).
    let edge = |c: &mut [f32], rows: std::ops::Range<usize>, cols: std::ops::Range<usize>| {
        if cols.is_empty() {
            return;
        }
        for i in rows {
            let ci = &mut c[i * ldc..i * ldc + n];
            for p in 0..k {
                let aip = a.data[i * a.ld + p];
                let bp = &b.data[p * b.ld..p * b.ld + n];
                for j in cols.clone() {
                    ci[j] += aip * bp[j];
                }
            }
        }
    };
    edge(c, m_full..m, 0..n);
    edge(c, 0..m_full, n_full..n);
    Ok(())
}

/// Transpose tiles of B x B values, so that both sides of a tile stay in L1.
const TILE: usize = 16;

/// `dst (cols, rows) = src (rows, cols)ᵀ`, row-major, `dst` resized to fit (the operands of
/// [`gemm`] that come the other way round).
pub(crate) fn transpose_into(src: &[f32], rows: usize, cols: usize, dst: &mut Vec<f32>) {
    dst.clear();
    dst.resize(rows * cols, 0.0);
    for (blk, d) in dst.chunks_mut(TILE * rows.max(1)).enumerate() {
        transpose_rows(src, rows, cols, blk * TILE, None, d);
    }
}

/// [`transpose_into`] in parallel blocks of 16 destination rows, plus `add[i]` on every value of
/// source row `i` when given (the serial transposes and bias loop were a third of a 128-row
/// transformer Linear).
pub(crate) fn par_transpose(
    src: &[f32],
    rows: usize,
    cols: usize,
    add: Option<&[f32]>,
) -> Vec<f32> {
    super::vec_math::par_collect(rows * cols, TILE * rows.max(1), |blk, d| {
        transpose_rows(src, rows, cols, blk * TILE, add, d)
    })
}

/// Destination rows `j0 ..` (as many as `dst` holds, `rows` values each) of `src (rows, cols)ᵀ`
/// (+ `add[i]` per source row), in tiles of `TILE` source rows.
fn transpose_rows(
    src: &[f32],
    rows: usize,
    cols: usize,
    j0: usize,
    add: Option<&[f32]>,
    dst: &mut [f32],
) {
    let nj = dst.len() / rows.max(1);
    for i0 in (0..rows).step_by(TILE) {
        for i in i0..(i0 + TILE).min(rows) {
            let a = add.map_or(0.0, |a| a[i]);
            for (jj, &v) in src[i * cols + j0..][..nj].iter().enumerate() {
                dst[jj * rows + i] = v + a;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lcg(seed: u64, len: usize) -> Vec<f32> {
        let mut s = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (0..len)
            .map(|_| {
                s = s
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
            })
            .collect()
    }

    #[test]
    fn products_match_f64_on_every_isa() -> Result<()> {
        // (m, n, k, lda, ldb, ldc): whole tiles, ragged rows and columns, k across the tap
        // chunk (512 for 8 rows), padded leading dimensions, one element.
        let cases = [
            (64, 64, 32, 32, 64, 64),
            (17, 70, 9, 12, 75, 71),
            (8, 32, 600, 600, 40, 33),
            (1, 1, 1, 1, 1, 1),
            (5, 3, 0, 1, 3, 3),
            (33, 48, 100, 100, 48, 48),
        ];
        for isa in Isa::runnable() {
            for (ci, &(m, n, k, lda, ldb, ldc)) in cases.iter().enumerate() {
                let a = lcg(1 + ci as u64, m * lda.max(1));
                let b = lcg(100 + ci as u64, k.max(1) * ldb);
                let c0 = lcg(200 + ci as u64, m * ldc);
                for accumulate in [false, true] {
                    let mut c = c0.clone();
                    let mut taps = Vec::new();
                    gemm(
                        isa,
                        (m, n, k),
                        Mat { data: &a, ld: lda },
                        Mat { data: &b, ld: ldb },
                        &mut c,
                        ldc,
                        accumulate,
                        &mut taps,
                    )?;
                    for i in 0..m {
                        for j in 0..ldc {
                            let got = c[i * ldc + j];
                            if j >= n {
                                // Past the product's columns nothing is written.
                                assert_eq!(got, c0[i * ldc + j], "{isa:?} case {ci}: ({i}, {j})");
                                continue;
                            }
                            let mut want = if accumulate {
                                c0[i * ldc + j] as f64
                            } else {
                                0.0
                            };
                            for p in 0..k {
                                want += a[i * lda + p] as f64 * b[p * ldb + j] as f64;
                            }
                            // f32 sums of k products of values in [-1, 1].
                            let tol = 1e-6 * (1.0 + k as f64);
                            assert!(
                                (got as f64 - want).abs() <= tol,
                                "{isa:?} case {ci} acc {accumulate}: ({i}, {j}) {got} vs {want}"
                            );
                        }
                    }
                }
            }
        }
        Ok(())
    }

    #[test]
    fn transpose_moves_every_value() {
        // Off the 16 x 16 blocks on both sides.
        let (rows, cols) = (19, 37);
        let src = lcg(7, rows * cols);
        let mut dst = vec![1.0; 5];
        transpose_into(&src, rows, cols, &mut dst);
        assert_eq!(dst.len(), rows * cols);
        for i in 0..rows {
            for j in 0..cols {
                assert_eq!(dst[j * rows + i], src[i * cols + j], "({i}, {j})");
            }
        }
    }

    #[test]
    fn parallel_transpose_adds_per_source_row() {
        let (rows, cols) = (37, 50);
        let src = lcg(8, rows * cols);
        let add = lcg(9, rows);
        let dst = par_transpose(&src, rows, cols, Some(&add));
        assert_eq!(dst.len(), rows * cols);
        for i in 0..rows {
            for j in 0..cols {
                assert_eq!(dst[j * rows + i], src[i * cols + j] + add[i], "({i}, {j})");
            }
        }
        assert_eq!(
            par_transpose(&src, rows, cols, None)[cols * rows - 1],
            src[rows * cols - 1]
        );
    }

    #[test]
    fn operands_too_short_are_an_error() {
        let (a, b) = (vec![0f32; 6], vec![0f32; 6]);
        let mut c = vec![0f32; 3];
        let r = gemm(
            Isa::Portable,
            (2, 2, 3),
            Mat { data: &a, ld: 3 },
            Mat { data: &b, ld: 2 },
            &mut c,
            2,
            false,
            &mut Vec::new(),
        );
        assert!(r.is_err());
    }
}
