//! The UNet of audio-diffusion-pytorch 0.0.61 (`modules.py`, SPEC §1): config, blocks, levels,
//! transformer, `UNet1d` and `UNetConditional1d`.

pub mod conditional;
pub mod config;
pub mod levels;
pub mod model;
pub mod patch;
pub mod resnet;
pub mod sampling;
pub mod scale;
pub mod shapes;
pub mod transformer;

pub use conditional::{FixedEmbedding, UNetConditional1d, UNetConditional1dConfig};
pub use config::UNet1dConfig;
pub use levels::{
    AttentionOptions, BottleneckBlock1d, DownOutput, DownsampleBlock1d, DownsampleBlock1dConfig,
    UpsampleBlock1d, UpsampleBlock1dConfig,
};
pub use model::UNet1d;
pub use patch::{patch, unpatch, PatchBlock, Patcher, UnpatchBlock, Unpatcher};
pub use resnet::{ConvBlock1d, MappingToScaleShift, ResnetBlock1d};
pub use sampling::{downsample1d, upsample_nearest, Upsample1d};
pub use scale::{merge_magnitude_channels, norm_scale, quantile_last_dim};
pub use shapes::{parameter_count, state_dict_shapes};
pub use transformer::{FeedForward, Transformer1d, TransformerBlock};
