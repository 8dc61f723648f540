//! LayerNorm over the last axis on the CPU with its backward, rows in parallel: what the
//! transformer blocks run while training (the stock composite is nine candle ops, most of them
//! serial, each adding a node to the backward pass).
//!
//! Forward per row of `f` features: `μ`, `σ² = mean((x − μ)²)` (two passes over the row, which is
//! in L1), `n = (x − μ)·rstd` with `rstd = 1/√(σ² + eps)`, `y = n·w + b`. Backward, with
//! `g = dy·w`: `dx = rstd·(g − mean(g) − n·mean(g·n))`, `dw = Σ_rows dy·n`, `db = Σ_rows dy`
//! (per-task partial sums in f64, added in task order).
#![allow(unsafe_code)]

use super::f32_slice;
use super::fast_path_ok;
use super::vec_math::lane_sum;
use candle_core::{bail, CpuStorage, CustomOp3, Layout, Result, Shape, Tensor, D};

/// Rows per task.
const ROWS_PER_TASK: usize = 32;

/// `(x − mean)/√(var + eps)·w + b` over the last axis of `x (…, f)`, `w`, `b (f)`. The fused op
/// for f32 CPU tensors; elsewhere candle's fused kernel when no gradient is recorded (it has no
/// backward), [`layer_norm_stock`] when one is. Differentiable.
pub fn layer_norm(x: &Tensor, w: &Tensor, b: &Tensor, eps: f64) -> Result<Tensor> {
    if !fast_path_ok(&[Some(x), Some(w), Some(b)]) || x.rank() == 0 {
        let tracked = [x, w, b].iter().any(|t| t.track_op());
        if !tracked && x.dtype() == candle_core::DType::F32 && x.is_contiguous() && x.rank() > 0 {
            return candle_nn::ops::layer_norm(x, w, b, eps as f32);
        }
        return layer_norm_stock(x, w, b, eps);
    }
    let f = x.dim(D::Minus1)?;
    if w.dims() != [f] || b.dims() != [f] {
        bail!(
            "adiff layer_norm: input {:?}, weight {:?}, bias {:?} do not fit",
            x.dims(),
            w.dims(),
            b.dims()
        );
    }
    x.contiguous()?
        .apply_op3(&w.contiguous()?, &b.contiguous()?, LayerNormOp { eps })
}

/// The stock candle composite (f32 statistics).
pub fn layer_norm_stock(x: &Tensor, w: &Tensor, b: &Tensor, eps: f64) -> Result<Tensor> {
    let mean = x.mean_keepdim(D::Minus1)?;
    let centred = x.broadcast_sub(&mean)?;
    let var = centred.sqr()?.mean_keepdim(D::Minus1)?;
    centred
        .broadcast_div(&(var + eps)?.sqrt()?)?
        .broadcast_mul(w)?
        .broadcast_add(b)
}

/// `(mean, rstd)` of one row.
#[inline]
fn row_stats(row: &[f32], eps: f64) -> (f32, f32) {
    let n = row.len().max(1) as f32;
    let mean = lane_sum(row.len(), |i| row[i]) / n;
    let var = lane_sum(row.len(), |i| (row[i] - mean) * (row[i] - mean)) / n;
    (mean, 1.0 / (var + eps as f32).sqrt())
}

struct LayerNormOp {
    eps: f64,
}

impl CustomOp3 for LayerNormOp {
    fn name(&self) -> &'static str {
        "adiff-layer-norm"
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
        let f = w.len().max(1);
        let eps = self.eps;
        let y = super::vec_math::par_collect(x.len(), ROWS_PER_TASK * f, |task, y| {
            let x = &x[task * ROWS_PER_TASK * f..][..y.len()];
            for (xr, yr) in x.chunks_exact(f).zip(y.chunks_exact_mut(f)) {
                let (mean, rstd) = row_stats(xr, eps);
                for (((yv, &xv), &wv), &bv) in yr.iter_mut().zip(xr).zip(w).zip(b) {
                    *yv = (xv - mean) * rstd * wv + bv;
                }
            }
        });
        Ok((CpuStorage::F32(y), xl.shape().clone()))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _b: &Tensor,
        _y: &Tensor,
        dy: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let f = w.dim(0)?;
        let n = x.elem_count();
        // [dx (n) | dw (f) | db (f)].
        let all = x.apply_op3_no_bwd(w, &dy.contiguous()?, &LayerNormBwdOp { eps: self.eps })?;
        let dx = all.narrow(0, 0, n)?.reshape(x.shape())?;
        let dw = all.narrow(0, n, f)?;
        let db = all.narrow(0, n + f, f)?;
        Ok((Some(dx), Some(dw), Some(db)))
    }
}

struct LayerNormBwdOp {
    eps: f64,
}

