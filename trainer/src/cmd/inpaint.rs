//! `adiff inpaint`: regenerate a time span of a clip with a generator model (RePaint inpainting;
//! the rest of the clip comes back untouched).

use super::common::{open_model, with_progress, ClipArgs, SamplingArgs};
use adiff_core::render::{Keep, RenderOptions};
use anyhow::Result;
use clap::Args;

/// Options of `adiff inpaint`.
#[derive(Debug, Args)]
pub struct InpaintArgs {
    #[command(flatten)]
    pub clip: ClipArgs,
    /// Start of the span to regenerate (seconds).
    #[arg(long)]
    pub start: f64,
    /// End of the span to regenerate (seconds).
    #[arg(long)]
    pub end: f64,
    /// RePaint resamples per step, 1 (none) to 100.
    #[arg(long, default_value_t = 2)]
    pub resamples: usize,
    #[command(flatten)]
    pub sampling: SamplingArgs,
}

/// Runs the command.
pub fn run(args: &InpaintArgs) -> Result<()> {
    let input = args.clip.read()?;
    let model = open_model(args.clip.model.as_ref(), &args.sampling, false)?;
    let opts = RenderOptions {
        resamples: Some(args.resamples),
        ..args.sampling.options()
    };
    let keep = Keep::Outside {
        start: args.start,
        end: args.end,
    };
    let span = [("inpaint span", "--start/--end")];
    let out = with_progress("inpainting", &span, |on| {
        model.inpaint(&input, &keep, &opts, on)
    })?;
    args.clip.write(&out)
}
