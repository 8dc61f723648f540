//! `adiff demo`: the README's first command. Until a trained model ships, it builds the embedded
//! upsampler-sized UNet with random weights, reports its size and times a forward pass, says
//! plainly that the weights are random, and with `--out DIR` runs the whole upsampling path (file
//! in, resampling, windows, sampler, file out, spectrogram) on a synthetic clip.

use super::common::SamplingArgs;
use super::speed::time_unet;
use super::upsample::{self, UpsampleArgs};
use adiff_core::audio::{write_wav, AudioClip, WavEncoding};
use adiff_core::models::folder::{FolderConfig, ModelFolder, ModelKind};
use adiff_core::models::{AudioDiffusionUpsampler, AudioDiffusionUpsamplerConfig};
use adiff_core::unet::UNet1dConfig;
use adiff_core::Compat;
use anyhow::{bail, Context, Result};
use candle_core::{DType, Device, Tensor};
use candle_nn::{VarBuilder, VarMap};
use clap::Args;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// The embedded UNet config (the shape of the planned shipped upsampler, issue 11).
pub const DEMO_UNET: &str = include_str!("demo_unet.json");
/// Rate of the demo upsampler (Hz).
pub const DEMO_RATE: u32 = 48_000;
/// Training window of the demo upsampler (samples at 48 kHz).
pub const DEMO_WINDOW: usize = 1 << 15;

/// Options of `adiff demo`.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Also run the upsampling path end to end and write input.wav, output.wav, spectrogram.png
    /// and the random-weight model folder here.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Length of the synthetic clip (seconds).
    #[arg(long, default_value_t = 2.0)]
    pub seconds: f64,
    /// Upsampling factor of the end-to-end run (2, 4 or 8).
    #[arg(long, default_value_t = 4)]
    pub factor: usize,
    /// Samples per timed forward pass (a multiple of the UNet's total factor, 256).
    #[arg(long, default_value_t = DEMO_WINDOW)]
    pub length: usize,
    /// Sampling steps of the end-to-end run and of the speed estimate.
    #[arg(long, default_value_t = 8)]
    pub steps: usize,
    /// Timed forward passes (the median is reported).
    #[arg(long, default_value_t = 3)]
    pub runs: usize,
    /// Compute device: `cpu`, `cuda` or `cuda:N`.
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
    if args.length == 0 || args.length % total != 0 {
        bail!(
            "--length must be a positive multiple of {total}, got {}",
            args.length
        );
    }
    let device = adiff_core::device::parse_device(&args.device)?;
    println!(
        "adiff demo: the waveform UNet of the planned upsampler (channels {}, multipliers {:?}, factors {:?}, attention {:?})",
        cfg.channels, cfg.multipliers, cfg.factors, cfg.attentions
    );
    println!("NOTE: no trained model ships yet; these weights are RANDOM, so what it generates is noise.");
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
        "estimated upsampling time at {} steps: {:.2} s per second of audio",
        args.steps,
        secs * args.steps as f64 / audio
    );
    if let Some(dir) = &args.out {
        end_to_end(dir, args)?;
    }
    Ok(())
}

/// A synthetic clip at `rate`: a decaying chord with a vibrato partial and clicks.
fn synthetic_clip(rate: u32, seconds: f64) -> Result<AudioClip> {
    let n = (seconds * rate as f64).round() as usize;
    let tau = std::f64::consts::TAU;
    let s = (0..n).map(|i| {
        let t = i as f64 / rate as f64;
        let beat = t % 0.5;
        let env = (-3.0 * beat).exp();
        let chord: f64 = [220.0, 277.2, 329.6, 440.0]
            .iter()
            .map(|f| (tau * f * t).sin())
            .sum::<f64>()
            / 4.0;
        let vib = (tau * (880.0 * t + 3.0 * (tau * 5.0 * t).sin())).sin();
        let click = if beat < 0.002 {
            0.5 * (tau * 2500.0 * t).sin()
        } else {
            0.0
        };
        (0.5 * env * (chord + 0.3 * vib) + click) as f32 * 0.8
    });
    Ok(AudioClip::mono(rate, s.collect())?)
}

/// Saves the demo upsampler (factors 2, 4, 8) with random weights as a model folder.
fn save_random_upsampler(dir: &Path) -> Result<()> {
    let mut kwargs = serde_json::from_str::<serde_json::Value>(DEMO_UNET)?;
    kwargs["factor"] = serde_json::json!([2, 4, 8]);
    if let Some(o) = kwargs.as_object_mut() {
        o.remove("context_channels");
    }
    let cfg = AudioDiffusionUpsamplerConfig::from_kwargs(&kwargs)?;
    let varmap = VarMap::new();
    AudioDiffusionUpsampler::new(
        &cfg,
        Compat::Fixed,
        VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu),
    )?;
    let tensors: HashMap<String, Tensor> = {
        let data = varmap
            .data()
            .lock()
            .map_err(|_| anyhow::anyhow!("the weight map lock is poisoned"))?;
        data.iter()
            .map(|(k, v)| (k.clone(), v.as_tensor().clone()))
            .collect()
    };
    let config = FolderConfig::new(
        ModelKind::AudioDiffusionUpsampler,
        kwargs,
        DEMO_RATE,
        1,
        DEMO_WINDOW,
    );
    ModelFolder::new(config, tensors)?.save(dir)?;
    Ok(())
}

/// Input file -> `adiff upsample` -> output file and spectrogram, timed.
fn end_to_end(dir: &Path, args: &DemoArgs) -> Result<()> {
    if ![2, 4, 8].contains(&args.factor) {
        bail!("--factor must be 2, 4 or 8, got {}", args.factor);
    }
    if !(args.seconds.is_finite() && args.seconds > 0.0 && args.seconds <= 600.0) {
        bail!("--seconds must be in (0, 600], got {}", args.seconds);
    }
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let model = dir.join("random-upsampler");
    save_random_upsampler(&model)?;
    let input = dir.join("input.wav");
    let low_rate = DEMO_RATE / args.factor as u32;
    write_wav(
        &input,
        &synthetic_clip(low_rate, args.seconds)?,
        WavEncoding::Float32,
    )?;
    let up = UpsampleArgs {
        input: input.clone(),
        output: dir.join("output.wav"),
        factor: Some(args.factor),
        model: Some(model.clone()),
        out_rate: None,
        spectrogram: Some(dir.join("spectrogram.png")),
        sampling: SamplingArgs {
            steps: Some(args.steps),
            sampler: None,
            schedule: None,
            seed: 0,
            guidance: None,
            device: args.device.clone(),
        },
    };
    println!(
        "end to end: {:.2} s synthetic clip at {low_rate} Hz -> x{} -> {DEMO_RATE} Hz, {} steps (random weights: expect noise)",
        args.seconds, args.factor, args.steps
    );
    let t0 = Instant::now();
    upsample::run(&up)?;
    let took = t0.elapsed().as_secs_f64();
    println!(
        "upsampled {:.2} s of audio in {took:.2} s ({:.2} s per second of audio); model folder: {}",
        args.seconds,
        took / args.seconds,
        model.display()
    );
    Ok(())
}
