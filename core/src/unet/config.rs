//! `UNet1dConfig`: the keyword arguments of `modules.py::UNet1d.__init__` (audio-diffusion-pytorch
//! 0.0.61, reference §1.1), with validation (reference §1.12) that names the offending field.

use crate::{Error, Result};
use serde::{Deserialize, Serialize};

/// Most downsampling levels a UNet may have.
pub const MAX_LEVELS: usize = 16;
/// Largest value of a width-like field (`channels`, attention features, context channels).
pub const MAX_WIDTH: usize = 8192;
/// Largest `total_factor()` (the input length's required multiple).
pub const MAX_TOTAL_FACTOR: usize = 1 << 24;
/// Most parameters a network may have (2e9: 8 GB of f32 weights).
pub const MAX_PARAMETERS: f64 = 2e9;
/// The largest value of each count-like field; the rest are bounded by [`MAX_WIDTH`].
pub const SIZE_LIMITS: [(&str, usize); 10] = [
    ("in_channels", 64),
    ("out_channels", 64),
    ("patch_blocks", 8),
    ("patch_factor", 64),
    ("multipliers", 64),
    ("factors", 64),
    ("num_blocks", 64),
    ("attentions", 64),
    ("attention_heads", 256),
    ("attention_multiplier", 64),
];

/// The reference's UNet1d constructor arguments, one field each, same names.
///
/// Fields missing from a JSON config take the `AudioDiffusionModel` defaults (reference §4.2),
/// which are also [`Default`]; `in_channels` defaults to 1.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct UNet1dConfig {
    /// Audio channels of the input `x`.
    pub in_channels: usize,
    /// Base width c (channels); the time-mapping width is `4c`.
    pub channels: usize,
    /// Number of PatchBlocks at the input (and UnpatchBlocks at the output).
    pub patch_blocks: usize,
    /// Samples folded into channels by each PatchBlock.
    pub patch_factor: usize,
    /// Level widths `c * multipliers[i]`; length L+1.
    pub multipliers: Vec<usize>,
    /// Down/up factor of each level (samples); length L.
    pub factors: Vec<usize>,
    /// Resnet blocks per down level; length L.
    pub num_blocks: Vec<usize>,
    /// Transformer blocks per level (0 = none); length >= L, the last entry is the bottleneck's.
    pub attentions: Vec<usize>,
    /// Attention heads H.
    pub attention_heads: usize,
    /// Features per head D.
    pub attention_features: usize,
    /// Feed-forward hidden width = channels x multiplier.
    pub attention_multiplier: usize,
    /// GroupNorm groups of every level resnet.
    pub resnet_groups: usize,
    /// Downsample kernel = factor x this + 1 (must be even).
    pub kernel_multiplier_downsample: usize,
    /// Nearest-neighbour upsampling + conv3 instead of transposed convolution.
    pub use_nearest_upsample: bool,
    /// Multiply concatenated skips by 2^-0.5.
    pub use_skip_scale: bool,
    /// Build the learned time embedding and mapping; resnets get a scale/shift.
    pub use_context_time: bool,
    /// Double the output channels and merge them as `sigmoid(a) * tanh(b)`.
    pub use_magnitude_channels: bool,
    /// If > 0, normalise the input by this quantile of |x| over time (and scale the output back).
    pub norm_quantile: f64,
    /// Output audio channels (None: `in_channels`).
    pub out_channels: Option<usize>,
    /// Width of a global feature vector `(batch, F)` added into the mapping.
    pub context_features: Option<usize>,
    /// Extra channels concatenated at each level 0..=L (None: none).
    pub context_channels: Option<Vec<usize>>,
    /// Features E of the token embedding (used only with `use_cross_attention`).
    pub context_embedding_features: Option<usize>,
    /// Build 0.0.70-style cross-attention in every Transformer1d (not in 0.0.61; off by default so
    /// 0.0.61 checkpoints load unchanged). Needs `context_embedding_features`.
    pub use_cross_attention: bool,
}

impl Default for UNet1dConfig {
    fn default() -> Self {
        Self::default_model(1)
    }
}

impl UNet1dConfig {
    /// The `AudioDiffusionModel` UNet (`get_default_model_kwargs`, reference §4.2): 106,196,500
    /// parameters for one channel.
    pub fn default_model(in_channels: usize) -> Self {
        Self {
            in_channels,
            channels: 128,
            patch_blocks: 1,
            patch_factor: 16,
            multipliers: vec![1, 2, 4, 4, 4, 4, 4],
            factors: vec![4, 4, 4, 2, 2, 2],
            num_blocks: vec![2, 2, 2, 2, 2, 2],
            attentions: vec![0, 0, 0, 1, 1, 1, 1],
            attention_heads: 8,
            attention_features: 64,
            attention_multiplier: 2,
            resnet_groups: 8,
            kernel_multiplier_downsample: 2,
            use_nearest_upsample: false,
            use_skip_scale: true,
            use_context_time: true,
            use_magnitude_channels: false,
            norm_quantile: 0.0,
            out_channels: None,
            context_features: None,
            context_channels: None,
            context_embedding_features: None,
            use_cross_attention: false,
        }
    }

