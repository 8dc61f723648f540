//! The model behind the plugin, as the worker sees it: four renders on stereo buffers at the
//! model's rate, each reporting progress and honouring cancel between steps.

use crate::buffer::AudioBuf;
use crate::error::Result;
use std::path::Path;

/// Sampler choice (the `sampler` parameter), the samplers of audio-diffusion-pytorch 0.0.61.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SamplerKind {
    /// `ADPM2Sampler` (the only one that can inpaint in 0.0.61).
    Adpm2,
    /// `AEulerSampler`.
    AEuler,
    /// `KarrasSampler`.
    Karras,
}

impl SamplerKind {
    /// From the `sampler` parameter's index.
    pub fn from_index(i: usize) -> Self {
        match i {
            1 => Self::AEuler,
            2 => Self::Karras,
            _ => Self::Adpm2,
        }
    }
}

/// Settings shared by all renders.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RenderSettings {
    /// Sampler steps.
    pub steps: usize,
    /// Sampler.
    pub sampler: SamplerKind,
    /// Seed of every random draw of the render.
    pub seed: u64,
    /// Classifier-free guidance scale (ignored by unconditional models).
    pub guidance: f32,
    /// Upsample factor (2, 4 or 8): the captured clip's band ends at the rate over `2 * factor`
    /// (used by band-extension models; a diffusion upsampler uses its own factor).
    pub factor: usize,
}

/// Called with the fraction done (0..=1) after each step; returns `false` to cancel.
pub type Progress<'a> = &'a mut dyn FnMut(f32) -> bool;

/// A model the worker drives. Buffers in and out are at [`Renderer::sample_rate`].
pub trait Renderer: Send {
    /// The model's sample rate, Hz.
    fn sample_rate(&self) -> f64;

    /// The rate [`Renderer::upsample`] takes and returns when the host runs at `host` Hz: the
    /// model's rate, unless the model works at any rate.
    fn upsample_rate(&self, host: f64) -> f64 {
        let _ = host;
        self.sample_rate()
    }

    /// Unconditional generation of `frames` frames.
    fn generate(
        &mut self,
        frames: usize,
        s: &RenderSettings,
        progress: Progress<'_>,
    ) -> Result<AudioBuf>;

    /// The clip made full-band (same length).
    fn upsample(
        &mut self,
        clip: &AudioBuf,
        s: &RenderSettings,
        progress: Progress<'_>,
    ) -> Result<AudioBuf>;

    /// The clip with frames `start..end` regenerated (same length).
    fn inpaint(
        &mut self,
        clip: &AudioBuf,
        start: usize,
        end: usize,
        s: &RenderSettings,
        progress: Progress<'_>,
    ) -> Result<AudioBuf>;

    /// The clip followed by `frames` new frames, generated span by span.
    fn continue_clip(
        &mut self,
        clip: &AudioBuf,
        frames: usize,
        s: &RenderSettings,
        progress: Progress<'_>,
    ) -> Result<AudioBuf>;
}

/// Builds a renderer from a model folder (`None`: the embedded default). Runs on the worker, on
/// the first render, never during a host's scan or the plugin's construction.
pub type RendererFactory = Box<dyn Fn(Option<&Path>) -> Result<Box<dyn Renderer>> + Send>;
