//! Noise schedules: `diffusion.py::KarrasSchedule` (audio-diffusion-pytorch 0.0.61) and
//! `LinearSchedule` (0.0.70); Karras et al. 2022, "Elucidating the Design Space of Diffusion-Based
//! Generative Models" (EDM), eq. 5.
//!
//! Every schedule is a pure host function returning `num_steps + 1` sigmas (VE noise levels, unit:
//! the data's standard deviation scale), from the largest to the last, which is the end point
//! (0 for Karras). No tensors are involved.
//!
//! Compatibility: under [`Compat::V0_0_61`] the Karras schedule is computed in float32 arithmetic in
//! the reference's order of operations (so sigmas match the reference bit for bit up to `powf`
//! rounding); under [`Compat::Fixed`] it is computed in f64.

use crate::{Compat, Error, Result};

/// A schedule of sigmas: `num_steps + 1` values, decreasing, the last one the end point.
pub trait Schedule: Send + Sync {
    /// The sigmas for `num_steps` steps (length `num_steps + 1`).
    fn sigmas(&self, num_steps: usize) -> Result<Vec<f64>>;
}

/// `KarrasSchedule(sigma_min, sigma_max, rho=7.0)`: `σ_i = (σ_max^(1/ρ) + i/(N−1)·(σ_min^(1/ρ) −
/// σ_max^(1/ρ)))^ρ` for `i = 0..N−1`, then a trailing 0.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct KarrasSchedule {
    /// Smallest non-zero sigma (last before the trailing 0).
    pub sigma_min: f64,
    /// Largest sigma (the first).
    pub sigma_max: f64,
    /// Curvature: larger values spend more steps at small sigmas. Reference default 7.
    pub rho: f64,
    /// Float32 (reference) or f64 arithmetic.
    pub compat: Compat,
}

impl KarrasSchedule {
    /// A schedule with the reference's default `rho = 7`, corrected (f64) arithmetic.
    pub fn new(sigma_min: f64, sigma_max: f64) -> Self {
        Self {
            sigma_min,
            sigma_max,
            rho: 7.0,
            compat: Compat::Fixed,
        }
    }
}

impl Schedule for KarrasSchedule {
    fn sigmas(&self, num_steps: usize) -> Result<Vec<f64>> {
        karras(
            self.sigma_min,
            self.sigma_max,
            self.rho,
            num_steps,
            self.compat,
        )
    }
}

/// The Karras sigmas (see [`KarrasSchedule`]); `num_steps >= 2`, `0 < sigma_min <= sigma_max`,
/// `rho > 0`, else [`Error::Config`].
pub fn karras(
    sigma_min: f64,
    sigma_max: f64,
    rho: f64,
    num_steps: usize,
    compat: Compat,
) -> Result<Vec<f64>> {
    if num_steps < 2 {
        return Err(Error::config(
            "num_steps",
            format!("the Karras schedule needs at least 2 steps, got {num_steps}"),
        ));
    }
    if !(sigma_min > 0.0 && sigma_min <= sigma_max && sigma_max.is_finite()) {
        return Err(Error::config(
            "sigma_min/sigma_max",
            format!("need 0 < sigma_min <= sigma_max < inf, got {sigma_min} and {sigma_max}"),
        ));
    }
    if !(rho > 0.0 && rho.is_finite()) {
        return Err(Error::config(
            "rho",
            format!("must be positive and finite, got {rho}"),
        ));
    }
    let rho_inv = 1.0 / rho;
    let (max_inv, min_inv) = (sigma_max.powf(rho_inv), sigma_min.powf(rho_inv));
    let last = (num_steps - 1) as f64;
    let mut sigmas: Vec<f64> = if compat.is_reference() {
        // torch: arange(N, float32) / (N-1) * (min^(1/ρ) - max^(1/ρ)) + max^(1/ρ), then ** ρ, all in
        // float32 with the Python-double scalars rounded to float32.
        let span = (min_inv - max_inv) as f32;
        (0..num_steps)
            .map(|i| {
                let ramp = i as f32 / last as f32;
                let base = max_inv as f32 + ramp * span;
                base.powf(rho as f32) as f64
            })
            .collect()
    } else {
        (0..num_steps)
            .map(|i| (max_inv + i as f64 / last * (min_inv - max_inv)).powf(rho))
            .collect()
    };
    sigmas.push(0.0);
    Ok(sigmas)
}

/// In which quantity a [`LinearSchedule`] is linear.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LinearIn {
    /// The sigmas themselves are `linspace(start, end, N+1)`.
    #[default]
    Sigma,
    /// The angle fraction `t = atan(σ)·2/π ∈ [0, 1]` is `linspace(start, end, N+1)` (0.0.70's
    /// `LinearSchedule(start=1, end=0)` for the v sampler); `t = 1` maps to `σ = +∞`.
    Angle,
}

/// `LinearSchedule(start, end)` (audio-diffusion-pytorch 0.0.70): `N+1` evenly spaced values from
/// `start` to `end`, both included. (0.0.70 drops the end point, so its sampler never reaches it;
/// here, as for the fixed Karras schedule, all `N` steps run and the last one lands on `end`.)
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LinearSchedule {
    /// First value (sigma, or angle fraction).
    pub start: f64,
    /// Last value (sigma, or angle fraction).
    pub end: f64,
    /// Linear in sigma or in the angle fraction.
    pub space: LinearIn,
}

