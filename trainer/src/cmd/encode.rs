//! `adiff encode`: audio to an autoencoder latent, saved as a `.safetensors` file with the tensors
//! `latent (batch, channels, frames)` and `info = [sample rate, samples, channels as batch (0/1)]`.

use super::audio::{at_rate, read_input, to_model, Layout};
use super::common::{check_output, model_dir, InputArgs, SamplingArgs};
use super::model;
use adiff_core::models::{AnyModel, AudioDiffusionAutoencoder};
use adiff_core::SeededNoise;
use anyhow::{bail, Context, Result};
use candle_core::{Device, Tensor};
use clap::Args;
use std::collections::HashMap;
use std::path::PathBuf;

/// Options of `adiff encode`.
#[derive(Debug, Args)]
pub struct EncodeArgs {
    /// Input audio (WAV, FLAC, MP3, OGG, ...).
    pub input: PathBuf,
    /// Output latent file (.safetensors).
    #[arg(short, long)]
    pub output: PathBuf,
    /// Model folder of an autoencoder (config.json + model.safetensors).
    #[arg(long)]
    pub model: Option<PathBuf>,
    #[command(flatten)]
    pub input_check: InputArgs,
    #[command(flatten)]
    pub sampling: SamplingArgs,
}

fn lcm(a: usize, b: usize) -> usize {
    let gcd = |mut x: usize, mut y: usize| {
        while y != 0 {
            (x, y) = (y, x % y);
        }
        x.max(1)
    };
    a / gcd(a, b) * b
}

/// The latent of `x (batch, channels, length)`, `length` a multiple of `unit`: in one call when
/// it fits in `window` samples, else window by window (memory bounded by one window), each window
/// encoded with a margin of context on both sides that is then cut from its latent.
fn encode_windowed(
    m: &AudioDiffusionAutoencoder,
    x: &Tensor,
    window: usize,
    unit: usize,
    noise: &mut SeededNoise,
) -> Result<Tensor> {
    let len = x.dim(2)?;
    if len <= window {
        return Ok(m.encode(x, noise)?);
    }
    let f = m.factor();
    let margin = (window / 8).div_ceil(unit) * unit;
    let hop = window.saturating_sub(2 * margin).max(unit);
    let mut parts = Vec::new();
    for start in (0..len).step_by(hop) {
        let take = hop.min(len - start);
        let lo = start.saturating_sub(margin);
        let hi = (start + take + margin).min(len);
        let latent = m.encode(&x.narrow(2, lo, hi - lo)?, noise)?;
        parts.push(latent.narrow(2, (start - lo) / f, take / f)?);
    }
    Ok(Tensor::cat(&parts, 2)?)
}

/// Runs the command.
pub fn run(args: &EncodeArgs) -> Result<()> {
    check_output(Some(&args.input), &args.output)?;
    let input = read_input(&args.input, args.input_check.repair_samples)?;
    let dir = model_dir(args.model.as_ref())?;
    let device = args.sampling.device()?;
    let (cfg, any) = model::load(&dir, &device)?;
    let AnyModel::Autoencoder(m) = any else {
        bail!(
            "model folder {} holds a {:?}, not an autoencoder",
            dir.display(),
            cfg.kind
        );
    };
    let clip = at_rate(&input, cfg.sample_rate)?;
    let (x, layout) = to_model(&clip, cfg.channels, &device)?;
    let unit = lcm(m.config().unet.total_factor(), m.factor());
    let len = x.dim(2)?;
    let x = x.pad_with_zeros(2, 0, len.div_ceil(unit) * unit - len)?;
    let mut noise = SeededNoise::new(args.sampling.seed);
    let window = cfg.window_length.div_ceil(unit) * unit;
    let latent = encode_windowed(&m, &x, window, unit, &mut noise).context("encoding")?;
    let info = Tensor::new(
        &[
            cfg.sample_rate as i64,
            len as i64,
            i64::from(layout == Layout::ChannelsAsBatch),
        ],
        &Device::Cpu,
    )?;
    let tensors = HashMap::from([
        ("latent".to_string(), latent.to_device(&Device::Cpu)?),
        ("info".to_string(), info),
    ]);
    adiff_core::files::write_atomic(&args.output, |tmp| {
        candle_core::safetensors::save(&tensors, tmp).map_err(|e| adiff_core::Error::WeightsFile {
            path: args.output.clone(),
            reason: e.to_string(),
        })
    })
    .with_context(|| format!("writing {}", args.output.display()))?;
    println!(
        "wrote {} (latent {:?})",
        args.output.display(),
        tensors["latent"].dims()
    );
    Ok(())
}
