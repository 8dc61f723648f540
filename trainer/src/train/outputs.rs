//! What a run writes besides checkpoints: preview renders (a WAV and a spectrogram PNG each,
//! from the EMA weights) and the exported model folder (`config.json` + `model.safetensors`
//! holding the EMA weights) that every front end loads.

use adiff_core::audio::spectrogram::write_spectrogram_png;
use adiff_core::audio::{write_wav, AudioClip, WavEncoding};
use adiff_core::models::{FolderConfig, ModelFolder};
use anyhow::{Context, Result};
use candle_core::Tensor;
use candle_nn::VarMap;
use std::path::{Path, PathBuf};

/// Shortest signal drawn as a spectrogram (zero-padded up to it).
const MIN_IMAGE_SAMPLES: usize = 4096;

/// Writes `samples/step-<step>/sample-<i>.wav` and `.png` (panels: the reference window, then the
/// render) for every row of `rendered (batch, channels, length)`. Returns the WAV paths.
pub fn write_samples(
    run_dir: &Path,
    step: u64,
    rate: u32,
    reference: &Tensor,
    rendered: &Tensor,
) -> Result<Vec<PathBuf>> {
    let dir = run_dir.join("samples").join(format!("step-{step:09}"));
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut out = Vec::new();
    for i in 0..rendered.dim(0)? {
        let clip = AudioClip::from_tensor(&rendered.narrow(0, i, 1)?, rate)?;
        let reference = AudioClip::from_tensor(&reference.narrow(0, i, 1)?, rate)?;
        let wav = dir.join(format!("sample-{i}.wav"));
        write_wav(&wav, &clip, WavEncoding::Float32)?;
        // The image's STFT needs a few frames: short windows are zero-padded for the picture only.
        let padded = |x: &[f32]| {
            let mut v = x.to_vec();
            v.resize(v.len().max(MIN_IMAGE_SAMPLES), 0.0);
            v
        };
        let (a, b) = (
            padded(&reference.channels()[0]),
            padded(&clip.channels()[0]),
        );
        write_spectrogram_png(dir.join(format!("sample-{i}.png")), &[&a, &b])?;
        out.push(wav);
    }
    Ok(out)
}

/// Saves the variables of `ema` as the model folder `dir` with header `cfg`.
pub fn export(ema: &VarMap, cfg: &FolderConfig, dir: &Path) -> Result<()> {
    ModelFolder::from_varmap(cfg.clone(), ema)?
        .save(dir)
        .with_context(|| format!("exporting to {}", dir.display()))?;
    Ok(())
}
