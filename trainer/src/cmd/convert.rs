//! `adiff convert`: a reference checkpoint (`.ckpt`, `.pt`, `.safetensors`) plus a folder config
//! into a model folder (`config.json` + `model.safetensors`, each tensor once).

use adiff_core::models::folder::FolderConfig;
use anyhow::{bail, Result};
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
    let config = FolderConfig::read(&args.config)?;
    let device = adiff_core::device::parse_device(&args.device)?;
    let store = match args.store.as_str() {
        "f16" => candle_core::DType::F16,
        "bf16" => candle_core::DType::BF16,
        _ => candle_core::DType::F32,
    };
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
