//! `modules.py::SinusoidalEmbedding`, audio-diffusion-pytorch 0.0.61 (docs/reference.md §1.3): the
//! parameter-free sine/cosine embedding of the upsampler's factor conditioning. The math is the
//! UNet's [`crate::nn::SinusoidalEmbedding`]; this adds the shape check and `dim` for models.

use crate::{Error, Result};
use candle_core::Tensor;

/// `SinusoidalEmbedding(dim)`: `x (batch,)` to `(batch, dim)`, `concat(sin(x f), cos(x f))` with
/// `f_j = exp(-j ln(10000) / (dim/2 - 1))`, `j = 0 .. dim/2`.
#[derive(Debug, Clone)]
pub struct SinusoidalEmbedding {
    dim: usize,
    inner: crate::nn::SinusoidalEmbedding,
}

impl SinusoidalEmbedding {
    /// An embedding of `dim` features; `dim` must be even and at least 4.
    pub fn new(dim: usize) -> Result<Self> {
        Ok(Self {
            dim,
            inner: crate::nn::SinusoidalEmbedding::new(dim)?,
        })
    }

    /// Number of output features.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// Embeds `x (batch,)` of any numeric dtype; the result is f32 `(batch, dim)`.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        x.dims1()
            .map_err(|_| Error::input("x", format!("expected (batch,), got {:?}", x.dims())))?;
        self.inner.forward(x)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device};

    #[test]
    fn matches_the_spec_vector_at_one() {
        let e = SinusoidalEmbedding::new(8).unwrap();
        let x = Tensor::new(&[1i64], &Device::Cpu).unwrap();
        let y = e.forward(&x).unwrap().to_vec2::<f32>().unwrap();
        // docs/reference.md §1.3, to the 8 digits it gives.
        let spec: [f64; 8] = [
            0.84147096, 0.04639923, 0.00215443, 0.0001, 0.54030234, 0.99892294, 0.99999768, 1.0,
        ];
        for (a, b) in y[0].iter().zip(spec) {
            assert!((*a as f64 - b).abs() < 1e-7, "{a} vs {b}");
        }
    }

    #[test]
    fn rejects_odd_or_tiny_dims_and_bad_shapes() {
        assert!(SinusoidalEmbedding::new(7).is_err());
        assert!(SinusoidalEmbedding::new(2).is_err());
        let e = SinusoidalEmbedding::new(8).unwrap();
        let x = Tensor::zeros((2, 2), DType::F32, &Device::Cpu).unwrap();
        assert!(e.forward(&x).is_err());
    }
}
