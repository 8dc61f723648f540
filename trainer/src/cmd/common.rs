//! What every offline command shares: the sampling options, the model, the device, the progress
//! bar, and the checks on input and output paths.

use adiff_core::audio::limits;
use adiff_core::files::same_file;
use adiff_core::render::{shipped, Model, RenderOptions, ScheduleKind};
use adiff_core::sampler::SamplerKind;
use anyhow::{bail, Context, Result};
use candle_core::Device;
use clap::builder::{PossibleValue, PossibleValuesParser, TypedValueParser};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};

/// `--sampler`: the names of [`SamplerKind`], the one sampler list, each with its line of help.
fn sampler_parser() -> impl TypedValueParser<Value = SamplerKind> {
    let values = SamplerKind::ALL.map(|k| PossibleValue::new(k.name()).help(k.about()));
    PossibleValuesParser::new(values).try_map(|s| s.parse::<SamplerKind>())
}

/// `--schedule`: the names of [`ScheduleKind`].
fn schedule_parser() -> impl TypedValueParser<Value = ScheduleKind> {
    PossibleValuesParser::new(ScheduleKind::ALL.map(ScheduleKind::name))
        .try_map(|s| s.parse::<ScheduleKind>())
}

/// Sampling options of every command that samples.
#[derive(Debug, Clone, Args)]
pub struct SamplingArgs {
    /// Number of sampling steps, 2 to 10000 (default: the model's).
    #[arg(long)]
    pub steps: Option<usize>,
    /// Sampler (default: the model's; inpaint and continue need adpm2, their default).
    #[arg(long, value_parser = sampler_parser())]
    pub sampler: Option<SamplerKind>,
    /// Sigma schedule (default: the model's).
    #[arg(long, value_parser = schedule_parser())]
    pub schedule: Option<ScheduleKind>,
    /// Seed of every random draw: the same seed gives the same output.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Classifier-free guidance scale (conditional models; default: the model's).
    #[arg(long)]
    pub guidance: Option<f64>,
    /// Compute device: `cpu`, `cuda` or `cuda:N` (CUDA needs a build with `--features cuda`).
    #[arg(long, default_value = "cpu")]
    pub device: String,
}

impl SamplingArgs {
    /// The device named by `--device`.
    pub fn device(&self) -> Result<Device> {
        Ok(adiff_core::device::parse_device(&self.device)?)
    }

    /// The render options these arguments give.
    pub fn options(&self) -> RenderOptions {
        RenderOptions {
            steps: self.steps,
            sampler: self.sampler,
            schedule: self.schedule,
            seed: self.seed,
            guidance: self.guidance,
            ..RenderOptions::default()
        }
    }
}

/// The model of `--model DIR` on the device of `--device`; with no folder, the shipped upsampler
/// when `shipped_default` (`adiff upsample`), else a message that the command needs one.
pub fn open_model(
    given: Option<&PathBuf>,
    sampling: &SamplingArgs,
    shipped_default: bool,
) -> Result<Model> {
    let device = sampling.device()?;
    match given {
        Some(dir) => Model::open(dir, &device)
            .with_context(|| format!("opening model folder {}", dir.display())),
        None if shipped_default => Ok(shipped::upsampler()?),
        None => bail!("no shipped model for this command (only `adiff upsample` has a default): give a model folder with --model DIR (config.json + model.safetensors)"),
    }
}

/// The flags of every command, by the name adiff-core gives the input they set.
const FLAGS: &[(&str, &str)] = &[
    ("steps", "--steps"),
    ("sampler", "--sampler"),
    ("guidance", "--guidance"),
    ("resamples", "--resamples"),
    ("strength", "--strength"),
    ("factor", "--factor"),
    ("bandwidth", "--bandwidth"),
    ("spans", "--spans"),
];

/// A core error about one of the command's inputs, naming the flag that set it (`--steps`
/// instead of `steps`); `own` adds the command's own names (`("length", "--seconds")`).
pub fn flag_error(e: adiff_core::Error, own: &[(&str, &str)]) -> anyhow::Error {
    if let adiff_core::Error::InvalidInput { name, reason } = &e {
        if let Some((_, flag)) = own.iter().chain(FLAGS).find(|(n, _)| n == name) {
            return anyhow::anyhow!("{flag}: {reason}");
        }
    }
    e.into()
}

/// Runs `job` with a progress bar over its fraction done (hidden when stderr is not a terminal);
/// an error about an input names its flag ([`flag_error`], with the command's `own` names).
pub fn with_progress<T>(
    what: &str,
    own: &[(&str, &str)],
    job: impl FnOnce(&mut dyn FnMut(f32) -> ControlFlow<()>) -> adiff_core::Result<T>,
) -> Result<T> {
    let bar = ProgressBar::new(1000);
    let style =
        ProgressStyle::with_template("{msg} [{bar:30}] {percent}%, {elapsed} elapsed, ETA {eta}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> ");
    bar.set_style(style);
    bar.set_message(what.to_string());
    let out = job(&mut |f: f32| {
        bar.set_position((f.clamp(0.0, 1.0) * 1000.0) as u64);
        ControlFlow::Continue(())
    });
    bar.finish_and_clear();
    out.map_err(|e| flag_error(e, own))
        .with_context(|| what.to_string())
}

