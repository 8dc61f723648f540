//! Equalisation of the reference sinc chain's transition band: `upsample(downsample(x, K), K)`
//! attenuates the top of the kept band (windowed sinc, rolloff 0.99, 6 zero crossings, applied
//! twice). The chain's mean power response is measured exactly from impulses at every polyphase
//! offset, and its inverse (bounded) restores that band.

use super::{sinc_down, sinc_up};
use crate::{Error, Result};
use realfft::RealFftPlanner;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

/// FFT size of the measured response.
const N: usize = 1 << 14;

fn cache() -> &'static Mutex<HashMap<usize, Arc<Vec<f64>>>> {
    static C: OnceLock<Mutex<HashMap<usize, Arc<Vec<f64>>>>> = OnceLock::new();
    C.get_or_init(|| Mutex::new(HashMap::new()))
}

/// Mean power response of the down/up chain for `factor` at `N / 2 + 1` frequencies from 0 to
/// Nyquist (1 = unchanged), averaged over the `factor` impulse positions.
pub fn chain_response(factor: usize) -> Result<Arc<Vec<f64>>> {
    if let Some(r) = cache()
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get(&factor)
    {
        return Ok(r.clone());
    }
    let fft = RealFftPlanner::<f64>::new().plan_fft_forward(N);
    let mut acc = vec![0f64; N / 2 + 1];
    for p in 0..factor.max(1) {
        let mut x = vec![0f32; N];
        x[N / 2 + p] = 1.0;
        let y = sinc_up(&sinc_down(&x, factor)?, factor)?;
        let mut input: Vec<f64> = y.iter().map(|&v| v as f64).collect();
        input.resize(N, 0.0);
        let mut spec = fft.make_output_vec();
        fft.process(&mut input, &mut spec)
            .map_err(|e| Error::input("equalize", e.to_string()))?;
        for (a, c) in acc.iter_mut().zip(&spec) {
            *a += c.norm_sqr();
        }
    }
    // Normalised to the passband (the chain's gain well below the cut-off is 1 up to rounding).
    let (lo, hi) = (
        (N / 2) / (20 * factor.max(1)),
        (N / 2) / (2 * factor.max(1)),
    );
    let pass = acc[lo..hi].iter().sum::<f64>() / (hi - lo) as f64;
    let r: Vec<f64> = acc.iter().map(|a| a / pass).collect();
    let r = Arc::new(r);
    cache()
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(factor, r.clone());
    Ok(r)
}

/// `up` (a sinc upsample by `factor`) with the chain's attenuation below the cut-off undone:
/// amplitude gain `response^(-1/2)` where the response is above `floor`, at most `max_gain`.
pub fn equalize(up: &[f32], factor: usize, floor: f64, max_gain: f64) -> Result<Vec<f32>> {
    let n = up.len();
    if n < 2 || factor < 2 {
        return Ok(up.to_vec());
    }
    let resp = chain_response(factor)?;
    let mut planner = RealFftPlanner::<f64>::new();
    let (fwd, inv) = (planner.plan_fft_forward(n), planner.plan_fft_inverse(n));
    let mut input: Vec<f64> = up.iter().map(|&v| v as f64).collect();
    let mut spec = fwd.make_output_vec();
    fwd.process(&mut input, &mut spec)
        .map_err(|e| Error::input("equalize", e.to_string()))?;
    let bins = spec.len();
    for (j, c) in spec.iter_mut().enumerate() {
        // Fraction of Nyquist of bin j, then the response's nearest frequency.
        let q = j as f64 / (n as f64 / 2.0);
        if q >= 1.0 / factor as f64 {
            break;
        }
        let r = resp[((q * (N / 2) as f64).round() as usize).min(N / 2)];
        if r > floor {
            *c *= r.powf(-0.5).min(max_gain);
        }
    }
    if n.is_multiple_of(2) {
        spec[bins - 1].im = 0.0;
    }
    spec[0].im = 0.0;
    let mut out = inv.make_output_vec();
    inv.process(&mut spec, &mut out)
        .map_err(|e| Error::input("equalize", e.to_string()))?;
    Ok(out.iter().map(|v| (v / n as f64) as f32).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_chain_passes_the_low_band_and_stops_the_high_band() {
        let r = chain_response(4).unwrap();
        let at = |q: f64| r[(q * (N / 2) as f64) as usize];
        assert!((at(0.1) - 1.0).abs() < 0.01, "passband {}", at(0.1));
        assert!(at(0.245) < 0.9, "transition {}", at(0.245));
        assert!(at(0.4) < 1e-4, "stopband {}", at(0.4));
    }
}