impl CustomOp3 for LayerNormBwdOp {
    fn name(&self) -> &'static str {
        "adiff-layer-norm-grad"
    }

    fn cpu_fwd(
        &self,
        xs: &CpuStorage,
        xl: &Layout,
        ws: &CpuStorage,
        wl: &Layout,
        gs: &CpuStorage,
        gl: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (x, w, dy) = (f32_slice(xs, xl)?, f32_slice(ws, wl)?, f32_slice(gs, gl)?);
        let f = w.len().max(1);
        if dy.len() != x.len() || x.len() % f != 0 {
            bail!(
                "adiff layer_norm backward: x {:?}, dy {:?}",
                xl.shape(),
                gl.shape()
            );
        }
        let n = x.len();
        let tasks = (n / f).div_ceil(ROWS_PER_TASK);
        // Per task: f values of Σ dy·n, then f of Σ dy (f64).
        let mut partial = vec![0f64; tasks * 2 * f];
        let mut dx = vec![0f32; n];
        let eps = self.eps;
        let dxp = super::conv_kernel::SharedPtr(dx.as_mut_ptr());
        super::vec_math::par_chunks_mut(&mut partial, 2 * f, |task, part| {
            // The whole wrapper, not its raw-pointer field: the closure must capture the `Send` type.
            #[allow(clippy::redundant_locals)]
            let dxp = dxp;
            let r0 = task * ROWS_PER_TASK * f;
            let len = (ROWS_PER_TASK * f).min(n - r0);
            // SAFETY: rows r0 .. r0 + len of dx are this task's alone.
            let dx = unsafe { std::slice::from_raw_parts_mut(dxp.0.add(r0), len) };
            let (xs, gs) = (&x[r0..r0 + len], &dy[r0..r0 + len]);
            let (pw, pb) = part.split_at_mut(f);
            for ((xr, gr), dr) in xs
                .chunks_exact(f)
                .zip(gs.chunks_exact(f))
                .zip(dx.chunks_exact_mut(f))
            {
                let (mean, rstd) = row_stats(xr, eps);
                let sg = lane_sum(f, |i| gr[i] * w[i]);
                let sgn = lane_sum(f, |i| gr[i] * w[i] * (xr[i] - mean) * rstd);
                let (mg, mgn) = (sg / f as f32, sgn / f as f32);
                for (((d, &xv), &gv), &wv) in dr.iter_mut().zip(xr).zip(gr).zip(w) {
                    let nv = (xv - mean) * rstd;
                    *d = rstd * (gv * wv - mg - nv * mgn);
                }
                for (((a, bsum), &xv), &gv) in pw.iter_mut().zip(pb.iter_mut()).zip(xr).zip(gr) {
                    *a += (gv * (xv - mean) * rstd) as f64;
                    *bsum += gv as f64;
                }
            }
        });
        let mut out = dx;
        out.reserve(2 * f);
        for half in 0..2 {
            for j in 0..f {
                let s: f64 = (0..tasks).map(|t| partial[t * 2 * f + half * f + j]).sum();
                out.push(s as f32);
            }
        }
        let len = out.len();
        Ok((CpuStorage::F32(out), Shape::from(len)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conv_tests::{max_abs_diff, rand_tensor};
    use candle_core::{DType, Var};

    /// Shapes: transformer tokens (many rows of 128), ragged row counts, one feature, 2-D.
    const CASES: &[&[usize]] = &[&[2, 100, 128], &[3, 33], &[5, 1], &[1, 7, 64]];

    /// The composite evaluated in f64.
    fn reference(x: &Tensor, w: &Tensor, b: &Tensor) -> Result<Tensor> {
        let f64s = |t: &Tensor| t.to_dtype(DType::F64);
        layer_norm_stock(&f64s(x)?, &f64s(w)?, &f64s(b)?, 1e-5)?.to_dtype(DType::F32)
    }

    #[test]
    fn forward_matches_the_composite_in_f64() -> Result<()> {
        for (i, shape) in CASES.iter().enumerate() {
            let f = *shape.last().expect("rank >= 1");
            let x = (rand_tensor(shape, 1 + i as u64, 2.0)? + 0.5)?;
            let w = rand_tensor(&[f], 11 + i as u64, 1.0)?;
            let b = rand_tensor(&[f], 21 + i as u64, 1.0)?;
            let (diff, mag) =
                max_abs_diff(&layer_norm(&x, &w, &b, 1e-5)?, &reference(&x, &w, &b)?)?;
            // f32 statistics over at most 128 features of O(1) values.
            assert!(diff <= 2e-5 * (1.0 + mag), "case {i}: {diff:e} (max {mag})");
        }
        Ok(())
    }

    #[test]
    fn gradients_match_the_composite_in_f64() -> Result<()> {
        for (i, shape) in CASES.iter().enumerate() {
            let f = *shape.last().expect("rank >= 1");
            let x = Var::from_tensor(&(rand_tensor(shape, 31 + i as u64, 2.0)? + 0.5)?)?;
            let w = Var::from_tensor(&rand_tensor(&[f], 41 + i as u64, 1.0)?)?;
            let b = Var::from_tensor(&rand_tensor(&[f], 51 + i as u64, 1.0)?)?;
            let up = rand_tensor(shape, 61 + i as u64, 1.0)?;
            let ours = (layer_norm(&x, &w, &b, 1e-5)? * &up)?
                .sum_all()?
                .backward()?;
            let (x64, w64, b64) = (
                Var::from_tensor(&x.to_dtype(DType::F64)?)?,
                Var::from_tensor(&w.to_dtype(DType::F64)?)?,
                Var::from_tensor(&b.to_dtype(DType::F64)?)?,
            );
            let want = (layer_norm_stock(&x64, &w64, &b64, 1e-5)? * up.to_dtype(DType::F64)?)?
                .sum_all()?
                .backward()?;
            for (name, ours_t, want_t) in [("x", &x, &x64), ("w", &w, &w64), ("b", &b, &b64)] {
                let a = ours.get(ours_t).expect("our gradient");
                let e = want
                    .get(want_t)
                    .expect("reference gradient")
                    .to_dtype(DType::F32)?;
                let (diff, mag) = max_abs_diff(a, &e)?;
                // dw, db sum up to 200 rows of O(1) products.
                assert!(
                    diff <= 1e-4 * (1.0 + mag),
                    "case {i} d{name}: {diff:e} (max {mag})"
                );
            }
        }
        Ok(())
    }
}
