//! One runner per component family. Each builds the reference object from the case's constructor
//! tree in the 0.0.61-compatibility mode, replays the recorded draws, and makes the calls.

use crate::fixtures::Runner;

pub mod diffusion;
pub mod models;
pub mod unet;
pub mod utils;

/// The runner for a reference component, or `None` when there is no implementation of it.
pub fn runner_for(component: &str) -> Option<Runner> {
    match component {
        "UNet1d" | "UNetConditional1d" | "merge_magnitude_channels" => Some(unet::run),
        "VDiffusion" | "KDiffusion" | "KarrasSchedule" | "DiffusionSampler"
        | "DiffusionInpainter" | "SpanBySpanComposer" => Some(diffusion::run),
        "resample" | "SinusoidalEmbedding" => Some(utils::run),
        "AudioDiffusionModel"
        | "AudioDiffusionUpsampler"
        | "AudioDiffusionAutoencoder"
        | "AudioDiffusionConditional"
        | "AutoEncoder1d"
        | "Variational"
        | "MultiEncoder1d" => Some(models::run),
        _ => None,
    }
}
