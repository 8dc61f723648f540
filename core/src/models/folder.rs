//! The model folder: `config.json` beside `model.safetensors`, one format for every front end
//! (command line, plugin, trainer). No reference counterpart: audio-diffusion-pytorch 0.0.61 has
//! only pickled checkpoints; this is the layout people know from model hubs.
//!
//! `config.json` holds the model kind, the network config (the reference constructor's keyword
//! arguments, unchanged), the sample rate, the channel count, the training window length and the
//! default sampler settings. `model.safetensors` holds every tensor once, under its reference
//! `state_dict()` name; the UNet that the reference registers twice (`unet.*` and
//! `diffusion.net.*`) is stored once, as `unet.*`.

use crate::audio::limits;
use crate::files::write_atomic;
use crate::{Compat, Error, Result};
use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::Path;

/// Name of the config file in a model folder.
pub const CONFIG_FILE: &str = "config.json";
/// Name of the weights file in a model folder.
pub const WEIGHTS_FILE: &str = "model.safetensors";
/// The sub-folder that holds a generator's band-extension stage ([`BandExtensionStage`]).
pub const BAND_EXTENSION_DIR: &str = "band_extension";
/// Longest training window a folder may declare (samples): 2^22, 87 s at 48 kHz.
pub const MAX_WINDOW: usize = 1 << 22;
/// Most sampling steps a folder or a command may ask for.
pub const MAX_STEPS: usize = 10_000;
/// The value of `format` in every `config.json`.
pub const FORMAT: &str = "adiff-model";
/// The folder format version this build writes and reads.
pub const FORMAT_VERSION: u32 = 1;

/// Which reference model class a folder holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ModelKind {
    /// `AudioDiffusionModel`: unconditional generation.
    AudioDiffusionModel,
    /// `AudioDiffusionUpsampler`: bandwidth extension from a lower rate.
    AudioDiffusionUpsampler,
    /// `AudioDiffusionAutoencoder`: encode to a latent, decode by sampling.
    AudioDiffusionAutoencoder,
    /// `AudioDiffusionConditional`: generation conditioned on a token embedding.
    AudioDiffusionConditional,
    /// The band-extension upsampler (`models::bandext`, not a reference class): its folder's
    /// `config.json` is `{"kind": "BandExtension", "config": {..}}`, opened by
    /// [`crate::render::Model::open`] like every other kind.
    BandExtension,
}

/// A sampler, written like the reference constructor tree.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "class", content = "kwargs")]
pub enum SamplerSetting {
    /// `AEulerSampler()` (the reference default).
    AEulerSampler {},
    /// `ADPM2Sampler(rho)`.
    ADPM2Sampler {
        /// Exponent of the midpoint (1 = arithmetic mean).
        #[serde(default = "one")]
        rho: f64,
    },
    /// `KarrasSampler(s_tmin, s_tmax, s_churn, s_noise)`.
    KarrasSampler {
        /// Lowest sigma that gets churn.
        #[serde(default)]
        s_tmin: f64,
        /// Highest sigma that gets churn (`"inf"` allowed, the default).
        #[serde(default = "infinity", with = "super::config::float_or_inf")]
        s_tmax: f64,
        /// Total churn.
        #[serde(default)]
        s_churn: f64,
        /// Scale of the churn noise.
        #[serde(default = "one")]
        s_noise: f64,
    },
}

/// A sigma schedule, written like the reference constructor tree.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "class", content = "kwargs")]
pub enum ScheduleSetting {
    /// `KarrasSchedule(sigma_min, sigma_max, rho)` (sigmas).
    KarrasSchedule {
        /// Smallest sigma.
        sigma_min: f64,
        /// Largest sigma.
        sigma_max: f64,
        /// Warp exponent.
        #[serde(default = "seven")]
        rho: f64,
    },
}

impl SamplerSetting {
    /// The sampler kind this constructor names (the one list of sampler names).
    pub fn kind(&self) -> crate::sampler::SamplerKind {
        use crate::sampler::SamplerKind;
        match self {
            Self::AEulerSampler {} => SamplerKind::Aeuler,
            Self::ADPM2Sampler { .. } => SamplerKind::Adpm2,
            Self::KarrasSampler { .. } => SamplerKind::Karras,
        }
    }
}

