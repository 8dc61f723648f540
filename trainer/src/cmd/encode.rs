//! `adiff encode`: audio to an autoencoder latent, saved as a `.safetensors` file with the tensors
//! `latent (batch, channels, frames)` and `info = [sample rate, samples, channels as batch (0/1)]`.

use super::audio::{at_rate, read_input, to_model, Layout};
use super::common::{check_output, model_dir, InputArgs, SamplingArgs};
use super::generate::MAX_WINDOWS;
use super::model;
use adiff_core::models::AnyModel;
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
    let max_secs = (cfg.window_length * MAX_WINDOWS) as f64 / cfg.sample_rate as f64;
    if input.duration_secs() > max_secs {
        bail!(
            "{} is {:.2} s long; the encoder takes the whole clip at once, at most {max_secs:.2} s ({MAX_WINDOWS} model windows): cut it into parts",
            args.input.display(),
            input.duration_secs()
        );
    }
    let clip = at_rate(&input, cfg.sample_rate)?;
    let (x, layout) = to_model(&clip, cfg.channels, &device)?;
    let unit = m.config().unet.total_factor().max(m.factor());
    let len = x.dim(2)?;
    let x = x.pad_with_zeros(2, 0, len.div_ceil(unit) * unit - len)?;
    let mut noise = SeededNoise::new(args.sampling.seed);
    let latent = m.encode(&x, &mut noise).context("encoding")?;
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
