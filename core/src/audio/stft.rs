//! The library's short-time Fourier transform (evaluation metrics, spectrogram images, band
//! extension): periodic Hann window, centred frames with reflect padding (the conventions of
//! `torch.stft(center=True, pad_mode="reflect")` / `torch.istft`), computed in f64 with realfft.

use crate::{Error, Result};
use realfft::num_complex::Complex;
use realfft::RealFftPlanner;

/// STFT size of the project's analyses (metrics, band extension), samples.
pub const N_FFT: usize = 2048;
/// STFT hop of the project's analyses, samples.
pub const HOP: usize = 512;

/// The periodic Hann window of `n` samples.
fn hann(n: usize) -> Vec<f64> {
    (0..n)
        .map(|i| 0.5 - 0.5 * (2.0 * std::f64::consts::PI * i as f64 / n as f64).cos())
        .collect()
}

/// Calls `each` with the `n_fft / 2 + 1` complex bins of every centred, reflect-padded,
/// Hann-windowed frame of `x`, in order (`1 + len / hop` frames): the one frame loop of the
/// library. Needs `len > n_fft / 2` (reflect padding cannot reach further than the signal) and an
/// even `n_fft`.
pub fn for_each_frame(
    x: &[f32],
    n_fft: usize,
    hop: usize,
    mut each: impl FnMut(&[Complex<f64>]),
) -> Result<()> {
    if n_fft < 2 || !n_fft.is_multiple_of(2) || hop == 0 {
        return Err(Error::input(
            "stft",
            format!("need an even n_fft >= 2 and hop > 0, got {n_fft} and {hop}"),
        ));
    }
    let pad = n_fft / 2;
    if x.len() <= pad {
        return Err(Error::input(
            "stft",
            format!(
                "a signal of {} samples is too short for centred frames of {n_fft}",
                x.len()
            ),
        ));
    }
    let n = x.len();
    // Reflect padding: x[pad], ..., x[1] | x | x[n-2], ..., x[n-1-pad].
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
    let window = hann(n_fft);
    let fft = RealFftPlanner::<f64>::new().plan_fft_forward(n_fft);
    let mut input = fft.make_input_vec();
    let mut spectrum = fft.make_output_vec();
    for f in 0..1 + n / hop {
        let s = f * hop;
        for (i, v) in input.iter_mut().enumerate() {
            *v = padded[s + i] * window[i];
        }
        fft.process(&mut input, &mut spectrum)
            .map_err(|e| Error::input("stft", e.to_string()))?;
        each(&spectrum);
    }
    Ok(())
}

/// Power spectrogram `|X|^2`: one `Vec` of `n_fft / 2 + 1` bins per frame, `1 + len / hop` frames.
///
/// Needs `len > n_fft / 2` (reflect padding cannot reach further than the signal), `n_fft` even.
pub fn power_spectrogram(x: &[f32], n_fft: usize, hop: usize) -> Result<Vec<Vec<f64>>> {
    let mut out = Vec::with_capacity(1 + x.len() / hop.max(1));
    for_each_frame(x, n_fft, hop, |s| {
        out.push(s.iter().map(|c| c.norm_sqr()).collect())
    })?;
    Ok(out)
}

/// Complex spectrogram: `1 + len / hop` frames of `n_fft / 2 + 1` bins.
pub fn stft(x: &[f32], n_fft: usize, hop: usize) -> Result<Vec<Vec<Complex<f64>>>> {
    let mut out = Vec::with_capacity(1 + x.len() / hop.max(1));
    for_each_frame(x, n_fft, hop, |s| out.push(s.to_vec()))?;
    Ok(out)
}

/// Inverse of [`stft`] for a signal of `len` samples: windowed overlap-add divided by the summed
/// squared window (exact reconstruction of an unmodified spectrogram).
pub fn istft(spec: &[Vec<Complex<f64>>], n_fft: usize, hop: usize, len: usize) -> Result<Vec<f32>> {
    if n_fft < 2 || !n_fft.is_multiple_of(2) || hop == 0 {
        return Err(Error::input(
            "istft",
            format!("need an even n_fft >= 2 and hop > 0, got {n_fft} and {hop}"),
        ));
    }
    let (pad, bins) = (n_fft / 2, n_fft / 2 + 1);
    let w = hann(n_fft);
    let fft = RealFftPlanner::<f64>::new().plan_fft_inverse(n_fft);
    let total = (spec.len().saturating_sub(1)) * hop + n_fft;
    let mut acc = vec![0f64; total.max(len + 2 * pad)];
    let mut norm = vec![0f64; acc.len()];
    let mut time = fft.make_output_vec();
    for (f, frame) in spec.iter().enumerate() {
        if frame.len() != bins {
            return Err(Error::input(
                "istft",
                format!("a frame of {} bins, expected {bins}", frame.len()),
            ));
        }
        let mut s = frame.clone();
        // A real signal's DC and Nyquist bins are real.
        s[0].im = 0.0;
        s[bins - 1].im = 0.0;
        fft.process(&mut s, &mut time)
            .map_err(|e| Error::input("istft", e.to_string()))?;
        let o = f * hop;
        for i in 0..n_fft {
            acc[o + i] += time[i] / n_fft as f64 * w[i];
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
    fn a_bin_centred_sine_peaks_in_its_bin_with_the_hann_gain() {
        // Frequency of bin 64 at n_fft 512: the periodic Hann gives |X| = A N / 4 there.
        let (n_fft, k, a) = (512usize, 64usize, 0.5f64);
        let x: Vec<f32> = (0..4096)
            .map(|i| {
                (a * (2.0 * std::f64::consts::PI * k as f64 * i as f64 / n_fft as f64).cos()) as f32
            })
            .collect();
        let s = power_spectrogram(&x, n_fft, 128).unwrap();
        assert_eq!(s.len(), 1 + 4096 / 128);
        assert_eq!(s[0].len(), n_fft / 2 + 1);
        let mid = &s[s.len() / 2];
        let expect = (a * n_fft as f64 / 4.0).powi(2);
        assert!(
            (mid[k] - expect).abs() / expect < 1e-6,
            "{} vs {expect}",
            mid[k]
        );
        assert!(mid[k + 2] < 1e-12 * expect && mid[k - 2] < 1e-12 * expect);
    }

    #[test]
    fn rejects_signals_shorter_than_half_a_frame() {
        assert!(power_spectrogram(&[0.0; 256], 512, 128).is_err());
        assert!(power_spectrogram(&[0.0; 1024], 511, 128).is_err());
    }
}
