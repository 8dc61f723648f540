//! `adiff demo`: the README's first command, in two clearly separated parts.
//! 1. The shipped trained model: the embedded band-extension upsampler ([`super::shipped`])
//!    upsamples an example clip synthesised here (48 kHz, sinc-downsampled by the factor with the
//!    reference's `downsample`); with `--out DIR` it writes input.wav, output.wav and a
//!    before/after spectrogram.png, and it prints the LSD of plain sinc and of the model against
//!    the 48 kHz original.
//! 2. A speed report of a random-weight diffusion UNet (the waveform UNet of the planned diffusion
//!    upsampler): size and one timed forward pass. Its weights are random; it is not the shipped
//!    model.

use super::audio::write_before_after;
use super::speed::time_unet;
use adiff_core::audio::{write_wav, AudioClip, WavEncoding};
use adiff_core::eval::metrics::clip_metrics;
use adiff_core::models::bandext::{sinc_down, sinc_up};
use adiff_core::unet::UNet1dConfig;
use anyhow::{bail, Context, Result};
use clap::Args;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// The embedded UNet config (the shape of the planned diffusion upsampler, issue 11).
pub const DEMO_UNET: &str = include_str!("demo_unet.json");
/// Rate of the example clip's original and of the upsampled output (Hz).
pub const DEMO_RATE: u32 = 48_000;
/// Training window of the planned diffusion upsampler (samples at 48 kHz).
pub const DEMO_WINDOW: usize = 1 << 15;

/// Options of `adiff demo`.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Write input.wav, output.wav and spectrogram.png of the shipped model's run here.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Length of the example clip (seconds).
    #[arg(long, default_value_t = 3.0)]
    pub seconds: f64,
    /// Upsampling factor of the shipped model's run (2, 4 or 8).
    #[arg(long, default_value_t = 4)]
    pub factor: usize,
    /// Seed of the shipped model's fill.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Samples per timed forward pass of the random-weight UNet (a multiple of its total factor,
    /// 256).
    #[arg(long, default_value_t = DEMO_WINDOW)]
    pub length: usize,
    /// Sampling steps of the random-weight UNet's speed estimate.
    #[arg(long, default_value_t = 8)]
    pub steps: usize,
    /// Timed forward passes of the random-weight UNet (the median is reported).
    #[arg(long, default_value_t = 3)]
    pub runs: usize,
    /// Compute device of the random-weight UNet: `cpu`, `cuda` or `cuda:N`.
    #[arg(long, default_value = "cpu")]
    pub device: String,
}

fn demo_unet() -> Result<UNet1dConfig> {
    serde_json::from_str(DEMO_UNET).context("the embedded demo config")
}

/// Runs the demo.
pub fn run(args: &DemoArgs) -> Result<()> {
    let cfg = demo_unet()?;
    let total = cfg.total_factor();
    if args.length == 0 || !args.length.is_multiple_of(total) {
        bail!(
            "--length must be a positive multiple of {total}, got {}",
            args.length
        );
    }
    if ![2, 4, 8].contains(&args.factor) {
        bail!("--factor must be 2, 4 or 8, got {}", args.factor);
    }
    if !(args.seconds.is_finite() && args.seconds >= 0.1 && args.seconds <= 600.0) {
        bail!("--seconds must be in [0.1, 600], got {}", args.seconds);
    }
    let device = adiff_core::device::parse_device(&args.device)?;
    shipped_model(args)?;

    println!();
    println!("== 2. speed of a RANDOM-weight diffusion UNet (not the shipped model) ==");
    println!(
        "the waveform UNet of the planned diffusion upsampler (channels {}, multipliers {:?}, factors {:?}, attention {:?})",
        cfg.channels, cfg.multipliers, cfg.factors, cfg.attentions
    );
    println!("NOTE: these UNet weights are RANDOM and it produces no audio here, only timings (the one trained diffusion model, models/generator, is not embedded: `adiff generate --model models/generator`).");
    let t = time_unet(&cfg, args.length, args.runs.max(1), &device)?;
    let secs = t.forward.as_secs_f64();
    let audio = args.length as f64 / DEMO_RATE as f64;
    println!(
        "parameters: {} ({:.2} M)",
        t.parameters,
        t.parameters as f64 / 1e6
    );
    println!(
        "one forward pass on {} samples ({audio:.2} s at {DEMO_RATE} Hz) on {}: {secs:.3} s",
        t.length, args.device
    );
    println!(
        "estimated diffusion upsampling time at {} steps: {:.2} s per second of audio",
        args.steps,
        secs * args.steps as f64 / audio
    );
    Ok(())
}

