//! Bandwidth detection: where the audio content of a recording ends in frequency, for the
//! bandwidth-aware upsampler (clips stored at 44.1/48 kHz whose highs are missing: phone
//! recordings, old MP3s, band-limited masters).
//!
//! # Method
//!
//! 1. **Spectrum.** A Welch-averaged power spectrum of the clip (all channels mixed to mono, frame
//!    by frame): periodic Hann window, FFT of 8192 points at rates up to 96 kHz (doubled for each
//!    doubling of the rate above, at most 65536), 50 % overlap. At most 256 frames are analysed;
//!    a longer clip has them spread evenly over its length, so a 3-hour clip costs the same FFT
//!    work and memory as a 30 s one (only the check for non-finite samples reads every sample).
//!    A clip shorter than one frame uses a smaller FFT, down to 1024 points.
//! 2. **Levels.** The power spectrum in dB, smoothed by a running median over about ±100 Hz
//!    (this removes tonal peaks and keeps step edges sharp).
//! 3. **Band limit.** Candidate cut-offs `f` are tried upward from 1 kHz in 1/96-octave steps.
//!    A band limit at `f` needs the level *everywhere* above `f · 2^(1/6)` (up to Nyquist) to be at
//!    least 20 dB below the median level of the 1/6 octave below `f`: a sharp drop (≥ 20 dB
//!    within a transition of at most 1/6 octave, narrower near Nyquist) onto a floor or shelf
//!    that stays low up to Nyquist. Natural roll-off of full-band material (pink noise's
//!    -3 dB/octave, or even -24 dB/octave) drops only a few dB over that distance and is not a
//!    band limit. The lowest candidate that qualifies is taken.
//! 4. **Cut-off.** The cut-off is where the smoothed level, followed down from the floor, first
//!    comes back to within 6 dB of the content level below (the -6 dB point of a low-pass
//!    filter; the edge itself for a brick-wall), interpolated between bins.
//! 5. **Verdict.** `limited` when such a cut-off exists below 0.9 × Nyquist (drops in the top
//!    10 % of the band are the converters' own anti-alias filters). Silent or near-silent clips
//!    (below -100 dBFS RMS over the analysed frames) and clips shorter than 1024 samples are
//!    reported as not limited. A clip that is not limited has `cutoff_hz` at Nyquist and
//!    `drop_db` 0. Non-finite samples are an error.

use super::AudioClip;
use crate::{Error, Result};
use realfft::RealFftPlanner;

/// At most this many frames are analysed, whatever the clip length.
const MAX_FRAMES: usize = 256;
/// FFT size at rates up to [`BASE_RATE`].
const BASE_FFT: usize = 8192;
/// The rate up to which [`BASE_FFT`] is used; the size doubles with each doubling above.
const BASE_RATE: u64 = 96_000;
/// Largest FFT size (rates above 768 kHz keep it).
const MAX_FFT: usize = 65_536;
/// Smallest FFT size, for short clips; a clip shorter than this is not analysed.
const MIN_FFT: usize = 1024;
/// Half-width of the median smoothing of the dB spectrum (Hz).
const SMOOTH_HZ: f64 = 100.0;
/// Mean square below which a clip counts as silent (-100 dBFS RMS).
const SILENCE_MEAN_SQUARE: f64 = 1e-10;
/// The drop (dB) a band limit needs between the content below and everything above.
const MIN_DROP_DB: f64 = 20.0;
/// Widest transition (octaves) between the content and the floor of a band limit.
const TRANSITION_OCTAVES: f64 = 1.0 / 6.0;
/// Lowest cut-off searched (Hz).
const MIN_CUTOFF_HZ: f64 = 1000.0;
/// Highest candidate searched, as a fraction of Nyquist.
const SEARCH_TOP: f64 = 0.95;
/// Cut-offs at or above this fraction of Nyquist count as reaching Nyquist.
const LIMITED_BELOW: f64 = 0.9;
/// The cut-off is where the level is this far (dB) below the content level.
const EDGE_DB: f64 = 6.0;
/// Candidate cut-offs per octave.
const STEPS_PER_OCTAVE: f64 = 96.0;

