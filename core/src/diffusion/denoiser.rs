//! The denoiser every sampler drives: `D(x_σ; σ) ≈ x₀` (the `fn(x, sigma=σ)` that
//! `diffusion.py`'s samplers receive in audio-diffusion-pytorch 0.0.61), plus the v-prediction
//! view that the DDIM-style v sampler uses.

use crate::{Error, NetInputs, NoiseSource, Result};
use candle_core::Tensor;

use super::Diffusion;

/// A denoiser in variance-exploding coordinates: `x_σ = x₀ + σ·ε` `(batch, channels, length)` in,
/// the estimate of `x₀` (same shape) out. `noise` serves the draws the network itself makes.
///
/// Any closure `Fn(&Tensor, f64, &mut dyn NoiseSource) -> Result<Tensor>` is a denoiser.
pub trait Denoiser {
    /// `D(x; sigma)`, `sigma >= 0` finite, the same for the whole batch.
    fn denoise(&self, x: &Tensor, sigma: f64, noise: &mut dyn NoiseSource) -> Result<Tensor>;

    /// The v prediction in angle coordinates: for `x_t = α·x₀ + β·ε` with `α = cos(tπ/2)`,
    /// `β = sin(tπ/2)`, returns `v̂ = α·ε̂ − β·x̂₀`. `t ∈ (0, 1]` is the angle fraction
    /// (`σ = tan(tπ/2)`, so `x_t = α·x_σ`). The default goes through [`Denoiser::denoise`] at
    /// `σ = β/α`; a v-objective overrides it with the network output itself, exact at `t = 1`.
    fn velocity(&self, x_t: &Tensor, t: f64, noise: &mut dyn NoiseSource) -> Result<Tensor> {
        let (alpha, beta) = angle_alpha_beta(t);
        if !(beta > 0.0 && alpha > 0.0) {
            return Err(Error::input(
                "t",
                format!("the v prediction needs an angle fraction in (0, 1], got {t}"),
            ));
        }
        let x0 = self.denoise(&(x_t / alpha)?, beta / alpha, noise)?;
        // ε̂ = (x_t − α x̂₀)/β and v̂ = α ε̂ − β x̂₀ = (α x_t − x̂₀)/β.
        Ok(((x_t * alpha)? - x0)?.affine(1.0 / beta, 0.0)?)
    }
}

impl<F> Denoiser for F
where
    F: Fn(&Tensor, f64, &mut dyn NoiseSource) -> Result<Tensor>,
{
    fn denoise(&self, x: &Tensor, sigma: f64, noise: &mut dyn NoiseSource) -> Result<Tensor> {
        self(x, sigma, noise)
    }
}

/// `(α, β) = (cos(tπ/2), sin(tπ/2))` for an angle fraction `t`.
pub fn angle_alpha_beta(t: f64) -> (f64, f64) {
    let phi = t * std::f64::consts::FRAC_PI_2;
    (phi.cos(), phi.sin())
}

/// A diffusion objective with its conditioning, as a [`Denoiser`]: sigma is broadcast to the
/// batch (`to_batch`, in `x`'s dtype) and the inputs are forwarded to the network on every call.
pub struct ObjectiveDenoiser<'a> {
    /// The objective (VDiffusion, KDiffusion).
    pub diffusion: &'a dyn Diffusion,
    /// Conditioning passed to the network on every call.
    pub inputs: &'a NetInputs,
}

impl Denoiser for ObjectiveDenoiser<'_> {
    fn denoise(&self, x: &Tensor, sigma: f64, noise: &mut dyn NoiseSource) -> Result<Tensor> {
        let sigmas = to_batch(sigma, x)?;
        self.diffusion.denoise(x, &sigmas, self.inputs, noise)
    }

    fn velocity(&self, x_t: &Tensor, t: f64, noise: &mut dyn NoiseSource) -> Result<Tensor> {
        self.diffusion.velocity(x_t, t, self.inputs, noise)
    }
}

/// `to_batch(batch, x=value)`: a `(batch,)` tensor of `x`'s dtype and device filled with `value`.
pub fn to_batch(value: f64, like: &Tensor) -> Result<Tensor> {
    let b = like.dim(0)?;
    Ok(Tensor::new(&[value], like.device())?
        .to_dtype(like.dtype())?
        .broadcast_as(b)?
        .contiguous()?)
}
