//! Fréchet distance between the log-mel statistics of two sets of clips (issue 11's generator
//! metric): 128 mel bands (HTK mel scale, triangular filters over the STFT power, n_fft 2048, hop
//! 512), log10 of the band power floored at 1e-10, mean and covariance over all frames, then
//! `|mu1 - mu2|^2 + tr(S1 + S2 - 2 (S1^1/2 S2 S1^1/2)^1/2)`.

use adiff_core::audio::stft::power_spectrogram;
use anyhow::Result;

/// Mel bands.
pub const MELS: usize = 128;

fn hz_to_mel(f: f64) -> f64 {
    2595.0 * (1.0 + f / 700.0).log10()
}

fn mel_to_hz(m: f64) -> f64 {
    700.0 * (10f64.powf(m / 2595.0) - 1.0)
}

/// Triangular filters `MELS x (n_fft/2 + 1)` from 0 Hz to Nyquist at `rate`.
pub fn mel_filters(rate: u32, n_fft: usize) -> Vec<Vec<f64>> {
    let bins = n_fft / 2 + 1;
    let top = hz_to_mel(rate as f64 / 2.0);
    let edges: Vec<f64> = (0..MELS + 2)
        .map(|i| mel_to_hz(top * i as f64 / (MELS + 1) as f64))
        .collect();
    (0..MELS)
        .map(|m| {
            let (l, c, r) = (edges[m], edges[m + 1], edges[m + 2]);
            (0..bins)
                .map(|k| {
                    let f = k as f64 * rate as f64 / n_fft as f64;
                    if f <= l || f >= r {
                        0.0
                    } else if f <= c {
                        (f - l) / (c - l)
                    } else {
                        (r - f) / (r - c)
                    }
                })
                .collect()
        })
        .collect()
}

/// Running sums of log-mel frames.
pub struct Stats {
    n: usize,
    sum: Vec<f64>,
    outer: Vec<f64>,
    filters: Vec<Vec<f64>>,
}

impl Stats {
    /// Empty statistics for clips at `rate`.
    pub fn new(rate: u32) -> Self {
        Self {
            n: 0,
            sum: vec![0.0; MELS],
            outer: vec![0.0; MELS * MELS],
            filters: mel_filters(rate, 2048),
        }
    }

    /// Adds every frame of a mono clip.
    pub fn add(&mut self, x: &[f32]) -> Result<()> {
        for frame in power_spectrogram(x, 2048, 512)? {
            let v: Vec<f64> = self
                .filters
                .iter()
                .map(|f| {
                    let p: f64 = f.iter().zip(&frame).map(|(a, b)| a * b).sum();
                    p.max(1e-10).log10()
                })
                .collect();
            for i in 0..MELS {
                self.sum[i] += v[i];
                for j in 0..MELS {
                    self.outer[i * MELS + j] += v[i] * v[j];
                }
            }
            self.n += 1;
        }
        Ok(())
    }

    /// Mean and (unbiased) covariance.
    fn moments(&self) -> (Vec<f64>, Vec<f64>) {
        let n = self.n.max(2) as f64;
        let mu: Vec<f64> = self.sum.iter().map(|s| s / n).collect();
        let mut cov = vec![0.0; MELS * MELS];
        for i in 0..MELS {
            for j in 0..MELS {
                cov[i * MELS + j] = (self.outer[i * MELS + j] - n * mu[i] * mu[j]) / (n - 1.0);
            }
        }
        (mu, cov)
    }
}

/// Eigenvalues and eigenvectors (columns of `v`) of a symmetric `n x n` matrix (cyclic Jacobi).
pub fn symmetric_eigen(a: &[f64], n: usize) -> (Vec<f64>, Vec<f64>) {
    let mut a = a.to_vec();
    let mut v = vec![0.0; n * n];
    for i in 0..n {
        v[i * n + i] = 1.0;
    }
    for _sweep in 0..60 {
        let off: f64 = (0..n)
            .flat_map(|i| (0..n).filter(move |&j| j != i).map(move |j| (i, j)))
            .map(|(i, j)| a[i * n + j].powi(2))
            .sum();
        let scale: f64 = (0..n)
            .map(|i| a[i * n + i].powi(2))
            .sum::<f64>()
            .max(1e-300);
        if off <= 1e-22 * scale {
            break;
        }
        for p in 0..n {
            for q in p + 1..n {
                let apq = a[p * n + q];
                if apq.abs() < 1e-300 {
                    continue;
                }
                let theta = (a[q * n + q] - a[p * n + p]) / (2.0 * apq);
                let t = theta.signum() / (theta.abs() + (theta * theta + 1.0).sqrt());
                let t = if theta == 0.0 { 1.0 } else { t };
                let c = 1.0 / (t * t + 1.0).sqrt();
                let s = t * c;
                for k in 0..n {
                    let (akp, akq) = (a[k * n + p], a[k * n + q]);
                    a[k * n + p] = c * akp - s * akq;
                    a[k * n + q] = s * akp + c * akq;
                }
                for k in 0..n {
                    let (apk, aqk) = (a[p * n + k], a[q * n + k]);
                    a[p * n + k] = c * apk - s * aqk;
                    a[q * n + k] = s * apk + c * aqk;
                }
                for k in 0..n {
                    let (vkp, vkq) = (v[k * n + p], v[k * n + q]);
                    v[k * n + p] = c * vkp - s * vkq;
                    v[k * n + q] = s * vkp + c * vkq;
                }
            }
        }
    }
    ((0..n).map(|i| a[i * n + i]).collect(), v)
}

