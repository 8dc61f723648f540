//! Sampling pipelines of `diffusion.py` (audio-diffusion-pytorch 0.0.61): `DiffusionSampler`
//! (schedule + sampler over an objective's denoiser, final clamp), `DiffusionInpainter`
//! (RePaint-style), `SpanBySpanComposer` (infinite generation by repeated inpainting), and a
//! cancellation flag usable as the samplers' per-step callback, and windowed sampling of long
//! inputs shared by the command line and the plugin.

mod cancel;
mod composer;
mod inpainter;
mod sampler;
mod windowed;

pub use cancel::{CancelFlag, Progress};
pub use composer::{sequential_mask, SpanBySpanComposer};
pub use inpainter::DiffusionInpainter;
pub use sampler::DiffusionSampler;
pub use windowed::{sample_in_windows, WindowJob, WindowedStep, OVERLAP_DIVISOR};
