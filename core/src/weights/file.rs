//! Reading checkpoint files (safetensors; PyTorch `.pt`/`.pth`/`.ckpt`/`.bin` zip pickles through
//! candle's pickle reader) and writing safetensors. A truncated or corrupt file is an
//! [`Error::WeightsFile`], never a panic.

use crate::{Error, Result};
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

fn read_pickle(path: &Path, device: &Device) -> Result<HashMap<String, Tensor>> {
    let read = |key: Option<&str>| -> Result<Vec<(String, Tensor)>> {
        // The pickle reader is third-party parsing of untrusted bytes: contain any panic.
        let owned = path.to_path_buf();
        let key = key.map(str::to_string);
        match std::panic::catch_unwind(move || {
            candle_core::pickle::read_all_with_key(&owned, key.as_deref())
        }) {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(file_error(path, e)),
            Err(_) => Err(file_error(path, "the PyTorch pickle could not be parsed")),
        }
    };
    let mut found = read(None)?;
    if found.is_empty() {
        found = read(Some("state_dict"))?;
    }
    found
        .into_iter()
        .map(|(k, t)| Ok((k, t.to_device(device)?)))
        .collect()
}

/// Writes `tensors` to `path` as safetensors, atomically (a temporary file renamed into place).
pub fn save_safetensors(tensors: &HashMap<String, Tensor>, path: &Path) -> Result<()> {
    let tmp = path.with_extension("safetensors.tmp");
    let cpu: HashMap<String, Tensor> = tensors
        .iter()
        .map(|(k, t)| Ok((k.clone(), t.to_device(&Device::Cpu)?.contiguous()?)))
        .collect::<Result<_>>()?;
    candle_core::safetensors::save(&cpu, &tmp).map_err(|e| file_error(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| Error::io(path, e))
}
