//! Short-time Fourier transform for the evaluation metrics and spectrogram images: periodic Hann
//! window, centred frames with reflect padding (the conventions of `torch.stft(center=True,
//! pad_mode="reflect")`), computed in f64 with realfft.

use crate::{Error, Result};
use realfft::RealFftPlanner;

/// Power spectrogram `|X|^2`: one `Vec` of `n_fft / 2 + 1` bins per frame, `1 + len / hop` frames.
///
/// Needs `len > n_fft / 2` (reflect padding cannot reach further than the signal), `n_fft` even.
pub fn power_spectrogram(x: &[f32], n_fft: usize, hop: usize) -> Result<Vec<Vec<f64>>> {
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
    let window: Vec<f64> = (0..n_fft)
        .map(|i| 0.5 - 0.5 * (2.0 * std::f64::consts::PI * i as f64 / n_fft as f64).cos())
        .collect();
    let fft = RealFftPlanner::<f64>::new().plan_fft_forward(n_fft);
    let mut input = fft.make_input_vec();
    let mut spectrum = fft.make_output_vec();
    let frames = 1 + n / hop;
    let mut out = Vec::with_capacity(frames);
    for f in 0..frames {
        let s = f * hop;
        for (i, v) in input.iter_mut().enumerate() {
            *v = padded[s + i] * window[i];
        }
        fft.process(&mut input, &mut spectrum)
            .map_err(|e| Error::input("stft", e.to_string()))?;
        out.push(spectrum.iter().map(|c| c.norm_sqr()).collect());
    }
    Ok(out)
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
