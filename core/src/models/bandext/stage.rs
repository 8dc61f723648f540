//! A generator's band-extension stage: a generator that samples at a low rate (where a small
//! network spends its capacity on the band music lives in) hands its output to the band-extension
//! model in its folder's `band_extension/`, which upsamples it to `factor` times the rate. The
//! folder's `config.json` says so with `"band_extension": {"factor": K}` (issue 11).

use super::BandExtension;
use crate::audio::AudioClip;
use crate::models::folder::{FolderConfig, BAND_EXTENSION_DIR};
use crate::noise::NoiseSource;
use crate::{Error, Result};
use std::path::Path;

/// A loaded band-extension stage.
#[derive(Debug, Clone)]
pub struct Stage {
    factor: usize,
    model: BandExtension,
}

impl Stage {
    /// The stage of model folder `dir` whose config is `cfg`, or `None` when it has none.
    pub fn load(dir: &Path, cfg: &FolderConfig) -> Result<Option<Self>> {
        let Some(s) = cfg.band_extension else {
            return Ok(None);
        };
        let sub = dir.join(BAND_EXTENSION_DIR);
        if !sub.is_dir() {
            return Err(Error::io(
                &sub,
                std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    "config.json names a band-extension stage, but this folder is missing",
                ),
            ));
        }
        Self::new(BandExtension::load(&sub)?, s.factor).map(Some)
    }

    /// A stage upsampling by `factor` with `model`, which must serve that factor.
    pub fn new(model: BandExtension, factor: usize) -> Result<Self> {
        if !model.factors().contains(&factor) {
            return Err(Error::config(
                "band_extension.factor",
                format!(
                    "the band-extension model serves {:?}, not {factor}",
                    model.factors()
                ),
            ));
        }
        Ok(Self { factor, model })
    }

    /// The upsampling factor.
    pub fn factor(&self) -> usize {
        self.factor
    }

    /// One channel upsampled by the factor (`factor` times as many samples).
    pub fn apply_signal(&self, x: &[f32], noise: &mut dyn NoiseSource) -> Result<Vec<f32>> {
        self.model.upsample_signal(x, self.factor, noise)
    }

    /// `clip` upsampled by the factor (`factor` times as many samples, at `factor` times the rate);
    /// `noise` supplies the fill. Chunk by chunk with crossfades ([`super::stream`]), so the
    /// working memory does not grow with the clip; a clip of one chunk is upsampled in one piece,
    /// as [`BandExtension::upsample_clip`] does.
    pub fn apply(&self, clip: &AudioClip, noise: &mut dyn NoiseSource) -> Result<AudioClip> {
        let rate = clip
            .sample_rate()
            .checked_mul(self.factor as u32)
            .ok_or_else(|| Error::input("band_extension.factor", "rate overflow"))?;
        let mut chans = vec![Vec::with_capacity(clip.len() * self.factor); clip.num_channels()];
        super::stream::upsample_streaming(&self.model, clip, self.factor, noise, &mut |block| {
            super::stream::append_block(&mut chans, block);
            Ok(())
        })?;
        AudioClip::new(rate, chans)
    }
}