/// Part 1: the shipped model on the example clip, its LSD against sinc, the files with `--out`.
fn shipped_model(args: &DemoArgs) -> Result<()> {
    let k = args.factor;
    let low_rate = DEMO_RATE / k as u32;
    println!("== 1. the shipped trained upsampler (models/upsampler, embedded) ==");
    println!("a band-extension model: sinc upsampling keeps the known band, a learned regression predicts the high band's envelope, a phase-retrieved fill supplies it (not a diffusion model; docs/models.md)");
    let model = adiff_core::render::shipped::upsampler()?;
    let original = example_clip(args.seconds, k)?;
    let low = AudioClip::mono(low_rate, sinc_down(&original.channels()[0], k)?)?;
    let t0 = Instant::now();
    let (out, _) = model.upsample(
        &low,
        adiff_core::render::UpsampleTarget::Factor(Some(k)),
        &adiff_core::render::RenderOptions::seeded(args.seed),
        &mut |_| std::ops::ControlFlow::Continue(()),
    )?;
    let took = t0.elapsed().as_secs_f64();
    println!(
        "upsampled the {:.2} s example clip {low_rate} Hz -> x{k} -> {} Hz in {took:.2} s ({:.3} s per second of audio)",
        low.duration_secs(),
        out.sample_rate(),
        took / low.duration_secs()
    );
    let sinc = AudioClip::mono(DEMO_RATE, sinc_up(&low.channels()[0], k)?)?;
    let ms = clip_metrics(&original, &sinc, k)?;
    let mm = clip_metrics(&original, &out, k)?;
    println!("log-spectral distance to the 48 kHz original (lower is better; all bins / above the input's Nyquist):");
    println!("  sinc upsampling:   {:.3} / {:.3}", ms.lsd, ms.lsd_hf);
    println!("  shipped upsampler: {:.3} / {:.3}", mm.lsd, mm.lsd_hf);
    if let Some(dir) = &args.out {
        write_files(dir, &low, &out)?;
    }
    Ok(())
}

fn write_files(dir: &Path, low: &AudioClip, out: &AudioClip) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let (input, output, png) = (
        dir.join("input.wav"),
        dir.join("output.wav"),
        dir.join("spectrogram.png"),
    );
    write_wav(&input, low, WavEncoding::Float32)?;
    write_wav(&output, out, WavEncoding::Float32)?;
    write_before_after(&png, low, out)?;
    println!(
        "wrote {}, {} and {} (top: input, bottom: output)",
        input.display(),
        output.display(),
        png.display()
    );
    Ok(())
}

/// The example clip at 48 kHz, `seconds` long rounded down to a multiple of `factor` samples: a
/// plucked melody (decaying harmonic tones up to 20 kHz) over a bass line, with hi-hat noise bursts.
/// Deterministic (the noise is a fixed linear congruential sequence).
pub fn example_clip(seconds: f64, factor: usize) -> Result<AudioClip> {
    let rate = DEMO_RATE as f64;
    let n = (seconds * rate) as usize / factor * factor;
    let tau = std::f64::consts::TAU;
    // A minor pentatonic melody, one note per eighth at 120 bpm, and its bass an octave and a fifth below.
    let melody = [
        440.0, 523.25, 587.33, 659.25, 783.99, 659.25, 587.33, 523.25,
    ];
    let note = 0.25;
    let mut state: u32 = 0x1234_5678;
    let mut prev_noise = 0.0;
    let s = (0..n).map(|i| {
        let t = i as f64 / rate;
        let idx = (t / note) as usize;
        let tn = t - idx as f64 * note;
        let f = melody[idx % melody.len()];
        let mut pluck = 0.0;
        let mut h = 1.0;
        while f * h < 20_000.0 {
            pluck += (tau * f * h * tn).sin() * (-tn * (3.0 + 1.5 * h)).exp() / h;
            h += 1.0;
        }
        let fb = melody[(idx / 4 * 4) % melody.len()] / 3.0;
        let tb = t % (4.0 * note);
        let bass = ((tau * fb * tb).sin() + 0.3 * (tau * 2.0 * fb * tb).sin()) * (-tb * 1.5).exp();
        // Hi-hat: first difference of white noise (a crude high-pass), on every half note step.
        state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
        let white = (state >> 8) as f64 / (1u32 << 24) as f64 * 2.0 - 1.0;
        let hp = white - prev_noise;
        prev_noise = white;
        let th = t % (note / 2.0);
        let hat = hp * (-th * 60.0).exp();
        (0.35 * pluck + 0.3 * bass + 0.12 * hat) as f32
    });
    Ok(AudioClip::mono(DEMO_RATE, s.collect())?)
}
