//! Tests of the bandwidth detector: known cut-offs, shelves, noise floors, full-band signals.

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
        b.cutoff_hz, b.drop_db
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
