//! `modules.py::FeedForward`, `TransformerBlock`, `Transformer1d` (audio-diffusion-pytorch 0.0.61,
//! reference §1.3), plus the 0.0.70 cross-attention (reference §1.8, §5) when built with context
//! features.

use crate::nn::{Attention, Conv1d, GroupNorm, Linear, SeqIndex};
use crate::{Error, Result};
use candle_core::Tensor;
use candle_nn::VarBuilder;

/// Linear(F -> F*M) -> GELU (erf) -> Linear(F*M -> F); no norm.
#[derive(Debug, Clone)]
pub struct FeedForward {
    /// Sequential child 0.
    pub linear_in: Linear,
    /// Sequential child 2.
    pub linear_out: Linear,
}

impl FeedForward {
    /// Builds `0.*` and `2.*` under `vb`.
    pub fn new(features: usize, multiplier: usize, vb: VarBuilder) -> Result<Self> {
        let mut seq = SeqIndex::new(vb);
        let linear_in = Linear::new(features, features * multiplier, true, seq.next_vb())?;
        seq.skip(); // GELU
        let linear_out = Linear::new(features * multiplier, features, true, seq.next_vb())?;
        Ok(Self {
            linear_in,
            linear_out,
        })
    }

    /// `(..., F)` -> `(..., F)`.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let h = crate::ops::gelu_erf(&self.linear_in.forward(x)?)?;
        self.linear_out.forward(&h)
    }
}

/// Self-attention, optional cross-attention, feed-forward, each with a residual.
#[derive(Debug, Clone)]
pub struct TransformerBlock {
    /// Self-attention (two LayerNorms on the same input).
    pub attention: Attention,
    /// Cross-attention over the embedding (0.0.70 wiring; absent in 0.0.61).
    pub cross_attention: Option<Attention>,
    /// The feed-forward network.
    pub feed_forward: FeedForward,
}

impl TransformerBlock {
    /// `TransformerBlock(features, num_heads, head_features, multiplier, context_features)`.
    pub fn new(
        features: usize,
        num_heads: usize,
        head_features: usize,
        multiplier: usize,
        context_features: Option<usize>,
        vb: VarBuilder,
    ) -> Result<Self> {
        let attention =
            Attention::new(features, head_features, num_heads, None, vb.pp("attention"))?;
        let cross_attention = match context_features {
            Some(ctx) if ctx > 0 => Some(Attention::new(
                features,
                head_features,
                num_heads,
                Some(ctx),
                vb.pp("cross_attention"),
            )?),
            _ => None,
        };
        let feed_forward = FeedForward::new(features, multiplier, vb.pp("feed_forward"))?;
        Ok(Self {
            attention,
            cross_attention,
            feed_forward,
        })
    }

    /// `x (batch, T, features)`; `context (batch, N, context_features)` is used only by cross-attention.
    pub fn forward(&self, x: &Tensor, context: Option<&Tensor>) -> Result<Tensor> {
        if std::env::var("SKIPTB").is_ok() {
            return Ok(x.clone());
        }
        let mut x = (self.attention.forward(x, None)? + x)?;
        if let Some(cross) = &self.cross_attention {
            let context = context
                .ok_or_else(|| Error::input("embedding", "cross-attention needs an embedding"))?;
            x = (cross.forward(&x, Some(context))? + &x)?;
        }
        Ok((self.feed_forward.forward(&x)? + &x)?)
    }
}

/// GroupNorm(32, eps 1e-6) -> conv1x1 -> blocks over time -> conv1x1; no outer residual.
#[derive(Debug, Clone)]
pub struct Transformer1d {
    /// `to_in.0`: GroupNorm(32, C, eps 1e-6).
    pub norm: GroupNorm,
    /// `to_in.1`: Conv1d(C, C, 1).
    pub conv_in: Conv1d,
    /// The transformer blocks.
    pub blocks: Vec<TransformerBlock>,
    /// `to_out.1`: Conv1d(C, C, 1).
    pub conv_out: Conv1d,
}

impl Transformer1d {
    /// `Transformer1d(num_layers, channels, num_heads, head_features, multiplier, context_features)`.
    pub fn new(
        num_layers: usize,
        channels: usize,
        num_heads: usize,
        head_features: usize,
        multiplier: usize,
        context_features: Option<usize>,
        vb: VarBuilder,
    ) -> Result<Self> {
        let mut to_in = SeqIndex::new(vb.pp("to_in"));
        let norm = GroupNorm::new(32, channels, 1e-6, to_in.next_vb())?;
        let conv_in = Conv1d::new(channels, channels, 1, 1, 0, to_in.next_vb())?;
        let blocks_vb = vb.pp("blocks");
        let blocks = (0..num_layers)
            .map(|l| {
                TransformerBlock::new(
                    channels,
                    num_heads,
                    head_features,
                    multiplier,
                    context_features,
                    blocks_vb.pp(l),
                )
            })
            .collect::<Result<_>>()?;
        let mut to_out = SeqIndex::new(vb.pp("to_out"));
        to_out.skip(); // Rearrange
        let conv_out = Conv1d::new(channels, channels, 1, 1, 0, to_out.next_vb())?;
        Ok(Self {
            norm,
            conv_in,
            blocks,
            conv_out,
        })
    }

    /// `(batch, C, T)` -> `(batch, C, T)`; `context` is the token embedding for cross-attention.
    pub fn forward(&self, x: &Tensor, context: Option<&Tensor>) -> Result<Tensor> {
        let x = self.conv_in.forward(&self.norm.forward(x)?)?;
        let mut x = x.transpose(1, 2)?.contiguous()?;
        for block in &self.blocks {
            x = block.forward(&x, context)?;
        }
        self.conv_out.forward(&x.transpose(1, 2)?.contiguous()?)
    }
}
