//! Upsampling baselines that cost nothing, against which a learned upsampler is measured
//! (issue 11): the reference's sinc `upsample`, rubato's best resampler, linear interpolation, and
//! noise fill (sinc upsample plus Gaussian noise above the input's Nyquist frequency, shaped per
//! STFT frame at the level of the top of the input band).

use crate::audio::{resample_clip, AudioClip};
use crate::models::bandext::synth::{band_log, brickwall_highpass, hf_bands, shaped_noise};
use crate::models::bandext::{cut_bin, sinc_up, stft::HOP, stft::N_FFT};
use crate::noise::NoiseSource;
use crate::{Error, Result};
use candle_core::Device;

/// A baseline upsampler.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Baseline {
    /// The reference's windowed-sinc `upsample` (empty above the input's Nyquist).
    Sinc,
    /// rubato's synchronous FFT resampler ([`resample_clip`]).
    Rubato,
    /// Linear interpolation (its aliased images fill the high band).
    Linear,
    /// Sinc plus shaped noise above the input's Nyquist ([`noise_fill`]).
    NoiseFill,
}

impl Baseline {
    /// All baselines, in table order.
    pub const ALL: [Baseline; 4] = [
        Baseline::Sinc,
        Baseline::Rubato,
        Baseline::Linear,
        Baseline::NoiseFill,
    ];

    /// Row name in tables.
    pub fn name(self) -> &'static str {
        match self {
            Self::Sinc => "sinc (reference upsample)",
            Self::Rubato => "rubato FftFixedIn",
            Self::Linear => "linear interpolation",
            Self::NoiseFill => "noise fill",
        }
    }

    /// Upsamples every channel of `clip` by `factor` to exactly `len * factor` samples.
    pub fn upsample(
        self,
        clip: &AudioClip,
        factor: usize,
        noise: &mut dyn NoiseSource,
    ) -> Result<AudioClip> {
        if factor == 0 {
            return Err(Error::input("factor", "must be positive"));
        }
        let rate = clip.sample_rate() * factor as u32;
        let n = clip.len() * factor;
        let chans: Vec<Vec<f32>> = match self {
            Self::Rubato => resample_clip(clip, rate)?
                .into_channels()
                .into_iter()
                .map(|mut c| {
                    c.resize(n, 0.0);
                    c
                })
                .collect(),
            _ => clip
                .channels()
                .iter()
                .map(|c| match self {
                    Self::Sinc => sinc_up(c, factor),
                    Self::Linear => Ok(linear(c, factor)),
                    _ => noise_fill(c, factor, noise),
                })
                .collect::<Result<_>>()?,
        };
        AudioClip::new(rate, chans)
    }
}

/// Linear interpolation of one channel: `y[i] = lerp(x[i / f], x[i / f + 1])`, holding the last
/// sample; `x.len() * factor` samples.
pub fn linear(x: &[f32], factor: usize) -> Vec<f32> {
    let n = x.len();
    (0..n * factor)
        .map(|i| {
            let (j, r) = (i / factor, (i % factor) as f32 / factor as f32);
            let a = x[j];
            let b = if j + 1 < n { x[j + 1] } else { a };
            a + (b - a) * r
        })
        .collect()
}

/// Noise fill's spectral slope above the cut-off: decades of power per octave (-10 dB/octave).
/// Chosen as the best of -0.7, -1, -1.3 and flat on six held-out music clips: the strongest
/// noise fill we found, not one tuned to lose.
pub const SLOPE: f64 = 1.0;

