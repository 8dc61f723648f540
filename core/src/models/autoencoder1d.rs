//! `model.py::AutoEncoder1d` (audio-diffusion-pytorch 0.0.61, reference §4.7): a plain
//! convolutional autoencoder (no diffusion) with an optional bottleneck, optional noise channels in
//! the decoder (`use_noisy`) and optional magnitude-channel output.

use super::variational::{Bottleneck, BottleneckConfig, Variational};
use crate::unet::levels::{DownsampleBlock1dConfig, UpsampleBlock1dConfig};
use crate::unet::{
    merge_magnitude_channels, DownsampleBlock1d, Patcher, Unpatcher, UpsampleBlock1d,
};
use crate::{Compat, Error, NoiseSource, Result};
use candle_core::Tensor;
use candle_nn::VarBuilder;
use serde::{Deserialize, Serialize};

/// Keyword arguments of `AutoEncoder1d`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AutoEncoder1dConfig {
    /// Audio channels.
    pub in_channels: usize,
    /// Base width c.
    pub channels: usize,
    /// Number of patch blocks.
    pub patch_blocks: usize,
    /// Samples folded into channels by each patch block.
    pub patch_factor: usize,
    /// GroupNorm groups.
    pub resnet_groups: usize,
    /// Level widths `c * multipliers[i]`, length L+1.
    pub multipliers: Vec<usize>,
    /// Per-level factors, length L.
    pub factors: Vec<usize>,
    /// Resnets per level, length L.
    pub num_blocks: Vec<usize>,
    /// Concatenate a normal draw to the decoder input of every level and of `to_out`.
    #[serde(default)]
    pub use_noisy: bool,
    /// Optional bottleneck (e.g. `Variational`).
    #[serde(default)]
    pub bottleneck: Option<BottleneckConfig>,
    /// Double the output channels and merge them as `sigmoid(a) * tanh(b)`.
    #[serde(default)]
    pub use_magnitude_channels: bool,
}

impl AutoEncoder1dConfig {
    fn validate(&self) -> Result<()> {
        let l = self.multipliers.len().saturating_sub(1);
        if l == 0 {
            return Err(Error::config("multipliers", "needs at least two entries"));
        }
        if self.factors.len() != l || self.factors.contains(&0) {
            return Err(Error::config(
                "factors",
                format!("needs {l} positive entries"),
            ));
        }
        if self.num_blocks.len() != l {
            return Err(Error::config("num_blocks", format!("needs {l} entries")));
        }
        Ok(())
    }

    /// Total downsampling factor of the encoder.
    pub fn factor(&self) -> usize {
        self.patch_factor.pow(self.patch_blocks as u32) * self.factors.iter().product::<usize>()
    }
}

/// What `encode` returns: the latent, each level's output, and the bottleneck's loss.
#[derive(Debug, Clone)]
pub struct Encoded {
    /// The latent `(batch, c m[L], T / factor)`.
    pub latent: Tensor,
    /// `info["xs"]`: the output of each down level.
    pub xs: Vec<Tensor>,
    /// `info["loss"]` of the bottleneck, when there is one.
    pub loss: Option<Tensor>,
}

/// The plain autoencoder.
#[derive(Debug, Clone)]
pub struct AutoEncoder1d {
    /// Optional bottleneck (`bottleneck.*`, registered first).
    pub bottleneck: Option<Variational>,
    /// Patcher(in -> c).
    pub to_in: Patcher,
    /// DownsampleBlock1d(c m[i] -> c m[i+1]), kernel multiplier 2.
    pub downsamples: Vec<DownsampleBlock1d>,
    /// UpsampleBlock1d(c m[i+1] (x2 noisy) -> c m[i]) for i = L-1 down to 0.
    pub upsamples: Vec<UpsampleBlock1d>,
    /// Unpatcher(c (x2 noisy) -> in (x2 magnitude)).
    pub to_out: Unpatcher,
    cfg: AutoEncoder1dConfig,
}

