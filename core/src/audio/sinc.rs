//! `utils.py::resample`, `downsample`, `upsample`, audio-diffusion-pytorch 0.0.61 (a windowed-sinc
//! polyphase resampler adapted from torchaudio): the upsampler's conditioning path and the
//! baseline every learned upsampler is measured against (docs/reference.md §4.9).

use crate::{Error, Result};
use candle_core::{Tensor, D};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

/// Default `rolloff` of the reference (fraction of the lower Nyquist frequency kept).
pub const ROLLOFF: f64 = 0.99;
/// Default `lowpass_filter_width` of the reference (zero crossings on each side).
pub const LOWPASS_FILTER_WIDTH: usize = 6;

/// A kernel bank `(fo, 1, K)` in row-major order, plus its half width (samples at the input rate).
#[derive(Debug)]
struct Kernel {
    taps: Vec<f64>,
    len: usize,
    width: usize,
}

type KernelKey = (usize, usize, u64, usize);

fn kernel_cache() -> &'static Mutex<HashMap<KernelKey, Arc<Kernel>>> {
    static CACHE: OnceLock<Mutex<HashMap<KernelKey, Arc<Kernel>>>> = OnceLock::new();
    CACHE.get_or_init(|| Mutex::new(HashMap::new()))
}

/// docs/reference.md §4.9 steps 2-6: the windowed-sinc kernel bank for `fi -> fo`, computed in
/// f64 and cached.
fn kernel(fi: usize, fo: usize, rolloff: f64, w: usize) -> Arc<Kernel> {
    let key = (fi, fo, rolloff.to_bits(), w);
    // A poisoned lock only means another thread panicked mid-insert; the map is still usable.
    let mut cache = kernel_cache().lock().unwrap_or_else(|e| e.into_inner());
    if let Some(k) = cache.get(&key) {
        return k.clone();
    }
    let (fif, fof, wf) = (fi as f64, fo as f64, w as f64);
    let base = fi.min(fo) as f64 * rolloff;
    let width = (wf * fif / base).ceil() as usize;
    let len = 2 * width + fi;
    let mut taps = Vec::with_capacity(fo * len);
    for k in 0..fo {
        for j in 0..len {
            let idx = (j as f64 - width as f64) / fif;
            let t = ((-(k as f64) / fof + idx) * base).clamp(-wf, wf);
            let tau = t * std::f64::consts::PI;
            let sinc = if tau == 0.0 { 1.0 } else { tau.sin() / tau };
            let window = (tau / (2.0 * wf)).cos().powi(2);
            taps.push(sinc * window * base / fif);
        }
    }
    let k = Arc::new(Kernel { taps, len, width });
    cache.insert(key, k.clone());
    k
}

/// Resamples `x (batch, channels, length)` by the rational factor `factor_out / factor_in`.
///
/// Output length `floor(factor_out * length / factor_in)`; computed in the dtype of `x` (the
/// kernels in f64, then cast), on the device of `x`.
pub fn resample(
    x: &Tensor,
    factor_in: usize,
    factor_out: usize,
    rolloff: f64,
    lowpass_filter_width: usize,
) -> Result<Tensor> {
    let (b, c, t) = x.dims3().map_err(|_| {
        Error::input(
            "x",
            format!("expected (batch, channels, length), got {:?}", x.dims()),
        )
    })?;
    if factor_in == 0 || factor_out == 0 {
        return Err(Error::input(
            "factor",
            "resampling factors must be positive",
        ));
    }
    if !(rolloff > 0.0 && rolloff <= 1.0) || lowpass_filter_width == 0 {
        return Err(Error::input(
            "rolloff",
            format!("need 0 < rolloff <= 1 and a positive filter width, got {rolloff} and {lowpass_filter_width}"),
        ));
    }
    if factor_in == factor_out {
        return Ok(x.clone());
    }
    let target = factor_out * t / factor_in;
    let k = kernel(factor_in, factor_out, rolloff, lowpass_filter_width);
    let bank = Tensor::from_vec(k.taps.clone(), (factor_out, 1, k.len), x.device())?
        .to_dtype(x.dtype())?;
    // 7. flatten and pad; 8. one strided convolution with fo output phases.
    let flat = x.reshape((b * c, 1, t))?;
    let padded = flat.pad_with_zeros(D::Minus1, k.width, k.width + factor_in)?;
    let conv = padded.conv1d(&bank, 0, factor_in, 1, 1)?;
    let frames = conv.dim(2)?;
    // 9. interleave the phases; 10. truncate.
    let out = conv
        .transpose(1, 2)?
        .contiguous()?
        .reshape((b, c, frames * factor_out))?;
    Ok(out.narrow(2, 0, target)?.contiguous()?)
}

