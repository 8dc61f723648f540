//! `model.py::Variational` (the VAE bottleneck of the autoencoders), audio-diffusion-pytorch 0.0.61.
//!
//! Kingma & Welling, "Auto-Encoding Variational Bayes" (2013): a 1x1 convolution predicts a mean and
//! a log-variance per latent channel, the latent is drawn by reparameterisation and a KL term against
//! N(0, 1) is returned as the bottleneck's loss.

use crate::{Compat, Error, NoiseSource, Result};
use candle_core::{Module, Tensor};
use candle_nn::{Conv1d, Conv1dConfig, VarBuilder};
use serde::{Deserialize, Serialize};

/// Keyword arguments of `Variational(channels, loss_weight=1.0)`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VariationalConfig {
    /// Latent channels C (the input is `(batch, C, length)`).
    pub channels: usize,
    /// Factor on the KL loss (dimensionless).
    #[serde(default = "one")]
    pub loss_weight: f64,
}

fn one() -> f64 {
    1.0
}

impl VariationalConfig {
    /// `Variational(channels)` with the reference default `loss_weight = 1.0`.
    pub fn new(channels: usize) -> Self {
        Self {
            channels,
            loss_weight: 1.0,
        }
    }
}

/// A bottleneck's configuration, written like the reference constructor tree
/// (`{"class": "Variational", "kwargs": {...}}`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "class", content = "kwargs")]
pub enum BottleneckConfig {
    /// `Variational(channels, loss_weight)`.
    Variational(VariationalConfig),
}

/// What a bottleneck returns with `with_info=True`: the latent and the loss it adds.
#[derive(Debug, Clone)]
pub struct BottleneckOutput {
    /// The latent `(batch, C, length)`.
    pub latent: Tensor,
    /// The bottleneck's loss, a 0-d f32 tensor (already multiplied by `loss_weight`).
    pub loss: Tensor,
}

/// The reference's `Bottleneck` interface (`forward(x, with_info=True)`).
pub trait Bottleneck {
    /// Runs the bottleneck on `x (batch, C, length)`; `noise` serves its draws.
    fn forward(&self, x: &Tensor, noise: &mut dyn NoiseSource) -> Result<BottleneckOutput>;
}

/// `Variational`: `to_mean_and_logvar` = Conv1d(C -> 2C, kernel 1).
#[derive(Debug, Clone)]
pub struct Variational {
    to_mean_and_logvar: Conv1d,
    channels: usize,
    loss_weight: f64,
    compat: Compat,
}

impl Variational {
    /// Builds the layer; weights `to_mean_and_logvar.{weight (2C, C, 1), bias (2C)}`.
    ///
    /// Under [`Compat::V0_0_61`] the KL is the reference's (no 1/2 factor, detached); otherwise it
    /// is the true KL divergence to N(0, 1), averaged per element, and differentiable.
    pub fn new(cfg: &VariationalConfig, compat: Compat, vb: VarBuilder) -> Result<Self> {
        if cfg.channels == 0 {
            return Err(Error::config("channels", "must be at least 1"));
        }
        if !cfg.loss_weight.is_finite() {
            return Err(Error::config("loss_weight", "must be finite"));
        }
        let c = cfg.channels;
        let to_mean_and_logvar = candle_nn::conv1d(
            c,
            2 * c,
            1,
            Conv1dConfig::default(),
            vb.pp("to_mean_and_logvar"),
        )?;
        Ok(Self {
            to_mean_and_logvar,
            channels: c,
            loss_weight: cfg.loss_weight,
            compat,
        })
    }

    /// Latent channels C.
    pub fn channels(&self) -> usize {
        self.channels
    }

    /// The KL term from `mean` and (clamped) `logvar`, times `loss_weight`, as a 0-d tensor.
    ///
    /// Fixed: `0.5 * mean(mean^2 + exp(logvar) - logvar - 1)`, the KL divergence of
    /// N(mean, exp(logvar)) from N(0, 1) per element. `0.0.61`: the same without the 1/2 factor,
    /// detached from the graph (the reference returns it as a Python float).
    pub fn kl(&self, mean: &Tensor, logvar: &Tensor) -> Result<Tensor> {
        let terms = ((mean.sqr()? + logvar.exp()?)? - logvar)?.affine(1.0, -1.0)?;
        let kl = terms.mean_all()?;
        Ok(match self.compat {
            Compat::V0_0_61 => kl.affine(self.loss_weight, 0.0)?.detach(),
            Compat::Fixed => kl.affine(0.5 * self.loss_weight, 0.0)?,
        })
    }
}