    /// Number of down/up levels L.
    pub fn num_layers(&self) -> usize {
        self.multipliers.len().saturating_sub(1)
    }

    /// Output audio channels.
    pub fn out_channels(&self) -> usize {
        self.out_channels.unwrap_or(self.in_channels)
    }

    /// `context_channels` padded with zeros to length L+1.
    pub fn context_channels_padded(&self) -> Vec<usize> {
        let mut c = self.context_channels.clone().unwrap_or_default();
        c.resize(self.num_layers() + 1, 0);
        c
    }

    /// Width of the mapping (`4c`) when there is one.
    pub fn mapping_features(&self) -> Option<usize> {
        (self.use_context_time || self.context_features.is_some()).then_some(self.channels * 4)
    }

    /// Context features for the transformers' cross-attention, when it is built.
    pub fn cross_attention_features(&self) -> Option<usize> {
        if self.use_cross_attention {
            self.context_embedding_features
        } else {
            None
        }
    }

    /// The input length must be a multiple of this: `patch_factor^patch_blocks * prod(factors)`.
    pub fn total_factor(&self) -> usize {
        self.patch_factor.pow(self.patch_blocks as u32) * self.factors.iter().product::<usize>()
    }

    /// Checks every constraint of docs/reference.md §1.12; the error names the field and says why.
    pub fn validate(&self) -> Result<()> {
        self.validate_sizes()?;
        self.validate_levels()?;
        self.validate_options()?;
        self.validate_groups(&self.context_channels_padded())
    }

    /// The widths and the per-level lists agree with each other.
    fn validate_levels(&self) -> Result<()> {
        let bad = |field: &str, reason: String| Err(Error::config(field, reason));
        if self.in_channels == 0 {
            return bad("in_channels", "must be at least 1".into());
        }
        if self.channels == 0 {
            return bad("channels", "must be at least 1".into());
        }
        if self.out_channels == Some(0) {
            return bad("out_channels", "must be at least 1".into());
        }
        if self.multipliers.is_empty() || self.multipliers.contains(&0) {
            return bad("multipliers", "needs at least one entry, all >= 1".into());
        }
        let l = self.num_layers();
        if self.factors.len() != l {
            return bad(
                "factors",
                format!(
                    "has {} entries, multipliers implies {l}",
                    self.factors.len()
                ),
            );
        }
        if self.factors.contains(&0) {
            return bad("factors", "every factor must be >= 1".into());
        }
        if self.num_blocks.len() != l {
            return bad(
                "num_blocks",
                format!(
                    "has {} entries, multipliers implies {l}",
                    self.num_blocks.len()
                ),
            );
        }
        if self.attentions.len() < l.max(1) {
            return bad(
                "attentions",
                format!(
                    "has {} entries, needs at least {}",
                    self.attentions.len(),
                    l.max(1)
                ),
            );
        }
        Ok(())
    }

    /// Patching, kernels, normalisation, context and attention options.
    fn validate_options(&self) -> Result<()> {
        let bad = |field: &str, reason: String| Err(Error::config(field, reason));
        let l = self.num_layers();
        if self.patch_blocks == 0 || self.patch_factor == 0 {
            return bad(
                "patch_blocks",
                "patch_blocks and patch_factor must be >= 1".into(),
            );
        }
        if !self.channels.is_multiple_of(self.patch_factor) {
            return bad(
                "patch_factor",
                format!(
                    "channels {} are not divisible by patch_factor {}",
                    self.channels, self.patch_factor
                ),
            );
        }
        if !self.kernel_multiplier_downsample.is_multiple_of(2) {
            return bad(
                "kernel_multiplier_downsample",
                format!("{} must be even", self.kernel_multiplier_downsample),
            );
        }
        if self.use_context_time && !self.channels.is_multiple_of(2) {
            return bad(
                "channels",
                format!("{} must be even for the time embedding", self.channels),
            );
        }
        if !(0.0..=1.0).contains(&self.norm_quantile) {
            return bad(
                "norm_quantile",
                format!("{} is not in [0, 1]", self.norm_quantile),
            );
        }
        if self.context_features == Some(0) {
            return bad("context_features", "must be at least 1 when set".into());
        }
        let ctx = self.context_channels.clone().unwrap_or_default();
        if ctx.len() > l + 1 {
            return bad(
                "context_channels",
                format!("has {} entries, at most {} levels exist", ctx.len(), l + 1),
            );
        }
        let uses_attention = self.attentions.iter().any(|&a| a > 0);
        if uses_attention
            && (self.attention_heads == 0
                || self.attention_features == 0
                || self.attention_multiplier == 0)
        {
            return bad(
                "attention_heads",
                "attention_heads, attention_features and attention_multiplier must be >= 1".into(),
            );
        }
        if self.use_cross_attention && self.context_embedding_features.unwrap_or(0) == 0 {
            return bad(
                "use_cross_attention",
                "needs context_embedding_features".into(),
            );
        }
        Ok(())
    }

