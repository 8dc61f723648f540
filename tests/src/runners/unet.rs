//! Fixture runner for `UNet1d`, `UNetConditional1d` and `merge_magnitude_channels`
//! (audio-diffusion-pytorch 0.0.61 `modules.py`), built in the 0.0.61-compatibility mode.
//!
//! Every argument of every call and every constructor keyword is read through [`Args`]: one the
//! runner does not pass on fails the case.

use crate::fixtures::{Args, Case, Outputs, RunResult};
use crate::parse_kwargs;
use adiff_core::unet::{merge_magnitude_channels, UNet1dConfig, UNetConditional1dConfig};
use adiff_core::unet::{UNet1d, UNetConditional1d};
use adiff_core::weights::build_audited;
use adiff_core::{Compat, NetInputs, NoiseSource};
use anyhow::{anyhow, bail, Result};
use candle_core::{DType, Device, Tensor};

/// Runs one case of this family.
pub fn run(case: &Case) -> Result<RunResult> {
    match case.component() {
        "UNet1d" => run_unet(case, false),
        "UNetConditional1d" => run_unet(case, true),
        "merge_magnitude_channels" => run_merge(case),
        other => Ok(RunResult::Skip(format!(
            "component `{other}` is not a unet component"
        ))),
    }
}

/// The network under test, plain or conditional.
enum Model {
    Plain(UNet1d),
    Conditional(UNetConditional1d),
}

fn build(case: &Case, conditional: bool) -> Result<Model> {
    let node = Args::of_node(case, "constructor", case.constructor())?;
    let class = if conditional {
        "UNetConditional1d"
    } else {
        "UNet1d"
    };
    if node.name() != class {
        bail!("{}: expected class {class}", node.what());
    }
    let source = format!("fixture {}", case.name);
    let (d, dt) = (Device::Cpu, DType::F32);
    let model = if conditional {
        let cfg = parse_kwargs!(node, UNetConditional1dConfig);
        let net = build_audited(case.weights(), source, dt, &d, |vb| {
            UNetConditional1d::new(&cfg, vb)
        })?;
        Model::Conditional(net.with_compat(Compat::V0_0_61))
    } else {
        let cfg = parse_kwargs!(node, UNet1dConfig);
        let net = build_audited(case.weights(), source, dt, &d, |vb| UNet1d::new(&cfg, vb))?;
        Model::Plain(net.with_compat(Compat::V0_0_61))
    };
    node.finish()?;
    Ok(model)
}

/// Reads the keyword arguments of a `forward` call into [`NetInputs`].
fn inputs_of(case: &Case, args: &Args, produced: &Outputs) -> Result<NetInputs> {
    let mut inputs = NetInputs::none();
    let tensor = |name: &str| -> Result<Option<Tensor>> {
        args.kw(name)
            .map(|v| {
                case.tensor_arg(v, produced)?
                    .ok_or_else(|| anyhow!("`{name}` = {v} is not a tensor"))
            })
            .transpose()
    };
    inputs.features = tensor("features")?;
    inputs.embedding = tensor("embedding")?;
    if let Some(value) = args.kw("channels_list") {
        let list = value
            .as_array()
            .ok_or_else(|| anyhow!("channels_list is not a list"))?;
        inputs.channels_list = list
            .iter()
            .map(|v| {
                case.tensor_arg(v, produced)?
                    .ok_or_else(|| anyhow!("channels_list entry {v} is not a tensor"))
            })
            .collect::<Result<_>>()?;
    }
    if let Some(v) = args.kw("embedding_scale") {
        inputs.embedding_scale = v.as_f64().ok_or_else(|| anyhow!("embedding_scale {v}"))?;
    }
    if let Some(v) = args.kw("embedding_mask_proba") {
        inputs.embedding_mask_proba = v
            .as_f64()
            .ok_or_else(|| anyhow!("embedding_mask_proba {v}"))?;
    }
    Ok(inputs)
}

fn run_unet(case: &Case, conditional: bool) -> Result<RunResult> {
    let model = build(case, conditional)?;
    let mut noise = case.noise()?;
    let mut produced = Outputs::new();
    for (i, call) in case.calls().iter().enumerate() {
        let args = Args::of_call(case, i, call)?;
        if args.name() != "forward" {
            bail!("{}: unsupported method", args.what());
        }
        let x = case
            .tensor_arg(args.need(0, "x")?, &produced)?
            .ok_or_else(|| anyhow!("{}: x is not a tensor", args.what()))?;
        let time = args
            .get(1, "time")?
            .map(|a| case.tensor_arg(a, &produced))
            .transpose()?
            .flatten();
        let inputs = inputs_of(case, &args, &produced)?;
        args.finish()?;
        let y = match &model {
            Model::Plain(net) => net.forward(&x, time.as_ref(), &inputs)?,
            Model::Conditional(net) => net.forward(
                &x,
                time.as_ref(),
                &inputs,
                &mut noise as &mut dyn NoiseSource,
            )?,
        };
        let name = call["outputs"][0]
            .as_str()
            .ok_or_else(|| anyhow!("call without an output name"))?;
        produced.insert(name.to_string(), y);
    }
    if noise.remaining() != 0 {
        bail!("{} recorded draws were not used", noise.remaining());
    }
    Ok(RunResult::Done(produced))
}

fn run_merge(case: &Case) -> Result<RunResult> {
    case.no_constructor()?;
    let mut produced = Outputs::new();
    for (i, call) in case.calls().iter().enumerate() {
        let args = Args::of_call(case, i, call)?;
        if args.name() != "merge_magnitude_channels" {
            bail!("{}: unsupported function", args.what());
        }
        let x: Tensor = case
            .tensor_arg(args.need(0, "x")?, &produced)?
            .ok_or_else(|| anyhow!("merge_magnitude_channels needs x"))?;
        args.finish()?;
        let name = call["outputs"][0]
            .as_str()
            .ok_or_else(|| anyhow!("call without an output name"))?;
        produced.insert(name.to_string(), merge_magnitude_channels(&x)?);
    }
    Ok(RunResult::Done(produced))
}
