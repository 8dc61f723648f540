//! `model.py::DiffusionUpsampler1d` / `AudioDiffusionUpsampler` (audio-diffusion-pytorch 0.0.61,
//! reference §4.4): bandwidth extension. The low-rate signal, brought back to full rate by the
//! reference's windowed-sinc `upsample`, is fed to the UNet as level-0 context channels; optionally
//! the factor is embedded (SinusoidalEmbedding) as global features.
//!
//! Compatibility (reference Appendix A.7): under [`Compat::V0_0_61`] training embeds the factor
//! *index* and sampling the factor *value*, as the reference does; [`Compat::Fixed`] embeds the
//! value in both.

use super::config::{from_kwargs, DiffusionConfig};
use super::embedding::SinusoidalEmbedding;
use super::model1d::Model1d;
use super::sampling::Sampling;
use crate::audio::sinc::{downsample, upsample};
use crate::sampler::OnStep;
use crate::unet::{UNet1d, UNet1dConfig};
use crate::{Compat, Error, NetInputs, NoiseSource, Result};
use candle_core::{DType, Tensor};
use candle_nn::VarBuilder;
use serde::{Deserialize, Serialize};

/// `factor`: one upsampling factor or a list of them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Factors {
    /// A single factor.
    One(usize),
    /// Several factors; training draws one per batch row.
    Many(Vec<usize>),
}

impl Factors {
    /// The factors as a list.
    pub fn to_vec(&self) -> Vec<usize> {
        match self {
            Self::One(f) => vec![*f],
            Self::Many(v) => v.clone(),
        }
    }
}

/// `AudioDiffusionUpsampler(in_channels, factor, factor_features=None, **kwargs)`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AudioDiffusionUpsamplerConfig {
    /// Upsampling factor(s) (dimensionless rate ratio).
    pub factor: Factors,
    /// Width of the factor embedding (None: no factor conditioning).
    #[serde(default)]
    pub factor_features: Option<usize>,
    /// The UNet1d keyword arguments (`context_channels` is set to `[in_channels]`).
    #[serde(flatten)]
    pub unet: UNet1dConfig,
    /// The `diffusion_*` keyword arguments.
    #[serde(flatten)]
    pub diffusion: DiffusionConfig,
}

impl AudioDiffusionUpsamplerConfig {
    /// The reference defaults with `in_channels` and `factor`.
    pub fn default_model(in_channels: usize, factor: Factors) -> Self {
        Self {
            factor,
            factor_features: None,
            unet: UNet1dConfig::default_model(in_channels),
            diffusion: DiffusionConfig::default(),
        }
    }

    /// Parses reference keyword arguments (unknown keys are an error).
    pub fn from_kwargs(kwargs: &serde_json::Value) -> Result<Self> {
        from_kwargs(kwargs, "AudioDiffusionUpsampler")
    }

    /// The UNet as the upsampler builds it: level-0 context `[in_channels]`, factor features.
    pub fn unet_config(&self) -> UNet1dConfig {
        let mut unet = self.unet.clone();
        unet.context_channels = Some(vec![unet.in_channels]);
        unet.context_features = self.factor_features;
        unet
    }
}

/// The upsampler: a low-rate clip in, the same clip at `factor` times the rate out.
#[derive(Debug)]
pub struct AudioDiffusionUpsampler {
    /// The objective and its UNet1d (`unet.*`).
    pub model: Model1d<UNet1d>,
    factors: Vec<usize>,
    to_features: Option<SinusoidalEmbedding>,
    cfg: AudioDiffusionUpsamplerConfig,
}

