//! Fixture runner for the diffusion components of `diffusion.py` (audio-diffusion-pytorch 0.0.61):
//! `KarrasSchedule`, `VDiffusion`, `KDiffusion`, `DiffusionSampler`, `DiffusionInpainter` and
//! `SpanBySpanComposer`, built from the case's constructor tree in the 0.0.61-compatibility mode,
//! with the recorded draws replayed.
//!
//! Every argument of every call and every keyword of every constructor node is read through
//! [`Args`]: one the runner does not pass on fails the case.

use crate::fixtures::{Args, Case, Outputs, RunResult};
use crate::parse_kwargs;
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

/// A numeric kwarg (`"inf"` is infinity), or `default` when absent.
fn num(node: &Args, kwarg: &str, default: f64) -> Result<f64> {
    match node.kw(kwarg) {
        None => Ok(default),
        Some(Value::String(s)) if s == "inf" => Ok(f64::INFINITY),
        Some(Value::String(s)) if s == "-inf" => Ok(f64::NEG_INFINITY),
        Some(v) => v
            .as_f64()
            .ok_or_else(|| anyhow!("{}: kwarg `{kwarg}` = {v} is not a number", node.what())),
    }
}

/// A required numeric kwarg.
fn required(node: &Args, kwarg: &str) -> Result<f64> {
    let v = num(node, kwarg, f64::NAN)?;
    if v.is_nan() {
        bail!("{}: missing keyword argument `{kwarg}`", node.what());
    }
    Ok(v)
}

/// A non-negative integer kwarg, `None` when absent.
fn count(node: &Args, kwarg: &str) -> Result<Option<usize>> {
    node.kw(kwarg)
        .map(|v| {
            v.as_u64()
                .map(|n| n as usize)
                .ok_or_else(|| anyhow!("{}: `{kwarg}` = {v} is not a count", node.what()))
        })
        .transpose()
}

fn schedule(case: &Case, path: &str, value: &Value) -> Result<KarrasSchedule> {
    let node = Args::of_node(case, path, value)?;
    let s = match node.name() {
        "KarrasSchedule" => KarrasSchedule {
            sigma_min: required(&node, "sigma_min")?,
            sigma_max: required(&node, "sigma_max")?,
            rho: num(&node, "rho", 7.0)?,
            compat: COMPAT,
        },
        other => bail!("{}: unknown schedule {other:?}", node.what()),
    };
    node.finish()?;
    Ok(s)
}

fn sampler(case: &Case, path: &str, value: &Value) -> Result<Box<dyn Sampler>> {
    let node = Args::of_node(case, path, value)?;
    let s: Box<dyn Sampler> = match node.name() {
        "AEulerSampler" => Box::new(AEulerSampler { compat: COMPAT }),
        "ADPM2Sampler" => Box::new(ADPM2Sampler {
            rho: num(&node, "rho", 1.0)?,
            compat: COMPAT,
        }),
        "KarrasSampler" => Box::new(KarrasSampler {
            params: HeunSampler {
                s_tmin: num(&node, "s_tmin", 0.0)?,
                s_tmax: num(&node, "s_tmax", f64::INFINITY)?,
                s_churn: num(&node, "s_churn", 0.0)?,
                s_noise: num(&node, "s_noise", 1.0)?,
            },
            compat: COMPAT,
        }),
        other => bail!("{}: unknown sampler {other:?}", node.what()),
    };
    node.finish()?;
    Ok(s)
}

fn distribution(case: &Case, path: &str, value: &Value) -> Result<Box<dyn Distribution>> {
    let node = Args::of_node(case, path, value)?;
    let d: Box<dyn Distribution> = match node.name() {
        "LogNormalDistribution" => Box::new(LogNormalDistribution {
            mean: required(&node, "mean")?,
            std: required(&node, "std")?,
        }),
        "VDistribution" => Box::new(VDistribution {
            min_value: num(&node, "min_value", 0.0)?,
            max_value: num(&node, "max_value", f64::INFINITY)?,
            sigma_data: num(&node, "sigma_data", 1.0)?,
            compat: COMPAT,
        }),
        "UniformDistribution" => Box::new(UniformDistribution {
            vmin: num(&node, "vmin", 0.0)?,
            vmax: num(&node, "vmax", 1.0)?,
        }),
        other => bail!("{}: unknown distribution {other:?}", node.what()),
    };
    node.finish()?;
    Ok(d)
}

