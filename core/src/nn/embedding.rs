//! Time embeddings of `modules.py` (audio-diffusion-pytorch 0.0.61, docs/reference.md §1.3):
//! `LearnedPositionalEmbedding`, `TimePositionalEmbedding`, `SinusoidalEmbedding`.

use crate::nn::init::NORMAL;
use crate::nn::{Linear, SeqIndex};
use crate::{Error, Result};
use candle_core::{DType, Tensor, D};
use candle_nn::VarBuilder;

/// Learned Fourier features: `[t, sin(2π t w), cos(2π t w)]`, parameter `weights` `[dim/2]`.
#[derive(Debug, Clone)]
pub struct LearnedPositionalEmbedding {
    /// `[dim/2]`, N(0, 1).
    pub weights: Tensor,
}

impl LearnedPositionalEmbedding {
    /// `dim` must be even.
    pub fn new(dim: usize, vb: VarBuilder) -> Result<Self> {
        if !dim.is_multiple_of(2) {
            return Err(Error::config(
                "channels",
                format!("{dim} must be even (LearnedPositionalEmbedding)"),
            ));
        }
        Ok(Self {
            weights: vb.get_with_hints(dim / 2, "weights", NORMAL)?,
        })
    }

    /// `t (batch,)` -> `(batch, dim + 1)`.
    pub fn forward(&self, t: &Tensor) -> Result<Tensor> {
        let x = t.to_dtype(self.weights.dtype())?.unsqueeze(1)?;
        // Same order of operations as the reference: ((x * w) * 2) * pi.
        let freqs = x.broadcast_mul(&self.weights.unsqueeze(0)?)?;
        let freqs = ((freqs * 2.0)? * std::f64::consts::PI)?;
        Ok(Tensor::cat(&[&x, &freqs.sin()?, &freqs.cos()?], D::Minus1)?)
    }
}

/// `TimePositionalEmbedding(dim, out)` = Sequential(LearnedPositionalEmbedding(dim), Linear(dim+1, out)).
#[derive(Debug, Clone)]
pub struct TimePositionalEmbedding {
    /// Child 0.
    pub embedding: LearnedPositionalEmbedding,
    /// Child 1.
    pub linear: Linear,
}

impl TimePositionalEmbedding {
    /// Builds children `0.weights`, `1.weight`, `1.bias` under `vb`.
    pub fn new(dim: usize, out_features: usize, vb: VarBuilder) -> Result<Self> {
        let mut seq = SeqIndex::new(vb);
        let embedding = LearnedPositionalEmbedding::new(dim, seq.next_vb())?;
        let linear = Linear::new(dim + 1, out_features, true, seq.next_vb())?;
        Ok(Self { embedding, linear })
    }

    /// `t (batch,)` -> `(batch, out)`.
    pub fn forward(&self, t: &Tensor) -> Result<Tensor> {
        self.linear.forward(&self.embedding.forward(t)?)
    }
}

/// Parameter-free sinusoidal embedding: `concat(sin(x f), cos(x f))`, `f_j = exp(-j ln(10000)/(half-1))`.
#[derive(Debug, Clone, Copy)]
pub struct SinusoidalEmbedding {
    dim: usize,
}

impl SinusoidalEmbedding {
    /// `dim` must be even and at least 4.
    pub fn new(dim: usize) -> Result<Self> {
        if dim < 4 || !dim.is_multiple_of(2) {
            return Err(Error::config(
                "dim",
                format!("SinusoidalEmbedding needs an even dim >= 4, got {dim}"),
            ));
        }
        Ok(Self { dim })
    }

    /// `x (batch,)` (any numeric dtype) -> `(batch, dim)` in f32.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let half = self.dim / 2;
        let k = ((10000f64).ln() / (half as f64 - 1.0)) as f32;
        let freqs: Vec<f32> = (0..half).map(|j| (j as f32 * -k).exp()).collect();
        let freqs = Tensor::from_vec(freqs, (1, half), x.device())?;
        let emb = x
            .to_dtype(DType::F32)?
            .unsqueeze(1)?
            .broadcast_mul(&freqs)?;
        Ok(Tensor::cat(&[&emb.sin()?, &emb.cos()?], D::Minus1)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn sinusoidal_matches_the_spec_vector() {
        let x = Tensor::new(&[1f32], &Device::Cpu).unwrap();
        let y = SinusoidalEmbedding::new(8).unwrap().forward(&x).unwrap();
        let y = y.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let want: [f64; 8] = [
            0.84147096, 0.04639923, 0.00215443, 0.0001, 0.54030234, 0.99892294, 0.99999768, 1.0,
        ];
        for (a, b) in y.iter().zip(want) {
            assert!((*a as f64 - b).abs() < 1e-6, "{a} vs {b}");
        }
        assert!(SinusoidalEmbedding::new(2).is_err());
    }

    #[test]
    fn learned_embedding_orders_t_sines_cosines() {
        let d = Device::Cpu;
        let e = LearnedPositionalEmbedding {
            weights: Tensor::new(&[0.5f32, 1.0], &d).unwrap(),
        };
        let y = e.forward(&Tensor::new(&[0.25f32], &d).unwrap()).unwrap();
        let y = y.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let tau = std::f32::consts::TAU;
        let want = [
            0.25,
            (0.125 * tau).sin(),
            (0.25 * tau).sin(),
            (0.125 * tau).cos(),
            (0.25 * tau).cos(),
        ];
        for (a, b) in y.iter().zip(want) {
            assert!((a - b).abs() < 1e-6);
        }
    }
}
