//! Band synthesis for band extension: Gaussian noise whose STFT band levels follow a target
//! (mean log10 power per band and frame, the quantity LSD compares), and an exact FFT high-pass
//! that keeps the known band of the input untouched (data consistency).

use super::stft::{istft, stft, BINS};
use crate::{Error, Result};
use realfft::RealFftPlanner;

/// Power floor before the logarithm (the metrics' floor).
pub const POWER_FLOOR: f64 = 1e-8;

/// Bands `[start, end)` of `width` bins from bin `cut` to the last bin (the last band may be wider).
pub fn hf_bands(cut: usize, width: usize) -> Vec<(usize, usize)> {
    let width = width.max(1);
    let mut bands = Vec::new();
    let mut s = cut.min(BINS - 1);
    while s < BINS {
        let e = if BINS - s < 2 * width {
            BINS
        } else {
            s + width
        };
        bands.push((s, e));
        s = e;
    }
    bands
}

/// Mean over bins `band` of `log10(max(p, floor))`.
pub fn band_log(power: impl Iterator<Item = f64>, n: usize) -> f64 {
    power.map(|p| p.max(POWER_FLOOR).log10()).sum::<f64>() / n.max(1) as f64
}

/// Noise whose STFT, band by band and frame by frame, has the mean log10 power `target[f][b]` over
/// `bands`, and nothing below `bands[0].0`. `white` is standard Gaussian noise (the random draw,
/// made by the caller); `target` has one row per STFT frame of a `white.len()`-sample signal.
/// Two passes: the gains are set on the analysis of `white`, then corrected once on the analysis
/// of the resynthesised signal (overlap-add smears the first gains between frames).
pub fn shaped_noise(
    white: &[f32],
    bands: &[(usize, usize)],
    target: &[Vec<f64>],
) -> Result<Vec<f32>> {
    let len = white.len();
    let mut spec = stft(white)?;
    if spec.len() != target.len() || target.iter().any(|t| t.len() != bands.len()) {
        return Err(Error::input(
            "target",
            format!(
                "{} frames of band levels for {} STFT frames and {} bands",
                target.len(),
                spec.len(),
                bands.len()
            ),
        ));
    }
    let first = bands.first().map(|b| b.0).unwrap_or(BINS);
    for frame in spec.iter_mut() {
        for c in frame.iter_mut().take(first) {
            *c = Default::default();
        }
    }
    let mut out = Vec::new();
    for _pass in 0..2 {
        let now = if out.is_empty() {
            spec.clone()
        } else {
            stft(&out)?
        };
        for ((frame, cur), t) in spec.iter_mut().zip(&now).zip(target) {
            for (&(s, e), &level) in bands.iter().zip(t) {
                let have = band_log(cur[s..e].iter().map(|c| c.norm_sqr()), e - s);
                let g = 10f64.powf((level - have) / 2.0).min(1e6);
                for c in &mut frame[s..e] {
                    *c *= g;
                }
            }
        }
        out = istft(&spec, len)?;
    }
    Ok(out)
}

/// Per-bin log10 levels from per-band levels: piecewise linear between band centres, flat beyond
/// the first and last centre; `BINS - bands[0].0` values, starting at the first band's first bin.
pub fn bins_from_bands(bands: &[(usize, usize)], levels: &[f64]) -> Vec<f64> {
    let Some(&(start, _)) = bands.first() else {
        return Vec::new();
    };
    let centres: Vec<f64> = bands
        .iter()
        .map(|&(s, e)| (s + e - 1) as f64 / 2.0)
        .collect();
    let mut j = 0;
    (start..BINS)
        .map(|k| {
            let k = k as f64;
            while j + 1 < centres.len() && centres[j + 1] <= k {
                j += 1;
            }
            if k <= centres[0] {
                levels[0]
            } else if j + 1 >= centres.len() {
                levels[centres.len() - 1]
            } else {
                let r = (k - centres[j]) / (centres[j + 1] - centres[j]);
                levels[j] + r * (levels[j + 1] - levels[j])
            }
        })
        .collect()
}

