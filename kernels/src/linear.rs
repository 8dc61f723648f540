//! `nn.Linear` on the CPU: `y = x Wᵀ + b` over the last axis, its products on the convolutions'
//! micro-kernels ([`super::small_gemm`]) in blocks of rows spread over candle's thread pool, the
//! bias added in the same pass. Differentiable: `dx = dy W` by the same row-block product, and
//! `dW = dyᵀ x` with `db = Σ_rows dy` in one op whose tasks each own a block of output features
//! (gathering their columns of `dy`). The stock composite (`matmul` + `broadcast_add`) ran its
//! products on a second thread pool beside candle's and its bias gradient as a serial reduction.
#![allow(unsafe_code)]

use super::conv_kernel::SharedPtr;
use super::isa::Isa;
use super::small_gemm::{gemm, par_transpose, Mat};
use super::{f32_slice, fast_path_ok};
use candle_core::{bail, CpuStorage, CustomOp2, CustomOp3, Layout, Result, Shape, Tensor};
use std::sync::atomic::{AtomicBool, Ordering};

/// Rows of `x` per task of the row-block products.
const ROW_BLOCK: usize = 64;
/// Output features per task of the weight gradient.
const FEATURE_BLOCK: usize = 32;

/// `x Wᵀ + b` for `x (…, in)`, `w (out, in)`, `b (out)`: `(…, out)`. Fast kernel for f32 CPU
/// tensors, [`linear_stock`] otherwise. Differentiable.
pub fn linear(x: &Tensor, w: &Tensor, b: Option<&Tensor>) -> Result<Tensor> {
    linear_with(x, w, b, Isa::detect())
}

/// [`linear`] with an explicit instruction set.
pub fn linear_with(x: &Tensor, w: &Tensor, b: Option<&Tensor>, isa: Isa) -> Result<Tensor> {
    if !fast_path_ok(&[Some(x), Some(w), b]) || x.rank() == 0 || w.rank() != 2 {
        return linear_stock(x, w, b);
    }
    let (out, inp) = w.dims2()?;
    let dims = x.dims();
    if dims[dims.len() - 1] != inp {
        bail!("adiff linear: input {dims:?} does not end in the weight's {inp} features");
    }
    let bias = match b {
        Some(b) => b.contiguous()?,
        None => Tensor::zeros(out, w.dtype(), w.device())?,
    };
    let rows = x.elem_count() / inp.max(1);
    let x2 = x.contiguous()?.reshape((rows, inp))?;
    let y = x2.apply_op3(&w.contiguous()?, &bias, LinearOp { isa })?;
    let mut out_dims = dims.to_vec();
    if let Some(last) = out_dims.last_mut() {
        *last = out;
    }
    y.reshape(out_dims)
}

/// The stock candle composite: `x.matmul(wᵀ)` over the flattened rows, `broadcast_add(b)`.
pub fn linear_stock(x: &Tensor, w: &Tensor, b: Option<&Tensor>) -> Result<Tensor> {
    let dims = x.dims();
    let inp = dims.last().copied().unwrap_or(1);
    let rows = x.elem_count() / inp.max(1);
    let y = x.reshape((rows, inp))?.matmul(&w.t()?)?;
    let y = match b {
        Some(b) => y.broadcast_add(b)?,
        None => y,
    };
    let mut out_dims = dims.to_vec();
    if let Some(last) = out_dims.last_mut() {
        *last = w.dim(0)?;
    }
    y.reshape(out_dims)
}

/// Below this many rows the forward is one dot product per output (rows of `W` read in place):
/// transposing `W` for the product cost more than the product itself (the UNet's per-block
/// time mappings are one row per batch item; transposing their weights made the default forward
/// 265 -> 400 ms).
const FEW_ROWS: usize = 16;

/// `y (rows, out) = x Wᵀ + b` by dot products, output features in parallel.
fn few_rows(
    isa: Isa,
    x: &[f32],
    w: &[f32],
    b: &[f32],
    (rows, inp, out): (usize, usize, usize),
) -> Vec<f32> {
    // Transposed result [out][rows], one task per block of output features, then reordered.
    let yt = super::vec_math::par_collect(out * rows, 64 * rows.max(1), |blk, yt| {
        let o0 = blk * 64;
        for (j, col) in yt.chunks_exact_mut(rows.max(1)).enumerate() {
            let o = o0 + j;
            let wr = &w[o * inp..(o + 1) * inp];
            for (r, v) in col.iter_mut().enumerate() {
                *v = b[o] + dot(isa, &x[r * inp..(r + 1) * inp], wr);
            }
        }
    });
    par_transpose(&yt, out, rows, None)
}

#[inline(always)]
fn dot_body(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    super::vec_math::lane_sum(n, |i| a[i] * b[i])
}

super::isa::per_isa!(fn dot(a: &[f32], b: &[f32]) -> f32 => dot_body);