impl AudioDiffusionUpsampler {
    /// Builds the model; the UNet's weights are read under `unet.*` (the embedding has none).
    pub fn new(
        cfg: &AudioDiffusionUpsamplerConfig,
        compat: Compat,
        vb: VarBuilder,
    ) -> Result<Self> {
        let factors = cfg.factor.to_vec();
        if factors.is_empty() || factors.iter().any(|f| !(1..=64).contains(f)) {
            return Err(Error::config(
                "factor",
                format!("need one or more factors from 1 to 64, got {factors:?}"),
            ));
        }
        if cfg
            .factor_features
            .is_some_and(|f| f > crate::unet::config::MAX_WIDTH)
        {
            return Err(Error::config(
                "factor_features",
                format!("at most {} are supported", crate::unet::config::MAX_WIDTH),
            ));
        }
        let to_features = cfg
            .factor_features
            .map(SinusoidalEmbedding::new)
            .transpose()?;
        let unet = UNet1d::new(&cfg.unet_config(), vb.pp("unet"))?.with_compat(compat);
        Ok(Self {
            model: Model1d::new(unet, &cfg.diffusion, compat)?,
            factors,
            to_features,
            cfg: cfg.clone(),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &AudioDiffusionUpsamplerConfig {
        &self.cfg
    }

    /// The configured factors.
    pub fn factors(&self) -> &[usize] {
        &self.factors
    }

    /// `SinusoidalEmbedding` of per-row values `(batch,)`, when factor conditioning is on.
    fn features(&self, values: &[f32], device: &candle_core::Device) -> Result<Option<Tensor>> {
        match &self.to_features {
            Some(e) => Ok(Some(e.forward(&Tensor::from_slice(
                values,
                values.len(),
                device,
            )?)?)),
            None => Ok(None),
        }
    }

    /// `forward(x)`: the training loss of full-rate `x (batch, channels, length)`. Draws a factor
    /// index per row (randint), re-upsamples each row with `upsample(downsample(row, f), f)` as
    /// the context, then the diffusion draws.
    pub fn loss(&self, x: &Tensor, noise: &mut dyn NoiseSource) -> Result<Tensor> {
        let (b, _, t) = x.dims3()?;
        // 1. One factor index per row.
        let idx = noise.randint(0, self.factors.len() as i64, &[b], x.device())?;
        let idx: Vec<i64> = idx.to_dtype(DType::I64)?.to_vec1()?;
        // 2. Re-upsample the rows of each factor group.
        let mut rows: Vec<Option<Tensor>> = vec![None; b];
        for (j, &f) in self.factors.iter().enumerate() {
            let members: Vec<u32> = (0..b as u32)
                .filter(|&r| idx[r as usize] == j as i64)
                .collect();
            if members.is_empty() {
                continue;
            }
            if t % f != 0 {
                return Err(Error::input(
                    "x",
                    format!("length {t} is not a multiple of the factor {f}"),
                ));
            }
            let ids = Tensor::from_slice(&members, members.len(), x.device())?;
            let group = upsample(&downsample(&x.index_select(&ids, 0)?, f)?, f)?;
            for (k, &r) in members.iter().enumerate() {
                rows[r as usize] = Some(group.narrow(0, k, 1)?);
            }
        }
        let rows = rows
            .into_iter()
            .map(|r| {
                r.ok_or_else(|| Error::NoiseReplay("a factor index outside the factor list".into()))
            })
            .collect::<Result<Vec<_>>>()?;
        let channels = Tensor::cat(&rows, 0)?;
        // 3. Embed the factor index (0.0.61) or the factor itself (fixed).
        let values: Vec<f32> = idx
            .iter()
            .map(|&i| match self.model.compat() {
                Compat::V0_0_61 => i as f32,
                Compat::Fixed => self.factors[i as usize] as f32,
            })
            .collect();
        let inputs = NetInputs {
            channels_list: vec![channels],
            features: self.features(&values, x.device())?,
            ..NetInputs::none()
        };
        // 4. The diffusion loss with the context.
        self.model.loss(x, &inputs, noise)
    }

    /// `sample(undersampled, factor)`: `undersampled (batch, channels, length)` to
    /// `(batch, channels, length * factor)`; `factor` defaults to the first configured one.
    /// Draws the start noise like the upsampled signal first, then the sampler's draws.
    pub fn sample(
        &self,
        undersampled: &Tensor,
        factor: Option<usize>,
        sampling: &Sampling,
        noise: &mut dyn NoiseSource,
        on_step: &mut OnStep<'_>,
    ) -> Result<Tensor> {
        let factor = factor.unwrap_or(self.factors[0]);
        if factor == 0 {
            return Err(Error::input("factor", "must be positive"));
        }
        let b = undersampled.dim(0)?;
        // 1-2. The context: the low-rate signal brought to full rate.
        let channels = upsample(undersampled, factor)?;
        // 3. The factor value embedding.
        let features = self.features(&vec![factor as f32; b], undersampled.device())?;
        // 4. Start noise like the context.
        let start = noise
            .randn(channels.dims(), channels.device())?
            .to_dtype(channels.dtype())?;
        let inputs = NetInputs {
            channels_list: vec![channels],
            features,
            ..NetInputs::none()
        };
        self.model.sample(&start, sampling, &inputs, noise, on_step)
    }
}
