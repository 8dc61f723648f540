//! Fixture runner for the diffusion components of `diffusion.py` (audio-diffusion-pytorch 0.0.61):
//! `KarrasSchedule`, `VDiffusion`, `KDiffusion`, `DiffusionSampler`, `DiffusionInpainter` and
//! `SpanBySpanComposer`, built from the case's constructor tree in the 0.0.61-compatibility mode,
//! with the recorded draws replayed.

use crate::fixtures::{Case, Outputs, RunResult};
use adiff_core::diffusion::{
    Diffusion, Distribution, KDiffusion, LogNormalDistribution, UniformDistribution, VDiffusion,
    VDistribution,
};
use adiff_core::pipeline::{DiffusionInpainter, DiffusionSampler, SpanBySpanComposer};
use adiff_core::sampler::{
    ignore_steps, ADPM2Sampler, AEulerSampler, HeunSampler, KarrasSampler, Sampler,
};
use adiff_core::schedule::{KarrasSchedule, Schedule};
use adiff_core::unet::{UNet1d, UNet1dConfig};
use adiff_core::weights::build_audited;
use adiff_core::{Compat, NetInputs, ReplayNoise};
use anyhow::{anyhow, bail, Context, Result};
use candle_core::{DType, Device, Tensor};
use serde_json::Value;

const COMPAT: Compat = Compat::V0_0_61;

/// Runs one case of this family.
pub fn run(case: &Case) -> Result<RunResult> {
    let mut noise = case.noise()?;
    let produced = match case.component() {
        "KarrasSchedule" => run_schedule(case)?,
        "VDiffusion" | "KDiffusion" => run_objective(case, &mut noise)?,
        "DiffusionSampler" => run_sampler(case, &mut noise)?,
        "DiffusionInpainter" => run_inpainter(case, &mut noise)?,
        "SpanBySpanComposer" => run_composer(case, &mut noise)?,
        other => {
            return Ok(RunResult::Skip(format!(
                "component `{other}` is not a diffusion component"
            )))
        }
    };
    if noise.remaining() != 0 {
        bail!("{} recorded draws were not used", noise.remaining());
    }
    Ok(RunResult::Done(produced))
}

/// The `{"class", "kwargs"}` node at a kwarg of `node`.
fn child<'a>(node: &'a Value, kwarg: &str) -> Result<&'a Value> {
    let v = &node["kwargs"][kwarg];
    if v.is_null() {
        bail!("constructor of {} has no `{kwarg}`", node["class"]);
    }
    Ok(v)
}

/// A numeric kwarg (`"inf"` is infinity), or `default` when absent.
fn num(node: &Value, kwarg: &str, default: f64) -> Result<f64> {
    match &node["kwargs"][kwarg] {
        Value::Null => Ok(default),
        Value::String(s) if s == "inf" => Ok(f64::INFINITY),
        Value::String(s) if s == "-inf" => Ok(f64::NEG_INFINITY),
        v => v
            .as_f64()
            .ok_or_else(|| anyhow!("kwarg `{kwarg}` = {v} is not a number")),
    }
}

fn schedule(node: &Value) -> Result<KarrasSchedule> {
    match node["class"].as_str() {
        Some("KarrasSchedule") => Ok(KarrasSchedule {
            sigma_min: num(node, "sigma_min", f64::NAN)?,
            sigma_max: num(node, "sigma_max", f64::NAN)?,
            rho: num(node, "rho", 7.0)?,
            compat: COMPAT,
        }),
        other => bail!("unknown schedule {other:?}"),
    }
}

fn sampler(node: &Value) -> Result<Box<dyn Sampler>> {
    Ok(match node["class"].as_str() {
        Some("AEulerSampler") => Box::new(AEulerSampler { compat: COMPAT }),
        Some("ADPM2Sampler") => Box::new(ADPM2Sampler {
            rho: num(node, "rho", 1.0)?,
            compat: COMPAT,
        }),
        Some("KarrasSampler") => Box::new(KarrasSampler {
            params: HeunSampler {
                s_tmin: num(node, "s_tmin", 0.0)?,
                s_tmax: num(node, "s_tmax", f64::INFINITY)?,
                s_churn: num(node, "s_churn", 0.0)?,
                s_noise: num(node, "s_noise", 1.0)?,
            },
            compat: COMPAT,
        }),
        other => bail!("unknown sampler {other:?}"),
    })
}

