//! The metrics file of a run: `metrics.jsonl`, one JSON object a line: every optimizer step
//! (`step`, `loss`, `lr`, `grad_norm`, `samples_per_sec`) and every validation
//! (`step`, `val_loss`, `val_loss_ema`).

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

/// One line of `metrics.jsonl`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Record {
    /// Optimizer updates completed when the line was written.
    pub step: u64,
    /// Mean training loss over the micro-batches of this update.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub loss: Option<f64>,
    /// Learning rate used for this update.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub lr: Option<f64>,
    /// Global gradient norm before clipping.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub grad_norm: Option<f64>,
    /// Training windows per second (wall clock, this update).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub samples_per_sec: Option<f64>,
    /// Validation loss of the trained weights (fixed windows and noise).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub val_loss: Option<f64>,
    /// Validation loss of the EMA weights.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub val_loss_ema: Option<f64>,
}

impl Record {
    /// An empty record for `step`.
    pub fn at(step: u64) -> Self {
        Self {
            step,
            loss: None,
            lr: None,
            grad_norm: None,
            samples_per_sec: None,
            val_loss: None,
            val_loss_ema: None,
        }
    }
}

/// Appends records to `metrics.jsonl`, flushing each line.
pub struct MetricsWriter {
    file: fs::File,
    path: PathBuf,
}

impl MetricsWriter {
    /// Opens `path` for appending. With `keep_until = Some(step)` (a resume), lines with a later
    /// step are dropped first, atomically, so the file reads as one uninterrupted run.
    pub fn open(path: &Path, keep_until: Option<u64>) -> Result<Self> {
        if let (Some(step), true) = (keep_until, path.exists()) {
            let kept: Vec<Record> = read(path)?.into_iter().filter(|r| r.step <= step).collect();
            let tmp = path.with_extension("jsonl.tmp");
            {
                let mut f = fs::File::create(&tmp)
                    .with_context(|| format!("creating {}", tmp.display()))?;
                for r in &kept {
                    writeln!(f, "{}", serde_json::to_string(r)?)?;
                }
                f.sync_all()?;
            }
            fs::rename(&tmp, path).with_context(|| format!("replacing {}", path.display()))?;
        }
        let file = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .with_context(|| format!("opening {}", path.display()))?;
        Ok(Self {
            file,
            path: path.to_path_buf(),
        })
    }

    /// Appends one record.
    pub fn write(&mut self, r: &Record) -> Result<()> {
        writeln!(self.file, "{}", serde_json::to_string(r)?)
            .with_context(|| format!("writing {}", self.path.display()))?;
        self.file.flush()?;
        Ok(())
    }
}

/// Reads every record of a metrics file (a torn last line from a crash is ignored).
pub fn read(path: &Path) -> Result<Vec<Record>> {
    let f = fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut out = Vec::new();
    for line in BufReader::new(f).lines() {
        let line = line?;
        if let Ok(r) = serde_json::from_str::<Record>(&line) {
            out.push(r);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resume_truncates_to_the_checkpoint_step() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("metrics.jsonl");
        let mut w = MetricsWriter::open(&p, None).unwrap();
        for s in 1..=5 {
            w.write(&Record {
                loss: Some(s as f64),
                ..Record::at(s)
            })
            .unwrap();
        }
        drop(w);
        let mut w = MetricsWriter::open(&p, Some(3)).unwrap();
        w.write(&Record {
            loss: Some(40.0),
            ..Record::at(4)
        })
        .unwrap();
        let steps: Vec<(u64, f64)> = read(&p)
            .unwrap()
            .iter()
            .map(|r| (r.step, r.loss.unwrap()))
            .collect();
        assert_eq!(steps, vec![(1, 1.0), (2, 2.0), (3, 3.0), (4, 40.0)]);
    }
}