fn one() -> f64 {
    1.0
}
fn infinity() -> f64 {
    f64::INFINITY
}
fn seven() -> f64 {
    7.0
}

/// Default sampler settings stored with a model (front ends may override each).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SamplingDefaults {
    /// Number of sigmas of the schedule (the reference's `num_steps`; N gives N-1 steps under 0.0.61).
    pub num_steps: usize,
    /// The sampler.
    pub sampler: SamplerSetting,
    /// The sigma schedule.
    pub sigma_schedule: ScheduleSetting,
    /// Classifier-free guidance scale (conditional models; the reference default is 5.0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub embedding_scale: Option<f64>,
}

impl Default for SamplingDefaults {
    /// The reference sampling defaults (`get_default_sampling_kwargs`): Karras(1e-4, 3, 9) and
    /// AEuler; `num_steps` (which the reference leaves to the caller) 50.
    fn default() -> Self {
        Self {
            num_steps: 50,
            sampler: SamplerSetting::AEulerSampler {},
            sigma_schedule: ScheduleSetting::KarrasSchedule {
                sigma_min: 1e-4,
                sigma_max: 3.0,
                rho: 9.0,
            },
            embedding_scale: None,
        }
    }
}

/// The contents of `config.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FolderConfig {
    /// Always `"adiff-model"`.
    pub format: String,
    /// Folder format version ([`FORMAT_VERSION`]).
    pub format_version: u32,
    /// The model class.
    pub kind: ModelKind,
    /// Sample rate of the audio the model serves (Hz).
    pub sample_rate: u32,
    /// Audio channels of the model (the network's `in_channels`).
    pub channels: usize,
    /// Training window length (samples at `sample_rate`).
    pub window_length: usize,
    /// Which behaviour the model was trained with (`"0.0.61"` for reference checkpoints).
    #[serde(default)]
    pub compat: Compat,
    /// Default sampler settings.
    #[serde(default)]
    pub sampling: SamplingDefaults,
    /// The network config: the reference constructor's keyword arguments for `kind`.
    pub model: serde_json::Value,
    /// A generator that samples at a low rate: its output goes on through the band-extension model
    /// in the folder's `band_extension/` sub-folder (not a reference field).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub band_extension: Option<BandExtensionStage>,
}

/// The stage after a low-rate generator: the band-extension model (`models::bandext`) in the
/// folder's [`BAND_EXTENSION_DIR`] upsamples the generated audio by `factor`, so the folder's
/// output rate is `sample_rate * factor`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BandExtensionStage {
    /// Upsampling factor of the stage (one the band-extension model serves).
    pub factor: usize,
}

impl FolderConfig {
    /// A config for `kind` with the given network kwargs and the reference sampling defaults.
    pub fn new(
        kind: ModelKind,
        model: serde_json::Value,
        sample_rate: u32,
        channels: usize,
        window_length: usize,
    ) -> Self {
        Self {
            format: FORMAT.to_string(),
            format_version: FORMAT_VERSION,
            kind,
            sample_rate,
            channels,
            window_length,
            compat: Compat::Fixed,
            sampling: SamplingDefaults::default(),
            model,
            band_extension: None,
        }
    }

    /// The rate of what the folder's model hands out: `sample_rate`, times the band-extension
    /// stage's factor when it has one.
    pub fn output_rate(&self) -> u32 {
        match self.band_extension {
            Some(s) => self.sample_rate.saturating_mul(s.factor as u32),
            None => self.sample_rate,
        }
    }

