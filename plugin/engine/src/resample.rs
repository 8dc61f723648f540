//! Sample-rate conversion between the host rate and the model rate (worker thread only).
//!
//! One function, [`resample`]: a Hann-windowed sinc interpolator whose cutoff is the lower of the
//! two Nyquist frequencies, so downsampling is band-limited. It allocates and is not for the
//! audio thread.

use crate::buffer::AudioBuf;

/// Half-width of the sinc kernel, in input samples at the narrower band.
const HALF_TAPS: f64 = 16.0;

/// `buf` converted to `to_rate` Hz; the length scales by `to_rate / buf.rate` (rounded).
pub fn resample(buf: &AudioBuf, to_rate: f64) -> AudioBuf {
    let ratio = to_rate / buf.rate;
    if (ratio - 1.0).abs() < 1e-12 || buf.is_empty() {
        let mut same = buf.clone();
        same.rate = to_rate;
        return same;
    }
    let out_len = (buf.len() as f64 * ratio).round() as usize;
    let cutoff = ratio.min(1.0);
    let half = HALF_TAPS / cutoff;
    let left = convert(buf.channel(0), out_len, ratio, cutoff, half);
    let right = convert(buf.channel(1), out_len, ratio, cutoff, half);
    let mut out = AudioBuf::from_channels(left, right, to_rate);
    out.anchor = (buf.anchor as f64 * ratio).round() as i64;
    out
}

/// Kernel table resolution: entries per input sample of distance.
const TABLE_STEPS: f64 = 1024.0;

fn convert(x: &[f32], out_len: usize, ratio: f64, cutoff: f64, half: f64) -> Vec<f32> {
    // The windowed-sinc kernel k(d) = cutoff * sinc(cutoff d) * hann(d / half) for d in 0..=half,
    // tabulated once (it is even) and linearly interpolated.
    let size = (half * TABLE_STEPS).ceil() as usize + 2;
    let table: Vec<f32> = (0..size)
        .map(|i| {
            let d = i as f64 / TABLE_STEPS;
            if d > half {
                0.0
            } else {
                let w = 0.5 + 0.5 * (std::f64::consts::PI * d / half).cos();
                (cutoff * sinc(cutoff * d) * w) as f32
            }
        })
        .collect();
    let kernel = |d: f64| {
        let pos = d.abs() * TABLE_STEPS;
        let i = pos as usize;
        match (table.get(i), table.get(i + 1)) {
            (Some(&a), Some(&b)) => a + (b - a) * (pos - i as f64) as f32,
            _ => 0.0,
        }
    };
    let n_in = x.len() as i64;
    (0..out_len)
        .map(|n| {
            let t = n as f64 / ratio;
            let lo = ((t - half).ceil() as i64).max(0);
            let hi = ((t + half).floor() as i64).min(n_in - 1);
            let mut acc = 0.0f32;
            for k in lo..=hi {
                acc += x[k as usize] * kernel(t - k as f64);
            }
            acc
        })
        .collect()
}

fn sinc(x: f64) -> f64 {
    if x.abs() < 1e-12 {
        1.0
    } else {
        let px = std::f64::consts::PI * x;
        px.sin() / px
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sine(freq: f64, rate: f64, len: usize) -> AudioBuf {
        let s: Vec<f32> = (0..len)
            .map(|i| (2.0 * std::f64::consts::PI * freq * i as f64 / rate).sin() as f32)
            .collect();
        AudioBuf::from_channels(s.clone(), s, rate)
    }

    #[test]
    fn a_sine_below_both_nyquists_survives_a_round_trip_of_rates() {
        let x = sine(1000.0, 48_000.0, 4800);
        let y = resample(&x, 44_100.0);
        assert_eq!(y.len(), 4410);
        let expect = sine(1000.0, 44_100.0, 4410);
        // Away from the edges (where the kernel is cut) the error is the kernel's ripple.
        let err = y.channel(0)[200..4200]
            .iter()
            .zip(&expect.channel(0)[200..4200])
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        assert!(err < 2e-3, "max error {err}");
    }

    #[test]
    fn a_sine_above_the_target_nyquist_is_removed() {
        let x = sine(12_000.0, 48_000.0, 4800);
        let y = resample(&x, 16_000.0);
        let rms = (y.channel(0)[100..1500].iter().map(|v| v * v).sum::<f32>() / 1400.0).sqrt();
        assert!(rms < 0.02, "aliased rms {rms}");
    }
}
