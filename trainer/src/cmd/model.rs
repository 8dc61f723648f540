//! Opening a model folder for a command, with one clear line for each way it can be unusable.

use adiff_core::models::folder::{FolderConfig, CONFIG_FILE, WEIGHTS_FILE};
use adiff_core::models::AnyModel;
use anyhow::{bail, Result};
use candle_core::Device;
use std::path::Path;

/// Checks that `dir` is a model folder (a folder with `config.json` and `model.safetensors`).
pub fn check_folder(dir: &Path) -> Result<()> {
    if !dir.is_dir() {
        bail!("model folder {} does not exist (expected a folder with {CONFIG_FILE} and {WEIGHTS_FILE})", dir.display());
    }
    if !dir.join(CONFIG_FILE).is_file() {
        bail!("model folder {} has no {CONFIG_FILE}", dir.display());
    }
    if !dir.join(WEIGHTS_FILE).is_file() {
        bail!(
            "model folder {} has no weights ({WEIGHTS_FILE} is missing)",
            dir.display()
        );
    }
    Ok(())
}

/// Refuses a band-extension folder (kind "BandExtension"): it is no diffusion model folder, and
/// only `adiff upsample` runs it.
fn refuse_band_extension(dir: &Path) -> Result<()> {
    if super::shipped::is_band_extension(dir) {
        bail!(
            "model folder {} holds a band-extension upsampler (kind \"BandExtension\", not a diffusion model): only `adiff upsample` runs it",
            dir.display()
        );
    }
    Ok(())
}

/// Loads the model of folder `dir` onto `device`.
pub fn load(dir: &Path, device: &Device) -> Result<(FolderConfig, AnyModel)> {
    check_folder(dir)?;
    refuse_band_extension(dir)?;
    Ok(AnyModel::load(dir, device)?)
}

/// Loads a generator (`AudioDiffusionModel`) folder; any other kind is refused, naming the folder
/// and what `task` needed it for.
pub fn load_generator(
    dir: &Path,
    device: &Device,
    task: &str,
) -> Result<(FolderConfig, adiff_core::models::AudioDiffusionModel)> {
    let (cfg, any) = load(dir, device)?;
    match any {
        AnyModel::Generator(m) => Ok((cfg, m)),
        _ => bail!(
            "model folder {} holds a {:?}, not a generator (AudioDiffusionModel), which {task} needs",
            dir.display(),
            cfg.kind
        ),
    }
}

/// Reads only the header of folder `dir`.
pub fn header(dir: &Path) -> Result<FolderConfig> {
    check_folder(dir)?;
    refuse_band_extension(dir)?;
    Ok(FolderConfig::read(&dir.join(CONFIG_FILE))?)
}
