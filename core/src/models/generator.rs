//! `model.py::AudioDiffusionModel` (audio-diffusion-pytorch 0.0.61, SPEC §4.3): unconditional
//! waveform generation, `Model1d` with the reference defaults (SPEC §4.2).

use super::config::{from_kwargs, DiffusionConfig};
use super::model1d::Model1d;
use super::sampling::Sampling;
use crate::sampler::OnStep;
use crate::unet::{UNet1d, UNet1dConfig};
use crate::{Compat, NetInputs, NoiseSource, Result};
use candle_core::Tensor;
use candle_nn::VarBuilder;
use serde::{Deserialize, Serialize};

/// `AudioDiffusionModel(**kwargs)`: the UNet1d arguments and the `diffusion_*` arguments, with the
/// reference defaults for everything not given (`in_channels` defaults to 1).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct AudioDiffusionModelConfig {
    /// The UNet1d keyword arguments.
    #[serde(flatten)]
    pub unet: UNet1dConfig,
    /// The `diffusion_*` keyword arguments.
    #[serde(flatten)]
    pub diffusion: DiffusionConfig,
}

impl AudioDiffusionModelConfig {
    /// The reference defaults for `in_channels` audio channels.
    pub fn default_model(in_channels: usize) -> Self {
        Self {
            unet: UNet1dConfig::default_model(in_channels),
            diffusion: DiffusionConfig::default(),
        }
    }

    /// Parses reference keyword arguments (unknown keys are an error).
    pub fn from_kwargs(kwargs: &serde_json::Value) -> Result<Self> {
        from_kwargs(kwargs, "AudioDiffusionModel")
    }
}

/// The generator: noise `(batch, channels, length)` in, audio out.
#[derive(Debug)]
pub struct AudioDiffusionModel {
    /// The objective and its UNet1d (`unet.*`).
    pub model: Model1d<UNet1d>,
    cfg: AudioDiffusionModelConfig,
}

impl AudioDiffusionModel {
    /// Builds the model; the UNet's weights are read under `unet.*`.
    pub fn new(cfg: &AudioDiffusionModelConfig, compat: Compat, vb: VarBuilder) -> Result<Self> {
        let unet = UNet1d::new(&cfg.unet, vb.pp("unet"))?.with_compat(compat);
        Ok(Self {
            model: Model1d::new(unet, &cfg.diffusion, compat)?,
            cfg: cfg.clone(),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &AudioDiffusionModelConfig {
        &self.cfg
    }

    /// The training loss of clean `x (batch, channels, length)`.
    pub fn loss(&self, x: &Tensor, noise: &mut dyn NoiseSource) -> Result<Tensor> {
        self.model.loss(x, &NetInputs::none(), noise)
    }

    /// Generates from unit `start_noise (batch, channels, length)`; the result is in [-1, 1].
    pub fn sample(
        &self,
        start_noise: &Tensor,
        sampling: &Sampling,
        noise: &mut dyn NoiseSource,
        on_step: &mut OnStep<'_>,
    ) -> Result<Tensor> {
        self.model
            .sample(start_noise, sampling, &NetInputs::none(), noise, on_step)
    }
}