/// `c (rows, n) = a (rows, k) · b (k, n) [+ bias (n)]`, row blocks in parallel.
fn rows_times(
    isa: Isa,
    a: &[f32],
    (rows, k, n): (usize, usize, usize),
    b: &[f32],
    bias: Option<&[f32]>,
) -> Result<Vec<f32>> {
    let failed = AtomicBool::new(false);
    let c = super::vec_math::par_collect(rows * n, ROW_BLOCK * n.max(1), |blk, c| {
        let r0 = blk * ROW_BLOCK;
        let rb = c.len() / n.max(1);
        let a = Mat {
            data: &a[r0 * k..(r0 + rb) * k],
            ld: k,
        };
        let mut taps = Vec::new();
        let done = gemm(
            isa,
            (rb, n, k),
            a,
            Mat { data: b, ld: n },
            c,
            n,
            false,
            &mut taps,
        );
        if done.is_err() {
            failed.store(true, Ordering::Relaxed);
        }
        if let Some(bias) = bias {
            for row in c.chunks_exact_mut(n) {
                for (y, &bv) in row.iter_mut().zip(bias) {
                    *y += bv;
                }
            }
        }
    });
    if failed.into_inner() {
        bail!("adiff linear: a [{rows} x {k}]·[{k} x {n}] product did not fit its operands");
    }
    Ok(c)
}

struct LinearOp {
    isa: Isa,
}

impl CustomOp3 for LinearOp {
    fn name(&self) -> &'static str {
        "adiff-linear"
    }

    fn cpu_fwd(
        &self,
        xs: &CpuStorage,
        xl: &Layout,
        ws: &CpuStorage,
        wl: &Layout,
        bs: &CpuStorage,
        bl: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (x, w, b) = (f32_slice(xs, xl)?, f32_slice(ws, wl)?, f32_slice(bs, bl)?);
        let (rows, inp) = xl.shape().dims2()?;
        let (out, inp_w) = wl.shape().dims2()?;
        if inp != inp_w || b.len() != out {
            bail!(
                "adiff linear: input {:?}, weight {:?}, bias {:?} do not fit",
                xl.shape(),
                wl.shape(),
                bl.shape()
            );
        }
        if rows < FEW_ROWS {
            let y = few_rows(self.isa, x, w, b, (rows, inp, out));
            return Ok((CpuStorage::F32(y), Shape::from((rows, out))));
        }
        let y = if inp * out <= rows * (inp + out) {
            // Wᵀ (in, out) as the product's right operand.
            let wt = par_transpose(w, out, inp, None);
            rows_times(self.isa, x, (rows, inp, out), &wt, Some(b))?
        } else {
            // Fewer values to move the other way round: yᵀ = W xᵀ (+ b per row), transposed back.
            let xt = par_transpose(x, rows, inp, None);
            let yt = rows_times(self.isa, w, (out, inp, rows), &xt, None)?;
            par_transpose(&yt, out, rows, Some(b))
        };
        Ok((CpuStorage::F32(y), Shape::from((rows, out))))
    }

    /// `dx = dy W`, `dW = dyᵀ x`, `db = Σ_rows dy`.
    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _b: &Tensor,
        _y: &Tensor,
        dy: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let dy = dy.contiguous()?;
        let dx = dy.apply_op2_no_bwd(w, &ProductOp { isa: self.isa })?;
        let inp = w.dim(1)?;
        // [out, in + 1]: dW beside db.
        let gwb = dy.apply_op2_no_bwd(x, &WeightGradOp { isa: self.isa })?;
        let dw = gwb.narrow(1, 0, inp)?;
        let db = gwb.narrow(1, inp, 1)?.squeeze(1)?;
        Ok((Some(dx), Some(dw), Some(db)))
    }
}

/// `a (rows, k) · b (k, n)`.
struct ProductOp {
    isa: Isa,
}

impl CustomOp2 for ProductOp {
    fn name(&self) -> &'static str {
        "adiff-linear-input-grad"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (a, b) = (f32_slice(s1, l1)?, f32_slice(s2, l2)?);
        let (rows, k) = l1.shape().dims2()?;
        let (k2, n) = l2.shape().dims2()?;
        if k != k2 {
            bail!("adiff linear backward: {:?} x {:?}", l1.shape(), l2.shape());
        }
        let c = rows_times(self.isa, a, (rows, k, n), b, None)?;
        Ok((CpuStorage::F32(c), Shape::from((rows, n))))
    }
}

/// `[dyᵀ x | Σ_rows dy]` `(out, in + 1)` for `dy (rows, out)`, `x (rows, in)`: each task gathers
/// its block of `dy`'s columns (as rows), sums them for `db`, and multiplies them by `x`.
struct WeightGradOp {
    isa: Isa,
}

