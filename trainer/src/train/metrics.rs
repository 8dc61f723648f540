//! The metrics file of a run: `metrics.jsonl`, one JSON object a line: every optimizer step
//! (`step`, `loss`, `lr`, `grad_norm`, `samples_per_sec`) and every validation
//! (`step`, `val_loss`, `val_loss_ema`).

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::fs;
use std::io::Write;
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
    /// Opens `path` for appending. With `keep_until = Some(step)` (a resume from the checkpoint at
    /// `step`), lines with a later step are dropped first, atomically, so the file reads as one
    /// uninterrupted run. With `None` (a run starting at step 0) the file is started afresh: lines
    /// left by an earlier attempt that never reached a checkpoint are discarded.
    pub fn open(path: &Path, keep_until: Option<u64>) -> Result<Self> {
        let mut options = fs::OpenOptions::new();
        match keep_until {
            Some(step) if path.exists() => {
                let kept: Vec<Record> =
                    read(path)?.into_iter().filter(|r| r.step <= step).collect();
                rewrite(path, &kept)?;
                options.append(true)
            }
            Some(_) => options.append(true).create(true),
            None => options.write(true).create(true).truncate(true),
        };
        let file = options
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
            .and_then(|()| self.file.flush())
            .with_context(|| format!("writing {}", self.path.display()))
    }
}

/// Replaces `path` by `records` (temporary file, fsync, rename).
fn rewrite(path: &Path, records: &[Record]) -> Result<()> {
    let tmp = path.with_extension("jsonl.tmp");
    let mut text = String::new();
    for r in records {
        text.push_str(&serde_json::to_string(r)?);
        text.push('\n');
    }
    fs::File::create(&tmp)
        .and_then(|mut f| {
            f.write_all(text.as_bytes())?;
            f.sync_all()
        })
        .with_context(|| format!("writing {}", tmp.display()))?;
    fs::rename(&tmp, path).with_context(|| format!("replacing {}", path.display()))
}

/// Reads every record of a metrics file.
///
/// A crash or `kill -9` can tear the line being written: a last line that does not parse is
/// dropped with a warning naming the file. Any other line that is not a record (bad UTF-8, not
/// JSON, missing `step`) is an error naming the file and the line, since dropping it would lose
/// data silently.
pub fn read(path: &Path) -> Result<Vec<Record>> {
    let bytes = fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let lines: Vec<(usize, &[u8])> = bytes
        .split(|b| *b == b'\n')
        .enumerate()
        .map(|(i, l)| (i + 1, l))
        .filter(|(_, l)| !l.trim_ascii().is_empty())
        .collect();
    let mut out = Vec::with_capacity(lines.len());
    for (k, (number, line)) in lines.iter().enumerate() {
        match parse_line(line) {
            Ok(r) => out.push(r),
            Err(why) if k + 1 == lines.len() => eprintln!(
                "warning: {} line {number}: ignoring an incomplete last line ({why}; \
                 the run was probably stopped while writing it)",
                path.display()
            ),
            Err(why) => bail!(
                "{} line {number}: not a metrics record ({why}); fix or remove that line",
                path.display()
            ),
        }
    }
    Ok(out)
}

/// One line as a [`Record`], or why not.
fn parse_line(line: &[u8]) -> std::result::Result<Record, String> {
    let text = std::str::from_utf8(line).map_err(|e| format!("invalid UTF-8: {e}"))?;
    serde_json::from_str(text).map_err(|e| e.to_string())
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

    #[test]
    fn a_torn_last_line_is_dropped_and_garbage_before_it_names_the_file_and_line() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("metrics.jsonl");
        fs::write(&p, "{\"step\":1,\"loss\":0.5}\n{\"step\":2,\"lo").unwrap();
        assert_eq!(
            read(&p).unwrap(),
            vec![Record {
                loss: Some(0.5),
                ..Record::at(1)
            }]
        );

        fs::write(&p, b"{\"step\":1}\n\xff\xfe garbage\n{\"step\":2}\n").unwrap();
        let e = format!("{:#}", read(&p).unwrap_err());
        assert!(
            e.contains(&p.display().to_string()) && e.contains("line 2"),
            "{e}"
        );
        assert!(e.contains("UTF-8"), "{e}");
        fs::write(&p, "{\"step\":1}\nnot json\n{\"step\":2}\n").unwrap();
        let e = format!("{:#}", MetricsWriter::open(&p, Some(1)).err().unwrap());
        assert!(e.contains("metrics.jsonl line 2"), "{e}");
    }

    #[test]
    fn a_run_from_step_zero_starts_the_file_afresh() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("metrics.jsonl");
        fs::write(&p, "{\"step\":7}\n").unwrap();
        MetricsWriter::open(&p, None)
            .unwrap()
            .write(&Record::at(0))
            .unwrap();
        assert_eq!(read(&p).unwrap(), vec![Record::at(0)]);
    }
}
