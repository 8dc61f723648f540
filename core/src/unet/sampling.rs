//! `modules.py::Downsample1d` and `Upsample1d` (audio-diffusion-pytorch 0.0.61, reference §1.3).

use crate::nn::{Conv1d, ConvTranspose1d, SeqIndex};
use crate::{Error, Result};
use candle_core::Tensor;
use candle_nn::VarBuilder;

/// `Downsample1d(in, out, factor, kernel_multiplier)`: Conv1d with kernel `f*km+1`, stride f,
/// padding `f*(km/2)`; the output length is `ceil(T/f)`.
pub fn downsample1d(
    in_channels: usize,
    out_channels: usize,
    factor: usize,
    kernel_multiplier: usize,
    vb: VarBuilder,
) -> Result<Conv1d> {
    if !kernel_multiplier.is_multiple_of(2) {
        return Err(Error::config(
            "kernel_multiplier_downsample",
            format!("{kernel_multiplier} must be even"),
        ));
    }
    Conv1d::new(
        in_channels,
        out_channels,
        factor * kernel_multiplier + 1,
        factor,
        factor * (kernel_multiplier / 2),
        vb,
    )
}

/// `Upsample1d(in, out, factor, use_nearest)`: three layouts with different keys.
#[derive(Debug, Clone)]
pub enum Upsample1d {
    /// factor 1: Conv1d(in, out, 3, pad 1), key `upsample.weight`.
    Conv(Conv1d),
    /// Nearest-neighbour x factor, then Conv1d(in, out, 3, pad 1), key `upsample.1.weight`.
    Nearest {
        /// Samples repeated per input sample.
        factor: usize,
        /// Sequential child 1.
        conv: Conv1d,
    },
    /// ConvTranspose1d(in, out, 2f, stride f, padding f/2 + f%2, output_padding f%2).
    Transposed(ConvTranspose1d),
}

impl Upsample1d {
    /// Builds the layout the reference picks for (factor, use_nearest) under `vb`.
    pub fn new(
        in_channels: usize,
        out_channels: usize,
        factor: usize,
        use_nearest: bool,
        vb: VarBuilder,
    ) -> Result<Self> {
        if factor == 0 {
            return Err(Error::config(
                "factors",
                "an upsampling factor must be >= 1",
            ));
        }
        if factor == 1 {
            return Ok(Self::Conv(Conv1d::new(
                in_channels,
                out_channels,
                3,
                1,
                1,
                vb,
            )?));
        }
        if use_nearest {
            let mut seq = SeqIndex::new(vb);
            seq.skip(); // nn.Upsample
            let conv = Conv1d::new(in_channels, out_channels, 3, 1, 1, seq.next_vb())?;
            return Ok(Self::Nearest { factor, conv });
        }
        Ok(Self::Transposed(ConvTranspose1d::new(
            in_channels,
            out_channels,
            factor * 2,
            factor,
            factor / 2 + factor % 2,
            factor % 2,
            vb,
        )?))
    }

    /// `(batch, in, T)` -> `(batch, out, T*factor)`.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        match self {
            Self::Conv(conv) => conv.forward(x),
            Self::Nearest { factor, conv } => conv.forward(&upsample_nearest(x, *factor)?),
            Self::Transposed(conv) => conv.forward(x),
        }
    }
}

/// Repeats every sample `factor` times along time (differentiable: broadcast + reshape).
pub fn upsample_nearest(x: &Tensor, factor: usize) -> Result<Tensor> {
    let (b, c, t) = x.dims3()?;
    Ok(x.unsqueeze(3)?
        .broadcast_as((b, c, t, factor))?
        .reshape((b, c, t * factor))?)
}