/// What the analysis found.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bandwidth {
    /// Sample rate of the analysed clip (Hz).
    pub rate: u32,
    /// Frequency where the content ends (Hz); rate/2 when it reaches Nyquist.
    pub cutoff_hz: f64,
    /// Whether the content is band-limited (ends clearly below Nyquist).
    pub limited: bool,
    /// How far the level drops at the cut-off (dB): mean level in the octave below minus the level
    /// above (the mean level from the end of the transition to Nyquist); 0 when not limited.
    pub drop_db: f64,
}

impl Bandwidth {
    /// The Nyquist frequency of the analysed clip (Hz): half its sample rate.
    pub fn nyquist(&self) -> f64 {
        f64::from(self.rate) / 2.0
    }

    /// The result for content that reaches Nyquist.
    fn full(rate: u32) -> Self {
        Self {
            rate,
            cutoff_hz: f64::from(rate) / 2.0,
            limited: false,
            drop_db: 0.0,
        }
    }
}

/// Detects where the content of `clip` (all channels mixed to mono) ends.
///
/// See the [module documentation](self) for the method. Fails on non-finite samples.
pub fn detect(clip: &AudioClip) -> Result<Bandwidth> {
    analyse_clip(clip).map(|a| a.bandwidth)
}

/// The same as [`detect`] on one mono signal `x` at `rate` (Hz).
///
/// Fails on a zero rate or non-finite samples.
pub fn detect_signal(x: &[f32], rate: u32) -> Result<Bandwidth> {
    analyse_signal(x, rate).map(|a| a.bandwidth)
}

/// The result with the work it took.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Analysis {
    /// What was found.
    pub(crate) bandwidth: Bandwidth,
    /// Frames analysed (0 when the clip was too short).
    pub(crate) frames: usize,
    /// FFT size used (0 when the clip was too short).
    pub(crate) fft_size: usize,
}

/// Which frames of a clip of `len` samples at `rate` are analysed.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct FramePlan {
    /// FFT (frame) size.
    pub(crate) fft_size: usize,
    /// First sample of each frame (at most [`MAX_FRAMES`]).
    pub(crate) starts: Vec<usize>,
}

/// FFT size for `rate`: 8192 up to 96 kHz, doubled per doubling of the rate above (at most 65536).
pub(crate) fn fft_size_for_rate(rate: u32) -> usize {
    let mut n = BASE_FFT;
    let mut top = BASE_RATE;
    while u64::from(rate) > top && n < MAX_FFT {
        n *= 2;
        top *= 2;
    }
    n
}

/// The frames analysed for a clip of `len` samples at `rate`; `None` when it is shorter than
/// [`MIN_FFT`]. Consecutive frames overlap by half; when there are more than [`MAX_FRAMES`] such
/// frames, [`MAX_FRAMES`] are spread evenly from the start to the end of the clip instead.
pub(crate) fn frame_plan(len: usize, rate: u32) -> Option<FramePlan> {
    let mut n = fft_size_for_rate(rate);
    while n > len && n > MIN_FFT {
        n /= 2;
    }
    if n > len {
        return None;
    }
    let hop = n / 2;
    let span = len - n;
    let all = span / hop + 1;
    let starts = if all <= MAX_FRAMES {
        (0..all).map(|i| i * hop).collect()
    } else {
        let last = (MAX_FRAMES - 1) as u128;
        (0..MAX_FRAMES)
            .map(|i| ((2 * i as u128 * span as u128 + last) / (2 * last)) as usize)
            .collect()
    };
    Some(FramePlan {
        fft_size: n,
        starts,
    })
}

