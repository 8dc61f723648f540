//! `nn.GroupNorm` and `nn.LayerNorm` with PyTorch semantics (biased variance, affine).
//!
//! Statistics are computed in at least f32 (inputs in f16/bf16 are upcast, f64 stays f64), a
//! deliberate choice so that half-precision inference normalises like the reference.

use crate::nn::init::{ONES, ZEROS};
use crate::{Error, Result};
use candle_core::{DType, Tensor, D};
use candle_nn::VarBuilder;

/// The dtype statistics are computed in: f32 for half types, else the input's own.
pub(crate) fn stats_dtype(dtype: DType) -> DType {
    match dtype {
        DType::F16 | DType::BF16 => DType::F32,
        d => d,
    }
}

/// `nn.GroupNorm(groups, channels, eps, affine=True)` over `(batch, channels, ...)`.
#[derive(Debug, Clone)]
pub struct GroupNorm {
    /// `[channels]`, initialised to 1.
    pub weight: Tensor,
    /// `[channels]`, initialised to 0.
    pub bias: Tensor,
    groups: usize,
    eps: f64,
}

impl GroupNorm {
    /// Builds the layer under `vb` (`weight`, `bias`). `channels` must be divisible by `groups`.
    pub fn new(groups: usize, channels: usize, eps: f64, vb: VarBuilder) -> Result<Self> {
        if groups == 0 || !channels.is_multiple_of(groups) {
            return Err(Error::config(
                vb.prefix(),
                format!("GroupNorm: {channels} channels are not divisible by {groups} groups"),
            ));
        }
        let weight = vb.get_with_hints(channels, "weight", ONES)?;
        let bias = vb.get_with_hints(channels, "bias", ZEROS)?;
        Ok(Self {
            weight,
            bias,
            groups,
            eps,
        })
    }

    /// Normalises each group of `channels/groups` consecutive channels over (channel, time).
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let dims = x.dims().to_vec();
        if dims.len() < 2 {
            return Err(Error::input("x", "GroupNorm needs (batch, channels, ...)"));
        }
        let (b, c) = (dims[0], dims[1]);
        let dtype = x.dtype();
        let xf = x
            .to_dtype(stats_dtype(dtype))?
            .reshape((b, self.groups, ()))?;
        let mean = xf.mean_keepdim(D::Minus1)?;
        let centred = xf.broadcast_sub(&mean)?;
        let var = centred.sqr()?.mean_keepdim(D::Minus1)?;
        let normed = centred.broadcast_div(&(var + self.eps)?.sqrt()?)?;
        let normed = normed.reshape(dims.as_slice())?.to_dtype(dtype)?;
        let mut wshape = vec![1usize; dims.len()];
        wshape[1] = c;
        let w = self.weight.reshape(wshape.as_slice())?;
        let bias = self.bias.reshape(wshape.as_slice())?;
        Ok(normed.broadcast_mul(&w)?.broadcast_add(&bias)?)
    }
}

impl GroupNorm {
    /// GroupNorm -> optional `y*(scale+1)+shift` -> SiLU (the front half of `ConvBlock1d`);
    /// `scale`/`shift` are `(batch, channels, 1)`. f32 on the CPU runs the fused, differentiable
    /// [`crate::ops::group_norm_scale_shift_silu`] (two passes instead of about ten; its backward
    /// is fused too).
    pub fn forward_modulated_silu(
        &self,
        x: &Tensor,
        scale_shift: Option<(&Tensor, &Tensor)>,
    ) -> Result<Tensor> {
        let mut all = vec![x, &self.weight, &self.bias];
        if let Some((scale, shift)) = scale_shift {
            all.extend([scale, shift]);
        }
        let fused = x.rank() == 3
            && all
                .iter()
                .all(|t| t.device().is_cpu() && t.dtype() == DType::F32);
        if fused {
            return Ok(crate::ops::group_norm_scale_shift_silu(
                x,
                self.groups,
                &self.weight,
                &self.bias,
                self.eps,
                scale_shift,
                true,
            )?);
        }
        self.modulated_silu_composite(x, scale_shift)
    }

    /// [`GroupNorm::forward_modulated_silu`] from candle ops (other dtypes and devices).
    fn modulated_silu_composite(
        &self,
        x: &Tensor,
        scale_shift: Option<(&Tensor, &Tensor)>,
    ) -> Result<Tensor> {
        let mut y = self.forward(x)?;
        if let Some((scale, shift)) = scale_shift {
            y = y.broadcast_mul(&(scale + 1.0)?)?.broadcast_add(shift)?;
        }
        Ok(y.silu()?)
    }
}

/// `nn.LayerNorm(features, eps)` over the last axis, affine.
#[derive(Debug, Clone)]
pub struct LayerNorm {
    /// `[features]`, initialised to 1.
    pub weight: Tensor,
    /// `[features]`, initialised to 0.
    pub bias: Tensor,
    eps: f64,
}

