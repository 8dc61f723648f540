//! Reading checkpoint files (safetensors; PyTorch `.pt`/`.pth`/`.ckpt`/`.bin` zip pickles through
//! candle's pickle reader) and writing safetensors. A truncated or corrupt file is an
//! [`Error::WeightsFile`], never a panic; a hostile pickle (memo bomb, deep nesting, unknown
//! globals, oversized entries or tensors) is refused before candle allocates for it.

use super::pickle_guard;
use crate::{Error, Result};
use candle_core::pickle::{PthTensors, TensorInfo};
use candle_core::{Device, Tensor};
use std::collections::HashMap;
use std::path::Path;

fn file_error(path: &Path, reason: impl std::fmt::Display) -> Error {
    Error::WeightsFile {
        path: path.to_path_buf(),
        reason: reason.to_string(),
    }
}

/// Every tensor of a checkpoint, by its stored name. The format is chosen by the extension:
/// `.safetensors`, else a PyTorch zip pickle (its state dict at the top level, or under
/// `state_dict` as Lightning writes it).
pub fn read_tensors(path: &Path, device: &Device) -> Result<HashMap<String, Tensor>> {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or("")
        .to_ascii_lowercase();
    let tensors = if ext == "safetensors" {
        let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        candle_core::safetensors::load_buffer(&bytes, device).map_err(|e| file_error(path, e))?
    } else {
        if !path.exists() {
            return Err(Error::io(
                path,
                std::io::Error::new(std::io::ErrorKind::NotFound, "no such file"),
            ));
        }
        read_pickle(path, device)?
    };
    if tensors.is_empty() {
        return Err(file_error(path, "the file holds no tensors"));
    }
    Ok(tensors)
}

/// A PyTorch zip pickle's tensors: the guard first ([`pickle_guard::check_checkpoint`]), then
/// candle's reader, at the top level or else under `state_dict`.
fn read_pickle(path: &Path, device: &Device) -> Result<HashMap<String, Tensor>> {
    pickle_guard::check_checkpoint(path)?;
    let mut found = read_pth(path, None)?;
    if found.is_empty() {
        found = read_pth(path, Some("state_dict"))?;
    }
    found
        .into_iter()
        .map(|(k, t)| Ok((k, t.to_device(device)?)))
        .collect()
}

/// Runs candle's pickle code, which parses untrusted bytes: any panic becomes an error.
fn contained<T>(path: &Path, f: impl FnOnce() -> candle_core::Result<T>) -> Result<T> {
    match crate::contain::contained(std::panic::AssertUnwindSafe(f)) {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(file_error(path, e)),
        Err(msg) => Err(file_error(
            path,
            format!("the PyTorch pickle could not be parsed ({msg})"),
        )),
    }
}

/// The tensors of a guarded checkpoint (as `read_all_with_key`), each checked against the bytes
/// its storage entry holds before candle allocates it.
fn read_pth(path: &Path, key: Option<&str>) -> Result<Vec<(String, Tensor)>> {
    let pth = contained(path, || PthTensors::new(path, key))?;
    check_tensor_sizes(path, pth.tensor_infos())?;
    let mut found = Vec::with_capacity(pth.tensor_infos().len());
    for name in pth.tensor_infos().keys() {
        if let Some(tensor) = contained(path, || pth.get(name))? {
            found.push((name.clone(), tensor));
        }
    }
    Ok(found)
}

/// Largest inflation of a deflate stream (about 1032:1), bounding a compressed entry's size.
const MAX_INFLATION: u64 = 1032;

/// Refuses tensors whose claimed layout needs more bytes than their storage entry can hold, or
/// that together would allocate more than `MAX_TENSOR_BYTES_PER_FILE_BYTE` times the file.
fn check_tensor_sizes(path: &Path, infos: &HashMap<String, TensorInfo>) -> Result<()> {
    let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let file_len = file.metadata().map_err(|e| Error::io(path, e))?.len();
    let mut zip =
        zip::ZipArchive::new(std::io::BufReader::new(file)).map_err(|e| file_error(path, e))?;
    let budget = file_len
        .saturating_mul(MAX_TENSOR_BYTES_PER_FILE_BYTE)
        .saturating_add(256 << 20);
    let mut total = 0u64;
    for info in infos.values() {
        let needed = tensor_bytes(info).ok_or_else(|| {
            file_error(path, format!("tensor {} has an impossible size", info.name))
        })?;
        let held = match zip.by_name(&info.path) {
            Ok(entry) => entry_capacity(&entry, file_len),
            Err(_) => continue, // candle names the missing entry when it reads the tensor
        };
        if needed > held {
            let reason = format!(
                "tensor {} needs {needed} bytes but its storage entry {} holds at most {held}",
                info.name, info.path
            );
            return Err(file_error(path, reason));
        }
        total = total.saturating_add(needed);
        if total > budget {
            let reason = format!("the tensors would take over {budget} bytes (the size budget)");
            return Err(file_error(path, reason));
        }
    }
    Ok(())
}

/// Shared storages are read once per tensor: allow this many tensor bytes per file byte.
const MAX_TENSOR_BYTES_PER_FILE_BYTE: u64 = 4;

/// Bytes candle reads for a tensor (offset then elements), or `None` on overflow.
fn tensor_bytes(info: &TensorInfo) -> Option<u64> {
    let elems = info
        .layout
        .dims()
        .iter()
        .try_fold(1u64, |acc, &d| acc.checked_mul(d as u64))?;
    let start = info.layout.start_offset() as u64;
    elems
        .checked_add(start)?
        .checked_mul(info.dtype.size_in_bytes() as u64)
}

/// The most bytes a zip entry can really yield: its claimed size, bounded by the bytes it
/// occupies in the file (times the deflate ratio when compressed).
fn entry_capacity<R: std::io::Read>(entry: &zip::read::ZipFile<'_, R>, file_len: u64) -> u64 {
    let stored = entry.compressed_size().min(file_len);
    let bound = match entry.compression() {
        zip::CompressionMethod::Stored => stored,
        _ => stored.saturating_mul(MAX_INFLATION),
    };
    entry.size().min(bound)
}

/// Writes `tensors` to `path` as safetensors, atomically (a temporary file renamed into place).
pub fn save_safetensors(tensors: &HashMap<String, Tensor>, path: &Path) -> Result<()> {
    let cpu: HashMap<String, Tensor> = tensors
        .iter()
        .map(|(k, t)| Ok((k.clone(), t.to_device(&Device::Cpu)?.contiguous()?)))
        .collect::<Result<_>>()?;
    crate::files::write_atomic(path, |tmp| {
        candle_core::safetensors::save(&cpu, tmp).map_err(|e| file_error(path, e))
    })
}
