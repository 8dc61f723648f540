//! `adiff upsample`: restore the missing highs of a clip. With no `--factor`, at the clip's own
//! rate: where its content ends is measured (or given with `--bandwidth`) and the band above is
//! restored. `--factor K` writes K times the input's rate. Default model: the shipped
//! band-extension upsampler embedded in the binary.

use super::audio::{read_input, write_before_after, write_output};
use super::common::{self as c, flag_error, with_progress, InputArgs, SamplingArgs};
use adiff_core::models::folder::ModelKind;
use adiff_core::render::UpsampleTarget;
use anyhow::Result;
use clap::Args;
use std::path::PathBuf;

/// Options of `adiff upsample`.
#[derive(Debug, Args)]
pub struct UpsampleArgs {
    /// Input audio (WAV, FLAC, MP3, OGG, ...).
    pub input: PathBuf,
    /// Output WAV file.
    #[arg(short, long)]
    pub output: PathBuf,
    /// Write K times the input's rate (a factor the model serves) instead of restoring the band
    /// at the input's own rate.
    #[arg(long, conflicts_with = "bandwidth")]
    pub factor: Option<usize>,
    /// Where the input's content ends (Hz), instead of measuring it; the band above is restored.
    #[arg(long)]
    pub bandwidth: Option<f64>,
    /// Model folder (config.json + model.safetensors); default: the shipped band-extension
    /// upsampler embedded in the binary (models/upsampler).
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// Write the output at this rate instead, 1000 to 384000 Hz.
    #[arg(long)]
    pub out_rate: Option<u32>,
    /// Also write a before/after spectrogram PNG.
    #[arg(long)]
    pub spectrogram: Option<PathBuf>,
    #[command(flatten)]
    pub input_check: InputArgs,
    #[command(flatten)]
    pub sampling: SamplingArgs,
}

/// Runs the command.
pub fn run(args: &UpsampleArgs) -> Result<()> {
    c::check_output(Some(&args.input), &args.output)?;
    c::check_out_rate(args.out_rate)?;
    c::check_spectrogram(args.spectrogram.as_deref(), Some(&args.input), &args.output)?;
    let input = read_input(&args.input, args.input_check.repair_samples)?;
    let model = c::open_model(args.model.as_ref(), &args.sampling, true)?;
    let target = match (args.factor, args.bandwidth) {
        (Some(k), _) => UpsampleTarget::Factor(Some(k)),
        (None, Some(hz)) => UpsampleTarget::Bandwidth(hz),
        (None, None) => UpsampleTarget::Auto,
    };
    let opts = args.sampling.options();
    if model.kind() == ModelKind::BandExtension && opts.sets_sampling() {
        println!("note: {} is a band-extension model, not a diffusion model: --steps, --sampler and --schedule do not apply", model.name());
    }
    let flags = |e| flag_error(e, &[]);
    model.check_options(&opts).map_err(flags)?;
    let plan = model.plan_upsample(&input, target).map_err(flags)?;
    println!("{}: {}", model.name(), plan.describe());
    if args.spectrogram.is_none() && args.out_rate.is_none_or(|r| r == plan.out_rate) {
        // Written block by block: memory does not grow with the input's length.
        let frames = with_progress("upsampling", &[], |on| {
            model.upsample_to_wav(&input, &plan, &opts, &args.output, on)
        })?;
        let secs = frames as f64 / plan.out_rate as f64;
        println!(
            "wrote {} ({} Hz, {} channels, {secs:.2} s)",
            args.output.display(),
            plan.out_rate,
            plan.out_channels
        );
        return Ok(());
    }
    plan.check_size(input.len(), false).map_err(flags)?;
    let (out, _) = with_progress("upsampling", &[], |on| {
        model.upsample(&input, target, &opts, on)
    })?;
    let written = write_output(&args.output, &out, args.out_rate)?;
    c::report_written(&args.output, &written);
    if let Some(png) = &args.spectrogram {
        write_before_after(png, &input, &written)?;
        println!("wrote {} (top: input, bottom: output)", png.display());
    }
    Ok(())
}
