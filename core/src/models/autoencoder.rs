//! `model.py::DiffusionAutoencoder1d` / `AudioDiffusionAutoencoder` (audio-diffusion-pytorch
//! 0.0.61, reference §4.6): a MultiEncoder1d compresses audio to a latent in (-1, 1); a diffusion
//! UNet conditioned on the decoded latent (context channels) reconstructs the audio by sampling.
//!
//! Compatibility (reference Appendix A.8): under [`Compat::V0_0_61`] `encode` calls the bottleneck
//! without `with_info`, so its bare output is unpacked along the batch axis (the latent is row 0,
//! and any batch other than 2 fails, as in the reference). [`Compat::Fixed`] calls it with info
//! and returns its loss.

use super::config::{from_kwargs, DiffusionConfig};
use super::model1d::Model1d;
use super::multiencoder::{MultiEncoder1d, MultiEncoder1dConfig};
use super::sampling::Sampling;
use super::variational::{Bottleneck, BottleneckConfig, Variational};
use crate::sampler::OnStep;
use crate::unet::{UNet1d, UNet1dConfig};
use crate::{Compat, Error, NetInputs, NoiseSource, Result};
use candle_core::Tensor;
use candle_nn::VarBuilder;
use serde::{Deserialize, Serialize};

fn default_depth() -> usize {
    4
}
fn default_encoder_channels() -> usize {
    64
}

/// `AudioDiffusionAutoencoder(encoder_depth=4, encoder_channels=64, bottleneck=None,
/// encoder_num_blocks=None, encoder_out_layers=0, **kwargs)`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AudioDiffusionAutoencoderConfig {
    /// Encoder levels.
    #[serde(default = "default_depth")]
    pub encoder_depth: usize,
    /// Latent channels.
    #[serde(default = "default_encoder_channels")]
    pub encoder_channels: usize,
    /// Optional bottleneck on the latent.
    #[serde(default)]
    pub bottleneck: Option<BottleneckConfig>,
    /// Resnets per encoder level (None: the UNet's `num_blocks`).
    #[serde(default)]
    pub encoder_num_blocks: Option<Vec<usize>>,
    /// Levels the encoder's decode path climbs back (0: the latent level only).
    #[serde(default)]
    pub encoder_out_layers: usize,
    /// The UNet1d keyword arguments (`context_channels` is set from the encoder).
    #[serde(flatten)]
    pub unet: UNet1dConfig,
    /// The `diffusion_*` keyword arguments.
    #[serde(flatten)]
    pub diffusion: DiffusionConfig,
}

impl AudioDiffusionAutoencoderConfig {
    /// Parses reference keyword arguments (unknown keys are an error).
    pub fn from_kwargs(kwargs: &serde_json::Value) -> Result<Self> {
        from_kwargs(kwargs, "AudioDiffusionAutoencoder")
    }

    /// The encoder, sharing the UNet's width, patching, multipliers and factors.
    pub fn encoder_config(&self) -> MultiEncoder1dConfig {
        let u = &self.unet;
        MultiEncoder1dConfig {
            in_channels: u.in_channels,
            channels: u.channels,
            patch_factor: u.patch_factor,
            patch_blocks: u.patch_blocks,
            resnet_groups: u.resnet_groups,
            kernel_multiplier_downsample: u.kernel_multiplier_downsample,
            num_layers: self.encoder_depth,
            num_layers_out: self.encoder_out_layers,
            latent_channels: self.encoder_channels,
            multipliers: u.multipliers.clone(),
            factors: u.factors.clone(),
            num_blocks: self
                .encoder_num_blocks
                .clone()
                .unwrap_or_else(|| u.num_blocks.clone()),
        }
    }

    /// The UNet with `context_channels` = the encoder's channel list.
    pub fn unet_config(&self) -> UNet1dConfig {
        let mut unet = self.unet.clone();
        unet.context_channels = Some(self.encoder_config().channels_list());
        unet
    }
}

/// The training loss and, with a bottleneck, its own loss (add them for the total).
#[derive(Debug, Clone)]
pub struct AutoencoderLoss {
    /// The diffusion loss.
    pub diffusion: Tensor,
    /// The bottleneck's loss (weighted), if there is a bottleneck.
    pub bottleneck: Option<Tensor>,
}

impl AutoencoderLoss {
    /// `diffusion + bottleneck`.
    pub fn total(&self) -> Result<Tensor> {
        Ok(match &self.bottleneck {
            Some(b) => (&self.diffusion + b)?,
            None => self.diffusion.clone(),
        })
    }
}

