//! Processing audio of any length in overlapping windows with a smooth crossfade, so a model with a
//! fixed input length runs over a whole recording without seams.
//!
//! Each window's output is weighted by an envelope that rises over its first `overlap` samples and
//! falls over its last `overlap` (sin² ramps, flat at the signal's own ends), and the weighted
//! outputs are divided by the summed envelopes: the weights sum to one everywhere, so an identity
//! "model" returns its input unchanged and differing windows blend without a jump.

use crate::{Error, Result};
use candle_core::{Device, Tensor};

/// Where one window sits, for progress reporting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WindowInfo {
    /// Index of this window, from 0.
    pub index: usize,
    /// Number of windows.
    pub total: usize,
    /// First input sample of the window.
    pub start: usize,
}

/// Start positions of windows of `window` samples over `len` samples, consecutive windows sharing
/// at least `overlap` samples; the first starts at 0 and the last ends at `len` (one window when
/// `len <= window`).
pub fn window_starts(len: usize, window: usize, overlap: usize) -> Result<Vec<usize>> {
    if window == 0 || overlap >= window {
        return Err(Error::input(
            "window",
            format!("need 0 <= overlap ({overlap}) < window ({window})"),
        ));
    }
    if len <= window {
        return Ok(vec![0]);
    }
    let step = window - overlap;
    let n = (len - overlap).div_ceil(step);
    let span = len - window;
    Ok((0..n).map(|i| (i * span + (n - 1) / 2) / (n - 1)).collect())
}

/// Envelope of a window at position `i` of `n` samples: sin² ramps of `ramp` samples at the edges
/// flagged `rise` / `fall`, 1 elsewhere. Never zero.
fn envelope(i: usize, n: usize, ramp: usize, rise: bool, fall: bool) -> f32 {
    let r = |k: usize| {
        let t = (k as f64 + 0.5) / ramp as f64;
        (std::f64::consts::FRAC_PI_2 * t).sin().powi(2) as f32
    };
    let mut w = 1.0;
    if rise && i < ramp {
        w *= r(i);
    }
    if fall && n - 1 - i < ramp {
        w *= r(n - 1 - i);
    }
    w
}

