//! DPM-Solver++(2M) (Lu et al. 2022, "DPM-Solver++", Algorithm 2; k-diffusion's
//! `sample_dpmpp_2m`). Not in audio-diffusion-pytorch 0.0.61. A multistep second-order solver in
//! `λ = −ln σ`: one denoiser call per step.

use super::{initial, report, steps_to_run, OnStep, Sampler};
use crate::diffusion::Denoiser;
use crate::{Compat, Error, NoiseSource, Result};
use candle_core::Tensor;

/// DPM++ 2M: first step (and a final step to σ = 0) first order; the others combine the last two
/// denoised estimates.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct DpmPp2MSampler;

impl Sampler for DpmPp2MSampler {
    fn sample(
        &self,
        denoiser: &dyn Denoiser,
        start_noise: &Tensor,
        sigmas: &[f64],
        noise: &mut dyn NoiseSource,
        on_step: &mut OnStep<'_>,
    ) -> Result<Tensor> {
        let total = steps_to_run(sigmas, Compat::Fixed)?;
        if sigmas[..total].iter().any(|&s| s <= 0.0) {
            return Err(Error::input(
                "sigmas",
                "DPM++ 2M needs positive sigmas before the last",
            ));
        }
        let mut x = initial(start_noise, sigmas)?;
        let mut previous: Option<Tensor> = None;
        for i in 0..total {
            let (sigma, sigma_next) = (sigmas[i], sigmas[i + 1]);
            let denoised = denoiser.denoise(&x, sigma, noise)?;
            x = if sigma_next == 0.0 {
                denoised.clone()
            } else {
                // h = λ_next − λ; x ← (σ_next/σ)·x − expm1(−h)·D'.
                let h = (sigma / sigma_next).ln();
                let d = match &previous {
                    Some(old) => {
                        let h_last = (sigmas[i - 1] / sigma).ln();
                        let r = h_last / h;
                        (denoised.affine(1.0 + 1.0 / (2.0 * r), 0.0)?
                            - old.affine(1.0 / (2.0 * r), 0.0)?)?
                    }
                    None => denoised.clone(),
                };
                ((&x * (sigma_next / sigma))? - (d * (-h).exp_m1())?)?
            };
            previous = Some(denoised);
            report(on_step, i + 1, total, sigma_next)?;
        }
        Ok(x)
    }
}
