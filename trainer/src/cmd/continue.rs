//! `adiff continue`: extend a clip span by span (each span inpaints the second half of a window
//! whose first half is the music so far); the output is the input, untouched, followed by the
//! continuation.

use super::common::{open_model, with_progress, ClipArgs, SamplingArgs};
use adiff_core::render::Extend;
use anyhow::Result;
use clap::Args;

/// Options of `adiff continue`.
#[derive(Debug, Args)]
pub struct ContinueArgs {
    #[command(flatten)]
    pub clip: ClipArgs,
    /// Number of new spans, each half a model window long: 1 to 1000 (and at most 3 h in all).
    #[arg(long, default_value_t = 2)]
    pub spans: usize,
    #[command(flatten)]
    pub sampling: SamplingArgs,
}

/// Runs the command.
pub fn run(args: &ContinueArgs) -> Result<()> {
    let input = args.clip.read()?;
    let model = open_model(args.clip.model.as_ref(), &args.sampling, false)?;
    let opts = args.sampling.options();
    let out = with_progress("continuing", &[("length", "--spans")], |on| {
        model.continue_clip(&input, Extend::Spans(args.spans), &opts, on)
    })?;
    args.clip.write(&out)
}
