//! Any model of a model folder: the typed network config of each [`ModelKind`], the model built from
//! a folder ([`AnyModel::load`]), and the conversion of a reference checkpoint (`.ckpt`, `.pt`,
//! `.safetensors` of audio-diffusion-pytorch 0.0.61 or a training wrapper around it) plus a config
//! into a model folder ([`convert`]).

use super::folder::{FolderConfig, ModelFolder, ModelKind};
use super::{
    AudioDiffusionAutoencoder, AudioDiffusionAutoencoderConfig, AudioDiffusionConditional,
    AudioDiffusionConditionalConfig, AudioDiffusionModel, AudioDiffusionModelConfig,
    AudioDiffusionUpsampler, AudioDiffusionUpsamplerConfig,
};
use crate::weights::{build_audited, read_tensors, strip_prefix};
use crate::{Compat, Error, Result};
use candle_core::{DType, Device, Tensor};
use std::collections::HashMap;
use std::path::Path;

/// The typed network config of a folder, by kind.
#[derive(Debug, Clone, PartialEq)]
pub enum ModelConfig {
    /// `AudioDiffusionModel` kwargs.
    Generator(AudioDiffusionModelConfig),
    /// `AudioDiffusionUpsampler` kwargs.
    Upsampler(AudioDiffusionUpsamplerConfig),
    /// `AudioDiffusionAutoencoder` kwargs.
    Autoencoder(AudioDiffusionAutoencoderConfig),
    /// `AudioDiffusionConditional` kwargs.
    Conditional(AudioDiffusionConditionalConfig),
}

impl ModelConfig {
    /// Parses `config.model` for `config.kind`, and checks it against the header
    /// (`channels` = the network's `in_channels`); `path` names the config file in errors.
    pub fn from_folder_config(config: &FolderConfig, path: &Path) -> Result<Self> {
        let what = format!("{} `model`", path.display());
        let m = &config.model;
        let parsed = match config.kind {
            ModelKind::AudioDiffusionModel => {
                Self::Generator(super::config::from_kwargs(m, &what)?)
            }
            ModelKind::AudioDiffusionUpsampler => {
                Self::Upsampler(super::config::from_kwargs(m, &what)?)
            }
            ModelKind::AudioDiffusionAutoencoder => {
                Self::Autoencoder(super::config::from_kwargs(m, &what)?)
            }
            ModelKind::AudioDiffusionConditional => {
                Self::Conditional(super::config::from_kwargs(m, &what)?)
            }
            ModelKind::BandExtension => {
                return Err(Error::config(
                    format!("{} `kind`", path.display()),
                    "a BandExtension folder holds no diffusion network",
                ))
            }
        };
        let in_channels = parsed.in_channels();
        if in_channels != config.channels {
            return Err(Error::config(
                format!("{} `channels`", path.display()),
                format!(
                    "the header says {} channels, the network's in_channels is {in_channels}",
                    config.channels
                ),
            ));
        }
        Ok(parsed)
    }

    /// The network's audio channels.
    pub fn in_channels(&self) -> usize {
        match self {
            Self::Generator(c) => c.unet.in_channels,
            Self::Upsampler(c) => c.unet.in_channels,
            Self::Autoencoder(c) => c.unet.in_channels,
            Self::Conditional(c) => c.unet.in_channels,
        }
    }
}

/// A model of any kind.
// One model value per loaded folder: the variants' size difference does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum AnyModel {
    /// Unconditional generator.
    Generator(AudioDiffusionModel),
    /// Upsampler.
    Upsampler(AudioDiffusionUpsampler),
    /// Diffusion autoencoder.
    Autoencoder(AudioDiffusionAutoencoder),
    /// Conditional generator.
    Conditional(AudioDiffusionConditional),
}

impl AnyModel {
    /// Builds the model of `config` from `tensors` (names as in `model.safetensors`), checking
    /// that every weight is used with its shape; `source` names the tensors in errors.
    pub fn build(
        config: &ModelConfig,
        compat: Compat,
        tensors: HashMap<String, Tensor>,
        source: &Path,
        device: &Device,
    ) -> Result<Self> {
        let dt = DType::F32;
        Ok(match config {
            ModelConfig::Generator(c) => {
                Self::Generator(build_audited(tensors, source, dt, device, |vb| {
                    AudioDiffusionModel::new(c, compat, vb)
                })?)
            }
            ModelConfig::Upsampler(c) => {
                Self::Upsampler(build_audited(tensors, source, dt, device, |vb| {
                    AudioDiffusionUpsampler::new(c, compat, vb)
                })?)
            }
            ModelConfig::Autoencoder(c) => {
                Self::Autoencoder(build_audited(tensors, source, dt, device, |vb| {
                    AudioDiffusionAutoencoder::new(c, compat, vb)
                })?)
            }
            ModelConfig::Conditional(c) => {
                Self::Conditional(build_audited(tensors, source, dt, device, |vb| {
                    AudioDiffusionConditional::new(c, compat, vb)
                })?)
            }
        })
    }

