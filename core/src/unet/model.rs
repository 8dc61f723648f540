//! `modules.py::UNet1d`, audio-diffusion-pytorch 0.0.61 (docs/reference.md §1.5-1.10): the
//! denoising network.

use crate::net::{Net, NetInputs};
use crate::nn::{Linear, SeqIndex, TimePositionalEmbedding};
use crate::unet::levels::{AttentionOptions, DownsampleBlock1dConfig, UpsampleBlock1dConfig};
use crate::unet::scale::{merge_magnitude_channels, norm_scale};
use crate::unet::{
    BottleneckBlock1d, DownsampleBlock1d, Patcher, UNet1dConfig, Unpatcher, UpsampleBlock1d,
};
use crate::{Compat, Error, NoiseSource, Result};
use candle_core::Tensor;
use candle_nn::VarBuilder;

/// The UNet of audio-diffusion-pytorch 0.0.61: `(batch, in, T)` + time `(batch,)` -> `(batch, out, T)`.
#[derive(Debug, Clone)]
pub struct UNet1d {
    /// Linear(4c,4c) -> GELU -> Linear(4c,4c) -> GELU (`to_mapping.0`, `to_mapping.2`).
    pub to_mapping: Option<(Linear, Linear)>,
    /// TimePositionalEmbedding(c, 4c) -> GELU (`to_time.0`).
    pub to_time: Option<TimePositionalEmbedding>,
    /// Linear(F, 4c) -> GELU (`to_features.0`).
    pub to_features: Option<Linear>,
    /// Patcher(in + context_channels[0] -> c).
    pub to_in: Patcher,
    /// One per level, i = 0..L-1.
    pub downsamples: Vec<DownsampleBlock1d>,
    /// At width `c * multipliers[L]`.
    pub bottleneck: BottleneckBlock1d,
    /// u = 0..L-1 for level i = L-1-u.
    pub upsamples: Vec<UpsampleBlock1d>,
    /// Unpatcher(c -> out (x2 with magnitude channels)).
    pub to_out: Unpatcher,
    cfg: UNet1dConfig,
    compat: Compat,
}

impl UNet1d {
    /// Builds the network under `vb` (weights named as the reference's `state_dict()`).
    pub fn new(cfg: &UNet1dConfig, vb: VarBuilder) -> Result<Self> {
        cfg.validate()?;
        let c = cfg.channels;
        let mapping = cfg.mapping_features();
        let to_mapping = match mapping {
            Some(m) => {
                let mut seq = SeqIndex::new(vb.pp("to_mapping"));
                let l0 = Linear::new(m, m, true, seq.next_vb())?;
                seq.skip(); // GELU
                let l2 = Linear::new(m, m, true, seq.next_vb())?;
                Some((l0, l2))
            }
            None => None,
        };
        let to_time = if cfg.use_context_time {
            Some(TimePositionalEmbedding::new(
                c,
                c * 4,
                vb.pp("to_time").pp(0),
            )?)
        } else {
            None
        };
        let to_features = match cfg.context_features {
            Some(f) => Some(Linear::new(f, c * 4, true, vb.pp("to_features").pp(0))?),
            None => None,
        };
        let ctx = cfg.context_channels_padded();
        let to_in = Patcher::new(
            cfg.in_channels + ctx[0],
            c,
            cfg.patch_blocks,
            cfg.patch_factor,
            mapping,
            vb.pp("to_in"),
        )?;
        let (downsamples, bottleneck, upsamples) = levels(cfg, &ctx, mapping, &vb)?;
        let out = cfg.out_channels() * if cfg.use_magnitude_channels { 2 } else { 1 };
        let to_out = Unpatcher::new(
            c,
            out,
            cfg.patch_blocks,
            cfg.patch_factor,
            mapping,
            vb.pp("to_out"),
        )?;
        Ok(Self {
            to_mapping,
            to_time,
            to_features,
            to_in,
            downsamples,
            bottleneck,
            upsamples,
            to_out,
            cfg: cfg.clone(),
            compat: Compat::default(),
        })
    }

    /// Selects corrected or 0.0.61 behaviour (only `norm_quantile` with level-0 context differs).
    pub fn with_compat(mut self, compat: Compat) -> Self {
        self.compat = compat;
        self
    }

    /// The configuration the network was built from.
    pub fn config(&self) -> &UNet1dConfig {
        &self.cfg
    }