fn distribution(node: &Value) -> Result<Box<dyn Distribution>> {
    Ok(match node["class"].as_str() {
        Some("LogNormalDistribution") => Box::new(LogNormalDistribution {
            mean: num(node, "mean", f64::NAN)?,
            std: num(node, "std", f64::NAN)?,
        }),
        Some("VDistribution") => Box::new(VDistribution {
            min_value: num(node, "min_value", 0.0)?,
            max_value: num(node, "max_value", f64::INFINITY)?,
            sigma_data: num(node, "sigma_data", 1.0)?,
            compat: COMPAT,
        }),
        Some("UniformDistribution") => Box::new(UniformDistribution {
            vmin: num(node, "vmin", 0.0)?,
            vmax: num(node, "vmax", 1.0)?,
        }),
        other => bail!("unknown distribution {other:?}"),
    })
}

/// The diffusion object at `node`, its UNet loaded from the case's weights (keys `net.*`).
fn objective(case: &Case, node: &Value) -> Result<Box<dyn Diffusion>> {
    let net_node = child(node, "net")?;
    if net_node["class"].as_str() != Some("UNet1d") {
        bail!("unsupported net {}", net_node["class"]);
    }
    let cfg: UNet1dConfig =
        serde_json::from_value(net_node["kwargs"].clone()).context("UNet1d kwargs")?;
    let source = format!("fixture {}", case.name);
    let net = build_audited(case.weights(), source, DType::F32, &Device::Cpu, |vb| {
        UNet1d::new(&cfg, vb.pp("net"))
    })?
    .with_compat(COMPAT);
    let dist = distribution(child(node, "sigma_distribution")?)?;
    Ok(match node["class"].as_str() {
        Some("VDiffusion") => Box::new(VDiffusion::new(net, dist, COMPAT)),
        Some("KDiffusion") => Box::new(KDiffusion::new(
            net,
            dist,
            num(node, "sigma_data", f64::NAN)?,
            num(node, "dynamic_threshold", 0.0)?,
        )),
        other => bail!("unknown diffusion {other:?}"),
    })
}

fn arg(case: &Case, v: &Value, produced: &Outputs) -> Result<Tensor> {
    case.tensor_arg(v, produced)?
        .ok_or_else(|| anyhow!("argument {v} is not a tensor"))
}

fn output_name(call: &Value) -> Result<String> {
    Ok(call["outputs"][0]
        .as_str()
        .ok_or_else(|| anyhow!("call without an output name"))?
        .to_string())
}

fn run_schedule(case: &Case) -> Result<Outputs> {
    let schedule = schedule(case.constructor())?;
    let mut produced = Outputs::new();
    for call in case.calls() {
        let n = call["args"][0]
            .as_u64()
            .ok_or_else(|| anyhow!("schedule call needs num_steps"))? as usize;
        let sigmas: Vec<f32> = schedule.sigmas(n)?.into_iter().map(|s| s as f32).collect();
        let len = sigmas.len();
        produced.insert(
            output_name(call)?,
            Tensor::from_vec(sigmas, len, &Device::Cpu)?,
        );
    }
    Ok(produced)
}

