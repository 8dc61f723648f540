//! `adiff inpaint`: regenerate a time span of a clip with a generator model (RePaint-style
//! inpainting through the ADPM2 sampler, `DiffusionInpainter`).

use super::audio::{
    at_rate, check_finite_output, from_model, read_input, seam, to_model, write_output,
};
use super::common::{check_output, model_dir, step_bar, InputArgs, SamplingArgs};
use super::model;
use super::upsample::exact_length;
use adiff_core::audio::splice::restore_known;
use adiff_core::audio::AudioClip;
use adiff_core::models::bandext::stage::Stage;
use adiff_core::models::folder::FolderConfig;
use adiff_core::SeededNoise;
use anyhow::{bail, Context, Result};
use candle_core::DType;
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

/// The span `[start, end)` in samples at `rate`, checked against the clip length.
pub fn span(start: f64, end: f64, rate: u32, len: usize) -> Result<(usize, usize)> {
    if !(start.is_finite() && end.is_finite() && 0.0 <= start && start < end) {
        bail!("need 0 <= --start < --end, got {start} and {end}");
    }
    let (a, b) = (
        (start * rate as f64).round() as usize,
        (end * rate as f64).round() as usize,
    );
    if b > len {
        bail!(
            "--end {end} s is past the end of the clip ({:.3} s)",
            len as f64 / rate as f64
        );
    }
    Ok((a, b))
}

/// Most RePaint resamples per step (each is a full network call).
pub const MAX_RESAMPLES: usize = 100;

/// Longest span `inpaint` regenerates at once, in model windows.
pub const MAX_SPAN_WINDOWS: usize = 8;

/// `clip` with `region`'s samples written over it from frame `at` on.
fn splice(clip: &AudioClip, region: &AudioClip, at: usize) -> Result<AudioClip> {
    let channels = clip
        .channels()
        .iter()
        .zip(region.channels())
        .map(|(c, r)| {
            let mut c = c.clone();
            c[at..at + r.len()].copy_from_slice(r);
            c
        })
        .collect();
    Ok(AudioClip::new(clip.sample_rate(), channels)?)
}

/// Refuses a span longer than [`MAX_SPAN_WINDOWS`] windows of the model `cfg`.
fn check_span_length(args: &InpaintArgs, cfg: &FolderConfig) -> Result<()> {
    let max_secs = (cfg.window_length * MAX_SPAN_WINDOWS) as f64 / cfg.sample_rate as f64;
    if args.end - args.start > max_secs {
        bail!(
            "the span --start {} --end {} is longer than {max_secs:.2} s ({MAX_SPAN_WINDOWS} model windows), the longest this model inpaints at once",
            args.start,
            args.end
        );
    }
    Ok(())
}

/// Runs the command.
pub fn run(args: &InpaintArgs) -> Result<()> {
    check_output(Some(&args.input), &args.output)?;
    super::common::check_out_rate(args.out_rate)?;
    if !(1..=MAX_RESAMPLES).contains(&args.resamples) {
        bail!(
            "--resamples must be 1 to {MAX_RESAMPLES}, got {}",
            args.resamples
        );
    }
    let input = read_input(&args.input, args.input_check.repair_samples)?;
    let dir = model_dir(args.model.as_ref())?;
    let device = args.sampling.device()?;
    let (cfg, m) = model::load_generator(&dir, &device, "inpainting")?;
    let stage = Stage::load(&dir, &cfg)
        .with_context(|| format!("loading the band-extension stage of {}", dir.display()))?;
    let r_in = input.sample_rate();
    let (a_in, b_in) = span(args.start, args.end, r_in, input.len())?;
    check_span_length(args, &cfg)?;
    // Only the span and a model window of context on each side are resampled, band-extended and
    // sent through the network, so memory does not grow with the clip's length; outside the span
    // the output is the input itself (crossfaded over 10 ms at the span's edges).
    let context =
        (cfg.window_length as u64 * r_in as u64).div_ceil(cfg.sample_rate as u64) as usize;
    let (lo, hi) = (
        a_in.saturating_sub(context),
        (b_in + context).min(input.len()),
    );
    let region = at_rate(&input.slice(lo, hi - lo), cfg.sample_rate)?;
    let offset = lo as f64 / r_in as f64;
    let at = |t: f64| (((t - offset) * cfg.sample_rate as f64).round() as usize).min(region.len());
    let (a, b) = (at(args.start), at(args.end));
    if a >= b {
        bail!(
            "the span --start {} --end {} is shorter than one sample at the model's {} Hz",
            args.start,
            args.end,
            cfg.sample_rate
        );
    }
    let (x, layout) = to_model(&region, cfg.channels, &device)?;
    let sampling = args.sampling.sampling(&cfg.sampling, cfg.compat)?;
    let mut noise = SeededNoise::new(args.sampling.seed);
    let bar = step_bar(sampling.num_steps as u64, "inpainting");
    let y = m
        .inpaint_span(
            &x,
            (a, b),
            &sampling,
            args.resamples,
            &mut noise,
            &mut super::common::on_step(&bar),
        )
        .context("inpainting")?;
    bar.finish_and_clear();
    let mut region_out = from_model(&y.to_dtype(DType::F32)?, layout, cfg.sample_rate)?;
    check_finite_output(&region_out, &dir)?;
    if let Some(stage) = &stage {
        region_out = stage
            .apply(&region_out, &mut noise)
            .context("band-extending")?;
    }
    let region_out = exact_length(&at_rate(&region_out, r_in)?, hi - lo)?;
    let base = input.with_channels(region_out.num_channels())?;
    let generated = splice(&base, &region_out, lo)?;
    let out = restore_known(&base, &generated, a_in, b_in, seam(r_in))?;
    let written = write_output(&args.output, &out, args.out_rate)?;
    println!(
        "wrote {} ({} Hz, {:.2} s)",
        args.output.display(),
        written.sample_rate(),
        written.duration_secs()
    );
    Ok(())
}