/// [`detect`] with the work it took.
pub(crate) fn analyse_clip(clip: &AudioClip) -> Result<Analysis> {
    let channels = clip.channels();
    for (c, ch) in channels.iter().enumerate() {
        if let Some((i, v)) = ch.iter().enumerate().find(|(_, v)| !v.is_finite()) {
            return Err(Error::input(
                "clip",
                format!(
                    "channel {c} sample {i} is {v} ({} non-finite samples in all); \
                     bandwidth detection needs finite audio",
                    clip.count_non_finite()
                ),
            ));
        }
    }
    let scale = 1.0 / channels.len().max(1) as f64;
    analyse(clip.len(), clip.sample_rate(), |start, buf| {
        buf.fill(0.0);
        for ch in channels {
            let src = ch.get(start..start + buf.len()).unwrap_or(&[]);
            for (b, &s) in buf.iter_mut().zip(src) {
                *b += f64::from(s);
            }
        }
        for b in buf.iter_mut() {
            *b *= scale;
        }
    })
}

/// [`detect_signal`] with the work it took.
pub(crate) fn analyse_signal(x: &[f32], rate: u32) -> Result<Analysis> {
    if rate == 0 {
        return Err(Error::input("rate", "must be positive"));
    }
    if let Some((i, v)) = x.iter().enumerate().find(|(_, v)| !v.is_finite()) {
        let count = x.iter().filter(|v| !v.is_finite()).count();
        return Err(Error::input(
            "signal",
            format!(
                "sample {i} is {v} ({count} non-finite samples in all); \
                 bandwidth detection needs finite audio"
            ),
        ));
    }
    analyse(x.len(), rate, |start, buf| {
        let src = x.get(start..start + buf.len()).unwrap_or(&[]);
        buf.fill(0.0);
        for (b, &s) in buf.iter_mut().zip(src) {
            *b = f64::from(s);
        }
    })
}

/// The analysis of a mono signal of `len` samples at `rate`; `fill(start, buf)` writes the samples
/// `start..start + buf.len()` into `buf`.
fn analyse(len: usize, rate: u32, mut fill: impl FnMut(usize, &mut [f64])) -> Result<Analysis> {
    let full = Analysis {
        bandwidth: Bandwidth::full(rate),
        frames: 0,
        fft_size: 0,
    };
    let Some(plan) = frame_plan(len, rate) else {
        return Ok(full);
    };
    let n = plan.fft_size;
    let analysed = Analysis {
        frames: plan.starts.len(),
        fft_size: n,
        ..full
    };

    // Welch average of Hann-windowed periodograms.
    let window: Vec<f64> = (0..n)
        .map(|i| 0.5 - 0.5 * (std::f64::consts::TAU * i as f64 / n as f64).cos())
        .collect();
    let mut planner = RealFftPlanner::<f64>::new();
    let fft = planner.plan_fft_forward(n);
    let mut input = fft.make_input_vec();
    let mut spectrum = fft.make_output_vec();
    let mut scratch = fft.make_scratch_vec();
    let mut power = vec![0.0f64; spectrum.len()];
    let mut energy = 0.0f64;
    for &start in &plan.starts {
        fill(start, &mut input);
        energy += input.iter().map(|v| v * v).sum::<f64>();
        for (v, w) in input.iter_mut().zip(&window) {
            *v *= w;
        }
        fft.process_with_scratch(&mut input, &mut spectrum, &mut scratch)
            .map_err(|e| Error::input("bandwidth", format!("FFT failed: {e}")))?;
        for (p, c) in power.iter_mut().zip(&spectrum) {
            *p += c.norm_sqr();
        }
    }
    let mean_square = energy / (plan.starts.len() * n) as f64;
    // The NaN test cannot trigger with finite input, but costs nothing.
    if mean_square.is_nan() || mean_square < SILENCE_MEAN_SQUARE {
        return Ok(analysed);
    }

    // Levels in dB (floored 160 dB under the strongest bin), median-smoothed over ±100 Hz.
    let peak = power.iter().copied().fold(0.0f64, f64::max);
    let tiny = peak * 1e-16 + f64::MIN_POSITIVE;
    let db: Vec<f64> = power.iter().map(|&p| 10.0 * (p + tiny).log10()).collect();
    let bin_hz = f64::from(rate) / n as f64;
    let half = ((SMOOTH_HZ / bin_hz).round() as usize).max(1);
    let levels = median_smooth(&db, half);

    let nyquist = f64::from(rate) / 2.0;
    match find_edge(&levels, bin_hz, nyquist) {
        Some(edge) if edge.cutoff_hz < LIMITED_BELOW * nyquist => Ok(Analysis {
            bandwidth: Bandwidth {
                rate,
                cutoff_hz: edge.cutoff_hz,
                limited: true,
                drop_db: edge.drop_db,
            },
            ..analysed
        }),
        _ => Ok(analysed),
    }
}

