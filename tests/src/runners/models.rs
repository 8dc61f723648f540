//! Fixture runner for the model classes of `model.py` (audio-diffusion-pytorch 0.0.61):
//! `AudioDiffusionModel`, `AudioDiffusionUpsampler`, `AudioDiffusionAutoencoder`,
//! `AudioDiffusionConditional`, `AutoEncoder1d`, `Variational` and `MultiEncoder1d`, built from the
//! case's constructor kwargs in the 0.0.61-compatibility mode, the recorded draws replayed in the
//! reference order (SPEC §3.11).

use crate::fixtures::{Case, Outputs, RunResult};
use adiff_core::models::folder::{fold_unet_aliases, SamplerSetting, ScheduleSetting};
use adiff_core::models::sampling::{sampler_from, schedule_from};
use adiff_core::models::{
    AudioDiffusionAutoencoder, AudioDiffusionAutoencoderConfig, AudioDiffusionConditional,
    AudioDiffusionConditionalConfig, AudioDiffusionModel, AudioDiffusionModelConfig,
    AudioDiffusionUpsampler, AudioDiffusionUpsamplerConfig, AutoEncoder1d, AutoEncoder1dConfig,
    Bottleneck, MultiEncoder1d, MultiEncoder1dConfig, Sampling, Variational, VariationalConfig,
};
use adiff_core::sampler::ignore_steps;
use adiff_core::weights::build_audited;
use adiff_core::Compat;
use anyhow::{anyhow, bail, Context, Result};
use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use serde_json::Value;
use std::collections::HashMap;

const COMPAT: Compat = Compat::V0_0_61;

/// Runs one case of this family.
pub fn run(case: &Case) -> Result<RunResult> {
    let mut noise = case.noise()?;
    let kwargs = &case.constructor()["kwargs"];
    let noise_ref = &mut noise;
    let produced = match case.component() {
        "AudioDiffusionModel" => {
            let cfg = AudioDiffusionModelConfig::from_kwargs(kwargs)?;
            let model = build(case, |vb| AudioDiffusionModel::new(&cfg, COMPAT, vb))?;
            each_call(case, |method, x, call, _| match method {
                "forward" => Ok(vec![model.loss(&x, noise_ref)?]),
                "sample" => Ok(vec![model.sample(
                    &x,
                    &sampling(call)?,
                    noise_ref,
                    &mut ignore_steps,
                )?]),
                m => bail!("unsupported method {m}"),
            })?
        }
        "AudioDiffusionUpsampler" => {
            let cfg = AudioDiffusionUpsamplerConfig::from_kwargs(kwargs)?;
            let model = build(case, |vb| AudioDiffusionUpsampler::new(&cfg, COMPAT, vb))?;
            each_call(case, |method, x, call, _| match method {
                "forward" => Ok(vec![model.loss(&x, noise_ref)?]),
                "sample" => {
                    let factor = call["kwargs"]["factor"].as_u64().map(|f| f as usize);
                    Ok(vec![model.sample(
                        &x,
                        factor,
                        &sampling(call)?,
                        noise_ref,
                        &mut ignore_steps,
                    )?])
                }
                m => bail!("unsupported method {m}"),
            })?
        }
        "AudioDiffusionConditional" => {
            let cfg = AudioDiffusionConditionalConfig::from_kwargs(kwargs)?;
            let model = build(case, |vb| AudioDiffusionConditional::new(&cfg, COMPAT, vb))?;
            each_call(case, |method, x, call, produced| {
                let embedding = case
                    .tensor_arg(&call["kwargs"]["embedding"], produced)?
                    .ok_or_else(|| anyhow!("call without an embedding"))?;
                match method {
                    "forward" => Ok(vec![model.loss(&x, &embedding, noise_ref)?]),
                    "sample" => {
                        let scale = call["kwargs"]["embedding_scale"].as_f64();
                        let s = sampling(call)?;
                        Ok(vec![model.sample(
                            &x,
                            &embedding,
                            scale,
                            &s,
                            noise_ref,
                            &mut ignore_steps,
                        )?])
                    }
                    m => bail!("unsupported method {m}"),
                }
            })?
        }
        "AudioDiffusionAutoencoder" => {
            let cfg = AudioDiffusionAutoencoderConfig::from_kwargs(kwargs)?;
            let model = build(case, |vb| AudioDiffusionAutoencoder::new(&cfg, COMPAT, vb))?;
            each_call(case, |method, x, call, _| match method {
                "forward" => Ok(vec![model.loss(&x, noise_ref)?.total()?]),
                "encode" => Ok(vec![model.encode(&x, noise_ref)?]),
                "decode" => Ok(vec![model.decode(
                    &x,
                    &sampling(call)?,
                    noise_ref,
                    &mut ignore_steps,
                )?]),
                m => bail!("unsupported method {m}"),
            })?
        }
        "AutoEncoder1d" => {
            let cfg: AutoEncoder1dConfig =
                serde_json::from_value(kwargs.clone()).context("AutoEncoder1d kwargs")?;
            let model = build(case, |vb| AutoEncoder1d::new(&cfg, COMPAT, vb))?;
            each_call(case, |method, x, _, _| match method {
                "encode" => Ok(vec![model.encode(&x, noise_ref)?.latent]),
                "decode" => Ok(vec![model.decode(&x, noise_ref)?]),
                "forward" => Ok(vec![model.forward(&x, noise_ref)?.0]),
                m => bail!("unsupported method {m}"),
            })?
        }
        "Variational" => {
            let cfg: VariationalConfig =
                serde_json::from_value(kwargs.clone()).context("Variational kwargs")?;
            let model = build(case, |vb| Variational::new(&cfg, COMPAT, vb))?;
            each_call(case, |method, x, _, _| match method {
                "forward" => {
                    let out = Bottleneck::forward(&model, &x, noise_ref)?;
                    Ok(vec![out.latent, out.loss])
                }
                m => bail!("unsupported method {m}"),
            })?
        }
        "MultiEncoder1d" => {
            let cfg: MultiEncoder1dConfig =
                serde_json::from_value(kwargs.clone()).context("MultiEncoder1d kwargs")?;
            let model = build(case, |vb| MultiEncoder1d::new(&cfg, vb))?;
            each_call(case, |method, x, _, _| match method {
                "encode" => Ok(vec![model.encode(&x)?]),
                "decode" => Ok(model.decode(&x)?),
                m => bail!("unsupported method {m}"),
            })?
        }
        other => {
            return Ok(RunResult::Skip(format!(
                "component `{other}` is not a model component"
            )))
        }
    };
    if noise.remaining() != 0 {
        bail!("{} recorded draws were not used", noise.remaining());
    }
    Ok(RunResult::Done(produced))
}

