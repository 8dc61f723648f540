//! Fixture runner for the diffusion components (filled in by the issue that implements them).

use crate::fixtures::{Case, RunResult};

/// Runs one case of this family.
pub fn run(case: &Case) -> anyhow::Result<RunResult> {
    Ok(RunResult::Skip(format!(
        "component `{}` is not implemented yet",
        case.component()
    )))
}
