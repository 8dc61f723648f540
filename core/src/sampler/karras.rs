//! `diffusion.py::KarrasSampler` (audio-diffusion-pytorch 0.0.61): EDM Algorithm 2 (Karras et al.
//! 2022). Under [`Compat::V0_0_61`] it reproduces the reference exactly: the churn noise is drawn
//! before the denoiser calls even when γ = 0, the loop stops one step early, and the second-order
//! update is `x̂ + ½(σ_i − σ̂)(d + d')` (reference Appendix A.2: with `s_churn = 0` the output is
//! the scaled start noise). Under [`Compat::Fixed`] it is [`HeunSampler`].

use super::heun::EdmMode;
use super::{HeunSampler, OnStep, Sampler};
use crate::diffusion::Denoiser;
use crate::{Compat, NoiseSource, Result};
use candle_core::Tensor;

/// `KarrasSampler(s_tmin=0, s_tmax=inf, s_churn=0, s_noise=1)`.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct KarrasSampler {
    /// The churn parameters (same meaning as in [`HeunSampler`]).
    pub params: HeunSampler,
    /// Reference behaviour (with its bug) or corrected Heun.
    pub compat: Compat,
}

impl Sampler for KarrasSampler {
    fn sample(
        &self,
        denoiser: &dyn Denoiser,
        start_noise: &Tensor,
        sigmas: &[f64],
        noise: &mut dyn NoiseSource,
        on_step: &mut OnStep<'_>,
    ) -> Result<Tensor> {
        self.params.run(
            EdmMode {
                compat: self.compat,
            },
            denoiser,
            start_noise,
            sigmas,
            noise,
            on_step,
        )
    }
}
