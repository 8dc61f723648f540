//! `adiff inpaint`: regenerate a time span of a clip with a generator model (RePaint inpainting;
//! the rest of the clip comes back untouched).

use super::audio::{read_input, write_output};
use super::common::{
    check_out_rate, check_output, open_model, report_written, with_progress, InputArgs,
    SamplingArgs,
};
use adiff_core::render::{Keep, RenderOptions};
use anyhow::Result;
use clap::Args;
use std::path::PathBuf;

/// Options of `adiff inpaint`.
#[derive(Debug, Args)]
pub struct InpaintArgs {
    /// Input audio (WAV, FLAC, MP3, OGG, ...).
    pub input: PathBuf,
    /// Output WAV file.
    #[arg(short, long)]
    pub output: PathBuf,
    /// Start of the span to regenerate (seconds).
    #[arg(long)]
    pub start: f64,
    /// End of the span to regenerate (seconds).
    #[arg(long)]
    pub end: f64,
    /// RePaint resamples per step, 1 (none) to 100.
    #[arg(long, default_value_t = 2)]
    pub resamples: usize,
    /// Model folder (config.json + model.safetensors).
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
pub fn run(args: &InpaintArgs) -> Result<()> {
    check_output(Some(&args.input), &args.output)?;
    check_out_rate(args.out_rate)?;
    let input = read_input(&args.input, args.input_check.repair_samples)?;
    let model = open_model(args.model.as_ref(), &args.sampling, false)?;
    let opts = RenderOptions {
        resamples: Some(args.resamples),
        ..args.sampling.options()
    };
    let keep = Keep::Outside {
        start: args.start,
        end: args.end,
    };
    let out = with_progress("inpainting", &[("inpaint span", "--start/--end")], |on| {
        model.inpaint(&input, &keep, &opts, on)
    })?;
    let written = write_output(&args.output, &out, args.out_rate)?;
    report_written(&args.output, &written);
    Ok(())
}
