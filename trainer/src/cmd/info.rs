//! `adiff info`: a model folder's kind, config, parameter count and expected speed; or an audio
//! file's rate, length and where its content ends (the cut-off `adiff upsample` restores above).

use super::audio::read_input;
use super::speed::time_unet;
use adiff_core::audio::bandwidth;
use adiff_core::models::folder::{ModelFolder, ModelKind};
use adiff_core::render::Model;
use adiff_core::unet::UNet1dConfig;
use anyhow::{Context, Result};
use candle_core::Device;
use clap::Args;
use std::path::{Path, PathBuf};

/// Options of `adiff info`.
#[derive(Debug, Args)]
pub struct InfoArgs {
    /// Model folder (config.json + model.safetensors), or an audio file.
    pub model: PathBuf,
    /// Skip the timed forward pass.
    #[arg(long)]
    pub no_timing: bool,
    /// Compute device for the timing: `cpu`, `cuda` or `cuda:N`.
    #[arg(long, default_value = "cpu")]
    pub device: String,
}

/// The UNet a folder's model runs (for timing): the kwargs' UNet part plus the kind's context.
fn unet_of(kind: ModelKind, kwargs: &serde_json::Value, channels: usize) -> Option<UNet1dConfig> {
    let mut u: UNet1dConfig = serde_json::from_value(kwargs.clone()).ok()?;
    u.in_channels = channels;
    match kind {
        ModelKind::AudioDiffusionModel => {}
        ModelKind::AudioDiffusionUpsampler => {
            u.context_channels = Some(vec![channels]);
            u.context_features = kwargs
                .get("factor_features")
                .and_then(|v| v.as_u64())
                .map(|v| v as usize);
        }
        // The autoencoder's context channels and the conditional model's cross-attention are left
        // out: the timing is of the plain UNet.
        ModelKind::AudioDiffusionAutoencoder | ModelKind::AudioDiffusionConditional => {
            u.context_channels = None;
            u.use_cross_attention = false;
        }
        ModelKind::BandExtension => return None,
    }
    Some(u)
}

/// An audio file's rate, length and measured bandwidth.
fn audio_info(path: &Path) -> Result<()> {
    let clip = read_input(path, false)?;
    println!("audio file: {}", path.display());
    println!(
        "{} Hz, {} channels, {:.2} s",
        clip.sample_rate(),
        clip.num_channels(),
        clip.duration_secs()
    );
    let b = bandwidth::detect(&clip).context("measuring the bandwidth")?;
    if b.limited {
        println!(
            "content ends at {:.0} Hz (a {:.0} dB drop; Nyquist {:.0} Hz): `adiff upsample` restores the band above it",
            b.cutoff_hz,
            b.drop_db,
            b.nyquist()
        );
    } else {
        println!(
            "content reaches the Nyquist frequency ({:.0} Hz): no missing band to restore",
            b.nyquist()
        );
    }
    Ok(())
}

/// Runs the command.
pub fn run(args: &InfoArgs) -> Result<()> {
    if args.model.is_file() {
        return audio_info(&args.model);
    }
    if !args.model.exists() {
        anyhow::bail!(
            "{} does not exist (give a model folder or an audio file)",
            args.model.display()
        );
    }
    // Open the model as every command would, so `info` fails where they would.
    let model = Model::open(&args.model, &Device::Cpu)
        .with_context(|| format!("opening model folder {}", args.model.display()))?;
    println!("model folder: {}", args.model.display());
    println!("kind: {:?}", model.kind());
    let Some(cfg) = model.config().cloned() else {
        println!(
            "a band-extension upsampler: works at any rate, factors {:?}",
            model.factors()
        );
        return Ok(());
    };
    let parameters = ModelFolder::load(&args.model, &Device::Cpu)?.parameter_count();
    println!(
        "sample rate: {} Hz, channels: {}, window: {} samples ({:.2} s)",
        cfg.sample_rate,
        cfg.channels,
        cfg.window_length,
        cfg.window_length as f64 / cfg.sample_rate as f64
    );
    if let Some(stage) = cfg.band_extension {
        println!(
            "band-extension stage (band_extension/): x{} to {} Hz",
            stage.factor,
            cfg.output_rate()
        );
    }
    println!(
        "parameters: {} ({:.2} M)",
        parameters,
        parameters as f64 / 1e6
    );
    println!(
        "sampling defaults: {} steps, {:?}, {:?}",
        cfg.sampling.num_steps, cfg.sampling.sampler, cfg.sampling.sigma_schedule
    );
    println!(
        "config: {}",
        serde_json::to_string(&cfg.model).context("printing the config")?
    );
    if args.no_timing {
        return Ok(());
    }
    let device = adiff_core::device::parse_device(&args.device)?;
    match unet_of(cfg.kind, &cfg.model, cfg.channels) {
        Some(u) => {
            let t = time_unet(&u, cfg.window_length, 1, &device)?;
            let secs = t.forward.as_secs_f64();
            let audio = cfg.window_length as f64 / cfg.sample_rate as f64;
            println!(
                "expected speed on {}: {:.3} s per network call on one window; {:.2} s per second of audio at {} steps",
                args.device, secs, secs * cfg.sampling.num_steps as f64 / audio, cfg.sampling.num_steps
            );
        }
        None => println!("expected speed: not measured (the config's UNet part could not be read)"),
    }
    Ok(())
}
