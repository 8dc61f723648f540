//! `adiff upsample`: restore the missing highs of a clip. With no `--factor`, at the clip's own
//! rate: where its content ends is measured (or given with `--bandwidth`) and the band above is
//! restored. `--factor K` writes K times the input's rate. Default model: the shipped
//! band-extension upsampler embedded in the binary.

use super::audio::{at_rate, read_input, write_output};
use super::common::{check_out_rate, check_output, check_spectrogram, open_model, report_written, with_progress, InputArgs, SamplingArgs};
use adiff_core::audio::{limits, spectrogram::write_spectrogram_png, AudioClip, WavEncoding, WavSink};
use adiff_core::models::folder::ModelKind;
use adiff_core::render::UpsampleTarget;
use anyhow::{bail, Context, Result};
use clap::Args;
use std::path::{Path, PathBuf};

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
    check_output(Some(&args.input), &args.output)?;
    check_out_rate(args.out_rate)?;
    check_spectrogram(args.spectrogram.as_deref(), Some(&args.input), &args.output)?;
    let input = read_input(&args.input, args.input_check.repair_samples)?;
    let model = open_model(args.model.as_ref(), &args.sampling, true)?;
    let target = match (args.factor, args.bandwidth) {
        (Some(k), _) => UpsampleTarget::Factor(Some(k)),
        (None, Some(hz)) => UpsampleTarget::Bandwidth(hz),
        (None, None) => UpsampleTarget::Auto,
    };
    let opts = args.sampling.options();
    if model.kind() == ModelKind::BandExtension && opts.sets_sampling() {
        println!("note: {} is a band-extension model, not a diffusion model: --steps, --sampler and --schedule do not apply", model.name());
    }
    let plan = model.plan_upsample(&input, target)?;
    println!("{}: {}", model.name(), plan.describe());
    let (frames, channels) = (
        (input.len() as u64 * plan.out_rate as u64 / plan.in_rate as u64) as usize,
        input.num_channels(),
    );
    let streamed = args.spectrogram.is_none() && args.out_rate.is_none_or(|r| r == plan.out_rate);
    let max = if streamed {
        limits::max_stream_frames(plan.out_rate, channels, 4)
    } else {
        limits::max_frames(plan.out_rate, channels)
    };
    if frames > max {
        bail!(
            "the output {} would be {:.0} s at {} Hz x {channels} channels; at most {:.0} s{}",
            args.output.display(),
            frames as f64 / plan.out_rate as f64,
            plan.out_rate,
            max as f64 / plan.out_rate as f64,
            if streamed { "" } else { " when --spectrogram or --out-rate keep it in memory" }
        );
    }
    if streamed {
        // Written block by block: memory does not grow with the input's length.
        let mut sink = WavSink::create(&args.output, plan.out_rate, channels, WavEncoding::Float32)?;
        with_progress("upsampling", |on| {
            model.upsample_into(&input, &plan, &opts, on, &mut |block| sink.write(block))
        })?;
        let written = sink.frames();
        sink.finish()?;
        println!(
            "wrote {} ({} Hz, {channels} channels, {:.2} s)",
            args.output.display(),
            plan.out_rate,
            written as f64 / plan.out_rate as f64
        );
        return Ok(());
    }
    let (out, _) = with_progress("upsampling", |on| model.upsample(&input, target, &opts, on))?;
    let written = write_output(&args.output, &out, args.out_rate)?;
    report_written(&args.output, &written);
    if let Some(png) = &args.spectrogram {
        write_before_after(png, &input, &written)?;
        println!("wrote {} (top: input, bottom: output)", png.display());
    }
    Ok(())
}

/// A before/after spectrogram PNG: `input` brought to `output`'s rate (top), `output` (bottom).
pub fn write_before_after(png: &Path, input: &AudioClip, output: &AudioClip) -> Result<()> {
    let before = at_rate(input, output.sample_rate())?.with_channels(1)?;
    let after = output.with_channels(1)?;
    write_spectrogram_png(png, &[&before.channels()[0], &after.channels()[0]])
        .context("writing the spectrogram")?;
    Ok(())
}
