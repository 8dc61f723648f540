//! Euler's method on the probability-flow ODE `dx/dσ = (x − D(x; σ))/σ` (Karras et al. 2022,
//! EDM, eq. 3; k-diffusion's `sample_euler` without churn). Not in audio-diffusion-pytorch 0.0.61.
//! First order.

use super::{initial, report, steps_to_run, to_d, OnStep, Sampler};
use crate::diffusion::Denoiser;
use crate::{Compat, NoiseSource, Result};
use candle_core::Tensor;

/// Deterministic Euler: one denoiser call per step, no draws.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct EulerSampler;

impl Sampler for EulerSampler {
    fn sample(
        &self,
        denoiser: &dyn Denoiser,
        start_noise: &Tensor,
        sigmas: &[f64],
        noise: &mut dyn NoiseSource,
        on_step: &mut OnStep<'_>,
    ) -> Result<Tensor> {
        let total = steps_to_run(sigmas, Compat::Fixed)?;
        let mut x = initial(start_noise, sigmas)?;
        for i in 0..total {
            let (sigma, sigma_next) = (sigmas[i], sigmas[i + 1]);
            let d = to_d(&x, &denoiser.denoise(&x, sigma, noise)?, sigma)?;
            x = (&x + (d * (sigma_next - sigma))?)?;
            report(on_step, i + 1, total, sigma_next)?;
        }
        Ok(x)
    }
}
