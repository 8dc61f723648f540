//! Samplers of `diffusion.py` (audio-diffusion-pytorch 0.0.61: `AEulerSampler`, `ADPM2Sampler`,
//! `KarrasSampler`) and the k-diffusion family beyond it (Euler, Heun/EDM, DPM++ 2M, and the
//! DDIM-style v sampler of 0.0.70).
//!
//! Each sampler is a short loop over a [`Denoiser`], a list of sigmas (from a
//! [`crate::schedule::Schedule`]: decreasing, usually ending at 0), a [`NoiseSource`] and a per-step
//! callback. It starts from `x = σ₀·noise` (variance-exploding initialisation), draws only from the
//! noise source, and after every step calls the callback, which may stop the loop: the sampler then
//! returns [`Error::Cancelled`] with the number of finished steps.
//!
//! Compatibility ([`Compat`], reference samplers only):
//! - `V0_0_61`: with `sigmas` of length `N+1`, the loop runs `N−1` steps and stops at `sigmas[N−1]`
//!   (σ_min): the trailing 0 is never reached; the Karras sampler draws its churn noise even when the
//!   churn is 0 and its second-order update uses `(σ_i − σ̂)` (a no-op for churn 0).
//! - `Fixed` (default): all `N` steps run and the last one lands on `sigmas[N]`; noise is drawn only
//!   when it is used (σ_up > 0, γ > 0); the Karras sampler is EDM's Algorithm 2 (Heun with churn).
//!
//! The samplers beyond the reference always run all steps.
//!
//! ```
//! use adiff_core::sampler::{ignore_steps, EulerSampler, Sampler};
//! use adiff_core::schedule::{KarrasSchedule, Schedule};
//! use adiff_core::{NoiseSource, Result, SeededNoise};
//! use candle_core::{Device, Tensor};
//!
//! // Data is a point mass at 0.5, so the exact denoiser returns 0.5 at every sigma.
//! let denoiser = |x: &Tensor, _sigma: f64, _: &mut dyn NoiseSource| -> Result<Tensor> {
//!     Ok((x.ones_like()? * 0.5)?)
//! };
//! let sigmas = KarrasSchedule::new(0.01, 10.0).sigmas(10)?; // 11 values, the last 0
//! let mut noise = SeededNoise::new(0);
//! let start = noise.randn(&[1, 1, 4], &Device::Cpu)?;
//! let x = EulerSampler.sample(&denoiser, &start, &sigmas, &mut noise, &mut ignore_steps)?;
//! // The last step lands on σ = 0, where x = D(x) = 0.5.
//! assert!(x.flatten_all()?.to_vec1::<f32>()?.iter().all(|v| (v - 0.5).abs() < 1e-6));
//! # Ok::<(), adiff_core::Error>(())
//! ```

mod adpm2;
mod aeuler;
mod dpmpp_2m;
mod euler;
mod heun;
mod karras;
mod kind;
mod v_ddim;

pub use adpm2::ADPM2Sampler;
pub use aeuler::AEulerSampler;
pub use dpmpp_2m::DpmPp2MSampler;
pub use euler::EulerSampler;
pub use heun::HeunSampler;
pub use karras::KarrasSampler;
pub use kind::SamplerKind;
pub use v_ddim::VSampler;

use crate::diffusion::Denoiser;
use crate::{Compat, Error, NoiseSource, Result};
use candle_core::Tensor;
use std::ops::ControlFlow;

/// What the per-step callback is told after each finished step.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StepInfo {
    /// Steps finished so far (1 after the first step).
    pub step: usize,
    /// Steps this run will take.
    pub total: usize,
    /// The noise level reached.
    pub sigma: f64,
}

/// The per-step callback: progress report and cooperative cancellation (return
/// `ControlFlow::Break(())` to stop; the sampler returns [`Error::Cancelled`]).
pub type OnStep<'a> = dyn FnMut(&StepInfo) -> ControlFlow<()> + 'a;

/// A callback that never stops the loop.
pub fn ignore_steps(_: &StepInfo) -> ControlFlow<()> {
    ControlFlow::Continue(())
}

/// A sampler: `(denoiser, noise, sigmas) -> x`.
pub trait Sampler: Send + Sync {
    /// Samples from unit `start_noise (batch, channels, length)`; `noise` serves every other draw.
    fn sample(
        &self,
        denoiser: &dyn Denoiser,
        start_noise: &Tensor,
        sigmas: &[f64],
        noise: &mut dyn NoiseSource,
        on_step: &mut OnStep<'_>,
    ) -> Result<Tensor>;

