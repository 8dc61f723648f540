//! `adiff generate`: new audio from a generator model folder.

use super::audio::write_output;
use super::common::{
    check_out_rate, check_output, check_spectrogram, open_model, report_written, with_progress,
    SamplingArgs,
};
use adiff_core::audio::spectrogram::write_spectrogram_png;
use anyhow::Result;
use clap::Args;
use std::path::PathBuf;

/// Options of `adiff generate`.
#[derive(Debug, Args)]
pub struct GenerateArgs {
    /// Output WAV file.
    #[arg(short, long)]
    pub output: PathBuf,
    /// Length in seconds, above 0 and at most 8 model windows (default: one window).
    #[arg(long)]
    pub seconds: Option<f64>,
    /// Model folder (config.json + model.safetensors).
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// Write the output at this rate instead, 1000 to 384000 Hz.
    #[arg(long)]
    pub out_rate: Option<u32>,
    /// Also write the output's spectrogram as a PNG.
    #[arg(long)]
    pub spectrogram: Option<PathBuf>,
    #[command(flatten)]
    pub sampling: SamplingArgs,
}

/// Runs the command.
pub fn run(args: &GenerateArgs) -> Result<()> {
    check_output(None, &args.output)?;
    check_out_rate(args.out_rate)?;
    check_spectrogram(args.spectrogram.as_deref(), None, &args.output)?;
    let model = open_model(args.model.as_ref(), &args.sampling, false)?;
    let opts = args.sampling.options();
    let clip = with_progress("generating", &[("length", "--seconds")], |on| {
        model.generate(args.seconds, &opts, on)
    })?;
    let written = write_output(&args.output, &clip, args.out_rate)?;
    report_written(&args.output, &written);
    if let Some(png) = &args.spectrogram {
        let mono = written.with_channels(1)?;
        write_spectrogram_png(png, &[&mono.channels()[0]])?;
        println!("wrote {}", png.display());
    }
    Ok(())
}
