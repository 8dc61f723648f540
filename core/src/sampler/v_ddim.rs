//! The DDIM-style v sampler (`VSampler` of audio-diffusion-pytorch 0.0.70; Song et al. 2021, DDIM
//! with η = 0, in the v parametrisation of Salimans & Ho 2022). First order.
//!
//! It works in angle coordinates: for σ, `α = 1/√(1+σ²)`, `β = σ·α`, `x_t = α·x_σ`. Each step
//! predicts `v̂` at `t = atan(σ)·2/π`, forms `x̂₀ = α·x_t − β·v̂` and `ε̂ = β·x_t + α·v̂`, and moves to
//! `x_t' = α'·x̂₀ + β'·ε̂`. It accepts any schedule, including a first sigma of `+∞` (pure noise,
//! e.g. [`crate::schedule::LinearSchedule::angle`]); it starts from `x_t = β₀·noise` (the same
//! point as `σ₀·noise` in VE coordinates) and returns VE coordinates `x_t/α` at the last sigma.
//!
//! With an exact v prediction this is, step for step, Euler's method on the probability-flow ODE
//! in `(σ, x_t/α)` (DDIM with η = 0 is that Euler step; Karras et al. 2022, §3), so on a
//! variance-exploding denoiser it gives [`super::EulerSampler`]'s result up to rounding (the
//! convergence test shows identical errors). What it adds is the start at σ = ∞ and a network call
//! in the v objective's own coordinates (`VDiffusion::velocity`).

use super::{report, steps_to_run, OnStep, Sampler};
use crate::diffusion::Denoiser;
use crate::schedule::sigma_to_angle;
use crate::{Compat, NoiseSource, Result};
use candle_core::Tensor;

/// DDIM (deterministic) over the v prediction. One denoiser call per step, no draws.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct VSampler;

/// `(α, β)` for a VE sigma, exact at `σ = ∞`.
fn alpha_beta(sigma: f64) -> (f64, f64) {
    if sigma.is_infinite() {
        (0.0, 1.0)
    } else {
        let a = 1.0 / (1.0 + sigma * sigma).sqrt();
        (a, sigma * a)
    }
}

impl Sampler for VSampler {
    fn sample(
        &self,
        denoiser: &dyn Denoiser,
        start_noise: &Tensor,
        sigmas: &[f64],
        noise: &mut dyn NoiseSource,
        on_step: &mut OnStep<'_>,
    ) -> Result<Tensor> {
        let total = steps_to_run(sigmas, Compat::Fixed)?;
        let (_, beta0) = alpha_beta(sigmas[0]);
        let mut x = (start_noise * beta0)?;
        for i in 0..total {
            let (alpha, beta) = alpha_beta(sigmas[i]);
            let (alpha_next, beta_next) = alpha_beta(sigmas[i + 1]);
            let v = denoiser.velocity(&x, sigma_to_angle(sigmas[i]), noise)?;
            let x0 = ((&x * alpha)? - (&v * beta)?)?;
            let eps = ((&x * beta)? + (&v * alpha)?)?;
            x = ((x0 * alpha_next)? + (eps * beta_next)?)?;
            report(on_step, i + 1, total, sigmas[i + 1])?;
        }
        let (alpha_end, _) = alpha_beta(sigmas[total]);
        Ok((x / alpha_end)?)
    }
}
