//! Diffusion objectives of `diffusion.py` (audio-diffusion-pytorch 0.0.61): sigma distributions,
//! `VDiffusion` (the v objective in variance-exploding coordinates), `KDiffusion` (Karras et al.
//! 2022, EDM preconditioning), `clip` / dynamic thresholding, and the [`Denoiser`] the samplers drive.
//!
//! All objectives use `x_σ = x₀ + σ·ε`. Each computes its preconditioning (`c_skip`, `c_out`, `c_in`
//! and the network's time input) in one place, used by both the training loss and the denoiser.
//! The draw order follows reference §3.11: the loss draws sigma `[B]`, then `ε` like `x` (unless
//! given), then the network draws whatever it draws.
//!
//! Compatibility ([`crate::Compat`]):
//! - `V0_0_61`: `VDistribution` draws a normal base value (reference bug), the v target is computed
//!   as the reference does, `(x − c_skip·x_σ)/c_out` (infinite at σ = 0).
//! - `Fixed` (default): `VDistribution` draws a uniform base value; the v target is computed as
//!   `α·ε − β·x`, the same quantity without the division.
//!
//! In both modes `KDiffusion` clips its estimate to [−1, 1] (or dynamically), also inside the loss,
//! like the reference (docs/reference.md Appendix A.5).

mod clip;
mod denoiser;
mod distribution;
mod k;
mod v;

pub use clip::{clip, dynamic_scales};
pub use denoiser::{angle_alpha_beta, to_batch, Denoiser, ObjectiveDenoiser};
pub use distribution::{Distribution, LogNormalDistribution, UniformDistribution, VDistribution};
pub use k::KDiffusion;
pub use v::VDiffusion;

use crate::{NetInputs, NoiseSource, Result};
use candle_core::Tensor;

/// A training objective wrapping a network (`diffusion.py::Diffusion`).
pub trait Diffusion {
    /// `denoise_fn`: the estimate of `x₀` for `x_noisy (batch, channels, length)` at per-element
    /// noise levels `sigmas (batch,)`. `noise` serves the network's own draws.
    fn denoise(
        &self,
        x_noisy: &Tensor,
        sigmas: &Tensor,
        inputs: &NetInputs,
        noise: &mut dyn NoiseSource,
    ) -> Result<Tensor>;

    /// `forward`: the scalar training loss for clean `x`. Draws sigma `[B]` then, unless `given_noise`
    /// is passed, `ε` like `x`, from `noise`.
    fn loss(
        &self,
        x: &Tensor,
        inputs: &NetInputs,
        noise: &mut dyn NoiseSource,
        given_noise: Option<&Tensor>,
    ) -> Result<Tensor>;

    /// The v prediction at angle fraction `t` for `x_t = α·x₀ + β·ε` (see
    /// [`Denoiser::velocity`]); by default derived from [`Diffusion::denoise`].
    fn velocity(
        &self,
        x_t: &Tensor,
        t: f64,
        inputs: &NetInputs,
        noise: &mut dyn NoiseSource,
    ) -> Result<Tensor> {
        let adapter = |x: &Tensor, sigma: f64, noise: &mut dyn NoiseSource| {
            self.denoise(x, &to_batch(sigma, x)?, inputs, noise)
        };
        Denoiser::velocity(&adapter, x_t, t, noise)
    }
}

/// Steps 1-2 of both objectives' `forward` (reference §3.11): draws `σ (batch,)` from
/// `distribution`, then `ε` like `x` unless `given_noise` is passed (its shape must equal `x`'s).
/// Both come back in `x`'s dtype.
pub(crate) fn draw_sigmas_and_noise(
    distribution: &dyn Distribution,
    x: &Tensor,
    noise: &mut dyn NoiseSource,
    given_noise: Option<&Tensor>,
) -> Result<(Tensor, Tensor)> {
    let sigmas = distribution
        .sample(x.dim(0)?, x.device(), noise)?
        .to_dtype(x.dtype())?;
    let eps = match given_noise {
        Some(e) if e.dims() == x.dims() => e.to_dtype(x.dtype())?,
        Some(e) => {
            return Err(crate::Error::input(
                "noise",
                format!("shape {:?} differs from x {:?}", e.dims(), x.dims()),
            ));
        }
        None => noise.randn(x.dims(), x.device())?.to_dtype(x.dtype())?,
    };
    Ok((sigmas, eps))
}

/// `pad_dims`: reshapes `(batch,)` to `(batch, 1, ..., 1)` with the rank of `like`.
pub(crate) fn per_batch(v: &Tensor, like: &Tensor) -> Result<Tensor> {
    let mut shape = vec![v.dim(0)?];
    shape.resize(like.rank(), 1);
    Ok(v.reshape(shape)?)
}

/// Applies a host function elementwise to a small `(batch,)` tensor, in f32 when it is f32 (as the
/// reference computes) and in f64 otherwise.
pub(crate) fn map_host(
    v: &Tensor,
    f32_fn: impl Fn(f32) -> f32,
    f64_fn: impl Fn(f64) -> f64,
) -> Result<Tensor> {
    let n = v.dim(0)?;
    Ok(match v.dtype() {
        candle_core::DType::F64 => Tensor::from_vec(
            v.to_vec1::<f64>()?
                .into_iter()
                .map(f64_fn)
                .collect::<Vec<_>>(),
            n,
            v.device(),
        )?,
        dt => {
            let s = v.to_dtype(candle_core::DType::F32)?.to_vec1::<f32>()?;
            Tensor::from_vec(s.into_iter().map(f32_fn).collect::<Vec<_>>(), n, v.device())?
                .to_dtype(dt)?
        }
    })
}

#[cfg(test)]
pub(crate) mod tests_support {
    use crate::{Net, NetInputs, NoiseSource, Result};
    use candle_core::Tensor;

    /// A network that outputs zeros.
    #[derive(Debug)]
    pub struct Zero;

    impl Net for Zero {
        fn forward(
            &self,
            x: &Tensor,
            _: &Tensor,
            _: &NetInputs,
            _: &mut dyn NoiseSource,
        ) -> Result<Tensor> {
            Ok(x.zeros_like()?)
        }
    }
}
