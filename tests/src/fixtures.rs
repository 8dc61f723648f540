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
use serde_json::{Map, Value};
use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet, HashMap};
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

    /// Fails unless the case has no constructor (a plain function such as `resample`).
    pub fn no_constructor(&self) -> Result<()> {
        if !self.constructor().is_null() {
            bail!(
                "case {}: a constructor {} for a plain function is not used by the harness",
                self.name,
                self.constructor()
            );
        }
        Ok(())
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

/// The arguments of one call (`args` and `kwargs`) or of one constructor node (`kwargs`), with a
/// record of which were read: [`Args::finish`] fails, naming the case, the call or constructor
/// and every argument, when one was given but never read. A runner that does not pass an argument
/// on must therefore fail the case rather than compute it with a default (issue 24).
pub struct Args<'a> {
    what: String,
    name: String,
    args: &'a [Value],
    kwargs: Option<&'a Map<String, Value>>,
    read_args: RefCell<Vec<bool>>,
    read_kwargs: RefCell<BTreeSet<String>>,
}

/// The keys a call object may have besides its arguments.
const CALL_KEYS: [&str; 5] = ["method", "function", "args", "kwargs", "outputs"];

impl<'a> Args<'a> {
    fn new(what: String, name: &str, args: &'a Value, kwargs: &'a Value) -> Result<Self> {
        let args = match args {
            Value::Null => &[][..],
            Value::Array(a) => a.as_slice(),
            v => bail!("{what}: `args` is not a list: {v}"),
        };
        let kwargs = match kwargs {
            Value::Null => None,
            Value::Object(m) => Some(m),
            v => bail!("{what}: `kwargs` is not an object: {v}"),
        };
        Ok(Self {
            what,
            name: name.to_string(),
            read_args: RefCell::new(vec![false; args.len()]),
            args,
            kwargs,
            read_kwargs: RefCell::new(BTreeSet::new()),
        })
    }

    /// The arguments of call `index` of `case` (`{"method"|"function", "args", "kwargs",
    /// "outputs"}`); any other key in the call is refused.
    pub fn of_call(case: &Case, index: usize, call: &'a Value) -> Result<Self> {
        let name = call["method"]
            .as_str()
            .or_else(|| call["function"].as_str())
            .unwrap_or("?");
        let what = format!("case {}: call {index} (`{name}`)", case.name);
        let Some(obj) = call.as_object() else {
            bail!("{what}: the call is not an object");
        };
        if let Some(k) = obj.keys().find(|k| !CALL_KEYS.contains(&k.as_str())) {
            bail!("{what}: the harness does not know the call key `{k}`");
        }
        Self::new(what, name, &call["args"], &call["kwargs"])
    }

    /// The keyword arguments of the constructor node `{"class", "kwargs"}` at `path` (`constructor`,
    /// `constructor.diffusion`, ...); any key besides `class` and `kwargs` is refused.
    pub fn of_node(case: &Case, path: &str, node: &'a Value) -> Result<Self> {
        let class = node["class"].as_str().unwrap_or("?");
        let what = format!("case {}: constructor `{path}` ({class})", case.name);
        let Some(obj) = node.as_object() else {
            bail!("{what}: not a constructor node: {node}");
        };
        if let Some(k) = obj.keys().find(|k| *k != "class" && *k != "kwargs") {
            bail!("{what}: the harness does not know the constructor key `{k}`");
        }
        Self::new(what, class, &Value::Null, &node["kwargs"])
    }

    /// The method or function of a call, the class of a constructor node.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The case, call or constructor these arguments belong to, for error messages.
    pub fn what(&self) -> &str {
        &self.what
    }

