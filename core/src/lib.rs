//! adiff-core: waveform diffusion on candle, a Rust port of audio-diffusion-pytorch 0.0.61.
//!
//! Comments cite the reference's behaviour by section of `docs/reference.md` (workspace root):
//! "reference §3.7" means that document's §3.7, "reference Appendix A.2" its Appendix A, item 2.
//!
//! Map (one concept a module, see `DESIGN.md`):
//! - [`error`]: the crate's one error type.
//! - [`compat`]: the `0.0.61` compatibility switch for the reference's known bugs.
//! - [`noise`]: every random draw goes through a [`noise::NoiseSource`] (seeded or replayed).
//! - [`device`]: picks the CPU or a CUDA device.
#![forbid(unsafe_code)]

pub mod audio;
pub mod compat;
pub mod contain;
pub mod device;
pub mod diffusion;
pub mod error;
pub mod eval;
pub mod files;
pub mod flops;
pub mod models;
pub mod net;
pub mod nn;
pub mod noise;
/// The fast CPU kernels: the `adiff-kernels` crate, which holds all of the library's `unsafe`.
pub use adiff_kernels as ops;
pub mod optim;
pub mod pipeline;
pub mod render;
pub mod sampler;
pub mod schedule;
pub mod unet;
pub mod weights;

pub use compat::Compat;
pub use error::{Error, Result};
pub use net::{Net, NetInputs};
pub use noise::{NoiseSource, ReplayNoise, SeededNoise};
