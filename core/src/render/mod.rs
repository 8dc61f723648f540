//! One way to run a model: the use-case layer that the command line and the plugin both call.
//!
//! [`Model::open`] opens a model folder of any kind (the four diffusion kinds, a generator with a
//! band-extension stage, and the band-extension upsampler); its operations take and return
//! [`AudioClip`]s at the clip's own rate and do all the planning: the model's rate against the
//! clip's, windows and crossfades, the band-extension stage, putting back the untouched audio, and
//! the channel layout. [`RenderOptions`] holds every sampling choice; one progress-and-cancel
//! callback ([`OnProgress`]) reports the fraction done. The same folder, clip, seed and options
//! give the same samples whichever front end asks.

mod latent;
mod layout;
mod ops;
mod options;
pub mod shipped;
mod upsample;

pub use latent::Latent;
pub use layout::{exact_length, seam, Layout};
pub use ops::{Extend, Keep, MAX_GENERATE_WINDOWS, MAX_RESAMPLES, MAX_SPANS, MAX_SPAN_WINDOWS};
pub use options::{RenderOptions, ScheduleKind, DEFAULT_STRENGTH};
pub use upsample::{UpsamplePlan, UpsampleTarget};

use crate::models::bandext::stage::Stage;
use crate::models::bandext::{BandExtension, KIND as BAND_EXTENSION_KIND};
use crate::models::folder::{FolderConfig, ModelKind, CONFIG_FILE, WEIGHTS_FILE};
use crate::models::AnyModel;
use crate::{Error, Result};
use candle_core::Device;
use std::ops::ControlFlow;
use std::path::Path;

/// Called with the fraction done (0 to 1); `Break` cancels the render, which then returns
/// [`Error::Cancelled`].
pub type OnProgress<'a> = &'a mut dyn FnMut(f32) -> ControlFlow<()>;

/// A loaded model of any kind, ready to render.
pub struct Model {
    name: String,
    device: Device,
    inner: Inner,
}

// One model per loaded folder: the variants' size difference does not matter.
#[allow(clippy::large_enum_variant)]
enum Inner {
    Diffusion {
        config: FolderConfig,
        model: AnyModel,
        stage: Option<Stage>,
    },
    BandExtension(BandExtension),
}

impl std::fmt::Debug for Model {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Model")
            .field("name", &self.name)
            .field("kind", &self.kind())
            .finish_non_exhaustive()
    }
}

/// The `"kind"` field of a `config.json` text, if it has one.
fn kind_field(text: &str) -> Option<String> {
    let v: serde_json::Value = serde_json::from_str(text).ok()?;
    v.get("kind")?.as_str().map(str::to_string)
}

impl Model {
    /// Opens model folder `dir` (`config.json` + `model.safetensors`, and `band_extension/` for a
    /// generator with a stage) onto `device` (a band-extension model runs on the CPU).
    pub fn open(dir: &Path, device: &Device) -> Result<Self> {
        let missing =
            |what: String| Error::io(dir, std::io::Error::new(std::io::ErrorKind::NotFound, what));
        if !dir.is_dir() {
            return Err(missing(format!(
                "model folder not found (expected a folder with {CONFIG_FILE} and {WEIGHTS_FILE})"
            )));
        }
        let cfg_path = dir.join(CONFIG_FILE);
        if !cfg_path.is_file() {
            return Err(missing(format!("the model folder has no {CONFIG_FILE}")));
        }
        if !dir.join(WEIGHTS_FILE).is_file() {
            return Err(missing(format!(
                "the model folder has no weights ({WEIGHTS_FILE} is missing)"
            )));
        }
        let name = dir.display().to_string();
        let text = read_bounded(&cfg_path)?;
        let inner = if kind_field(&text).as_deref() == Some(BAND_EXTENSION_KIND) {
            Inner::BandExtension(BandExtension::load(dir)?)
        } else {
            let (config, model) = AnyModel::load(dir, device)?;
            let stage = Stage::load(dir, &config)?;
            Inner::Diffusion {
                config,
                model,
                stage,
            }
        };
        Ok(Self {
            name,
            device: device.clone(),
            inner,
        })
    }

