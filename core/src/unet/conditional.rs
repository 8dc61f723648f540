//! `modules.py::UNetConditional1d`, `FixedEmbedding`, `rand_bool` (audio-diffusion-pytorch 0.0.61,
//! reference §1.13): a UNet1d with a learned "null" embedding, embedding masking and
//! classifier-free guidance. Guidance runs the conditional and null passes as one batched call of
//! 2B.

use crate::net::{Net, NetInputs};
use crate::nn::init::NORMAL;
use crate::unet::{UNet1d, UNet1dConfig};
use crate::{Compat, Error, NoiseSource, Result};
use candle_core::{Tensor, D};
use candle_nn::VarBuilder;
use serde::{Deserialize, Serialize};

/// UNet1d kwargs plus `context_embedding_max_length` (`context_embedding_features` is required).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UNetConditional1dConfig {
    /// Rows M of the fixed (null) embedding: the longest embedding sequence accepted.
    pub context_embedding_max_length: usize,
    /// The UNet1d arguments.
    #[serde(flatten)]
    pub unet: UNet1dConfig,
}

/// `nn.Embedding(max_length, E)` whose rows 0..N-1 are the null sequence for an `(B, N, E)` input.
#[derive(Debug, Clone)]
pub struct FixedEmbedding {
    /// `embedding.weight` `[max_length, E]`, N(0, 1).
    pub weight: Tensor,
}

impl FixedEmbedding {
    /// Builds `embedding.weight` under `vb`.
    pub fn new(max_length: usize, features: usize, vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            weight: vb
                .pp("embedding")
                .get_with_hints((max_length, features), "weight", NORMAL)?,
        })
    }

    /// `embedding (B, N, E)` -> the first N rows broadcast to `(B, N, E)`.
    pub fn forward(&self, embedding: &Tensor) -> Result<Tensor> {
        let (b, n, e) = embedding.dims3()?;
        let (max_length, features) = self.weight.dims2()?;
        if n > max_length || e != features {
            return Err(Error::input(
                "embedding",
                format!("shape (B, {n}, {e}) does not fit the fixed embedding ({max_length} x {features})"),
            ));
        }
        Ok(self
            .weight
            .narrow(0, 0, n)?
            .unsqueeze(0)?
            .broadcast_as((b, n, e))?
            .contiguous()?)
    }
}

/// `rand_bool(shape, p)`: all true for p >= 1, all false for p <= 0 (no draw), else Bernoulli(p)
/// drawn from `noise`. Returned as a u8 mask.
pub fn rand_bool(
    shape: &[usize],
    p: f64,
    noise: &mut dyn NoiseSource,
    device: &candle_core::Device,
) -> Result<Tensor> {
    if p >= 1.0 {
        return Ok(Tensor::ones(shape, candle_core::DType::U8, device)?);
    }
    if p <= 0.0 {
        return Ok(Tensor::zeros(shape, candle_core::DType::U8, device)?);
    }
    Ok(noise.bernoulli(p, shape, device)?.ne(0.0)?)
}

/// A UNet1d conditioned on a token embedding `(B, N, E)`, with a learned null embedding.
#[derive(Debug, Clone)]
pub struct UNetConditional1d {
    /// The network (its keys are at the root).
    pub unet: UNet1d,
    /// `fixed_embedding.embedding.weight`, registered after all UNet modules.
    pub fixed_embedding: FixedEmbedding,
}

impl UNetConditional1d {
    /// Builds the UNet at the root of `vb` and `fixed_embedding` after it.
    pub fn new(cfg: &UNetConditional1dConfig, vb: VarBuilder) -> Result<Self> {
        let features = cfg
            .unet
            .context_embedding_features
            .filter(|&e| e > 0)
            .ok_or_else(|| {
                Error::config("context_embedding_features", "UNetConditional1d needs it")
            })?;
        if cfg.context_embedding_max_length == 0 {
            return Err(Error::config(
                "context_embedding_max_length",
                "must be at least 1",
            ));
        }
        let unet = UNet1d::new(&cfg.unet, vb.clone())?;
        let fixed_embedding = FixedEmbedding::new(
            cfg.context_embedding_max_length,
            features,
            vb.pp("fixed_embedding"),
        )?;
        Ok(Self {
            unet,
            fixed_embedding,
        })
    }

    /// Selects corrected or 0.0.61 behaviour of the inner UNet.
    pub fn with_compat(mut self, compat: Compat) -> Self {
        self.unet = self.unet.with_compat(compat);
        self
    }

    /// The reference forward. `inputs.embedding` is required; with `embedding_mask_proba > 0` a
    /// mask `(B, 1, 1)` is drawn from `noise` and masked rows take the fixed embedding; with
    /// `embedding_scale != 1` the output is `null + (cond - null) * scale`, both from one 2B call.
    pub fn forward(
        &self,
        x: &Tensor,
        time: Option<&Tensor>,
        inputs: &NetInputs,
        noise: &mut dyn NoiseSource,
    ) -> Result<Tensor> {
        let embedding = inputs
            .embedding
            .as_ref()
            .ok_or_else(|| Error::input("embedding", "UNetConditional1d needs an embedding"))?;
        let b = embedding.dim(0)?;
        let fixed = self.fixed_embedding.forward(embedding)?;
        let mut embedding = embedding.clone();
        if inputs.embedding_mask_proba > 0.0 {
            let mask = rand_bool(
                &[b, 1, 1],
                inputs.embedding_mask_proba,
                noise,
                embedding.device(),
            )?;
            embedding = mask
                .broadcast_as(embedding.shape())?
                .where_cond(&fixed, &embedding)?;
        }
        if inputs.embedding_scale == 1.0 {
            let inputs = NetInputs {
                embedding: Some(embedding),
                ..inputs.clone()
            };
            return self.unet.forward(x, time, &inputs);
        }
        let twice = |t: &Tensor| Tensor::cat(&[t, t], 0);
        let batched = NetInputs {
            features: inputs.features.as_ref().map(twice).transpose()?,
            channels_list: inputs
                .channels_list
                .iter()
                .map(twice)
                .collect::<candle_core::Result<_>>()?,
            embedding: Some(Tensor::cat(&[&embedding, &fixed], 0)?),
            ..inputs.clone()
        };
        let time2 = time.map(twice).transpose()?;
        let out = self.unet.forward(&twice(x)?, time2.as_ref(), &batched)?;
        let cond = out.narrow(0, 0, b)?;
        let null = out.narrow(0, b, b)?;
        Ok((&null + ((cond - &null)? * inputs.embedding_scale)?)?)
    }

    /// The number of embedding features E.
    pub fn embedding_features(&self) -> Result<usize> {
        Ok(self.fixed_embedding.weight.dim(D::Minus1)?)
    }
}

impl Net for UNetConditional1d {
    fn forward(
        &self,
        x: &Tensor,
        time: &Tensor,
        inputs: &NetInputs,
        noise: &mut dyn NoiseSource,
    ) -> Result<Tensor> {
        UNetConditional1d::forward(self, x, Some(time), inputs, noise)
    }
}