    /// Positional argument `i`, marked read (`None` when there are fewer).
    pub fn pos(&self, i: usize) -> Option<&'a Value> {
        let v = self.args.get(i)?;
        self.read_args.borrow_mut()[i] = true;
        Some(v)
    }

    /// Keyword argument `name`, marked read; `None` when absent or `null` (Python's `None`).
    pub fn kw(&self, name: &str) -> Option<&'a Value> {
        let v = self.kwargs?.get(name)?;
        self.read_kwargs.borrow_mut().insert(name.to_string());
        Some(v).filter(|v| !v.is_null())
    }

    /// The parameter at position `i` called `name`, given either way (`None` when absent or
    /// `null`); given both ways is an error, as in Python.
    pub fn get(&self, i: usize, name: &str) -> Result<Option<&'a Value>> {
        let by_name = self.kwargs.is_some_and(|m| m.contains_key(name));
        if by_name && i < self.args.len() {
            bail!(
                "{}: `{name}` given both by position and by keyword",
                self.what
            );
        }
        Ok(match self.pos(i) {
            Some(v) => Some(v).filter(|v| !v.is_null()),
            None => self.kw(name),
        })
    }

    /// [`Args::get`], failing when the parameter is absent.
    pub fn need(&self, i: usize, name: &str) -> Result<&'a Value> {
        self.get(i, name)?
            .ok_or_else(|| anyhow!("{}: missing argument `{name}`", self.what))
    }

    /// The keyword argument `name` as a constructor node (`{"class", "kwargs"}`), failing when absent.
    pub fn child(&self, name: &str) -> Result<&'a Value> {
        self.kw(name)
            .ok_or_else(|| anyhow!("{}: missing keyword argument `{name}`", self.what))
    }

    /// All keyword arguments as one JSON object (empty when none), for a parser that reads them
    /// all; call [`Args::parsed_kwargs`] with what it parsed to mark them read.
    pub fn kwargs_value(&self) -> Value {
        Value::Object(self.kwargs.cloned().unwrap_or_default())
    }

    /// Marks every keyword argument read, after checking that each one (and, recursively, each
    /// key of a nested object such as a `{"class", "kwargs"}` node) appears in `known`, the
    /// parsed configuration serialised back: a parser that ignores unknown fields otherwise drops
    /// them silently. [`parse_kwargs!`](crate::parse_kwargs) does both steps.
    pub fn parsed_kwargs(&self, known: &Value) -> Result<()> {
        let mut unknown = Vec::new();
        unknown_keys(&self.kwargs_value(), known, "", &mut unknown);
        if !unknown.is_empty() {
            bail!(
                "{}: the parsed configuration drops keyword argument(s) {}",
                self.what,
                quoted(&unknown)
            );
        }
        if let Some(m) = self.kwargs {
            self.read_kwargs.borrow_mut().extend(m.keys().cloned());
        }
        Ok(())
    }

    /// Fails when an argument was given but never read, naming the case, call and arguments.
    pub fn finish(self) -> Result<()> {
        let read = self.read_kwargs.borrow();
        let mut unused: Vec<String> = self
            .kwargs
            .map(|m| m.keys().filter(|k| !read.contains(*k)).cloned().collect())
            .unwrap_or_default();
        let positions: Vec<String> = self
            .read_args
            .borrow()
            .iter()
            .enumerate()
            .filter(|(_, r)| !**r)
            .map(|(i, _)| format!("#{i}"))
            .collect();
        if unused.is_empty() && positions.is_empty() {
            return Ok(());
        }
        let mut parts = Vec::new();
        if !unused.is_empty() {
            unused.sort();
            parts.push(format!("keyword argument(s) {}", quoted(&unused)));
        }
        if !positions.is_empty() {
            parts.push(format!("positional argument(s) {}", positions.join(", ")));
        }
        bail!(
            "{}: the harness does not use {}; refusing to compute the case without them",
            self.what,
            parts.join(" and ")
        )
    }
}

