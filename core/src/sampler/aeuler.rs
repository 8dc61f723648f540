//! `diffusion.py::AEulerSampler` (audio-diffusion-pytorch 0.0.61): ancestral Euler (k-diffusion's
//! `sample_euler_ancestral` with η = 1).

use super::{ancestral_sigmas, initial, randn_like, report, steps_to_run, to_d, OnStep, Sampler};
use crate::diffusion::Denoiser;
use crate::{Compat, NoiseSource, Result};
use candle_core::Tensor;

/// Ancestral Euler: per step one denoiser call, then one normal draw like `x` scaled by σ_up.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct AEulerSampler {
    /// Early stop and always-draw (reference) or all steps (fixed).
    pub compat: Compat,
}

impl Sampler for AEulerSampler {
    fn sample(
        &self,
        denoiser: &dyn Denoiser,
        start_noise: &Tensor,
        sigmas: &[f64],
        noise: &mut dyn NoiseSource,
        on_step: &mut OnStep<'_>,
    ) -> Result<Tensor> {
        let total = steps_to_run(sigmas, self.compat)?;
        let mut x = initial(start_noise, sigmas)?;
        for i in 0..total {
            let (sigma, sigma_next) = (sigmas[i], sigmas[i + 1]);
            let (up, down) = ancestral_sigmas(sigma, sigma_next);
            let d = to_d(&x, &denoiser.denoise(&x, sigma, noise)?, sigma)?;
            x = (&x + (d * (down - sigma))?)?;
            if self.compat.is_reference() || up > 0.0 {
                x = (&x + (randn_like(&x, noise)? * up)?)?;
            }
            report(on_step, i + 1, total, sigma_next)?;
        }
        Ok(x)
    }
}