impl AutoEncoder1d {
    /// Builds the autoencoder under `vb` with the reference's key names.
    pub fn new(cfg: &AutoEncoder1dConfig, compat: Compat, vb: VarBuilder) -> Result<Self> {
        cfg.validate()?;
        let (c, m, g) = (cfg.channels, &cfg.multipliers, cfg.resnet_groups);
        let l = m.len() - 1;
        let noisy = if cfg.use_noisy { 2 } else { 1 };
        let bottleneck = match &cfg.bottleneck {
            Some(BottleneckConfig::Variational(v)) => {
                Some(Variational::new(v, compat, vb.pp("bottleneck"))?)
            }
            None => None,
        };
        let to_in = Patcher::new(
            cfg.in_channels,
            c,
            cfg.patch_blocks,
            cfg.patch_factor,
            None,
            vb.pp("to_in"),
        )?;
        let dvb = vb.pp("downsamples");
        let downsamples = (0..l)
            .map(|i| {
                let d = DownsampleBlock1dConfig {
                    in_channels: c * m[i],
                    out_channels: c * m[i + 1],
                    factor: cfg.factors[i],
                    num_groups: g,
                    num_layers: cfg.num_blocks[i],
                    kernel_multiplier: 2,
                    ..DownsampleBlock1dConfig::default()
                };
                DownsampleBlock1d::new(&d, dvb.pp(i))
            })
            .collect::<Result<_>>()?;
        let uvb = vb.pp("upsamples");
        let upsamples = (0..l)
            .map(|u| {
                let i = l - 1 - u;
                let up = UpsampleBlock1dConfig {
                    in_channels: c * m[i + 1] * noisy,
                    out_channels: c * m[i],
                    factor: cfg.factors[i],
                    num_layers: cfg.num_blocks[i],
                    num_groups: g,
                    use_nearest: false,
                    use_skip: false,
                    ..UpsampleBlock1dConfig::default()
                };
                UpsampleBlock1d::new(&up, uvb.pp(u))
            })
            .collect::<Result<_>>()?;
        let out = cfg.in_channels * if cfg.use_magnitude_channels { 2 } else { 1 };
        let to_out = Unpatcher::new(
            c * noisy,
            out,
            cfg.patch_blocks,
            cfg.patch_factor,
            None,
            vb.pp("to_out"),
        )?;
        Ok(Self {
            bottleneck,
            to_in,
            downsamples,
            upsamples,
            to_out,
            cfg: cfg.clone(),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &AutoEncoder1dConfig {
        &self.cfg
    }

    /// `encode(x, with_info=True)`: `x (batch, in, T)` to the latent; the bottleneck's draws come
    /// from `noise`.
    pub fn encode(&self, x: &Tensor, noise: &mut dyn NoiseSource) -> Result<Encoded> {
        let t = x.dim(candle_core::D::Minus1)?;
        let factor = self.cfg.factor();
        if t == 0 || t % factor != 0 {
            return Err(Error::input(
                "x",
                format!("length {t} is not a positive multiple of {factor}"),
            ));
        }
        let mut x = self.to_in.forward(x, None)?;
        let mut xs = Vec::with_capacity(self.downsamples.len());
        for down in &self.downsamples {
            x = down.forward(&x, None, None, None)?.x;
            xs.push(x.clone());
        }
        let mut loss = None;
        if let Some(b) = &self.bottleneck {
            let out = b.forward(&x, noise)?;
            x = out.latent;
            loss = Some(out.loss);
        }
        Ok(Encoded {
            latent: x,
            xs,
            loss,
        })
    }

    /// Concatenates a normal draw like `x` on the channel axis when `use_noisy`.
    fn add_noise(&self, x: Tensor, noise: &mut dyn NoiseSource) -> Result<Tensor> {
        if !self.cfg.use_noisy {
            return Ok(x);
        }
        let n = noise.randn(x.dims(), x.device())?.to_dtype(x.dtype())?;
        Ok(Tensor::cat(&[&x, &n], 1)?)
    }

    /// `decode(z)`: latent to audio `(batch, in, T)`; with `use_noisy` draws before every
    /// upsample block and before `to_out`.
    pub fn decode(&self, latent: &Tensor, noise: &mut dyn NoiseSource) -> Result<Tensor> {
        let mut x = latent.clone();
        for up in &self.upsamples {
            x = self.add_noise(x, noise)?;
            x = up.forward(&x, None, None, None)?.0;
        }
        x = self.add_noise(x, noise)?;
        x = self.to_out.forward(&x, None)?;
        if self.cfg.use_magnitude_channels {
            x = merge_magnitude_channels(&x)?;
        }
        Ok(x)
    }

    /// `forward(x)`: `decode(encode(x))`, with the bottleneck loss when there is one.
    pub fn forward(
        &self,
        x: &Tensor,
        noise: &mut dyn NoiseSource,
    ) -> Result<(Tensor, Option<Tensor>)> {
        let e = self.encode(x, noise)?;
        Ok((self.decode(&e.latent, noise)?, e.loss))
    }
}
