//! What the library accepts as audio, in one place: the rates, channel counts, lengths and sample
//! values every front end checks at its edge (the README's "Limits" section quotes these).

use super::AudioClip;
use crate::Result;

/// Lowest sample rate accepted anywhere (Hz).
pub const MIN_RATE: u32 = 1_000;
/// Highest sample rate accepted anywhere (Hz).
pub const MAX_RATE: u32 = 384_000;
/// Most audio channels in a file or a model.
pub const MAX_CHANNELS: usize = 8;
/// Longest audio read or written, in seconds (3 hours).
pub const MAX_SECONDS: f64 = 3.0 * 3600.0;
/// Most samples (frames x channels) held for one clip: 2^28 f32 samples, 1 GiB (decoding holds
/// the interleaved and the planar copy at once, 2 GiB).
pub const MAX_SAMPLES: usize = 1 << 28;
/// Largest sample magnitude accepted in a float file (full scale is 1; a value this large is
/// corrupt data, and its square overflows the spectral code's f32 sums).
pub const MAX_ABS_SAMPLE: f32 = 1000.0;

/// Why a value is outside a limit: the reason, which the caller wraps in its own error with the
/// file, field or argument it is about.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Beyond(pub String);

/// Refuses a rate outside [`MIN_RATE`]..=[`MAX_RATE`].
pub fn check_rate(rate: u32) -> Result<(), Beyond> {
    if (MIN_RATE..=MAX_RATE).contains(&rate) {
        return Ok(());
    }
    Err(Beyond(format!(
        "sample rate {rate} Hz is outside the supported {MIN_RATE} to {MAX_RATE} Hz"
    )))
}

/// Refuses a channel count outside 1..=[`MAX_CHANNELS`].
pub fn check_channels(channels: usize) -> Result<(), Beyond> {
    if (1..=MAX_CHANNELS).contains(&channels) {
        return Ok(());
    }
    Err(Beyond(format!(
        "{channels} channels; 1 to {MAX_CHANNELS} channels are supported"
    )))
}

/// The most frames a clip at `rate` with `channels` may hold: [`MAX_SECONDS`] of audio and at most
/// [`MAX_SAMPLES`] samples in all.
pub fn max_frames(rate: u32, channels: usize) -> usize {
    let by_time = (MAX_SECONDS * rate as f64) as usize;
    by_time.min(MAX_SAMPLES / channels.max(1))
}

/// The most frames a WAV file streamed to disk (not held in memory) may hold: [`MAX_SECONDS`] of
/// audio and what fits the RIFF format's 32-bit data size at `bytes` per sample.
pub fn max_stream_frames(rate: u32, channels: usize, bytes: usize) -> usize {
    let by_time = (MAX_SECONDS * rate as f64) as usize;
    let by_riff = (u32::MAX as usize - 64) / (channels.max(1) * bytes.max(1));
    by_time.min(by_riff)
}

/// Refuses `frames` frames at `rate` x `channels` beyond [`max_frames`].
pub fn check_length(frames: usize, rate: u32, channels: usize) -> Result<(), Beyond> {
    let max = max_frames(rate, channels);
    if frames <= max {
        return Ok(());
    }
    Err(Beyond(format!(
            "too long: {frames} frames ({:.0} s at {rate} Hz x {channels} channels); the limit is {max} frames ({:.0} s, at most {} hours and {MAX_SAMPLES} samples)",
            frames as f64 / rate.max(1) as f64,
            max as f64 / rate.max(1) as f64,
            MAX_SECONDS / 3600.0
    )))
}

/// What [`check_samples`] found (and, when repairing, changed).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SampleReport {
    /// NaN or infinite samples.
    pub non_finite: usize,
    /// Finite samples beyond [`MAX_ABS_SAMPLE`].
    pub out_of_range: usize,
}

impl SampleReport {
    /// Whether every sample was finite and in range.
    pub fn is_clean(&self) -> bool {
        self.non_finite == 0 && self.out_of_range == 0
    }
}

