//! The one error type of adiff-engine. Every variant names the thing it is about.

use std::path::PathBuf;

/// Result with [`EngineError`].
pub type Result<T, E = EngineError> = std::result::Result<T, E>;

/// Everything that can go wrong in the engine (never on the audio thread: it has no error path).
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The state bytes do not start with the adiff magic header.
    #[error("state: not an adiff state (bad magic header)")]
    StateMagic,
    /// The state was written by a newer adiff than this one.
    #[error("state: version {found} is newer than this plugin's version {supported}")]
    StateNewer { found: u32, supported: u32 },
    /// The state bytes end early or have the wrong length.
    #[error("state: truncated ({reason})")]
    StateTruncated { reason: String },
    /// The checksum over the state payload does not match.
    #[error("state: checksum mismatch (stored {stored:#018x}, computed {computed:#018x})")]
    StateChecksum { stored: u64, computed: u64 },
    /// The state's header is not valid JSON for this version, or a value in it is out of range.
    #[error("state: invalid header: {reason}")]
    StateInvalid { reason: String },
    /// A model folder could not be loaded.
    #[error("model {path}: {reason}")]
    Model { path: PathBuf, reason: String },
    /// A render was asked for something it cannot do (e.g. upsample with no captured clip).
    #[error("render {mode}: {reason}")]
    Render { mode: &'static str, reason: String },
    /// The render was cancelled (a newer request, the cancel parameter or shutdown).
    #[error("render cancelled")]
    Cancelled,
    /// The worker thread could not be started.
    #[error("worker thread: {0}")]
    Thread(#[source] std::io::Error),
}
