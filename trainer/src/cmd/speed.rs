//! Timing one network evaluation of a UNet config with random weights: the `demo` command's
//! measurement and `info`'s expected speed.

use adiff_core::unet::{UNet1d, UNet1dConfig};
use adiff_core::NetInputs;
use anyhow::{Context, Result};
use candle_core::{DType, Device, Tensor};
use candle_nn::{VarBuilder, VarMap};
use std::time::{Duration, Instant};

/// A UNet with random weights, its parameter count, and the median time of `runs` forward passes
/// on `(1, in_channels, length)` (after one warm-up pass).
pub struct Timing {
    /// Number of parameters.
    pub parameters: usize,
    /// Input length in samples.
    pub length: usize,
    /// Median wall time of one forward pass.
    pub forward: Duration,
}

/// Builds `cfg` with random weights on `device` and times its forward pass on `length` samples.
pub fn time_unet(
    cfg: &UNet1dConfig,
    length: usize,
    runs: usize,
    device: &Device,
) -> Result<Timing> {
    let varmap = VarMap::new();
    let vb = VarBuilder::from_varmap(&varmap, DType::F32, device);
    let unet = UNet1d::new(cfg, vb).context("building the UNet")?;
    let parameters = varmap.all_vars().iter().map(|v| v.elem_count()).sum();
    let x = Tensor::randn(0f32, 1f32, (1, cfg.in_channels, length), device)?;
    let time = Tensor::new(&[0.5f32], device)?;
    let mut inputs = NetInputs::none();
    // Context channels at level 0 (the upsampler's), and global features, as zeros.
    if let Some(&c0) = cfg.context_channels_padded().first() {
        if c0 > 0 {
            inputs
                .channels_list
                .push(Tensor::zeros((1, c0, length), DType::F32, device)?);
        }
    }
    if let Some(f) = cfg.context_features {
        inputs.features = Some(Tensor::zeros((1, f), DType::F32, device)?);
    }
    let mut times = Vec::with_capacity(runs);
    for i in 0..=runs {
        let t0 = Instant::now();
        let y = unet
            .forward(&x, Some(&time), &inputs)
            .context("forward pass")?;
        // Bring the result to the host so a GPU run is timed to completion.
        let _ = y.sum_all()?.to_dtype(DType::F32)?.to_scalar::<f32>()?;
        if i > 0 {
            times.push(t0.elapsed());
        }
    }
    times.sort();
    Ok(Timing {
        parameters,
        length,
        forward: times[times.len() / 2],
    })
}
