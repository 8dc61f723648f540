//! Autoencoder latents: audio to a latent and back by sampling, and the latent file.

use super::layout::{from_model, to_model, Layout};
use super::ops::windowed;
use super::{Inner, Model, OnProgress, RenderOptions};
use crate::audio::resample_clip;
use crate::audio::{limits, AudioClip};
use crate::models::folder::FolderConfig;
use crate::models::{AnyModel, AudioDiffusionAutoencoder};
use crate::{Error, Result, SeededNoise};
use candle_core::{DType, Device, Tensor};
use std::collections::HashMap;
use std::path::Path;

/// An autoencoder latent with what decoding needs to give back the clip it came from.
#[derive(Debug, Clone)]
pub struct Latent {
    /// `(batch, channels, frames)`.
    pub tensor: Tensor,
    /// The model rate it was made at (Hz).
    pub rate: u32,
    /// Length of the encoded audio in samples at `rate`.
    pub len: usize,
    /// Whether the clip's channels ran as batch items (a mono model).
    pub channels_as_batch: bool,
}

/// Largest latent file read (bytes).
const MAX_LATENT_FILE: u64 = 1 << 31;

impl Latent {
    /// Writes the latent as a `.safetensors` file with tensors `latent` and `info = [rate,
    /// samples, channels as batch (0/1)]` (through a temporary file and a rename).
    pub fn save(&self, path: &Path) -> Result<()> {
        let info = Tensor::new(
            &[
                self.rate as i64,
                self.len as i64,
                i64::from(self.channels_as_batch),
            ],
            &Device::Cpu,
        )?;
        let tensors = HashMap::from([
            ("latent".to_string(), self.tensor.to_device(&Device::Cpu)?),
            ("info".to_string(), info),
        ]);
        crate::files::write_atomic(path, |tmp| {
            candle_core::safetensors::save(&tensors, tmp).map_err(|e| Error::WeightsFile {
                path: path.to_path_buf(),
                reason: e.to_string(),
            })
        })
    }

    /// Reads a latent file written by [`Latent::save`] onto `device`, refusing a malformed one.
    pub fn load(path: &Path, device: &Device) -> Result<Self> {
        let bad = |reason: String| Error::input(path.display().to_string(), reason);
        let size = std::fs::metadata(path)
            .map_err(|e| Error::io(path, e))?
            .len();
        if size > MAX_LATENT_FILE {
            return Err(bad(format!(
                "{size} bytes; a latent file is at most {MAX_LATENT_FILE}"
            )));
        }
        let tensors = candle_core::safetensors::load(path, device)
            .map_err(|e| bad(format!("not a latent file written by `adiff encode` ({e})")))?;
        let (Some(latent), Some(info)) = (tensors.get("latent"), tensors.get("info")) else {
            return Err(bad(
                "not a latent file written by `adiff encode` (needs `latent` and `info`)".into(),
            ));
        };
        let info: Vec<i64> = info
            .to_device(&Device::Cpu)
            .and_then(|i| i.to_vec1())
            .map_err(|_| bad("malformed `info` tensor".into()))?;
        let [rate, len, as_batch] = info[..] else {
            return Err(bad("malformed `info` tensor".into()));
        };
        let rate = u32::try_from(rate)
            .ok()
            .filter(|r| limits::check_rate(*r).is_ok())
            .ok_or_else(|| bad(format!("`info` names the rate {rate} Hz")))?;
        let len = usize::try_from(len).map_err(|_| bad(format!("`info` names {len} samples")))?;
        let Ok((batch, _, _)) = latent.dims3() else {
            return Err(bad(format!(
                "the latent has shape {:?}, expected (batch, channels, length)",
                latent.dims()
            )));
        };
        if batch > limits::MAX_CHANNELS {
            return Err(bad(format!(
                "the latent holds {batch} batch items; at most {} (one per audio channel)",
                limits::MAX_CHANNELS
            )));
        }
        let values = latent
            .to_dtype(DType::F32)?
            .flatten_all()?
            .to_vec1::<f32>()?;
        if values.iter().any(|v| !v.is_finite()) {
            return Err(bad("the latent holds non-finite values".into()));
        }
        Ok(Self {
            tensor: latent.clone(),
            rate,
            len,
            channels_as_batch: as_batch == 1,
        })
    }
}

