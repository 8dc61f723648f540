//! Every random draw of the library goes through a [`NoiseSource`].
//!
//! Two implementations: [`SeededNoise`], a small portable generator (xoshiro256** seeded through
//! splitmix64, normals by Box-Muller in f64) that gives the same numbers on every platform for the
//! same seed; and [`ReplayNoise`], which hands out recorded tensors in order, for the parity
//! fixtures (docs/reference.md §3.11 gives the order in which the reference draws).

use crate::{Error, Result};
use candle_core::{DType, Device, Tensor};
use std::collections::VecDeque;

/// What kind of random tensor is asked for.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Draw {
    /// Standard normal, f32 (`torch.randn`).
    Normal,
    /// Uniform on [0, 1), f32 (`torch.rand`).
    Uniform,
    /// Integers in [low, high), i64 (`torch.randint`).
    Integer { low: i64, high: i64 },
    /// 0/1 with P(1) = p, f32 (`torch.bernoulli`).
    Bernoulli { p: f64 },
}

/// A source of random tensors. Samplers, diffusion losses and models take `&mut dyn NoiseSource`
/// (or a generic `N: NoiseSource`) and never draw on their own.
pub trait NoiseSource {
    /// Draws a tensor of `shape` on `device` of the given kind.
    fn draw(&mut self, kind: Draw, shape: &[usize], device: &Device) -> Result<Tensor>;

    /// Standard normal f32 tensor.
    fn randn(&mut self, shape: &[usize], device: &Device) -> Result<Tensor> {
        self.draw(Draw::Normal, shape, device)
    }

    /// Uniform [0, 1) f32 tensor.
    fn rand(&mut self, shape: &[usize], device: &Device) -> Result<Tensor> {
        self.draw(Draw::Uniform, shape, device)
    }

    /// i64 tensor of integers in `[low, high)`.
    fn randint(&mut self, low: i64, high: i64, shape: &[usize], device: &Device) -> Result<Tensor> {
        self.draw(Draw::Integer { low, high }, shape, device)
    }

    /// f32 tensor of 0/1 values with P(1) = `p`.
    fn bernoulli(&mut self, p: f64, shape: &[usize], device: &Device) -> Result<Tensor> {
        self.draw(Draw::Bernoulli { p }, shape, device)
    }
}

/// Portable seeded generator: xoshiro256** with a splitmix64 seeding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeededNoise {
    state: [u64; 4],
}