/// Prints the result line of a command that wrote `clip` to `path`.
pub fn report_written(path: &Path, clip: &adiff_core::audio::AudioClip) {
    println!(
        "wrote {} ({} Hz, {} channels, {:.2} s)",
        path.display(),
        clip.sample_rate(),
        clip.num_channels(),
        clip.duration_secs()
    );
}

/// Refuses an output path that is the input under any name (the same file by identity: a hard
/// or symbolic link too), a folder, or a file in a folder that does not exist.
pub fn check_output(input: Option<&Path>, output: &Path) -> Result<()> {
    if let Some(input) = input {
        if same_path(input, output) || same_file(input, output) {
            bail!(
                "the output {} would overwrite the input {} (the same file); choose another output path",
                output.display(),
                input.display()
            );
        }
    }
    if output.is_dir() {
        bail!(
            "the output {} is a folder; give a file name",
            output.display()
        );
    }
    if let Some(dir) = output.parent().filter(|d| !d.as_os_str().is_empty()) {
        if !dir.is_dir() {
            bail!(
                "the output folder {} does not exist (for {})",
                dir.display(),
                output.display()
            );
        }
    }
    Ok(())
}

/// Refuses a `--spectrogram` path that is the input or the output (under any name), a folder, or
/// in a folder that does not exist: checked before anything runs, so the WAV is not written when
/// the picture cannot be.
pub fn check_spectrogram(png: Option<&Path>, input: Option<&Path>, output: &Path) -> Result<()> {
    let Some(png) = png else { return Ok(()) };
    for (other, what) in [(Some(output), "output"), (input, "input")] {
        if let Some(other) = other {
            if same_path(png, other) || same_file(png, other) {
                bail!(
                    "--spectrogram {} is the {what} file; give the picture its own path",
                    png.display()
                );
            }
        }
    }
    check_output(None, png).map_err(|e| anyhow::anyhow!("--spectrogram: {e}"))
}

/// Whether two paths spell the same location once made absolute (`./a.wav` and `a.wav`), for
/// files that do not exist yet.
fn same_path(a: &Path, b: &Path) -> bool {
    match (std::path::absolute(a), std::path::absolute(b)) {
        (Ok(x), Ok(y)) => x == y,
        _ => a == b,
    }
}

/// Refuses an `--out-rate` outside the supported rates.
pub fn check_out_rate(rate: Option<u32>) -> Result<()> {
    if let Some(r) = rate {
        if !(limits::MIN_RATE..=limits::MAX_RATE).contains(&r) {
            bail!(
                "--out-rate {r} Hz is outside the supported {} to {} Hz",
                limits::MIN_RATE,
                limits::MAX_RATE
            );
        }
    }
    Ok(())
}

/// The arguments of a command that takes a clip and writes a clip with a generator model
/// (`inpaint`, `continue`, `vary`).
#[derive(Debug, Clone, Args)]
pub struct ClipArgs {
    /// Input audio (WAV, FLAC, MP3, OGG, ...).
    pub input: PathBuf,
    /// Output WAV file.
    #[arg(short, long)]
    pub output: PathBuf,
    /// Model folder of a generator (config.json + model.safetensors).
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// Write the output at this rate instead, 1000 to 384000 Hz (default: the input's rate).
    #[arg(long)]
    pub out_rate: Option<u32>,
    #[command(flatten)]
    pub input_check: InputArgs,
}

impl ClipArgs {
    /// Checks the output path and `--out-rate` before anything runs, then reads the input.
    pub fn read(&self) -> Result<adiff_core::audio::AudioClip> {
        check_output(Some(&self.input), &self.output)?;
        check_out_rate(self.out_rate)?;
        super::audio::read_input(&self.input, self.input_check.repair_samples)
    }

    /// Writes `clip` (at `--out-rate` when given) and says so.
    pub fn write(&self, clip: &adiff_core::audio::AudioClip) -> Result<()> {
        let written = super::audio::write_output(&self.output, clip, self.out_rate)?;
        report_written(&self.output, &written);
        Ok(())
    }
}

/// How a command treats bad samples in its input audio.
#[derive(Debug, Clone, Args)]
pub struct InputArgs {
    /// Replace non-finite input samples by 0 and clamp samples beyond ±1000 to ±1 (counted in a
    /// note) instead of refusing the file.
    #[arg(long)]
    pub repair_samples: bool,
}
