//! `adiff train` arguments, and the command: new run or `--resume`, the session, the summary,
//! the export of the EMA weights.

use super::adapters::Adapter;
use super::checkpoint;
use super::dist::SingleProcess;
use super::interrupt::{Interrupt, StopSignal};
use super::optim::{AdamWConfig, Schedule};
use super::outputs::{export, write_samples};
use super::session::{run as run_session, SessionOptions, SessionSummary};
use super::settings::{absolute, RunSpec, TrainSettings, RUN_FILE};
use crate::data::{DataConfig, ShortFiles};
use adiff_core::models::folder::CONFIG_FILE;
use adiff_core::models::FolderConfig;
use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};

/// Train a model (generator, upsampler, autoencoder or conditional) on a folder of audio.
///
/// New run: `adiff train --data DIR --model CONFIG.json --out RUN_DIR`.
/// Continue an interrupted run exactly: `adiff train --resume RUN_DIR`.
/// Ctrl-C (or SIGTERM) finishes the current step, writes a checkpoint and the model folder, and
/// prints the command that resumes; a second Ctrl-C quits at once.
/// The run folder gets `run.json`, `metrics.jsonl`, checkpoints (`ckpt-<step>.safetensors`),
/// preview renders in `samples/` and, at the end, the EMA weights as the model folder `model/`.
#[derive(Debug, clap::Args)]
pub struct TrainArgs {
    /// Folder of training audio (searched recursively; WAV, FLAC, MP3, OGG).
    #[arg(long, required_unless_present = "resume")]
    pub data: Option<PathBuf>,
    /// Model config: a model folder's `config.json` (or the folder holding one).
    #[arg(long, required_unless_present = "resume")]
    pub model: Option<PathBuf>,
    /// Run folder to create.
    #[arg(long, required_unless_present = "resume", conflicts_with = "resume")]
    pub out: Option<PathBuf>,
    /// Continue the run in this folder from its newest complete checkpoint (a run stopped
    /// before its first checkpoint starts again from step 0).
    #[arg(long, value_name = "RUN_DIR")]
    pub resume: Option<PathBuf>,
    /// Separate validation folder (otherwise whole files are held out of --data).
    #[arg(long)]
    pub val_data: Option<PathBuf>,
    /// Fraction of the files held out for validation (file i is held out iff i % round(1/f) == 1).
    #[arg(long, default_value_t = 0.1)]
    pub val_fraction: f64,
    /// Files shorter than a window: pad them with zeros, or skip them.
    #[arg(long, value_enum, default_value_t = ShortFiles::Pad)]
    pub short: ShortFiles,
    /// Windows per micro-batch.
    #[arg(long, default_value_t = 8)]
    pub batch_size: usize,
    /// Micro-batches accumulated into one update (effective batch = batch-size x grad-accum).
    #[arg(long, default_value_t = 1)]
    pub grad_accum: usize,
    /// Total optimizer updates.
    #[arg(long, default_value_t = 10_000)]
    pub steps: u64,
    /// Window length in samples (default: the config's `window_length`).
    #[arg(long)]
    pub window: Option<usize>,
    /// Peak learning rate.
    #[arg(long, default_value_t = 1e-4)]
    pub lr: f64,
    /// Linear warm-up updates.
    #[arg(long, default_value_t = 500)]
    pub warmup: u64,
    /// Keep the peak learning rate after warm-up instead of cosine decay.
    #[arg(long)]
    pub no_decay: bool,
    /// Final learning rate of the cosine decay, as a fraction of the peak.
    #[arg(long, default_value_t = 0.1)]
    pub min_lr_ratio: f64,
    /// AdamW decoupled weight decay.
    #[arg(long, default_value_t = 0.01)]
    pub weight_decay: f64,
    /// Clip gradients to this global norm (0 = off).
    #[arg(long, default_value_t = 1.0)]
    pub clip_grad_norm: f64,
    /// EMA decay per update.
    #[arg(long, default_value_t = 0.999)]
    pub ema_decay: f64,
    /// Seed of weights, data order and noise.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Updates between validation losses.
    #[arg(long, default_value_t = 500)]
    pub val_every: u64,
    /// Fixed validation windows.
    #[arg(long, default_value_t = 32)]
    pub val_windows: usize,
    /// Updates between preview renders (0 = none).
    #[arg(long, default_value_t = 1000)]
    pub sample_every: u64,
    /// Sampler steps of a preview render.
    #[arg(long, default_value_t = 50)]
    pub sample_steps: usize,
    /// Preview renders per round.
    #[arg(long, default_value_t = 2)]
    pub num_samples: usize,
    /// Updates between checkpoints.
    #[arg(long, default_value_t = 1000)]
    pub checkpoint_every: u64,
    /// Checkpoints kept.
    #[arg(long, default_value_t = 3)]
    pub keep_checkpoints: usize,
    /// Decoder threads.
    #[arg(long, default_value_t = 2)]
    pub threads: usize,
    /// `cpu`, `cuda` or `cuda:N` (CUDA needs a build with `--features cuda`).
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// End this session after this many total updates (checkpointed), e.g. to share a machine.
    #[arg(long)]
    pub stop_after: Option<u64>,
    /// No progress bar.
    #[arg(long)]
    pub no_progress: bool,
}

