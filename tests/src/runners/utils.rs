//! Fixture runner for the reference's `utils.py` resampler (`resample`, `downsample`, `upsample`)
//! and `modules.py::SinusoidalEmbedding`, audio-diffusion-pytorch 0.0.61.
//!
//! Every argument of every call (and of the constructor) is read through [`Args`]: one the runner
//! does not pass on fails the case.

use crate::fixtures::{Args, Case, Outputs, RunResult};
use adiff_core::audio::sinc;
use adiff_core::models::embedding::SinusoidalEmbedding;
use anyhow::{anyhow, bail, Context, Result};
use candle_core::Tensor;
use serde_json::Value;

/// Runs one case of this family.
pub fn run(case: &Case) -> Result<RunResult> {
    match case.component() {
        "resample" => {
            case.no_constructor()?;
            run_calls(case, |args, produced| resample_call(case, args, produced))
        }
        "SinusoidalEmbedding" => {
            let node = Args::of_node(case, "constructor", case.constructor())?;
            if node.name() != "SinusoidalEmbedding" {
                bail!("{}: expected class SinusoidalEmbedding", node.what());
            }
            let dim = usize_of(node.need(0, "dim")?).context("constructor kwarg `dim`")?;
            node.finish()?;
            let emb = SinusoidalEmbedding::new(dim)?;
            run_calls(case, |args, produced| {
                let x = tensor(case, args.need(0, "x")?, produced)?;
                Ok(emb.forward(&x)?)
            })
        }
        other => Ok(RunResult::Skip(format!(
            "component `{other}` is not a utils component"
        ))),
    }
}

/// Makes every call in order, storing each call's single output under its fixture name; every
/// argument of a call must be read by `call` ([`Args::finish`]).
fn run_calls(
    case: &Case,
    mut call: impl FnMut(&Args, &Outputs) -> Result<Tensor>,
) -> Result<RunResult> {
    let mut produced = Outputs::new();
    for (i, c) in case.calls().iter().enumerate() {
        let args = Args::of_call(case, i, c)?;
        let y = call(&args, &produced).with_context(|| format!("call {i}"))?;
        args.finish()?;
        let outputs = c["outputs"].as_array().map(Vec::as_slice).unwrap_or(&[]);
        let [name] = outputs else {
            bail!(
                "call {i} must name exactly one output, names {}",
                c["outputs"]
            );
        };
        let name = name
            .as_str()
            .ok_or_else(|| anyhow!("call {i}: bad output name {name}"))?;
        let key = if name.starts_with("output.") {
            name.to_string()
        } else {
            format!("output.{name}")
        };
        produced.insert(key, y);
    }
    Ok(RunResult::Done(produced))
}

fn tensor(case: &Case, v: &Value, produced: &Outputs) -> Result<Tensor> {
    case.tensor_arg(v, produced)?
        .ok_or_else(|| anyhow!("argument {v} is not a tensor"))
}

fn usize_of(v: &Value) -> Result<usize> {
    v.as_u64()
        .map(|u| u as usize)
        .ok_or_else(|| anyhow!("expected a non-negative integer, got {v}"))
}

/// `rolloff` and `lowpass_filter_width` by keyword or, with `pos = Some(p)`, at positions `p` and
/// `p + 1`; the reference defaults (0.99, 6) when absent.
fn filter_args(args: &Args, pos: Option<usize>) -> Result<(f64, usize)> {
    let get = |i: usize, name: &str| match pos {
        Some(p) => args.get(p + i, name),
        None => Ok(args.kw(name)),
    };
    let rolloff = match get(0, "rolloff")? {
        Some(v) => v
            .as_f64()
            .ok_or_else(|| anyhow!("rolloff {v} is not a number"))?,
        None => sinc::ROLLOFF,
    };
    let width = match get(1, "lowpass_filter_width")? {
        Some(v) => usize_of(v).context("lowpass_filter_width")?,
        None => sinc::LOWPASS_FILTER_WIDTH,
    };
    Ok((rolloff, width))
}

/// `downsample(x, factor, **kwargs)`, `upsample(x, factor, **kwargs)` (the kwargs go on to
/// `resample`) or `resample(x, factor_in, factor_out, rolloff, lowpass_filter_width)`, arguments
/// positional or keyword as the reference accepts them.
fn resample_call(case: &Case, args: &Args, produced: &Outputs) -> Result<Tensor> {
    let x = tensor(case, args.need(0, "waveforms")?, produced)?;
    let function = args.name();
    Ok(match function {
        "downsample" | "upsample" => {
            let factor = usize_of(args.need(1, "factor")?).context("factor")?;
            // `**kwargs` only: rolloff and the width cannot be given by position.
            let (rolloff, width) = filter_args(args, None)?;
            if function == "downsample" {
                sinc::downsample_with(&x, factor, rolloff, width)?
            } else {
                sinc::upsample_with(&x, factor, rolloff, width)?
            }
        }
        "resample" => {
            let fi = usize_of(args.need(1, "factor_in")?).context("factor_in")?;
            let fo = usize_of(args.need(2, "factor_out")?).context("factor_out")?;
            let (rolloff, width) = filter_args(args, Some(3))?;
            sinc::resample(&x, fi, fo, rolloff, width)?
        }
        other => bail!("unknown utils function `{other}`"),
    })
}
