//! A 1-D Gaussian mixture whose exact denoiser is known in closed form, shared by the sampler tests.
//!
//! Data `x₀ ~ Σ_k π_k N(μ_k, s_k²)`; noisy `x_σ = x₀ + σ ε`. Then `x_σ ~ Σ_k π_k N(μ_k, s_k² + σ²)`
//! and the posterior mean (the ideal denoiser) is
//! `D(x; σ) = Σ_k w_k(x) (μ_k + s_k²/(s_k² + σ²)·(x − μ_k))` with `w_k ∝ π_k N(x; μ_k, s_k² + σ²)`.

#![allow(dead_code)]
// Parallel arrays (weights, means, stds) read clearest indexed by component.
#![allow(clippy::needless_range_loop)]

use adiff_core::{NoiseSource, Result};
use candle_core::{DType, Device, Tensor};

/// The mixture used by the tests.
#[derive(Debug, Clone)]
pub struct Mixture {
    pub weights: Vec<f64>,
    pub means: Vec<f64>,
    pub stds: Vec<f64>,
}

impl Mixture {
    pub fn two_bumps() -> Self {
        Self {
            weights: vec![0.4, 0.6],
            means: vec![-0.6, 0.5],
            stds: vec![0.15, 0.25],
        }
    }

    /// Exact posterior mean at one point.
    pub fn posterior_mean(&self, x: f64, sigma: f64) -> f64 {
        let mut logw = Vec::with_capacity(self.weights.len());
        for k in 0..self.weights.len() {
            let v = self.stds[k].powi(2) + sigma * sigma;
            logw.push(self.weights[k].ln() - 0.5 * v.ln() - 0.5 * (x - self.means[k]).powi(2) / v);
        }
        let m = logw.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let (mut num, mut den) = (0.0, 0.0);
        for k in 0..self.weights.len() {
            let w = (logw[k] - m).exp();
            let s2 = self.stds[k].powi(2);
            num += w * (self.means[k] + s2 / (s2 + sigma * sigma) * (x - self.means[k]));
            den += w;
        }
        num / den
    }

    /// ODE derivative `(x − D(x; σ))/σ`, with its limit 0 at σ = 0.
    pub fn ode_d(&self, x: f64, sigma: f64) -> f64 {
        if sigma == 0.0 {
            0.0
        } else {
            (x - self.posterior_mean(x, sigma)) / sigma
        }
    }

    /// The exact denoiser on a tensor of any shape (f64 or f32).
    pub fn denoise(&self, x: &Tensor, sigma: f64) -> Result<Tensor> {
        let v = x.to_dtype(DType::F64)?.flatten_all()?.to_vec1::<f64>()?;
        let out: Vec<f64> = v.iter().map(|&x| self.posterior_mean(x, sigma)).collect();
        Ok(Tensor::from_vec(out, x.dims(), x.device())?.to_dtype(x.dtype())?)
    }

    /// Mixture CDF.
    pub fn cdf(&self, x: f64) -> f64 {
        (0..self.weights.len())
            .map(|k| self.weights[k] * normal_cdf((x - self.means[k]) / self.stds[k]))
            .sum()
    }

    pub fn mean(&self) -> f64 {
        (0..self.weights.len())
            .map(|k| self.weights[k] * self.means[k])
            .sum()
    }

    pub fn variance(&self) -> f64 {
        let m = self.mean();
        (0..self.weights.len())
            .map(|k| self.weights[k] * (self.stds[k].powi(2) + self.means[k].powi(2)))
            .sum::<f64>()
            - m * m
    }
}

/// Standard normal CDF through erfc (W. J. Cody's rational approximation is overkill here:
/// Abramowitz & Stegun 7.1.26, absolute error below 1.5e-7, is plenty for a KS statistic).
pub fn normal_cdf(z: f64) -> f64 {
    let x = z.abs() / std::f64::consts::SQRT_2;
    let t = 1.0 / (1.0 + 0.3275911 * x);
    let poly = t
        * (0.254829592
            + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))));
    let erfc = poly * (-x * x).exp();
    if z >= 0.0 {
        1.0 - 0.5 * erfc
    } else {
        0.5 * erfc
    }
}

/// Kolmogorov-Smirnov distance between samples and a CDF.
pub fn ks_distance(samples: &[f64], cdf: impl Fn(f64) -> f64) -> f64 {
    let mut s = samples.to_vec();
    s.sort_by(f64::total_cmp);
    let n = s.len() as f64;
    s.iter()
        .enumerate()
        .map(|(i, &x)| {
            let f = cdf(x);
            (f - i as f64 / n).abs().max((f - (i + 1) as f64 / n).abs())
        })
        .fold(0.0, f64::max)
}

/// `n` standard normal start values as a `(1, 1, n)` f64 tensor.
pub fn start_noise(n: usize, seed: u64) -> Tensor {
    adiff_core::SeededNoise::new(seed)
        .randn(&[1, 1, n], &Device::Cpu)
        .and_then(|t| Ok(t.to_dtype(DType::F64)?))
        .expect("seeded noise")
}

/// Least-squares slope of `ln err` against `ln n`.
pub fn loglog_slope(ns: &[usize], errs: &[f64]) -> f64 {
    let xs: Vec<f64> = ns.iter().map(|&n| (n as f64).ln()).collect();
    let ys: Vec<f64> = errs.iter().map(|e| e.ln()).collect();
    let mx = xs.iter().sum::<f64>() / xs.len() as f64;
    let my = ys.iter().sum::<f64>() / ys.len() as f64;
    let sxy: f64 = xs.iter().zip(&ys).map(|(x, y)| (x - mx) * (y - my)).sum();
    let sxx: f64 = xs.iter().map(|x| (x - mx).powi(2)).sum();
    sxy / sxx
}