fn read_model_config(path: &Path) -> Result<(FolderConfig, PathBuf)> {
    let file = if path.is_dir() {
        path.join(CONFIG_FILE)
    } else {
        path.to_path_buf()
    };
    Ok((FolderConfig::read(&file)?, file))
}

fn new_run(a: &TrainArgs) -> Result<(PathBuf, RunSpec)> {
    let (data, model, out) = match (&a.data, &a.model, &a.out) {
        (Some(d), Some(m), Some(o)) => (d, m, o),
        _ => bail!("a new run needs --data, --model and --out (or --resume RUN_DIR)"),
    };
    let (cfg, file) = read_model_config(model)?;
    super::adapters::model_config(&cfg, &file)?;
    check_out_folder(out)?;
    let settings = TrainSettings {
        data: DataConfig {
            // Absolute, so that `--resume` works from any directory.
            root: absolute(data)?,
            val_root: a.val_data.as_deref().map(absolute).transpose()?,
            val_fraction: a.val_fraction,
            sample_rate: cfg.sample_rate,
            channels: cfg.channels,
            window: a.window.unwrap_or(cfg.window_length),
            short: a.short,
            threads: a.threads.max(1),
        },
        batch_size: a.batch_size,
        grad_accum: a.grad_accum,
        steps: a.steps,
        optimizer: AdamWConfig {
            lr: a.lr,
            weight_decay: a.weight_decay,
            ..Default::default()
        },
        schedule: Schedule {
            warmup_steps: a.warmup,
            cosine_decay: !a.no_decay,
            min_lr_ratio: a.min_lr_ratio,
        },
        clip_grad_norm: a.clip_grad_norm,
        ema_decay: a.ema_decay,
        ema_warmup: true,
        seed: a.seed,
        val_every: a.val_every,
        val_windows: a.val_windows,
        sample_every: a.sample_every,
        sample_steps: a.sample_steps,
        num_samples: a.num_samples,
        checkpoint_every: a.checkpoint_every,
        keep_checkpoints: a.keep_checkpoints.max(1),
        prefetch: 4,
    };
    let spec = RunSpec {
        settings,
        model: serde_json::to_value(&cfg)?,
    };
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    spec.write(out)?;
    Ok((out.clone(), spec))
}

/// Refuses an `--out` folder that holds checkpoints (a run to continue with `--resume`, or
/// another run's files). A folder whose run was stopped before its first checkpoint holds
/// nothing worth keeping: its `run.json` and metrics are replaced by the new run's.
fn check_out_folder(out: &Path) -> Result<()> {
    let has_run = out.join(RUN_FILE).exists();
    if let Some((step, _)) = checkpoint::list(out)?.last() {
        if has_run {
            bail!(
                "{} already holds a run (checkpoint at step {step}); continue it with \
                 `adiff train --resume {}`, or choose another --out",
                out.display(),
                out.display()
            );
        }
        bail!(
            "{} holds checkpoints but no {RUN_FILE}; choose another --out",
            out.display()
        );
    }
    if has_run {
        eprintln!(
            "note: the run in {} stopped before its first checkpoint; starting it over",
            out.display()
        );
    }
    Ok(())
}

