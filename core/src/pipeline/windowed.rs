//! A sampling job run window by window over a long input: windows of `window` input samples
//! overlapping by an eighth and crossfaded ([`crate::audio::process_in_windows`]), all drawing from
//! one seeded noise stream, with progress over every step of every window. The command line and
//! the plugin both run long inputs through this, so the same seed gives them the same audio.

use crate::audio::{process_in_windows, WindowInfo};
use crate::sampler::StepInfo;
use crate::{Result, SeededNoise};
use candle_core::Tensor;
use std::ops::ControlFlow;

/// Overlap between windows, as a fraction of the window (1/8).
pub const OVERLAP_DIVISOR: usize = 8;

/// Where a windowed job is: step `step` of `steps` in window `window` of `windows` (from 0).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WindowedStep {
    /// Index of the window being sampled.
    pub window: usize,
    /// Number of windows.
    pub windows: usize,
    /// Steps done in this window.
    pub step: usize,
    /// Steps of one window.
    pub steps: usize,
}

impl WindowedStep {
    /// Fraction of the whole job done, in `[0, 1]`.
    pub fn done(&self) -> f32 {
        (self.window as f32 + self.step as f32 / self.steps.max(1) as f32)
            / self.windows.max(1) as f32
    }
}

/// The work [`sample_in_windows`] does per window: `job(piece, noise, on_step)` samples one
/// piece with the shared noise stream, reporting each step to `on_step` (the front ends' windowed
/// helpers take the same bound).
pub trait WindowJob:
    FnMut(&Tensor, &mut SeededNoise, &mut dyn FnMut(&StepInfo) -> ControlFlow<()>) -> Result<Tensor>
{
}

impl<F> WindowJob for F where
    F: FnMut(
        &Tensor,
        &mut SeededNoise,
        &mut dyn FnMut(&StepInfo) -> ControlFlow<()>,
    ) -> Result<Tensor>
{
}

/// Runs `job(piece, noise, on_step)` over `x (batch, channels, length)` in windows of `window`
/// input samples, each producing `window * scale` samples, with one [`SeededNoise`] stream from
/// `seed`. `progress` sees every step of every window; its `Break` is passed on to the job's
/// sampler, which stops with [`crate::Error::Cancelled`].
pub fn sample_in_windows<F: WindowJob>(
    x: &Tensor,
    window: usize,
    scale: usize,
    seed: u64,
    mut progress: impl FnMut(&WindowedStep) -> ControlFlow<()>,
    mut job: F,
) -> Result<Tensor> {
    let window = window.max(1);
    let mut noise = SeededNoise::new(seed);
    process_in_windows(
        x,
        window,
        window / OVERLAP_DIVISOR,
        scale,
        |piece, info: WindowInfo| {
            let mut on_step = |s: &StepInfo| {
                progress(&WindowedStep {
                    window: info.index,
                    windows: info.total,
                    step: s.step,
                    steps: s.total,
                })
            };
            job(piece, &mut noise, &mut on_step)
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    /// A job of `steps` steps that returns its window, stopping when told.
    fn job(steps: usize) -> impl WindowJob {
        move |piece, _noise, on_step| {
            for step in 1..=steps {
                let info = StepInfo {
                    step,
                    total: steps,
                    sigma: 0.0,
                };
                if on_step(&info).is_break() {
                    return Err(crate::Error::Cancelled { step, total: steps });
                }
            }
            Ok(piece.clone())
        }
    }

    #[test]
    fn progress_sees_every_step_of_every_window_and_reaches_one() {
        let x = Tensor::zeros((1, 1, 1000), candle_core::DType::F32, &Device::Cpu).unwrap();
        let mut seen = Vec::new();
        sample_in_windows(
            &x,
            256,
            1,
            0,
            |s| {
                seen.push(*s);
                ControlFlow::Continue(())
            },
            job(3),
        )
        .unwrap();
        let windows = seen[0].windows;
        assert!(windows > 1);
        assert_eq!(seen.len(), 3 * windows);
        let done: Vec<f32> = seen.iter().map(WindowedStep::done).collect();
        assert!(done.windows(2).all(|p| p[1] > p[0]), "{done:?}");
        assert!((done[done.len() - 1] - 1.0).abs() < 1e-6);
    }

    #[test]
    fn a_break_stops_the_job_with_cancelled() {
        let x = Tensor::zeros((1, 1, 1000), candle_core::DType::F32, &Device::Cpu).unwrap();
        let mut calls = 0;
        let err = sample_in_windows(
            &x,
            256,
            1,
            0,
            |_| {
                calls += 1;
                if calls == 4 {
                    ControlFlow::Break(())
                } else {
                    ControlFlow::Continue(())
                }
            },
            job(3),
        )
        .unwrap_err();
        assert!(
            matches!(err, crate::Error::Cancelled { step: 1, total: 3 }),
            "{err}"
        );
        assert_eq!(calls, 4);
    }
}
