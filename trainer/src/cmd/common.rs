//! What every offline command shares: the sampling options, the device, the progress bar, and the
//! checks on input and output paths.

use adiff_core::audio::limits;
use adiff_core::files::same_file;
use adiff_core::models::folder::{SamplerSetting, SamplingDefaults, ScheduleSetting, MAX_STEPS};
use adiff_core::models::Sampling;
use adiff_core::sampler::{
    ADPM2Sampler, AEulerSampler, DpmPp2MSampler, EulerSampler, HeunSampler, KarrasSampler, Sampler,
    StepInfo,
};
use adiff_core::schedule::{KarrasSchedule, Schedule};
use adiff_core::Compat;
use anyhow::{bail, Result};
use candle_core::Device;
use clap::{Args, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};

/// The samplers the command line offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SamplerName {
    /// Ancestral Euler (the reference default).
    Aeuler,
    /// Ancestral DPM2 (two network calls a step).
    Adpm2,
    /// Karras' stochastic Heun sampler (deterministic without churn).
    Karras,
    /// Heun's second-order method (deterministic).
    Heun,
    /// Euler's first-order method (deterministic).
    Euler,
    /// DPM-Solver++(2M) (deterministic, one call a step).
    Dpmpp2m,
}

/// The sigma schedules the command line offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ScheduleName {
    /// Karras et al. (2022) with the model's sigma range (the reference default: 1e-4 to 3, rho 9).
    Karras,
}

/// Sampling options of every command that samples.
#[derive(Debug, Clone, Args)]
pub struct SamplingArgs {
    /// Number of sampling steps, 2 to 10000 (default: the model's).
    #[arg(long)]
    pub steps: Option<usize>,
    /// Sampler (default: the model's).
    #[arg(long, value_enum)]
    pub sampler: Option<SamplerName>,
    /// Sigma schedule (default: the model's).
    #[arg(long, value_enum)]
    pub schedule: Option<ScheduleName>,
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

    /// The sampling settings: the model's defaults, overridden by the options given.
    pub fn sampling(&self, defaults: &SamplingDefaults, compat: Compat) -> Result<Sampling> {
        let mut s = Sampling::from_settings(defaults, compat)?;
        if let Some(n) = self.steps {
            if !(2..=MAX_STEPS).contains(&n) {
                bail!("--steps must be 2 to {MAX_STEPS}, got {n}");
            }
            s.num_steps = n;
        }
        if let Some(name) = self.sampler {
            s.sampler = sampler_named(name, defaults, compat);
        }
        if let Some(ScheduleName::Karras) = self.schedule {
            s.schedule = karras_of(defaults, compat);
        }
        if self.guidance.is_some() {
            // Only conditional models use classifier-free guidance, and no command drives one yet.
            bail!("--guidance applies to conditional models only; this command's model takes no guidance");
        }
        Ok(s)
    }
}

fn karras_of(defaults: &SamplingDefaults, compat: Compat) -> Box<dyn Schedule> {
    #[allow(unreachable_patterns)]
    let (sigma_min, sigma_max, rho) = match defaults.sigma_schedule {
        ScheduleSetting::KarrasSchedule {
            sigma_min,
            sigma_max,
            rho,
        } => (sigma_min, sigma_max, rho),
        // A model whose default schedule is of another family: the reference's Karras range.
        _ => (1e-4, 3.0, 9.0),
    };
    Box::new(KarrasSchedule {
        sigma_min,
        sigma_max,
        rho,
        compat,
    })
}

fn sampler_named(
    name: SamplerName,
    defaults: &SamplingDefaults,
    compat: Compat,
) -> Box<dyn Sampler> {
    match name {
        SamplerName::Aeuler => Box::new(AEulerSampler { compat }),
        SamplerName::Adpm2 => {
            let rho = match defaults.sampler {
                SamplerSetting::ADPM2Sampler { rho } => rho,
                _ => 1.0,
            };
            Box::new(ADPM2Sampler { rho, compat })
        }
        SamplerName::Karras => Box::new(KarrasSampler {
            params: HeunSampler::default(),
            compat,
        }),
        SamplerName::Heun => Box::new(HeunSampler::default()),
        SamplerName::Euler => Box::new(EulerSampler),
        SamplerName::Dpmpp2m => Box::new(DpmPp2MSampler),
    }
}

/// A progress bar over sampling steps, with the estimated time left; hidden when stderr is not a
/// terminal.
pub fn step_bar(total: u64, what: &str) -> ProgressBar {
    let bar = ProgressBar::new(total);
    let style = ProgressStyle::with_template(
        "{msg} [{bar:30}] {pos}/{len} steps, {elapsed} elapsed, ETA {eta}",
    )
    .unwrap_or_else(|_| ProgressStyle::default_bar())
    .progress_chars("=> ");
    bar.set_style(style);
    bar.set_message(what.to_string());
    bar
}

/// A per-step callback that advances `bar` by one step.
pub fn on_step(bar: &ProgressBar) -> impl FnMut(&StepInfo) -> ControlFlow<()> + '_ {
    move |_info: &StepInfo| {
        bar.inc(1);
        ControlFlow::Continue(())
    }
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

/// How a command treats bad samples in its input audio.
#[derive(Debug, Clone, Args)]
pub struct InputArgs {
    /// Replace non-finite input samples by 0 and clamp samples beyond ±1000 to ±1 (counted in a
    /// note) instead of refusing the file.
    #[arg(long)]
    pub repair_samples: bool,
}

/// The model folder of a command other than `upsample`: `--model` (only the upsampler ships; it is
/// `adiff upsample`'s default).
pub fn model_dir(given: Option<&PathBuf>) -> Result<PathBuf> {
    match given {
        Some(p) => Ok(p.clone()),
        None => bail!("no shipped model for this command (only `adiff upsample` has a default): give a model folder with --model DIR (config.json + model.safetensors)"),
    }
}
