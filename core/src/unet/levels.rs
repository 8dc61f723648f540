//! `modules.py::DownsampleBlock1d`, `UpsampleBlock1d`, `BottleneckBlock1d` (audio-diffusion-pytorch
//! 0.0.61, reference §1.4), with their whole constructor surface (MultiEncoder1d and AutoEncoder1d
//! reuse them).

use crate::nn::Conv1d;
use crate::unet::sampling::{downsample1d, Upsample1d};
use crate::unet::{ResnetBlock1d, Transformer1d};
use crate::{Error, Result};
use candle_core::Tensor;
use candle_nn::VarBuilder;

/// Transformer settings of a level block (`num_transformer_blocks`, `attention_*`).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct AttentionOptions {
    /// Transformer blocks (0 = no Transformer1d).
    pub num_blocks: usize,
    /// Heads H.
    pub heads: usize,
    /// Features per head D.
    pub features: usize,
    /// Feed-forward multiplier.
    pub multiplier: usize,
    /// Cross-attention context features (0.0.70 wiring; None in 0.0.61).
    pub context_features: Option<usize>,
}

impl AttentionOptions {
    fn build(&self, channels: usize, vb: VarBuilder) -> Result<Option<Transformer1d>> {
        if self.num_blocks == 0 {
            return Ok(None);
        }
        Ok(Some(Transformer1d::new(
            self.num_blocks,
            channels,
            self.heads,
            self.features,
            self.multiplier,
            self.context_features,
            vb,
        )?))
    }
}

fn to_extracted(
    out_channels: usize,
    extract_channels: usize,
    num_groups: usize,
    vb: VarBuilder,
) -> Result<Option<ResnetBlock1d>> {
    if extract_channels == 0 {
        return Ok(None);
    }
    let groups = num_groups.min(extract_channels);
    Ok(Some(ResnetBlock1d::new(
        out_channels,
        extract_channels,
        groups,
        None,
        vb,
    )?))
}

/// Constructor arguments of `DownsampleBlock1d` (defaults as in the reference).
#[derive(Debug, Clone, PartialEq)]
pub struct DownsampleBlock1dConfig {
    pub in_channels: usize,
    pub out_channels: usize,
    pub factor: usize,
    pub num_groups: usize,
    pub num_layers: usize,
    pub kernel_multiplier: usize,
    pub use_pre_downsample: bool,
    pub use_skip: bool,
    pub extract_channels: usize,
    pub context_channels: usize,
    pub attention: AttentionOptions,
    pub mapping_features: Option<usize>,
}

impl Default for DownsampleBlock1dConfig {
    fn default() -> Self {
        Self {
            in_channels: 1,
            out_channels: 1,
            factor: 1,
            num_groups: 1,
            num_layers: 1,
            kernel_multiplier: 2,
            use_pre_downsample: true,
            use_skip: false,
            extract_channels: 0,
            context_channels: 0,
            attention: AttentionOptions::default(),
            mapping_features: None,
        }
    }
}

/// What a down block returns: x, and its skips or extracted channels when asked for.
#[derive(Debug, Clone)]
pub struct DownOutput {
    /// The block's output.
    pub x: Tensor,
    /// One tensor per resnet, plus one after the transformer (empty without `use_skip`).
    pub skips: Vec<Tensor>,
    /// `to_extracted(x)` when `extract_channels > 0`.
    pub extracted: Option<Tensor>,
}

/// Downsample (pre or post), optional context concat, resnets, optional transformer.
#[derive(Debug, Clone)]
pub struct DownsampleBlock1d {
    pub downsample: Conv1d,
    pub blocks: Vec<ResnetBlock1d>,
    pub transformer: Option<Transformer1d>,
    pub to_extracted: Option<ResnetBlock1d>,
    cfg: DownsampleBlock1dConfig,
}

