//! `adiff decode`: an autoencoder latent written by `adiff encode` back to audio by sampling.

use super::audio::write_output;
use super::common::{
    check_out_rate, check_output, open_model, report_written, with_progress, SamplingArgs,
};
use adiff_core::render::Latent;
use anyhow::Result;
use clap::Args;
use std::path::PathBuf;

/// Options of `adiff decode`.
#[derive(Debug, Args)]
pub struct DecodeArgs {
    /// Latent file written by `adiff encode` (.safetensors).
    pub input: PathBuf,
    /// Output WAV file.
    #[arg(short, long)]
    pub output: PathBuf,
    /// Model folder of the autoencoder that encoded it.
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// Write the output at this rate instead, 1000 to 384000 Hz.
    #[arg(long)]
    pub out_rate: Option<u32>,
    #[command(flatten)]
    pub sampling: SamplingArgs,
}

/// Runs the command.
pub fn run(args: &DecodeArgs) -> Result<()> {
    check_output(Some(&args.input), &args.output)?;
    check_out_rate(args.out_rate)?;
    let device = args.sampling.device()?;
    let latent = Latent::load(&args.input, &device)?;
    let model = open_model(args.model.as_ref(), &args.sampling, false)?;
    let opts = args.sampling.options();
    let clip = with_progress("decoding", &[], |on| model.decode(&latent, &opts, on))?;
    let written = write_output(&args.output, &clip, args.out_rate)?;
    report_written(&args.output, &written);
    Ok(())
}
