//! Weights: open checkpoints (safetensors, PyTorch pickles) by the reference's state-dict names,
//! resolve wrapper prefixes (reference §2.4), build a model through an auditing VarBuilder that
//! reports every missing / unexpected / mis-shaped key at once, and save to safetensors.

pub mod audit;
pub mod file;
pub mod pickle_guard;
pub mod prefix;
pub mod record;

pub use audit::{build_audited, WeightAudit};
pub use file::{read_tensors, save_safetensors};
pub use prefix::{merge_duplicate_copies, select_unet, strip_prefix};
pub use record::record_shapes;
