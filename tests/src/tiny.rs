//! Tiny random-weight model folders for the cross-crate tests (`config.json` + `model.safetensors`).

use adiff_core::models::folder::{FolderConfig, ModelFolder, ModelKind};
use candle_core::{DType, Device};
use candle_nn::{VarBuilder, VarMap};
use std::path::Path;

/// Builds a model with `build` on fresh PyTorch-initialised weights and saves them with a config
/// of `kind` (network keywords `kwargs`, `rate` Hz, `channels`, training window `window` samples).
pub fn save_random_folder(
    dir: &Path,
    kind: ModelKind,
    kwargs: serde_json::Value,
    (rate, channels, window): (u32, usize, usize),
    build: impl FnOnce(VarBuilder) -> adiff_core::Result<()>,
) {
    let varmap = VarMap::new();
    build(VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu)).expect("model");
    let config = FolderConfig::new(kind, kwargs, rate, channels, window);
    ModelFolder::from_varmap(config, &varmap)
        .expect("folder")
        .save(dir)
        .expect("saves");
}
