//! Training data: a folder of audio files (recursive; WAV, FLAC, MP3, OGG) decoded on loader
//! threads, resampled to the model rate, mapped to the model's channel count, split into
//! training and validation by file, and cut into random windows by a loader thread.

pub mod decode;
pub mod loader;
pub mod scan;
pub mod windows;

use anyhow::{bail, Result};
use decode::{decode_all, Decoded, SILENCE_PEAK};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// What to do with files shorter than one window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum ShortFiles {
    /// Keep them; their windows are padded with zeros at the end.
    Pad,
    /// Leave them out (counted in the summary).
    Skip,
}

/// Where the data comes from and how it is shaped.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DataConfig {
    /// Folder scanned recursively for audio.
    pub root: PathBuf,
    /// Optional separate validation folder; otherwise files are held out of `root`.
    pub val_root: Option<PathBuf>,
    /// Fraction of the files of `root` held out for validation (when `val_root` is not given).
    pub val_fraction: f64,
    /// Model sample rate in Hz.
    pub sample_rate: u32,
    /// Model channels (1 mono, 2 stereo).
    pub channels: usize,
    /// Window length in samples.
    pub window: usize,
    /// Short-file policy.
    pub short: ShortFiles,
    /// Decoder threads.
    pub threads: usize,
}

/// What the scan found, for the run summary.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct DataSummary {
    pub train_files: usize,
    pub val_files: usize,
    /// Files that could not be decoded (each reported once as a warning).
    pub undecodable: Vec<PathBuf>,
    /// Files that were silent (peak below -80 dBFS), left out.
    pub silent: usize,
    /// Files shorter than a window, left out under `--short skip`.
    pub short_skipped: usize,
    /// Seconds of training audio (at the model rate).
    pub train_seconds: f64,
}

/// Decoded training and validation audio.
pub struct Dataset {
    pub train: Vec<Decoded>,
    pub val: Vec<Decoded>,
    pub summary: DataSummary,
}

impl Dataset {
    /// Scans, decodes and filters. Errors before training when no usable audio is left:
    /// an empty folder, only undecodable files, or only silence.
    pub fn load(cfg: &DataConfig) -> Result<Self> {
        let all = scan::scan(&cfg.root)?;
        if all.is_empty() {
            bail!(
                "no audio files (.{}) under {}",
                scan::EXTENSIONS.join(", ."),
                cfg.root.display()
            );
        }
        let (train_paths, val_paths) = match &cfg.val_root {
            Some(v) => (all, scan::scan(v)?),
            None => scan::split_by_file(all, cfg.val_fraction),
        };
        let mut summary = DataSummary::default();
        let train = keep_usable(
            decode_all(&train_paths, cfg.sample_rate, cfg.channels, cfg.threads),
            cfg,
            &mut summary,
        );
        let val = keep_usable(
            decode_all(&val_paths, cfg.sample_rate, cfg.channels, cfg.threads),
            cfg,
            &mut summary,
        );
        if train.is_empty() {
            bail!(
                "no usable training audio under {}: {} file(s) found, {} undecodable, {} silent, {} shorter than a window",
                cfg.root.display(),
                train_paths.len(),
                summary.undecodable.len(),
                summary.silent,
                summary.short_skipped
            );
        }
        summary.train_files = train.len();
        summary.val_files = val.len();
        summary.train_seconds =
            train.iter().map(|d| d.len() as f64).sum::<f64>() / cfg.sample_rate as f64;
        Ok(Self {
            train,
            val,
            summary,
        })
    }
}

fn keep_usable(
    decoded: Vec<adiff_core::Result<Decoded>>,
    cfg: &DataConfig,
    summary: &mut DataSummary,
) -> Vec<Decoded> {
    let mut out = Vec::new();
    for r in decoded {
        match r {
            Err(e) => {
                eprintln!("warning: skipping undecodable file: {e}");
                let path = match &e {
                    adiff_core::Error::Audio { path, .. } => path.clone(),
                    _ => PathBuf::from(e.to_string()),
                };
                summary.undecodable.push(path);
            }
            Ok(d) if d.len() == 0 || d.peak() < SILENCE_PEAK => summary.silent += 1,
            Ok(d) if d.len() < cfg.window && cfg.short == ShortFiles::Skip => {
                summary.short_skipped += 1
            }
            Ok(d) => out.push(d),
        }
    }
    out
}
