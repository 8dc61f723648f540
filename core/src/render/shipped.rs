//! The models the binaries embed: the one copy of their bytes.

use super::Model;
use crate::Result;
use candle_core::Device;

/// `models/upsampler/config.json`: the shipped band-extension upsampler.
pub const UPSAMPLER_CONFIG: &str = include_str!("../../../models/upsampler/config.json");
/// `models/upsampler/model.safetensors`.
pub const UPSAMPLER_WEIGHTS: &[u8] = include_bytes!("../../../models/upsampler/model.safetensors");
/// How the embedded upsampler is named in messages.
pub const UPSAMPLER_NAME: &str = "the shipped upsampler (models/upsampler, embedded)";

/// The embedded shipped upsampler (the default of `adiff upsample` and of the plugin).
pub fn upsampler() -> Result<Model> {
    Model::from_bytes(
        UPSAMPLER_CONFIG,
        UPSAMPLER_WEIGHTS,
        UPSAMPLER_NAME,
        &Device::Cpu,
    )
}
