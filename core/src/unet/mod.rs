//! The UNet of audio-diffusion-pytorch 0.0.61 (`modules.py`, reference §1): config, blocks, levels,
//! transformer, `UNet1d` and `UNetConditional1d`.
//!
//! Weights are named after the reference's `state_dict()` keys; a [`candle_nn::VarMap`]-backed
//! builder gives a freshly initialised, trainable network (PyTorch default initialisation), and
//! [`crate::weights`] loads reference checkpoints.
//!
//! ```
//! use adiff_core::unet::{UNet1d, UNet1dConfig};
//! use adiff_core::NetInputs;
//! use candle_core::{DType, Device, Tensor};
//! use candle_nn::{VarBuilder, VarMap};
//!
//! let cfg = UNet1dConfig {
//!     channels: 8, patch_factor: 2, multipliers: vec![1, 2], factors: vec![2],
//!     num_blocks: vec![1], attentions: vec![0, 0], resnet_groups: 4,
//!     ..UNet1dConfig::default_model(1)
//! };
//! let varmap = VarMap::new();
//! let unet = UNet1d::new(&cfg, VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu))?;
//! let x = Tensor::zeros((2, 1, 16), DType::F32, &Device::Cpu)?; // (batch, channels, samples)
//! let t = Tensor::new(&[0.1f32, 0.9], &Device::Cpu)?; // (batch,)
//! let y = unet.forward(&x, Some(&t), &NetInputs::none())?;
//! assert_eq!(y.dims(), &[2, 1, 16]);
//! # Ok::<(), adiff_core::Error>(())
//! ```

pub mod conditional;
pub mod config;
pub mod levels;
pub mod load;
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
pub use load::{load_model, load_unet, load_unet_conditional, unet_from_tensors};
pub use model::UNet1d;
pub use patch::{patch, unpatch, PatchBlock, Patcher, UnpatchBlock, Unpatcher};
pub use resnet::{ConvBlock1d, MappingToScaleShift, ResnetBlock1d};
pub use sampling::{downsample1d, upsample_nearest, Upsample1d};
pub use scale::{merge_magnitude_channels, norm_scale, quantile_last_dim};
pub use shapes::{parameter_count, state_dict_shapes};
pub use transformer::{FeedForward, Transformer1d, TransformerBlock};
