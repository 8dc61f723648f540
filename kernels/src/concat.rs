//! `cat([a, b·scale], dim 1)` for `(batch, channels, time)` tensors in one parallel pass, with its
//! backward: the UNet's skip connections (scaled by 1/√2, then concatenated with the upsampled
//! path). candle's scale and concatenation are two serial full-tensor passes, and two nodes in the
//! backward pass.

use super::{f32_slice, fast_path_ok};
use candle_core::{bail, CpuStorage, CustomOp2, Layout, Result, Shape, Tensor};

/// `cat([a, b·scale], 1)` for `a (n, ca, t)`, `b (n, cb, t)`: `(n, ca + cb, t)`. The fused op for
/// f32 CPU tensors, the candle composite otherwise. Differentiable.
pub fn cat_scaled(a: &Tensor, b: &Tensor, scale: f64) -> Result<Tensor> {
    let fits = a.rank() == 3 && b.rank() == 3 && a.dim(0)? == b.dim(0)? && a.dim(2)? == b.dim(2)?;
    if !fast_path_ok(&[Some(a), Some(b)]) || !fits {
        return cat_scaled_stock(a, b, scale);
    }
    let op = CatScaled {
        scale: scale as f32,
    };
    let (a, b) = (a.contiguous()?, b.contiguous()?);
    if a.track_op() || b.track_op() {
        a.apply_op2(&b, op)
    } else {
        a.apply_op2_no_bwd(&b, &op)
    }
}

/// The candle composite.
pub fn cat_scaled_stock(a: &Tensor, b: &Tensor, scale: f64) -> Result<Tensor> {
    Tensor::cat(&[a, &(b * scale)?], 1)
}

struct CatScaled {
    scale: f32,
}

impl CustomOp2 for CatScaled {
    fn name(&self) -> &'static str {
        "adiff-cat-scaled"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (a, b) = (f32_slice(s1, l1)?, f32_slice(s2, l2)?);
        let (n, ca, t) = l1.shape().dims3()?;
        let (n2, cb, t2) = l2.shape().dims3()?;
        if n != n2 || t != t2 {
            bail!(
                "adiff cat: {:?} and {:?} do not fit",
                l1.shape(),
                l2.shape()
            );
        }
        let c = ca + cb;
        let scale = self.scale;
        // One task per output row (batch item, channel).
        let y = super::vec_math::par_collect(n * c * t, t.max(1), |row, dst| {
            let (i, ch) = (row / c, row % c);
            if ch < ca {
                dst.copy_from_slice(&a[(i * ca + ch) * t..][..t]);
            } else {
                let src = &b[(i * cb + ch - ca) * t..][..t];
                for (d, &v) in dst.iter_mut().zip(src) {
                    *d = v * scale;
                }
            }
        });
        Ok((CpuStorage::F32(y), Shape::from((n, c, t))))
    }

    fn bwd(
        &self,
        a: &Tensor,
        _b: &Tensor,
        _y: &Tensor,
        dy: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let ca = a.dim(1)?;
        let cb = dy.dim(1)? - ca;
        let da = dy.narrow(1, 0, ca)?;
        let db = (dy.narrow(1, ca, cb)? * self.scale as f64)?;
        Ok((Some(da), Some(db)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conv_tests::{max_abs_diff, rand_tensor};
    use candle_core::Var;

    #[test]
    fn matches_the_composite_with_gradients() -> Result<()> {
        for (i, &(n, ca, cb, t)) in [(1, 3, 5, 17), (2, 8, 8, 64), (3, 1, 2, 1)]
            .iter()
            .enumerate()
        {
            let a = Var::from_tensor(&rand_tensor(&[n, ca, t], 1 + i as u64, 1.0)?)?;
            let b = Var::from_tensor(&rand_tensor(&[n, cb, t], 11 + i as u64, 1.0)?)?;
            let up = rand_tensor(&[n, ca + cb, t], 21 + i as u64, 1.0)?;
            let ours = cat_scaled(&a, &b, 0.7)?;
            let want = cat_scaled_stock(&a, &b, 0.7)?;
            let (diff, _) = max_abs_diff(&ours, &want)?;
            // A copy and one f32 product per value: exact up to the product's rounding.
            assert!(diff <= 1e-7, "case {i}: {diff:e}");
            let g_ours = (ours * &up)?.sum_all()?.backward()?;
            let g_want = (want * &up)?.sum_all()?.backward()?;
            for (name, t) in [("a", &a), ("b", &b)] {
                let (x, y) = (g_ours.get(t).expect("ours"), g_want.get(t).expect("stock"));
                let (diff, _) = max_abs_diff(x, y)?;
                assert!(diff <= 1e-7, "case {i} d{name}: {diff:e}");
            }
        }
        Ok(())
    }
}
