//! Upsampling quality metrics of the project's evaluation (issue 11): log-spectral distance over all
//! bins, above and below the input's Nyquist frequency, and SNR. Settings fixed: STFT n_fft 2048,
//! hop 512, periodic Hann, centred reflect padding, power clamped at 1e-8, log10.

use crate::audio::stft::power_spectrogram;
use crate::audio::AudioClip;
use crate::{Error, Result};

pub use crate::audio::stft::{HOP, N_FFT};
/// Floor of the power before the logarithm.
pub const POWER_FLOOR: f64 = 1e-8;

/// The metrics of one clip (means over channels for multi-channel clips).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Metrics {
    /// Log-spectral distance over all bins (decades of power).
    pub lsd: f64,
    /// LSD over bins `k >= (n_fft/2) / factor`, at or above the input's Nyquist frequency.
    pub lsd_hf: f64,
    /// LSD over bins below the input's Nyquist frequency.
    pub lsd_lf: f64,
    /// Signal-to-noise ratio in dB, `10 log10(sum ref^2 / sum (ref - est)^2)` (infinite when equal).
    pub snr_db: f64,
}

/// First bin at or above the input Nyquist of an upsampling by `factor`.
pub fn hf_start_bin(factor: usize) -> usize {
    (N_FFT / 2).div_ceil(factor.max(1))
}

fn log_power(x: &[f32]) -> Result<Vec<Vec<f64>>> {
    Ok(power_spectrogram(x, N_FFT, HOP)?
        .into_iter()
        .map(|f| f.into_iter().map(|p| p.max(POWER_FLOOR).log10()).collect())
        .collect())
}

/// Mean over frames of the RMS over bins `range` of the log-power difference.
fn lsd_over(a: &[Vec<f64>], b: &[Vec<f64>], range: std::ops::Range<usize>) -> f64 {
    if range.is_empty() {
        return 0.0;
    }
    let per_frame = a.iter().zip(b).map(|(fa, fb)| {
        let s: f64 = range.clone().map(|k| (fa[k] - fb[k]).powi(2)).sum();
        (s / range.len() as f64).sqrt()
    });
    per_frame.sum::<f64>() / a.len() as f64
}

/// SNR in dB of `estimate` against `reference`.
pub fn snr_db(reference: &[f32], estimate: &[f32]) -> f64 {
    let (mut sig, mut err) = (0f64, 0f64);
    for (r, e) in reference.iter().zip(estimate) {
        sig += (*r as f64).powi(2);
        err += (*r as f64 - *e as f64).powi(2);
    }
    10.0 * (sig / err).log10()
}

/// All metrics of one mono signal; `factor` places the LSD-HF / LSD-LF split.
pub fn signal_metrics(reference: &[f32], estimate: &[f32], factor: usize) -> Result<Metrics> {
    if reference.len() != estimate.len() {
        return Err(Error::input(
            "estimate",
            format!(
                "{} samples, the reference has {}",
                estimate.len(),
                reference.len()
            ),
        ));
    }
    let (a, b) = (log_power(reference)?, log_power(estimate)?);
    let bins = N_FFT / 2 + 1;
    let cut = hf_start_bin(factor);
    Ok(Metrics {
        lsd: lsd_over(&a, &b, 0..bins),
        lsd_hf: lsd_over(&a, &b, cut..bins),
        lsd_lf: lsd_over(&a, &b, 0..cut),
        snr_db: snr_db(reference, estimate),
    })
}

/// Metrics of a clip, averaged over its channels; the clips must match in rate, channels, length.
pub fn clip_metrics(reference: &AudioClip, estimate: &AudioClip, factor: usize) -> Result<Metrics> {
    if reference.sample_rate() != estimate.sample_rate()
        || reference.num_channels() != estimate.num_channels()
    {
        return Err(Error::input(
            "estimate",
            "rate or channel count differs from the reference",
        ));
    }
    let mut sum = Metrics {
        lsd: 0.0,
        lsd_hf: 0.0,
        lsd_lf: 0.0,
        snr_db: 0.0,
    };
    for (r, e) in reference.channels().iter().zip(estimate.channels()) {
        let m = signal_metrics(r, e, factor)?;
        sum.lsd += m.lsd;
        sum.lsd_hf += m.lsd_hf;
        sum.lsd_lf += m.lsd_lf;
        sum.snr_db += m.snr_db;
    }
    let n = reference.num_channels() as f64;
    Ok(Metrics {
        lsd: sum.lsd / n,
        lsd_hf: sum.lsd_hf / n,
        lsd_lf: sum.lsd_lf / n,
        snr_db: sum.snr_db / n,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Deterministic broadband test signal (an LCG), amplitude about 0.5.
    fn noise(n: usize) -> Vec<f32> {
        let mut s = 12345u64;
        (0..n)
            .map(|_| {
                s = s
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                (s >> 40) as f32 / (1u64 << 24) as f32 - 0.5
            })
            .collect()
    }

    #[test]
    fn identity_scores_zero() {
        let x = noise(8192);
        let m = signal_metrics(&x, &x, 4).unwrap();
        assert_eq!((m.lsd, m.lsd_hf, m.lsd_lf), (0.0, 0.0, 0.0));
        assert!(m.snr_db.is_infinite());
    }

    #[test]
    fn doubling_the_amplitude_gives_log10_four_in_every_band() {
        let x = noise(8192);
        let y: Vec<f32> = x.iter().map(|v| 2.0 * v).collect();
        let m = signal_metrics(&x, &y, 4).unwrap();
        let l4 = 4f64.log10();
        for v in [m.lsd, m.lsd_hf, m.lsd_lf] {
            assert!((v - l4).abs() < 1e-12, "{v} vs {l4}");
        }
        // The error equals the reference: 0 dB.
        assert!(m.snr_db.abs() < 1e-9);
    }

    #[test]
    fn an_empty_high_band_shows_in_lsd_hf_not_lsd_lf() {
        // The reference's sinc down-then-up round trip keeps the band below the input Nyquist and
        // empties the band above it.
        use candle_core::{Device, Tensor};
        let x = noise(16384);
        let t = Tensor::from_vec(x.clone(), (1, 1, x.len()), &Device::Cpu).unwrap();
        let y = crate::audio::sinc::down_up(&t, 4)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        let m = signal_metrics(&x, &y, 4).unwrap();
        // Measured: LSD-HF 7.82 (stop band about 8 decades down), LSD-LF 0.29 (the sinc's wide
        // transition band just below the cut-off), SNR 1.2 dB (white noise loses 3/4 of its power).
        assert!(m.lsd_hf > 5.0, "empty high band scores {}", m.lsd_hf);
        assert!(m.lsd_lf < 0.5, "kept low band scores {}", m.lsd_lf);
        assert!(
            (m.snr_db - 10.0 * (4.0f64 / 3.0).log10()).abs() < 0.3,
            "snr {}",
            m.snr_db
        );
        assert_eq!(hf_start_bin(4), 256);
        assert_eq!(hf_start_bin(8), 128);
    }

    #[test]
    fn mismatched_lengths_are_an_error() {
        assert!(signal_metrics(&noise(4096), &noise(4000), 2).is_err());
    }
}