impl LinearSchedule {
    /// 0.0.70's default for the v sampler: angle fraction from 1 (pure noise, σ = ∞) to 0.
    pub fn angle() -> Self {
        Self {
            start: 1.0,
            end: 0.0,
            space: LinearIn::Angle,
        }
    }
}

impl Schedule for LinearSchedule {
    fn sigmas(&self, num_steps: usize) -> Result<Vec<f64>> {
        let values = linear(self.start, self.end, num_steps)?;
        Ok(match self.space {
            LinearIn::Sigma => values,
            LinearIn::Angle => values.into_iter().map(angle_to_sigma).collect(),
        })
    }
}

/// `linspace(start, end, num_steps + 1)`; `num_steps >= 1`, finite end points.
pub fn linear(start: f64, end: f64, num_steps: usize) -> Result<Vec<f64>> {
    if num_steps < 1 {
        return Err(Error::config(
            "num_steps",
            "a linear schedule needs at least 1 step",
        ));
    }
    if !(start.is_finite() && end.is_finite()) {
        return Err(Error::config(
            "start/end",
            format!("must be finite, got {start} and {end}"),
        ));
    }
    let n = num_steps as f64;
    Ok((0..=num_steps)
        .map(|i| {
            if i == num_steps {
                end
            } else {
                start + (end - start) * (i as f64 / n)
            }
        })
        .collect())
}

/// `σ = tan(t·π/2)` for an angle fraction `t` (`t >= 1` gives `+∞`).
pub fn angle_to_sigma(t: f64) -> f64 {
    if t >= 1.0 {
        f64::INFINITY
    } else {
        (t * std::f64::consts::FRAC_PI_2).tan()
    }
}

/// `t = atan(σ)·2/π` (`σ = +∞` gives 1).
pub fn sigma_to_angle(sigma: f64) -> f64 {
    sigma.atan() / std::f64::consts::FRAC_PI_2
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: &[f64], b: &[f64], tol: f64) {
        assert_eq!(a.len(), b.len(), "{a:?} vs {b:?}");
        for (x, y) in a.iter().zip(b) {
            assert!((x - y).abs() <= tol * y.abs().max(1e-30), "{a:?} vs {b:?}");
        }
    }

    #[test]
    fn karras_reference_values_spec_3_6() {
        let r = Compat::V0_0_61;
        close(
            &karras(1e-4, 3.0, 9.0, 5, r).unwrap(),
            &[
                2.9999998,
                0.5579148,
                0.07036222,
                0.004757817,
                1.0000003e-4,
                0.0,
            ],
            1e-6,
        );
        close(
            &karras(1e-4, 3.0, 9.0, 2, r).unwrap(),
            &[2.9999998, 1.0000003e-4, 0.0],
            1e-7,
        );
        close(
            &karras(1e-4, 3.0, 9.0, 10, r).unwrap(),
            &[
                2.9999998,
                1.4762112,
                0.6836254,
                0.29457298,
                0.11635984,
                0.041298963,
                0.012808015,
                0.0033331057,
                0.00068410829,
                1.0000003e-4,
                0.0,
            ],
            1e-6,
        );
        close(
            &karras(1e-2, 80.0, 7.0, 4, r).unwrap(),
            &[79.999985, 11.607205, 0.80027318, 0.009999996, 0.0],
            1e-6,
        );
    }

    #[test]
    fn karras_fixed_hits_end_points_and_is_monotone() {
        let s = karras(0.002, 80.0, 7.0, 12, Compat::Fixed).unwrap();
        assert_eq!(s.len(), 13);
        assert!((s[0] - 80.0).abs() < 1e-12 && (s[11] - 0.002).abs() < 1e-15 && s[12] == 0.0);
        assert!(s.windows(2).all(|w| w[0] > w[1]));
        // rho = 1 is linear between the end points: an interior point is the arithmetic mean.
        let l = karras(0.1, 1.1, 1.0, 3, Compat::Fixed).unwrap();
        assert!((l[1] - 0.6).abs() < 1e-15);
    }

    #[test]
    fn karras_rejects_bad_arguments() {
        assert!(matches!(
            karras(1e-4, 3.0, 9.0, 1, Compat::Fixed),
            Err(Error::Config { .. })
        ));
        assert!(karras(0.0, 3.0, 9.0, 4, Compat::Fixed).is_err());
        assert!(karras(4.0, 3.0, 9.0, 4, Compat::Fixed).is_err());
        assert!(karras(0.1, 3.0, 0.0, 4, Compat::Fixed).is_err());
    }

    #[test]
    fn linear_schedules() {
        assert_eq!(
            linear(1.0, 0.0, 4).unwrap(),
            vec![1.0, 0.75, 0.5, 0.25, 0.0]
        );
        let a = LinearSchedule::angle().sigmas(2).unwrap();
        assert_eq!(a[0], f64::INFINITY);
        assert!((a[1] - 1.0).abs() < 1e-15 && a[2] == 0.0);
        assert!((sigma_to_angle(angle_to_sigma(0.3)) - 0.3).abs() < 1e-15);
        assert!(linear(1.0, 0.0, 0).is_err());
    }
}