impl DownsampleBlock1d {
    /// Builds `downsample`, `blocks.{j}`, `transformer`, `to_extracted` under `vb`.
    pub fn new(cfg: &DownsampleBlock1dConfig, vb: VarBuilder) -> Result<Self> {
        let width = if cfg.use_pre_downsample {
            cfg.out_channels
        } else {
            cfg.in_channels
        };
        let downsample = downsample1d(
            cfg.in_channels,
            cfg.out_channels,
            cfg.factor,
            cfg.kernel_multiplier,
            vb.pp("downsample"),
        )?;
        let bvb = vb.pp("blocks");
        let blocks = (0..cfg.num_layers)
            .map(|j| {
                let cin = if j == 0 {
                    width + cfg.context_channels
                } else {
                    width
                };
                ResnetBlock1d::new(cin, width, cfg.num_groups, cfg.mapping_features, bvb.pp(j))
            })
            .collect::<Result<_>>()?;
        let transformer = cfg.attention.build(width, vb.pp("transformer"))?;
        let to_extracted = to_extracted(
            cfg.out_channels,
            cfg.extract_channels,
            cfg.num_groups,
            vb.pp("to_extracted"),
        )?;
        Ok(Self {
            downsample,
            blocks,
            transformer,
            to_extracted,
            cfg: cfg.clone(),
        })
    }

    /// `x (batch, in, T)` -> `(batch, out, T/factor)`; `channels` is this level's context
    /// `(batch, context_channels, T/factor)`, `embedding` the cross-attention context.
    pub fn forward(
        &self,
        x: &Tensor,
        mapping: Option<&Tensor>,
        channels: Option<&Tensor>,
        embedding: Option<&Tensor>,
    ) -> Result<DownOutput> {
        let mut x = x.clone();
        if self.cfg.use_pre_downsample {
            x = self.downsample.forward(&x)?;
        }
        if self.cfg.context_channels > 0 {
            let ctx = channels.ok_or_else(|| {
                Error::input(
                    "channels_list",
                    "a level with context channels got no context",
                )
            })?;
            x = Tensor::cat(&[&x, ctx], 1)?;
        }
        let mut skips = Vec::new();
        for block in &self.blocks {
            x = block.forward(&x, mapping)?;
            if self.cfg.use_skip {
                skips.push(x.clone());
            }
        }
        if let Some(t) = &self.transformer {
            x = t.forward(&x, embedding)?;
            if self.cfg.use_skip {
                skips.push(x.clone());
            }
        }
        if !self.cfg.use_pre_downsample {
            x = self.downsample.forward(&x)?;
        }
        let extracted = match &self.to_extracted {
            Some(e) => Some(e.forward(&x, None)?),
            None => None,
        };
        Ok(DownOutput {
            x,
            skips,
            extracted,
        })
    }
}

/// Constructor arguments of `UpsampleBlock1d` (defaults as in the reference).
#[derive(Debug, Clone, PartialEq)]
pub struct UpsampleBlock1dConfig {
    pub in_channels: usize,
    pub out_channels: usize,
    pub factor: usize,
    pub num_layers: usize,
    pub num_groups: usize,
    pub use_nearest: bool,
    pub use_pre_upsample: bool,
    pub use_skip: bool,
    pub skip_channels: usize,
    pub use_skip_scale: bool,
    pub extract_channels: usize,
    pub attention: AttentionOptions,
    pub mapping_features: Option<usize>,
}

impl Default for UpsampleBlock1dConfig {
    fn default() -> Self {
        Self {
            in_channels: 1,
            out_channels: 1,
            factor: 1,
            num_layers: 1,
            num_groups: 1,
            use_nearest: false,
            use_pre_upsample: false,
            use_skip: false,
            skip_channels: 0,
            use_skip_scale: false,
            extract_channels: 0,
            attention: AttentionOptions::default(),
            mapping_features: None,
        }
    }
}

/// Resnets (each after concatenating a scaled skip), optional transformer, upsample (pre or post).
#[derive(Debug, Clone)]
pub struct UpsampleBlock1d {
    pub blocks: Vec<ResnetBlock1d>,
    pub transformer: Option<Transformer1d>,
    pub upsample: Upsample1d,
    pub to_extracted: Option<ResnetBlock1d>,
    cfg: UpsampleBlock1dConfig,
}