/// Noise fill of one channel: the sinc upsample, plus Gaussian noise above the input's Nyquist
/// frequency, shaped per STFT frame (n_fft 2048, hop 512, bands of 16 bins): its mean log10 power
/// is the frame's mean log10 power over the top of the input band below the sinc's transition
/// band (bins `[0.75 c, 0.85 c)`, `c` the cut-off bin) extrapolated at [`SLOPE`] decades per
/// octave from the centre of those bins; then exactly high-passed at the cut-off.
pub fn noise_fill(lo: &[f32], factor: usize, noise: &mut dyn NoiseSource) -> Result<Vec<f32>> {
    let up = sinc_up(lo, factor)?;
    if up.len() <= N_FFT / 2 || factor < 2 {
        return Ok(up);
    }
    let cut = cut_bin(factor);
    let top = ((cut as f64 * 0.85) as usize).max(2);
    let from = ((cut as f64 * 0.75) as usize).clamp(1, top - 1);
    let bands = hf_bands(cut, 16);
    let p = crate::audio::stft::power_spectrogram(&up, N_FFT, HOP)?;
    let target: Vec<Vec<f64>> = p
        .iter()
        .map(|f| {
            let l = band_log(f[from..top].iter().copied(), top - from);
            let c0 = (from + top) as f64 / 2.0;
            bands
                .iter()
                .map(|&(s, e)| l - SLOPE * (((s + e) as f64 / 2.0) / c0).log2())
                .collect()
        })
        .collect();
    let white = noise.randn(&[up.len()], &Device::Cpu)?.to_vec1::<f32>()?;
    let fill = brickwall_highpass(&shaped_noise(&white, &bands, &target)?, 1.0 / factor as f64)?;
    Ok(up.iter().zip(&fill).map(|(a, b)| a + b).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eval::metrics::signal_metrics;
    use crate::noise::SeededNoise;

    #[test]
    fn linear_interpolates_between_samples() {
        assert_eq!(
            linear(&[0.0, 1.0, 3.0], 2),
            vec![0.0, 0.5, 1.0, 2.0, 3.0, 3.0]
        );
        assert_eq!(linear(&[2.0], 3), vec![2.0; 3]);
    }

    #[test]
    fn every_baseline_gives_factor_times_the_length() {
        let x: Vec<f32> = (0..3001).map(|i| (i as f32 * 0.05).sin() * 0.5).collect();
        let clip = AudioClip::new(12_000, vec![x.clone(), x]).unwrap();
        for b in Baseline::ALL {
            let y = b.upsample(&clip, 4, &mut SeededNoise::new(0)).unwrap();
            assert_eq!(
                (y.len(), y.sample_rate(), y.num_channels()),
                (12_004, 48_000, 2),
                "{b:?}"
            );
        }
    }

    #[test]
    fn noise_fill_extrapolates_at_its_slope_and_keeps_the_low_band() {
        // White noise truth: the fill's level relative to it must fall by SLOPE decades per octave.
        let truth = SeededNoise::new(4)
            .randn(&[48_000], &Device::Cpu)
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        let lo = crate::models::bandext::sinc_down(&truth, 4).unwrap();
        let nf = noise_fill(&lo, 4, &mut SeededNoise::new(5)).unwrap();
        let sinc = sinc_up(&lo, 4).unwrap();
        let p = crate::audio::stft::power_spectrogram(&nf, N_FFT, HOP).unwrap();
        let level = |s: usize| {
            p.iter()
                .map(|f| band_log(f[s..s + 16].iter().copied(), 16))
                .sum::<f64>()
                / p.len() as f64
        };
        // Band centres 407.5 and 807.5: log2(807.5 / 407.5) = 0.987 octaves apart.
        let drop = level(400) - level(800);
        let want = SLOPE * (807.5f64 / 407.5).log2();
        assert!((drop - want).abs() < 0.1, "drop {drop} vs {want}");
        let (a, b) = (
            signal_metrics(&truth, &nf, 4).unwrap(),
            signal_metrics(&truth, &sinc, 4).unwrap(),
        );
        assert!(a.lsd_hf < 0.5 * b.lsd_hf, "{} vs {}", a.lsd_hf, b.lsd_hf);
        assert!((a.lsd_lf - b.lsd_lf).abs() < 0.01);
    }
}