/// The diffusion autoencoder.
#[derive(Debug)]
pub struct AudioDiffusionAutoencoder {
    /// The objective and its UNet1d (`unet.*`).
    pub model: Model1d<UNet1d>,
    /// Optional bottleneck (`bottleneck.*`).
    pub bottleneck: Option<Variational>,
    /// The encoder (`multiencoder.*`).
    pub multiencoder: MultiEncoder1d,
    cfg: AudioDiffusionAutoencoderConfig,
}

impl AudioDiffusionAutoencoder {
    /// Builds the model with the reference's key names.
    pub fn new(
        cfg: &AudioDiffusionAutoencoderConfig,
        compat: Compat,
        vb: VarBuilder,
    ) -> Result<Self> {
        let multiencoder = MultiEncoder1d::new(&cfg.encoder_config(), vb.pp("multiencoder"))?;
        let unet = UNet1d::new(&cfg.unet_config(), vb.pp("unet"))?.with_compat(compat);
        let bottleneck = match &cfg.bottleneck {
            Some(BottleneckConfig::Variational(v)) => {
                Some(Variational::new(v, compat, vb.pp("bottleneck"))?)
            }
            None => None,
        };
        Ok(Self {
            model: Model1d::new(unet, &cfg.diffusion, compat)?,
            bottleneck,
            multiencoder,
            cfg: cfg.clone(),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &AudioDiffusionAutoencoderConfig {
        &self.cfg
    }

    /// Audio samples per latent frame.
    pub fn factor(&self) -> usize {
        self.multiencoder.config().factor()
    }

    /// `encode(x, with_info=True)`: `x (batch, in, T)` to the latent `(batch, encoder_channels,
    /// T / factor)` in (-1, 1) (before the bottleneck), and the bottleneck's loss.
    pub fn encode_with_info(
        &self,
        x: &Tensor,
        noise: &mut dyn NoiseSource,
    ) -> Result<(Tensor, Option<Tensor>)> {
        let latent = self.multiencoder.encode(x)?.tanh()?;
        let Some(b) = &self.bottleneck else {
            return Ok((latent, None));
        };
        let out = b.forward(&latent, noise)?;
        if self.model.compat().is_reference() {
            // `latent, info = bottleneck(latent)` on a bare tensor: unpacks along the batch axis.
            let rows = out.latent.dim(0)?;
            if rows != 2 {
                return Err(Error::input(
                    "x",
                    format!("0.0.61 unpacks the bottleneck output along the batch axis and needs batch 2, got {rows}"),
                ));
            }
            return Ok((out.latent.get(0)?, None));
        }
        Ok((out.latent, Some(out.loss)))
    }

    /// `encode(x)`: the latent only.
    pub fn encode(&self, x: &Tensor, noise: &mut dyn NoiseSource) -> Result<Tensor> {
        Ok(self.encode_with_info(x, noise)?.0)
    }

    /// `forward(x)`: encode, decode the latent to context channels, diffusion loss on `x`
    /// (end-to-end trainable). Draws: the bottleneck's, then the diffusion's.
    pub fn loss(&self, x: &Tensor, noise: &mut dyn NoiseSource) -> Result<AutoencoderLoss> {
        let (latent, bottleneck) = self.encode_with_info(x, noise)?;
        let channels_list = self.multiencoder.decode(&latent)?;
        let inputs = NetInputs {
            channels_list,
            ..NetInputs::none()
        };
        Ok(AutoencoderLoss {
            diffusion: self.model.loss(x, &inputs, noise)?,
            bottleneck,
        })
    }

    /// `decode(latent)`: draws the start noise `(batch, in, latent_T * factor)` first, then samples
    /// audio conditioned on the latent's context channels.
    pub fn decode(
        &self,
        latent: &Tensor,
        sampling: &Sampling,
        noise: &mut dyn NoiseSource,
        on_step: &mut OnStep<'_>,
    ) -> Result<Tensor> {
        let (b, _, t) = latent.dims3().map_err(|_| {
            Error::input(
                "latent",
                format!(
                    "expected (batch, {}, frames), got {:?}",
                    self.cfg.encoder_channels,
                    latent.dims()
                ),
            )
        })?;
        let shape = [b, self.cfg.unet.in_channels, t * self.factor()];
        let start = noise
            .randn(&shape, latent.device())?
            .to_dtype(latent.dtype())?;
        let channels_list = self.multiencoder.decode(latent)?;
        let inputs = NetInputs {
            channels_list,
            ..NetInputs::none()
        };
        self.model.sample(&start, sampling, &inputs, noise, on_step)
    }
}