    /// Checks the header fields; `path` names the file in errors.
    pub fn validate(&self, path: &Path) -> Result<()> {
        let field = |f: &str| format!("{} `{f}`", path.display());
        if self.format != FORMAT {
            return Err(Error::config(
                field("format"),
                format!("expected \"{FORMAT}\", found {:?}", self.format),
            ));
        }
        if self.format_version != FORMAT_VERSION {
            return Err(Error::config(
                field("format_version"),
                format!(
                    "this build reads version {FORMAT_VERSION}, the folder has {}",
                    self.format_version
                ),
            ));
        }
        if self.kind == ModelKind::BandExtension {
            return Err(Error::config(
                field("kind"),
                "a BandExtension folder holds {\"kind\", \"config\"}, not a diffusion model's config; open it with render::Model::open",
            ));
        }
        self.validate_sizes(path)?;
        if let Some(stage) = self.band_extension {
            if self.kind != ModelKind::AudioDiffusionModel {
                return Err(Error::config(
                    field("band_extension"),
                    format!(
                        "only a generator (AudioDiffusionModel) takes a band-extension stage, this folder holds a {:?}",
                        self.kind
                    ),
                ));
            }
            if !(2..=64).contains(&stage.factor) {
                return Err(Error::config(
                    field("band_extension.factor"),
                    format!("must be 2 to 64, found {}", stage.factor),
                ));
            }
        }
        if !self.model.is_object() {
            return Err(Error::config(
                field("model"),
                "must be an object of constructor keyword arguments",
            ));
        }
        Ok(())
    }

    /// Bounds the rate, channels, window and step count before anything is sized from them.
    fn validate_sizes(&self, path: &Path) -> Result<()> {
        let field = |f: &str| format!("{} `{f}`", path.display());
        limits::check_rate(self.sample_rate)
            .map_err(|e| Error::config(field("sample_rate"), e.to_string()))?;
        limits::check_channels(self.channels)
            .map_err(|e| Error::config(field("channels"), e.to_string()))?;
        if !(1..=MAX_WINDOW).contains(&self.window_length) {
            return Err(Error::config(
                field("window_length"),
                format!(
                    "{} samples; 1 to {MAX_WINDOW} are supported",
                    self.window_length
                ),
            ));
        }
        if !(2..=MAX_STEPS).contains(&self.sampling.num_steps) {
            return Err(Error::config(
                field("sampling.num_steps"),
                format!(
                    "{}; 2 to {MAX_STEPS} are supported",
                    self.sampling.num_steps
                ),
            ));
        }
        Ok(())
    }

    /// Reads and validates `config.json` at `path`.
    pub fn read(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        let de = &mut serde_json::Deserializer::from_str(&text);
        let cfg: Self = serde_path_to_error::deserialize(de).map_err(|e| Error::Json {
            what: super::config::named_field(&path.display().to_string(), &e.path().to_string()),
            reason: e.into_inner(),
        })?;
        cfg.validate(path)?;
        Ok(cfg)
    }

    /// Writes pretty JSON to `path` (through a temporary file and a rename).
    pub fn write(&self, path: &Path) -> Result<()> {
        let text = serde_json::to_string_pretty(self).map_err(|source| Error::Json {
            what: path.display().to_string(),
            reason: source,
        })?;
        write_atomic(path, |tmp| {
            std::fs::write(tmp, text.as_bytes()).map_err(|e| Error::io(tmp, e))
        })
    }
}

/// A model folder in memory: its config and its tensors (each once, reference names).
#[derive(Debug, Clone)]
pub struct ModelFolder {
    /// The config (`config.json`).
    pub config: FolderConfig,
    /// The tensors (`model.safetensors`), keyed by reference `state_dict()` name.
    pub tensors: HashMap<String, Tensor>,
}

impl ModelFolder {
    /// A folder from a config and tensors; aliased UNet copies are folded into `unet.*`.
    pub fn new(config: FolderConfig, tensors: HashMap<String, Tensor>) -> Result<Self> {
        Ok(Self {
            config,
            tensors: fold_unet_aliases(tensors)?,
        })
    }

    /// A folder from a config and the variables of `varmap` as they are now (a model built on it,
    /// freshly initialised or trained).
    pub fn from_varmap(config: FolderConfig, varmap: &candle_nn::VarMap) -> Result<Self> {
        let tensors: HashMap<String, Tensor> = varmap
            .data()
            .lock()
            .map_err(|_| Error::input("varmap", "its lock is poisoned"))?
            .iter()
            .map(|(k, v)| (k.clone(), v.as_tensor().clone()))
            .collect();
        Self::new(config, tensors)
    }

