//! Heun's method with optional churn: Karras et al. 2022 (EDM), Algorithm 2 (k-diffusion's
//! `sample_heun`). Not in audio-diffusion-pytorch 0.0.61 as such: its `KarrasSampler` is this
//! algorithm with a bug in the second-order update (see [`super::KarrasSampler`]). Second order.

use super::{initial, randn_like, report, steps_to_run, to_d, OnStep, Sampler};
use crate::diffusion::Denoiser;
use crate::{Compat, NoiseSource, Result};
use candle_core::Tensor;

/// EDM Heun sampler: `s_churn = 0` is the deterministic second-order ODE solver; `s_churn > 0`
/// adds noise (`γ_i = min(s_churn/N, √2 − 1)` where `s_tmin ≤ σ_i ≤ s_tmax`) before each step.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HeunSampler {
    /// Lowest sigma that gets churn.
    pub s_tmin: f64,
    /// Highest sigma that gets churn.
    pub s_tmax: f64,
    /// Total churn over the run (0 = deterministic).
    pub s_churn: f64,
    /// Scale of the churn noise (slightly above 1 compensates detail loss).
    pub s_noise: f64,
}

impl Default for HeunSampler {
    fn default() -> Self {
        Self {
            s_tmin: 0.0,
            s_tmax: f64::INFINITY,
            s_churn: 0.0,
            s_noise: 1.0,
        }
    }
}

/// How the shared EDM loop behaves (corrected, or the reference's `KarrasSampler`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct EdmMode {
    pub compat: Compat,
}

impl HeunSampler {
    /// `γ_i` for sigma `sigma` over a run of `num_steps` steps.
    pub(crate) fn gamma(&self, sigma: f64, num_steps: usize) -> f64 {
        if self.s_tmin <= sigma && sigma <= self.s_tmax {
            (self.s_churn / num_steps as f64).min(std::f64::consts::SQRT_2 - 1.0)
        } else {
            0.0
        }
    }

    /// The EDM loop shared with the reference's `KarrasSampler`.
    pub(crate) fn run(
        &self,
        mode: EdmMode,
        denoiser: &dyn Denoiser,
        start_noise: &Tensor,
        sigmas: &[f64],
        noise: &mut dyn NoiseSource,
        on_step: &mut OnStep<'_>,
    ) -> Result<Tensor> {
        let reference = mode.compat.is_reference();
        let total = steps_to_run(sigmas, mode.compat)?;
        let num_steps = sigmas.len() - 1;
        let mut x = initial(start_noise, sigmas)?;
        for i in 0..total {
            let (sigma, sigma_next) = (sigmas[i], sigmas[i + 1]);
            let gamma = self.gamma(sigma, num_steps);
            // 1. Churn: raise the noise level to σ̂ = σ(1 + γ).
            let sigma_hat = sigma + gamma * sigma;
            let x_hat = if reference || gamma > 0.0 {
                let eps = (randn_like(&x, noise)? * self.s_noise)?;
                (&x + (eps * (sigma_hat * sigma_hat - sigma * sigma).max(0.0).sqrt())?)?
            } else {
                x.clone()
            };
            // 2. Euler step from σ̂ to σ_next.
            let d = to_d(
                &x_hat,
                &denoiser.denoise(&x_hat, sigma_hat, noise)?,
                sigma_hat,
            )?;
            x = (&x_hat + (&d * (sigma_next - sigma_hat))?)?;
            // 3. Heun correction (the reference multiplies by (σ − σ̂) instead of (σ_next − σ̂)).
            if sigma_next != 0.0 {
                let d_prime = to_d(&x, &denoiser.denoise(&x, sigma_next, noise)?, sigma_next)?;
                let h = if reference {
                    sigma - sigma_hat
                } else {
                    sigma_next - sigma_hat
                };
                x = (&x_hat + ((d + d_prime)? * (0.5 * h))?)?;
            }
            report(on_step, i + 1, total, sigma_next)?;
        }
        Ok(x)
    }
}

impl Sampler for HeunSampler {
    fn sample(
        &self,
        denoiser: &dyn Denoiser,
        start_noise: &Tensor,
        sigmas: &[f64],
        noise: &mut dyn NoiseSource,
        on_step: &mut OnStep<'_>,
    ) -> Result<Tensor> {
        self.run(
            EdmMode {
                compat: Compat::Fixed,
            },
            denoiser,
            start_noise,
            sigmas,
            noise,
            on_step,
        )
    }
}