/// The diffusion object at `value`, its UNet loaded from the case's weights (keys `net.*`).
fn objective(case: &Case, path: &str, value: &Value) -> Result<Box<dyn Diffusion>> {
    let node = Args::of_node(case, path, value)?;
    let net_path = format!("{path}.net");
    let net_node = Args::of_node(case, &net_path, node.child("net")?)?;
    if net_node.name() != "UNet1d" {
        bail!("{}: unsupported net", net_node.what());
    }
    let cfg = parse_kwargs!(net_node, UNet1dConfig);
    net_node.finish()?;
    let source = format!("fixture {}", case.name);
    let net = build_audited(case.weights(), source, DType::F32, &Device::Cpu, |vb| {
        UNet1d::new(&cfg, vb.pp("net"))
    })?
    .with_compat(COMPAT);
    let dist = distribution(
        case,
        &format!("{path}.sigma_distribution"),
        node.child("sigma_distribution")?,
    )?;
    let d: Box<dyn Diffusion> = match node.name() {
        "VDiffusion" => Box::new(VDiffusion::new(net, dist, COMPAT)),
        "KDiffusion" => Box::new(KDiffusion::new(
            net,
            dist,
            required(&node, "sigma_data")?,
            num(&node, "dynamic_threshold", 0.0)?,
        )),
        other => bail!("{}: unknown diffusion {other:?}", node.what()),
    };
    node.finish()?;
    Ok(d)
}

fn arg(case: &Case, v: &Value, produced: &Outputs) -> Result<Tensor> {
    case.tensor_arg(v, produced)?
        .ok_or_else(|| anyhow!("argument {v} is not a tensor"))
}

/// Makes every call: `f(arguments, outputs so far)` returns the call's tensor, stored under the
/// call's output name; every argument of the call must have been read ([`Args::finish`]).
fn each_call(case: &Case, mut f: impl FnMut(&Args, &Outputs) -> Result<Tensor>) -> Result<Outputs> {
    let mut produced = Outputs::new();
    for (i, call) in case.calls().iter().enumerate() {
        let args = Args::of_call(case, i, call)?;
        let y = f(&args, &produced).with_context(|| args.what().to_string())?;
        args.finish()?;
        produced.insert(output_name(call)?, y);
    }
    Ok(produced)
}

fn output_name(call: &Value) -> Result<String> {
    Ok(call["outputs"][0]
        .as_str()
        .ok_or_else(|| anyhow!("call without an output name"))?
        .to_string())
}

fn run_schedule(case: &Case) -> Result<Outputs> {
    let schedule = schedule(case, "constructor", case.constructor())?;
    each_call(case, |args, _| {
        if args.name() != "forward" {
            bail!("unsupported method");
        }
        let n = args
            .need(0, "num_steps")?
            .as_u64()
            .ok_or_else(|| anyhow!("schedule call needs num_steps"))? as usize;
        // `forward(num_steps, device)`: the harness computes on the CPU only.
        if let Some(device) = args.get(1, "device")? {
            if device.as_str() != Some("cpu") {
                bail!("device {device} is not `cpu`");
            }
        }
        let sigmas: Vec<f32> = schedule.sigmas(n)?.into_iter().map(|s| s as f32).collect();
        let len = sigmas.len();
        Ok(Tensor::from_vec(sigmas, len, &Device::Cpu)?)
    })
}

fn run_objective(case: &Case, noise: &mut ReplayNoise) -> Result<Outputs> {
    let diffusion = objective(case, "constructor", case.constructor())?;
    let inputs = NetInputs::none();
    each_call(case, |args, produced| {
        let x = arg(case, args.need(0, "x")?, produced)?;
        Ok(match args.name() {
            "forward" => {
                let given = match args.get(1, "noise")? {
                    None => None,
                    Some(v) => Some(arg(case, v, produced)?),
                };
                diffusion.loss(&x, &inputs, noise, given.as_ref())?
            }
            "denoise_fn" => {
                let sigmas = match (args.get(1, "sigmas")?, args.get(2, "sigma")?) {
                    (None, Some(s)) => {
                        let s = s
                            .as_f64()
                            .ok_or_else(|| anyhow!("sigma {s} is not a number"))?;
                        adiff_core::diffusion::to_batch(s, &x)?
                    }
                    (Some(v), None) => arg(case, v, produced)?,
                    _ => bail!("denoise_fn needs exactly one of sigmas and sigma"),
                };
                diffusion.denoise(&x, &sigmas, &inputs, noise)?
            }
            other => bail!("unsupported method {other:?}"),
        })
    })
}