    /// A model from the text of its `config.json` and the bytes of its `model.safetensors` (an
    /// embedded model); `name` names it in messages. A generator with a band-extension stage needs
    /// its folder ([`Model::open`]).
    pub fn from_bytes(config: &str, weights: &[u8], name: &str, device: &Device) -> Result<Self> {
        let inner = if kind_field(config).as_deref() == Some(BAND_EXTENSION_KIND) {
            Inner::BandExtension(BandExtension::from_bytes(config, weights, name)?)
        } else {
            let path = Path::new(name).join(CONFIG_FILE);
            let de = &mut serde_json::Deserializer::from_str(config);
            let cfg: FolderConfig = serde_path_to_error::deserialize(de).map_err(|e| {
                Error::config(
                    format!("{} `{}`", path.display(), e.path()),
                    e.inner().to_string(),
                )
            })?;
            cfg.validate(&path)?;
            if cfg.band_extension.is_some() {
                return Err(Error::config(
                    format!("{} `band_extension`", path.display()),
                    "a generator with a band-extension stage opens from its folder",
                ));
            }
            let typed = crate::models::any::ModelConfig::from_folder_config(&cfg, &path)?;
            let weights_path = Path::new(name).join(WEIGHTS_FILE);
            let tensors = candle_core::safetensors::load_buffer(weights, device).map_err(|e| {
                Error::WeightsFile {
                    path: weights_path.clone(),
                    reason: e.to_string(),
                }
            })?;
            crate::models::folder::check_finite(&tensors, &weights_path)?;
            let tensors = crate::models::folder::ModelFolder::new(cfg.clone(), tensors)?.tensors;
            let model = AnyModel::build(&typed, cfg.compat, tensors, &weights_path, device)?;
            Inner::Diffusion {
                config: cfg,
                model,
                stage: None,
            }
        };
        Ok(Self {
            name: name.to_string(),
            device: device.clone(),
            inner,
        })
    }

    /// How the model is named in messages (its folder, or the embedded model's name).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The device it runs on.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// What kind of model it is.
    pub fn kind(&self) -> ModelKind {
        match &self.inner {
            Inner::Diffusion { config, .. } => config.kind,
            Inner::BandExtension(_) => ModelKind::BandExtension,
        }
    }

    /// The folder header of a diffusion model (`None` for a band-extension model).
    pub fn config(&self) -> Option<&FolderConfig> {
        match &self.inner {
            Inner::Diffusion { config, .. } => Some(config),
            Inner::BandExtension(_) => None,
        }
    }

    /// The rate the network samples at (`None`: a band-extension model works at any rate).
    pub fn sample_rate(&self) -> Option<u32> {
        self.config().map(|c| c.sample_rate)
    }

    /// The rate of generated audio: the network's, times a band-extension stage's factor.
    pub fn output_rate(&self) -> Option<u32> {
        self.config().map(FolderConfig::output_rate)
    }

    /// The upsampling factors an upsampler serves (empty for other kinds).
    pub fn factors(&self) -> Vec<usize> {
        match &self.inner {
            Inner::BandExtension(b) => b.factors().to_vec(),
            Inner::Diffusion {
                model: AnyModel::Upsampler(m),
                ..
            } => m.factors().to_vec(),
            Inner::Diffusion { .. } => Vec::new(),
        }
    }

    /// Checks `opts` against this model before anything runs (the operations check them too):
    /// a guidance scale for a model that takes none, a step count out of bounds.
    pub fn check_options(&self, opts: &RenderOptions) -> Result<()> {
        if self.kind() != ModelKind::AudioDiffusionConditional {
            opts.refuse_guidance()?;
        }
        if let Some(cfg) = self.config() {
            opts.sampling(&cfg.sampling, cfg.compat)?;
        }
        Ok(())
    }

    /// The error for an operation this kind of model cannot do.
    fn cannot(&self, what: &str, needs: &str) -> Error {
        Error::input(
            format!("model {}", self.name),
            format!("it is a {:?}; {what} needs {needs}", self.kind()),
        )
    }
}

/// Reads a small text file (a `config.json`), refusing one over 1 MiB before reading it.
fn read_bounded(path: &Path) -> Result<String> {
    const MAX: u64 = 1 << 20;
    let len = std::fs::metadata(path)
        .map_err(|e| Error::io(path, e))?
        .len();
    if len > MAX {
        return Err(Error::config(
            path.display().to_string(),
            format!("{len} bytes; a config.json is at most {MAX}"),
        ));
    }
    std::fs::read_to_string(path).map_err(|e| Error::io(path, e))
}

/// A `Break` from `on` as [`Error::Cancelled`] (for work without sampler steps).
fn checkpoint(on: &mut dyn FnMut(f32) -> ControlFlow<()>, done: f32) -> Result<()> {
    match on(done) {
        ControlFlow::Continue(()) => Ok(()),
        ControlFlow::Break(()) => Err(Error::Cancelled { step: 0, total: 1 }),
    }
}

#[cfg(test)]
mod tests;
