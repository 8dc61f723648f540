//! The shipped upsampler embedded in the binary (`models/upsampler`, issue 11): a band-extension
//! model (`adiff_core::models::bandext`, kind "BandExtension"), the default of `adiff upsample`
//! and `adiff demo`. Loaded from the embedded bytes, no temporary files.

use adiff_core::models::bandext::{BandExtension, KIND};
use adiff_core::models::folder::CONFIG_FILE;
use anyhow::{Context, Result};
use std::path::Path;

/// `models/upsampler/config.json`.
pub const CONFIG_JSON: &[u8] = include_bytes!("../../../models/upsampler/config.json");
/// `models/upsampler/model.safetensors`.
pub const WEIGHTS: &[u8] = include_bytes!("../../../models/upsampler/model.safetensors");
/// How the embedded model is named in messages.
pub const NAME: &str = "the shipped upsampler (models/upsampler, embedded)";

/// The embedded shipped upsampler.
pub fn upsampler() -> Result<BandExtension> {
    let config = std::str::from_utf8(CONFIG_JSON).context("the embedded upsampler config")?;
    BandExtension::from_bytes(config, WEIGHTS, "embedded models/upsampler")
        .context("loading the embedded upsampler")
}

/// Whether folder `dir` holds a band-extension model (`config.json` with `"kind": "BandExtension"`).
/// A folder without a readable `config.json` is not one (the folder checks then say what is wrong).
pub fn is_band_extension(dir: &Path) -> bool {
    let Ok(text) = std::fs::read_to_string(dir.join(CONFIG_FILE)) else {
        return false;
    };
    serde_json::from_str::<serde_json::Value>(&text)
        .ok()
        .and_then(|v| v.get("kind").and_then(|k| k.as_str()).map(|k| k == KIND))
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bytes_under(dir: &Path) -> u64 {
        std::fs::read_dir(dir)
            .unwrap()
            .map(|e| {
                let p = e.unwrap().path();
                if p.is_dir() {
                    bytes_under(&p)
                } else {
                    std::fs::metadata(&p).unwrap().len()
                }
            })
            .sum()
    }

    #[test]
    fn the_shipped_models_fit_the_40_mb_budget_and_the_generator_loads() {
        let models = Path::new(env!("CARGO_MANIFEST_DIR")).join("../models");
        let total = bytes_under(&models);
        assert!(total < 40_000_000, "models/ holds {total} bytes");
        let dir = models.join("generator");
        let (cfg, _) =
            super::super::model::load_generator(&dir, &candle_core::Device::Cpu, "a test").unwrap();
        // It hands out 48 kHz audio (a lower-rate network takes its band-extension stage there).
        assert_eq!(cfg.output_rate(), 48_000);
        adiff_core::models::bandext::stage::Stage::load(&dir, &cfg).unwrap();
        for i in 0..8 {
            assert!(dir.join(format!("samples/sample-{i}.png")).is_file());
        }
    }

    #[test]
    fn the_embedded_model_is_the_committed_folder() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../models/upsampler");
        assert!(is_band_extension(&dir));
        let embedded = upsampler().unwrap();
        let folder = BandExtension::load(&dir).unwrap();
        assert_eq!(embedded.config(), folder.config());
        assert_eq!(embedded.factors(), &[2, 4, 8]);
        assert_eq!(CONFIG_JSON, std::fs::read(dir.join("config.json")).unwrap());
        assert_eq!(
            WEIGHTS,
            std::fs::read(dir.join("model.safetensors")).unwrap()
        );
    }
}