/// Counts the non-finite and out-of-range samples of `clip`. With `repair`, NaN becomes 0 and
/// every other bad sample is clamped to [-1, 1], and the counts say how many changed; without it a
/// bad sample is refused with the counts and the first bad position.
pub fn check_samples(clip: &mut AudioClip, repair: bool) -> Result<SampleReport, Beyond> {
    let mut report = SampleReport::default();
    let mut first: Option<(usize, usize, f32)> = None;
    let rate = clip.sample_rate();
    for (c, ch) in clip.channels_mut().iter_mut().enumerate() {
        for (i, v) in ch.iter_mut().enumerate() {
            let bad_kind = if !v.is_finite() {
                &mut report.non_finite
            } else if v.abs() > MAX_ABS_SAMPLE {
                &mut report.out_of_range
            } else {
                continue;
            };
            *bad_kind += 1;
            first.get_or_insert((c, i, *v));
            if repair {
                *v = if v.is_nan() { 0.0 } else { v.clamp(-1.0, 1.0) };
            }
        }
    }
    match first {
        Some((c, i, v)) if !repair => Err(Beyond(format!(
                "{} non-finite and {} out-of-range samples (beyond ±{MAX_ABS_SAMPLE}); the first is {v} at {:.3} s in channel {c}; give --repair-samples to replace them (NaN -> 0, the rest clamped to ±1)",
                report.non_finite,
                report.out_of_range,
                i as f64 / rate as f64
            ))),
        _ => Ok(report),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_and_channels_are_bounded() {
        assert!(check_rate(MIN_RATE).is_ok());
        assert!(check_rate(MAX_RATE).is_ok());
        assert!(check_rate(0).is_err());
        assert!(check_rate(MAX_RATE + 1).is_err());
        assert!(check_channels(0).is_err());
        assert!(check_channels(MAX_CHANNELS).is_ok());
        assert!(check_channels(MAX_CHANNELS + 1).is_err());
    }

    #[test]
    fn length_limit_is_the_tighter_of_time_and_samples() {
        // 3 h at 48 kHz stereo is 1,036,800,000 samples, above 2^28: the sample budget binds.
        assert_eq!(max_frames(48_000, 2), MAX_SAMPLES / 2);
        // At 8 kHz mono the time binds: 3 h = 86,400,000 frames.
        assert_eq!(max_frames(8_000, 1), 86_400_000);
        assert!(check_length(86_400_000, 8_000, 1).is_ok());
        assert!(check_length(86_400_001, 8_000, 1).is_err());
    }

    #[test]
    fn streamed_files_are_bounded_by_time_and_the_riff_size() {
        // 3 h of 48 kHz stereo f32 is 4,147,200,000 bytes: under 4 GiB, so time binds.
        assert_eq!(max_stream_frames(48_000, 2, 4), 518_400_000);
        // 96 kHz stereo f32 passes 4 GiB after 93 minutes: the RIFF size binds.
        assert_eq!(
            max_stream_frames(96_000, 2, 4),
            (u32::MAX as usize - 64) / 8
        );
    }

    #[test]
    fn bad_samples_are_refused_or_repaired_with_counts() {
        let mk = || {
            AudioClip::mono(
                8_000,
                vec![0.5, f32::NAN, f32::INFINITY, -3e38, 2.0, -f32::INFINITY],
            )
            .unwrap()
        };
        let mut clip = mk();
        let err = check_samples(&mut clip, false).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("3 non-finite and 1 out-of-range"), "{msg}");
        // NaN != NaN: compare the bits.
        let bits = |c: &AudioClip| {
            c.channels()[0]
                .iter()
                .map(|v| v.to_bits())
                .collect::<Vec<_>>()
        };
        assert_eq!(bits(&clip), bits(&mk()), "a refused clip is left as it was");
        let report = check_samples(&mut clip, true).unwrap();
        assert_eq!(
            report,
            SampleReport {
                non_finite: 3,
                out_of_range: 1
            }
        );
        assert_eq!(clip.channels()[0], vec![0.5, 0.0, 1.0, -1.0, 2.0, -1.0]);
        let mut clean = AudioClip::mono(8_000, vec![0.0, 1e-40, -999.0]).unwrap();
        assert!(check_samples(&mut clean, false).unwrap().is_clean());
    }
}