fn splitmix64(x: &mut u64) -> u64 {
    *x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *x;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

impl SeededNoise {
    /// A generator for `seed`; the same seed gives the same stream everywhere.
    pub fn new(seed: u64) -> Self {
        let mut s = seed;
        Self {
            state: [
                splitmix64(&mut s),
                splitmix64(&mut s),
                splitmix64(&mut s),
                splitmix64(&mut s),
            ],
        }
    }

    /// The full generator state, for checkpoints.
    pub fn state(&self) -> [u64; 4] {
        self.state
    }

    /// Restores a generator from [`SeededNoise::state`].
    pub fn from_state(state: [u64; 4]) -> Self {
        Self { state }
    }

    /// Next raw 64-bit value.
    pub fn next_u64(&mut self) -> u64 {
        let s = &mut self.state;
        let result = s[1].wrapping_mul(5).rotate_left(7).wrapping_mul(9);
        let t = s[1] << 17;
        s[2] ^= s[0];
        s[3] ^= s[1];
        s[1] ^= s[2];
        s[0] ^= s[3];
        s[2] ^= t;
        s[3] = s[3].rotate_left(45);
        result
    }

    /// Uniform f64 in [0, 1) with 53 random bits.
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Standard normal f64 (Box-Muller, one value per call for a simple, replayable stream).
    pub fn next_normal(&mut self) -> f64 {
        let u1 = 1.0 - self.next_f64(); // (0, 1]
        let u2 = self.next_f64();
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }

    /// Uniform integer in `[low, high)` (`high > low`), without modulo bias.
    pub fn next_int(&mut self, low: i64, high: i64) -> i64 {
        let span = (high - low) as u64;
        let zone = u64::MAX - (u64::MAX % span);
        loop {
            let v = self.next_u64();
            if v < zone {
                return low + (v % span) as i64;
            }
        }
    }
}

impl NoiseSource for SeededNoise {
    fn draw(&mut self, kind: Draw, shape: &[usize], device: &Device) -> Result<Tensor> {
        let n: usize = shape.iter().product();
        let t = match kind {
            Draw::Normal => {
                let v: Vec<f32> = (0..n).map(|_| self.next_normal() as f32).collect();
                Tensor::from_vec(v, shape, device)?
            }
            Draw::Uniform => {
                let v: Vec<f32> = (0..n).map(|_| self.next_f64() as f32).collect();
                Tensor::from_vec(v, shape, device)?
            }
            Draw::Integer { low, high } => {
                if high <= low {
                    return Err(Error::input(
                        "randint",
                        format!("empty range [{low}, {high})"),
                    ));
                }
                let v: Vec<i64> = (0..n).map(|_| self.next_int(low, high)).collect();
                Tensor::from_vec(v, shape, device)?
            }
            Draw::Bernoulli { p } => {
                let v: Vec<f32> = (0..n)
                    .map(|_| if self.next_f64() < p { 1.0 } else { 0.0 })
                    .collect();
                Tensor::from_vec(v, shape, device)?
            }
        };
        Ok(t)
    }
}

/// Hands out recorded tensors in order (the fixtures' `rng.000`, `rng.001`, ...).
///
/// Each draw must ask for the recorded shape; the tensor is converted to the dtype of the kind
/// asked for (f32, or i64 for integers). Asking for more draws than were recorded is an error.
#[derive(Debug, Default)]
pub struct ReplayNoise {
    draws: VecDeque<Tensor>,
    taken: usize,
}

impl ReplayNoise {
    /// A replay source over `draws`, in the order they will be handed out.
    pub fn new(draws: impl IntoIterator<Item = Tensor>) -> Self {
        Self {
            draws: draws.into_iter().collect(),
            taken: 0,
        }
    }

    /// Number of recorded draws not handed out yet.
    pub fn remaining(&self) -> usize {
        self.draws.len()
    }

    /// Number of draws handed out so far.
    pub fn taken(&self) -> usize {
        self.taken
    }
}

impl NoiseSource for ReplayNoise {
    fn draw(&mut self, kind: Draw, shape: &[usize], device: &Device) -> Result<Tensor> {
        let index = self.taken;
        let t = self.draws.pop_front().ok_or_else(|| {
            Error::NoiseReplay(format!("draw #{index} ({kind:?}, shape {shape:?}) asked for, but only {index} were recorded"))
        })?;
        if t.dims() != shape {
            return Err(Error::NoiseReplay(format!(
                "draw #{index} ({kind:?}): asked for shape {shape:?}, recorded shape {:?}",
                t.dims()
            )));
        }
        self.taken += 1;
        let dtype = match kind {
            Draw::Integer { .. } => DType::I64,
            _ => DType::F32,
        };
        Ok(t.to_dtype(dtype)?.to_device(device)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeded_is_reproducible_and_seed_dependent() {
        let d = Device::Cpu;
        let a = SeededNoise::new(7)
            .randn(&[64], &d)
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        let b = SeededNoise::new(7)
            .randn(&[64], &d)
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        let c = SeededNoise::new(8)
            .randn(&[64], &d)
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        assert_eq!(a, b);
        assert_ne!(a, c);
    }

    #[test]
    fn seeded_normal_has_unit_moments() {
        let mut g = SeededNoise::new(1);
        let n = 200_000;
        let xs: Vec<f64> = (0..n).map(|_| g.next_normal()).collect();
        let mean = xs.iter().sum::<f64>() / n as f64;
        let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n as f64;
        // Standard error of the mean is 1/sqrt(n) ~ 0.0022; of the variance ~ sqrt(2/n) ~ 0.0032.
        assert!(mean.abs() < 0.01, "mean {mean}");
        assert!((var - 1.0).abs() < 0.015, "var {var}");
    }

    #[test]
    fn seeded_ints_and_bernoulli_stay_in_range() {
        let d = Device::Cpu;
        let mut g = SeededNoise::new(3);
        let ints = g
            .randint(2, 5, &[1000], &d)
            .unwrap()
            .to_vec1::<i64>()
            .unwrap();
        assert!(ints.iter().all(|&i| (2..5).contains(&i)));
        assert!((2..5).all(|v| ints.contains(&v)));
        let b = g
            .bernoulli(0.25, &[4000], &d)
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        let frac = b.iter().sum::<f32>() / 4000.0;
        assert!((frac - 0.25).abs() < 0.03, "bernoulli fraction {frac}");
    }

    #[test]
    fn state_round_trip_continues_the_stream() {
        let mut g = SeededNoise::new(11);
        g.next_u64();
        let mut h = SeededNoise::from_state(g.state());
        assert_eq!(g.next_u64(), h.next_u64());
    }

    #[test]
    fn replay_hands_out_in_order_and_checks_shapes() {
        let d = Device::Cpu;
        let a = Tensor::new(&[1f32, 2.0], &d).unwrap();
        let b = Tensor::new(&[3f32], &d).unwrap();
        let mut r = ReplayNoise::new([a, b]);
        assert_eq!(
            r.randn(&[2], &d).unwrap().to_vec1::<f32>().unwrap(),
            vec![1.0, 2.0]
        );
        assert!(matches!(r.randn(&[2], &d), Err(Error::NoiseReplay(_))));
        let mut r = ReplayNoise::new([Tensor::new(&[3f32], &d).unwrap()]);
        r.randn(&[1], &d).unwrap();
        assert_eq!(r.remaining(), 0);
        assert!(matches!(r.randn(&[1], &d), Err(Error::NoiseReplay(_))));
    }
}
