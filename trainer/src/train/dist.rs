//! The data-parallel seam (docs/distributed.md): every update's gradients pass through a
//! [`GradSync`] between accumulation and clipping. A single-process run uses [`SingleProcess`]
//! (world size 1, nothing to do); an NCCL implementation all-reduces (averages) them across ranks.

use anyhow::Result;
use candle_core::Tensor;

/// Averages gradients across data-parallel workers, in the fixed variable order.
pub trait GradSync {
    /// This worker's rank in `0..world_size()`.
    fn rank(&self) -> usize;
    /// Number of data-parallel workers.
    fn world_size(&self) -> usize;
    /// Replaces each gradient by its mean over all workers (every worker gets the same values).
    fn all_reduce(&self, grads: &mut [Tensor]) -> Result<()>;
}

/// One process, one device: all-reduce is the identity.
#[derive(Debug, Default, Clone, Copy)]
pub struct SingleProcess;

impl GradSync for SingleProcess {
    fn rank(&self) -> usize {
        0
    }
    fn world_size(&self) -> usize {
        1
    }
    fn all_reduce(&self, _grads: &mut [Tensor]) -> Result<()> {
        Ok(())
    }
}
