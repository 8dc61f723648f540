//! Loading whole models from a checkpoint file or from in-memory tensors, audited.

use super::{UNet1d, UNet1dConfig, UNetConditional1d, UNetConditional1dConfig};
use crate::weights::{build_audited, read_tensors, select_unet, strip_prefix};
use crate::{Error, Result};
use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use std::collections::HashMap;
use std::path::Path;

/// Builds a UNet1d from its own state dict held in memory (e.g. a fixture's `case.weights()`).
pub fn unet_from_tensors(
    cfg: &UNet1dConfig,
    tensors: HashMap<String, Tensor>,
    dtype: DType,
    device: &Device,
) -> Result<UNet1d> {
    build_audited(tensors, "<in memory>", dtype, device, |vb| {
        UNet1d::new(cfg, vb)
    })
}

/// Loads a UNet1d from a checkpoint file. `prefix`: where the UNet sits (`Some("")` = root,
/// `Some("unet.")`, ...), or `None` to detect the reference's wrappers (docs/reference.md §2.4).
pub fn load_unet(
    cfg: &UNet1dConfig,
    path: &Path,
    prefix: Option<&str>,
    dtype: DType,
    device: &Device,
) -> Result<UNet1d> {
    let tensors = select_unet(read_tensors(path, device)?, prefix, path)?;
    build_audited(tensors, path, dtype, device, |vb| UNet1d::new(cfg, vb))
}

/// Loads a UNetConditional1d (its `fixed_embedding` sits with the UNet, e.g. `unet.fixed_embedding.*`).
pub fn load_unet_conditional(
    cfg: &UNetConditional1dConfig,
    path: &Path,
    prefix: Option<&str>,
    dtype: DType,
    device: &Device,
) -> Result<UNetConditional1d> {
    let tensors = select_unet(read_tensors(path, device)?, prefix, path)?;
    build_audited(tensors, path, dtype, device, |vb| {
        UNetConditional1d::new(cfg, vb)
    })
}

/// Loads any model from a checkpoint file: the tensors under `prefix` (None: the whole file, with
/// an outer `model.` stripped when every key has it) are audited against what `build` asks for.
pub fn load_model<T>(
    path: &Path,
    prefix: Option<&str>,
    dtype: DType,
    device: &Device,
    build: impl FnOnce(VarBuilder<'static>) -> Result<T>,
) -> Result<T> {
    let all = read_tensors(path, device)?;
    let tensors = match prefix {
        Some(p) => strip_prefix(&all, p),
        None if all.keys().all(|k| k.starts_with("model.")) => strip_prefix(&all, "model."),
        None => all,
    };
    if tensors.is_empty() {
        return Err(Error::WeightsFile {
            path: path.to_path_buf(),
            reason: format!("no tensor under the prefix `{}`", prefix.unwrap_or("")),
        });
    }
    build_audited(tensors, path, dtype, device, build)
}
