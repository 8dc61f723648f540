//! `adiff generate`: unconditional generation with a generator model folder.

use super::audio::{from_model, write_output, Layout};
use super::common::{check_output, model_dir, step_bar, SamplingArgs};
use super::model;
use adiff_core::models::bandext::stage::Stage;
use adiff_core::{NoiseSource, SeededNoise};
use anyhow::{bail, Context, Result};
use clap::Args;
use std::path::PathBuf;

/// Longest generation, in model windows: the whole clip goes through the network at once, and its
/// memory grows with the length (the default UNet needs about 3.5 KB a sample).
pub const MAX_WINDOWS: usize = 8;

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
    super::common::check_out_rate(args.out_rate)?;
    super::common::check_spectrogram(args.spectrogram.as_deref(), None, &args.output)?;
    let dir = model_dir(args.model.as_ref())?;
    let device = args.sampling.device()?;
    let (cfg, m) = model::load_generator(&dir, &device, "generating")?;
    let stage = Stage::load(&dir, &cfg)
        .with_context(|| format!("loading the band-extension stage of {}", dir.display()))?;
    let unit = m.config().unet.total_factor();
    let window_secs = cfg.window_length as f64 / cfg.sample_rate as f64;
    let max_seconds = window_secs * MAX_WINDOWS as f64;
    let want = match args.seconds {
        Some(s) if s.is_finite() && s > 0.0 && s <= max_seconds => {
            (s * cfg.sample_rate as f64).round() as usize
        }
        Some(s) => bail!("--seconds must be above 0 and at most {max_seconds:.2} for this model ({MAX_WINDOWS} windows of {:.2} s, generated at once; `adiff continue` makes longer audio), got {s}", window_secs),
        None => cfg.window_length,
    };
    if want == 0 {
        bail!(
            "--seconds is shorter than one sample at {} Hz",
            cfg.sample_rate
        );
    }
    let len = want
        .checked_next_multiple_of(unit)
        .context("--seconds is too long")?;
    let sampling = args.sampling.sampling(&cfg.sampling, cfg.compat)?;
    let mut noise = SeededNoise::new(args.sampling.seed);
    let start = noise.randn(&[1, cfg.channels, len], &device)?;
    let bar = step_bar(sampling.num_steps as u64, "generating");
    let y = m
        .sample(
            &start,
            &sampling,
            &mut noise,
            &mut super::common::on_step(&bar),
        )
        .context("generating")?;
    bar.finish_and_clear();
    let mut clip = from_model(&y.narrow(2, 0, want)?, Layout::Native, cfg.sample_rate)?;
    super::audio::check_finite_output(&clip, &dir)?;
    if let Some(stage) = &stage {
        // The fill continues the same seeded stream.
        clip = stage.apply(&clip, &mut noise).context("band-extending")?;
    }
    let written = write_output(&args.output, &clip, args.out_rate)?;
    println!(
        "wrote {} ({} Hz, {:.2} s)",
        args.output.display(),
        written.sample_rate(),
        written.duration_secs()
    );
    if let Some(png) = &args.spectrogram {
        let mono = written.with_channels(1)?;
        adiff_core::audio::spectrogram::write_spectrogram_png(png, &[&mono.channels()[0]])?;
        println!("wrote {}", png.display());
    }
    Ok(())
}
