//! The settings of a training run, saved as `run.json` in the run folder so that `--resume`
//! continues with exactly the same ones.

use super::optim::{AdamWConfig, Schedule};
use crate::data::DataConfig;
use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use std::path::Path;

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
    /// Reads `run.json` from a run folder.
    pub fn read(run_dir: &Path) -> Result<Self> {
        let path = run_dir.join(RUN_FILE);
        let text = std::fs::read_to_string(&path).with_context(|| {
            format!(
                "reading {} (is {} a run folder?)",
                path.display(),
                run_dir.display()
            )
        })?;
        serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))
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
