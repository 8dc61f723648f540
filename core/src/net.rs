//! The interface every denoising network implements (UNet1d, UNetConditional1d), so that the
//! diffusion objectives, samplers and models drive any of them the same way.
//!
//! Mirrors the keyword arguments that `modules.py::UNet1d.forward` / `UNetConditional1d.forward`
//! receive in audio-diffusion-pytorch 0.0.61.

use crate::{NoiseSource, Result};
use candle_core::Tensor;

/// Conditioning that travels with every network call (`**kwargs` of the reference).
#[derive(Debug, Clone, Default)]
pub struct NetInputs {
    /// Global features `(batch, context_features)`, added into the time mapping.
    pub features: Option<Tensor>,
    /// Context channels, one tensor per non-zero entry of `context_channels`, in level order.
    pub channels_list: Vec<Tensor>,
    /// Token embedding `(batch, tokens, features)` for UNetConditional1d.
    pub embedding: Option<Tensor>,
    /// Classifier-free guidance scale (1.0 = no guidance).
    pub embedding_scale: f64,
    /// Probability of replacing each batch element's embedding with the learned null embedding.
    pub embedding_mask_proba: f64,
}

impl NetInputs {
    /// No conditioning, guidance scale 1.
    pub fn none() -> Self {
        Self {
            embedding_scale: 1.0,
            ..Default::default()
        }
    }
}

/// A denoising network: `(x (batch, channels, length), time (batch,)) -> (batch, out_channels, length)`.
pub trait Net {
    /// One forward pass. `noise` serves the draws the network itself makes (the embedding mask).
    fn forward(
        &self,
        x: &Tensor,
        time: &Tensor,
        inputs: &NetInputs,
        noise: &mut dyn NoiseSource,
    ) -> Result<Tensor>;
}
