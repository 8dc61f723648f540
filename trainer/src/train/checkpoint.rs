//! Training checkpoints: one safetensors file per checkpoint holding the weights, the EMA, the
//! optimizer moments and (as JSON metadata) the step, the optimizer step, the data-order and
//! noise RNG states and a checksum of the tensor bytes.
//!
//! A checkpoint is written atomically: to a temporary file in the run folder, fsync'd, renamed
//! to `ckpt-<step>.safetensors`, and the folder fsync'd. A crash at any point leaves either the
//! previous complete checkpoints or the new one, never a half-written file under a checkpoint
//! name. Only the last `keep` checkpoints are kept.

use anyhow::{bail, Context, Result};
use candle_core::{Device, Tensor};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Environment variable (test hook): abort the process after writing and fsyncing the
/// temporary file of the checkpoint at this step, before the rename.
pub const ABORT_BEFORE_RENAME_ENV: &str = "ADIFF_TEST_ABORT_CHECKPOINT_AT";

const PREFIX: &str = "ckpt-";
const SUFFIX: &str = ".safetensors";
const TMP_SUFFIX: &str = ".tmp";
/// Version of the metadata layout below.
pub const FORMAT: u32 = 1;

/// Everything in a checkpoint that is not a tensor.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct CheckpointMeta {
    /// Layout version ([`FORMAT`]).
    pub format: u32,
    /// Optimizer updates completed.
    pub step: u64,
    /// AdamW's own step counter.
    pub adam_t: u64,
    /// State of the noise generator (sigmas, diffusion noise) after `step` updates.
    pub noise_rng: [u64; 4],
    /// State of the data-order generator after the last consumed batch.
    pub data_rng: [u64; 4],
    /// Windows handed out by the loader so far.
    pub windows: u64,
    /// FNV-1a 64 of every tensor's name and bytes, in name order.
    pub checksum: u64,
}

/// A loaded checkpoint.
pub struct Checkpoint {
    pub meta: CheckpointMeta,
    pub tensors: HashMap<String, Tensor>,
    pub path: PathBuf,
}

fn fnv1a(hash: &mut u64, bytes: &[u8]) {
    for b in bytes {
        *hash ^= *b as u64;
        *hash = hash.wrapping_mul(0x100_0000_01b3);
    }
}

fn checksum(tensors: &[(String, Tensor)]) -> Result<u64> {
    let mut sorted: Vec<&(String, Tensor)> = tensors.iter().collect();
    sorted.sort_by(|a, b| a.0.cmp(&b.0));
    let mut h = 0xcbf2_9ce4_8422_2325u64;
    for (name, t) in sorted {
        fnv1a(&mut h, name.as_bytes());
        let flat = t
            .flatten_all()?
            .to_dtype(candle_core::DType::F32)?
            .to_vec1::<f32>()?;
        for x in flat {
            fnv1a(&mut h, &x.to_le_bytes());
        }
    }
    Ok(h)
}

/// The file name of the checkpoint at `step`.
pub fn file_name(step: u64) -> String {
    format!("{PREFIX}{step:09}{SUFFIX}")
}

/// Complete checkpoints in `dir`, oldest first (temporary files are not listed).
pub fn list(dir: &Path) -> Result<Vec<(u64, PathBuf)>> {
    let mut out = Vec::new();
    if !dir.exists() {
        return Ok(out);
    }
    for entry in fs::read_dir(dir).with_context(|| format!("listing {}", dir.display()))? {
        let path = entry
            .with_context(|| format!("listing {}", dir.display()))?
            .path();
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        if let Some(step) = name
            .strip_prefix(PREFIX)
            .and_then(|s| s.strip_suffix(SUFFIX))
        {
            if let Ok(step) = step.parse::<u64>() {
                out.push((step, path));
            }
        }
    }
    out.sort();
    Ok(out)
}

/// Removes temporary files a crashed run left behind; returns how many.
pub fn remove_stale_temporaries(dir: &Path) -> Result<usize> {
    let mut n = 0;
    for entry in fs::read_dir(dir).with_context(|| format!("listing {}", dir.display()))? {
        let path = entry
            .with_context(|| format!("listing {}", dir.display()))?
            .path();
        if path
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with(".") && n.ends_with(TMP_SUFFIX))
        {
            fs::remove_file(&path).with_context(|| format!("removing {}", path.display()))?;
            n += 1;
        }
    }
    Ok(n)
}

