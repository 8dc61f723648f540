//! `diffusion.py::DiffusionSampler` (audio-diffusion-pytorch 0.0.61): a schedule and a sampler over
//! an objective's denoiser, conditioning forwarded on every call, output clamped to [−1, 1].

use crate::diffusion::{Diffusion, ObjectiveDenoiser};
use crate::sampler::{OnStep, Sampler};
use crate::schedule::Schedule;
use crate::{Error, NetInputs, NoiseSource, Result};
use candle_core::Tensor;

/// `DiffusionSampler(diffusion, sampler, sigma_schedule, num_steps=None)`.
pub struct DiffusionSampler<'a> {
    /// The objective whose `denoise_fn` is sampled.
    pub diffusion: &'a dyn Diffusion,
    /// The sampler.
    pub sampler: &'a dyn Sampler,
    /// The sigma schedule.
    pub schedule: &'a dyn Schedule,
    /// Default number of steps when the call gives none.
    pub num_steps: Option<usize>,
}

impl DiffusionSampler<'_> {
    /// `forward(noise, num_steps=None, **kwargs)`: samples from unit `start_noise (batch, channels,
    /// length)`, forwarding `inputs` to the network on every call; `noise` serves every other draw,
    /// `on_step` reports progress and may cancel. Returns `clamp(x, −1, 1)`.
    pub fn sample(
        &self,
        start_noise: &Tensor,
        num_steps: Option<usize>,
        inputs: &NetInputs,
        noise: &mut dyn NoiseSource,
        on_step: &mut OnStep<'_>,
    ) -> Result<Tensor> {
        let num_steps = num_steps.or(self.num_steps).ok_or_else(|| {
            Error::config("num_steps", "give num_steps to the sampler or to the call")
        })?;
        let sigmas = self.schedule.sigmas(num_steps)?;
        let denoiser = ObjectiveDenoiser {
            diffusion: self.diffusion,
            inputs,
        };
        let x = self
            .sampler
            .sample(&denoiser, start_noise, &sigmas, noise, on_step)?;
        Ok(x.clamp(-1.0, 1.0)?)
    }
}
