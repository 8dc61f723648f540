//! Ridge regression by normal equations (f64, Cholesky): how a band-extension model is trained.
//! Frames are streamed in; the sums `XᵀX`, `XᵀY` are all that is kept.

use crate::{Error, Result};

/// Streaming sums of a least-squares problem with `d` inputs and `m` outputs.
#[derive(Debug, Clone)]
pub struct Normal {
    d: usize,
    m: usize,
    xtx: Vec<f64>,
    xty: Vec<f64>,
    rows: usize,
}

impl Normal {
    /// Empty sums.
    pub fn new(d: usize, m: usize) -> Self {
        Self {
            d,
            m,
            xtx: vec![0.0; d * d],
            xty: vec![0.0; d * m],
            rows: 0,
        }
    }

    /// Rows seen.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Adds one row `x` (length d) with outputs `y` (length m).
    pub fn add(&mut self, x: &[f64], y: &[f64]) -> Result<()> {
        if x.len() != self.d || y.len() != self.m {
            return Err(Error::input(
                "row",
                format!(
                    "{} inputs and {} outputs, expected {} and {}",
                    x.len(),
                    y.len(),
                    self.d,
                    self.m
                ),
            ));
        }
        for i in 0..self.d {
            let xi = x[i];
            let row = &mut self.xtx[i * self.d..(i + 1) * self.d];
            for (r, &xj) in row.iter_mut().zip(x) {
                *r += xi * xj;
            }
            let out = &mut self.xty[i * self.m..(i + 1) * self.m];
            for (o, &yj) in out.iter_mut().zip(y) {
                *o += xi * yj;
            }
        }
        self.rows += 1;
        Ok(())
    }

    /// Solves `(XᵀX + λ n I) W = XᵀY` (no penalty on the last input, the bias); `W` is `d x m`
    /// row-major.
    pub fn solve(&self, lambda: f64) -> Result<Vec<f64>> {
        let d = self.d;
        let mut a = self.xtx.clone();
        for i in 0..d.saturating_sub(1) {
            a[i * d + i] += lambda * self.rows as f64;
        }
        // Cholesky a = L Lᵀ, L stored in the lower triangle.
        for j in 0..d {
            let mut s = a[j * d + j];
            for k in 0..j {
                s -= a[j * d + k] * a[j * d + k];
            }
            if s <= 0.0 {
                return Err(Error::input(
                    "regression",
                    "the normal equations are not positive definite (too few frames?)",
                ));
            }
            let l = s.sqrt();
            a[j * d + j] = l;
            for i in j + 1..d {
                let mut t = a[i * d + j];
                for k in 0..j {
                    t -= a[i * d + k] * a[j * d + k];
                }
                a[i * d + j] = t / l;
            }
        }
        let mut w = self.xty.clone();
        for c in 0..self.m {
            // Forward: L z = b, then back: Lᵀ w = z.
            for i in 0..d {
                let mut t = w[i * self.m + c];
                for k in 0..i {
                    t -= a[i * d + k] * w[k * self.m + c];
                }
                w[i * self.m + c] = t / a[i * d + i];
            }
            for i in (0..d).rev() {
                let mut t = w[i * self.m + c];
                for k in i + 1..d {
                    t -= a[k * d + i] * w[k * self.m + c];
                }
                w[i * self.m + c] = t / a[i * d + i];
            }
        }
        Ok(w)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recovers_an_exact_linear_map() {
        // y = [2 x0 - x1 + 3, 0.5 x1 + 1] with a bias input last.
        let mut n = Normal::new(3, 2);
        for i in 0..50 {
            let (x0, x1) = ((i as f64 * 0.37).sin(), (i as f64 * 0.11).cos());
            n.add(&[x0, x1, 1.0], &[2.0 * x0 - x1 + 3.0, 0.5 * x1 + 1.0])
                .unwrap();
        }
        let w = n.solve(0.0).unwrap();
        let want = [2.0, 0.0, -1.0, 0.5, 3.0, 1.0];
        for (a, b) in w.iter().zip(want) {
            assert!((a - b).abs() < 1e-9, "{w:?}");
        }
        assert!(Normal::new(2, 1).solve(0.0).is_err());
    }
}