impl LayerNorm {
    /// Builds the layer under `vb` (`weight`, `bias`).
    pub fn new(features: usize, eps: f64, vb: VarBuilder) -> Result<Self> {
        let weight = vb.get_with_hints(features, "weight", ONES)?;
        let bias = vb.get_with_hints(features, "bias", ZEROS)?;
        Ok(Self { weight, bias, eps })
    }

    /// Normalises `(..., features)` over the last axis.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let dtype = x.dtype();
        if dtype == DType::F32 {
            // The crate's op: fused with its own backward on the CPU, candle's otherwise.
            return Ok(crate::ops::layer_norm(
                x,
                &self.weight,
                &self.bias,
                self.eps,
            )?);
        }
        let xf = x.to_dtype(stats_dtype(dtype))?;
        let mean = xf.mean_keepdim(D::Minus1)?;
        let centred = xf.broadcast_sub(&mean)?;
        let var = centred.sqr()?.mean_keepdim(D::Minus1)?;
        let normed = centred
            .broadcast_div(&(var + self.eps)?.sqrt()?)?
            .to_dtype(dtype)?;
        Ok(normed
            .broadcast_mul(&self.weight)?
            .broadcast_add(&self.bias)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn group_norm_uses_biased_variance_per_group() {
        let d = Device::Cpu;
        let vb = VarBuilder::zeros(DType::F32, &d);
        let mut gn = GroupNorm::new(2, 4, 0.0, vb).unwrap();
        gn.weight = Tensor::ones(4, DType::F32, &d).unwrap();
        // Group 0 = channels 0,1 = [0, 2, 4, 6] -> mean 3, var 5.
        let x = Tensor::new(&[[[0f32, 2.0], [4.0, 6.0], [1.0, 1.0], [1.0, 3.0]]], &d).unwrap();
        let y = gn
            .forward(&x)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        let s = 5f32.sqrt();
        assert!((y[0] + 3.0 / s).abs() < 1e-6 && (y[3] - 3.0 / s).abs() < 1e-6);
        assert!(GroupNorm::new(3, 4, 1e-5, VarBuilder::zeros(DType::F32, &d)).is_err());
    }

    #[test]
    fn group_norm_modulated_silu_fused_and_composite_agree() {
        let d = Device::Cpu;
        let gn = GroupNorm {
            weight: Tensor::new(&[1f32, 0.5, 2.0, -1.0], &d).unwrap(),
            bias: Tensor::new(&[0f32, 0.1, -0.2, 0.3], &d).unwrap(),
            groups: 2,
            eps: 1e-5,
        };
        let x = Tensor::arange(0f32, 24.0, &d)
            .unwrap()
            .sin()
            .unwrap()
            .reshape((2, 4, 3))
            .unwrap();
        let scale = Tensor::new(&[0.1f32, -0.2, 0.3, 0.0, 0.5, 0.2, -0.1, 0.4], &d)
            .unwrap()
            .reshape((2, 4, 1))
            .unwrap();
        let shift = (&scale * 0.5).unwrap();
        for ss in [None, Some((&scale, &shift))] {
            let fused = gn.forward_modulated_silu(&x, ss).unwrap();
            // Tracked inputs take the fused op too (it has a backward), so compare against the
            // candle composite itself.
            let composite = gn.modulated_silu_composite(&x, ss).unwrap();
            let diff = (fused - composite)
                .unwrap()
                .abs()
                .unwrap()
                .max_all()
                .unwrap();
            assert!(diff.to_scalar::<f32>().unwrap() < 1e-6);
        }
    }

    #[test]
    fn layer_norm_fused_and_composite_agree() {
        let d = Device::Cpu;
        let ln = LayerNorm {
            weight: Tensor::new(&[1f32, 2.0, 0.5], &d).unwrap(),
            bias: Tensor::new(&[0f32, 0.1, -0.1], &d).unwrap(),
            eps: 1e-5,
        };
        let x = Tensor::new(&[[1f32, 2.0, 4.0], [-1.0, 0.0, 3.0]], &d).unwrap();
        // Untracked and tracked inputs both take the fused op on the CPU; the reference is the
        // candle composite evaluated in f64.
        let f64s = |t: &Tensor| t.to_dtype(DType::F64).unwrap();
        let composite =
            crate::ops::layer_norm_stock(&f64s(&x), &f64s(&ln.weight), &f64s(&ln.bias), 1e-5)
                .unwrap()
                .to_dtype(DType::F32)
                .unwrap();
        let var = candle_core::Var::from_tensor(&x).unwrap();
        let fused = ln.forward(&x).unwrap();
        let tracked = ln.forward(var.as_tensor()).unwrap();
        let diff = (fused - &composite)
            .unwrap()
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .maximum(
                &(tracked - &composite)
                    .unwrap()
                    .abs()
                    .unwrap()
                    .max_all()
                    .unwrap(),
            )
            .unwrap();
        assert!(diff.to_scalar::<f32>().unwrap() < 1e-6);
    }
}