    /// `mapping = to_mapping(to_time(time) + to_features(features))`, `(batch, 4c)`, or None.
    pub fn get_mapping(
        &self,
        time: Option<&Tensor>,
        features: Option<&Tensor>,
    ) -> Result<Option<Tensor>> {
        let Some((l0, l2)) = &self.to_mapping else {
            return Ok(None);
        };
        let mut items = Vec::new();
        if let Some(to_time) = &self.to_time {
            let t = time.ok_or_else(|| {
                Error::input("time", "use_context_time is set but no time was given")
            })?;
            items.push(crate::ops::gelu_erf(&to_time.forward(t)?)?);
        }
        if let Some(to_features) = &self.to_features {
            let f = features.ok_or_else(|| {
                Error::input(
                    "features",
                    "context_features is set but no features were given",
                )
            })?;
            items.push(crate::ops::gelu_erf(&to_features.forward(f)?)?);
        }
        let mut sum = items[0].clone();
        for item in &items[1..] {
            sum = (sum + item)?;
        }
        let h = crate::ops::gelu_erf(&l0.forward(&sum)?)?;
        Ok(Some(crate::ops::gelu_erf(&l2.forward(&h)?)?))
    }

    /// Picks level `level`'s context out of the compact `channels_list` and checks its channels.
    fn context_for(&self, level: usize, channels_list: &[Tensor]) -> Result<Option<Tensor>> {
        let ctx = self.cfg.context_channels_padded();
        if ctx[level] == 0 {
            return Ok(None);
        }
        let id = ctx[..level].iter().filter(|&&n| n > 0).count();
        let t = channels_list.get(id).ok_or_else(|| {
            Error::input(
                "channels_list",
                format!("missing context for level {level} (entry {id})"),
            )
        })?;
        if t.dim(1)? != ctx[level] {
            return Err(Error::input(
                "channels_list",
                format!(
                    "level {level} expects {} context channels, got {}",
                    ctx[level],
                    t.dim(1)?
                ),
            ));
        }
        Ok(Some(t.clone()))
    }

    /// The reference forward: `x (batch, in, T)`, optional `time (batch,)`, conditioning in `inputs`.
    pub fn forward(&self, x: &Tensor, time: Option<&Tensor>, inputs: &NetInputs) -> Result<Tensor> {
        let cfg = &self.cfg;
        let (_, cin, t) = x.dims3()?;
        if cin != cfg.in_channels {
            return Err(Error::input(
                "x",
                format!("expected {} channels, got {cin}", cfg.in_channels),
            ));
        }
        if t == 0 || t % cfg.total_factor() != 0 {
            return Err(Error::input(
                "x",
                format!(
                    "length {t} is not a positive multiple of {}",
                    cfg.total_factor()
                ),
            ));
        }
        let expected = cfg
            .context_channels_padded()
            .iter()
            .filter(|&&n| n > 0)
            .count();
        if inputs.channels_list.len() != expected {
            return Err(Error::input(
                "channels_list",
                format!(
                    "expected {expected} tensors, got {}",
                    inputs.channels_list.len()
                ),
            ));
        }
        let embedding = if cfg.use_cross_attention {
            inputs.embedding.as_ref()
        } else {
            None
        };
        let ctx0 = self.context_for(0, &inputs.channels_list)?;
        let use_scale = cfg.norm_quantile > 0.0;
        // 1-3. Level-0 context, mapping, input scale (0.0.61 scales after the concat,
        // docs/reference.md §1.10).
        let (mut x, scale) = match (&ctx0, use_scale && !self.compat.is_reference()) {
            (Some(c), true) => {
                let s = norm_scale(x, cfg.norm_quantile)?;
                (Tensor::cat(&[&x.broadcast_div(&s)?, c], 1)?, Some(s))
            }
            _ => {
                let x = match &ctx0 {
                    Some(c) => Tensor::cat(&[x, c], 1)?,
                    None => x.clone(),
                };
                if use_scale {
                    let s = norm_scale(&x, cfg.norm_quantile)?;
                    (x.broadcast_div(&s)?, Some(s))
                } else {
                    (x, None)
                }
            }
        };
        let mapping = self.get_mapping(time, inputs.features.as_ref())?;
        let mapping = mapping.as_ref();
        // 4. Patch in.
        x = self.to_in.forward(&x, mapping)?;
        let first_skip = x.clone();
        // 5. Down levels, collecting each level's skips.
        let mut skips_list = Vec::with_capacity(self.downsamples.len());
        for (i, down) in self.downsamples.iter().enumerate() {
            let ctx = self.context_for(i + 1, &inputs.channels_list)?;
            let out = down.forward(&x, mapping, ctx.as_ref(), embedding)?;
            x = out.x;
            skips_list.push(out.skips);
        }
        // 6. Bottleneck.
        x = self.bottleneck.forward(&x, mapping, embedding)?;
        // 7. Up levels, each consuming its level's skips last-in-first-out.
        for up in &self.upsamples {
            let mut skips = skips_list.pop().unwrap_or_default();
            x = up.forward(&x, Some(&mut skips), mapping, embedding)?.0;
        }
        // 8. The to_in output is added (no skip scale). 9. Patch out.
        x = (x + first_skip)?;
        x = self.to_out.forward(&x, mapping)?;
        // 10. Magnitude gate. 11. Undo the input scale.
        if cfg.use_magnitude_channels {
            x = merge_magnitude_channels(&x)?;
        }
        match scale {
            Some(s) => Ok(x.broadcast_mul(&s)?),
            None => Ok(x),
        }
    }
}

