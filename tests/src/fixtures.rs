//! The parity harness: discovers every case in the fixtures folder, runs it through the runner of
//! its component, compares with the recorded outputs within the case's own tolerance, and reports.
//!
//! Folder: `$ADIFF_FIXTURES`, else `../shared/fixtures` beside the workspace root.
//! Report: when `$ADIFF_FIXTURE_REPORT` names a file, one JSON object per case and line is appended:
//! `{"name", "component", "status": "pass"|"fail"|"skip", "max_abs", "rel_l2", "reason"}`.
//! `$ADIFF_FIXTURE_FILTER` (a substring of the case name) narrows a run while developing.

use adiff_core::ReplayNoise;
use anyhow::{anyhow, bail, Context, Result};
use candle_core::{DType, Device, Tensor};
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::path::{Path, PathBuf};

/// Tensors a runner produced, keyed by their full fixture name (`output.y`).
pub type Outputs = BTreeMap<String, Tensor>;

/// What a runner did with a case.
pub enum RunResult {
    /// The calls ran; these are the outputs to compare.
    Done(Outputs),
    /// The component (or this configuration of it) has no implementation yet.
    Skip(String),
}

/// A runner executes every call of a case and returns the outputs.
pub type Runner = fn(&Case) -> Result<RunResult>;

/// One fixture case: the parsed JSON and the tensors of its `.safetensors` file.
pub struct Case {
    /// Base name of the case (`unet_attention_time`).
    pub name: String,
    /// The whole JSON description.
    pub json: Value,
    tensors: HashMap<String, Tensor>,
}

impl Case {
    /// Loads `<dir>/<name>.json` and `<dir>/<name>.safetensors`.
    pub fn load(json_path: &Path) -> Result<Self> {
        let name = json_path
            .file_stem()
            .and_then(|s| s.to_str())
            .ok_or_else(|| anyhow!("bad case file name {}", json_path.display()))?
            .to_string();
        let text = std::fs::read_to_string(json_path)
            .with_context(|| format!("reading {}", json_path.display()))?;
        let json: Value = serde_json::from_str(&text)
            .with_context(|| format!("parsing {}", json_path.display()))?;
        let st = json_path.with_extension("safetensors");
        let tensors = candle_core::safetensors::load(&st, &Device::Cpu)
            .with_context(|| format!("loading tensors {}", st.display()))?;
        Ok(Self {
            name,
            json,
            tensors,
        })
    }

    /// The reference component (`UNet1d`, `DiffusionSampler`, ...).
    pub fn component(&self) -> &str {
        self.json["component"].as_str().unwrap_or("")
    }

    /// The constructor tree `{"class", "kwargs"}` (null for plain functions).
    pub fn constructor(&self) -> &Value {
        &self.json["constructor"]
    }