impl UpsampleBlock1d {
    /// Builds `blocks.{j}`, `transformer`, `upsample`, `to_extracted` under `vb`.
    pub fn new(cfg: &UpsampleBlock1dConfig, vb: VarBuilder) -> Result<Self> {
        let width = if cfg.use_pre_upsample {
            cfg.out_channels
        } else {
            cfg.in_channels
        };
        let bvb = vb.pp("blocks");
        let blocks = (0..cfg.num_layers)
            .map(|j| {
                ResnetBlock1d::new(
                    width + cfg.skip_channels,
                    width,
                    cfg.num_groups,
                    cfg.mapping_features,
                    bvb.pp(j),
                )
            })
            .collect::<Result<_>>()?;
        let transformer = cfg.attention.build(width, vb.pp("transformer"))?;
        let upsample = Upsample1d::new(
            cfg.in_channels,
            cfg.out_channels,
            cfg.factor,
            cfg.use_nearest,
            vb.pp("upsample"),
        )?;
        let to_extracted = to_extracted(
            cfg.out_channels,
            cfg.extract_channels,
            cfg.num_groups,
            vb.pp("to_extracted"),
        )?;
        Ok(Self {
            blocks,
            transformer,
            upsample,
            to_extracted,
            cfg: cfg.clone(),
        })
    }

    /// `x (batch, in, T)` -> `(x (batch, out, T*factor), extracted)`. `skips` are consumed
    /// last-in-first-out, one per resnet, each multiplied by the skip scale before the concat.
    pub fn forward(
        &self,
        x: &Tensor,
        mut skips: Option<&mut Vec<Tensor>>,
        mapping: Option<&Tensor>,
        embedding: Option<&Tensor>,
    ) -> Result<(Tensor, Option<Tensor>)> {
        let mut x = x.clone();
        if self.cfg.use_pre_upsample {
            x = self.upsample.forward(&x)?;
        }
        for block in &self.blocks {
            if let Some(skips) = skips.as_deref_mut() {
                let skip = skips
                    .pop()
                    .ok_or_else(|| Error::input("skips", "ran out of skip connections"))?;
                let scale = if self.cfg.use_skip_scale {
                    std::f64::consts::FRAC_1_SQRT_2
                } else {
                    1.0
                };
                // One pass (and one backward node) for the scale and the concatenation.
                x = crate::ops::cat_scaled(&x, &skip, scale)?;
            }
            x = block.forward(&x, mapping)?;
        }
        if let Some(t) = &self.transformer {
            x = t.forward(&x, embedding)?;
        }
        if !self.cfg.use_pre_upsample {
            x = self.upsample.forward(&x)?;
        }
        let extracted = match &self.to_extracted {
            Some(e) => Some(e.forward(&x, None)?),
            None => None,
        };
        Ok((x, extracted))
    }
}

/// `pre_block` -> optional `transformer` -> `post_block`, all at C channels.
#[derive(Debug, Clone)]
pub struct BottleneckBlock1d {
    pub pre_block: ResnetBlock1d,
    pub transformer: Option<Transformer1d>,
    pub post_block: ResnetBlock1d,
}

impl BottleneckBlock1d {
    /// `BottleneckBlock1d(channels, num_groups, ...)` under `vb`.
    pub fn new(
        channels: usize,
        num_groups: usize,
        attention: AttentionOptions,
        mapping_features: Option<usize>,
        vb: VarBuilder,
    ) -> Result<Self> {
        Ok(Self {
            pre_block: ResnetBlock1d::new(
                channels,
                channels,
                num_groups,
                mapping_features,
                vb.pp("pre_block"),
            )?,
            transformer: attention.build(channels, vb.pp("transformer"))?,
            post_block: ResnetBlock1d::new(
                channels,
                channels,
                num_groups,
                mapping_features,
                vb.pp("post_block"),
            )?,
        })
    }

    /// `(batch, C, T)` -> `(batch, C, T)`.
    pub fn forward(
        &self,
        x: &Tensor,
        mapping: Option<&Tensor>,
        embedding: Option<&Tensor>,
    ) -> Result<Tensor> {
        let mut x = self.pre_block.forward(x, mapping)?;
        if let Some(t) = &self.transformer {
            x = t.forward(&x, embedding)?;
        }
        self.post_block.forward(&x, mapping)
    }
}