/// `downsample(x, f) = resample(x, f, 1)`: `(batch, channels, length)` to `length / f` samples,
/// with the reference's default [`ROLLOFF`] and [`LOWPASS_FILTER_WIDTH`].
pub fn downsample(x: &Tensor, factor: usize) -> Result<Tensor> {
    downsample_with(x, factor, ROLLOFF, LOWPASS_FILTER_WIDTH)
}

/// The reference's full `downsample(waveform, factor, **kwargs)`, whose keyword arguments go on
/// to `resample`: `resample(x, factor, 1, rolloff, lowpass_filter_width)` (docs/reference.md §4.9).
///
/// `downsample_with(x, f, ROLLOFF, LOWPASS_FILTER_WIDTH)` is [`downsample`]`(x, f)`.
pub fn downsample_with(
    x: &Tensor,
    factor: usize,
    rolloff: f64,
    lowpass_filter_width: usize,
) -> Result<Tensor> {
    resample(x, factor, 1, rolloff, lowpass_filter_width)
}

/// `upsample(x, f) = resample(x, 1, f)`: `(batch, channels, length)` to `length * f` samples,
/// with the reference's default [`ROLLOFF`] and [`LOWPASS_FILTER_WIDTH`].
pub fn upsample(x: &Tensor, factor: usize) -> Result<Tensor> {
    upsample_with(x, factor, ROLLOFF, LOWPASS_FILTER_WIDTH)
}

/// The reference's full `upsample(waveform, factor, **kwargs)`, whose keyword arguments go on
/// to `resample`: `resample(x, 1, factor, rolloff, lowpass_filter_width)` (docs/reference.md §4.9).
///
/// `upsample_with(x, f, ROLLOFF, LOWPASS_FILTER_WIDTH)` is [`upsample`]`(x, f)`.
pub fn upsample_with(
    x: &Tensor,
    factor: usize,
    rolloff: f64,
    lowpass_filter_width: usize,
) -> Result<Tensor> {
    resample(x, 1, factor, rolloff, lowpass_filter_width)
}

/// Kernel length of `resample(·, fi, fo)`, `2 ceil(w fi / (min(fi, fo) rolloff)) + fi`
/// (docs/reference.md §4.9).
pub fn kernel_len(factor_in: usize, factor_out: usize) -> usize {
    kernel(factor_in, factor_out, ROLLOFF, LOWPASS_FILTER_WIDTH).len
}

/// Sinc-downsample then sinc-upsample by `factor`: what the upsampler's conditioning sees of `x`.
pub fn down_up(x: &Tensor, factor: usize) -> Result<Tensor> {
    upsample(&downsample(x, factor)?, factor)
}

/// The reference's sinc `upsample` of one channel held in a slice (length `len * factor`).
pub fn sinc_up(lo: &[f32], factor: usize) -> Result<Vec<f32>> {
    slice_out(&upsample(&slice_in(lo)?, factor)?)
}

/// The reference's sinc `downsample` of one channel held in a slice (length `len / factor`).
pub fn sinc_down(x: &[f32], factor: usize) -> Result<Vec<f32>> {
    slice_out(&downsample(&slice_in(x)?, factor)?)
}

fn slice_in(x: &[f32]) -> Result<Tensor> {
    Ok(Tensor::from_vec(
        x.to_vec(),
        (1, 1, x.len()),
        &candle_core::Device::Cpu,
    )?)
}

