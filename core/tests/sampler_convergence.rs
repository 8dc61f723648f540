//! Convergence of the samplers against math: on a 1-D Gaussian mixture, whose exact denoiser is
//! known in closed form (`support/mixture.rs`), every deterministic sampler's solution of the
//! probability-flow ODE `dx/dσ = (x − D(x; σ))/σ` converges to an independent fine-step RK4
//! solution from the same start noise, at the order the method claims (fitted on a log-log plot and
//! printed with `-- --nocapture`); and every sampler's output converges to the data distribution
//! (Kolmogorov-Smirnov distance to the mixture's CDF).

#[path = "support/mixture.rs"]
mod mixture;

use adiff_core::diffusion::Denoiser;
use adiff_core::sampler::{
    ignore_steps, ADPM2Sampler, AEulerSampler, DpmPp2MSampler, EulerSampler, HeunSampler,
    KarrasSampler, Sampler, VSampler,
};
use adiff_core::schedule::karras;
use adiff_core::{Compat, NoiseSource, Result, SeededNoise};
use candle_core::{DType, Tensor};
use mixture::{ks_distance, loglog_slope, start_noise, Mixture};

const SIGMA_MAX: f64 = 20.0;
const SIGMA_END: f64 = 0.02;
const RHO: f64 = 7.0;

/// Karras sigmas for `n` steps from SIGMA_MAX down to SIGMA_END (no trailing 0: the error is
/// measured at SIGMA_END, where the ODE is smooth).
fn sigmas_to_end(n: usize) -> Vec<f64> {
    let mut s = karras(SIGMA_END, SIGMA_MAX, RHO, n + 1, Compat::Fixed).expect("schedule");
    s.pop();
    s
}

/// Classical RK4 on the ODE, per element, over `m` Karras steps: the reference solution.
fn rk4_reference(mix: &Mixture, z: &[f64], m: usize) -> Vec<f64> {
    let sig = sigmas_to_end(m);
    z.iter()
        .map(|&z| {
            let mut x = SIGMA_MAX * z;
            for w in sig.windows(2) {
                let (s, h) = (w[0], w[1] - w[0]);
                let k1 = mix.ode_d(x, s);
                let k2 = mix.ode_d(x + 0.5 * h * k1, s + 0.5 * h);
                let k3 = mix.ode_d(x + 0.5 * h * k2, s + 0.5 * h);
                let k4 = mix.ode_d(x + h * k3, s + h);
                x += h / 6.0 * (k1 + 2.0 * k2 + 2.0 * k3 + k4);
            }
            x
        })
        .collect()
}

fn run(sampler: &dyn Sampler, mix: &Mixture, z: &Tensor, sigmas: &[f64], seed: u64) -> Vec<f64> {
    let denoiser = |x: &Tensor, sigma: f64, _: &mut dyn NoiseSource| -> Result<Tensor> {
        mix.denoise(x, sigma)
    };
    let mut noise = SeededNoise::new(seed);
    let out = sampler
        .sample(
            &denoiser as &dyn Denoiser,
            z,
            sigmas,
            &mut noise,
            &mut ignore_steps,
        )
        .expect("sampling");
    out.to_dtype(DType::F64)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1::<f64>()
        .unwrap()
}

fn rms(a: &[f64], b: &[f64]) -> f64 {
    (a.iter().zip(b).map(|(x, y)| (x - y).powi(2)).sum::<f64>() / a.len() as f64).sqrt()
}

/// Errors against the reference for each step count, and the fitted order.
fn order_of(name: &str, sampler: &dyn Sampler, ns: &[usize]) -> f64 {
    let mix = Mixture::two_bumps();
    let z = start_noise(256, 42);
    let zs = z.flatten_all().unwrap().to_vec1::<f64>().unwrap();
    let reference = rk4_reference(&mix, &zs, 4000);
    let errs: Vec<f64> = ns
        .iter()
        .map(|&n| rms(&run(sampler, &mix, &z, &sigmas_to_end(n), 0), &reference))
        .collect();
    let order = -loglog_slope(ns, &errs);
    let table: Vec<String> = ns
        .iter()
        .zip(&errs)
        .map(|(n, e)| format!("N={n}: {e:.3e}"))
        .collect();
    println!(
        "{name:<22} fitted order {order:.3}   ({})",
        table.join(", ")
    );
    for w in errs.windows(2) {
        assert!(
            w[1] < w[0],
            "{name}: error must fall as steps grow: {errs:?}"
        );
    }
    order
}

