//! The one error type of adiff-core. Every variant names the thing it is about.

use std::path::PathBuf;

/// Result with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in adiff-core.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A tensor operation failed.
    #[error(transparent)]
    Candle(#[from] candle_core::Error),

    /// A configuration field is invalid.
    #[error("invalid config field `{field}`: {reason}")]
    Config { field: String, reason: String },

    /// A weight the model needs is not in the checkpoint.
    #[error("missing weight `{key}` (expected shape {expected:?})")]
    MissingKey { key: String, expected: Vec<usize> },

    /// A checkpoint holds a weight the model does not use.
    #[error("unexpected weight `{key}` with shape {found:?}")]
    UnexpectedKey { key: String, found: Vec<usize> },

    /// A weight has the wrong shape.
    #[error("weight `{key}` has shape {found:?}, the model expects {expected:?}")]
    ShapeMismatch {
        key: String,
        expected: Vec<usize>,
        found: Vec<usize>,
    },

    /// Several weight problems at once (audit of a whole checkpoint).
    #[error("{} problem(s) with the weights in {path}:\n{}", problems.len(), problems.join("\n"))]
    WeightAudit {
        path: PathBuf,
        problems: Vec<String>,
    },

    /// A weights file could not be read or parsed.
    #[error("cannot read weights file {path}: {reason}")]
    WeightsFile { path: PathBuf, reason: String },

    /// An audio file could not be read or written.
    #[error("audio file {path}: {reason}")]
    Audio { path: PathBuf, reason: String },

    /// An image file could not be written.
    #[error("image file {path}: {reason}")]
    Image { path: PathBuf, reason: String },

    /// File-system error with the path involved.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// JSON (config) error with the path or thing involved.
    #[error("{what}: {reason}")]
    Json {
        what: String,
        /// The parser's reason (kept out of the source chain, so it is printed once).
        reason: serde_json::Error,
    },

    /// A tensor argument has the wrong shape or value.
    #[error("invalid input `{name}`: {reason}")]
    InvalidInput { name: String, reason: String },

    /// A recorded noise stream ran out or did not match what was asked.
    #[error("noise replay: {0}")]
    NoiseReplay(String),

    /// The caller cancelled a long computation (sampling, training).
    #[error("cancelled at step {step} of {total}")]
    Cancelled { step: usize, total: usize },

    /// A feature that needs a cargo feature or device that is not present.
    #[error("unsupported: {0}")]
    Unsupported(String),
}

impl Error {
    /// Shorthand for [`Error::Config`].
    pub fn config(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self::Config {
            field: field.into(),
            reason: reason.into(),
        }
    }

    /// Shorthand for [`Error::InvalidInput`].
    pub fn input(name: impl Into<String>, reason: impl Into<String>) -> Self {
        Self::InvalidInput {
            name: name.into(),
            reason: reason.into(),
        }
    }

    /// Shorthand for [`Error::Io`].
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            path: path.into(),
            source,
        }
    }
}
