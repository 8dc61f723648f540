pub mod embedding;
pub mod folder;
pub mod variational;

pub mod any;
pub mod autoencoder;
pub mod autoencoder1d;
pub mod conditional;
pub mod config;
pub mod generator;
pub mod model1d;
pub mod multiencoder;
pub mod sampling;
pub mod upsampler;

pub use any::{convert, AnyModel, ModelConfig};
pub use autoencoder::{AudioDiffusionAutoencoder, AudioDiffusionAutoencoderConfig, AutoencoderLoss};
pub use autoencoder1d::{AutoEncoder1d, AutoEncoder1dConfig, Encoded};
pub use conditional::{AudioDiffusionConditional, AudioDiffusionConditionalConfig};
pub use config::{DiffusionConfig, DiffusionType, DistributionConfig, Objective};
pub use folder::{FolderConfig, ModelFolder, ModelKind};
pub use generator::{AudioDiffusionModel, AudioDiffusionModelConfig};
pub use model1d::Model1d;
pub use multiencoder::{MultiEncoder1d, MultiEncoder1dConfig};
pub use sampling::Sampling;
pub use upsampler::{AudioDiffusionUpsampler, AudioDiffusionUpsamplerConfig, Factors};
pub use variational::{Bottleneck, BottleneckConfig, BottleneckOutput, Variational, VariationalConfig};