/// Runs `model` over `x (batch, channels, length)` in windows of `window` input samples sharing
/// `overlap`; `model` maps `(batch, channels, window)` to `(batch, out_channels, window * scale)`.
/// A short input (or the last window) is zero-padded to `window` and its output cut back, so the
/// model always sees exactly `window` samples. Returns `(batch, out_channels, length * scale)`.
pub fn process_in_windows<F>(
    x: &Tensor,
    window: usize,
    overlap: usize,
    scale: usize,
    mut model: F,
) -> Result<Tensor>
where
    F: FnMut(&Tensor, WindowInfo) -> Result<Tensor>,
{
    let (b, _c, len) = x.dims3()?;
    if scale == 0 || len == 0 {
        return Err(Error::input(
            "window",
            "need a positive scale and a non-empty input",
        ));
    }
    let starts = window_starts(len, window, overlap)?;
    let total = starts.len();
    let (out_len, ramp) = (len * scale, overlap * scale);
    let mut acc: Vec<Vec<f32>> = Vec::new();
    let mut weight = vec![0f32; out_len];
    let mut out_channels = 0;
    for (index, &start) in starts.iter().enumerate() {
        let take = window.min(len - start);
        let mut piece = x.narrow(2, start, take)?;
        if take < window {
            piece = piece.pad_with_zeros(2, 0, window - take)?;
        }
        let y = model(
            &piece,
            WindowInfo {
                index,
                total,
                start,
            },
        )?;
        let (yb, yc, ylen) = y.dims3()?;
        if yb != b || ylen != window * scale {
            return Err(Error::input(
                "model output",
                format!("expected ({b}, _, {}), got {:?}", window * scale, y.dims()),
            ));
        }
        if acc.is_empty() {
            out_channels = yc;
            acc = vec![vec![0f32; out_len]; b * yc];
        } else if yc != out_channels {
            return Err(Error::input(
                "model output",
                "the channel count changed between windows",
            ));
        }
        let rows = y
            .to_device(&Device::Cpu)?
            .to_dtype(candle_core::DType::F32)?
            .flatten_to(1)?
            .to_vec2::<f32>()?;
        let (o0, n) = (start * scale, take * scale);
        let (rise, fall) = (index > 0, index + 1 < total);
        let env: Vec<f32> = (0..n).map(|i| envelope(i, n, ramp, rise, fall)).collect();
        for (row, a) in rows.iter().zip(acc.iter_mut()) {
            for i in 0..n {
                a[o0 + i] += env[i] * row[i];
            }
        }
        for i in 0..n {
            weight[o0 + i] += env[i];
        }
    }
    for a in acc.iter_mut() {
        for (v, w) in a.iter_mut().zip(&weight) {
            *v /= *w;
        }
    }
    let flat: Vec<f32> = acc.concat();
    Ok(Tensor::from_vec(
        flat,
        (b, out_channels, out_len),
        x.device(),
    )?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audio::sinc;

    /// A linear sine sweep from 50 Hz to 12 kHz at 48 kHz: every sample differs from its neighbour.
    fn sweep(n: usize) -> Vec<f32> {
        let (rate, f0, f1) = (48_000.0, 50.0, 12_000.0);
        let dur = n as f64 / rate;
        (0..n)
            .map(|i| {
                let t = i as f64 / rate;
                (0.5 * (2.0 * std::f64::consts::PI * (f0 * t + (f1 - f0) * t * t / (2.0 * dur)))
                    .sin()) as f32
            })
            .collect()
    }

    #[test]
    fn windows_cover_the_input_with_at_least_the_overlap() {
        assert_eq!(window_starts(100, 100, 10).unwrap(), vec![0]);
        assert_eq!(window_starts(50, 100, 10).unwrap(), vec![0]);
        for (len, w, o) in [
            (1000, 100, 10),
            (1001, 100, 30),
            (101, 100, 99),
            (5000, 1024, 256),
        ] {
            let s = window_starts(len, w, o).unwrap();
            assert_eq!(s[0], 0);
            assert_eq!(*s.last().unwrap() + w, len);
            for p in s.windows(2) {
                assert!(p[1] > p[0] && p[0] + w >= p[1] + o, "{len} {w} {o}: {s:?}");
            }
        }
        assert!(window_starts(10, 8, 8).is_err());
    }

    #[test]
    fn a_long_sweep_through_an_identity_model_comes_back_without_seams() {
        let x = sweep(200_000);
        let t = Tensor::from_vec(x.clone(), (1, 1, x.len()), &Device::Cpu).unwrap();
        let mut calls = 0;
        let y = process_in_windows(&t, 16_384, 2048, 1, |w, info| {
            calls += 1;
            assert_eq!(info.total, 14);
            Ok(w.clone())
        })
        .unwrap();
        assert_eq!(calls, 14);
        let y = y.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let worst = x
            .iter()
            .zip(&y)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        assert!(worst < 1e-6, "identity through windows differs by {worst}");
        // No sample-to-sample jump larger than the sweep's own largest step.
        let step = |v: &[f32]| {
            v.windows(2)
                .map(|p| (p[1] - p[0]).abs())
                .fold(0f32, f32::max)
        };
        assert!(step(&y) <= step(&x) + 1e-6);
    }

    #[test]
    fn differing_windows_blend_smoothly() {
        // Each window's "model" adds its own offset: joins must ramp, never jump.
        let t = Tensor::zeros((1, 1, 50_000), candle_core::DType::F32, &Device::Cpu).unwrap();
        let y = process_in_windows(&t, 8192, 1024, 1, |w, info| {
            Ok((w + (info.index % 2) as f64)?)
        })
        .unwrap();
        let y = y.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let jump = y
            .windows(2)
            .map(|p| (p[1] - p[0]).abs())
            .fold(0f32, f32::max);
        // A sin² ramp over 1024 samples moves at most pi/2/1024 per sample.
        assert!(jump < 1.6e-3, "largest step {jump}");
        assert_eq!(y[0], 0.0);
        assert!(y.contains(&1.0));
    }

    #[test]
    fn a_scaling_model_is_aligned_in_the_output_domain() {
        // Sinc-upsampling window by window matches upsampling the whole signal away from the
        // zero-padded ends of each window's filter.
        let x = sweep(30_000);
        let t = Tensor::from_vec(x, (1, 1, 30_000), &Device::Cpu).unwrap();
        let whole = sinc::upsample(&t, 2)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        let win = process_in_windows(&t, 4096, 1024, 2, |w, _| sinc::upsample(w, 2))
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        assert_eq!(win.len(), 60_000);
        let worst = whole[100..59_900]
            .iter()
            .zip(&win[100..59_900])
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        assert!(worst < 1e-5, "windowed upsampling differs by {worst}");
    }

    #[test]
    fn a_model_returning_the_wrong_length_is_an_error() {
        let t = Tensor::zeros((1, 1, 1000), candle_core::DType::F32, &Device::Cpu).unwrap();
        assert!(process_in_windows(&t, 256, 32, 2, |w, _| Ok(w.clone())).is_err());
    }
}
