//! `modules.py::merge_magnitude_channels` (reference §1.9) and the `norm_quantile` input scale
//! (`get_norm_scale`, docs/reference.md §1.10), audio-diffusion-pytorch 0.0.61.

use crate::{Error, Result};
use candle_core::{DType, Tensor, D};

/// `sigmoid(a) * tanh(b)` where a is the first half of the channels and b the second half:
/// `(batch, 2C, T)` -> `(batch, C, T)`, bounded to (-1, 1). No STFT is involved.
pub fn merge_magnitude_channels(x: &Tensor) -> Result<Tensor> {
    let c2 = x.dim(1)?;
    if c2 % 2 != 0 {
        return Err(Error::input(
            "x",
            format!("merge_magnitude_channels needs an even channel count, got {c2}"),
        ));
    }
    let a = x.narrow(1, 0, c2 / 2)?;
    let b = x.narrow(1, c2 / 2, c2 / 2)?;
    Ok((candle_nn::ops::sigmoid(&a)? * b.tanh()?)?)
}

/// `torch.quantile(x, q, dim=-1, keepdim=True)` with linear interpolation, differentiable in x
/// (the order statistics are gathered, then interpolated in the input dtype).
pub fn quantile_last_dim(x: &Tensor, q: f64) -> Result<Tensor> {
    if !(0.0..=1.0).contains(&q) {
        return Err(Error::input("quantile", format!("{q} is not in [0, 1]")));
    }
    let n = x.dim(D::Minus1)?;
    if n == 0 {
        return Err(Error::input("x", "quantile of an empty axis"));
    }
    // torch: ranks = q * (n - 1) in the input's float dtype (f32), floor/ceil, weight = rank - floor.
    let rank = q as f32 * (n - 1) as f32;
    let (lo, hi) = (rank.floor(), rank.ceil());
    let weight = rank - lo;
    let order = x.contiguous()?.arg_sort_last_dim(true)?;
    let pick = |i: f32| -> Result<Tensor> {
        let idx = order.narrow(D::Minus1, i as usize, 1)?.contiguous()?;
        Ok(x.contiguous()?.gather(&idx, D::Minus1)?)
    };
    let (below, above) = (pick(lo)?, pick(hi)?);
    // torch.lerp: start + w*(end-start) for w < 0.5, else end - (end-start)*(1-w).
    let diff = (&above - &below)?;
    let out = if weight < 0.5 {
        (below + (diff * weight as f64)?)?
    } else {
        (above - (diff * (1.0 - weight) as f64)?)?
    };
    Ok(out)
}

/// `quantile(|x|, q, over time, keepdim) + 1e-7`: the per-(batch, channel) input scale `(B, C, 1)`.
pub fn norm_scale(x: &Tensor, q: f64) -> Result<Tensor> {
    let dtype = x.dtype();
    let scale = quantile_last_dim(&x.to_dtype(DType::F32)?.abs()?, q)?;
    Ok((scale + 1e-7)?.to_dtype(dtype)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn quantile_interpolates_linearly_like_torch() {
        let d = Device::Cpu;
        let x = Tensor::new(&[[[4f32, 1.0, 3.0, 2.0, 10.0]]], &d).unwrap();
        // sorted [1,2,3,4,10], q=0.9 -> rank 3.6 -> 4 + 0.6*6 = 7.6
        let v = quantile_last_dim(&x, 0.9)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        assert!((v[0] - 7.6).abs() < 1e-5);
        let v = quantile_last_dim(&x, 0.5)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        assert_eq!(v[0], 3.0);
        let v = quantile_last_dim(&x, 1.0)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        assert_eq!(v[0], 10.0);
    }

    #[test]
    fn merge_gates_first_half_by_second() {
        let d = Device::Cpu;
        let x = Tensor::new(&[[[0f32], [1.0]]], &d).unwrap();
        let y = merge_magnitude_channels(&x)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        assert!((y[0] - 0.5 * 1f32.tanh()).abs() < 1e-7);
        assert!(
            merge_magnitude_channels(&Tensor::zeros((1, 3, 2), DType::F32, &d).unwrap()).is_err()
        );
    }
}