impl CustomOp2 for WeightGradOp {
    fn name(&self) -> &'static str {
        "adiff-linear-weight-grad"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (dy, x) = (f32_slice(s1, l1)?, f32_slice(s2, l2)?);
        let (rows, out) = l1.shape().dims2()?;
        let (rows_x, inp) = l2.shape().dims2()?;
        if rows != rows_x {
            bail!(
                "adiff linear backward: dy {:?}, x {:?}",
                l1.shape(),
                l2.shape()
            );
        }
        let ld = inp + 1;
        let mut g = vec![0f32; out * ld];
        let gp = SharedPtr(g.as_mut_ptr());
        let failed = AtomicBool::new(false);
        let isa = self.isa;
        candle_core::utils::barrier_pool().execute_chunked(out.div_ceil(FEATURE_BLOCK), |blocks| {
            // The whole wrapper, not its raw-pointer field: the closure must capture the `Send` type.
            #[allow(clippy::redundant_locals)]
            let gp = gp;
            let (mut cols, mut taps) = (Vec::new(), Vec::new());
            for blk in blocks {
                let o0 = blk * FEATURE_BLOCK;
                let ob = FEATURE_BLOCK.min(out - o0);
                // cols[j][r] = dy[r][o0 + j].
                cols.clear();
                cols.resize(ob * rows, 0.0);
                for (r, row) in dy.chunks_exact(out).enumerate() {
                    for (j, &v) in row[o0..o0 + ob].iter().enumerate() {
                        cols[j * rows + r] = v;
                    }
                }
                // SAFETY: rows o0..o0 + ob of g (ld values each) are this task's alone.
                let dst = unsafe { std::slice::from_raw_parts_mut(gp.0.add(o0 * ld), ob * ld) };
                let a = Mat {
                    data: &cols,
                    ld: rows,
                };
                let b = Mat { data: x, ld: inp };
                if gemm(isa, (ob, inp, rows), a, b, dst, ld, false, &mut taps).is_err() {
                    failed.store(true, Ordering::Relaxed);
                }
                for j in 0..ob {
                    let s: f64 = cols[j * rows..(j + 1) * rows]
                        .iter()
                        .map(|&v| v as f64)
                        .sum();
                    dst[j * ld + inp] = s as f32;
                }
            }
        });
        if failed.into_inner() {
            bail!("adiff linear backward: the weight gradient's product did not fit");
        }
        Ok((CpuStorage::F32(g), Shape::from((out, ld))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conv_tests::{max_abs_diff, rand_tensor};
    use candle_core::Var;

    /// (leading dims, in, out): whole micro-kernel tiles, ragged rows / features, one row, 3-D;
    /// rows below FEW_ROWS, and rows few enough that the forward transposes x instead of W.
    const CASES: &[(&[usize], usize, usize)] = &[
        (&[2, 10], 64, 96),
        (&[7], 50, 30),
        (&[128], 64, 96),
        (&[2, 70], 33, 17),
        (&[1], 5, 3),
        (&[4, 50], 128, 256),
        (&[3, 7, 11], 40, 72),
    ];

    #[test]
    fn forward_matches_stock_on_every_isa() -> Result<()> {
        for isa in Isa::runnable() {
            for (i, &(lead, inp, out)) in CASES.iter().enumerate() {
                let shape: Vec<usize> = lead.iter().copied().chain([inp]).collect();
                let x = rand_tensor(&shape, 1 + i as u64, 1.0)?;
                let w = rand_tensor(&[out, inp], 11 + i as u64, 0.3)?;
                let b = rand_tensor(&[out], 21 + i as u64, 0.3)?;
                for bias in [Some(&b), None] {
                    let ours = linear_with(&x, &w, bias, isa)?;
                    let want = linear_stock(&x, &w, bias)?;
                    let (diff, mag) = max_abs_diff(&ours, &want)?;
                    // f32 sums of up to 128 products: 2e-6 relative to the largest output.
                    assert!(
                        diff <= 2e-6 * (1.0 + mag),
                        "{isa:?} case {i}: {diff:e} (max {mag})"
                    );
                }
            }
        }
        Ok(())
    }

    #[test]
    fn gradients_match_stock_on_every_isa() -> Result<()> {
        for isa in Isa::runnable() {
            for (i, &(lead, inp, out)) in CASES.iter().enumerate() {
                let shape: Vec<usize> = lead.iter().copied().chain([inp]).collect();
                let x = Var::from_tensor(&rand_tensor(&shape, 31 + i as u64, 1.0)?)?;
                let w = Var::from_tensor(&rand_tensor(&[out, inp], 41 + i as u64, 0.3)?)?;
                let b = Var::from_tensor(&rand_tensor(&[out], 51 + i as u64, 0.3)?)?;
                let mut up_shape = shape.clone();
                *up_shape.last_mut().expect("rank >= 1") = out;
                let up = rand_tensor(&up_shape, 61 + i as u64, 1.0)?;
                let ours = linear_with(&x, &w, Some(&b), isa)?;
                let want = linear_stock(&x, &w, Some(&b))?;
                let g_ours = (ours * &up)?.sum_all()?.backward()?;
                let g_want = (want * &up)?.sum_all()?.backward()?;
                for (name, t) in [("x", &x), ("w", &w), ("b", &b)] {
                    let (a, e) = (g_ours.get(t), g_want.get(t));
                    let (a, e) = (a.expect("our gradient"), e.expect("stock gradient"));
                    let (diff, mag) = max_abs_diff(a, e)?;
                    // Sums over up to 231 rows (dW, db) of O(1) products.
                    assert!(
                        diff <= 1e-5 * (1.0 + mag),
                        "{isa:?} case {i} d{name}: {diff:e} (max {mag})"
                    );
                }
            }
        }
        Ok(())
    }
}
