//! `diffusion.py::clip` (audio-diffusion-pytorch 0.0.61): static clipping to [−1, 1] or dynamic
//! thresholding (Saharia et al. 2022, "Imagen", §2.3) with `torch.quantile`'s linear interpolation.

use crate::{Error, Result};
use candle_core::{DType, Tensor};

/// `clip(x, dynamic_threshold)` for `x (batch, ...)`: with a threshold of 0, `clamp(x, −1, 1)`;
/// otherwise per batch element `s = max(quantile(|x|, q), 1)` and `clamp(x, −s, s)/s`.
pub fn clip(x: &Tensor, dynamic_threshold: f64) -> Result<Tensor> {
    if dynamic_threshold == 0.0 {
        return Ok(x.clamp(-1.0, 1.0)?);
    }
    let scales = dynamic_scales(x, dynamic_threshold)?;
    let mut shape = vec![x.dim(0)?];
    shape.resize(x.rank(), 1);
    let s = scales.reshape(shape)?;
    Ok(x.broadcast_minimum(&s)?
        .broadcast_maximum(&s.neg()?)?
        .broadcast_div(&s)?)
}

/// The per-batch scales `max(quantile(|x_b|, q), 1)` as a tensor `(batch,)` of `x`'s dtype.
pub fn dynamic_scales(x: &Tensor, q: f64) -> Result<Tensor> {
    if !(0.0..=1.0).contains(&q) {
        return Err(Error::input(
            "dynamic_threshold",
            format!("quantile must be in [0, 1], got {q}"),
        ));
    }
    let b = x.dim(0)?;
    if b > 0 && x.elem_count() == 0 {
        return Err(Error::input(
            "x",
            format!(
                "dynamic thresholding needs samples, got shape {:?}",
                x.dims()
            ),
        ));
    }
    let flat = x.flatten_from(1)?.abs()?;
    let scales = match x.dtype() {
        DType::F64 => {
            let rows = flat.to_vec2::<f64>()?;
            let s: Vec<f64> = rows
                .into_iter()
                .map(|r| quantile_f64(r, q).max(1.0))
                .collect();
            Tensor::from_vec(s, b, x.device())?
        }
        _ => {
            let rows = flat.to_dtype(DType::F32)?.to_vec2::<f32>()?;
            let s: Vec<f32> = rows
                .into_iter()
                .map(|r| quantile_f32(r, q as f32).max(1.0))
                .collect();
            Tensor::from_vec(s, b, x.device())?.to_dtype(x.dtype())?
        }
    };
    Ok(scales)
}

/// `torch.quantile(v, q)` (linear interpolation), computed in f32 like torch does for f32 input.
fn quantile_f32(mut v: Vec<f32>, q: f32) -> f32 {
    v.sort_by(f32::total_cmp);
    let rank = q * (v.len() - 1) as f32;
    let below = rank.floor() as usize;
    let above = (below + 1).min(v.len() - 1);
    lerp_f32(v[below], v[above], rank - below as f32)
}

/// torch's `lerp`, which switches formula at weight 0.5 for accuracy.
fn lerp_f32(a: f32, b: f32, w: f32) -> f32 {
    if w.abs() < 0.5 {
        a + w * (b - a)
    } else {
        b - (b - a) * (1.0 - w)
    }
}

fn quantile_f64(mut v: Vec<f64>, q: f64) -> f64 {
    v.sort_by(f64::total_cmp);
    let rank = q * (v.len() - 1) as f64;
    let below = rank.floor() as usize;
    let above = (below + 1).min(v.len() - 1);
    let w = rank - below as f64;
    if w.abs() < 0.5 {
        v[below] + w * (v[above] - v[below])
    } else {
        v[above] - (v[above] - v[below]) * (1.0 - w)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn spec_3_2_examples() {
        let d = Device::Cpu;
        let x = Tensor::new(&[[0.5f32, -2.0, 3.0, 0.1], [0.2, 0.3, -0.4, 0.9]], &d).unwrap();
        let s = dynamic_scales(&x, 0.75).unwrap().to_vec1::<f32>().unwrap();
        assert!((s[0] - 2.25).abs() < 1e-6 && s[1] == 1.0, "{s:?}");
        let y = clip(&x, 0.75).unwrap().to_vec2::<f32>().unwrap();
        let want = [0.2222222f32, -0.8888889, 1.0, 0.04444444];
        for (g, w) in y[0].iter().zip(want) {
            assert!((g - w).abs() < 1e-6, "{y:?}");
        }
        assert_eq!(y[1], vec![0.2, 0.3, -0.4, 0.9]);
    }

    #[test]
    fn static_clip_and_bad_quantile() {
        let d = Device::Cpu;
        let x = Tensor::new(&[[-3f64, 0.5, 2.0]], &d).unwrap();
        assert_eq!(
            clip(&x, 0.0).unwrap().to_vec2::<f64>().unwrap(),
            vec![vec![-1.0, 0.5, 1.0]]
        );
        assert!(clip(&x, 1.5).is_err());
        // An empty row has no quantile: an error, not an index panic.
        let empty = Tensor::zeros((2, 1, 0), DType::F32, &d).unwrap();
        assert!(matches!(clip(&empty, 0.9), Err(Error::InvalidInput { .. })));
        // q = 1 is the max of |x|: the result spans exactly [-1, 1].
        let y = clip(&x, 1.0).unwrap().to_vec2::<f64>().unwrap();
        assert_eq!(y[0][0], -1.0);
    }
}
