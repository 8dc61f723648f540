//! `model.py::Model1d` (audio-diffusion-pytorch 0.0.61, reference §4.1): a network wrapped in a
//! diffusion objective; `forward` is the training loss, `sample` runs a `DiffusionSampler` (clamped
//! to [-1, 1]). The `AudioDiffusion*` classes are built on it.

use super::config::{DiffusionConfig, Objective};
use super::sampling::Sampling;
use crate::pipeline::DiffusionSampler;
use crate::sampler::OnStep;
use crate::{Compat, Net, NetInputs, NoiseSource, Result};
use candle_core::Tensor;

/// A network `N` (UNet1d, UNetConditional1d) inside its objective.
///
/// The reference registers the network twice (`unet` and `diffusion.net`); here it is owned once,
/// by the objective, and its weights are read under `unet.*`.
#[derive(Debug)]
pub struct Model1d<N> {
    /// The objective holding the network.
    pub diffusion: Objective<N>,
    compat: Compat,
}

impl<N: Net> Model1d<N> {
    /// Wraps `net` in the objective `cfg` names.
    pub fn new(net: N, cfg: &DiffusionConfig, compat: Compat) -> Result<Self> {
        Ok(Self {
            diffusion: Objective::new(net, cfg, compat)?,
            compat,
        })
    }

    /// The behaviour switch the model was built with.
    pub fn compat(&self) -> Compat {
        self.compat
    }

    /// The network (`unet`).
    pub fn unet(&self) -> &N {
        self.diffusion.net()
    }

    /// `forward(x, **kwargs)`: the scalar training loss of clean `x (batch, channels, length)`.
    /// Draws sigma `(batch,)`, then the noise like `x`, then whatever the network draws.
    pub fn loss(
        &self,
        x: &Tensor,
        inputs: &NetInputs,
        noise: &mut dyn NoiseSource,
    ) -> Result<Tensor> {
        self.diffusion.as_diffusion().loss(x, inputs, noise, None)
    }

    /// `sample(noise, num_steps, sigma_schedule, sampler, **kwargs)`: samples from unit
    /// `start_noise (batch, channels, length)`, `inputs` forwarded to every network call.
    pub fn sample(
        &self,
        start_noise: &Tensor,
        sampling: &Sampling,
        inputs: &NetInputs,
        noise: &mut dyn NoiseSource,
        on_step: &mut OnStep<'_>,
    ) -> Result<Tensor> {
        self.sampler(sampling)
            .sample(start_noise, None, inputs, noise, on_step)
    }

    /// Audio-to-audio: `x` noised to `strength` of the largest sigma and denoised from there
    /// ([`DiffusionSampler::sample_from`]).
    pub fn vary(
        &self,
        x: &Tensor,
        strength: f64,
        sampling: &Sampling,
        inputs: &NetInputs,
        noise: &mut dyn NoiseSource,
        on_step: &mut OnStep<'_>,
    ) -> Result<Tensor> {
        self.sampler(sampling)
            .sample_from(x, strength, None, inputs, noise, on_step)
    }

    /// The `DiffusionSampler` of `sampling` over this model's objective.
    fn sampler<'a>(&'a self, sampling: &'a Sampling) -> DiffusionSampler<'a> {
        DiffusionSampler {
            diffusion: self.diffusion.as_diffusion(),
            sampler: sampling.sampler.as_ref(),
            schedule: sampling.schedule.as_ref(),
            num_steps: Some(sampling.num_steps),
        }
    }
}
