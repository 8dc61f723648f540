//! `adiff inpaint`: regenerate a time span of a clip with a generator model (RePaint-style
//! inpainting through the ADPM2 sampler, `DiffusionInpainter`).

use super::audio::{at_rate, from_model, read_input, seam, to_model, write_output};
use super::common::{check_output, model_dir, step_bar, InputArgs, SamplingArgs};
use super::model;
use super::upsample::exact_length;
use adiff_core::audio::splice::restore_known;
use adiff_core::audio::AudioClip;
use adiff_core::models::bandext::stage::Stage;
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
    /// Write the output at this rate instead (default: the input's rate, Hz).
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
    let clip = at_rate(&input, cfg.sample_rate)?;
    let (a, b) = span(args.start, args.end, cfg.sample_rate, clip.len())?;
    let max_span = cfg.window_length * MAX_SPAN_WINDOWS;
    if b - a > max_span {
        bail!(
            "the span --start {} --end {} is longer than {:.2} s ({MAX_SPAN_WINDOWS} model windows), the longest this model inpaints at once",
            args.start,
            args.end,
            max_span as f64 / cfg.sample_rate as f64
        );
    }
    // Only the span and a window of context on each side go through the network, so memory does
    // not grow with the clip's length; the rest is the input as it is.
    let (lo, hi) = (
        a.saturating_sub(cfg.window_length),
        (b + cfg.window_length).min(clip.len()),
    );
    let region = clip.slice(lo, hi - lo);
    let (x, layout) = to_model(&region, cfg.channels, &device)?;
    let sampling = args.sampling.sampling(&cfg.sampling, cfg.compat)?;
    let mut noise = SeededNoise::new(args.sampling.seed);
    let bar = step_bar(sampling.num_steps as u64, "inpainting");
    let y = m
        .inpaint_span(
            &x,
            (a - lo, b - lo),
            &sampling,
            args.resamples,
            &mut noise,
            &mut super::common::on_step(&bar),
        )
        .context("inpainting")?;
    bar.finish_and_clear();
    let y = y.to_dtype(DType::F32)?;
    let region_out = from_model(&y, layout, cfg.sample_rate)?;
    let base = clip.with_channels(region_out.num_channels())?;
    let mut out = splice(&base, &region_out, lo)?;
    if let Some(stage) = &stage {
        out = stage.apply(&out, &mut noise).context("band-extending")?;
    }
    let mut out = at_rate(&out, input.sample_rate())?;
    if stage.is_some() {
        // The network's band only inside the span: the rest is the input, full band.
        let r = input.sample_rate() as f64;
        let (a, b) = ((args.start * r) as usize, (args.end * r).ceil() as usize);
        let out_len = input.len();
        out = restore_known(
            &input,
            &exact_length(&out, out_len)?,
            a,
            b,
            seam(input.sample_rate()),
        )?;
    }
    let written = write_output(&args.output, &out, args.out_rate)?;
    println!(
        "wrote {} ({} Hz, {:.2} s)",
        args.output.display(),
        written.sample_rate(),
        written.duration_secs()
    );
    Ok(())
}
