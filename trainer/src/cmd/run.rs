//! Running a sampling job window by window with one seeded noise stream and one progress bar.

use super::common::step_bar;
use adiff_core::audio::{process_in_windows, WindowInfo};
use adiff_core::sampler::StepInfo;
use adiff_core::SeededNoise;
use anyhow::Result;
use candle_core::Tensor;
use std::ops::ControlFlow;

/// Overlap between windows, as a fraction of the window (1/8).
pub const OVERLAP_DIVISOR: usize = 8;

/// Runs `job(piece, noise, on_step)` over `x (batch, channels, length)` in windows of `window`
/// input samples (overlap `window / 8`, crossfaded), each producing `window * scale` samples,
/// with a progress bar over all steps of all windows.
pub fn windowed<F>(
    x: &Tensor,
    window: usize,
    scale: usize,
    seed: u64,
    what: &str,
    mut job: F,
) -> Result<Tensor>
where
    F: FnMut(
        &Tensor,
        &mut SeededNoise,
        &mut dyn FnMut(&StepInfo) -> ControlFlow<()>,
    ) -> adiff_core::Result<Tensor>,
{
    let mut noise = SeededNoise::new(seed);
    let bar = step_bar(0, what);
    let y = process_in_windows(
        x,
        window,
        window / OVERLAP_DIVISOR,
        scale,
        |piece, info: WindowInfo| {
            let mut on_step = |s: &StepInfo| {
                if bar.length() == Some(0) {
                    bar.set_length((s.total * info.total) as u64);
                }
                bar.inc(1);
                ControlFlow::Continue(())
            };
            job(piece, &mut noise, &mut on_step)
        },
    )?;
    bar.finish_and_clear();
    Ok(y)
}