    /// RePaint-style inpainting of `source` where `mask` (1 = keep the source) is 0. Only
    /// [`ADPM2Sampler`] implements it, as in the reference.
    #[allow(clippy::too_many_arguments)]
    fn inpaint(
        &self,
        _denoiser: &dyn Denoiser,
        _source: &Tensor,
        _mask: &Tensor,
        _sigmas: &[f64],
        _num_resamples: usize,
        _noise: &mut dyn NoiseSource,
        _on_step: &mut OnStep<'_>,
    ) -> Result<Tensor> {
        Err(Error::Unsupported(
            "inpainting is not available with this sampler (use ADPM2Sampler)".into(),
        ))
    }
}

/// Number of steps to run over `sigmas`: `len − 1`, or `len − 2` under the reference's early stop.
pub fn steps_to_run(sigmas: &[f64], compat: Compat) -> Result<usize> {
    if sigmas.len() < 2 {
        return Err(Error::input(
            "sigmas",
            format!("need at least 2 sigmas, got {}", sigmas.len()),
        ));
    }
    if sigmas.iter().any(|s| s.is_nan() || *s < 0.0) {
        return Err(Error::input(
            "sigmas",
            "sigmas must be non-negative numbers",
        ));
    }
    Ok(if compat.is_reference() {
        sigmas.len() - 2
    } else {
        sigmas.len() - 1
    })
}

/// `x = σ₀·noise`, checking that σ₀ is finite.
pub(crate) fn initial(start_noise: &Tensor, sigmas: &[f64]) -> Result<Tensor> {
    let s0 = sigmas[0];
    if !s0.is_finite() {
        return Err(Error::input(
            "sigmas",
            "the first sigma must be finite for this sampler (only VSampler starts at infinity)",
        ));
    }
    Ok((start_noise * s0)?)
}

/// `to_d`: the ODE derivative `(x − D(x; σ))/σ`.
pub fn to_d(x: &Tensor, denoised: &Tensor, sigma: f64) -> Result<Tensor> {
    Ok(((x - denoised)? / sigma)?)
}

/// The ancestral split of a step `σ → σ_next`: `(σ_up, σ_down)` with
/// `σ_up = √(σ_next²(σ² − σ_next²)/σ²)` and `σ_down = √(σ_next² − σ_up²)`.
pub fn ancestral_sigmas(sigma: f64, sigma_next: f64) -> (f64, f64) {
    let up = (sigma_next * sigma_next * (sigma * sigma - sigma_next * sigma_next)
        / (sigma * sigma))
        .max(0.0)
        .sqrt();
    let down = (sigma_next * sigma_next - up * up).max(0.0).sqrt();
    (up, down)
}

/// Calls the callback after `step` finished steps; a `Break` becomes [`Error::Cancelled`].
pub(crate) fn report(
    on_step: &mut OnStep<'_>,
    step: usize,
    total: usize,
    sigma: f64,
) -> Result<()> {
    match on_step(&StepInfo { step, total, sigma }) {
        ControlFlow::Continue(()) => Ok(()),
        ControlFlow::Break(()) => Err(Error::Cancelled { step, total }),
    }
}

/// A standard normal tensor like `x` (its dtype and device) from `noise`.
pub(crate) fn randn_like(x: &Tensor, noise: &mut dyn NoiseSource) -> Result<Tensor> {
    Ok(noise.randn(x.dims(), x.device())?.to_dtype(x.dtype())?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ancestral_values_spec_3_7_table() {
        let rows = [
            (3.0, 0.5579148, 0.54818204, 0.10375632),
            (0.5579148, 0.07036222, 0.06980041, 0.008873822),
            (0.07036222, 0.004757817, 0.004746927, 3.2171776e-4),
            (0.004757817, 1e-4, 9.9977935e-5, 2.1018562e-6),
        ];
        for (s, sn, up, down) in rows {
            let (u, d) = ancestral_sigmas(s, sn);
            // The table was computed in float32, where σ_down² = σ_next² − σ_up² cancels: its
            // absolute error is ~ε_f32·σ_next², relative up to ~1e-4 on the last row. σ_up is well
            // conditioned; the exact identity below checks σ_down tightly.
            assert!(
                (u - up).abs() < 1e-6 * up && (d - down).abs() < 1e-4 * down,
                "{u} {d}"
            );
            // σ_down = σ_next²/σ exactly.
            assert!((d - sn * sn / s).abs() < 1e-12);
        }
        assert_eq!(ancestral_sigmas(1.0, 0.0), (0.0, 0.0));
    }

    #[test]
    fn steps_follow_compat() {
        let s = [3.0, 1.0, 0.1, 0.0];
        assert_eq!(steps_to_run(&s, Compat::Fixed).unwrap(), 3);
        assert_eq!(steps_to_run(&s, Compat::V0_0_61).unwrap(), 2);
        assert!(steps_to_run(&[1.0], Compat::Fixed).is_err());
        assert!(steps_to_run(&[1.0, -1.0], Compat::Fixed).is_err());
    }
}
