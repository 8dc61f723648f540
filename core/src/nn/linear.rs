//! `nn.Linear` with PyTorch's weight layout `[out, in]` and default initialisation.

use crate::nn::init::uniform_fan_in;
use crate::Result;
use candle_core::Tensor;
use candle_nn::VarBuilder;

/// `y = x W^T + b`, weight `[out, in]`, over the last axis of any input.
#[derive(Debug, Clone)]
pub struct Linear {
    /// `[out, in]`.
    pub weight: Tensor,
    /// `[out]`, when the layer has a bias.
    pub bias: Option<Tensor>,
}

impl Linear {
    /// `nn.Linear(in_features, out_features, bias)` under `vb` (`weight`, `bias`).
    pub fn new(
        in_features: usize,
        out_features: usize,
        bias: bool,
        vb: VarBuilder,
    ) -> Result<Self> {
        let init = uniform_fan_in(in_features);
        let weight = vb.get_with_hints((out_features, in_features), "weight", init)?;
        let bias = if bias {
            Some(vb.get_with_hints(out_features, "bias", init)?)
        } else {
            None
        };
        Ok(Self { weight, bias })
    }

    /// Applies the layer to `(..., in)` and returns `(..., out)`.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        Ok(crate::ops::linear(x, &self.weight, self.bias.as_ref())?)
    }
}