    /// The calls to make, in order.
    pub fn calls(&self) -> &[Value] {
        self.json["calls"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or(&[])
    }

    /// A tensor of the file by its full name (`input.x`, `output.y`, `rng.000`).
    pub fn tensor(&self, name: &str) -> Result<Tensor> {
        self.tensors
            .get(name)
            .cloned()
            .ok_or_else(|| anyhow!("case {}: no tensor `{name}`", self.name))
    }

    /// The `weights.*` tensors with the `weights.` prefix stripped: the module's own state dict.
    pub fn weights(&self) -> HashMap<String, Tensor> {
        self.tensors
            .iter()
            .filter_map(|(k, v)| {
                k.strip_prefix("weights.")
                    .map(|k| (k.to_string(), v.clone()))
            })
            .collect()
    }

    /// The recorded random draws, in the order the reference made them.
    pub fn noise(&self) -> Result<ReplayNoise> {
        let draws = self.json["rng_draws"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or(&[]);
        let tensors = draws
            .iter()
            .map(|d| self.tensor(d["name"].as_str().unwrap_or("")))
            .collect::<Result<Vec<_>>>()?;
        Ok(ReplayNoise::new(tensors))
    }

    /// Resolves a call argument: `"input.x"` / `"output.y"` name a tensor (outputs of earlier calls
    /// first, then the file); anything else is not a tensor reference and gives `None`.
    pub fn tensor_arg(&self, v: &Value, produced: &Outputs) -> Result<Option<Tensor>> {
        match v.as_str() {
            Some(s) if s.starts_with("input.") || s.starts_with("output.") => {
                if let Some(t) = produced.get(s) {
                    return Ok(Some(t.clone()));
                }
                self.tensor(s).map(Some)
            }
            _ => Ok(None),
        }
    }

    fn expected_outputs(&self) -> Vec<String> {
        self.json["outputs"]
            .as_object()
            .map(|o| o.keys().map(|k| format!("output.{k}")).collect())
            .unwrap_or_default()
    }

    fn tolerance(&self, output: &str) -> Option<(f64, f64)> {
        let t = &self.json["tolerance"][output];
        Some((t["max_abs"].as_f64()?, t["rel_l2"].as_f64()?))
    }
}

/// The result of one case, as reported.
#[derive(Debug, Clone)]
pub struct CaseReport {
    pub name: String,
    pub component: String,
    pub status: &'static str,
    pub max_abs: Option<f64>,
    pub rel_l2: Option<f64>,
    pub reason: Option<String>,
}

impl CaseReport {
    fn to_json(&self) -> Value {
        serde_json::json!({
            "name": self.name, "component": self.component, "status": self.status,
            "max_abs": self.max_abs, "rel_l2": self.rel_l2, "reason": self.reason,
        })
    }
}

/// The fixtures folder: `$ADIFF_FIXTURES`, else `<workspace>/../shared/fixtures`.
pub fn fixtures_dir() -> PathBuf {
    match std::env::var_os("ADIFF_FIXTURES") {
        Some(d) => PathBuf::from(d),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/fixtures"),
    }
}

/// Every `*.json` in the folder, sorted by name.
pub fn discover(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut cases: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("reading fixtures folder {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    cases.sort();
    Ok(cases)
}

/// Element-wise comparison errors `(max_abs, rel_l2)` of `mine` against `reference`.
pub fn compare(mine: &Tensor, reference: &Tensor) -> Result<(f64, f64)> {
    if mine.dims() != reference.dims() {
        bail!("shape {:?}, reference {:?}", mine.dims(), reference.dims());
    }
    let a = mine.to_dtype(DType::F64)?.flatten_all()?.to_vec1::<f64>()?;
    let b = reference
        .to_dtype(DType::F64)?
        .flatten_all()?
        .to_vec1::<f64>()?;
    let mut max_abs = 0f64;
    let (mut diff2, mut ref2) = (0f64, 0f64);
    for (x, y) in a.iter().zip(&b) {
        let d = (x - y).abs();
        // A NaN anywhere must fail: f64::max would silently drop it.
        max_abs = if d.is_nan() || max_abs.is_nan() {
            f64::NAN
        } else {
            max_abs.max(d)
        };
        diff2 += d * d;
        ref2 += y * y;
    }
    let rel = if ref2 > 0.0 {
        (diff2 / ref2).sqrt()
    } else {
        diff2.sqrt()
    };
    Ok((max_abs, rel))
}

fn is_float(t: &Tensor) -> bool {
    matches!(
        t.dtype(),
        DType::F16 | DType::BF16 | DType::F32 | DType::F64
    )
}

/// Runs one case with `runner` (None: no implementation of its component) and judges it.
pub fn judge(case: &Case, runner: Option<Runner>) -> CaseReport {
    let mut report = CaseReport {
        name: case.name.clone(),
        component: case.component().to_string(),
        status: "fail",
        max_abs: None,
        rel_l2: None,
        reason: None,
    };
    let Some(runner) = runner else {
        report.status = "skip";
        report.reason = Some(format!(
            "no implementation of component `{}` yet",
            case.component()
        ));
        return report;
    };
    let outputs = match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| runner(case))) {
        Ok(Ok(RunResult::Done(o))) => o,
        Ok(Ok(RunResult::Skip(why))) => {
            report.status = "skip";
            report.reason = Some(why);
            return report;
        }
        Ok(Err(e)) => {
            report.reason = Some(format!("{e:#}"));
            return report;
        }
        Err(_) => {
            report.reason = Some("runner panicked".to_string());
            return report;
        }
    };
    let mut failures = Vec::new();
    let (mut worst_abs, mut worst_rel) = (0f64, 0f64);
    for name in case.expected_outputs() {
        let mut check = || -> Result<()> {
            let mine = outputs
                .get(&name)
                .ok_or_else(|| anyhow!("`{name}` was not produced"))?;
            let reference = case.tensor(&name)?;
            if is_float(&reference) {
                let (abs, rel) = compare(mine, &reference)?;
                worst_abs = if abs.is_nan() {
                    f64::NAN
                } else {
                    worst_abs.max(abs)
                };
                worst_rel = if rel.is_nan() {
                    f64::NAN
                } else {
                    worst_rel.max(rel)
                };
                let (tol_abs, tol_rel) = case
                    .tolerance(&name)
                    .ok_or_else(|| anyhow!("no tolerance for `{name}` in the case"))?;
                if !(abs <= tol_abs && rel <= tol_rel) {
                    bail!("`{name}`: max_abs {abs:.3e} (tolerance {tol_abs:.1e}), rel_l2 {rel:.3e} (tolerance {tol_rel:.1e})");
                }
            } else {
                let (abs, _) = compare(mine, &reference)?;
                if abs != 0.0 {
                    bail!("`{name}`: integer/bool output differs (max difference {abs})");
                }
            }
            Ok(())
        };
        if let Err(e) = check() {
            failures.push(format!("{e:#}"));
        }
    }
    report.max_abs = Some(worst_abs);
    report.rel_l2 = Some(worst_rel);
    if failures.is_empty() {
        report.status = "pass";
    } else {
        report.reason = Some(failures.join("; "));
    }
    report
}

/// Runs every case of the folder (optionally filtered by `$ADIFF_FIXTURE_FILTER`), appends the
/// report lines to `$ADIFF_FIXTURE_REPORT` if set, and returns the reports.
pub fn run_all(dir: &Path, runner_for: impl Fn(&str) -> Option<Runner>) -> Result<Vec<CaseReport>> {
    let filter = std::env::var("ADIFF_FIXTURE_FILTER").ok();
    let mut reports = Vec::new();
    for path in discover(dir)? {
        let stem = path
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or("")
            .to_string();
        if filter.as_deref().is_some_and(|f| !stem.contains(f)) {
            continue;
        }
        let report = match Case::load(&path) {
            Ok(case) => judge(&case, runner_for(case.component())),
            Err(e) => CaseReport {
                name: stem,
                component: String::new(),
                status: "fail",
                max_abs: None,
                rel_l2: None,
                reason: Some(format!("cannot load the case: {e:#}")),
            },
        };
        reports.push(report);
    }
    if let Some(file) = std::env::var_os("ADIFF_FIXTURE_REPORT") {
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&file)
            .with_context(|| format!("opening report {}", PathBuf::from(&file).display()))?;
        for r in &reports {
            writeln!(f, "{}", r.to_json())?;
        }
    }
    Ok(reports)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compare_measures_both_errors_and_catches_nan() {
        let d = Device::Cpu;
        let a = Tensor::new(&[1f32, 2.0, 2.0], &d).unwrap();
        let b = Tensor::new(&[1f32, 2.0, 3.0], &d).unwrap();
        let (abs, rel) = compare(&a, &b).unwrap();
        assert_eq!(abs, 1.0);
        assert!((rel - 1.0 / 14f64.sqrt()).abs() < 1e-12);
        let n = Tensor::new(&[1f32, f32::NAN, 3.0], &d).unwrap();
        assert!(compare(&n, &b).unwrap().0.is_nan());
        assert!(compare(&a, &Tensor::new(&[1f32], &d).unwrap()).is_err());
    }
}
