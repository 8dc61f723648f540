//! What the training loop needs from a model: a scalar loss for a batch of clean windows and a
//! preview render, both over weights that live in a `VarMap`.

use adiff_core::NoiseSource;
use anyhow::Result;
use candle_core::Tensor;

/// A model the loop can train.
pub trait Trainable {
    /// The scalar training loss for clean windows `x (batch, channels, length)`; every random
    /// draw (sigmas, noise, conditioning dropout) comes from `noise`.
    fn loss(&self, x: &Tensor, noise: &mut dyn NoiseSource) -> Result<Tensor>;

    /// A preview render of `steps` sampler steps for the reference windows `x` (the generator
    /// ignores them except for their shape; the upsampler upsamples their low-passed version; the
    /// autoencoder reconstructs them). Output `(batch, channels, length)`.
    fn render(&self, x: &Tensor, steps: usize, noise: &mut dyn NoiseSource) -> Result<Tensor>;
}

/// A small trainable stand-in (three convolutions with a time input, v objective), used by the
/// loop's own unit tests so that they exercise the optimizer, checkpoints and resume quickly.
#[cfg(test)]
pub mod standin {
    use super::*;
    use candle_core::{DType, D};
    use candle_nn::{conv1d, linear, Conv1d, Conv1dConfig, Linear, Module, VarBuilder};

    pub struct StandIn {
        c1: Conv1d,
        c2: Conv1d,
        c3: Conv1d,
        t: Linear,
    }

    impl StandIn {
        pub fn new(channels: usize, vb: VarBuilder) -> Result<Self> {
            let cfg = Conv1dConfig {
                padding: 1,
                ..Default::default()
            };
            Ok(Self {
                c1: conv1d(channels, 8, 3, cfg, vb.pp("c1"))?,
                c2: conv1d(8, 8, 3, cfg, vb.pp("c2"))?,
                c3: conv1d(8, channels, 3, cfg, vb.pp("c3"))?,
                t: linear(1, 8, vb.pp("t"))?,
            })
        }

        fn net(&self, x: &Tensor, t: &Tensor) -> Result<Tensor> {
            let temb = self.t.forward(&t.unsqueeze(1)?)?.unsqueeze(D::Minus1)?;
            let h = self.c1.forward(x)?.broadcast_add(&temb)?.silu()?;
            let h = self.c2.forward(&h)?.silu()?;
            Ok(self.c3.forward(&h)?)
        }
    }

    impl Trainable for StandIn {
        fn loss(&self, x: &Tensor, noise: &mut dyn NoiseSource) -> Result<Tensor> {
            let b = x.dim(0)?;
            let t = noise.rand(&[b], x.device())?;
            let eps = noise.randn(x.dims(), x.device())?;
            let angle = (&t * std::f64::consts::FRAC_PI_2)?;
            let (a, s) = (
                angle.cos()?.reshape((b, 1, 1))?,
                angle.sin()?.reshape((b, 1, 1))?,
            );
            let xt = (x.broadcast_mul(&a)? + eps.broadcast_mul(&s)?)?;
            let v = (eps.broadcast_mul(&a)? - x.broadcast_mul(&s)?)?;
            Ok(self.net(&xt, &t)?.sub(&v)?.sqr()?.mean_all()?)
        }

        fn render(&self, x: &Tensor, steps: usize, noise: &mut dyn NoiseSource) -> Result<Tensor> {
            let b = x.dim(0)?;
            let mut xt = noise.randn(x.dims(), x.device())?;
            for i in 0..steps {
                let (t0, t1) = (
                    1.0 - i as f64 / steps as f64,
                    1.0 - (i + 1) as f64 / steps as f64,
                );
                let (a0, s0) = (
                    (t0 * std::f64::consts::FRAC_PI_2).cos(),
                    (t0 * std::f64::consts::FRAC_PI_2).sin(),
                );
                let (a1, s1) = (
                    (t1 * std::f64::consts::FRAC_PI_2).cos(),
                    (t1 * std::f64::consts::FRAC_PI_2).sin(),
                );
                let v = self.net(
                    &xt,
                    &Tensor::full(t0 as f32, b, x.device())?.to_dtype(DType::F32)?,
                )?;
                let x0 = ((&xt * a0)? - (&v * s0)?)?;
                let e = ((&xt * s0)? + (&v * a0)?)?;
                xt = ((x0 * a1)? + (e * s1)?)?;
            }
            Ok(xt)
        }
    }
}