fn run_sampler(case: &Case, noise: &mut ReplayNoise) -> Result<Outputs> {
    let node = Args::of_node(case, "constructor", case.constructor())?;
    if node.name() != "DiffusionSampler" {
        bail!("{}: expected DiffusionSampler", node.what());
    }
    let diffusion = objective(case, "constructor.diffusion", node.child("diffusion")?)?;
    let sampler = sampler(case, "constructor.sampler", node.child("sampler")?)?;
    let schedule = schedule(
        case,
        "constructor.sigma_schedule",
        node.child("sigma_schedule")?,
    )?;
    let num_steps = count(&node, "num_steps")?;
    node.finish()?;
    let pipeline = DiffusionSampler {
        diffusion: diffusion.as_ref(),
        sampler: sampler.as_ref(),
        schedule: &schedule,
        num_steps,
    };
    each_call(case, |args, produced| {
        if args.name() != "forward" {
            bail!("unsupported method");
        }
        let start = arg(case, args.need(0, "noise")?, produced)?;
        let steps = match args.get(1, "num_steps")? {
            Some(v) => Some(
                v.as_u64()
                    .ok_or_else(|| anyhow!("num_steps {v} is not a count"))?
                    as usize,
            ),
            None => None,
        };
        Ok(pipeline.sample(&start, steps, &NetInputs::none(), noise, &mut ignore_steps)?)
    })
}

/// Builds the `DiffusionInpainter` at `value` and hands it to `f`.
fn with_inpainter<T>(
    case: &Case,
    path: &str,
    value: &Value,
    f: impl FnOnce(DiffusionInpainter<'_>) -> Result<T>,
) -> Result<T> {
    let node = Args::of_node(case, path, value)?;
    if node.name() != "DiffusionInpainter" {
        bail!("{}: expected DiffusionInpainter", node.what());
    }
    let diffusion = objective(case, &format!("{path}.diffusion"), node.child("diffusion")?)?;
    let sampler = sampler(case, &format!("{path}.sampler"), node.child("sampler")?)?;
    let schedule = schedule(
        case,
        &format!("{path}.sigma_schedule"),
        node.child("sigma_schedule")?,
    )?;
    let need = |k: &str| -> Result<usize> {
        count(&node, k)?.ok_or_else(|| anyhow!("{}: inpainter needs `{k}`", node.what()))
    };
    let inpainter = DiffusionInpainter {
        diffusion: diffusion.as_ref(),
        num_steps: need("num_steps")?,
        num_resamples: need("num_resamples")?,
        sampler: sampler.as_ref(),
        schedule: &schedule,
    };
    node.finish()?;
    f(inpainter)
}

fn run_inpainter(case: &Case, noise: &mut ReplayNoise) -> Result<Outputs> {
    with_inpainter(case, "constructor", case.constructor(), |inpainter| {
        each_call(case, |args, produced| {
            if args.name() != "forward" {
                bail!("unsupported method");
            }
            let source = arg(case, args.need(0, "inpaint")?, produced)?;
            let mask = arg(case, args.need(1, "inpaint_mask")?, produced)?;
            Ok(inpainter.inpaint(&source, &mask, &NetInputs::none(), noise, &mut ignore_steps)?)
        })
    })
}

fn run_composer(case: &Case, noise: &mut ReplayNoise) -> Result<Outputs> {
    let node = Args::of_node(case, "constructor", case.constructor())?;
    if node.name() != "SpanBySpanComposer" {
        bail!("{}: expected SpanBySpanComposer", node.what());
    }
    let num_spans = count(&node, "num_spans")?
        .ok_or_else(|| anyhow!("{}: composer needs num_spans", node.what()))?;
    let inpainter_node = node.child("inpainter")?;
    node.finish()?;
    with_inpainter(case, "constructor.inpainter", inpainter_node, |inpainter| {
        let composer = SpanBySpanComposer {
            inpainter,
            num_spans,
        };
        each_call(case, |args, produced| {
            if args.name() != "forward" {
                bail!("unsupported method");
            }
            let start = arg(case, args.need(0, "start")?, produced)?;
            let keep_start = match args.get(1, "keep_start")? {
                Some(v) => v
                    .as_bool()
                    .ok_or_else(|| anyhow!("keep_start {v} is not a bool"))?,
                None => false,
            };
            Ok(composer.compose(
                &start,
                keep_start,
                &NetInputs::none(),
                noise,
                &mut ignore_steps,
            )?)
        })
    })
}
