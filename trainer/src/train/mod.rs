//! `adiff train`: trains a model of `adiff_core` on a folder of audio (no reference counterpart:
//! audio-diffusion-pytorch 0.0.61 ships no trainer). See `session` for the loop.

pub mod adapters;
pub mod checkpoint;
pub mod cli;
pub mod dist;
pub mod ema;
pub mod init;
pub mod interrupt;
pub mod metrics;
pub mod model;
pub mod optim;
pub mod outputs;
pub mod progress;
pub mod session;
pub mod settings;

pub use cli::{run, TrainArgs};

#[cfg(test)]
mod tests;
