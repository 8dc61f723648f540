//! AdamW (Loshchilov & Hutter, "Decoupled Weight Decay Regularization", 2019) with the update of
//! `torch.optim.AdamW`, a linear warm-up + cosine decay learning-rate schedule, and clipping by
//! global gradient norm (`torch.nn.utils.clip_grad_norm_`).
//!
//! The optimizer keeps its moments as plain tensors so a checkpoint can save and restore them
//! bit for bit (candle-nn's `AdamW` keeps them private).

use anyhow::{bail, Result};
use candle_core::{Tensor, Var};
use serde::{Deserialize, Serialize};

/// Optimizer hyper-parameters (the `torch.optim.AdamW` keyword arguments).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct AdamWConfig {
    /// Peak learning rate (after warm-up).
    pub lr: f64,
    /// First-moment decay.
    pub beta1: f64,
    /// Second-moment decay.
    pub beta2: f64,
    /// Added to the square root of the second moment.
    pub eps: f64,
    /// Decoupled weight decay (fraction of the weight removed per unit learning rate).
    pub weight_decay: f64,
}

impl Default for AdamWConfig {
    fn default() -> Self {
        Self {
            lr: 1e-4,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.01,
        }
    }
}

/// AdamW over a fixed, ordered list of variables; `m` and `v` follow the same order.
pub struct AdamW {
    pub cfg: AdamWConfig,
    vars: Vec<Var>,
    m: Vec<Tensor>,
    v: Vec<Tensor>,
    /// Number of updates applied so far (PyTorch's per-parameter `step`).
    pub t: u64,
}

impl AdamW {
    /// A fresh optimizer (zero moments) over `vars`.
    pub fn new(vars: Vec<Var>, cfg: AdamWConfig) -> Result<Self> {
        let m = vars
            .iter()
            .map(|v| v.zeros_like())
            .collect::<candle_core::Result<Vec<_>>>()?;
        let v = m.clone();
        Ok(Self {
            cfg,
            vars,
            m,
            v,
            t: 0,
        })
    }

    /// The first and second moments, in variable order (for checkpoints).
    pub fn moments(&self) -> (&[Tensor], &[Tensor]) {
        (&self.m, &self.v)
    }

    /// Restores moments and step count saved by [`AdamW::moments`].
    pub fn restore(&mut self, m: Vec<Tensor>, v: Vec<Tensor>, t: u64) -> Result<()> {
        if m.len() != self.vars.len() || v.len() != self.vars.len() {
            bail!(
                "optimizer state has {} / {} moments, the model has {} variables",
                m.len(),
                v.len(),
                self.vars.len()
            );
        }
        for (i, var) in self.vars.iter().enumerate() {
            if m[i].dims() != var.dims() || v[i].dims() != var.dims() {
                bail!(
                    "optimizer moment {i} has shape {:?}, its variable {:?}",
                    m[i].dims(),
                    var.dims()
                );
            }
        }
        self.m = m;
        self.v = v;
        self.t = t;
        Ok(())
    }

    /// One update with learning rate `lr` from `grads` (same order as the variables).
    pub fn step(&mut self, grads: &[Tensor], lr: f64) -> Result<()> {
        if grads.len() != self.vars.len() {
            bail!(
                "{} gradients for {} variables",
                grads.len(),
                self.vars.len()
            );
        }
        self.t += 1;
        let c = &self.cfg;
        let bc1 = 1.0 - c.beta1.powi(self.t as i32);
        let bc2 = 1.0 - c.beta2.powi(self.t as i32);
        for (i, var) in self.vars.iter().enumerate() {
            // Detached: a gradient built from tracked activations would keep its graph alive
            // through the moments, step after step.
            let g = &grads[i].detach();
            let m = ((&self.m[i] * c.beta1)? + (g * (1.0 - c.beta1))?)?;
            let v = ((&self.v[i] * c.beta2)? + (g.sqr()? * (1.0 - c.beta2))?)?;
            let m_hat = (&m / bc1)?;
            let v_hat = (&v / bc2)?;
            let update = (m_hat / (v_hat.sqrt()? + c.eps)?)?;
            // torch.optim.AdamW: w <- w * (1 - lr * wd), then w <- w - lr * m_hat / (sqrt(v_hat) + eps).
            let decayed = (var.as_tensor() * (1.0 - lr * c.weight_decay))?;
            var.set(&(decayed - (update * lr)?)?)?;
            self.m[i] = m;
            self.v[i] = v;
        }
        Ok(())
    }
}

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
    fn adamw_first_step_moves_each_weight_by_lr_against_the_gradient_sign() {
        // After one step m_hat = g and v_hat = g^2, so the update is lr * g / (|g| + eps) ~ lr * sign(g),
        // plus the decoupled decay w * lr * wd.
        let d = Device::Cpu;
        let w = Var::from_vec(vec![1.0f32, -2.0, 0.5], 3, &d).unwrap();
        let cfg = AdamWConfig {
            lr: 0.1,
            weight_decay: 0.5,
            ..Default::default()
        };
        let mut opt = AdamW::new(vec![w.clone()], cfg).unwrap();
        let g = Tensor::new(&[0.3f32, -4.0, 0.0], &d).unwrap();
        opt.step(&[g], 0.1).unwrap();
        let got = w.as_tensor().to_vec1::<f32>().unwrap();
        let expect = [1.0 * 0.95 - 0.1, -2.0 * 0.95 + 0.1, 0.5 * 0.95];
        for (a, b) in got.iter().zip(expect) {
            assert!((*a as f64 - b).abs() < 1e-6, "{got:?} vs {expect:?}");
        }
    }

    #[test]
    fn moments_do_not_keep_the_graph_a_gradient_was_built_from() {
        // A gradient computed from tracked tensors (as candle's backward gives for a weight whose
        // gradient involves activations) carries its graph; moments built from it must not, or
        // every step's graph stays alive through m and v (the leak of issue 11's first run).
        let d = Device::Cpu;
        let w = Var::from_vec(vec![1.0f32, 2.0], 2, &d).unwrap();
        let act = Var::from_vec(vec![3.0f32, -1.0], 2, &d).unwrap();
        let g = (act.as_tensor() * 2.0).unwrap();
        assert!(g.sum_all().unwrap().backward().unwrap().get(&act).is_some());
        let mut opt = AdamW::new(vec![w.clone()], AdamWConfig::default()).unwrap();
        opt.step(&[g], 0.1).unwrap();
        let (m, v) = opt.moments();
        for t in [&m[0], &v[0]] {
            let store = t.sum_all().unwrap().backward().unwrap();
            assert!(
                store.get(&act).is_none(),
                "a moment still reaches the activation"
            );
        }
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
