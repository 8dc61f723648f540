//! Fixture runner for `UNet1d`, `UNetConditional1d` and `merge_magnitude_channels`
//! (audio-diffusion-pytorch 0.0.61 `modules.py`), built in the 0.0.61-compatibility mode.

use crate::fixtures::{Case, Outputs, RunResult};
use adiff_core::unet::{merge_magnitude_channels, UNet1dConfig, UNetConditional1dConfig};
use adiff_core::unet::{UNet1d, UNetConditional1d};
use adiff_core::weights::build_audited;
use adiff_core::{Compat, NetInputs, NoiseSource};
use anyhow::{anyhow, bail, Context, Result};
use candle_core::{DType, Device, Tensor};
use serde_json::Value;

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
    let kwargs = case.constructor()["kwargs"].clone();
    let source = format!("fixture {}", case.name);
    let (d, dt) = (Device::Cpu, DType::F32);
    Ok(if conditional {
        let cfg: UNetConditional1dConfig =
            serde_json::from_value(kwargs).context("UNetConditional1d kwargs")?;
        let net = build_audited(case.weights(), source, dt, &d, |vb| {
            UNetConditional1d::new(&cfg, vb)
        })?;
        Model::Conditional(net.with_compat(Compat::V0_0_61))
    } else {
        let cfg: UNet1dConfig = serde_json::from_value(kwargs).context("UNet1d kwargs")?;
        let net = build_audited(case.weights(), source, dt, &d, |vb| UNet1d::new(&cfg, vb))?;
        Model::Plain(net.with_compat(Compat::V0_0_61))
    })
}

/// Reads the keyword arguments of a `forward` call into [`NetInputs`].
fn inputs_of(case: &Case, kwargs: &Value, produced: &Outputs) -> Result<NetInputs> {
    let mut inputs = NetInputs::none();
    let Some(map) = kwargs.as_object() else {
        return Ok(inputs);
    };
    for (key, value) in map {
        match key.as_str() {
            "features" => inputs.features = case.tensor_arg(value, produced)?,
            "embedding" => inputs.embedding = case.tensor_arg(value, produced)?,
            "channels_list" => {
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
            "embedding_scale" => {
                inputs.embedding_scale = value.as_f64().ok_or_else(|| anyhow!("embedding_scale"))?
            }
            "embedding_mask_proba" => {
                inputs.embedding_mask_proba = value
                    .as_f64()
                    .ok_or_else(|| anyhow!("embedding_mask_proba"))?
            }
            other => bail!("unknown forward keyword `{other}`"),
        }
    }
    Ok(inputs)
}

fn run_unet(case: &Case, conditional: bool) -> Result<RunResult> {
    let model = build(case, conditional)?;
    let mut noise = case.noise()?;
    let mut produced = Outputs::new();
    for call in case.calls() {
        if call["method"].as_str() != Some("forward") {
            bail!("unsupported method {}", call["method"]);
        }
        let args = call["args"].as_array().map(Vec::as_slice).unwrap_or(&[]);
        let x = args
            .first()
            .map(|a| case.tensor_arg(a, &produced))
            .transpose()?
            .flatten()
            .ok_or_else(|| anyhow!("forward needs x"))?;
        let time = args
            .get(1)
            .map(|a| case.tensor_arg(a, &produced))
            .transpose()?
            .flatten();
        let inputs = inputs_of(case, &call["kwargs"], &produced)?;
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
    let mut produced = Outputs::new();
    for call in case.calls() {
        let x: Tensor = case
            .tensor_arg(&call["args"][0], &produced)?
            .ok_or_else(|| anyhow!("merge_magnitude_channels needs x"))?;
        let name = call["outputs"][0]
            .as_str()
            .ok_or_else(|| anyhow!("call without an output name"))?;
        produced.insert(name.to_string(), merge_magnitude_channels(&x)?);
    }
    Ok(RunResult::Done(produced))
}
