//! `adiff demo`: the README's first command. Until a trained model ships, it builds the embedded
//! upsampler-sized UNet with random weights, reports its size and times a forward pass, and says
//! plainly that the weights are random.

use super::speed::time_unet;
use adiff_core::unet::UNet1dConfig;
use anyhow::{Context, Result};
use clap::Args;

/// The embedded UNet config (the shape of the planned shipped upsampler, issue 11).
pub const DEMO_UNET: &str = include_str!("demo_unet.json");

/// Options of `adiff demo`.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Samples per forward pass (a multiple of the UNet's total down-sampling factor, 256).
    #[arg(long, default_value_t = 1 << 15)]
    pub length: usize,
    /// Sample rate used to express the time in real-time factors (Hz).
    #[arg(long, default_value_t = 48_000)]
    pub rate: u32,
    /// Sampling steps assumed for the time estimate.
    #[arg(long, default_value_t = 8)]
    pub steps: usize,
    /// Timed forward passes (the median is reported).
    #[arg(long, default_value_t = 3)]
    pub runs: usize,
    /// Compute device: `cpu`, `cuda` or `cuda:N`.
    #[arg(long, default_value = "cpu")]
    pub device: String,
}

/// Runs the demo.
pub fn run(args: &DemoArgs) -> Result<()> {
    let cfg: UNet1dConfig = serde_json::from_str(DEMO_UNET).context("the embedded demo config")?;
    let total = cfg.total_factor();
    if args.length == 0 || args.length % total != 0 {
        anyhow::bail!(
            "--length must be a positive multiple of {total}, got {}",
            args.length
        );
    }
    let device = adiff_core::device::parse_device(&args.device)
        .with_context(|| format!("device `{}`", args.device))?;
    println!("adiff demo: the waveform UNet of the planned upsampler (channels {}, multipliers {:?}, factors {:?}, attention at {:?})",
        cfg.channels, cfg.multipliers, cfg.factors, cfg.attentions);
    println!("NOTE: no trained model ships yet; these weights are RANDOM, so any audio it made would be noise.");
    let t = time_unet(&cfg, args.length, args.runs.max(1), &device)?;
    let secs = t.forward.as_secs_f64();
    let audio = args.length as f64 / args.rate as f64;
    println!(
        "parameters: {} ({:.2} M)",
        t.parameters,
        t.parameters as f64 / 1e6
    );
    println!(
        "one forward pass on {} samples ({audio:.2} s at {} Hz) on {}: {:.3} s",
        t.length, args.rate, args.device, secs
    );
    println!("estimated upsampling speed at {} steps: {:.2} s per second of audio (real-time factor {:.2})",
        args.steps, secs * args.steps as f64 / audio, secs * args.steps as f64 / audio);
    Ok(())
}
