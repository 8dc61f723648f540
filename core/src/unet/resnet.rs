//! `modules.py::ConvBlock1d`, `MappingToScaleShift`, `ResnetBlock1d` (audio-diffusion-pytorch
//! 0.0.61, docs/reference.md §1.3).

use crate::nn::{Conv1d, GroupNorm, Linear, SeqIndex};
use crate::{Error, Result};
use candle_core::Tensor;
use candle_nn::VarBuilder;

/// GroupNorm -> optional `x*(scale+1)+shift` -> SiLU -> Conv1d(k=3, pad 1).
#[derive(Debug, Clone)]
pub struct ConvBlock1d {
    /// GroupNorm(groups, in), eps 1e-5.
    pub groupnorm: GroupNorm,
    /// Conv1d(in -> out, 3, padding 1).
    pub project: Conv1d,
}

impl ConvBlock1d {
    /// Builds `groupnorm` and `project` under `vb`.
    pub fn new(
        in_channels: usize,
        out_channels: usize,
        num_groups: usize,
        vb: VarBuilder,
    ) -> Result<Self> {
        Ok(Self {
            groupnorm: GroupNorm::new(num_groups, in_channels, 1e-5, vb.pp("groupnorm"))?,
            project: Conv1d::new(in_channels, out_channels, 3, 1, 1, vb.pp("project"))?,
        })
    }

    /// `(batch, in, T)` -> `(batch, out, T)`; scale and shift are `(batch, in, 1)`.
    pub fn forward(&self, x: &Tensor, scale_shift: Option<&(Tensor, Tensor)>) -> Result<Tensor> {
        let ss = scale_shift.map(|(scale, shift)| (scale, shift));
        let x = self.groupnorm.forward_modulated_silu(x, ss)?;
        self.project.forward(&x)
    }
}

/// SiLU -> Linear(features -> 2*channels), split into scale and shift `(batch, channels, 1)`.
#[derive(Debug, Clone)]
pub struct MappingToScaleShift {
    /// `to_scale_shift.1`.
    pub linear: Linear,
    channels: usize,
}

impl MappingToScaleShift {
    /// Builds `to_scale_shift.1` under `vb`.
    pub fn new(features: usize, channels: usize, vb: VarBuilder) -> Result<Self> {
        let mut seq = SeqIndex::new(vb.pp("to_scale_shift"));
        seq.skip(); // SiLU
        let linear = Linear::new(features, channels * 2, true, seq.next_vb())?;
        Ok(Self { linear, channels })
    }

    /// `mapping (batch, features)` -> `(scale, shift)`, each `(batch, channels, 1)`.
    pub fn forward(&self, mapping: &Tensor) -> Result<(Tensor, Tensor)> {
        let ss = self.linear.forward(&mapping.silu()?)?.unsqueeze(2)?;
        Ok((
            ss.narrow(1, 0, self.channels)?,
            ss.narrow(1, self.channels, self.channels)?,
        ))
    }
}

/// Two ConvBlocks (the second modulated by the mapping) plus a residual (1x1 conv if in != out).
#[derive(Debug, Clone)]
pub struct ResnetBlock1d {
    /// GN(in) -> SiLU -> conv3(in -> out).
    pub block1: ConvBlock1d,
    /// Present when the block takes a mapping.
    pub to_scale_shift: Option<MappingToScaleShift>,
    /// GN(out) -> scale/shift -> SiLU -> conv3(out -> out).
    pub block2: ConvBlock1d,
    /// Conv1d(in -> out, 1) when in != out.
    pub to_out: Option<Conv1d>,
}

impl ResnetBlock1d {
    /// `ResnetBlock1d(in, out, num_groups, context_mapping_features)` under `vb`.
    pub fn new(
        in_channels: usize,
        out_channels: usize,
        num_groups: usize,
        mapping_features: Option<usize>,
        vb: VarBuilder,
    ) -> Result<Self> {
        let block1 = ConvBlock1d::new(in_channels, out_channels, num_groups, vb.pp("block1"))?;
        let to_scale_shift = match mapping_features {
            Some(f) => Some(MappingToScaleShift::new(
                f,
                out_channels,
                vb.pp("to_scale_shift"),
            )?),
            None => None,
        };
        let block2 = ConvBlock1d::new(out_channels, out_channels, num_groups, vb.pp("block2"))?;
        let to_out = if in_channels != out_channels {
            Some(Conv1d::new(
                in_channels,
                out_channels,
                1,
                1,
                0,
                vb.pp("to_out"),
            )?)
        } else {
            None
        };
        Ok(Self {
            block1,
            to_scale_shift,
            block2,
            to_out,
        })
    }

    /// `(batch, in, T)` -> `(batch, out, T)`. The mapping is required exactly when the block was
    /// built with mapping features.
    pub fn forward(&self, x: &Tensor, mapping: Option<&Tensor>) -> Result<Tensor> {
        let h = self.block1.forward(x, None)?;
        let scale_shift = match (&self.to_scale_shift, mapping) {
            (Some(m), Some(mapping)) => Some(m.forward(mapping)?),
            (None, None) => None,
            (Some(_), None) => {
                return Err(Error::input("mapping", "this resnet block needs a mapping"))
            }
            (None, Some(_)) => {
                return Err(Error::input(
                    "mapping",
                    "this resnet block takes no mapping",
                ))
            }
        };
        let h = self.block2.forward(&h, scale_shift.as_ref())?;
        let residual = match &self.to_out {
            Some(conv) => conv.forward(x)?,
            None => x.clone(),
        };
        Ok((h + residual)?)
    }
}
