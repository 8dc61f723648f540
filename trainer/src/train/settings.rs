//! The settings of a training run, saved as `run.json` in the run folder so that `--resume`
//! continues with exactly the same ones.

use super::optim::{AdamWConfig, Schedule};
use crate::data::DataConfig;
use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// File name of the saved run description in a run folder.
pub const RUN_FILE: &str = "run.json";

/// Everything that determines a run besides the model config.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainSettings {
    /// Where the audio comes from and how windows are cut.
    pub data: DataConfig,
    /// Windows per micro-batch.
    pub batch_size: usize,
    /// Micro-batches whose gradients are summed (averaged) into one update.
    pub grad_accum: usize,
    /// Total optimizer updates.
    pub steps: u64,
    /// AdamW hyper-parameters.
    pub optimizer: AdamWConfig,
    /// Learning-rate schedule.
    pub schedule: Schedule,
    /// Maximum global gradient norm (0 = no clipping).
    pub clip_grad_norm: f64,
    /// EMA decay per update.
    pub ema_decay: f64,
    /// Warm the EMA decay up as `min(decay, (1 + t) / (10 + t))`.
    pub ema_warmup: bool,
    /// Seed of the initial weights, the data order and the diffusion noise.
    pub seed: u64,
    /// Updates between validation losses (0 = only at the end).
    pub val_every: u64,
    /// Number of fixed validation windows.
    pub val_windows: usize,
    /// Updates between preview renders from the EMA weights (0 = never).
    pub sample_every: u64,
    /// Sampler steps of a preview render.
    pub sample_steps: usize,
    /// Preview renders per round.
    pub num_samples: usize,
    /// Updates between checkpoints (a checkpoint is also written at the end).
    pub checkpoint_every: u64,
    /// Checkpoints kept (the newest).
    pub keep_checkpoints: usize,
    /// Batches the loader cuts ahead.
    pub prefetch: usize,
}

/// `run.json`: the settings and the model config (a model folder's `config.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunSpec {
    pub settings: TrainSettings,
    pub model: serde_json::Value,
}

impl RunSpec {
    /// Reads `run.json` from a run folder and makes its data folders absolute.
    ///
    /// New runs store absolute paths, so `--resume` works from any directory. Older `run.json`
    /// files may hold `--data`/`--val-data` as typed, relative to the directory the run was
    /// started from (the training process's working directory, which is how those versions read
    /// them); such a path is resolved against the current directory, the only sensible base
    /// there is, and a folder that is not there is an error naming `run.json` and saying so.
    pub fn read(run_dir: &Path) -> Result<Self> {
        let path = run_dir.join(RUN_FILE);
        let text = std::fs::read_to_string(&path).with_context(|| {
            format!(
                "reading {} (is {} a run folder?)",
                path.display(),
                run_dir.display()
            )
        })?;
        let mut spec: Self =
            serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
        spec.settings.data.root = resolve_data_folder(&spec.settings.data.root, &path)?;
        if let Some(v) = &spec.settings.data.val_root {
            spec.settings.data.val_root = Some(resolve_data_folder(v, &path)?);
        }
        Ok(spec)
    }

    /// Writes `run.json` into a run folder (temporary file + rename).
    pub fn write(&self, run_dir: &Path) -> Result<()> {
        let path = run_dir.join(RUN_FILE);
        let tmp = run_dir.join(format!(".{RUN_FILE}.tmp"));
        std::fs::write(&tmp, serde_json::to_string_pretty(self)?)
            .with_context(|| format!("writing {}", tmp.display()))?;
        std::fs::rename(&tmp, &path).with_context(|| format!("writing {}", path.display()))?;
        Ok(())
    }
}

/// `path` made absolute against the current directory (not resolving links, not requiring it to
/// exist), for storing in `run.json`.
pub fn absolute(path: &Path) -> Result<PathBuf> {
    std::path::absolute(path).with_context(|| format!("making {} absolute", path.display()))
}

/// A data folder read from `run_file`: absolute ones as they are, a relative one (older
/// `run.json` files) against the current directory, where it must exist.
fn resolve_data_folder(folder: &Path, run_file: &Path) -> Result<PathBuf> {
    if folder.is_absolute() {
        return Ok(folder.to_path_buf());
    }
    let resolved = absolute(folder)?;
    if !resolved.is_dir() {
        bail!(
            "{} names the data folder `{}` relative to the directory the run was started from, \
             and {} is not a folder: resume from that directory, or write the absolute path \
             into {}",
            run_file.display(),
            folder.display(),
            resolved.display(),
            run_file.display()
        );
    }
    Ok(resolved)
}
