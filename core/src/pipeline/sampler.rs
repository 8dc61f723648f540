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

    /// Audio-to-audio ("variation", the init audio of stable-audio-tools): `x (batch, channels,
    /// length)` noised to `strength` (in (0, 1]) of the schedule's largest sigma, then denoised
    /// from there: the sampler runs from `sigma_start = strength * sigma_max` through the sigmas of
    /// the `num_steps` schedule below it, starting at `x + sigma_start * n`.
    /// Strength 1 starts from the full schedule with `x` added to the start noise. Returns
    /// `clamp(x, -1, 1)`.
    pub fn sample_from(
        &self,
        x: &Tensor,
        strength: f64,
        num_steps: Option<usize>,
        inputs: &NetInputs,
        noise: &mut dyn NoiseSource,
        on_step: &mut OnStep<'_>,
    ) -> Result<Tensor> {
        if !(strength > 0.0 && strength <= 1.0) {
            return Err(Error::input(
                "strength",
                format!("must be above 0 and at most 1, got {strength}"),
            ));
        }
        let num_steps = num_steps.or(self.num_steps).ok_or_else(|| {
            Error::config("num_steps", "give num_steps to the sampler or to the call")
        })?;
        let sigmas = self.schedule.sigmas(num_steps)?;
        if sigmas.len() < 2 {
            return Err(Error::input(
                "num_steps",
                "the schedule has fewer than 2 sigmas",
            ));
        }
        // The schedule from exactly `strength * sigma_max` down: that level, then the schedule's
        // sigmas below it (so every strength starts where it says, whatever the step count).
        let target = strength * sigmas[0];
        let mut tail: Vec<f64> = vec![target];
        tail.extend(sigmas.iter().copied().filter(|s| *s < target));
        if strength >= 1.0 || tail.len() < 2 {
            tail = sigmas.clone();
        }
        let tail = &tail[..];
        let sigma = tail[0];
        // The sampler starts from `start * sigma`: unit noise plus the clean signal over sigma.
        let unit = noise.randn(x.dims(), x.device())?.to_dtype(x.dtype())?;
        let start = (unit + (x / sigma)?)?;
        let denoiser = ObjectiveDenoiser {
            diffusion: self.diffusion,
            inputs,
        };
        let y = self
            .sampler
            .sample(&denoiser, &start, tail, noise, on_step)?;
        Ok(y.clamp(-1.0, 1.0)?)
    }
}