#[test]
fn deterministic_samplers_converge_at_their_order() {
    let first = [16, 32, 64, 128, 256];
    let second = [8, 16, 32, 64, 128];
    type OrderCase<'a> = (&'a str, Box<dyn Sampler>, &'a [usize], (f64, f64));
    let cases: Vec<OrderCase> = vec![
        ("Euler", Box::new(EulerSampler), &first, (0.85, 1.2)),
        ("VSampler (DDIM v)", Box::new(VSampler), &first, (0.85, 1.2)),
        (
            "Heun (EDM)",
            Box::new(HeunSampler::default()),
            &second,
            (1.8, 2.4),
        ),
        (
            "Karras (fixed)",
            Box::new(KarrasSampler::default()),
            &second,
            (1.8, 2.4),
        ),
        ("DPM++ 2M", Box::new(DpmPp2MSampler), &second, (1.7, 2.4)),
    ];
    for (name, sampler, ns, (lo, hi)) in cases {
        let order = order_of(name, sampler.as_ref(), ns);
        assert!(
            (lo..=hi).contains(&order),
            "{name}: fitted order {order:.3} outside [{lo}, {hi}]"
        );
    }
}

/// Samples `n` points through the full schedule (down to σ = 0) and returns the KS distance to the
/// data distribution, plus the sample mean and variance.
fn distribution_error(sampler: &dyn Sampler, steps: usize, n: usize, seed: u64) -> (f64, f64, f64) {
    let mix = Mixture::two_bumps();
    let z = start_noise(n, seed);
    let sigmas = karras(0.002, SIGMA_MAX, RHO, steps, Compat::Fixed).unwrap();
    let x = run(sampler, &mix, &z, &sigmas, seed + 1);
    let mean = x.iter().sum::<f64>() / n as f64;
    let var = x.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n as f64;
    (ks_distance(&x, |v| mix.cdf(v)), mean, var)
}

#[test]
fn every_sampler_reaches_the_data_distribution() {
    let mix = Mixture::two_bumps();
    let n = 4000;
    // KS critical value at significance 0.001 for n = 4000 is 1.95/√n ≈ 0.031.
    let ks_limit = 1.95 / (n as f64).sqrt();
    let churn = HeunSampler {
        s_churn: 10.0,
        s_tmin: 0.05,
        s_tmax: 10.0,
        s_noise: 1.0,
    };
    let cases: Vec<(&str, Box<dyn Sampler>, usize)> = vec![
        ("Euler", Box::new(EulerSampler), 100),
        ("VSampler (DDIM v)", Box::new(VSampler), 100),
        ("Heun (EDM)", Box::new(HeunSampler::default()), 40),
        ("DPM++ 2M", Box::new(DpmPp2MSampler), 40),
        ("Heun with churn", Box::new(churn), 60),
        (
            "Karras with churn",
            Box::new(KarrasSampler {
                params: churn,
                compat: Compat::Fixed,
            }),
            60,
        ),
        (
            "AEuler (ancestral)",
            Box::new(AEulerSampler::default()),
            150,
        ),
        ("ADPM2 (ancestral)", Box::new(ADPM2Sampler::default()), 60),
    ];
    for (name, sampler, steps) in cases {
        let (ks, mean, var) = distribution_error(sampler.as_ref(), steps, n, 7);
        println!(
            "{name:<22} {steps:>4} steps: KS {ks:.4} (limit {ks_limit:.4}), mean {mean:.4} (data {:.4}), var {var:.4} (data {:.4})",
            mix.mean(),
            mix.variance()
        );
        assert!(
            ks < ks_limit,
            "{name}: KS distance {ks:.4} to the data distribution"
        );
        // Standard errors: mean ~ √(var/n) ≈ 0.009, variance ~ 0.006; allow 4 of them.
        assert!((mean - mix.mean()).abs() < 0.036, "{name}: mean {mean}");
        assert!(
            (var - mix.variance()).abs() < 0.03,
            "{name}: variance {var}"
        );
    }
}

#[test]
fn too_few_steps_is_measurably_wrong() {
    // The KS check above can fail: two Euler steps land far from the data distribution.
    let (ks, _, _) = distribution_error(&EulerSampler, 2, 4000, 7);
    assert!(ks > 0.05, "KS {ks}");
}