/// A band limit found in a level curve.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Edge {
    /// Where the content ends (Hz).
    cutoff_hz: f64,
    /// Mean level in the octave below the cut-off minus the mean level above the transition (dB).
    drop_db: f64,
}

/// The lowest band limit in the smoothed dB `levels` (bin `k` at `k * bin_hz`, the last bin at
/// `nyquist`), if any; see the module documentation.
fn find_edge(levels: &[f64], bin_hz: f64, nyquist: f64) -> Option<Edge> {
    let last = levels.len().checked_sub(1)?;
    if last == 0 || bin_hz.is_nan() || bin_hz <= 0.0 {
        return None;
    }
    // suffix_max[k]: the highest level from bin k to Nyquist.
    let mut suffix_max = vec![f64::NEG_INFINITY; levels.len() + 1];
    for k in (0..levels.len()).rev() {
        suffix_max[k] = suffix_max[k + 1].max(levels[k]);
    }
    let bin = |f: f64| ((f / bin_hz).round().max(0.0) as usize).min(last);
    let step = 2f64.powf(1.0 / STEPS_PER_OCTAVE);
    let transition = 2f64.powf(TRANSITION_OCTAVES);
    let mut buf = Vec::new();
    let mut f = MIN_CUTOFF_HZ;
    while f <= SEARCH_TOP * nyquist {
        let gap = (f * (transition - 1.0)).min((nyquist - f) / 2.0);
        let (k_in, k, k_out) = (bin(f / transition), bin(f), bin(f + gap));
        f *= step;
        if k_in >= k || k_out <= k {
            continue;
        }
        buf.clear();
        buf.extend_from_slice(&levels[k_in..k]);
        let content = median(&mut buf);
        if content - suffix_max[k_out] < MIN_DROP_DB {
            continue;
        }
        // Follow the level down from the floor to where it is back within EDGE_DB of the content.
        let threshold = content - EDGE_DB;
        let mut cutoff_bin = k as f64;
        for j in (k_in..k_out).rev() {
            if levels[j] >= threshold {
                let next = levels[j + 1];
                let frac = if levels[j] > next {
                    ((levels[j] - threshold) / (levels[j] - next)).clamp(0.0, 1.0)
                } else {
                    0.0
                };
                cutoff_bin = j as f64 + frac;
                break;
            }
        }
        let cutoff_hz = cutoff_bin * bin_hz;
        let below = mean(&levels[bin(cutoff_hz / 2.0)..=bin(cutoff_hz).max(bin(cutoff_hz / 2.0))]);
        let above = mean(&levels[k_out..]);
        return Some(Edge {
            cutoff_hz,
            drop_db: below - above,
        });
    }
    None
}

/// Running median of `x` over `k - half ..= k + half` (clipped at the ends).
fn median_smooth(x: &[f64], half: usize) -> Vec<f64> {
    let mut buf = Vec::with_capacity(2 * half + 1);
    (0..x.len())
        .map(|k| {
            let lo = k.saturating_sub(half);
            let hi = (k + half + 1).min(x.len());
            buf.clear();
            buf.extend_from_slice(&x[lo..hi]);
            median(&mut buf)
        })
        .collect()
}

/// The median of `buf` (the upper middle value for an even length; -inf when empty), reordering it.
fn median(buf: &mut [f64]) -> f64 {
    if buf.is_empty() {
        return f64::NEG_INFINITY;
    }
    let mid = buf.len() / 2;
    let (_, m, _) = buf.select_nth_unstable_by(mid, f64::total_cmp);
    *m
}

/// The mean of `x` (-inf when empty).
fn mean(x: &[f64]) -> f64 {
    if x.is_empty() {
        return f64::NEG_INFINITY;
    }
    x.iter().sum::<f64>() / x.len() as f64
}

#[cfg(test)]
mod tests;