impl Bottleneck for Variational {
    fn forward(&self, x: &Tensor, noise: &mut dyn NoiseSource) -> Result<BottleneckOutput> {
        let dims = x.dims();
        if dims.len() != 3 || dims[1] != self.channels {
            return Err(Error::input(
                "x",
                format!("expected (batch, {}, length), got {dims:?}", self.channels),
            ));
        }
        // 1. Split the projection into mean (first C channels) and log-variance.
        let mean_and_logvar = self.to_mean_and_logvar.forward(x)?;
        let mean = mean_and_logvar.narrow(1, 0, self.channels)?;
        let logvar = mean_and_logvar.narrow(1, self.channels, self.channels)?;
        // 2. Clamp the log-variance to [-30, 20].
        let logvar = logvar.clamp(-30f32, 20f32)?;
        // 3. Reparameterised sample: mean + exp(logvar / 2) * N(0, 1) (draw: randn like mean).
        let std = (&logvar * 0.5)?.exp()?;
        let eps = noise.randn(mean.dims(), mean.device())?;
        let latent = (&mean + (std * eps)?)?;
        // 4. KL term.
        let loss = self.kl(&mean, &logvar)?;
        Ok(BottleneckOutput { latent, loss })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::SeededNoise;
    use candle_core::{DType, Device, Var};
    use std::collections::HashMap;

    fn layer(compat: Compat, w: &[f32], b: &[f32]) -> Variational {
        let d = Device::Cpu;
        let mut ts = HashMap::new();
        ts.insert(
            "to_mean_and_logvar.weight".to_string(),
            Tensor::from_slice(w, (2, 1, 1), &d).unwrap(),
        );
        ts.insert(
            "to_mean_and_logvar.bias".to_string(),
            Tensor::from_slice(b, 2, &d).unwrap(),
        );
        let vb = VarBuilder::from_tensors(ts, DType::F32, &d);
        let cfg = VariationalConfig {
            channels: 1,
            loss_weight: 2.0,
        };
        Variational::new(&cfg, compat, vb).unwrap()
    }

    #[test]
    fn kl_matches_closed_form_and_has_the_half_factor_when_fixed() {
        // mean = x, logvar = ln 4 (so var = 4): per element KL = 0.5 (x^2 + 4 - ln 4 - 1).
        let x = Tensor::new(&[[[1f32, -2.0]]], &Device::Cpu).unwrap();
        let ln4 = 4f32.ln();
        let mean_sq = (1.0 + 4.0) / 2.0;
        let expect_fixed = 2.0 * 0.5 * (mean_sq + 4.0 - ln4 - 1.0);
        for (compat, expect) in [
            (Compat::Fixed, expect_fixed),
            (Compat::V0_0_61, 2.0 * expect_fixed),
        ] {
            let v = layer(compat, &[1.0, 0.0], &[0.0, ln4]);
            let out = Bottleneck::forward(&v, &x, &mut SeededNoise::new(0)).unwrap();
            let kl = out.loss.to_scalar::<f32>().unwrap();
            assert!(
                (kl - expect).abs() < 1e-5,
                "{compat:?}: kl {kl}, expected {expect}"
            );
        }
    }

    #[test]
    fn sample_is_mean_plus_std_times_the_draw_and_logvar_is_clamped() {
        let x = Tensor::new(&[[[0.5f32, 3.0]]], &Device::Cpu).unwrap();
        // logvar = 100 * x is clamped to 20 for both elements: std = exp(10).
        let v = layer(Compat::Fixed, &[1.0, 100.0], &[0.0, 0.0]);
        let mut noise = SeededNoise::new(5);
        let eps = SeededNoise::new(5).randn(&[1, 1, 2], &Device::Cpu).unwrap();
        let out = Bottleneck::forward(&v, &x, &mut noise).unwrap();
        let got = out.latent.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let eps = eps.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let std = 10f32.exp();
        for (i, m) in [0.5f32, 3.0].iter().enumerate() {
            let want = m + std * eps[i];
            assert!(
                (got[i] - want).abs() <= 1e-6 * want.abs().max(1.0),
                "{} vs {}",
                got[i],
                want
            );
        }
    }

    #[test]
    fn fixed_kl_is_differentiable_and_reference_kl_is_detached() {
        let d = Device::Cpu;
        let mean = Var::from_slice(&[0.5f32, -1.0], (1, 1, 2), &d).unwrap();
        let logvar = Tensor::new(&[[[0f32, 0.0]]], &d).unwrap();
        let v = layer(Compat::Fixed, &[1.0, 0.0], &[0.0, 0.0]);
        let grads = v.kl(mean.as_tensor(), &logvar).unwrap().backward().unwrap();
        // d/dm of loss_weight * 0.5 * mean(m^2 + ...) = 2 * 0.5 * 2m / 2 = m.
        let g = grads
            .get(&mean)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        assert!(
            (g[0] - 0.5).abs() < 1e-6 && (g[1] + 1.0).abs() < 1e-6,
            "grad {g:?}"
        );
        let v = layer(Compat::V0_0_61, &[1.0, 0.0], &[0.0, 0.0]);
        let grads = v.kl(mean.as_tensor(), &logvar).unwrap().backward().unwrap();
        assert!(grads.get(&mean).is_none());
    }

    #[test]
    fn wrong_channel_count_is_an_input_error() {
        let v = layer(Compat::Fixed, &[1.0, 0.0], &[0.0, 0.0]);
        let x = Tensor::zeros((1, 2, 4), DType::F32, &Device::Cpu).unwrap();
        let r = Bottleneck::forward(&v, &x, &mut SeededNoise::new(0));
        assert!(matches!(r, Err(Error::InvalidInput { .. })));
    }
}
