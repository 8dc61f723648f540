//! `BandExtRenderer`: the [`Renderer`] backed by adiff-core's band-extension upsampler
//! (`adiff_core::models::bandext::BandExtension`, the shipped `models/upsampler`), working at the
//! host rate. Generate, Inpaint and Continue go to the renderer it wraps, when it has one.

use crate::buffer::AudioBuf;
use crate::error::{EngineError, Result};
use crate::renderer::{Progress, RenderSettings, Renderer};
use adiff_core::audio::AudioClip;
use adiff_core::models::bandext::{sinc_down, BandExtension, KIND};
use adiff_core::SeededNoise;
use std::path::{Path, PathBuf};

/// The band-extension upsampler, plus the renderer that serves the other modes.
pub struct BandExtRenderer {
    model: BandExtension,
    name: PathBuf,
    other: Option<Box<dyn Renderer>>,
}

/// True when `dir/config.json` names the band-extension model (`"kind": "BandExtension"`).
pub fn is_band_extension(dir: &Path) -> bool {
    std::fs::read_to_string(dir.join("config.json"))
        .ok()
        .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
        .is_some_and(|v| v.get("kind").and_then(|k| k.as_str()) == Some(KIND))
}

fn model_err(name: &Path, e: adiff_core::Error) -> EngineError {
    EngineError::Model {
        path: name.to_path_buf(),
        reason: e.to_string(),
    }
}

/// The clip made full-band by `model`: each channel brought down by `factor` with the reference's
/// sinc `downsample` (as the model was fitted), then `model.upsample_clip(.., factor, ..)` with
/// one `SeededNoise::new(seed)` stream over both channels, at the clip's rate. Frames past the
/// last whole multiple of `factor` are kept from the input (the upsampler returns `factor` times
/// the low-rate length).
pub fn upsample_buf(
    model: &BandExtension,
    clip: &AudioBuf,
    factor: usize,
    seed: u64,
) -> adiff_core::Result<AudioBuf> {
    let low: Vec<Vec<f32>> = (0..2)
        .map(|c| sinc_down(clip.channel(c), factor))
        .collect::<adiff_core::Result<_>>()?;
    // The upsampler only uses the rate to name its output's rate.
    let low_rate = ((clip.rate / factor as f64).round() as u32).max(1);
    let low = AudioClip::new(low_rate, low)?;
    let up = model.upsample_clip(&low, factor, &mut SeededNoise::new(seed))?;
    let mut chans = up.into_channels().into_iter();
    let mut fit = |c: usize| {
        let mut v = chans.next().unwrap_or_default();
        v.truncate(clip.len());
        let n = v.len();
        v.extend_from_slice(&clip.channel(c)[n..]);
        v
    };
    let (l, r) = (fit(0), fit(1));
    let mut out = AudioBuf::from_channels(l, r, clip.rate);
    out.anchor = clip.anchor;
    Ok(out)
}

impl BandExtRenderer {
    /// The model from the text of its `config.json` and the bytes of its `model.safetensors`
    /// (an embedded model); `name` names it in errors.
    pub fn from_bytes(
        config: &str,
        weights: &[u8],
        name: &str,
        other: Option<Box<dyn Renderer>>,
    ) -> Result<Self> {
        let model = BandExtension::from_bytes(config, weights, name)
            .map_err(|e| model_err(Path::new(name), e))?;
        Ok(Self {
            model,
            name: PathBuf::from(name),
            other,
        })
    }

    /// The model folder `dir` (see [`is_band_extension`]).
    pub fn load(dir: &Path, other: Option<Box<dyn Renderer>>) -> Result<Self> {
        let model = BandExtension::load(dir).map_err(|e| model_err(dir, e))?;
        Ok(Self {
            model,
            name: dir.to_path_buf(),
            other,
        })
    }

    /// The loaded model.
    pub fn model(&self) -> &BandExtension {
        &self.model
    }

    fn other(&mut self, mode: &'static str) -> Result<&mut Box<dyn Renderer>> {
        let name = self.name.display().to_string();
        self.other.as_mut().ok_or_else(|| EngineError::Render {
            mode,
            reason: format!("the model {name} is a {KIND} upsampler"),
        })
    }
}

impl Renderer for BandExtRenderer {
    /// The rate of the other modes' renderer (the band extension itself runs at any rate).
    fn sample_rate(&self) -> f64 {
        self.other.as_ref().map_or(48_000.0, |o| o.sample_rate())
    }

    fn upsample_rate(&self, host: f64) -> f64 {
        host
    }

    fn generate(
        &mut self,
        frames: usize,
        s: &RenderSettings,
        progress: Progress<'_>,
    ) -> Result<AudioBuf> {
        self.other("Generate")?.generate(frames, s, progress)
    }

    fn upsample(
        &mut self,
        clip: &AudioBuf,
        s: &RenderSettings,
        progress: Progress<'_>,
    ) -> Result<AudioBuf> {
        if !self.model.factors().contains(&s.factor) {
            return Err(EngineError::Render {
                mode: "Upsample",
                reason: format!(
                    "{} upsamples by {:?}, not by {}",
                    self.name.display(),
                    self.model.factors(),
                    s.factor
                ),
            });
        }
        if !progress(0.0) {
            return Err(EngineError::Cancelled);
        }
        let out = upsample_buf(&self.model, clip, s.factor, s.seed)
            .map_err(|e| model_err(&self.name, e))?;
        if !progress(1.0) {
            return Err(EngineError::Cancelled);
        }
        Ok(out)
    }

    fn inpaint(
        &mut self,
        clip: &AudioBuf,
        start: usize,
        end: usize,
        s: &RenderSettings,
        progress: Progress<'_>,
    ) -> Result<AudioBuf> {
        self.other("Inpaint")?
            .inpaint(clip, start, end, s, progress)
    }

    fn continue_clip(
        &mut self,
        clip: &AudioBuf,
        frames: usize,
        s: &RenderSettings,
        progress: Progress<'_>,
    ) -> Result<AudioBuf> {
        self.other("Continue")?
            .continue_clip(clip, frames, s, progress)
    }
}
