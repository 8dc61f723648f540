//! `model.py::MultiEncoder1d` (audio-diffusion-pytorch 0.0.61, reference §4.5): the encoder of the
//! diffusion autoencoder. `encode` patches and downsamples to a latent; `decode` turns a latent
//! into the list of context channels the UNet takes, one per level from the deepest up.

use crate::unet::levels::{DownsampleBlock1dConfig, UpsampleBlock1dConfig};
use crate::unet::{DownsampleBlock1d, Patcher, ResnetBlock1d, Unpatcher, UpsampleBlock1d};
use crate::{Error, Result};
use candle_core::Tensor;
use candle_nn::VarBuilder;
use serde::{Deserialize, Serialize};

/// Keyword arguments of `MultiEncoder1d` (all required in the reference).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MultiEncoder1dConfig {
    /// Audio channels of the input.
    pub in_channels: usize,
    /// Base width c.
    pub channels: usize,
    /// Samples folded into channels by each patch block.
    pub patch_factor: usize,
    /// Number of patch blocks.
    pub patch_blocks: usize,
    /// GroupNorm groups.
    pub resnet_groups: usize,
    /// Downsample kernel = factor x this + 1.
    pub kernel_multiplier_downsample: usize,
    /// Encoder depth (levels used).
    pub num_layers: usize,
    /// How many levels the decode path climbs back (0 = only the latent level).
    pub num_layers_out: usize,
    /// Channels of the latent.
    pub latent_channels: usize,
    /// Level widths `c * multipliers[i]` (at least `num_layers + 1` entries).
    pub multipliers: Vec<usize>,
    /// Per-level factors (at least `num_layers` entries).
    pub factors: Vec<usize>,
    /// Resnets per level (at least `num_layers` entries).
    pub num_blocks: Vec<usize>,
}

impl MultiEncoder1dConfig {
    /// Checks the lengths and divisibility the reference assumes; the error names the field.
    pub fn validate(&self) -> Result<()> {
        let l = self.num_layers;
        if l == 0 {
            return Err(Error::config(
                "num_layers",
                "the encoder needs at least one level",
            ));
        }
        if self.num_layers_out > l {
            return Err(Error::config(
                "num_layers_out",
                format!("must be at most num_layers = {l}"),
            ));
        }
        if self.multipliers.len() < l + 1 {
            return Err(Error::config(
                "multipliers",
                format!("needs at least {} entries", l + 1),
            ));
        }
        if self.factors.len() < l || self.factors[..l].contains(&0) {
            return Err(Error::config(
                "factors",
                format!("needs at least {l} positive entries"),
            ));
        }
        if self.num_blocks.len() < l {
            return Err(Error::config(
                "num_blocks",
                format!("needs at least {l} entries"),
            ));
        }
        if self.latent_channels == 0
            || self.resnet_groups == 0
            || !self.latent_channels.is_multiple_of(self.resnet_groups)
        {
            return Err(Error::config(
                "latent_channels",
                format!(
                    "{} latent channels must be a positive multiple of resnet_groups = {}",
                    self.latent_channels, self.resnet_groups
                ),
            ));
        }
        Ok(())
    }

    /// The total downsampling factor `patch_factor^patch_blocks * prod(factors[..num_layers])`.
    pub fn factor(&self) -> usize {
        self.patch_factor.pow(self.patch_blocks as u32)
            * self.factors[..self.num_layers].iter().product::<usize>()
    }

    /// The UNet's `context_channels`: `[in, c m1, ..., c mL]`, its last `num_layers_out + 1`
    /// entries, left-padded with zeros to `num_layers + 1` entries.
    pub fn channels_list(&self) -> Vec<usize> {
        let l = self.num_layers;
        let c = self.channels;
        let mut full = vec![self.in_channels];
        full.extend((1..=l).map(|i| c * self.multipliers[i]));
        let keep = &full[full.len() - (self.num_layers_out + 1)..];
        let mut out = vec![0; l - self.num_layers_out];
        out.extend_from_slice(keep);
        out
    }
}