fn slice_out(t: &Tensor) -> Result<Vec<f32>> {
    Ok(t.flatten_all()?.to_vec1::<f32>()?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device};

    fn spec_input() -> Tensor {
        let v: Vec<f64> = (0..32)
            .map(|n| (0.3 * n as f64).sin() + 0.05 * n as f64)
            .collect();
        Tensor::from_vec(v, (1, 1, 32), &Device::Cpu).unwrap()
    }

    fn check(out: &Tensor, len: usize, first: [f64; 8]) {
        assert_eq!(out.dims(), &[1, 1, len]);
        let v = out.flatten_all().unwrap().to_vec1::<f64>().unwrap();
        for (i, (a, b)) in v.iter().zip(first).enumerate() {
            assert!(
                (a - b).abs() < 1e-9,
                "value {i}: {a} vs docs/reference.md {b}"
            );
        }
    }

    #[test]
    fn matches_the_spec_float64_vectors() {
        let x = spec_input();
        check(
            &downsample(&x, 2).unwrap(),
            16,
            [
                0.0583854975,
                0.6544926432,
                1.1363551107,
                1.2714730326,
                1.0768878184,
                0.6410750420,
                0.1579611189,
                -0.1708474284,
            ],
        );
        check(
            &downsample(&x, 4).unwrap(),
            8,
            [
                0.1462541813,
                1.1091754835,
                1.0860570774,
                0.1522126881,
                -0.1982243163,
                0.7354327648,
                1.9554577376,
                2.3451622275,
            ],
        );
        check(
            &upsample(&x, 2).unwrap(),
            64,
            [
                0.0009356660,
                0.1441116234,
                0.3446846168,
                0.5237810343,
                0.6653282057,
                0.8008289471,
                0.9328770993,
                1.0453255347,
            ],
        );
        check(
            &upsample(&x, 3).unwrap(),
            96,
            [
                0.0009356660,
                0.0855601751,
                0.2091744758,
                0.3446846168,
                0.4691874881,
                0.5736689119,
                0.6653282057,
                0.7553787472,
            ],
        );
    }

    #[test]
    fn kernel_lengths_follow_the_spec() {
        assert_eq!(kernel_len(2, 1), 28);
        assert_eq!(kernel_len(4, 1), 54);
        assert_eq!(kernel_len(8, 1), 106);
        assert_eq!(kernel_len(1, 5), 15);
    }

    fn values(t: &Tensor) -> Vec<f64> {
        t.flatten_all().unwrap().to_vec1::<f64>().unwrap()
    }

    #[test]
    fn full_signatures_default_to_the_two_argument_forms() {
        let x = spec_input();
        for f in [2, 3, 4, 8] {
            let d = downsample_with(&x, f, ROLLOFF, LOWPASS_FILTER_WIDTH).unwrap();
            assert_eq!(values(&d), values(&downsample(&x, f).unwrap()), "down {f}");
            let u = upsample_with(&x, f, ROLLOFF, LOWPASS_FILTER_WIDTH).unwrap();
            assert_eq!(values(&u), values(&upsample(&x, f).unwrap()), "up {f}");
        }
    }

    #[test]
    fn full_signatures_pass_rolloff_and_width_on_to_resample() {
        // docs/reference.md §4.9: downsample(x, f, **kw) = resample(x, f, 1, **kw),
        // upsample = resample(x, 1, f, **kw).
        let x = spec_input();
        for (rolloff, width) in [(0.95, 3), (0.9, 6), (ROLLOFF, 4)] {
            let d = downsample_with(&x, 2, rolloff, width).unwrap();
            assert_eq!(
                values(&d),
                values(&resample(&x, 2, 1, rolloff, width).unwrap())
            );
            assert_ne!(values(&d), values(&downsample(&x, 2).unwrap()));
            let u = upsample_with(&x, 2, rolloff, width).unwrap();
            assert_eq!(
                values(&u),
                values(&resample(&x, 1, 2, rolloff, width).unwrap())
            );
            assert_ne!(values(&u), values(&upsample(&x, 2).unwrap()));
            assert_eq!(d.dims(), &[1, 1, 16]);
            assert_eq!(u.dims(), &[1, 1, 64]);
        }
        // The call: a narrower, lower filter moves the result by far more than rounding.
        let d = downsample_with(&x, 2, 0.95, 3).unwrap();
        let diff = values(&d)
            .iter()
            .zip(values(&downsample(&x, 2).unwrap()))
            .map(|(a, b)| (a - b).abs())
            .fold(0f64, f64::max);
        assert!(diff > 1e-3, "max difference {diff}");
        assert!(matches!(
            downsample_with(&x, 2, 0.0, 6),
            Err(Error::InvalidInput { .. })
        ));
        assert!(matches!(
            upsample_with(&x, 2, 0.99, 0),
            Err(Error::InvalidInput { .. })
        ));
    }

    #[test]
    fn rejects_bad_shapes_and_factors() {
        let x = Tensor::zeros((4, 8), DType::F32, &Device::Cpu).unwrap();
        assert!(matches!(downsample(&x, 2), Err(Error::InvalidInput { .. })));
        let x = Tensor::zeros((1, 1, 8), DType::F32, &Device::Cpu).unwrap();
        assert!(matches!(upsample(&x, 0), Err(Error::InvalidInput { .. })));
    }
}