/// The model `f` builds from the case's weights (f32, CPU), audited: any missing, unused or
/// mis-shaped key fails.
fn build<T>(
    case: &Case,
    f: impl FnOnce(VarBuilder<'static>) -> adiff_core::Result<T>,
) -> Result<T> {
    Ok(build_audited(
        weights(case)?,
        source(case),
        DType::F32,
        &Device::Cpu,
        f,
    )?)
}

/// The case's weights with the `diffusion.net.*` copies folded into `unet.*` (checked equal); the
/// models are built through `build_audited`, which fails on any missing, unused or mis-shaped key.
fn weights(case: &Case) -> Result<HashMap<String, Tensor>> {
    Ok(fold_unet_aliases(case.weights())?)
}

fn source(case: &Case) -> String {
    format!("fixture {}", case.name)
}

/// The sampling of a `sample` / `decode` call: `num_steps`, and the reference defaults for the
/// schedule and sampler unless the call gives them.
fn sampling(call: &Value) -> Result<Sampling> {
    let kw = &call["kwargs"];
    let num_steps = kw["num_steps"]
        .as_u64()
        .ok_or_else(|| anyhow!("sample call without num_steps"))? as usize;
    let mut s = Sampling::reference_defaults(num_steps, COMPAT);
    if !kw["sampler"].is_null() {
        let setting: SamplerSetting =
            serde_json::from_value(kw["sampler"].clone()).context("sampler")?;
        s.sampler = sampler_from(&setting, COMPAT)?;
    }
    if !kw["sigma_schedule"].is_null() {
        let setting: ScheduleSetting =
            serde_json::from_value(kw["sigma_schedule"].clone()).context("sigma_schedule")?;
        s.schedule = schedule_from(&setting, COMPAT)?;
    }
    Ok(s)
}

/// Makes every call: `f(method, first positional tensor, call, outputs so far)` returns the
/// call's tensors, which are stored under the call's output names in order.
fn each_call(
    case: &Case,
    mut f: impl FnMut(&str, Tensor, &Value, &Outputs) -> Result<Vec<Tensor>>,
) -> Result<Outputs> {
    let mut produced = Outputs::new();
    for (i, call) in case.calls().iter().enumerate() {
        let method = call["method"]
            .as_str()
            .ok_or_else(|| anyhow!("call {i} has no method"))?;
        let x = case
            .tensor_arg(&call["args"][0], &produced)?
            .ok_or_else(|| anyhow!("call {i} ({method}) has no tensor argument"))?;
        let outputs =
            f(method, x, call, &produced).with_context(|| format!("call {i} ({method})"))?;
        let names = call["outputs"]
            .as_array()
            .ok_or_else(|| anyhow!("call {i} names no outputs"))?;
        if names.len() != outputs.len() {
            bail!(
                "call {i} ({method}) returned {} tensors, the case records {}",
                outputs.len(),
                names.len()
            );
        }
        for (name, t) in names.iter().zip(outputs) {
            let name = name
                .as_str()
                .ok_or_else(|| anyhow!("bad output name {name}"))?;
            produced.insert(name.to_string(), t);
        }
    }
    Ok(produced)
}
