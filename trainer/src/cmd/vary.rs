//! `adiff vary`: a variation of a clip (audio-to-audio): the clip noised part-way and denoised by a
//! generator model; `--strength` sets how far it departs.

use super::audio::{read_input, write_output};
use super::common::{
    check_out_rate, check_output, open_model, report_written, with_progress, InputArgs,
    SamplingArgs,
};
use adiff_core::render::RenderOptions;
use anyhow::Result;
use clap::Args;
use std::path::PathBuf;

/// Options of `adiff vary`.
#[derive(Debug, Args)]
pub struct VaryArgs {
    /// Input audio (WAV, FLAC, MP3, OGG, ...).
    pub input: PathBuf,
    /// Output WAV file.
    #[arg(short, long)]
    pub output: PathBuf,
    /// How far the variation departs, above 0 (the input) to 1 (new audio).
    #[arg(long, default_value_t = adiff_core::render::DEFAULT_STRENGTH)]
    pub strength: f64,
    /// Model folder of a generator (config.json + model.safetensors).
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// Write the output at this rate instead, 1000 to 384000 Hz (default: the input's rate).
    #[arg(long)]
    pub out_rate: Option<u32>,
    #[command(flatten)]
    pub input_check: InputArgs,
    #[command(flatten)]
    pub sampling: SamplingArgs,
}

/// Runs the command.
pub fn run(args: &VaryArgs) -> Result<()> {
    check_output(Some(&args.input), &args.output)?;
    check_out_rate(args.out_rate)?;
    let input = read_input(&args.input, args.input_check.repair_samples)?;
    let model = open_model(args.model.as_ref(), &args.sampling, false)?;
    let opts = RenderOptions {
        strength: Some(args.strength),
        ..args.sampling.options()
    };
    let out = with_progress("varying", &[], |on| model.variation(&input, &opts, on))?;
    let written = write_output(&args.output, &out, args.out_rate)?;
    report_written(&args.output, &written);
    Ok(())
}
