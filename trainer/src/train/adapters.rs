//! The four model classes of `adiff_core::models` as [`Trainable`]s: the loss is the model's own
//! `forward` (training) and the preview render its own `sample` / `decode`, so training goes
//! through exactly the code every front end runs.

use super::model::Trainable;
use adiff_core::audio::downsample;
use adiff_core::models::{
    AudioDiffusionAutoencoder, AudioDiffusionConditional, AudioDiffusionModel,
    AudioDiffusionUpsampler, FolderConfig, ModelConfig, Sampling,
};
use adiff_core::sampler::ignore_steps;
use adiff_core::NoiseSource;
use anyhow::{Context, Result};
use candle_core::{DType, Tensor};
use candle_nn::VarBuilder;
use std::path::Path;

/// A model of a folder config, with its sampler settings.
pub struct Adapter {
    model: Model,
    cfg: FolderConfig,
}

enum Model {
    Generator(Box<AudioDiffusionModel>),
    Upsampler(Box<AudioDiffusionUpsampler>),
    Autoencoder(Box<AudioDiffusionAutoencoder>),
    Conditional(Box<AudioDiffusionConditional>),
}

/// Parses and checks the network config of `cfg` (`source` names the file in errors).
pub fn model_config(cfg: &FolderConfig, source: &Path) -> Result<ModelConfig> {
    Ok(ModelConfig::from_folder_config(cfg, source)?)
}

impl Adapter {
    /// Builds the model of `cfg` on `vb` (new weights are created by the VarBuilder's backend).
    pub fn new(cfg: &FolderConfig, source: &Path, vb: VarBuilder) -> Result<Self> {
        let compat = cfg.compat;
        let model = match model_config(cfg, source)? {
            ModelConfig::Generator(c) => {
                Model::Generator(Box::new(AudioDiffusionModel::new(&c, compat, vb)?))
            }
            ModelConfig::Upsampler(c) => {
                Model::Upsampler(Box::new(AudioDiffusionUpsampler::new(&c, compat, vb)?))
            }
            ModelConfig::Autoencoder(c) => {
                Model::Autoencoder(Box::new(AudioDiffusionAutoencoder::new(&c, compat, vb)?))
            }
            ModelConfig::Conditional(c) => {
                Model::Conditional(Box::new(AudioDiffusionConditional::new(&c, compat, vb)?))
            }
        };
        Ok(Self {
            model,
            cfg: cfg.clone(),
        })
    }

    /// The conditional model's embedding for a batch of unlabelled audio: zeros
    /// `(batch, embedding_max_length, embedding_features)`. A folder of audio carries no text;
    /// in 0.0.61 the embedding has no effect on the output (docs/reference.md §1.8) and the null
    /// embedding is still trained through `embedding_mask_proba`.
    fn zero_embedding(m: &AudioDiffusionConditional, x: &Tensor) -> Result<Tensor> {
        let c = m.config();
        Ok(Tensor::zeros(
            (x.dim(0)?, c.embedding_max_length, c.embedding_features),
            DType::F32,
            x.device(),
        )?)
    }
}

impl Trainable for Adapter {
    fn loss(&self, x: &Tensor, noise: &mut dyn NoiseSource) -> Result<Tensor> {
        Ok(match &self.model {
            Model::Generator(m) => m.loss(x, noise)?,
            Model::Upsampler(m) => m.loss(x, noise)?,
            Model::Autoencoder(m) => m.loss(x, noise)?.total()?,
            Model::Conditional(m) => m.loss(x, &Self::zero_embedding(m, x)?, noise)?,
        })
    }

    fn render(&self, x: &Tensor, steps: usize, noise: &mut dyn NoiseSource) -> Result<Tensor> {
        let mut settings = self.cfg.sampling.clone();
        settings.num_steps = steps.max(2);
        let sampling = Sampling::from_settings(&settings, self.cfg.compat)?;
        let mut on_step = ignore_steps;
        let out = match &self.model {
            Model::Generator(m) => {
                let start = noise.randn(x.dims(), x.device())?;
                m.sample(&start, &sampling, noise, &mut on_step)?
            }
            Model::Upsampler(m) => {
                let factor = m.factors()[0];
                let low = downsample(x, factor).context("downsampling the preview input")?;
                m.sample(&low, Some(factor), &sampling, noise, &mut on_step)?
            }
            Model::Autoencoder(m) => {
                let latent = m.encode(x, noise)?;
                m.decode(&latent, &sampling, noise, &mut on_step)?
            }
            Model::Conditional(m) => {
                let start = noise.randn(x.dims(), x.device())?;
                let emb = Self::zero_embedding(m, x)?;
                m.sample(&start, &emb, None, &sampling, noise, &mut on_step)?
            }
        };
        Ok(out)
    }
}
