//! `modules.py::SinusoidalEmbedding`, audio-diffusion-pytorch 0.0.61 (SPEC §1.3): the
//! parameter-free sine/cosine embedding of the upsampler's factor conditioning.

use crate::{Error, Result};
use candle_core::{DType, Tensor};

/// `SinusoidalEmbedding(dim)`: `x (batch,)` to `(batch, dim)`, `concat(sin(x f), cos(x f))` with
/// `f_j = exp(-j ln(10000) / (dim/2 - 1))`, `j = 0 .. dim/2`.
#[derive(Debug, Clone)]
pub struct SinusoidalEmbedding {
    dim: usize,
}

impl SinusoidalEmbedding {
    /// An embedding of `dim` features; `dim` must be even and at least 4.
    pub fn new(dim: usize) -> Result<Self> {
        if dim < 4 || dim % 2 != 0 {
            return Err(Error::config(
                "dim",
                format!("SinusoidalEmbedding needs an even dim >= 4, got {dim}"),
            ));
        }
        Ok(Self { dim })
    }

    /// Number of output features.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// The frequencies `f_j` in f32, as the reference computes them (`exp(arange(half) * -k)`).
    fn frequencies(&self) -> Vec<f32> {
        let half = self.dim / 2;
        let k = 10000f64.ln() / (half as f64 - 1.0);
        (0..half).map(|j| (j as f32 * -(k as f32)).exp()).collect()
    }

    /// Embeds `x (batch,)` of any numeric dtype; the result is f32 `(batch, dim)`.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let b = x
            .dims1()
            .map_err(|_| Error::input("x", format!("expected (batch,), got {:?}", x.dims())))?;
        let x = x.to_dtype(DType::F32)?.reshape((b, 1))?;
        let half = self.dim / 2;
        let f = Tensor::from_vec(self.frequencies(), (1, half), x.device())?;
        let arg = x.broadcast_mul(&f)?;
        Ok(Tensor::cat(&[arg.sin()?, arg.cos()?], 1)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn matches_the_spec_vector_at_one() {
        let e = SinusoidalEmbedding::new(8).unwrap();
        let x = Tensor::new(&[1i64], &Device::Cpu).unwrap();
        let y = e.forward(&x).unwrap().to_vec2::<f32>().unwrap();
        // SPEC §1.3, to the 8 digits it gives.
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
