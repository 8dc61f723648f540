//! Fixture runner for the model classes of `model.py` (audio-diffusion-pytorch 0.0.61):
//! `AudioDiffusionModel`, `AudioDiffusionUpsampler`, `AudioDiffusionAutoencoder`,
//! `AudioDiffusionConditional`, `AutoEncoder1d`, `Variational` and `MultiEncoder1d`, built from the
//! case's constructor kwargs in the 0.0.61-compatibility mode, the recorded draws replayed in the
//! reference order (docs/reference.md §3.11).
//!
//! Every argument of every call and every constructor keyword (nested nodes included) is read
//! through [`Args`]: one the runner does not pass on fails the case.

use crate::fixtures::{Args, Case, Outputs, RunResult};
use crate::parse_kwargs;
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
    let node = Args::of_node(case, "constructor", case.constructor())?;
    if node.name() != case.component() {
        bail!("{}: expected class {}", node.what(), case.component());
    }
    let noise_ref = &mut noise;
    let produced = match case.component() {
        "AudioDiffusionModel" => {
            let cfg = parse_kwargs!(
                node,
                AudioDiffusionModelConfig,
                AudioDiffusionModelConfig::from_kwargs
            );
            let model = build(case, |vb| AudioDiffusionModel::new(&cfg, COMPAT, vb))?;
            each_call(case, |x, args, _| match args.name() {
                "forward" => Ok(vec![model.loss(&x, noise_ref)?]),
                "sample" => Ok(vec![model.sample(
                    &x,
                    &sampling(args)?,
                    noise_ref,
                    &mut ignore_steps,
                )?]),
                m => bail!("unsupported method {m}"),
            })?
        }
        "AudioDiffusionUpsampler" => {
            let cfg = parse_kwargs!(
                node,
                AudioDiffusionUpsamplerConfig,
                AudioDiffusionUpsamplerConfig::from_kwargs
            );
            let model = build(case, |vb| AudioDiffusionUpsampler::new(&cfg, COMPAT, vb))?;
            each_call(case, |x, args, _| match args.name() {
                "forward" => Ok(vec![model.loss(&x, noise_ref)?]),
                "sample" => {
                    // `sample(undersampled, factor=None, *args, **kwargs)`.
                    let factor = match args.get(1, "factor")? {
                        Some(v) => Some(
                            v.as_u64()
                                .ok_or_else(|| anyhow!("factor {v} is not a count"))?
                                as usize,
                        ),
                        None => None,
                    };
                    Ok(vec![model.sample(
                        &x,
                        factor,
                        &sampling_at(args, 2)?,
                        noise_ref,
                        &mut ignore_steps,
                    )?])
                }
                m => bail!("unsupported method {m}"),
            })?
        }
        "AudioDiffusionConditional" => {
            let cfg = parse_kwargs!(
                node,
                AudioDiffusionConditionalConfig,
                AudioDiffusionConditionalConfig::from_kwargs
            );
            let model = build(case, |vb| AudioDiffusionConditional::new(&cfg, COMPAT, vb))?;
            each_call(case, |x, args, produced| {
                let embedding = args
                    .kw("embedding")
                    .map(|v| case.tensor_arg(v, produced))
                    .transpose()?
                    .flatten()
                    .ok_or_else(|| anyhow!("call without an embedding"))?;
                match args.name() {
                    "forward" => Ok(vec![model.loss(&x, &embedding, noise_ref)?]),
                    "sample" => {
                        let scale = match args.kw("embedding_scale") {
                            Some(v) => {
                                Some(v.as_f64().ok_or_else(|| anyhow!("embedding_scale {v}"))?)
                            }
                            None => None,
                        };
                        let s = sampling(args)?;
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
            let cfg = parse_kwargs!(
                node,
                AudioDiffusionAutoencoderConfig,
                AudioDiffusionAutoencoderConfig::from_kwargs
            );
            let model = build(case, |vb| AudioDiffusionAutoencoder::new(&cfg, COMPAT, vb))?;
            each_call(case, |x, args, _| match args.name() {
                "forward" => Ok(vec![model.loss(&x, noise_ref)?.total()?]),
                "encode" => Ok(vec![model.encode(&x, noise_ref)?]),
                "decode" => Ok(vec![model.decode(
                    &x,
                    &sampling(args)?,
                    noise_ref,
                    &mut ignore_steps,
                )?]),
                m => bail!("unsupported method {m}"),
            })?
        }
        "AutoEncoder1d" => {
            let cfg = parse_kwargs!(node, AutoEncoder1dConfig);
            let model = build(case, |vb| AutoEncoder1d::new(&cfg, COMPAT, vb))?;
            each_call(case, |x, args, _| match args.name() {
                "encode" => Ok(vec![model.encode(&x, noise_ref)?.latent]),
                "decode" => Ok(vec![model.decode(&x, noise_ref)?]),
                "forward" => Ok(vec![model.forward(&x, noise_ref)?.0]),
                m => bail!("unsupported method {m}"),
            })?
        }
        "Variational" => {
            let cfg = parse_kwargs!(node, VariationalConfig);
            let model = build(case, |vb| Variational::new(&cfg, COMPAT, vb))?;
            each_call(case, |x, args, _| match args.name() {
                "forward" => {
                    let out = Bottleneck::forward(&model, &x, noise_ref)?;
                    // `forward(x, with_info=False)`: `(out, {"loss": kl})` only with info.
                    let with_info = match args.get(1, "with_info")? {
                        Some(v) => v
                            .as_bool()
                            .ok_or_else(|| anyhow!("with_info {v} is not a bool"))?,
                        None => false,
                    };
                    Ok(if with_info {
                        vec![out.latent, out.loss]
                    } else {
                        vec![out.latent]
                    })
                }
                m => bail!("unsupported method {m}"),
            })?
        }
        "MultiEncoder1d" => {
            let cfg = parse_kwargs!(node, MultiEncoder1dConfig);
            let model = build(case, |vb| MultiEncoder1d::new(&cfg, vb))?;
            each_call(case, |x, args, _| match args.name() {
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
    node.finish()?;
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

/// The sampling of a `sample` / `decode` call: `num_steps` (position 1 or keyword), and the
/// reference defaults for the schedule and sampler unless the call gives them.
fn sampling(args: &Args) -> Result<Sampling> {
    sampling_at(args, 1)
}

/// [`sampling`] with `num_steps` at position `pos`.
fn sampling_at(args: &Args, pos: usize) -> Result<Sampling> {
    let num_steps = args
        .get(pos, "num_steps")?
        .and_then(Value::as_u64)
        .ok_or_else(|| anyhow!("sample call without num_steps"))? as usize;
    let mut s = Sampling::reference_defaults(num_steps, COMPAT);
    if let Some(v) = args.kw("sampler") {
        let setting: SamplerSetting = serde_json::from_value(v.clone()).context("sampler")?;
        no_dropped_keys(args, "sampler", v, &serde_json::to_value(&setting)?)?;
        s.sampler = sampler_from(&setting, COMPAT)?;
    }
    if let Some(v) = args.kw("sigma_schedule") {
        let setting: ScheduleSetting =
            serde_json::from_value(v.clone()).context("sigma_schedule")?;
        no_dropped_keys(args, "sigma_schedule", v, &serde_json::to_value(&setting)?)?;
        s.schedule = schedule_from(&setting, COMPAT)?;
    }
    Ok(s)
}

/// Fails when the keyword `name` = `given` has a key its parsed form `known` lacks.
fn no_dropped_keys(args: &Args, name: &str, given: &Value, known: &Value) -> Result<()> {
    let mut unknown = Vec::new();
    crate::fixtures::unknown_keys(given, known, name, &mut unknown);
    if !unknown.is_empty() {
        bail!("{}: the parsed `{name}` drops {unknown:?}", args.what());
    }
    Ok(())
}

/// Makes every call: `f(first positional tensor, arguments, outputs so far)` returns the call's
/// tensors, which are stored under the call's output names in order; every argument of the call
/// must have been read ([`Args::finish`]).
fn each_call(
    case: &Case,
    mut f: impl FnMut(Tensor, &Args, &Outputs) -> Result<Vec<Tensor>>,
) -> Result<Outputs> {
    let mut produced = Outputs::new();
    for (i, call) in case.calls().iter().enumerate() {
        let args = Args::of_call(case, i, call)?;
        let method = args.name().to_string();
        let x = case
            .tensor_arg(args.need(0, "x")?, &produced)?
            .ok_or_else(|| anyhow!("call {i} ({method}) has no tensor argument"))?;
        let outputs = f(x, &args, &produced).with_context(|| format!("call {i} ({method})"))?;
        args.finish()?;
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