fn matmul(a: &[f64], b: &[f64], n: usize) -> Vec<f64> {
    let mut c = vec![0.0; n * n];
    for i in 0..n {
        for k in 0..n {
            let aik = a[i * n + k];
            for j in 0..n {
                c[i * n + j] += aik * b[k * n + j];
            }
        }
    }
    c
}

/// Fréchet distance between two Gaussians given as (mean, covariance) of dimension `n`.
pub fn frechet(mu1: &[f64], s1: &[f64], mu2: &[f64], s2: &[f64], n: usize) -> f64 {
    let (l, v) = symmetric_eigen(s1, n);
    // sqrt(S1) = V diag(sqrt l) V^T.
    let mut root = vec![0.0; n * n];
    for i in 0..n {
        for j in 0..n {
            root[i * n + j] = (0..n)
                .map(|k| v[i * n + k] * l[k].max(0.0).sqrt() * v[j * n + k])
                .sum();
        }
    }
    let m = matmul(&matmul(&root, s2, n), &root, n);
    let sym: Vec<f64> = (0..n * n)
        .map(|i| 0.5 * (m[i] + m[(i % n) * n + i / n]))
        .collect();
    let (lm, _) = symmetric_eigen(&sym, n);
    let tr_sqrt: f64 = lm.iter().map(|x| x.max(0.0).sqrt()).sum();
    let d2: f64 = mu1.iter().zip(mu2).map(|(a, b)| (a - b).powi(2)).sum();
    let tr: f64 = (0..n).map(|i| s1[i * n + i] + s2[i * n + i]).sum();
    d2 + tr - 2.0 * tr_sqrt
}

/// Fréchet log-mel distance between two sets of statistics.
pub fn distance(a: &Stats, b: &Stats) -> f64 {
    let ((m1, s1), (m2, s2)) = (a.moments(), b.moments());
    frechet(&m1, &s1, &m2, &s2, MELS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frechet_of_diagonal_gaussians_is_closed_form() {
        // Diagonal: sum (m1-m2)^2 + sum (sqrt(a) - sqrt(b))^2.
        let n = 3;
        let (a, b) = ([1.0, 4.0, 9.0], [4.0, 4.0, 1.0]);
        let mut s1 = vec![0.0; 9];
        let mut s2 = vec![0.0; 9];
        for i in 0..n {
            s1[i * n + i] = a[i];
            s2[i * n + i] = b[i];
        }
        let d = frechet(&[0.0, 1.0, 0.0], &s1, &[1.0, 1.0, 2.0], &s2, n);
        let want = 1.0 + 4.0 + (1.0f64 - 2.0).powi(2) + 0.0 + (3.0f64 - 1.0).powi(2);
        assert!((d - want).abs() < 1e-9, "{d} vs {want}");
        // Identical Gaussians (full covariance): 0.
        let s = [2.0, 0.5, 0.1, 0.5, 1.0, 0.2, 0.1, 0.2, 3.0];
        assert!(frechet(&[1.0, 2.0, 3.0], &s, &[1.0, 2.0, 3.0], &s, 3).abs() < 1e-9);
    }

    #[test]
    fn jacobi_reconstructs_a_symmetric_matrix() {
        let a = [4.0, 1.0, 2.0, 1.0, 3.0, 0.5, 2.0, 0.5, 5.0];
        let (l, v) = symmetric_eigen(&a, 3);
        for i in 0..3 {
            for j in 0..3 {
                let r: f64 = (0..3).map(|k| v[i * 3 + k] * l[k] * v[j * 3 + k]).sum();
                assert!((r - a[i * 3 + j]).abs() < 1e-10);
            }
        }
    }

    #[test]
    fn mel_filters_cover_the_band() {
        let f = mel_filters(48_000, 2048);
        assert_eq!((f.len(), f[0].len()), (MELS, 1025));
        // Every filter has weight, and peaks at most 1.
        assert!(f
            .iter()
            .all(|r| r.iter().sum::<f64>() > 0.0 && r.iter().all(|&w| w <= 1.0)));
    }
}
