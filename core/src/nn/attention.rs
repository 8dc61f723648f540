//! `modules.py::AttentionBase` and `Attention`, audio-diffusion-pytorch 0.0.61 (reference §1.3).
//!
//! Scaled dot-product attention without mask or position terms; the softmax runs in f32.
//! There is no residual inside: the caller adds it.

use crate::nn::{LayerNorm, Linear};
use crate::Result;
use candle_core::{DType, Tensor, D};
use candle_nn::VarBuilder;

/// Splits heads: `(b, n, h*d)` -> `(b, h, n, d)`.
fn split_heads(x: &Tensor, heads: usize) -> Result<Tensor> {
    let (b, n, hd) = x.dims3()?;
    Ok(x.reshape((b, n, heads, hd / heads))?
        .transpose(1, 2)?
        .contiguous()?)
}

/// Numerically stable softmax over the last axis, in f32 for half types (f64 stays f64); the
/// composite form (which has a backward pass) whenever gradients are being recorded.
pub fn softmax_f32(x: &Tensor) -> Result<Tensor> {
    let dtype = x.dtype();
    let x = x.to_dtype(crate::nn::norm::stats_dtype(dtype))?;
    if !x.track_op() && x.is_contiguous() && x.dtype() == DType::F32 {
        return Ok(candle_nn::ops::softmax_last_dim(&x)?.to_dtype(dtype)?);
    }
    Ok(candle_nn::ops::softmax(&x, D::Minus1)?.to_dtype(dtype)?)
}

/// `AttentionBase(features, head_features D, num_heads H)`: heads, softmax(q k^T D^-1/2) v, `to_out`.
#[derive(Debug, Clone)]
pub struct AttentionBase {
    /// `Linear(H*D -> features)` with bias.
    pub to_out: Linear,
    num_heads: usize,
    scale: f64,
}

impl AttentionBase {
    /// Builds `attention.to_out` under `vb`.
    pub fn new(
        features: usize,
        head_features: usize,
        num_heads: usize,
        vb: VarBuilder,
    ) -> Result<Self> {
        let to_out = Linear::new(head_features * num_heads, features, true, vb.pp("to_out"))?;
        Ok(Self {
            to_out,
            num_heads,
            scale: (head_features as f64).powf(-0.5),
        })
    }

    /// `q (b, n, H*D)`, `k`/`v (b, m, H*D)` -> `(b, n, features)`.
    pub fn forward(&self, q: &Tensor, k: &Tensor, v: &Tensor) -> Result<Tensor> {
        let h = self.num_heads;
        let (q, k, v) = (split_heads(q, h)?, split_heads(k, h)?, split_heads(v, h)?);
        let fast = [&q, &k, &v]
            .iter()
            .all(|t| t.device().is_cpu() && t.dtype() == DType::F32);
        let out = if fast {
            // f32 on the CPU: the crate's tiled kernel (online f32 softmax, no score matrix kept;
            // its backward recomputes the scores).
            crate::ops::attention(&q, &k, &v, self.scale)?
        } else {
            let sim = (q.matmul(&k.t()?.contiguous()?)? * self.scale)?;
            softmax_f32(&sim)?.matmul(&v)?
        };
        let (b, _, n, d) = out.dims4()?;
        let out = out.transpose(1, 2)?.reshape((b, n, h * d))?;
        self.to_out.forward(&out)
    }
}

/// `Attention(features, D, H, context_features=None)`: LayerNorms, `to_q`, `to_kv`, [`AttentionBase`].
#[derive(Debug, Clone)]
pub struct Attention {
    /// LayerNorm(features) for the queries.
    pub norm: LayerNorm,
    /// LayerNorm(context_features or features) for keys and values.
    pub norm_context: LayerNorm,
    /// `Linear(features -> H*D)`, no bias.
    pub to_q: Linear,
    /// `Linear(context -> 2*H*D)`, no bias; first half k, second half v.
    pub to_kv: Linear,
    /// Heads, softmax and output projection.
    pub attention: AttentionBase,
    inner: usize,
}

impl Attention {
    /// Builds the block under `vb` with the reference's attribute names.
    pub fn new(
        features: usize,
        head_features: usize,
        num_heads: usize,
        context_features: Option<usize>,
        vb: VarBuilder,
    ) -> Result<Self> {
        let inner = head_features * num_heads;
        let ctx = context_features.unwrap_or(features);
        Ok(Self {
            norm: LayerNorm::new(features, 1e-5, vb.pp("norm"))?,
            norm_context: LayerNorm::new(ctx, 1e-5, vb.pp("norm_context"))?,
            to_q: Linear::new(features, inner, false, vb.pp("to_q"))?,
            to_kv: Linear::new(ctx, inner * 2, false, vb.pp("to_kv"))?,
            attention: AttentionBase::new(features, head_features, num_heads, vb.pp("attention"))?,
            inner,
        })
    }

    /// `x (b, n, features)`, optional `context (b, m, context_features)` (defaults to x).
    pub fn forward(&self, x: &Tensor, context: Option<&Tensor>) -> Result<Tensor> {
        let context = context.unwrap_or(x);
        let q = self.to_q.forward(&self.norm.forward(x)?)?;
        let kv = self.to_kv.forward(&self.norm_context.forward(context)?)?;
        let k = kv.narrow(D::Minus1, 0, self.inner)?;
        let v = kv.narrow(D::Minus1, self.inner, self.inner)?;
        self.attention.forward(&q, &k, &v)
    }
}