fn sync_dir(dir: &Path) -> Result<()> {
    // Directories can be opened read-only and fsync'd on Unix; elsewhere this is best effort.
    #[cfg(unix)]
    fs::File::open(dir)
        .and_then(|f| f.sync_all())
        .with_context(|| format!("fsync {}", dir.display()))?;
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

/// Writes a checkpoint atomically into `dir` and deletes all but the newest `keep` (`keep >= 1`).
pub fn save(
    dir: &Path,
    tensors: &[(String, Tensor)],
    mut meta: CheckpointMeta,
    keep: usize,
) -> Result<PathBuf> {
    meta.format = FORMAT;
    meta.checksum = checksum(tensors)?;
    let json = serde_json::to_string(&meta)?;
    let metadata = HashMap::from([("adiff_checkpoint".to_string(), json)]);
    let bytes =
        safetensors::serialize(tensors.iter().map(|(k, t)| (k.as_str(), t)), Some(metadata))
            .context("serialising checkpoint")?;

    let name = file_name(meta.step);
    let tmp = dir.join(format!(".{name}{TMP_SUFFIX}"));
    let dst = dir.join(&name);
    {
        let mut f =
            fs::File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
        f.write_all(&bytes)
            .with_context(|| format!("writing {}", tmp.display()))?;
        f.sync_all()
            .with_context(|| format!("fsync {}", tmp.display()))?;
    }
    if std::env::var(ABORT_BEFORE_RENAME_ENV)
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
        == Some(meta.step)
    {
        eprintln!(
            "{ABORT_BEFORE_RENAME_ENV}={}: aborting between write and rename",
            meta.step
        );
        std::process::abort();
    }
    fs::rename(&tmp, &dst)
        .with_context(|| format!("renaming {} to {}", tmp.display(), dst.display()))?;
    sync_dir(dir)?;

    let all = list(dir)?;
    let excess = all.len().saturating_sub(keep.max(1));
    for (_, old) in &all[..excess] {
        fs::remove_file(old)
            .with_context(|| format!("removing old checkpoint {}", old.display()))?;
    }
    Ok(dst)
}

/// Reads and verifies one checkpoint (tensors land on `device`).
pub fn load(path: &Path, device: &Device) -> Result<Checkpoint> {
    let bytes = fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let (_, header) = safetensors::SafeTensors::read_metadata(&bytes)
        .with_context(|| format!("{} is not a safetensors file", path.display()))?;
    let json = header
        .metadata()
        .as_ref()
        .and_then(|m| m.get("adiff_checkpoint"))
        .with_context(|| format!("{} has no adiff checkpoint metadata", path.display()))?;
    let meta: CheckpointMeta = serde_json::from_str(json)
        .with_context(|| format!("checkpoint metadata of {}", path.display()))?;
    if meta.format != FORMAT {
        bail!(
            "{}: checkpoint format {} (this build reads {FORMAT})",
            path.display(),
            meta.format
        );
    }
    let tensors = candle_core::safetensors::load_buffer(&bytes, device)
        .with_context(|| format!("tensors of {}", path.display()))?;
    let listed: Vec<(String, Tensor)> = tensors
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let sum = checksum(&listed)?;
    if sum != meta.checksum {
        bail!(
            "{}: checksum {sum:016x} does not match the recorded {:016x} (corrupt file)",
            path.display(),
            meta.checksum
        );
    }
    Ok(Checkpoint {
        meta,
        tensors,
        path: path.to_path_buf(),
    })
}

/// The newest checkpoint in `dir` that loads and verifies; broken ones are reported and passed over.
pub fn load_latest(dir: &Path, device: &Device) -> Result<Option<Checkpoint>> {
    for (_, path) in list(dir)?.into_iter().rev() {
        match load(&path, device) {
            Ok(c) => return Ok(Some(c)),
            Err(e) => eprintln!("warning: skipping unusable checkpoint: {e:#}"),
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(step: u64) -> CheckpointMeta {
        CheckpointMeta {
            format: 0,
            step,
            adam_t: step,
            noise_rng: [1, 2, 3, 4],
            data_rng: [5, 6, 7, 8],
            windows: 9,
            checksum: 0,
        }
    }

    #[test]
    fn save_load_round_trip_keeps_the_last_k_and_detects_corruption() {
        let dir = tempfile::tempdir().unwrap();
        let d = Device::Cpu;
        let t = Tensor::new(&[[1.5f32, -2.0], [3.0, 0.25]], &d).unwrap();
        for step in [10, 20, 30] {
            save(
                dir.path(),
                &[("model.w".into(), (&t * step as f64).unwrap())],
                meta(step),
                2,
            )
            .unwrap();
        }
        let steps: Vec<u64> = list(dir.path())
            .unwrap()
            .into_iter()
            .map(|(s, _)| s)
            .collect();
        assert_eq!(steps, vec![20, 30]);
        let c = load_latest(dir.path(), &d).unwrap().unwrap();
        assert_eq!(c.meta.step, 30);
        assert_eq!(c.meta.data_rng, [5, 6, 7, 8]);
        let w = c.tensors["model.w"].to_vec2::<f32>().unwrap();
        assert_eq!(w, vec![vec![45.0, -60.0], vec![90.0, 7.5]]);

        // Flip one byte of the newest file's data: it is passed over for the previous one.
        let newest = dir.path().join(file_name(30));
        let mut bytes = fs::read(&newest).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 0x55;
        fs::write(&newest, bytes).unwrap();
        assert!(load(&newest, &d).is_err());
        assert_eq!(load_latest(dir.path(), &d).unwrap().unwrap().meta.step, 20);
    }
}
