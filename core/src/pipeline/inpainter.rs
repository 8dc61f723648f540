//! `diffusion.py::DiffusionInpainter` (audio-diffusion-pytorch 0.0.61): RePaint-style inpainting
//! through the sampler's `inpaint` (only ADPM2 has one). Like the reference, the result is not
//! clamped; unlike it, conditioning can be forwarded (`NetInputs::none()` reproduces it).

use crate::diffusion::{Diffusion, ObjectiveDenoiser};
use crate::sampler::{OnStep, Sampler};
use crate::schedule::Schedule;
use crate::{NetInputs, NoiseSource, Result};
use candle_core::Tensor;

/// `DiffusionInpainter(diffusion, num_steps, num_resamples, sampler, sigma_schedule)`.
pub struct DiffusionInpainter<'a> {
    /// The objective whose `denoise_fn` is sampled.
    pub diffusion: &'a dyn Diffusion,
    /// Number of steps (schedule length − 1).
    pub num_steps: usize,
    /// RePaint resamples per step (1 = none).
    pub num_resamples: usize,
    /// The sampler (must implement inpainting).
    pub sampler: &'a dyn Sampler,
    /// The sigma schedule.
    pub schedule: &'a dyn Schedule,
}

impl DiffusionInpainter<'_> {
    /// `forward(inpaint, inpaint_mask)`: regenerates `inpaint (batch, channels, length)` where
    /// `mask` (same shape, 1/true = keep the source sample) is 0.
    pub fn inpaint(
        &self,
        source: &Tensor,
        mask: &Tensor,
        inputs: &NetInputs,
        noise: &mut dyn NoiseSource,
        on_step: &mut OnStep<'_>,
    ) -> Result<Tensor> {
        let sigmas = self.schedule.sigmas(self.num_steps)?;
        let denoiser = ObjectiveDenoiser {
            diffusion: self.diffusion,
            inputs,
        };
        self.sampler.inpaint(
            &denoiser,
            source,
            mask,
            &sigmas,
            self.num_resamples,
            noise,
            on_step,
        )
    }
}