    /// Loads `dir/config.json` and `dir/model.safetensors` onto `device`.
    pub fn load(dir: &Path, device: &Device) -> Result<Self> {
        if !dir.is_dir() {
            return Err(Error::io(
                dir,
                std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    "model folder not found (not a directory)",
                ),
            ));
        }
        let config = FolderConfig::read(&dir.join(CONFIG_FILE))?;
        let weights = dir.join(WEIGHTS_FILE);
        if !weights.is_file() {
            return Err(Error::WeightsFile {
                path: weights,
                reason: format!("missing: a model folder needs {CONFIG_FILE} and {WEIGHTS_FILE}"),
            });
        }
        let tensors =
            candle_core::safetensors::load(&weights, device).map_err(|e| Error::WeightsFile {
                path: weights.clone(),
                reason: e.to_string(),
            })?;
        if tensors.is_empty() {
            return Err(Error::WeightsFile {
                path: weights,
                reason: "holds no tensors".into(),
            });
        }
        check_finite(&tensors, &weights)?;
        Self::new(config, tensors)
    }

    /// Writes `dir/config.json` and `dir/model.safetensors`, creating `dir` if needed.
    pub fn save(&self, dir: &Path) -> Result<()> {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        let weights = dir.join(WEIGHTS_FILE);
        write_atomic(&weights, |tmp| {
            candle_core::safetensors::save(&self.tensors, tmp).map_err(|e| Error::WeightsFile {
                path: tmp.to_path_buf(),
                reason: e.to_string(),
            })
        })?;
        self.config.write(&dir.join(CONFIG_FILE))
    }

    /// A VarBuilder over the tensors, converted to `dtype` on request.
    pub fn var_builder(&self, dtype: DType, device: &Device) -> VarBuilder<'static> {
        VarBuilder::from_tensors(self.tensors.clone(), dtype, device)
    }

    /// Number of scalar parameters (each tensor once).
    pub fn parameter_count(&self) -> usize {
        self.tensors.values().map(|t| t.elem_count()).sum()
    }
}

/// Folds the reference's second registration of the UNet (`diffusion.net.*`) into `unet.*`.
///
/// Where both names exist they must agree in shape and value (they share storage in the
/// reference); a lone `diffusion.net.*` key is renamed to `unet.*`.
pub fn fold_unet_aliases(tensors: HashMap<String, Tensor>) -> Result<HashMap<String, Tensor>> {
    const ALIAS: &str = "diffusion.net.";
    const CANONICAL: &str = "unet.";
    let mut out = HashMap::with_capacity(tensors.len());
    let mut aliases = Vec::new();
    for (k, t) in tensors {
        match k.strip_prefix(ALIAS) {
            Some(rest) => aliases.push((rest.to_string(), k.clone(), t)),
            None => {
                out.insert(k, t);
            }
        }
    }
    for (rest, alias, t) in aliases {
        let key = format!("{CANONICAL}{rest}");
        match out.get(&key) {
            Some(first) => {
                if first.dims() != t.dims() {
                    return Err(Error::ShapeMismatch {
                        key: alias,
                        expected: first.dims().to_vec(),
                        found: t.dims().to_vec(),
                    });
                }
                let diff = if t.elem_count() == 0 {
                    0.0
                } else {
                    (first.to_dtype(DType::F32)? - t.to_dtype(DType::F32)?)?
                        .abs()?
                        .flatten_all()?
                        .max(0)?
                        .to_scalar::<f32>()?
                };
                if diff != 0.0 {
                    return Err(Error::input(
                        alias,
                        format!("differs from its twin `{key}` (max difference {diff}); the two copies must be equal"),
                    ));
                }
            }
            None => {
                out.insert(key, t);
            }
        }
    }
    Ok(out)
}

/// Refuses a checkpoint with a NaN or infinite weight (it would turn every output sample NaN),
/// naming the first such tensor (in name order) and how many of its values are bad.
pub fn check_finite(tensors: &HashMap<String, Tensor>, path: &Path) -> Result<()> {
    let mut names: Vec<&String> = tensors.keys().collect();
    names.sort();
    for name in names {
        let t = &tensors[name];
        if !t.dtype().is_float() {
            continue;
        }
        let values = t.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()?;
        let bad = values.iter().filter(|v| !v.is_finite()).count();
        if bad > 0 {
            return Err(Error::WeightsFile {
                path: path.to_path_buf(),
                reason: format!(
                    "tensor `{name}` holds {bad} non-finite values (NaN or infinity) of {}",
                    values.len()
                ),
            });
        }
    }
    Ok(())
}