    /// Loads the model folder `dir` onto `device`: its header and the model it holds.
    pub fn load(dir: &Path, device: &Device) -> Result<(FolderConfig, Self)> {
        let folder = ModelFolder::load(dir, device)?;
        let config =
            ModelConfig::from_folder_config(&folder.config, &dir.join(super::folder::CONFIG_FILE))?;
        let weights = dir.join(super::folder::WEIGHTS_FILE);
        let model = Self::build(
            &config,
            folder.config.compat,
            folder.tensors,
            &weights,
            device,
        )?;
        Ok((folder.config, model))
    }

    /// The kind of model.
    pub fn kind(&self) -> ModelKind {
        match self {
            Self::Generator(_) => ModelKind::AudioDiffusionModel,
            Self::Upsampler(_) => ModelKind::AudioDiffusionUpsampler,
            Self::Autoencoder(_) => ModelKind::AudioDiffusionAutoencoder,
            Self::Conditional(_) => ModelKind::AudioDiffusionConditional,
        }
    }
}

/// The model's own tensors out of a checkpoint: the whole state dict, or the one under a training
/// wrapper's outer prefix (`model.`, `state_dict.model.`) when every key has it.
fn model_tensors(all: HashMap<String, Tensor>) -> HashMap<String, Tensor> {
    let own = |k: &str| {
        ["unet.", "diffusion.", "multiencoder.", "bottleneck."]
            .iter()
            .any(|p| k.starts_with(p))
    };
    if all.keys().any(|k| own(k)) {
        return all.into_iter().filter(|(k, _)| own(k)).collect();
    }
    for prefix in ["model.", "module.", "state_dict.model."] {
        if all.keys().any(|k| k.starts_with(prefix)) {
            let inner = strip_prefix(&all, prefix);
            if inner.keys().any(|k| own(k)) {
                return inner.into_iter().filter(|(k, _)| own(k)).collect();
            }
        }
    }
    all
}

/// Converts a reference checkpoint plus a folder config into a model folder at `out_dir`.
///
/// The checkpoint's tensors are taken from the model's root (an outer training-wrapper prefix is
/// stripped), the UNet's duplicate `diffusion.net.*` copies are checked and folded into `unet.*`,
/// the model is built from them to prove that every key fits (an audit listing every missing,
/// unexpected or mis-shaped key otherwise), and the folder is written with each tensor once.
pub fn convert(
    checkpoint: &Path,
    config: FolderConfig,
    out_dir: &Path,
    device: &Device,
) -> Result<ModelFolder> {
    convert_to(checkpoint, config, out_dir, device, DType::F32)
}

/// [`convert`], storing the weights as `store` (`F32`, `F16` or `BF16`; the folder loads into
/// f32 either way). The audit runs on the f32 weights.
pub fn convert_to(
    checkpoint: &Path,
    config: FolderConfig,
    out_dir: &Path,
    device: &Device,
    store: DType,
) -> Result<ModelFolder> {
    if !matches!(store, DType::F32 | DType::F16 | DType::BF16) {
        return Err(crate::Error::input(
            "store dtype",
            format!("weights are stored as f32, f16 or bf16, not {store:?}"),
        ));
    }
    let cfg_path = out_dir.join(super::folder::CONFIG_FILE);
    config.validate(&cfg_path)?;
    let typed = ModelConfig::from_folder_config(&config, &cfg_path)?;
    let tensors = model_tensors(read_tensors(checkpoint, device)?);
    super::folder::check_finite(&tensors, checkpoint)?;
    let folder = ModelFolder::new(config, tensors)?;
    let tensors_f32: HashMap<String, Tensor> = folder
        .tensors
        .iter()
        .map(|(k, t)| Ok((k.clone(), t.to_dtype(DType::F32)?)))
        .collect::<Result<_>>()?;
    let folder = ModelFolder {
        tensors: tensors_f32,
        ..folder
    };
    AnyModel::build(
        &typed,
        folder.config.compat,
        folder.tensors.clone(),
        checkpoint,
        device,
    )?;
    let folder = ModelFolder {
        tensors: folder
            .tensors
            .iter()
            .map(|(k, t)| Ok((k.clone(), t.to_dtype(store)?)))
            .collect::<Result<_>>()?,
        ..folder
    };
    folder.save(out_dir)?;
    Ok(folder)
}
