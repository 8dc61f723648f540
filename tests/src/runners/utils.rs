//! Fixture runner for the reference's `utils.py` resampler (`resample`, `downsample`, `upsample`)
//! and `modules.py::SinusoidalEmbedding`, audio-diffusion-pytorch 0.0.61.

use crate::fixtures::{Case, Outputs, RunResult};
use adiff_core::audio::sinc;
use adiff_core::models::embedding::SinusoidalEmbedding;
use anyhow::{anyhow, bail, Context, Result};
use candle_core::Tensor;
use serde_json::Value;

/// Runs one case of this family.
pub fn run(case: &Case) -> Result<RunResult> {
    match case.component() {
        "resample" => run_calls(case, |call, produced| resample_call(case, call, produced)),
        "SinusoidalEmbedding" => {
            let dim = usize_of(&case.constructor()["kwargs"]["dim"])
                .context("constructor kwarg `dim`")?;
            let emb = SinusoidalEmbedding::new(dim)?;
            run_calls(case, |call, produced| {
                if call["method"].as_str() != Some("forward") {
                    bail!("SinusoidalEmbedding has no method {}", call["method"]);
                }
                let x = first_tensor(case, call, produced)?;
                Ok(emb.forward(&x)?)
            })
        }
        other => Ok(RunResult::Skip(format!(
            "component `{other}` is not a utils component"
        ))),
    }
}

/// Makes every call in order, storing each call's single output under its fixture name.
fn run_calls(
    case: &Case,
    mut call: impl FnMut(&Value, &Outputs) -> Result<Tensor>,
) -> Result<RunResult> {
    let mut produced = Outputs::new();
    for (i, c) in case.calls().iter().enumerate() {
        let y = call(c, &produced).with_context(|| format!("call {i}"))?;
        let name = c["outputs"][0]
            .as_str()
            .ok_or_else(|| anyhow!("call {i} names no output"))?;
        let key = if name.starts_with("output.") {
            name.to_string()
        } else {
            format!("output.{name}")
        };
        produced.insert(key, y);
    }
    Ok(RunResult::Done(produced))
}

fn first_tensor(case: &Case, call: &Value, produced: &Outputs) -> Result<Tensor> {
    case.tensor_arg(&call["args"][0], produced)?
        .ok_or_else(|| anyhow!("first argument is not a tensor"))
}

fn usize_of(v: &Value) -> Result<usize> {
    v.as_u64()
        .map(|u| u as usize)
        .ok_or_else(|| anyhow!("expected a non-negative integer, got {v}"))
}

/// `downsample(x, f)`, `upsample(x, f)` or `resample(x, factor_in, factor_out, rolloff, width)`,
/// arguments positional or keyword as the reference accepts them.
fn resample_call(case: &Case, call: &Value, produced: &Outputs) -> Result<Tensor> {
    let x = first_tensor(case, call, produced)?;
    let args = call["args"].as_array().map(Vec::as_slice).unwrap_or(&[]);
    let kw = &call["kwargs"];
    let arg = |pos: usize, name: &str| -> Option<&Value> {
        args.get(pos)
            .or_else(|| kw.get(name))
            .filter(|v| !v.is_null())
    };
    let function = call["function"].as_str().unwrap_or("");
    Ok(match function {
        "downsample" => sinc::downsample(
            &x,
            usize_of(arg(1, "factor").ok_or_else(|| anyhow!("no factor"))?)?,
        )?,
        "upsample" => sinc::upsample(
            &x,
            usize_of(arg(1, "factor").ok_or_else(|| anyhow!("no factor"))?)?,
        )?,
        "resample" => {
            let fi = usize_of(arg(1, "factor_in").ok_or_else(|| anyhow!("no factor_in"))?)?;
            let fo = usize_of(arg(2, "factor_out").ok_or_else(|| anyhow!("no factor_out"))?)?;
            let rolloff = arg(3, "rolloff")
                .and_then(Value::as_f64)
                .unwrap_or(sinc::ROLLOFF);
            let width = match arg(4, "lowpass_filter_width") {
                Some(v) => usize_of(v)?,
                None => sinc::LOWPASS_FILTER_WIDTH,
            };
            sinc::resample(&x, fi, fo, rolloff, width)?
        }
        other => bail!("unknown utils function `{other}`"),
    })
}