/// `s` as one word for a POSIX shell (single-quoted unless it is plainly safe).
fn shell_quote(s: &str) -> String {
    let plain = !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "/._-+,:@%=".contains(c));
    if plain {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

/// The command line that resumes the run in `run_dir` with this session's device.
fn resume_command(run_dir: &Path, a: &TrainArgs) -> Result<String> {
    let dir = absolute(run_dir)?;
    let mut cmd = format!(
        "adiff train --resume {}",
        shell_quote(&dir.to_string_lossy())
    );
    if a.device != "cpu" {
        cmd.push_str(&format!(" --device {}", shell_quote(&a.device)));
    }
    if a.no_progress {
        cmd.push_str(" --no-progress");
    }
    Ok(cmd)
}

/// Tells on stderr where an interrupted run stopped, what was saved, and how to resume it.
fn report_interrupt(
    a: &TrainArgs,
    run_dir: &Path,
    summary: &SessionSummary,
    total: u64,
    signal: StopSignal,
) -> Result<()> {
    let step = summary.step;
    let saved = match &summary.checkpoint {
        Some(ck) => format!(
            "saved the checkpoint {} and the model folder {}",
            ck.display(),
            run_dir.join("model").display()
        ),
        None if step == 0 => "no update was done, so nothing was saved".to_string(),
        None => {
            format!("no update was done this session; the checkpoint of step {step} is unchanged")
        }
    };
    eprintln!(
        "interrupted by {} at step {step} of {total}; {saved}.\nresume with: {}",
        signal.name(),
        resume_command(run_dir, a)?
    );
    Ok(())
}

/// The end-of-session summary on stdout.
fn print_summary(run_dir: &Path, summary: &SessionSummary, total: u64, model_dir: &Path) {
    let d = &summary.data;
    println!(
        "run {}: step {} of {} ({} this session)",
        run_dir.display(),
        summary.step,
        total,
        summary.step - summary.resumed_from
    );
    println!(
        "data: {} training files ({:.1} s), {} validation files",
        d.train_files, d.train_seconds, d.val_files
    );
    println!(
        "skipped: {} undecodable, {} silent, {} shorter than a window",
        d.undecodable.len(),
        d.silent,
        d.short_skipped
    );
    for p in &d.undecodable {
        println!("  undecodable: {}", p.display());
    }
    if let (Some(a), Some(b)) = (summary.first_val_loss, summary.last_val_loss) {
        println!("validation loss: {a:.5} -> {b:.5}");
    }
    println!("throughput: {:.2} windows/s", summary.windows_per_sec);
    if summary.step > 0 {
        println!("exported EMA weights to {}", model_dir.display());
    }
}

/// Runs `adiff train`. A run stopped by SIGINT or SIGTERM exits the process with 130 or 143
/// after its checkpoint, its model folder and the resume hint are written.
pub fn run(a: TrainArgs) -> Result<()> {
    let interrupt = Interrupt::install().context("installing the SIGINT/SIGTERM handlers")?;
    let resume = a.resume.is_some();
    let (run_dir, spec) = match &a.resume {
        Some(dir) => (dir.clone(), RunSpec::read(dir)?),
        None => new_run(&a)?,
    };
    let source = run_dir.join(RUN_FILE);
    let cfg: FolderConfig = serde_json::from_value(spec.model.clone())
        .with_context(|| format!("the model config in {}", source.display()))?;
    let device = adiff_core::device::parse_device(&a.device)?;
    let rate = cfg.sample_rate;
    let samples_dir = run_dir.clone();
    let mut on_samples = move |step: u64,
                               reference: &candle_core::Tensor,
                               rendered: &candle_core::Tensor|
          -> Result<()> {
        write_samples(&samples_dir, step, rate, reference, rendered).map(|_| ())
    };
    let opts = SessionOptions {
        resume,
        stop_after: a.stop_after,
        device,
        progress: !a.no_progress,
        on_samples: Some(&mut on_samples),
        sync: &SingleProcess,
        interrupt: Some(&interrupt),
    };
    let build = |vb: candle_nn::VarBuilder| -> Result<Box<dyn super::model::Trainable>> {
        Ok(Box::new(Adapter::new(&cfg, &source, vb)?))
    };
    let (summary, weights) = run_session(&run_dir, &spec.settings, &build, opts)?;
    let model_dir = run_dir.join("model");
    // A run stopped before its first update has nothing trained to export.
    if summary.step > 0 {
        export(&weights.ema, &cfg, &model_dir)?;
    }

    print_summary(&run_dir, &summary, spec.settings.steps, &model_dir);
    if let Some(signal) = summary.interrupted {
        report_interrupt(&a, &run_dir, &summary, spec.settings.steps, signal)?;
        std::process::exit(signal.exit_code());
    }
    Ok(())
}
