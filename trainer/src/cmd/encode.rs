//! `adiff encode`: audio to an autoencoder latent, saved as a `.safetensors` file with the tensors
//! `latent (batch, channels, frames)` and `info = [sample rate, samples, channels as batch (0/1)]`.

use super::audio::read_input;
use super::common::{check_output, open_model, InputArgs, SamplingArgs};
use anyhow::{Context, Result};
use clap::Args;
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
    let model = open_model(args.model.as_ref(), &args.sampling, false)?;
    let latent = model
        .encode(&input, &args.sampling.options())
        .map_err(|e| super::common::flag_error(e, &[]))
        .context("encoding")?;
    latent
        .save(&args.output)
        .with_context(|| format!("writing {}", args.output.display()))?;
    println!(
        "wrote {} (latent {:?})",
        args.output.display(),
        latent.tensor.dims()
    );
    Ok(())
}
