//! `adiff train`: trains a model of `adiff_core` on a folder of audio (no reference counterpart:
//! audio-diffusion-pytorch 0.0.61 ships no trainer). See `session` for the loop.

pub mod checkpoint;
pub mod dist;
pub mod ema;
pub mod init;
pub mod metrics;
pub mod model;
pub mod optim;
pub mod progress;
pub mod session;
pub mod settings;

#[cfg(test)]
mod tests;