    /// Bounds every size before anything is allocated from it: each field within [`SIZE_LIMITS`]
    /// and the whole network's estimated parameter count within [`MAX_PARAMETERS`].
    fn validate_sizes(&self) -> Result<()> {
        let lists: [(&str, &[usize]); 4] = [
            ("multipliers", &self.multipliers),
            ("factors", &self.factors),
            ("num_blocks", &self.num_blocks),
            ("attentions", &self.attentions),
        ];
        for (field, list) in lists {
            if list.len() > MAX_LEVELS + 1 {
                return Err(Error::config(
                    field,
                    format!(
                        "has {} entries; at most {} are supported",
                        list.len(),
                        MAX_LEVELS + 1
                    ),
                ));
            }
        }
        let ctx = self.context_channels.as_deref().unwrap_or_default();
        let scalars = [
            ("in_channels", self.in_channels),
            ("channels", self.channels),
            ("out_channels", self.out_channels.unwrap_or(1)),
            ("patch_blocks", self.patch_blocks),
            ("patch_factor", self.patch_factor),
            ("attention_heads", self.attention_heads),
            ("attention_features", self.attention_features),
            ("attention_multiplier", self.attention_multiplier),
            ("resnet_groups", self.resnet_groups),
            (
                "kernel_multiplier_downsample",
                self.kernel_multiplier_downsample,
            ),
            ("context_features", self.context_features.unwrap_or(1)),
            (
                "context_embedding_features",
                self.context_embedding_features.unwrap_or(1),
            ),
        ];
        let listed = [
            ("multipliers", &self.multipliers),
            ("factors", &self.factors),
            ("num_blocks", &self.num_blocks),
            ("attentions", &self.attentions),
        ]
        .into_iter()
        .flat_map(|(f, l)| l.iter().map(move |&v| (f, v)))
        .chain(ctx.iter().map(|&v| ("context_channels", v)));
        for (field, value) in scalars.into_iter().chain(listed) {
            let max = SIZE_LIMITS
                .iter()
                .find(|(f, _)| *f == field)
                .map_or(MAX_WIDTH, |(_, m)| *m);
            if value > max {
                return Err(Error::config(
                    field,
                    format!("{value} is above the supported maximum of {max}"),
                ));
            }
        }
        let total = self
            .factors
            .iter()
            .try_fold(1usize, |acc, &f| acc.checked_mul(f))
            .and_then(|f| {
                (0..self.patch_blocks).try_fold(f, |acc, _| acc.checked_mul(self.patch_factor))
            });
        if total.is_none_or(|t| t > MAX_TOTAL_FACTOR) {
            return Err(Error::config(
                "factors",
                format!("patch_factor^patch_blocks x the product of factors must be at most {MAX_TOTAL_FACTOR}"),
            ));
        }
        let params = self.estimated_parameters();
        if params > MAX_PARAMETERS {
            return Err(Error::config(
                "channels",
                format!("with these channels, multipliers and num_blocks the network would have about {params:.2e} parameters; at most {MAX_PARAMETERS:.0e} are supported"),
            ));
        }
        Ok(())
    }

    /// An upper estimate of the parameter count (every block as two kernel-3 convolutions of the
    /// level's widest width, plus its attention), from bounded fields: no overflow.
    pub fn estimated_parameters(&self) -> f64 {
        let c = self.channels as f64;
        let levels = self.multipliers.len().max(1);
        (0..levels)
            .map(|i| {
                let w = c * self
                    .multipliers
                    .get(i + 1)
                    .or(self.multipliers.get(i))
                    .copied()
                    .unwrap_or(1) as f64;
                let blocks = self.num_blocks.get(i).copied().unwrap_or(0) as f64 + 2.0;
                let attn = self.attentions.get(i).copied().unwrap_or(0) as f64
                    * (4.0 * w * (self.attention_heads * self.attention_features) as f64
                        + 2.0 * w * w * self.attention_multiplier as f64);
                2.0 * blocks * 6.0 * w * w + attn
            })
            .sum()
    }

