//! `model.py::AudioDiffusionConditional` (audio-diffusion-pytorch 0.0.61, reference §4.8):
//! generation conditioned on a token embedding `(batch, tokens, features)` through
//! `UNetConditional1d`, with embedding masking in training and classifier-free guidance
//! (`embedding_scale`) in sampling.
//!
//! In 0.0.61 no cross-attention is built, so the embedding has no effect (reference §1.8); the
//! network config's `use_cross_attention` turns the 0.0.70 wiring on for new models.

use super::config::{from_kwargs, DiffusionConfig};
use super::model1d::Model1d;
use super::sampling::Sampling;
use crate::sampler::OnStep;
use crate::unet::{UNet1dConfig, UNetConditional1d, UNetConditional1dConfig};
use crate::{Compat, Error, NetInputs, NoiseSource, Result};
use candle_core::Tensor;
use candle_nn::VarBuilder;
use serde::{Deserialize, Serialize};

/// The reference default of `sample`'s `embedding_scale`.
pub const DEFAULT_EMBEDDING_SCALE: f64 = 5.0;

fn default_mask_proba() -> f64 {
    0.1
}

/// `AudioDiffusionConditional(embedding_features, embedding_max_length, embedding_mask_proba=0.1, **kwargs)`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AudioDiffusionConditionalConfig {
    /// Features E of the conditioning embedding.
    pub embedding_features: usize,
    /// Longest embedding sequence N (rows of the learned null embedding).
    pub embedding_max_length: usize,
    /// Probability that a training row's embedding is replaced by the null embedding.
    #[serde(default = "default_mask_proba")]
    pub embedding_mask_proba: f64,
    /// The UNet1d keyword arguments.
    #[serde(flatten)]
    pub unet: UNet1dConfig,
    /// The `diffusion_*` keyword arguments.
    #[serde(flatten)]
    pub diffusion: DiffusionConfig,
}

impl AudioDiffusionConditionalConfig {
    /// Parses reference keyword arguments (unknown keys are an error).
    pub fn from_kwargs(kwargs: &serde_json::Value) -> Result<Self> {
        from_kwargs(kwargs, "AudioDiffusionConditional")
    }

    /// The network config: the UNet with `context_embedding_features = embedding_features`.
    pub fn unet_config(&self) -> UNetConditional1dConfig {
        let mut unet = self.unet.clone();
        unet.context_embedding_features = Some(self.embedding_features);
        UNetConditional1dConfig {
            context_embedding_max_length: self.embedding_max_length,
            unet,
        }
    }
}

/// The conditional generator.
#[derive(Debug)]
pub struct AudioDiffusionConditional {
    /// The objective and its UNetConditional1d (`unet.*`, `unet.fixed_embedding.*`).
    pub model: Model1d<UNetConditional1d>,
    cfg: AudioDiffusionConditionalConfig,
}

impl AudioDiffusionConditional {
    /// Builds the model; weights under `unet.*`.
    pub fn new(
        cfg: &AudioDiffusionConditionalConfig,
        compat: Compat,
        vb: VarBuilder,
    ) -> Result<Self> {
        if !(0.0..=1.0).contains(&cfg.embedding_mask_proba) {
            return Err(Error::config(
                "embedding_mask_proba",
                "must be a probability in [0, 1]",
            ));
        }
        let unet = UNetConditional1d::new(&cfg.unet_config(), vb.pp("unet"))?.with_compat(compat);
        Ok(Self {
            model: Model1d::new(unet, &cfg.diffusion, compat)?,
            cfg: cfg.clone(),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &AudioDiffusionConditionalConfig {
        &self.cfg
    }

    /// The training loss of `x (batch, channels, length)` given `embedding (batch, tokens, E)`:
    /// each row's embedding is masked (a Bernoulli draw after sigma and the noise) with the
    /// configured probability.
    pub fn loss(
        &self,
        x: &Tensor,
        embedding: &Tensor,
        noise: &mut dyn NoiseSource,
    ) -> Result<Tensor> {
        let inputs = NetInputs {
            embedding: Some(embedding.clone()),
            embedding_mask_proba: self.cfg.embedding_mask_proba,
            ..NetInputs::none()
        };
        self.model.loss(x, &inputs, noise)
    }

    /// Generates from unit `start_noise` conditioned on `embedding`, with classifier-free guidance
    /// `out = null + (cond - null) * embedding_scale` on the network output (None: 5.0).
    pub fn sample(
        &self,
        start_noise: &Tensor,
        embedding: &Tensor,
        embedding_scale: Option<f64>,
        sampling: &Sampling,
        noise: &mut dyn NoiseSource,
        on_step: &mut OnStep<'_>,
    ) -> Result<Tensor> {
        let inputs = NetInputs {
            embedding: Some(embedding.clone()),
            embedding_scale: embedding_scale.unwrap_or(DEFAULT_EMBEDDING_SCALE),
            ..NetInputs::none()
        };
        self.model
            .sample(start_noise, sampling, &inputs, noise, on_step)
    }
}
