//! An auditing VarBuilder backend over a checkpoint's tensors: it records every key the model asks
//! for and checks its shape, so that after building the model all missing, unexpected and
//! mis-shaped keys are reported at once (docs/reference.md §2; STYLE rule 10).

use crate::{Error, Result};
use candle_core::{DType, Device, Shape, Tensor};
use candle_nn::var_builder::SimpleBackend;
use candle_nn::{Init, VarBuilder};
use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

/// One problem found while building a model from a checkpoint.
#[derive(Debug, Clone, PartialEq)]
enum Problem {
    Missing {
        key: String,
        expected: Vec<usize>,
    },
    Shape {
        key: String,
        expected: Vec<usize>,
        found: Vec<usize>,
    },
    Unexpected {
        key: String,
        found: Vec<usize>,
    },
}

impl Problem {
    fn into_error(self) -> Error {
        match self {
            Problem::Missing { key, expected } => Error::MissingKey { key, expected },
            Problem::Shape {
                key,
                expected,
                found,
            } => Error::ShapeMismatch {
                key,
                expected,
                found,
            },
            Problem::Unexpected { key, found } => Error::UnexpectedKey { key, found },
        }
    }
}

struct State {
    tensors: HashMap<String, Tensor>,
    requested: Mutex<HashSet<String>>,
    problems: Mutex<Vec<Problem>>,
}

struct AuditBackend(Arc<State>);

impl SimpleBackend for AuditBackend {
    fn get(
        &self,
        s: Shape,
        name: &str,
        _: Init,
        dtype: DType,
        dev: &Device,
    ) -> candle_core::Result<Tensor> {
        if let Ok(mut r) = self.0.requested.lock() {
            r.insert(name.to_string());
        }
        let problem = match self.0.tensors.get(name) {
            Some(t) if t.shape() == &s => return t.to_device(dev)?.to_dtype(dtype),
            Some(t) => Problem::Shape {
                key: name.to_string(),
                expected: s.dims().to_vec(),
                found: t.dims().to_vec(),
            },
            None => Problem::Missing {
                key: name.to_string(),
                expected: s.dims().to_vec(),
            },
        };
        if let Ok(mut p) = self.0.problems.lock() {
            p.push(problem);
        }
        // A placeholder so the build goes on and every problem is found; never used for compute.
        Tensor::zeros(s, dtype, dev)
    }

    fn get_unchecked(&self, name: &str, dtype: DType, dev: &Device) -> candle_core::Result<Tensor> {
        if let Ok(mut r) = self.0.requested.lock() {
            r.insert(name.to_string());
        }
        match self.0.tensors.get(name) {
            Some(t) => t.to_device(dev)?.to_dtype(dtype),
            None => candle_core::bail!("missing weight `{name}`"),
        }
    }

    fn contains_tensor(&self, name: &str) -> bool {
        self.0.tensors.contains_key(name)
    }
}

/// A checkpoint's tensors behind an auditing VarBuilder.
pub struct WeightAudit {
    state: Arc<State>,
    source: PathBuf,
}

impl WeightAudit {
    /// Audits `tensors`; `source` names them in errors (a file path, or e.g. `<in memory>`).
    pub fn new(tensors: HashMap<String, Tensor>, source: impl Into<PathBuf>) -> Self {
        Self {
            state: Arc::new(State {
                tensors,
                requested: Mutex::default(),
                problems: Mutex::default(),
            }),
            source: source.into(),
        }
    }

    /// The VarBuilder to build the model with.
    pub fn var_builder(&self, dtype: DType, device: &Device) -> VarBuilder<'static> {
        VarBuilder::from_backend(
            Box::new(AuditBackend(self.state.clone())),
            dtype,
            device.clone(),
        )
    }

    /// After the build: `Ok` when every key was found with its shape and none was left over.
    /// One problem gives its own error ([`Error::MissingKey`], [`Error::ShapeMismatch`],
    /// [`Error::UnexpectedKey`]); several give [`Error::WeightAudit`] listing them all.
    pub fn finish(self) -> Result<()> {
        let requested = self
            .state
            .requested
            .lock()
            .map(|r| r.clone())
            .unwrap_or_default();
        let mut problems = self
            .state
            .problems
            .lock()
            .map(|p| p.clone())
            .unwrap_or_default();
        let mut unexpected: Vec<_> = self
            .state
            .tensors
            .iter()
            .filter(|(k, _)| !requested.contains(*k))
            .map(|(k, t)| Problem::Unexpected {
                key: k.clone(),
                found: t.dims().to_vec(),
            })
            .collect();
        unexpected.sort_by(|a, b| format!("{a:?}").cmp(&format!("{b:?}")));
        problems.extend(unexpected);
        match problems.len() {
            0 => Ok(()),
            1 => Err(problems.remove(0).into_error()),
            _ => Err(Error::WeightAudit {
                path: self.source,
                problems: problems
                    .into_iter()
                    .map(|p| p.into_error().to_string())
                    .collect(),
            }),
        }
    }
}

/// Builds a model with `build` from `tensors` (names relative to the model's root) and audits the
/// keys: the model is returned only if the checkpoint fits it exactly.
pub fn build_audited<T>(
    tensors: HashMap<String, Tensor>,
    source: impl Into<PathBuf>,
    dtype: DType,
    device: &Device,
    build: impl FnOnce(VarBuilder<'static>) -> Result<T>,
) -> Result<T> {
    let audit = WeightAudit::new(tensors, source);
    let model = build(audit.var_builder(dtype, device))?;
    audit.finish()?;
    Ok(model)
}