/// A fill whose STFT power over bins `>= cut` approaches `10^target[f][k - cut]` in every bin,
/// without the random bin-to-bin fluctuation of noise: phase retrieval (Griffin and Lim, 1984),
/// `iters` rounds of keeping the target magnitude and the phase of the current signal's STFT,
/// starting from the phases of `white` (the caller's random draw). Zero below `cut` in the STFT.
pub fn phase_retrieved(
    white: &[f32],
    cut: usize,
    target: &[Vec<f64>],
    iters: usize,
) -> Result<Vec<f32>> {
    let len = white.len();
    let mut spec = stft(white)?;
    if spec.len() != target.len() || target.iter().any(|t| t.len() != BINS - cut) {
        return Err(Error::input(
            "target",
            format!(
                "{} frames of bin levels for {} STFT frames",
                target.len(),
                spec.len()
            ),
        ));
    }
    let mags: Vec<Vec<f64>> = target
        .iter()
        .map(|t| t.iter().map(|l| 10f64.powf(l / 2.0)).collect())
        .collect();
    let project = |spec: &mut Vec<Vec<realfft::num_complex::Complex<f64>>>| {
        for (frame, m) in spec.iter_mut().zip(&mags) {
            for c in frame[..cut].iter_mut() {
                *c = Default::default();
            }
            for (c, &m) in frame[cut..].iter_mut().zip(m) {
                let a = c.norm();
                *c = if a > 1e-30 {
                    *c * (m / a)
                } else {
                    realfft::num_complex::Complex::new(m, 0.0)
                };
            }
        }
    };
    project(&mut spec);
    for _ in 0..iters {
        spec = stft(&istft(&spec, len)?)?;
        project(&mut spec);
    }
    istft(&spec, len)
}

/// `x` with every DFT bin (over the whole signal) below `fraction` of its Nyquist frequency set to
/// zero: an exact, zero-phase brick-wall high-pass (`fraction` in [0, 1]).
pub fn brickwall_highpass(x: &[f32], fraction: f64) -> Result<Vec<f32>> {
    let n = x.len();
    if n < 2 {
        return Ok(vec![0.0; n]);
    }
    let mut planner = RealFftPlanner::<f64>::new();
    let fwd = planner.plan_fft_forward(n);
    let inv = planner.plan_fft_inverse(n);
    let mut input: Vec<f64> = x.iter().map(|&v| v as f64).collect();
    let mut spec = fwd.make_output_vec();
    fwd.process(&mut input, &mut spec)
        .map_err(|e| Error::input("highpass", e.to_string()))?;
    // Bin k is at k / n of the rate; Nyquist is bin n / 2.
    let stop = ((fraction.clamp(0.0, 1.0) * n as f64 / 2.0).ceil() as usize).min(spec.len());
    for c in &mut spec[..stop] {
        *c = Default::default();
    }
    if let Some(last) = spec.last_mut() {
        if n.is_multiple_of(2) {
            last.im = 0.0;
        }
    }
    let mut outv = inv.make_output_vec();
    inv.process(&mut spec, &mut outv)
        .map_err(|e| Error::input("highpass", e.to_string()))?;
    Ok(outv.iter().map(|v| (v / n as f64) as f32).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::noise::{NoiseSource, SeededNoise};
    use candle_core::Device;

    fn white(n: usize, seed: u64) -> Vec<f32> {
        let t = SeededNoise::new(seed).randn(&[n], &Device::Cpu).unwrap();
        t.to_vec1::<f32>().unwrap()
    }

    #[test]
    fn shaped_noise_hits_its_band_levels() {
        let w = white(48_000, 3);
        let bands = hf_bands(256, 16);
        let frames = 1 + w.len() / super::super::stft::HOP;
        let target: Vec<Vec<f64>> = (0..frames)
            .map(|f| {
                bands
                    .iter()
                    .enumerate()
                    .map(|(b, _)| -2.0 - 0.05 * b as f64 - 0.001 * f as f64)
                    .collect()
            })
            .collect();
        let y = shaped_noise(&w, &bands, &target).unwrap();
        let p = crate::audio::stft::power_spectrogram(&y, 2048, 512).unwrap();
        let mut worst = 0f64;
        for (pf, tf) in p.iter().zip(&target).skip(2).take(frames - 4) {
            for (&(s, e), &t) in bands.iter().zip(tf) {
                worst = worst.max((band_log(pf[s..e].iter().copied(), e - s) - t).abs());
            }
            // Overlap-add smears little below the cut (Hann side lobes).
            assert!(pf[..240].iter().all(|&v| v < 1e-3 * 10f64.powf(tf[0])));
        }
        assert!(worst < 0.25, "worst band level error {worst} decades");
    }

    #[test]
    fn brickwall_keeps_high_and_removes_low() {
        let n = 4800;
        let lo: Vec<f32> = (0..n)
            .map(|i| (2.0 * std::f64::consts::PI * 100.0 * i as f64 / n as f64).sin() as f32)
            .collect();
        let hi: Vec<f32> = (0..n)
            .map(|i| (2.0 * std::f64::consts::PI * 1500.0 * i as f64 / n as f64).sin() as f32)
            .collect();
        let x: Vec<f32> = lo.iter().zip(&hi).map(|(a, b)| a + b).collect();
        let y = brickwall_highpass(&x, 0.5).unwrap();
        let err = y
            .iter()
            .zip(&hi)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        assert!(err < 1e-4, "max error {err}, y[..4] {:?}", &y[..4]);
    }
}
