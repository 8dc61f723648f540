//! `adiff`: train diffusion models and run them offline on audio files.

mod data;
mod train;

use clap::Parser;

/// Waveform diffusion from the command line.
#[derive(Parser)]
#[command(name = "adiff", version, about)]
struct Cli {}

fn main() -> anyhow::Result<()> {
    let _cli = Cli::parse();
    Ok(())
}
