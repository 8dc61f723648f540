//! `adiff vary`: a variation of a clip (audio-to-audio): the clip noised part-way and denoised by a
//! generator model; `--strength` sets how far it departs.

use super::common::{open_model, with_progress, ClipArgs, SamplingArgs};
use adiff_core::render::RenderOptions;
use anyhow::Result;
use clap::Args;

/// Options of `adiff vary`.
#[derive(Debug, Args)]
pub struct VaryArgs {
    #[command(flatten)]
    pub clip: ClipArgs,
    /// How far the variation departs, above 0 (the input) to 1 (new audio).
    #[arg(long, default_value_t = adiff_core::render::DEFAULT_STRENGTH)]
    pub strength: f64,
    #[command(flatten)]
    pub sampling: SamplingArgs,
}

/// Runs the command.
pub fn run(args: &VaryArgs) -> Result<()> {
    let input = args.clip.read()?;
    let model = open_model(args.clip.model.as_ref(), &args.sampling, false)?;
    let opts = RenderOptions {
        strength: Some(args.strength),
        ..args.sampling.options()
    };
    let out = with_progress("varying", &[], |on| model.variation(&input, &opts, on))?;
    args.clip.write(&out)
}
