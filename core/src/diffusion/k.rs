//! `diffusion.py::KDiffusion` (audio-diffusion-pytorch 0.0.61): Karras et al. 2022 (EDM) §5
//! preconditioning, with clipping or dynamic thresholding of the estimate.

use super::{clip, draw_sigmas_and_noise, map_host, per_batch, Diffusion, Distribution};
use crate::{Net, NetInputs, NoiseSource, Result};
use candle_core::Tensor;

/// `KDiffusion(net, sigma_distribution, sigma_data, dynamic_threshold=0.0)`.
#[derive(Debug)]
pub struct KDiffusion<N> {
    /// The denoising network (`net.*` weights).
    pub net: N,
    /// Training sigma distribution.
    pub sigma_distribution: Box<dyn Distribution>,
    /// Standard deviation of the data (the README uses 0.1).
    pub sigma_data: f64,
    /// 0: clamp the estimate to [−1, 1]; otherwise the quantile of dynamic thresholding.
    pub dynamic_threshold: f64,
}

/// `c_skip`, `c_out`, `c_in` `(batch, 1, 1)` and `c_noise (batch,)`.
struct KScales {
    c_skip: Tensor,
    c_out: Tensor,
    c_in: Tensor,
    c_noise: Tensor,
}

impl<N: Net> KDiffusion<N> {
    /// Wraps `net`.
    pub fn new(
        net: N,
        sigma_distribution: Box<dyn Distribution>,
        sigma_data: f64,
        dynamic_threshold: f64,
    ) -> Self {
        Self {
            net,
            sigma_distribution,
            sigma_data,
            dynamic_threshold,
        }
    }

    /// `c_skip = σd²/(σ²+σd²)`, `c_out = σσd/√(σ²+σd²)`, `c_in = 1/√(σ²+σd²)`,
    /// `c_noise = ln(σ)/4`: used by both the loss and the denoiser.
    fn scales(&self, sigmas: &Tensor, like: &Tensor) -> Result<KScales> {
        let sd = self.sigma_data;
        let c_noise = map_host(sigmas, |s| s.ln() * 0.25, |s| s.ln() * 0.25)?;
        let s = per_batch(sigmas, like)?;
        let s2 = (s.sqr()? + sd * sd)?;
        let c_skip = s2.recip()?.affine(sd * sd, 0.0)?;
        let c_in = s2.sqrt()?.recip()?;
        let c_out = (s.affine(sd, 0.0)? * &c_in)?;
        Ok(KScales {
            c_skip,
            c_out,
            c_in,
            c_noise,
        })
    }

    /// `denoise_fn` on already converted sigmas.
    fn denoise_with(
        &self,
        x_noisy: &Tensor,
        sigmas: &Tensor,
        inputs: &NetInputs,
        noise: &mut dyn NoiseSource,
    ) -> Result<Tensor> {
        let k = self.scales(sigmas, x_noisy)?;
        let x_pred =
            self.net
                .forward(&x_noisy.broadcast_mul(&k.c_in)?, &k.c_noise, inputs, noise)?;
        let x_denoised = (x_noisy.broadcast_mul(&k.c_skip)? + x_pred.broadcast_mul(&k.c_out)?)?;
        clip(&x_denoised, self.dynamic_threshold)
    }

    /// `loss_weight(σ) = (σ² + σd²)/(σ·σd)²`, `(batch,)`.
    fn loss_weight(&self, sigmas: &Tensor) -> Result<Tensor> {
        let sd = self.sigma_data;
        let num = (sigmas.sqr()? + sd * sd)?;
        Ok((num / sigmas.affine(sd, 0.0)?.sqr()?)?)
    }
}

impl<N: Net> Diffusion for KDiffusion<N> {
    fn denoise(
        &self,
        x_noisy: &Tensor,
        sigmas: &Tensor,
        inputs: &NetInputs,
        noise: &mut dyn NoiseSource,
    ) -> Result<Tensor> {
        self.denoise_with(x_noisy, &sigmas.to_dtype(x_noisy.dtype())?, inputs, noise)
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
        // 2. Denoise x_σ = x + σ ε (clipped, as the reference does in the loss too).
        let x_noisy = (x + eps.broadcast_mul(&per_batch(&sigmas, x)?)?)?;
        let x_denoised = self.denoise_with(&x_noisy, &sigmas, inputs, noise)?;
        // 3. Per-batch mean squared error, weighted, then the batch mean.
        let losses = (x_denoised - x)?.sqr()?.flatten_from(1)?.mean(1)?;
        Ok((losses * self.loss_weight(&sigmas)?)?.mean_all()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diffusion::LogNormalDistribution;
    use candle_core::{DType, Device};

    #[test]
    fn spec_3_5_scale_values() {
        let d = Device::Cpu;
        let k = KDiffusion::new(
            crate::diffusion::tests_support::Zero,
            Box::new(LogNormalDistribution {
                mean: -3.0,
                std: 1.0,
            }),
            0.1,
            0.0,
        );
        let s = Tensor::new(&[0.5f64, 2.0], &d).unwrap();
        let like = Tensor::zeros((2, 1, 1), DType::F64, &d).unwrap();
        let c = k.scales(&s, &like).unwrap();
        let v = |t: &Tensor| t.flatten_all().unwrap().to_vec1::<f64>().unwrap();
        let w = v(&k.loss_weight(&s).unwrap());
        let want = [
            (v(&c.c_skip), [0.0384615, 0.0024938]),
            (v(&c.c_out), [0.0980581, 0.0998752]),
            (v(&c.c_in), [1.9611614, 0.4993762]),
            (v(&c.c_noise), [-0.1732868, 0.1732868]),
            (w, [104.0, 100.25]),
        ];
        for (got, want) in want {
            for (g, w) in got.iter().zip(want) {
                assert!(
                    (g - w).abs() < 1e-6 * w.abs().max(1.0),
                    "{got:?} vs {want:?}"
                );
            }
        }
    }
}
