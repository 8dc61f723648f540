//! Cooperative cancellation and progress shared between a sampling thread and its owner (the
//! plugin's worker and audio thread, the command line's progress bar). Not in the reference.

use crate::sampler::StepInfo;
use std::ops::ControlFlow;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

/// A shared cancel flag and progress counters, cheap to clone (an `Arc`).
#[derive(Debug, Clone, Default)]
pub struct CancelFlag {
    inner: Arc<Shared>,
}

#[derive(Debug, Default)]
struct Shared {
    cancelled: AtomicBool,
    step: AtomicU64,
    total: AtomicU64,
}

/// A progress snapshot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    /// Steps finished.
    pub step: u64,
    /// Steps of the current run.
    pub total: u64,
}

impl CancelFlag {
    /// A fresh, not cancelled flag.
    pub fn new() -> Self {
        Self::default()
    }

    /// Asks the sampling to stop after the step in progress.
    pub fn cancel(&self) {
        self.inner.cancelled.store(true, Ordering::Release);
    }

    /// Whether [`CancelFlag::cancel`] was called.
    pub fn is_cancelled(&self) -> bool {
        self.inner.cancelled.load(Ordering::Acquire)
    }

    /// The last reported progress.
    pub fn progress(&self) -> Progress {
        Progress {
            step: self.inner.step.load(Ordering::Relaxed),
            total: self.inner.total.load(Ordering::Relaxed),
        }
    }

    /// The per-step callback: records progress and stops the loop once cancelled.
    pub fn on_step(&self, info: &StepInfo) -> ControlFlow<()> {
        self.inner.step.store(info.step as u64, Ordering::Relaxed);
        self.inner.total.store(info.total as u64, Ordering::Relaxed);
        if self.is_cancelled() {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        }
    }
}
