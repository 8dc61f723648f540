//! Running a sampling job window by window with one seeded noise stream (adiff-core's
//! `sample_in_windows`, shared with the plugin) and one progress bar.

use super::common::step_bar;
use adiff_core::pipeline::{sample_in_windows, WindowJob};
use anyhow::Result;
use candle_core::Tensor;
use std::ops::ControlFlow;

/// Runs `job(piece, noise, on_step)` over `x (batch, channels, length)` in windows of `window`
/// input samples (overlap `window / 8`, crossfaded), each producing `window * scale` samples,
/// with a progress bar over all steps of all windows.
pub fn windowed<F: WindowJob>(
    x: &Tensor,
    window: usize,
    scale: usize,
    seed: u64,
    what: &str,
    job: F,
) -> Result<Tensor> {
    let bar = step_bar(0, what);
    let y = sample_in_windows(
        x,
        window,
        scale,
        seed,
        |s| {
            if bar.length() == Some(0) {
                bar.set_length((s.steps * s.windows) as u64);
            }
            bar.inc(1);
            ControlFlow::Continue(())
        },
        job,
    )?;
    bar.finish_and_clear();
    Ok(y)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn an_identity_job_over_a_long_sweep_returns_it_without_seams() {
        // 20 s of a 20 Hz to 20 kHz exponential sweep at 48 kHz, windows of 2^15 samples.
        let (rate, n) = (48_000.0f64, 960_000usize);
        let k = (1000f64).ln() / (n as f64 / rate);
        let x: Vec<f32> = (0..n)
            .map(|i| {
                let t = i as f64 / rate;
                (0.5 * (2.0 * std::f64::consts::PI * 20.0 * ((k * t).exp() - 1.0) / k).sin()) as f32
            })
            .collect();
        let t = Tensor::from_vec(x.clone(), (1, 1, n), &Device::Cpu).unwrap();
        let mut windows = 0;
        let y = windowed(&t, 1 << 15, 1, 0, "test", |piece, _noise, _on_step| {
            windows += 1;
            Ok(piece.clone())
        })
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1::<f32>()
        .unwrap();
        assert_eq!(windows, 34);
        let worst = x
            .iter()
            .zip(&y)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        assert!(worst < 1e-6, "identity through windows differs by {worst}");
        let step = |v: &[f32]| {
            v.windows(2)
                .map(|p| (p[1] - p[0]).abs())
                .fold(0f32, f32::max)
        };
        assert!(step(&y) <= step(&x) + 1e-6, "a join jumps by {}", step(&y));
    }
}
