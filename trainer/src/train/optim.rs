//! The optimizer ([`AdamW`], `torch.optim.AdamW`'s update, from `adiff_core::optim`), a linear
//! warm-up + cosine decay learning-rate schedule, and clipping by global gradient norm
//! (`torch.nn.utils.clip_grad_norm_`).

use anyhow::{bail, Result};
use candle_core::Tensor;
use serde::{Deserialize, Serialize};

pub use adiff_core::optim::{AdamW, AdamWConfig};

/// Learning-rate schedule: linear warm-up from 0, then cosine decay to `min_lr_ratio * lr`.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Schedule {
    /// Steps of linear warm-up (0 = start at the peak).
    pub warmup_steps: u64,
    /// Cosine decay from the end of warm-up to `total_steps`; `false` keeps the peak rate.
    pub cosine_decay: bool,
    /// Final learning rate as a fraction of the peak.
    pub min_lr_ratio: f64,
}

impl Default for Schedule {
    fn default() -> Self {
        Self {
            warmup_steps: 100,
            cosine_decay: true,
            min_lr_ratio: 0.1,
        }
    }
}

impl Schedule {
    /// Learning rate for the update with zero-based index `step` out of `total` updates.
    pub fn lr(&self, peak: f64, step: u64, total: u64) -> f64 {
        if step < self.warmup_steps {
            return peak * (step + 1) as f64 / self.warmup_steps as f64;
        }
        if !self.cosine_decay || total <= self.warmup_steps + 1 {
            return peak;
        }
        let span = (total - 1 - self.warmup_steps) as f64;
        let progress = ((step - self.warmup_steps) as f64 / span).min(1.0);
        let min = peak * self.min_lr_ratio;
        min + (peak - min) * 0.5 * (1.0 + (std::f64::consts::PI * progress).cos())
    }
}

/// Global L2 norm of all gradients, computed in f64 on the host from per-tensor sums of squares.
pub fn global_norm(grads: &[Tensor]) -> Result<f64> {
    let mut sum = 0.0f64;
    for g in grads {
        sum += g
            .to_dtype(candle_core::DType::F32)?
            .sqr()?
            .sum_all()?
            .to_scalar::<f32>()? as f64;
    }
    Ok(sum.sqrt())
}

/// Scales `grads` so their global norm is at most `max_norm` (`<= 0` disables clipping).
/// Returns the norm before clipping. Like PyTorch, the factor is `max_norm / (norm + 1e-6)`.
pub fn clip_global_norm(grads: &mut [Tensor], max_norm: f64) -> Result<f64> {
    let norm = global_norm(grads)?;
    if !norm.is_finite() {
        bail!("gradient norm is {norm}: the loss diverged (lower the learning rate or enable clipping)");
    }
    if max_norm > 0.0 && norm > max_norm {
        let scale = max_norm / (norm + 1e-6);
        for g in grads.iter_mut() {
            *g = (&*g * scale)?;
        }
    }
    Ok(norm)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn schedule_warms_up_linearly_then_decays_by_cosine() {
        let s = Schedule {
            warmup_steps: 10,
            cosine_decay: true,
            min_lr_ratio: 0.1,
        };
        assert!((s.lr(1.0, 0, 110) - 0.1).abs() < 1e-12);
        assert!((s.lr(1.0, 9, 110) - 1.0).abs() < 1e-12);
        assert!((s.lr(1.0, 10, 110) - 1.0).abs() < 1e-12);
        // Half way through the decay the cosine term is 0: (1 + 0.1) / 2.
        let mid = 10 + (110 - 1 - 10) / 2;
        let expect =
            0.1 + 0.9 * 0.5 * (1.0 + (std::f64::consts::PI * (mid - 10) as f64 / 99.0).cos());
        assert!((s.lr(1.0, mid, 110) - expect).abs() < 1e-12);
        assert!((s.lr(1.0, 109, 110) - 0.1).abs() < 1e-12);
        let lrs: Vec<f64> = (10..110).map(|i| s.lr(1.0, i, 110)).collect();
        assert!(lrs.windows(2).all(|w| w[1] <= w[0]));
    }

    #[test]
    fn clipping_scales_to_the_max_norm_and_reports_the_old_norm() {
        let d = Device::Cpu;
        let mut gs = vec![
            Tensor::new(&[3.0f32], &d).unwrap(),
            Tensor::new(&[4.0f32], &d).unwrap(),
        ];
        let n = clip_global_norm(&mut gs, 1.0).unwrap();
        assert!((n - 5.0).abs() < 1e-9);
        assert!((global_norm(&gs).unwrap() - 1.0).abs() < 1e-5);
        let mut small = vec![Tensor::new(&[0.3f32], &d).unwrap()];
        clip_global_norm(&mut small, 1.0).unwrap();
        assert_eq!(small[0].to_vec1::<f32>().unwrap(), vec![0.3]);
    }
}