fn quoted(names: &[String]) -> String {
    names
        .iter()
        .map(|n| format!("`{n}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Collects the keys of `given` (recursively through objects and lists) that `known` lacks,
/// as paths under `prefix`.
pub fn unknown_keys(given: &Value, known: &Value, prefix: &str, out: &mut Vec<String>) {
    if let (Some(g), Some(k)) = (given.as_object(), known.as_object()) {
        for (key, v) in g {
            let path = if prefix.is_empty() {
                key.clone()
            } else {
                format!("{prefix}.{key}")
            };
            match k.get(key) {
                Some(kv) => unknown_keys(v, kv, &path, out),
                None => out.push(path),
            }
        }
    } else if let (Some(g), Some(k)) = (given.as_array(), known.as_array()) {
        for (i, (gv, kv)) in g.iter().zip(k).enumerate() {
            unknown_keys(gv, kv, &format!("{prefix}[{i}]"), out);
        }
    }
}

/// `parse_kwargs!(args, T)`: parses every keyword argument of [`Args`] `args` as the config `T`
/// (serde), checks with [`Args::parsed_kwargs`] that none was dropped, and marks them all read.
/// `parse_kwargs!(args, T, parser)` parses with `parser(&Value) -> Result<T, _>` instead.
#[macro_export]
macro_rules! parse_kwargs {
    ($args:expr, $t:ty) => {
        $crate::parse_kwargs!($args, $t, |v: &serde_json::Value| serde_json::from_value::<
            $t,
        >(v.clone()))
    };
    ($args:expr, $t:ty, $parser:expr) => {{
        let args: &$crate::fixtures::Args = &$args;
        let parsed: $t = ($parser)(&args.kwargs_value())
            .map_err(|e| anyhow::anyhow!("{}: parsing the keyword arguments: {e}", args.what()))?;
        let known = serde_json::to_value(&parsed).map_err(|e| {
            anyhow::anyhow!(
                "{}: serialising the parsed keyword arguments: {e}",
                args.what()
            )
        })?;
        args.parsed_kwargs(&known)?;
        parsed
    }};
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
    use adiff_core::audio::sinc;
    use serde_json::json;

    /// `[1, 1, 32]` samples of `sin(0.3 n) + 0.05 n` (docs/reference.md §4.9), f32.
    fn signal() -> Tensor {
        let v: Vec<f32> = (0..32)
            .map(|n| ((0.3 * n as f64).sin() + 0.05 * n as f64) as f32)
            .collect();
        Tensor::from_vec(v, (1, 1, 32), &Device::Cpu).unwrap()
    }

    /// An in-memory case of `component` with `calls`, the tensor `input.x`, and `output.y` =
    /// `expected` (tolerance 1e-5).
    fn synthetic(name: &str, component: &str, constructor: Value, calls: Value, y: Tensor) -> Case {
        let json = json!({
            "component": component,
            "constructor": constructor,
            "calls": calls,
            "outputs": {"y": {}},
            "tolerance": {"output.y": {"max_abs": 1e-5, "rel_l2": 1e-5}},
        });
        let tensors = HashMap::from([
            ("input.x".to_string(), signal()),
            ("output.y".to_string(), y),
        ]);
        Case {
            name: name.to_string(),
            json,
            tensors,
        }
    }

    fn run(case: &Case) -> CaseReport {
        judge(case, crate::runners::runner_for(case.component()))
    }

    fn downsample_case(kwargs: Value, expected: Tensor) -> Case {
        let calls = json!([{"function": "downsample", "args": ["input.x", 2], "kwargs": kwargs,
                            "outputs": ["output.y"]}]);
        synthetic(
            "synthetic_downsample",
            "resample",
            Value::Null,
            calls,
            expected,
        )
    }

    #[test]
    fn downsample_keywords_reach_the_resampler() {
        // The call: downsample(x, 2, rolloff=0.95, lowpass_filter_width=3).
        let x = signal();
        let kwargs = json!({"rolloff": 0.95, "lowpass_filter_width": 3});
        let right = sinc::resample(&x, 2, 1, 0.95, 3).unwrap();
        let r = run(&downsample_case(kwargs.clone(), right));
        assert_eq!(r.status, "pass", "{:?}", r.reason);
        // Computed with the defaults, the same call would be far off: the case must fail.
        let defaults = sinc::downsample(&x, 2).unwrap();
        let r = run(&downsample_case(kwargs, defaults));
        assert_eq!(r.status, "fail", "{:?}", r.reason);
        let calls = json!([{"function": "upsample", "args": ["input.x", 3],
                            "kwargs": {"lowpass_filter_width": 4}, "outputs": ["output.y"]}]);
        let up = sinc::resample(&x, 1, 3, sinc::ROLLOFF, 4).unwrap();
        let r = run(&synthetic(
            "synthetic_up",
            "resample",
            Value::Null,
            calls,
            up,
        ));
        assert_eq!(r.status, "pass", "{:?}", r.reason);
    }

    #[test]
    fn an_unused_keyword_fails_the_case() {
        let x = signal();
        let expected = sinc::downsample(&x, 2).unwrap();
        let r = run(&downsample_case(
            json!({"antialias": true}),
            expected.clone(),
        ));
        assert_eq!(r.status, "fail");
        let reason = r.reason.unwrap();
        for part in [
            "synthetic_downsample",
            "call 0",
            "`downsample`",
            "`antialias`",
        ] {
            assert!(reason.contains(part), "{part:?} not in {reason:?}");
        }
        // The same case without the keyword passes, so the keyword alone failed it.
        assert_eq!(run(&downsample_case(json!({}), expected)).status, "pass");
    }

    #[test]
    fn an_unused_positional_argument_fails_the_case() {
        let x = signal();
        let calls = json!([{"function": "upsample", "args": ["input.x", 2, 0.9],
                            "outputs": ["output.y"]}]);
        let y = sinc::upsample(&x, 2).unwrap();
        let r = run(&synthetic(
            "synthetic_pos",
            "resample",
            Value::Null,
            calls,
            y,
        ));
        assert_eq!(r.status, "fail");
        assert!(r
            .reason
            .as_deref()
            .unwrap()
            .contains("positional argument(s) #2"));
        // resample takes rolloff by position, as the reference does.
        let calls = json!([{"function": "resample", "args": ["input.x", 1, 2, 0.9],
                            "outputs": ["output.y"]}]);
        let y = sinc::resample(&x, 1, 2, 0.9, sinc::LOWPASS_FILTER_WIDTH).unwrap();
        let r = run(&synthetic(
            "synthetic_pos",
            "resample",
            Value::Null,
            calls,
            y,
        ));
        assert_eq!(r.status, "pass", "{:?}", r.reason);
    }

    #[test]
    fn an_unused_constructor_keyword_fails_the_case() {
        let x = Tensor::new(&[0.5f32, 1.0], &Device::Cpu).unwrap();
        let emb = adiff_core::models::embedding::SinusoidalEmbedding::new(4).unwrap();
        let y = emb.forward(&x).unwrap();
        let calls = json!([{"method": "forward", "args": ["input.x"], "outputs": ["output.y"]}]);
        let make = |kwargs: Value| {
            let mut c = synthetic(
                "synthetic_embedding",
                "SinusoidalEmbedding",
                json!({"class": "SinusoidalEmbedding", "kwargs": kwargs}),
                calls.clone(),
                y.clone(),
            );
            c.tensors.insert("input.x".into(), x.clone());
            c
        };
        assert_eq!(run(&make(json!({"dim": 4}))).status, "pass");
        let r = run(&make(json!({"dim": 4, "theta": 10000})));
        assert_eq!(r.status, "fail");
        let reason = r.reason.unwrap();
        assert!(reason.contains("constructor `constructor`") && reason.contains("`theta`"));
        // A function case with a constructor is refused too.
        let calls = json!([{"function": "downsample", "args": ["input.x", 2],
                            "outputs": ["output.y"]}]);
        let c = synthetic(
            "synthetic_ctor",
            "resample",
            json!({"class": "X", "kwargs": {}}),
            calls,
            sinc::downsample(&signal(), 2).unwrap(),
        );
        assert_eq!(run(&c).status, "fail");
    }

    #[test]
    fn args_record_what_was_read() {
        let case = synthetic("c", "resample", Value::Null, json!([]), signal());
        let call = json!({"function": "f", "args": [1, 2], "kwargs": {"a": 1, "b": null}});
        let args = Args::of_call(&case, 3, &call).unwrap();
        assert_eq!(args.need(0, "p").unwrap(), &json!(1));
        assert_eq!(args.kw("b"), None); // `None` in Python: read, but absent
        let err = format!("{:#}", args.finish().unwrap_err());
        assert!(err.contains("case c: call 3 (`f`)"), "{err}");
        assert!(
            err.contains("`a`") && !err.contains("`b`") && err.contains("#1"),
            "{err}"
        );
        // Given both ways is an error; everything read finishes cleanly.
        let args = Args::of_call(&case, 0, &call).unwrap();
        assert!(args.get(1, "a").is_err());
        let args = Args::of_call(&case, 0, &call).unwrap();
        args.pos(1);
        args.get(0, "p").unwrap();
        args.kw("a");
        args.kw("b");
        args.finish().unwrap();
        // Unknown call keys are refused.
        let call = json!({"function": "f", "args": [], "kwarg": {"a": 1}});
        assert!(Args::of_call(&case, 0, &call).is_err());
    }

    #[test]
    fn parsed_kwargs_catch_keys_a_parser_drops() {
        let case = synthetic("c", "x", Value::Null, json!([]), signal());
        let node = json!({"class": "M", "kwargs": {"a": 1,
            "dist": {"class": "D", "kwargs": {"mean": 0, "typo": 1}}}});
        let args = Args::of_node(&case, "constructor", &node).unwrap();
        // What a lenient parser serialises back: `typo` was dropped.
        let known = json!({"a": 1, "b": 2, "dist": {"class": "D", "kwargs": {"mean": 0}}});
        let err = format!("{:#}", args.parsed_kwargs(&known).unwrap_err());
        assert!(err.contains("`dist.kwargs.typo`"), "{err}");
        let known = json!({"a": 1, "dist": {"class": "D", "kwargs": {"mean": 0, "typo": 1}}});
        args.parsed_kwargs(&known).unwrap();
        args.finish().unwrap();
        // The UNet1d config ignores unknown fields; the harness must not.
        let node = json!({"class": "UNet1d", "kwargs": {"in_channels": 1, "channel": 8}});
        let args = Args::of_node(&case, "constructor", &node).unwrap();
        let parsed = (|| -> Result<()> {
            let _ = crate::parse_kwargs!(args, adiff_core::unet::UNet1dConfig);
            Ok(())
        })();
        let err = format!("{:#}", parsed.unwrap_err());
        assert!(
            err.contains("`channel`") && err.contains("constructor"),
            "{err}"
        );
    }

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
