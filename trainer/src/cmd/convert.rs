//! `adiff convert`: a reference checkpoint (`.ckpt`, `.pt`, `.safetensors`) plus a folder config
//! into a model folder (`config.json` + `model.safetensors`, each tensor once).

use adiff_core::models::bandext::{stage::Stage, BandExtension};
use adiff_core::models::folder::{
    BandExtensionStage, FolderConfig, BAND_EXTENSION_DIR, CONFIG_FILE, WEIGHTS_FILE,
};
use anyhow::{bail, Context, Result};
use clap::Args;
use std::path::PathBuf;

/// Options of `adiff convert`.
#[derive(Debug, Args)]
pub struct ConvertArgs {
    /// The checkpoint to convert.
    pub checkpoint: PathBuf,
    /// The folder config (`config.json` format) describing the checkpoint's model.
    #[arg(long)]
    pub config: PathBuf,
    /// The model folder to write.
    #[arg(short, long)]
    pub output: PathBuf,
    /// Device to load the tensors on while checking them.
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// How the folder stores the weights (they load as f32 either way): f32, f16 or bf16.
    #[arg(long, default_value = "f32", value_parser = ["f32", "f16", "bf16"])]
    pub store: String,
    /// A band-extension model folder to put after the generator: it is copied into the new
    /// folder's `band_extension/`, and the folder then hands out audio at its rate times
    /// `--band-extension-factor`.
    #[arg(long, requires = "band_extension_factor")]
    pub band_extension: Option<PathBuf>,
    /// The band-extension stage's upsampling factor.
    #[arg(long, requires = "band_extension")]
    pub band_extension_factor: Option<usize>,
}

/// Copies the band-extension folder `dir` into `out/band_extension/`, each file atomically.
fn copy_stage(dir: &std::path::Path, out: &std::path::Path) -> Result<()> {
    let sub = out.join(BAND_EXTENSION_DIR);
    std::fs::create_dir_all(&sub).with_context(|| format!("creating {}", sub.display()))?;
    for f in [CONFIG_FILE, WEIGHTS_FILE] {
        let (from, to) = (dir.join(f), sub.join(f));
        adiff_core::files::write_atomic(&to, |tmp| {
            std::fs::copy(&from, tmp)
                .map(|_| ())
                .map_err(|e| adiff_core::Error::io(&from, e))
        })
        .with_context(|| format!("copying {} into {}", from.display(), sub.display()))?;
    }
    Ok(())
}

/// Runs the command.
pub fn run(args: &ConvertArgs) -> Result<()> {
    if !args.checkpoint.is_file() {
        bail!("checkpoint {} does not exist", args.checkpoint.display());
    }
    if args.output.exists()
        && std::fs::read_dir(&args.output)
            .map(|mut d| d.next().is_some())
            .unwrap_or(true)
    {
        bail!(
            "the output folder {} exists and is not empty",
            args.output.display()
        );
    }
    let mut config = FolderConfig::read(&args.config)?;
    if config.band_extension.is_some() && args.band_extension.is_none() {
        bail!(
            "{} names a band-extension stage (`band_extension`), which the folder would lack: give --band-extension DIR --band-extension-factor K, or remove the field",
            args.config.display()
        );
    }
    if let (Some(dir), Some(factor)) = (&args.band_extension, args.band_extension_factor) {
        // Checked before anything is written: the folder loads and serves the factor.
        let model = BandExtension::load(dir)
            .with_context(|| format!("loading band-extension folder {}", dir.display()))?;
        Stage::new(model, factor)
            .with_context(|| format!("band-extension folder {}", dir.display()))?;
        config.band_extension = Some(BandExtensionStage { factor });
        config.validate(&args.config)?;
    }
    let device = adiff_core::device::parse_device(&args.device)?;
    let store = match args.store.as_str() {
        "f16" => candle_core::DType::F16,
        "bf16" => candle_core::DType::BF16,
        _ => candle_core::DType::F32,
    };
    if let Some(dir) = &args.band_extension {
        copy_stage(dir, &args.output)?;
    }
    // Written last (after the weights): a folder without it is never taken for a model.
    let folder =
        adiff_core::models::convert_to(&args.checkpoint, config, &args.output, &device, store)?;
    println!(
        "wrote model folder {} ({:?}, {} parameters)",
        args.output.display(),
        folder.config.kind,
        folder.parameter_count()
    );
    Ok(())
}
