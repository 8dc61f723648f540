//! `diffusion.py::ADPM2Sampler` (audio-diffusion-pytorch 0.0.61): ancestral DPM-Solver-2 (Lu et al.
//! 2022; k-diffusion's `sample_dpm_2_ancestral`, with the midpoint taken in σ^(1/ρ)), and its
//! RePaint-style `inpaint` (Lugmayr et al. 2022).

use super::{ancestral_sigmas, initial, randn_like, report, steps_to_run, to_d, OnStep, Sampler};
use crate::diffusion::Denoiser;
use crate::{Compat, Error, NoiseSource, Result};
use candle_core::Tensor;

/// Ancestral DPM-2: per step two denoiser calls (at σ and σ_mid), then one draw scaled by σ_up.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ADPM2Sampler {
    /// Midpoint exponent: `σ_mid = ((σ^(1/ρ) + σ_down^(1/ρ))/2)^ρ` (1 = arithmetic mean).
    pub rho: f64,
    /// Early stop and always-draw (reference) or all steps (fixed).
    pub compat: Compat,
}

impl Default for ADPM2Sampler {
    fn default() -> Self {
        Self {
            rho: 1.0,
            compat: Compat::Fixed,
        }
    }
}

impl ADPM2Sampler {
    /// One step `σ → σ_next` from `x`: 2 NFE, then the σ_up draw.
    fn step(
        &self,
        denoiser: &dyn Denoiser,
        x: &Tensor,
        sigma: f64,
        sigma_next: f64,
        noise: &mut dyn NoiseSource,
    ) -> Result<Tensor> {
        let (up, down) = ancestral_sigmas(sigma, sigma_next);
        let r = self.rho;
        let mid = ((sigma.powf(1.0 / r) + down.powf(1.0 / r)) / 2.0).powf(r);
        let d = to_d(x, &denoiser.denoise(x, sigma, noise)?, sigma)?;
        let x_mid = (x + (d * (mid - sigma))?)?;
        let d_mid = to_d(&x_mid, &denoiser.denoise(&x_mid, mid, noise)?, mid)?;
        let x = (x + (d_mid * (down - sigma))?)?;
        if self.compat.is_reference() || up > 0.0 {
            Ok((&x + (randn_like(&x, noise)? * up)?)?)
        } else {
            Ok(x)
        }
    }
}

impl Sampler for ADPM2Sampler {
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
            x = self.step(denoiser, &x, sigmas[i], sigmas[i + 1], noise)?;
            report(on_step, i + 1, total, sigmas[i + 1])?;
        }
        Ok(x)
    }

    /// reference §3.9: `x = σ₀·N`; per step one fresh source noise `source + σ_i·N`, then per
    /// resample: merge the noisy source where `mask` is 1, one ADPM2 step, and (except after the
    /// last resample) re-noise from σ_{i+1} back to σ_i. Returns the source where `mask` is 1.
    fn inpaint(
        &self,
        denoiser: &dyn Denoiser,
        source: &Tensor,
        mask: &Tensor,
        sigmas: &[f64],
        num_resamples: usize,
        noise: &mut dyn NoiseSource,
        on_step: &mut OnStep<'_>,
    ) -> Result<Tensor> {
        if num_resamples == 0 {
            return Err(Error::config("num_resamples", "must be at least 1"));
        }
        if mask.dims() != source.dims() {
            return Err(Error::input(
                "mask",
                format!(
                    "shape {:?} differs from the source {:?}",
                    mask.dims(),
                    source.dims()
                ),
            ));
        }
        let total = steps_to_run(sigmas, self.compat)?;
        let keep = mask.to_dtype(source.dtype())?;
        let free = keep.affine(-1.0, 1.0)?;
        let mut x = initial(&randn_like(source, noise)?, sigmas)?;
        for i in 0..total {
            let (sigma, sigma_next) = (sigmas[i], sigmas[i + 1]);
            let source_noisy = (source + (randn_like(source, noise)? * sigma)?)?;
            for r in 0..num_resamples {
                x = ((&source_noisy * &keep)? + (&x * &free)?)?;
                x = self.step(denoiser, &x, sigma, sigma_next, noise)?;
                if r + 1 < num_resamples {
                    let renoise = (sigma * sigma - sigma_next * sigma_next).max(0.0).sqrt();
                    x = (&x + (randn_like(&x, noise)? * renoise)?)?;
                }
            }
            report(on_step, i + 1, total, sigma_next)?;
        }
        Ok(((source * &keep)? + (x * &free)?)?)
    }
}
