//! Sigma distributions for training: `diffusion.py::LogNormalDistribution`, `VDistribution`
//! (audio-diffusion-pytorch 0.0.61) and `UniformDistribution` (0.0.70).
//!
//! Each draws its base randomness from the caller's [`NoiseSource`] (one tensor of shape `[n]`),
//! then maps it elementwise. The result is a float32 tensor `(n,)` of sigmas.

use crate::{Compat, NoiseSource, Result};
use candle_core::{Device, Tensor};

/// A distribution of training noise levels: `(num_samples, device) -> sigmas (num_samples,)`.
pub trait Distribution: Send + Sync + std::fmt::Debug {
    /// Draws `num_samples` sigmas (f32) from `noise`.
    fn sample(
        &self,
        num_samples: usize,
        device: &Device,
        noise: &mut dyn NoiseSource,
    ) -> Result<Tensor>;
}

/// `LogNormalDistribution(mean, std)`: `exp(mean + std·N(0,1))`. One normal draw `[n]`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LogNormalDistribution {
    /// Mean of `ln σ` (the README uses -3).
    pub mean: f64,
    /// Standard deviation of `ln σ` (the README uses 1).
    pub std: f64,
}

impl Distribution for LogNormalDistribution {
    fn sample(
        &self,
        num_samples: usize,
        device: &Device,
        noise: &mut dyn NoiseSource,
    ) -> Result<Tensor> {
        let normal = noise.randn(&[num_samples], device)?;
        Ok(normal.affine(self.std, self.mean)?.exp()?)
    }
}

/// `VDistribution(min_value=0, max_value=inf, sigma_data=1)`: `σ = tan(u·π/2)·sigma_data` with
/// `u = (max_cdf − min_cdf)·r + min_cdf` and `cdf(v) = atan(v/sigma_data)·2/π`.
///
/// Under [`Compat::V0_0_61`] `r` is a standard *normal* draw (the reference's bug: half the sigmas
/// are negative, some huge); under [`Compat::Fixed`] `r ~ U[0, 1)`, so σ is distributed between
/// `min_value` and `max_value` with the intended arctangent law.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct VDistribution {
    /// Smallest sigma (with the fixed uniform draw).
    pub min_value: f64,
    /// Largest sigma, may be `f64::INFINITY`.
    pub max_value: f64,
    /// Scale of the arctangent law.
    pub sigma_data: f64,
    /// Normal (reference) or uniform (fixed) base draw.
    pub compat: Compat,
}

impl Default for VDistribution {
    fn default() -> Self {
        Self {
            min_value: 0.0,
            max_value: f64::INFINITY,
            sigma_data: 1.0,
            compat: Compat::Fixed,
        }
    }
}

impl Distribution for VDistribution {
    fn sample(
        &self,
        num_samples: usize,
        device: &Device,
        noise: &mut dyn NoiseSource,
    ) -> Result<Tensor> {
        let min_cdf = (self.min_value / self.sigma_data).atan() * 2.0 / std::f64::consts::PI;
        let max_cdf = (self.max_value / self.sigma_data).atan() * 2.0 / std::f64::consts::PI;
        let base = if self.compat.is_reference() {
            noise.randn(&[num_samples], device)?
        } else {
            noise.rand(&[num_samples], device)?
        };
        // u = (max_cdf - min_cdf) * base + min_cdf, then tan(u * pi / 2) * sigma_data, all in f32.
        let u = base.affine(max_cdf - min_cdf, min_cdf)?.to_vec1::<f32>()?;
        let pi = std::f32::consts::PI;
        let sd = self.sigma_data as f32;
        let sigmas: Vec<f32> = u.iter().map(|&u| (u * pi / 2.0).tan() * sd).collect();
        Ok(Tensor::from_vec(sigmas, num_samples, device)?)
    }
}

/// `UniformDistribution(vmin=0, vmax=1)` (0.0.70): `vmin + (vmax − vmin)·U[0, 1)`. One uniform draw.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct UniformDistribution {
    /// Lower end.
    pub vmin: f64,
    /// Upper end (excluded).
    pub vmax: f64,
}

impl Default for UniformDistribution {
    fn default() -> Self {
        Self {
            vmin: 0.0,
            vmax: 1.0,
        }
    }
}

impl Distribution for UniformDistribution {
    fn sample(
        &self,
        num_samples: usize,
        device: &Device,
        noise: &mut dyn NoiseSource,
    ) -> Result<Tensor> {
        Ok(noise
            .rand(&[num_samples], device)?
            .affine(self.vmax - self.vmin, self.vmin)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ReplayNoise, SeededNoise};

    #[test]
    fn lognormal_maps_normal_draws() {
        let d = Device::Cpu;
        let mut r = ReplayNoise::new([Tensor::new(&[0f32, 1.0, -2.0], &d).unwrap()]);
        let s = LogNormalDistribution {
            mean: -3.0,
            std: 1.0,
        }
        .sample(3, &d, &mut r)
        .unwrap()
        .to_vec1::<f32>()
        .unwrap();
        for (got, want) in s.iter().zip([(-3f64).exp(), (-2f64).exp(), (-5f64).exp()]) {
            assert!((*got as f64 - want).abs() < 1e-7 * want.max(1.0));
        }
    }

    #[test]
    fn v_distribution_reference_is_tan_of_normal() {
        let d = Device::Cpu;
        let mut r = ReplayNoise::new([Tensor::new(&[0.5f32, -0.5], &d).unwrap()]);
        let dist = VDistribution {
            compat: Compat::V0_0_61,
            ..Default::default()
        };
        let s = dist
            .sample(2, &d, &mut r)
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        assert!(
            (s[0] - 1.0).abs() < 1e-6 && (s[1] + 1.0).abs() < 1e-6,
            "{s:?}"
        );
    }

    #[test]
    fn v_distribution_fixed_stays_in_range_and_follows_the_arctan_law() {
        let d = Device::Cpu;
        let dist = VDistribution {
            min_value: 0.2,
            max_value: 4.0,
            sigma_data: 0.5,
            compat: Compat::Fixed,
        };
        let s = dist
            .sample(20_000, &d, &mut SeededNoise::new(5))
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        assert!(s.iter().all(|&v| (0.2 - 1e-6..=4.0 + 1e-5).contains(&v)));
        // P(σ <= 1) = (cdf(1) - cdf(0.2)) / (cdf(4) - cdf(0.2)) with cdf(v) = atan(v/0.5)·2/π.
        let cdf = |v: f64| (v / 0.5).atan();
        let p = (cdf(1.0) - cdf(0.2)) / (cdf(4.0) - cdf(0.2));
        let frac = s.iter().filter(|&&v| v <= 1.0).count() as f64 / s.len() as f64;
        assert!((frac - p).abs() < 0.015, "{frac} vs {p}");
    }

    #[test]
    fn uniform_range() {
        let d = Device::Cpu;
        let s = UniformDistribution {
            vmin: 2.0,
            vmax: 3.0,
        }
        .sample(1000, &d, &mut SeededNoise::new(1))
        .unwrap();
        let v = s.to_vec1::<f32>().unwrap();
        assert!(v.iter().all(|&x| (2.0..3.0).contains(&x)));
    }
}
