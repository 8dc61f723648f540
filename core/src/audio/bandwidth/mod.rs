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
mod tests {
    use super::*;
    use realfft::num_complex::Complex;

    /// xorshift64* with uniform and (sum-of-uniforms) Gaussian draws.
    struct Rng(u64);

    impl Rng {
        fn new(seed: u64) -> Self {
            Self(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
        }
        fn next_u64(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
        }
        /// Uniform in [0, 1).
        fn uniform(&mut self) -> f64 {
            (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
        }
        /// Roughly standard normal (Irwin-Hall of 4, unit variance).
        fn gauss(&mut self) -> f64 {
            let s: f64 = (0..4).map(|_| self.uniform()).sum();
            (s - 2.0) * 3f64.sqrt()
        }
    }

    const LEN: usize = 1 << 17;
    const CUTOFFS: [f64; 5] = [4000.0, 6000.0, 8000.0, 11025.0, 16000.0];
    const RATES: [u32; 2] = [44_100, 48_000];

    fn white(n: usize, seed: u64) -> Vec<f32> {
        let mut rng = Rng::new(seed);
        (0..n).map(|_| (0.25 * rng.gauss()) as f32).collect()
    }

    /// `x` filtered by the zero-phase gain `gain(f)` applied to every DFT bin (circular).
    fn spectral(x: &[f32], rate: u32, gain: impl Fn(f64) -> f64) -> Vec<f32> {
        let n = x.len();
        let mut planner = RealFftPlanner::<f64>::new();
        let fwd = planner.plan_fft_forward(n);
        let inv = planner.plan_fft_inverse(n);
        let mut input: Vec<f64> = x.iter().map(|&v| f64::from(v)).collect();
        let mut spec = fwd.make_output_vec();
        fwd.process(&mut input, &mut spec).unwrap();
        for (k, c) in spec.iter_mut().enumerate() {
            *c *= gain(k as f64 * f64::from(rate) / n as f64);
        }
        spec[0].im = 0.0;
        if let Some(l) = spec.last_mut() {
            l.im = 0.0;
        }
        let mut out = inv.make_output_vec();
        inv.process(&mut spec, &mut out).unwrap();
        out.iter().map(|&v| (v / n as f64) as f32).collect()
    }

    /// Exact brick-wall low-pass at `fc`.
    fn brickwall(x: &[f32], rate: u32, fc: f64) -> Vec<f32> {
        spectral(x, rate, |f| if f <= fc { 1.0 } else { 0.0 })
    }

    /// Blackman-windowed-sinc FIR low-pass (601 taps, -6 dB at `fc`, transition about
    /// 5.5 * rate / 601: ~400 Hz at 44.1 kHz, ~440 Hz at 48 kHz), applied zero-phase (circular).
    fn fir(x: &[f32], rate: u32, fc: f64) -> Vec<f32> {
        const TAPS: usize = 601;
        let m = (TAPS - 1) as f64 / 2.0;
        let wc = fc / f64::from(rate);
        let mut h: Vec<f64> = (0..TAPS)
            .map(|i| {
                let t = i as f64 - m;
                let sinc = if t == 0.0 {
                    2.0 * wc
                } else {
                    (std::f64::consts::TAU * wc * t).sin() / (std::f64::consts::PI * t)
                };
                let a = std::f64::consts::TAU * i as f64 / (TAPS - 1) as f64;
                sinc * (0.42 - 0.5 * a.cos() + 0.08 * (2.0 * a).cos())
            })
            .collect();
        let dc: f64 = h.iter().sum();
        h.iter_mut().for_each(|v| *v /= dc);
        // Kernel placed circularly around sample 0 (zero phase); its DFT is the filter response.
        let n = x.len();
        let mut g = vec![0.0f64; n];
        for (i, &v) in h.iter().enumerate() {
            g[(i + n - TAPS / 2) % n] = v;
        }
        let mut planner = RealFftPlanner::<f64>::new();
        let fwd = planner.plan_fft_forward(n);
        let inv = planner.plan_fft_inverse(n);
        let mut gs = fwd.make_output_vec();
        fwd.process(&mut g, &mut gs).unwrap();
        let mut input: Vec<f64> = x.iter().map(|&v| f64::from(v)).collect();
        let mut spec = fwd.make_output_vec();
        fwd.process(&mut input, &mut spec).unwrap();
        for (c, r) in spec.iter_mut().zip(&gs) {
            *c *= Complex::new(r.re, 0.0);
        }
        spec[0].im = 0.0;
        if let Some(l) = spec.last_mut() {
            l.im = 0.0;
        }
        let mut out = inv.make_output_vec();
        inv.process(&mut spec, &mut out).unwrap();
        out.iter().map(|&v| (v / n as f64) as f32).collect()
    }

    fn rms(x: &[f32]) -> f64 {
        (x.iter().map(|&v| f64::from(v) * f64::from(v)).sum::<f64>() / x.len() as f64).sqrt()
    }

    /// `y` plus white noise `db` below its RMS.
    fn with_floor(y: &[f32], db: f64, seed: u64) -> Vec<f32> {
        let level = rms(y) * 10f64.powf(-db / 20.0) / 0.25;
        let noise = white(y.len(), seed);
        y.iter()
            .zip(&noise)
            .map(|(&a, &b)| a + (level * f64::from(b)) as f32)
            .collect()
    }

    /// MP3-style shelf: the low-passed `lp` plus the rest of `x` attenuated by `db`.
    fn shelf(x: &[f32], lp: &[f32], db: f64) -> Vec<f32> {
        let g = 10f64.powf(-db / 20.0) as f32;
        x.iter().zip(lp).map(|(&a, &b)| b + g * (a - b)).collect()
    }

    /// Full-band pink noise (power 1/f).
    fn pink(n: usize, rate: u32, seed: u64) -> Vec<f32> {
        let w = white(n, seed);
        let y = spectral(&w, rate, |f| if f > 0.0 { (20.0 / f).sqrt() } else { 0.0 });
        let g = 0.25 / rms(&y);
        y.iter().map(|&v| (f64::from(v) * g) as f32).collect()
    }

    /// Music-like: three-voice chords changing every 0.5 s (harmonic tones with 1/h amplitudes up
    /// to Nyquist, decaying envelopes) plus drum hits every 0.25 s (decaying noise bursts,
    /// one-pole low-passed at random corners, some white).
    fn music(n: usize, rate: u32, seed: u64) -> Vec<f32> {
        let mut rng = Rng::new(seed);
        let fs = f64::from(rate);
        let nyq = fs / 2.0;
        let mut out = vec![0.0f64; n];
        let seg = (rate / 2) as usize;
        for start in (0..n).step_by(seg) {
            let end = (start + seg).min(n);
            for _ in 0..3 {
                let f0 = 80.0 * 2f64.powf(rng.uniform() * 3.3);
                let decay = (-1.0 / (0.2 + 0.6 * rng.uniform()) / fs).exp();
                let mut h = 1.0;
                while h * f0 < nyq {
                    let w = std::f64::consts::TAU * h * f0 / fs;
                    let (ws, wc) = w.sin_cos();
                    let ph = std::f64::consts::TAU * rng.uniform();
                    let (mut s, mut c) = ph.sin_cos();
                    let mut env = 0.15 / h;
                    for (i, o) in out[start..end].iter_mut().enumerate() {
                        let attack = (i as f64 / (0.005 * fs)).min(1.0);
                        *o += env * attack * s;
                        env *= decay;
                        let s2 = s * wc + c * ws;
                        c = c * wc - s * ws;
                        s = s2;
                    }
                    h += 1.0;
                }
            }
        }
        let hit = (rate / 4) as usize;
        for start in (0..n).step_by(hit) {
            let tau = 0.02 + 0.08 * rng.uniform();
            let alpha = if rng.uniform() < 0.4 {
                1.0
            } else {
                0.1 + 0.6 * rng.uniform()
            };
            let decay = (-1.0 / (tau * fs)).exp();
            let mut env = 0.3;
            let mut y = 0.0;
            for o in out[start..(start + (5.0 * tau * fs) as usize).min(n)].iter_mut() {
                y += alpha * (rng.gauss() - y);
                *o += env * y;
                env *= decay;
            }
        }
        out.iter().map(|&v| v as f32).collect()
    }

    fn tolerance(fc: f64) -> f64 {
        (0.03 * fc).max(250.0)
    }

    /// Asserts that `x` is detected as limited at `fc`; returns the detected cut-off.
    fn expect_limited(name: &str, x: &[f32], rate: u32, fc: f64) -> f64 {
        let b = detect_signal(x, rate).unwrap();
        eprintln!(
            "{name:<40} rate {rate:>5} true {fc:>7.0} Hz detected {:>8.1} Hz (err {:>+6.1}) \
             limited {} drop {:.1} dB",
            b.cutoff_hz,
            b.cutoff_hz - fc,
            b.limited,
            b.drop_db
        );
        assert!(
            b.limited,
            "{name} at {rate} Hz, cut-off {fc} Hz: not detected as limited ({b:?})"
        );
        assert!(
            (b.cutoff_hz - fc).abs() <= tolerance(fc),
            "{name} at {rate} Hz: true cut-off {fc} Hz, detected {:.1} Hz (tolerance {:.0} Hz)",
            b.cutoff_hz,
            tolerance(fc)
        );
        assert!(
            b.drop_db >= MIN_DROP_DB,
            "{name} at {rate} Hz: drop {:.1} dB",
            b.drop_db
        );
        b.cutoff_hz
    }

    fn expect_full(name: &str, x: &[f32], rate: u32) {
        let b = detect_signal(x, rate).unwrap();
        eprintln!(
            "{name:<40} rate {rate:>5} detected {:>8.1} Hz limited {}",
            b.cutoff_hz, b.limited
        );
        assert!(
            !b.limited,
            "{name} at {rate} Hz: full-band content reported as limited at {:.1} Hz (drop {:.1} dB)",
            b.cutoff_hz,
            b.drop_db
        );
        assert_eq!(b.cutoff_hz, f64::from(rate) / 2.0, "{name} at {rate} Hz");
    }

    /// Every filter/variant at every cut-off for the signal `make(rate)`.
    fn limited_suite(signal: &str, make: impl Fn(u32) -> Vec<f32>) {
        for rate in RATES {
            let x = make(rate);
            for (i, fc) in CUTOFFS.into_iter().enumerate() {
                let filters: [(&str, Vec<f32>); 2] = [
                    ("brick-wall", brickwall(&x, rate, fc)),
                    ("windowed-sinc FIR", fir(&x, rate, fc)),
                ];
                for (filter, lp) in filters {
                    let seed = 1000 + i as u64;
                    expect_limited(&format!("{signal} {filter}"), &lp, rate, fc);
                    expect_limited(
                        &format!("{signal} {filter} + floor -70 dB"),
                        &with_floor(&lp, 70.0, seed),
                        rate,
                        fc,
                    );
                    expect_limited(
                        &format!("{signal} {filter} shelf -30 dB"),
                        &shelf(&x, &lp, 30.0),
                        rate,
                        fc,
                    );
                    expect_limited(
                        &format!("{signal} {filter} shelf -40 dB"),
                        &shelf(&x, &lp, 40.0),
                        rate,
                        fc,
                    );
                }
            }
        }
    }

    #[test]
    fn white_noise_band_limits() {
        limited_suite("white", |_| white(LEN, 1));
    }

    #[test]
    fn music_band_limits() {
        limited_suite("music", |rate| music(LEN, rate, 2));
    }

    #[test]
    fn full_band_is_not_limited() {
        for rate in RATES {
            let w = white(LEN, 3);
            expect_full("white", &w, rate);
            expect_full("white + floor", &with_floor(&w, 70.0, 4), rate);
            expect_full("pink", &pink(LEN, rate, 5), rate);
            let m = music(LEN, rate, 6);
            expect_full("music", &m, rate);
            expect_full("music + floor", &with_floor(&m, 70.0, 7), rate);
            // Natural roll-offs into a noise floor: -12 dB/octave above 2 kHz, -24 dB/octave
            // above 4 kHz.
            let soft = spectral(&w, rate, |f| 1.0 / (1.0 + (f / 2000.0).powi(4)).sqrt());
            expect_full(
                "white, -12 dB/oct > 2 kHz + floor",
                &with_floor(&soft, 70.0, 8),
                rate,
            );
            let steep = spectral(&w, rate, |f| 1.0 / (1.0 + (f / 4000.0).powi(8)).sqrt());
            expect_full(
                "white, -24 dB/oct > 4 kHz + floor",
                &with_floor(&steep, 70.0, 9),
                rate,
            );
            let dull = spectral(&m, rate, |f| 1.0 / (1.0 + (f / 5000.0).powi(4)).sqrt());
            expect_full(
                "music, -12 dB/oct > 5 kHz + floor",
                &with_floor(&dull, 70.0, 10),
                rate,
            );
            // The converter's own anti-alias filter near Nyquist is not a band limit.
            let aa = brickwall(&w, rate, 0.92 * f64::from(rate) / 2.0);
            expect_full("white, brick-wall at 0.92 Nyquist", &aa, rate);
        }
    }

    #[test]
    fn silence_short_and_non_finite() {
        let silent = detect_signal(&vec![0.0; 48_000], 48_000).unwrap();
        assert_eq!(silent, Bandwidth::full(48_000), "silence: {silent:?}");
        let quiet: Vec<f32> = white(48_000, 11).iter().map(|v| v * 1e-6).collect();
        let quiet = detect_signal(&quiet, 48_000).unwrap();
        assert_eq!(quiet, Bandwidth::full(48_000), "near silence: {quiet:?}");
        let short = detect_signal(&brickwall(&white(100, 12), 44_100, 4000.0), 44_100).unwrap();
        assert_eq!(short, Bandwidth::full(44_100), "100 samples: {short:?}");
        let empty = detect_signal(&[], 44_100).unwrap();
        assert_eq!(empty, Bandwidth::full(44_100), "empty: {empty:?}");
        assert_eq!(empty.nyquist(), 22_050.0);

        let mut x = white(10_000, 13);
        x[1234] = f32::NAN;
        let err = detect_signal(&x, 44_100).unwrap_err().to_string();
        assert!(
            err.contains("NaN") && err.contains("1234"),
            "NaN error: {err}"
        );
        x[1234] = f32::INFINITY;
        let err = detect_signal(&x, 44_100).unwrap_err().to_string();
        assert!(err.contains("inf"), "inf error: {err}");
        let clip = AudioClip::new(44_100, vec![white(10_000, 14), x]).unwrap();
        let err = detect(&clip).unwrap_err().to_string();
        assert!(err.contains("channel 1"), "clip error: {err}");
        assert!(detect_signal(&white(5000, 15), 0).is_err(), "rate 0");
    }

    #[test]
    fn short_clip_uses_smaller_fft() {
        let x = brickwall(&white(5000, 16), 44_100, 8000.0);
        let a = analyse_signal(&x, 44_100).unwrap();
        assert_eq!((a.fft_size, a.frames), (4096, 1), "{a:?}");
        expect_limited("white brick-wall, 5000 samples", &x, 44_100, 8000.0);
        let x = brickwall(&white(1500, 17), 48_000, 6000.0);
        let a = analyse_signal(&x, 48_000).unwrap();
        assert_eq!((a.fft_size, a.frames), (1024, 1), "{a:?}");
        expect_limited("white brick-wall, 1500 samples", &x, 48_000, 6000.0);
        expect_full("white, 1500 samples", &white(1500, 18), 48_000);
    }

    #[test]
    fn fft_size_scales_with_rate() {
        for (rate, n) in [
            (8_000, 8192),
            (44_100, 8192),
            (96_000, 8192),
            (176_400, 16_384),
            (192_000, 16_384),
            (384_000, 32_768),
            (u32::MAX, 65_536),
        ] {
            assert_eq!(fft_size_for_rate(rate), n, "rate {rate}");
        }
        let x = brickwall(&white(LEN, 19), 192_000, 24_000.0);
        let a = analyse_signal(&x, 192_000).unwrap();
        assert_eq!(a.fft_size, 16_384, "{a:?}");
        expect_limited("white brick-wall at 192 kHz", &x, 192_000, 24_000.0);
    }

    #[test]
    fn clip_channels_are_mixed() {
        let rate = 48_000;
        let w = white(LEN, 20);
        let l = fir(&w, rate, 11_025.0);
        let r = fir(&white(LEN, 21), rate, 11_025.0);
        let clip = AudioClip::new(rate, vec![l, r]).unwrap();
        let b = detect(&clip).unwrap();
        assert!(
            b.limited && (b.cutoff_hz - 11_025.0).abs() <= tolerance(11_025.0),
            "stereo clip cut at 11025 Hz: {b:?}"
        );
        let full = AudioClip::new(rate, vec![w.clone(), w]).unwrap();
        let b = detect(&full).unwrap();
        assert!(!b.limited, "full-band stereo clip: {b:?}");
    }

    #[test]
    fn long_clip_costs_bounded_work() {
        // Ten minutes at 48 kHz: a brick-walled (hence seamlessly periodic) block, tiled.
        let rate = 48_000;
        let block = brickwall(&white(1 << 16, 22), rate, 8000.0);
        let n = 600 * rate as usize;
        let x: Vec<f32> = block.iter().copied().cycle().take(n).collect();
        let plan = frame_plan(n, rate).unwrap();
        assert_eq!(
            plan.starts.len(),
            MAX_FRAMES,
            "frames planned for {n} samples"
        );
        assert_eq!(plan.starts.first(), Some(&0));
        assert_eq!(plan.starts.last(), Some(&(n - BASE_FFT)));
        let a = analyse_signal(&x, rate).unwrap();
        assert_eq!((a.frames, a.fft_size), (MAX_FRAMES, BASE_FFT), "{a:?}");
        let b = a.bandwidth;
        assert!(
            b.limited && (b.cutoff_hz - 8000.0).abs() <= tolerance(8000.0),
            "10-minute clip cut at 8000 Hz: {b:?}"
        );
        // Three hours plans the same work.
        let plan3h = frame_plan(3 * 3600 * rate as usize, rate).unwrap();
        assert_eq!(plan3h.starts.len(), MAX_FRAMES);
        // A clip with fewer frames uses all of them with 50 % overlap.
        let plan = frame_plan(10 * 4096 + 8192, rate).unwrap();
        assert_eq!(plan.starts, (0..11).map(|i| i * 4096).collect::<Vec<_>>());
    }
}
