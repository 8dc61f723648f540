//! Complex STFT and its overlap-add inverse at the evaluation's settings (n_fft 2048, hop 512,
//! periodic Hann, centred reflect padding; `torch.stft` / `torch.istft` conventions), for band
//! extension: analyse a signal, reshape bins, resynthesise.

use crate::{Error, Result};
use realfft::num_complex::Complex;
use realfft::RealFftPlanner;

/// STFT size (samples).
pub const N_FFT: usize = 2048;
/// STFT hop (samples).
pub const HOP: usize = 512;
/// Bins per frame, `N_FFT / 2 + 1`.
pub const BINS: usize = N_FFT / 2 + 1;

fn hann() -> Vec<f64> {
    (0..N_FFT)
        .map(|i| 0.5 - 0.5 * (2.0 * std::f64::consts::PI * i as f64 / N_FFT as f64).cos())
        .collect()
}

/// Complex spectrogram of `x`: `1 + len / HOP` frames of [`BINS`] bins (needs `len > N_FFT / 2`).
pub fn stft(x: &[f32]) -> Result<Vec<Vec<Complex<f64>>>> {
    let n = x.len();
    let pad = N_FFT / 2;
    if n <= pad {
        return Err(Error::input(
            "stft",
            format!("{n} samples are too short for centred frames of {N_FFT}"),
        ));
    }
    let padded: Vec<f64> = (0..n + 2 * pad)
        .map(|i| {
            let j = i as isize - pad as isize;
            let k = if j < 0 {
                -j
            } else if j >= n as isize {
                2 * (n as isize - 1) - j
            } else {
                j
            };
            x[k as usize] as f64
        })
        .collect();
    let w = hann();
    let fft = RealFftPlanner::<f64>::new().plan_fft_forward(N_FFT);
    let mut input = fft.make_input_vec();
    let frames = 1 + n / HOP;
    let mut out = Vec::with_capacity(frames);
    for f in 0..frames {
        let s = f * HOP;
        for (i, v) in input.iter_mut().enumerate() {
            *v = padded[s + i] * w[i];
        }
        let mut spec = fft.make_output_vec();
        fft.process(&mut input, &mut spec)
            .map_err(|e| Error::input("stft", e.to_string()))?;
        out.push(spec);
    }
    Ok(out)
}

/// Inverse of [`stft`] for a signal of `len` samples: windowed overlap-add divided by the summed
/// squared window (exact reconstruction of an unmodified spectrogram).
pub fn istft(spec: &[Vec<Complex<f64>>], len: usize) -> Result<Vec<f32>> {
    let pad = N_FFT / 2;
    let w = hann();
    let fft = RealFftPlanner::<f64>::new().plan_fft_inverse(N_FFT);
    let total = (spec.len().saturating_sub(1)) * HOP + N_FFT;
    let mut acc = vec![0f64; total.max(len + 2 * pad)];
    let mut norm = vec![0f64; acc.len()];
    let mut time = fft.make_output_vec();
    for (f, frame) in spec.iter().enumerate() {
        if frame.len() != BINS {
            return Err(Error::input(
                "istft",
                format!("a frame of {} bins", frame.len()),
            ));
        }
        let mut s = frame.clone();
        // A real signal's DC and Nyquist bins are real.
        s[0].im = 0.0;
        s[BINS - 1].im = 0.0;
        fft.process(&mut s, &mut time)
            .map_err(|e| Error::input("istft", e.to_string()))?;
        let o = f * HOP;
        for i in 0..N_FFT {
            acc[o + i] += time[i] / N_FFT as f64 * w[i];
            norm[o + i] += w[i] * w[i];
        }
    }
    Ok((0..len)
        .map(|i| {
            let d = norm[i + pad];
            if d > 1e-10 {
                (acc[i + pad] / d) as f32
            } else {
                0.0
            }
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn istft_inverts_stft() {
        let mut s = 7u64;
        let x: Vec<f32> = (0..10_000)
            .map(|_| {
                s = s.wrapping_mul(6364136223846793005).wrapping_add(1);
                (s >> 40) as f32 / (1u64 << 24) as f32 - 0.5
            })
            .collect();
        let y = istft(&stft(&x).unwrap(), x.len()).unwrap();
        let err = x
            .iter()
            .zip(&y)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        assert!(err < 1e-5, "max reconstruction error {err}");
    }

    #[test]
    fn power_matches_the_metrics_stft() {
        let x: Vec<f32> = (0..6000).map(|i| ((i as f32) * 0.37).sin() * 0.3).collect();
        let a = stft(&x).unwrap();
        let b = crate::audio::stft::power_spectrogram(&x, N_FFT, HOP).unwrap();
        for (fa, fb) in a.iter().zip(&b) {
            for (ca, pb) in fa.iter().zip(fb) {
                assert!((ca.norm_sqr() - pb).abs() <= 1e-9 * (1.0 + pb));
            }
        }
    }
}