fn lcm(a: usize, b: usize) -> usize {
    let gcd = |mut x: usize, mut y: usize| {
        while y != 0 {
            (x, y) = (y, x % y);
        }
        x.max(1)
    };
    a / gcd(a, b) * b
}

impl Model {
    fn autoencoder(&self, what: &str) -> Result<(&FolderConfig, &AudioDiffusionAutoencoder)> {
        match &self.inner {
            Inner::Diffusion {
                config,
                model: AnyModel::Autoencoder(m),
                ..
            } => Ok((config, m)),
            _ => Err(self.cannot(what, "an autoencoder (AudioDiffusionAutoencoder)")),
        }
    }

    /// The latent of `clip` (brought to the model's rate): in one call when it fits in a model
    /// window, else window by window (memory bounded by one window), each window encoded with a
    /// margin of context on both sides that is then cut from its latent.
    pub fn encode(&self, clip: &AudioClip, opts: &RenderOptions) -> Result<Latent> {
        let (cfg, m) = self.autoencoder("encoding")?;
        opts.refuse_guidance()?;
        let at_model = resample_clip(clip, cfg.sample_rate)?;
        let (x, layout) = to_model(&at_model, cfg.channels, &self.device)?;
        let unit = lcm(m.config().unet.total_factor(), m.factor());
        let len = x.dim(2)?;
        let x = x.pad_with_zeros(2, 0, len.div_ceil(unit) * unit - len)?;
        let mut noise = SeededNoise::new(opts.seed);
        let window = cfg.window_length.div_ceil(unit) * unit;
        let padded = x.dim(2)?;
        let tensor = if padded <= window {
            m.encode(&x, &mut noise)?
        } else {
            let f = m.factor();
            let margin = (window / 8).div_ceil(unit) * unit;
            let hop = window.saturating_sub(2 * margin).max(unit);
            let mut parts = Vec::new();
            for start in (0..padded).step_by(hop) {
                let take = hop.min(padded - start);
                let lo = start.saturating_sub(margin);
                let hi = (start + take + margin).min(padded);
                let latent = m.encode(&x.narrow(2, lo, hi - lo)?, &mut noise)?;
                parts.push(latent.narrow(2, (start - lo) / f, take / f)?);
            }
            Tensor::cat(&parts, 2)?
        };
        Ok(Latent {
            tensor,
            rate: cfg.sample_rate,
            len,
            channels_as_batch: layout == Layout::ChannelsAsBatch,
        })
    }

    /// The audio of `latent` by sampling, at the model's rate: in one call when it fits in a
    /// model window, else window by window, crossfaded.
    pub fn decode(
        &self,
        latent: &Latent,
        opts: &RenderOptions,
        on: OnProgress<'_>,
    ) -> Result<AudioClip> {
        let (cfg, m) = self.autoencoder("decoding")?;
        opts.refuse_guidance()?;
        if latent.rate != cfg.sample_rate {
            return Err(Error::input(
                "latent",
                format!(
                    "made at {} Hz, the model runs at {} Hz",
                    latent.rate, cfg.sample_rate
                ),
            ));
        }
        let f = m.factor().max(1);
        let max_frames = limits::max_frames(cfg.sample_rate, cfg.channels) / f;
        let frames = latent.tensor.dim(2)?;
        if frames > max_frames {
            return Err(Error::input(
                "latent",
                format!(
                    "{frames} frames long; at most {max_frames} decode within the length limit"
                ),
            ));
        }
        let sampling = opts.sampling(&cfg.sampling, cfg.compat)?;
        let window = (cfg.window_length / f).max(1);
        let tensor = latent.tensor.to_device(&self.device)?;
        let y = if frames <= window {
            let mut noise = SeededNoise::new(opts.seed);
            m.decode(
                &tensor,
                &sampling,
                &mut noise,
                &mut |s: &crate::sampler::StepInfo| on(s.step as f32 / s.total.max(1) as f32),
            )?
        } else {
            windowed(
                &tensor,
                window,
                f,
                opts.seed,
                on,
                |piece, noise, on_step| m.decode(piece, &sampling, noise, on_step),
            )?
        };
        let len = latent.len.min(y.dim(2)?);
        let layout = if latent.channels_as_batch {
            Layout::ChannelsAsBatch
        } else {
            Layout::Native
        };
        let clip = from_model(&y.narrow(2, 0, len)?, layout, cfg.sample_rate)?;
        super::layout::check_finite(&clip, &self.name)?;
        Ok(clip)
    }
}
