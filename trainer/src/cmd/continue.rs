//! `adiff continue`: extend a clip span by span (each span inpaints the second half of a window
//! whose first half is the music so far); the clip itself comes back untouched.

use super::audio::{read_input, write_output};
use super::common::{
    check_out_rate, check_output, open_model, report_written, with_progress, InputArgs,
    SamplingArgs,
};
use adiff_core::render::Extend;
use anyhow::Result;
use clap::Args;
use std::path::PathBuf;

/// Options of `adiff continue`.
#[derive(Debug, Args)]
pub struct ContinueArgs {
    /// Input audio (WAV, FLAC, MP3, OGG, ...).
    pub input: PathBuf,
    /// Output WAV file (the input followed by the continuation).
    #[arg(short, long)]
    pub output: PathBuf,
    /// Number of new spans, each half a model window long: 1 to 1000 (and at most 3 h in all).
    #[arg(long, default_value_t = 2)]
    pub spans: usize,
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
pub fn run(args: &ContinueArgs) -> Result<()> {
    check_output(Some(&args.input), &args.output)?;
    check_out_rate(args.out_rate)?;
    let input = read_input(&args.input, args.input_check.repair_samples)?;
    let model = open_model(args.model.as_ref(), &args.sampling, false)?;
    let opts = args.sampling.options();
    let out = with_progress("continuing", &[("length", "--spans")], |on| {
        model.continue_clip(&input, Extend::Spans(args.spans), &opts, on)
    })?;
    let written = write_output(&args.output, &out, args.out_rate)?;
    report_written(&args.output, &written);
    Ok(())
}