    /// GroupNorm divisibility everywhere (patch blocks, level resnets, transformers).
    fn validate_groups(&self, ctx: &[usize]) -> Result<()> {
        let (c, p, g) = (self.channels, self.patch_factor, self.resnet_groups);
        let l = self.num_layers();
        let check = |field: &str, channels: usize, groups: usize| -> Result<()> {
            if groups == 0 || !channels.is_multiple_of(groups) {
                return Err(Error::config(
                    field,
                    format!("{channels} channels are not divisible by {groups} groups"),
                ));
            }
            Ok(())
        };
        // Patch blocks: groups = min(p, in) over (in) and (out / p).
        let first_in = self.in_channels + ctx[0];
        let mut chans_in = first_in;
        for j in 0..self.patch_blocks {
            let out = if j + 1 == self.patch_blocks {
                c
            } else {
                first_in * p.pow(j as u32 + 1)
            };
            let groups = p.min(chans_in);
            check("patch_factor", chans_in, groups)?;
            check("patch_factor", out / p, groups)?;
            chans_in = out;
        }
        let out_total = self.out_channels() * if self.use_magnitude_channels { 2 } else { 1 };
        for j in 0..self.patch_blocks {
            let out = out_total * p.pow((self.patch_blocks - 1 - j) as u32);
            let groups = p.min(out);
            check("patch_factor", out, groups)?;
            if j == 0 {
                check("patch_factor", c / p, groups)?;
            }
        }
        for i in 0..l {
            let width = c * self.multipliers[i + 1];
            check("resnet_groups", width, g)?;
            if ctx[i + 1] > 0 {
                check("context_channels", width + ctx[i + 1], g)?;
            }
            if self.attentions[i] > 0 {
                check("attentions", width, 32)?;
            }
        }
        if self.attentions.last().copied().unwrap_or(0) > 0 {
            check("attentions", c * self.multipliers[l], 32)?;
        }
        check("resnet_groups", c * self.multipliers[l], g)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field_of(cfg: &UNet1dConfig) -> String {
        match cfg.validate() {
            Err(Error::Config { field, .. }) => field,
            other => panic!("expected a config error, got {other:?}"),
        }
    }

    #[test]
    fn defaults_are_valid_and_round_trip_through_json() {
        let cfg = UNet1dConfig::default_model(2);
        cfg.validate().unwrap();
        let text = serde_json::to_string(&cfg).unwrap();
        let back: UNet1dConfig = serde_json::from_str(&text).unwrap();
        assert_eq!(back, cfg);
        let partial: UNet1dConfig =
            serde_json::from_str(r#"{"in_channels": 2, "channels": 64}"#).unwrap();
        assert_eq!(partial.factors, vec![4, 4, 4, 2, 2, 2]);
        assert_eq!(cfg.total_factor(), 16 * 4 * 4 * 4 * 2 * 2 * 2);
    }

    #[test]
    fn invalid_configs_name_the_field() {
        let base = UNet1dConfig::default_model(1);
        let mut c = base.clone();
        c.factors.pop();
        assert_eq!(field_of(&c), "factors");
        let mut c = base.clone();
        c.num_blocks.push(1);
        assert_eq!(field_of(&c), "num_blocks");
        let mut c = base.clone();
        c.kernel_multiplier_downsample = 3;
        assert_eq!(field_of(&c), "kernel_multiplier_downsample");
        let mut c = base.clone();
        c.resnet_groups = 7;
        assert_eq!(field_of(&c), "resnet_groups");
        // reference §1.12: channels 8 with a transformer at width 16 cannot take GroupNorm(32).
        let mut c = base.clone();
        c.channels = 8;
        c.patch_factor = 2;
        c.multipliers = vec![1, 2];
        c.factors = vec![2];
        c.num_blocks = vec![1];
        c.attentions = vec![0, 1];
        assert_eq!(field_of(&c), "attentions");
        // reference §2.3: context_channels [1,0,3] on the small config: 35 channels, 4 groups.
        let mut c = base.clone();
        c.channels = 16;
        c.patch_factor = 2;
        c.multipliers = vec![1, 2, 2];
        c.factors = vec![2, 2];
        c.num_blocks = vec![1, 1];
        c.attentions = vec![0, 0, 1];
        c.resnet_groups = 4;
        c.context_channels = Some(vec![1, 0, 3]);
        assert_eq!(field_of(&c), "context_channels");
        c.context_channels = Some(vec![1, 0, 4]);
        c.validate().unwrap();
        let mut c = base;
        c.use_cross_attention = true;
        assert_eq!(field_of(&c), "use_cross_attention");
    }
}
