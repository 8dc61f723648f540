//! `adiff decode`: an autoencoder latent written by `adiff encode` back to audio by sampling.

use super::audio::{from_model, write_output, Layout};
use super::common::{check_output, model_dir, step_bar, SamplingArgs};
use super::model;
use adiff_core::audio::limits;
use adiff_core::models::AnyModel;
use adiff_core::sampler::StepInfo;
use adiff_core::SeededNoise;
use anyhow::{anyhow, bail, Context, Result};
use clap::Args;
use std::ops::ControlFlow;
use std::path::PathBuf;

/// Options of `adiff decode`.
#[derive(Debug, Args)]
pub struct DecodeArgs {
    /// Latent file written by `adiff encode` (.safetensors).
    pub input: PathBuf,
    /// Output WAV file.
    #[arg(short, long)]
    pub output: PathBuf,
    /// Model folder of the autoencoder that encoded it.
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// Write the output at this rate instead, 1000 to 384000 Hz.
    #[arg(long)]
    pub out_rate: Option<u32>,
    #[command(flatten)]
    pub sampling: SamplingArgs,
}

/// Refuses a latent that is not `(batch, channels, length)`, has more batch items than audio
/// channels are allowed, is longer than `max_len` frames (the output's length limit), or holds a
/// non-finite value.
fn check_latent(
    latent: &candle_core::Tensor,
    path: &std::path::Path,
    max_len: usize,
) -> Result<()> {
    let Ok((batch, _, len)) = latent.dims3() else {
        bail!(
            "{}: the latent has shape {:?}, expected (batch, channels, length)",
            path.display(),
            latent.dims()
        );
    };
    if batch > adiff_core::audio::limits::MAX_CHANNELS {
        bail!(
            "{}: the latent holds {batch} batch items; at most {} (one per audio channel)",
            path.display(),
            adiff_core::audio::limits::MAX_CHANNELS
        );
    }
    if len > max_len {
        bail!(
            "{}: the latent is {len} frames long; at most {max_len} decode within the length limit",
            path.display()
        );
    }
    let values = latent
        .to_dtype(candle_core::DType::F32)?
        .flatten_all()?
        .to_vec1::<f32>()?;
    if values.iter().any(|v| !v.is_finite()) {
        bail!("{}: the latent holds non-finite values", path.display());
    }
    Ok(())
}

/// The `latent` tensor of a file written by `adiff encode`, and its `info`: `[sample rate,
/// length in samples, 1 when channels ran as batch items]`.
fn read_latent(
    path: &std::path::Path,
    device: &candle_core::Device,
) -> Result<(candle_core::Tensor, [i64; 3])> {
    let tensors = candle_core::safetensors::load(path, device).map_err(|e| {
        anyhow!(
            "{}: not a latent file written by `adiff encode` ({e})",
            path.display()
        )
    })?;
    let (Some(latent), Some(info)) = (tensors.get("latent"), tensors.get("info")) else {
        bail!(
            "{}: not a latent file written by `adiff encode` (needs `latent` and `info`)",
            path.display()
        );
    };
    let info: Vec<i64> = info
        .to_device(&candle_core::Device::Cpu)
        .and_then(|i| i.to_vec1())
        .with_context(|| format!("{}: malformed `info` tensor", path.display()))?;
    let [rate, len, as_batch] = info[..] else {
        bail!("{}: malformed `info` tensor", path.display());
    };
    Ok((latent.clone(), [rate, len, as_batch]))
}

/// Runs the command.
pub fn run(args: &DecodeArgs) -> Result<()> {
    check_output(Some(&args.input), &args.output)?;
    super::common::check_out_rate(args.out_rate)?;
    let device = args.sampling.device()?;
    let (latent, [rate, len, as_batch]) = read_latent(&args.input, &device)?;
    let latent = &latent;
    let dir = model_dir(args.model.as_ref())?;
    let (cfg, any) = model::load(&dir, &device)?;
    let AnyModel::Autoencoder(m) = any else {
        bail!(
            "model folder {} holds a {:?}, not an autoencoder",
            dir.display(),
            cfg.kind
        );
    };
    if rate != cfg.sample_rate as i64 {
        bail!(
            "the latent was made at {rate} Hz, the model runs at {} Hz",
            cfg.sample_rate
        );
    }
    let frames = cfg.window_length / m.factor().max(1);
    let max_frames = limits::max_frames(cfg.sample_rate, cfg.channels) / m.factor().max(1);
    check_latent(latent, &args.input, max_frames)?;
    let sampling = args.sampling.sampling(&cfg.sampling, cfg.compat)?;
    let y = if latent.dim(2)? <= frames.max(1) {
        let bar = step_bar(sampling.num_steps as u64, "decoding");
        let mut noise = SeededNoise::new(args.sampling.seed);
        let y = m.decode(
            latent,
            &sampling,
            &mut noise,
            &mut super::common::on_step(&bar),
        );
        bar.finish_and_clear();
        y.context("decoding")?
    } else {
        // Longer than one window: window by window, crossfaded (memory bounded by one window).
        let job = |piece: &candle_core::Tensor,
                   noise: &mut SeededNoise,
                   on_step: &mut dyn FnMut(&StepInfo) -> ControlFlow<()>| {
            m.decode(piece, &sampling, noise, on_step)
        };
        super::run::windowed(
            latent,
            frames,
            m.factor(),
            args.sampling.seed,
            "decoding",
            job,
        )
        .context("decoding")?
    };
    let len = (len.max(0) as usize).min(y.dim(2)?);
    let layout = if as_batch == 1 {
        Layout::ChannelsAsBatch
    } else {
        Layout::Native
    };
    let clip = from_model(&y.narrow(2, 0, len)?, layout, cfg.sample_rate)?;
    let written = write_output(&args.output, &clip, args.out_rate)?;
    println!(
        "wrote {} ({} Hz, {:.2} s)",
        args.output.display(),
        written.sample_rate(),
        written.duration_secs()
    );
    Ok(())
}
