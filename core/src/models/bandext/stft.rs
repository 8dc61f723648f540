//! Complex STFT and its overlap-add inverse at the analysis settings (n_fft 2048, hop 512), for
//! band extension: analyse a signal, reshape bins, resynthesise. The transform is the library's
//! one ([`crate::audio::stft`]).

use crate::Result;
use realfft::num_complex::Complex;

pub use crate::audio::stft::{HOP, N_FFT};
/// Bins per frame, `N_FFT / 2 + 1`.
pub const BINS: usize = N_FFT / 2 + 1;

/// Complex spectrogram of `x`: `1 + len / HOP` frames of [`BINS`] bins (needs `len > N_FFT / 2`).
pub fn stft(x: &[f32]) -> Result<Vec<Vec<Complex<f64>>>> {
    crate::audio::stft::stft(x, N_FFT, HOP)
}

/// Inverse of [`stft`] for a signal of `len` samples.
pub fn istft(spec: &[Vec<Complex<f64>>], len: usize) -> Result<Vec<f32>> {
    crate::audio::stft::istft(spec, N_FFT, HOP, len)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audio::stft;

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
        let b = stft::power_spectrogram(&x, N_FFT, HOP).unwrap();
        for (fa, fb) in a.iter().zip(&b) {
            for (ca, pb) in fa.iter().zip(fb) {
                assert!((ca.norm_sqr() - pb).abs() <= 1e-9 * (1.0 + pb));
            }
        }
    }
}
