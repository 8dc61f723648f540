//! The model classes of `model.py` (audio-diffusion-pytorch 0.0.61, reference §4), each a config
//! (the reference keyword arguments with their defaults) and `new(cfg, compat, vb)` with the
//! reference's weight names, plus the model folder that every front end loads.
//!
//! - [`generator`]: `AudioDiffusionModel`; [`upsampler`]: `AudioDiffusionUpsampler`;
//!   [`autoencoder`]: `AudioDiffusionAutoencoder` over [`multiencoder`]`::MultiEncoder1d`;
//!   [`conditional`]: `AudioDiffusionConditional`; [`autoencoder1d`]: the plain `AutoEncoder1d`;
//!   [`variational`]: the `Variational` bottleneck; [`embedding`]: `SinusoidalEmbedding`.
//! - [`model1d`] and [`config`]: `Model1d` (network + objective) and the `diffusion_*` kwargs;
//!   [`sampling`]: schedule + sampler + steps (the reference defaults Karras(1e-4, 3, 9) + AEuler).
//! - [`folder`]: `config.json` + `model.safetensors`; [`any`]: any model from a folder, and
//!   `convert` from a reference checkpoint.

pub mod embedding;
pub mod folder;
pub mod variational;

pub mod any;
pub mod autoencoder;
pub mod autoencoder1d;
pub mod bandext;
pub mod conditional;
pub mod config;
pub mod generator;
pub mod model1d;
pub mod multiencoder;
pub mod sampling;
pub mod upsampler;

pub use any::{convert, convert_to, AnyModel, ModelConfig};
pub use autoencoder::{
    AudioDiffusionAutoencoder, AudioDiffusionAutoencoderConfig, AutoencoderLoss,
};
pub use autoencoder1d::{AutoEncoder1d, AutoEncoder1dConfig, Encoded};
pub use conditional::{AudioDiffusionConditional, AudioDiffusionConditionalConfig};
pub use config::{DiffusionConfig, DiffusionType, DistributionConfig, Objective};
pub use folder::{FolderConfig, ModelFolder, ModelKind};
pub use generator::{AudioDiffusionModel, AudioDiffusionModelConfig};
pub use model1d::Model1d;
pub use multiencoder::{MultiEncoder1d, MultiEncoder1dConfig};
pub use sampling::Sampling;
pub use upsampler::{AudioDiffusionUpsampler, AudioDiffusionUpsamplerConfig, Factors};
pub use variational::{
    Bottleneck, BottleneckConfig, BottleneckOutput, Variational, VariationalConfig,
};
