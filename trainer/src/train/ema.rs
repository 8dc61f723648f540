//! Exponential moving average of the weights (as in `ema_pytorch.EMA`, used by the reference
//! project's trainers): `ema <- decay * ema + (1 - decay) * w` after every update, with the decay
//! warmed up as `min(decay, (1 + t) / (10 + t))` so early averages are not dominated by the init.

use anyhow::Result;
use candle_core::Var;

/// EMA of an ordered list of variables. The EMA lives in its own variables so a second model
/// built on them samples from the averaged weights directly.
pub struct Ema {
    /// Target decay per update.
    pub decay: f64,
    /// Warm the decay up from 0 (`(1 + t) / (10 + t)`) instead of starting at `decay`.
    pub warmup: bool,
    source: Vec<Var>,
    average: Vec<Var>,
}

impl Ema {
    /// Tracks `source` in `average` (same order and shapes); copies the current weights.
    pub fn new(source: Vec<Var>, average: Vec<Var>, decay: f64, warmup: bool) -> Result<Self> {
        anyhow::ensure!(
            source.len() == average.len(),
            "EMA over {} variables, {} averages",
            source.len(),
            average.len()
        );
        for (s, a) in source.iter().zip(&average) {
            anyhow::ensure!(
                s.dims() == a.dims(),
                "EMA shape {:?} vs {:?}",
                a.dims(),
                s.dims()
            );
            a.set(s.as_tensor())?;
        }
        Ok(Self {
            decay,
            warmup,
            source,
            average,
        })
    }

    /// Decay used for the update after `t` optimizer steps (`t >= 1`).
    pub fn decay_at(&self, t: u64) -> f64 {
        if self.warmup {
            self.decay.min((1.0 + t as f64) / (10.0 + t as f64))
        } else {
            self.decay
        }
    }

    /// Moves the average towards the current weights; `t` is the number of updates done so far.
    pub fn update(&self, t: u64) -> Result<()> {
        let d = self.decay_at(t);
        for (s, a) in self.source.iter().zip(&self.average) {
            let next = ((a.as_tensor() * d)? + (s.as_tensor() * (1.0 - d))?)?;
            a.set(&next)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn ema_follows_the_closed_form() {
        let d = Device::Cpu;
        let w = Var::from_vec(vec![0.0f32], 1, &d).unwrap();
        let a = Var::from_vec(vec![5.0f32], 1, &d).unwrap();
        let ema = Ema::new(vec![w.clone()], vec![a.clone()], 0.9, false).unwrap();
        // Copied at construction.
        assert_eq!(a.as_tensor().to_vec1::<f32>().unwrap(), vec![0.0]);
        w.set(&candle_core::Tensor::new(&[1.0f32], &d).unwrap())
            .unwrap();
        for t in 1..=3 {
            ema.update(t).unwrap();
        }
        // Constant target 1 from 0: 1 - 0.9^3.
        let got = a.as_tensor().to_vec1::<f32>().unwrap()[0] as f64;
        assert!((got - (1.0 - 0.9f64.powi(3))).abs() < 1e-6, "{got}");
        let warm = Ema::new(vec![w.clone()], vec![a], 0.999, true).unwrap();
        assert!((warm.decay_at(1) - 2.0 / 11.0).abs() < 1e-12);
        assert!((warm.decay_at(1_000_000) - 0.999).abs() < 1e-12);
    }
}
