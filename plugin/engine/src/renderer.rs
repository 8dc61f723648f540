//! The model behind the plugin, as the worker sees it: four renders on stereo buffers, each
//! reporting progress and honouring cancel between steps. Captured clips come at their own rate
//! (the host's when captured); results may come at any rate, and the worker brings them to the
//! host's.

use crate::buffer::AudioBuf;
use crate::error::Result;
use std::path::Path;

/// Sampler choice (the `sampler` parameter): adiff-core's one list.
pub use adiff_core::sampler::SamplerKind;

/// Settings shared by all renders.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RenderSettings {
    /// Sampler steps.
    pub steps: usize,
    /// Sampler.
    pub sampler: SamplerKind,
    /// Seed of every random draw of the render.
    pub seed: u64,
    /// Classifier-free guidance scale (no shipped model takes guidance yet; unused).
    pub guidance: f32,
    /// Upsample: the captured clip's band ends at its rate over `2 * factor` (2, 4 or 8); 0
    /// measures where it ends.
    pub factor: usize,
}

/// Called with the fraction done (0..=1) after each step; returns `false` to cancel.
pub type Progress<'a> = &'a mut dyn FnMut(f32) -> bool;

/// A model the worker drives.
pub trait Renderer: Send {
    /// The rate at which [`Renderer::generate`] counts its frames, Hz.
    fn sample_rate(&self) -> f64;

    /// Unconditional generation of `frames` frames at [`Renderer::sample_rate`].
    fn generate(
        &mut self,
        frames: usize,
        s: &RenderSettings,
        progress: Progress<'_>,
    ) -> Result<AudioBuf>;

    /// The clip made full-band.
    fn upsample(
        &mut self,
        clip: &AudioBuf,
        s: &RenderSettings,
        progress: Progress<'_>,
    ) -> Result<AudioBuf>;

    /// The clip with frames `start..end` (at the clip's rate) regenerated.
    fn inpaint(
        &mut self,
        clip: &AudioBuf,
        start: usize,
        end: usize,
        s: &RenderSettings,
        progress: Progress<'_>,
    ) -> Result<AudioBuf>;

    /// The clip followed by `frames` new frames (at the clip's rate), generated span by span.
    fn continue_clip(
        &mut self,
        clip: &AudioBuf,
        frames: usize,
        s: &RenderSettings,
        progress: Progress<'_>,
    ) -> Result<AudioBuf>;

    /// A line about the last render for the user (the measured cut-off of an upsampling), once.
    fn take_note(&mut self) -> Option<String> {
        None
    }
}

/// Builds a renderer from a model folder (`None`: the embedded default). Runs on the worker, on
/// the first render, never during a host's scan or the plugin's construction.
pub type RendererFactory = Box<dyn Fn(Option<&Path>) -> Result<Box<dyn Renderer>> + Send>;
