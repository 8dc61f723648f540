//! Exact (erf) GELU on the CPU with its backward, vectorised and parallel: `nn.GELU()` of the
//! feed-forward and time-embedding layers. candle's op calls a scalar `erf` on one thread, and its
//! backward is a composite of seven more ops.
//!
//! `gelu(x) = x·Φ(x)`, `Φ(x) = (1 + erf(x/√2))/2`, `gelu'(x) = Φ(x) + x·φ(x)` with
//! `φ(x) = exp(−x²/2)/√(2π)`. `erf` by Abramowitz & Stegun 7.1.26 (absolute error below 1.5e-7,
//! plus the `exp` approximation's 2e-7 relative), written without branches so that it vectorises.
#![allow(unsafe_code)]

use super::isa::Isa;
use super::vec_math::{exp_approx, par_collect};
use super::{f32_slice, fast_path_ok};
use candle_core::{bail, CpuStorage, CustomOp1, CustomOp2, Layout, Result, Shape, Tensor};

/// Values per parallel task.
const CHUNK: usize = 1 << 14;

/// `x·Φ(x)` elementwise. The fused op for f32 CPU tensors, candle's `gelu_erf` otherwise.
/// Differentiable.
pub fn gelu_erf(x: &Tensor) -> Result<Tensor> {
    gelu_erf_with(x, Isa::detect())
}

/// [`gelu_erf`] with an explicit instruction set.
pub fn gelu_erf_with(x: &Tensor, isa: Isa) -> Result<Tensor> {
    if !fast_path_ok(&[Some(x)]) {
        return x.gelu_erf();
    }
    let x = x.contiguous()?;
    if x.track_op() {
        x.apply_op1(GeluOp { isa })
    } else {
        x.apply_op1_no_bwd(&GeluOp { isa })
    }
}

/// `erf(x)`, A&S 7.1.26 with the sign restored.
#[inline(always)]
fn erf(x: f32) -> f32 {
    const P: f32 = 0.327_591_1;
    const A: [f32; 5] = [
        0.254_829_6,
        -0.284_496_72,
        1.421_413_8,
        -1.453_152,
        1.061_405_4,
    ];
    let a = x.abs();
    let t = 1.0 / (1.0 + P * a);
    let poly = ((((A[4] * t + A[3]) * t + A[2]) * t + A[1]) * t + A[0]) * t;
    let y = 1.0 - poly * exp_approx(-a * a);
    y.copysign(x)
}

#[inline(always)]
fn gelu_body(x: &[f32], y: &mut [f32]) {
    for (yv, &xv) in y.iter_mut().zip(x) {
        *yv = 0.5 * xv * (1.0 + erf(xv * std::f32::consts::FRAC_1_SQRT_2));
    }
}

#[inline(always)]
fn gelu_grad_body(x: &[f32], dy: &[f32], dx: &mut [f32]) {
    // 1/√(2π)
    const INV_SQRT_2PI: f32 = 0.398_942_3;
    for ((d, &xv), &g) in dx.iter_mut().zip(x).zip(dy) {
        let cdf = 0.5 * (1.0 + erf(xv * std::f32::consts::FRAC_1_SQRT_2));
        let pdf = INV_SQRT_2PI * exp_approx(-0.5 * xv * xv);
        *d = g * (cdf + xv * pdf);
    }
}

super::isa::per_isa!(fn gelu(x: &[f32], y: &mut [f32]) => gelu_body);
super::isa::per_isa!(fn gelu_grad(x: &[f32], dy: &[f32], dx: &mut [f32]) => gelu_grad_body);

struct GeluOp {
    isa: Isa,
}

impl CustomOp1 for GeluOp {
    fn name(&self) -> &'static str {
        "adiff-gelu"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let x = f32_slice(s, l)?;
        let isa = self.isa;
        let y = par_collect(x.len(), CHUNK, |i, y| {
            let x = &x[i * CHUNK..][..y.len()];
            gelu(isa, x, y);
        });
        Ok((CpuStorage::F32(y), l.shape().clone()))
    }

    fn bwd(&self, x: &Tensor, _y: &Tensor, dy: &Tensor) -> Result<Option<Tensor>> {
        Ok(Some(x.apply_op2_no_bwd(
            &dy.contiguous()?,
            &GeluGradOp { isa: self.isa },
        )?))
    }
}

struct GeluGradOp {
    isa: Isa,
}

impl CustomOp2 for GeluGradOp {
    fn name(&self) -> &'static str {
        "adiff-gelu-grad"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (x, dy) = (f32_slice(s1, l1)?, f32_slice(s2, l2)?);
        if x.len() != dy.len() {
            bail!(
                "adiff gelu backward: x {:?}, dy {:?}",
                l1.shape(),
                l2.shape()
            );
        }
        let isa = self.isa;
        let dx = par_collect(x.len(), CHUNK, |i, dx| {
            let (x, dy) = (&x[i * CHUNK..][..dx.len()], &dy[i * CHUNK..][..dx.len()]);
            gelu_grad(isa, x, dy, dx);
        });
        Ok((CpuStorage::F32(dx), l1.shape().clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conv_tests::{max_abs_diff, rand_tensor};
    use candle_core::{DType, Var};

    #[test]
    fn gelu_and_its_gradient_match_candle_in_f64_on_every_isa() -> Result<()> {
        // Values over [-8, 8] (both tails of erf), a length off every vector width and chunk.
        let x = rand_tensor(&[3, CHUNK + 37], 5, 8.0)?;
        let up = rand_tensor(&[3, CHUNK + 37], 6, 1.0)?;
        let x64 = Var::from_tensor(&x.to_dtype(DType::F64)?)?;
        let want = x64.gelu_erf()?;
        let want_grad = (&want * up.to_dtype(DType::F64)?)?.sum_all()?.backward()?;
        let want_grad = want_grad.get(&x64).expect("reference gradient");
        let (want, want_grad) = (want.to_dtype(DType::F32)?, want_grad.to_dtype(DType::F32)?);
        for isa in Isa::runnable() {
            let xv = Var::from_tensor(&x)?;
            let ours = gelu_erf_with(&xv, isa)?;
            let (diff, mag) = max_abs_diff(&ours, &want)?;
            // erf within 1.5e-7 + exp's 2e-7 relative, times |x|/2 <= 4.
            assert!(diff <= 2e-6 * (1.0 + mag), "{isa:?}: {diff:e} (max {mag})");
            let g = (ours * &up)?.sum_all()?.backward()?;
            let g = g.get(&xv).expect("our gradient");
            let (diff, mag) = max_abs_diff(g, &want_grad)?;
            assert!(
                diff <= 2e-6 * (1.0 + mag),
                "{isa:?} grad: {diff:e} (max {mag})"
            );
        }
        Ok(())
    }
}
