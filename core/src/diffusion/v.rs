//! `diffusion.py::VDiffusion` (audio-diffusion-pytorch 0.0.61): the v objective (Salimans & Ho
//! 2022, "Progressive Distillation") written in variance-exploding coordinates with σ_data = 1.
//!
//! With `φ = atan σ`, `α = cos φ = c_in`, `β = sin φ = σ·c_in`: the network sees
//! `c_in·x_σ = α·x₀ + β·ε` and the time `t = φ·2/π`, and predicts `v = α·ε − β·x₀`.

use super::{draw_sigmas_and_noise, map_host, per_batch, to_batch, Diffusion, Distribution};
use crate::{Compat, Net, NetInputs, NoiseSource, Result};
use candle_core::Tensor;

/// `VDiffusion(net, sigma_distribution)`.
#[derive(Debug)]
pub struct VDiffusion<N> {
    /// The denoising network (`net.*` weights).
    pub net: N,
    /// Training sigma distribution.
    pub sigma_distribution: Box<dyn Distribution>,
    /// How the v target is computed (see the module docs of [`crate::diffusion`]).
    pub compat: Compat,
}

/// The preconditioning of one batch: `c_skip`, `c_out`, `c_in` `(batch, 1, 1)` and `t (batch,)`.
struct VScales {
    c_skip: Tensor,
    c_out: Tensor,
    c_in: Tensor,
    t: Tensor,
}

impl<N: Net> VDiffusion<N> {
    /// Wraps `net`.
    pub fn new(net: N, sigma_distribution: Box<dyn Distribution>, compat: Compat) -> Self {
        Self {
            net,
            sigma_distribution,
            compat,
        }
    }

    /// `c_skip = 1/(σ²+1)`, `c_out = −σ/√(σ²+1)`, `c_in = 1/√(σ²+1)`, `t = atan(σ)·2/π`: the one
    /// place both the loss and the denoiser take them from.
    fn scales(sigmas: &Tensor, like: &Tensor) -> Result<VScales> {
        let s = per_batch(sigmas, like)?;
        let s2p1 = (s.sqr()? + 1.0)?;
        let c_in = s2p1.sqrt()?.recip()?;
        let c_out = (s.neg()? * &c_in)?;
        let c_skip = s2p1.recip()?;
        let t = sigma_to_t(sigmas)?;
        Ok(VScales {
            c_skip,
            c_out,
            c_in,
            t,
        })
    }
}

/// `sigma_to_t`: `atan(σ)·2/π` on a `(batch,)` tensor.
fn sigma_to_t(sigmas: &Tensor) -> Result<Tensor> {
    map_host(
        sigmas,
        |s| s.atan() * 2.0 / std::f32::consts::PI,
        |s| s.atan() * 2.0 / std::f64::consts::PI,
    )
}

impl<N: Net> Diffusion for VDiffusion<N> {
    fn denoise(
        &self,
        x_noisy: &Tensor,
        sigmas: &Tensor,
        inputs: &NetInputs,
        noise: &mut dyn NoiseSource,
    ) -> Result<Tensor> {
        let sigmas = sigmas.to_dtype(x_noisy.dtype())?;
        let k = Self::scales(&sigmas, x_noisy)?;
        let x_pred = self
            .net
            .forward(&x_noisy.broadcast_mul(&k.c_in)?, &k.t, inputs, noise)?;
        Ok((x_noisy.broadcast_mul(&k.c_skip)? + x_pred.broadcast_mul(&k.c_out)?)?)
    }

    fn loss(
        &self,
        x: &Tensor,
        inputs: &NetInputs,
        noise: &mut dyn NoiseSource,
        given_noise: Option<&Tensor>,
    ) -> Result<Tensor> {
        // 1. sigma, then epsilon (docs/reference.md §3.11).
        let (sigmas, eps) =
            draw_sigmas_and_noise(self.sigma_distribution.as_ref(), x, noise, given_noise)?;
        // 2. x_σ = x + σ ε and the network's v prediction.
        let x_noisy = (x + eps.broadcast_mul(&per_batch(&sigmas, x)?)?)?;
        let k = Self::scales(&sigmas, x)?;
        let v_pred = self
            .net
            .forward(&x_noisy.broadcast_mul(&k.c_in)?, &k.t, inputs, noise)?;
        // 3. The target v = α ε − β x.
        let v_target = if self.compat.is_reference() {
            (x - x_noisy.broadcast_mul(&k.c_skip)?)?.broadcast_div(&k.c_out)?
        } else {
            let beta = k.c_out.neg()?;
            (eps.broadcast_mul(&k.c_in)? - x.broadcast_mul(&beta)?)?
        };
        Ok((v_pred - v_target)?.sqr()?.mean_all()?)
    }

    fn velocity(
        &self,
        x_t: &Tensor,
        t: f64,
        inputs: &NetInputs,
        noise: &mut dyn NoiseSource,
    ) -> Result<Tensor> {
        // The network input c_in·x_σ is x_t itself and its time input is t: v̂ = net(x_t, t).
        self.net.forward(x_t, &to_batch(t, x_t)?, inputs, noise)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn spec_3_4_scale_values() {
        let d = Device::Cpu;
        let s = Tensor::new(&[0.5f64, 2.0], &d).unwrap();
        let like = Tensor::zeros((2, 1, 1), candle_core::DType::F64, &d).unwrap();
        let k = VDiffusion::<crate::diffusion::tests_support::Zero>::scales(&s, &like).unwrap();
        let v = |t: &Tensor| t.flatten_all().unwrap().to_vec1::<f64>().unwrap();
        let want = [
            (v(&k.c_skip), [0.8, 0.2]),
            (v(&k.c_out), [-0.4472136, -0.8944272]),
            (v(&k.c_in), [0.8944272, 0.4472136]),
            (v(&k.t), [0.29516724, 0.70483279]),
        ];
        for (got, want) in want {
            for (g, w) in got.iter().zip(want) {
                assert!((g - w).abs() < 1e-7, "{got:?} vs {want:?}");
            }
        }
    }
}