fn run_objective(case: &Case, noise: &mut ReplayNoise) -> Result<Outputs> {
    let diffusion = objective(case, case.constructor())?;
    let inputs = NetInputs::none();
    let mut produced = Outputs::new();
    for call in case.calls() {
        let x = arg(case, &call["args"][0], &produced)?;
        let kwargs = &call["kwargs"];
        let y = match call["method"].as_str() {
            Some("forward") => {
                let given = match &kwargs["noise"] {
                    Value::Null => None,
                    v => Some(arg(case, v, &produced)?),
                };
                diffusion.loss(&x, &inputs, noise, given.as_ref())?
            }
            Some("denoise_fn") => {
                let sigmas = match (&kwargs["sigmas"], kwargs["sigma"].as_f64()) {
                    (Value::Null, Some(s)) => adiff_core::diffusion::to_batch(s, &x)?,
                    (v, None) => arg(case, v, &produced)?,
                    _ => bail!("denoise_fn needs exactly one of sigmas and sigma"),
                };
                diffusion.denoise(&x, &sigmas, &inputs, noise)?
            }
            other => bail!("unsupported method {other:?}"),
        };
        produced.insert(output_name(call)?, y);
    }
    Ok(produced)
}

fn run_sampler(case: &Case, noise: &mut ReplayNoise) -> Result<Outputs> {
    let node = case.constructor();
    let diffusion = objective(case, child(node, "diffusion")?)?;
    let sampler = sampler(child(node, "sampler")?)?;
    let schedule = schedule(child(node, "sigma_schedule")?)?;
    let num_steps = node["kwargs"]["num_steps"].as_u64().map(|n| n as usize);
    let pipeline = DiffusionSampler {
        diffusion: diffusion.as_ref(),
        sampler: sampler.as_ref(),
        schedule: &schedule,
        num_steps,
    };
    let mut produced = Outputs::new();
    for call in case.calls() {
        let start = arg(case, &call["args"][0], &produced)?;
        let steps = call["kwargs"]["num_steps"].as_u64().map(|n| n as usize);
        let y = pipeline.sample(&start, steps, &NetInputs::none(), noise, &mut ignore_steps)?;
        produced.insert(output_name(call)?, y);
    }
    Ok(produced)
}

/// Builds the `DiffusionInpainter` at `node` and hands it to `f`.
fn with_inpainter<T>(
    case: &Case,
    node: &Value,
    f: impl FnOnce(DiffusionInpainter<'_>) -> Result<T>,
) -> Result<T> {
    let diffusion = objective(case, child(node, "diffusion")?)?;
    let sampler = sampler(child(node, "sampler")?)?;
    let schedule = schedule(child(node, "sigma_schedule")?)?;
    let count = |k: &str| -> Result<usize> {
        Ok(node["kwargs"][k]
            .as_u64()
            .ok_or_else(|| anyhow!("inpainter needs `{k}`"))? as usize)
    };
    f(DiffusionInpainter {
        diffusion: diffusion.as_ref(),
        num_steps: count("num_steps")?,
        num_resamples: count("num_resamples")?,
        sampler: sampler.as_ref(),
        schedule: &schedule,
    })
}

fn run_inpainter(case: &Case, noise: &mut ReplayNoise) -> Result<Outputs> {
    with_inpainter(case, case.constructor(), |inpainter| {
        let mut produced = Outputs::new();
        for call in case.calls() {
            let source = arg(case, &call["kwargs"]["inpaint"], &produced)?;
            let mask = arg(case, &call["kwargs"]["inpaint_mask"], &produced)?;
            let y =
                inpainter.inpaint(&source, &mask, &NetInputs::none(), noise, &mut ignore_steps)?;
            produced.insert(output_name(call)?, y);
        }
        Ok(produced)
    })
}

fn run_composer(case: &Case, noise: &mut ReplayNoise) -> Result<Outputs> {
    let node = case.constructor();
    let num_spans = node["kwargs"]["num_spans"]
        .as_u64()
        .ok_or_else(|| anyhow!("composer needs num_spans"))? as usize;
    with_inpainter(case, child(node, "inpainter")?, |inpainter| {
        let composer = SpanBySpanComposer {
            inpainter,
            num_spans,
        };
        let mut produced = Outputs::new();
        for call in case.calls() {
            let start = arg(case, &call["args"][0], &produced)?;
            let keep_start = call["kwargs"]["keep_start"].as_bool().unwrap_or(false);
            let y = composer.compose(
                &start,
                keep_start,
                &NetInputs::none(),
                noise,
                &mut ignore_steps,
            )?;
            produced.insert(output_name(call)?, y);
        }
        Ok(produced)
    })
}