impl Net for UNet1d {
    fn forward(
        &self,
        x: &Tensor,
        time: &Tensor,
        inputs: &NetInputs,
        _noise: &mut dyn NoiseSource,
    ) -> Result<Tensor> {
        UNet1d::forward(self, x, Some(time), inputs)
    }
}

/// A downsampling block per level, the bottleneck, an upsampling block per level.
type Levels = (
    Vec<DownsampleBlock1d>,
    BottleneckBlock1d,
    Vec<UpsampleBlock1d>,
);

/// The UNet's levels, in the order they run; `ctx` holds the context channels per level.
fn levels(
    cfg: &UNet1dConfig,
    ctx: &[usize],
    mapping: Option<usize>,
    vb: &VarBuilder,
) -> Result<Levels> {
    let c = cfg.channels;
    let l = cfg.num_layers();
    let m = &cfg.multipliers;
    let attention = |n: usize| AttentionOptions {
        num_blocks: n,
        heads: cfg.attention_heads,
        features: cfg.attention_features,
        multiplier: cfg.attention_multiplier,
        context_features: cfg.cross_attention_features(),
    };
    let dvb = vb.pp("downsamples");
    let downsamples = (0..l)
        .map(|i| {
            let dcfg = DownsampleBlock1dConfig {
                in_channels: c * m[i],
                out_channels: c * m[i + 1],
                factor: cfg.factors[i],
                num_groups: cfg.resnet_groups,
                num_layers: cfg.num_blocks[i],
                kernel_multiplier: cfg.kernel_multiplier_downsample,
                use_pre_downsample: true,
                use_skip: true,
                extract_channels: 0,
                context_channels: ctx[i + 1],
                attention: attention(cfg.attentions[i]),
                mapping_features: mapping,
            };
            DownsampleBlock1d::new(&dcfg, dvb.pp(i))
        })
        .collect::<Result<_>>()?;
    let last_attention = cfg.attentions.last().copied().unwrap_or(0);
    let bottleneck = BottleneckBlock1d::new(
        c * m[l],
        cfg.resnet_groups,
        attention(last_attention),
        mapping,
        vb.pp("bottleneck"),
    )?;
    let uvb = vb.pp("upsamples");
    let upsamples = (0..l)
        .map(|u| {
            let i = l - 1 - u;
            let ucfg = UpsampleBlock1dConfig {
                in_channels: c * m[i + 1],
                out_channels: c * m[i],
                factor: cfg.factors[i],
                num_layers: cfg.num_blocks[i] + usize::from(cfg.attentions[i] > 0),
                num_groups: cfg.resnet_groups,
                use_nearest: cfg.use_nearest_upsample,
                use_pre_upsample: false,
                use_skip: true,
                skip_channels: c * m[i + 1],
                use_skip_scale: cfg.use_skip_scale,
                extract_channels: 0,
                attention: attention(cfg.attentions[i]),
                mapping_features: mapping,
            };
            UpsampleBlock1d::new(&ucfg, uvb.pp(u))
        })
        .collect::<Result<_>>()?;
    Ok((downsamples, bottleneck, upsamples))
}