/// `MultiEncoder1d`: `to_in`, `downsamples`, `to_latent`, `from_latent`, `upsamples`, `to_out`.
#[derive(Debug, Clone)]
pub struct MultiEncoder1d {
    /// Patcher(in -> c), no mapping.
    pub to_in: Patcher,
    /// DownsampleBlock1d(c m[i] -> c m[i+1]) for i < num_layers.
    pub downsamples: Vec<DownsampleBlock1d>,
    /// ResnetBlock1d(c m[L] -> latent).
    pub to_latent: ResnetBlock1d,
    /// ResnetBlock1d(latent -> c m[L]).
    pub from_latent: ResnetBlock1d,
    /// UpsampleBlock1d(c m[i+1] -> c m[i], extracting c m[i]) for i = L-1 down to L-out.
    pub upsamples: Vec<UpsampleBlock1d>,
    /// Unpatcher(c -> in); always built, used only when `num_layers_out == num_layers`.
    pub to_out: Unpatcher,
    cfg: MultiEncoder1dConfig,
}

impl MultiEncoder1d {
    /// Builds the encoder under `vb` with the reference's key names.
    pub fn new(cfg: &MultiEncoder1dConfig, vb: VarBuilder) -> Result<Self> {
        cfg.validate()?;
        let (c, m, l, g) = (
            cfg.channels,
            &cfg.multipliers,
            cfg.num_layers,
            cfg.resnet_groups,
        );
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
                    kernel_multiplier: cfg.kernel_multiplier_downsample,
                    ..DownsampleBlock1dConfig::default()
                };
                DownsampleBlock1d::new(&d, dvb.pp(i))
            })
            .collect::<Result<_>>()?;
        let to_latent =
            ResnetBlock1d::new(c * m[l], cfg.latent_channels, g, None, vb.pp("to_latent"))?;
        let from_latent =
            ResnetBlock1d::new(cfg.latent_channels, c * m[l], g, None, vb.pp("from_latent"))?;
        let uvb = vb.pp("upsamples");
        let upsamples = (0..cfg.num_layers_out)
            .map(|u| {
                let i = l - 1 - u;
                let up = UpsampleBlock1dConfig {
                    in_channels: c * m[i + 1],
                    out_channels: c * m[i],
                    factor: cfg.factors[i],
                    num_layers: cfg.num_blocks[i],
                    num_groups: g,
                    use_nearest: false,
                    use_skip: false,
                    extract_channels: c * m[i],
                    ..UpsampleBlock1dConfig::default()
                };
                UpsampleBlock1d::new(&up, uvb.pp(u))
            })
            .collect::<Result<_>>()?;
        let to_out = Unpatcher::new(
            c,
            cfg.in_channels,
            cfg.patch_blocks,
            cfg.patch_factor,
            None,
            vb.pp("to_out"),
        )?;
        Ok(Self {
            to_in,
            downsamples,
            to_latent,
            from_latent,
            upsamples,
            to_out,
            cfg: cfg.clone(),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &MultiEncoder1dConfig {
        &self.cfg
    }

    /// `x (batch, in, T)` -> latent `(batch, latent_channels, T / factor)`.
    pub fn encode(&self, x: &Tensor) -> Result<Tensor> {
        let t = x.dim(candle_core::D::Minus1)?;
        let factor = self.cfg.factor();
        if t == 0 || t % factor != 0 {
            return Err(Error::input(
                "x",
                format!("length {t} is not a positive multiple of the encoder factor {factor}"),
            ));
        }
        let mut x = self.to_in.forward(x, None)?;
        for down in &self.downsamples {
            x = down.forward(&x, None, None, None)?.x;
        }
        self.to_latent.forward(&x, None)
    }

    /// `latent` -> the context channels, in level order (the non-zero entries of
    /// [`MultiEncoder1dConfig::channels_list`]). The extracted output of the last upsample block is
    /// computed and discarded, as in the reference.
    pub fn decode(&self, latent: &Tensor) -> Result<Vec<Tensor>> {
        // 1. From the latent.
        let mut x = self.from_latent.forward(latent, None)?;
        let mut current = x.clone();
        let mut list = Vec::with_capacity(self.upsamples.len() + 1);
        // 2. Climb: keep the current level's channels, then upsample.
        for up in &self.upsamples {
            list.push(current);
            let (next, extracted) = up.forward(&x, None, None, None)?;
            x = next;
            current = extracted.ok_or_else(|| {
                Error::input("upsamples", "an encoder upsample block extracted nothing")
            })?;
        }
        // 3. Back to audio when climbing all the way.
        if self.cfg.num_layers_out == self.cfg.num_layers {
            x = self.to_out.forward(&x, None)?;
        }
        // 4. The last output, then level order.
        list.push(x);
        list.reverse();
        Ok(list)
    }
}
