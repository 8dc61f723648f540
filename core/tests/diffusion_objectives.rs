//! VDiffusion and KDiffusion against math: with an oracle network that knows the data exactly,
//! the denoiser returns the data at every sigma and the loss is 0 (so loss and denoiser share one
//! preconditioning); with a zero network the loss equals the target's mean square computed here
//! independently; the draw order is sigma, then epsilon (docs/reference.md §3.11). And the v
//! objective's own velocity drives the v sampler from pure noise (σ = ∞) to the data distribution.

#![allow(clippy::needless_range_loop)]

#[path = "support/mixture.rs"]
mod mixture;

use adiff_core::diffusion::{
    Diffusion, KDiffusion, LogNormalDistribution, ObjectiveDenoiser, UniformDistribution,
    VDiffusion, VDistribution,
};
use adiff_core::sampler::{ignore_steps, Sampler, VSampler};
use adiff_core::schedule::{LinearSchedule, Schedule};
use adiff_core::{Compat, Net, NetInputs, NoiseSource, ReplayNoise, Result, SeededNoise};
use candle_core::{DType, Device, Tensor};
use mixture::{ks_distance, start_noise, Mixture};
use std::f64::consts::FRAC_PI_2;

fn host(t: &Tensor) -> Vec<f64> {
    t.to_dtype(DType::F64)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1::<f64>()
        .unwrap()
}

/// Maps each batch row of `x (B, 1, T)` with the row's time value.
fn per_row(x: &Tensor, time: &Tensor, f: impl Fn(f64, f64, usize) -> f64) -> Result<Tensor> {
    let (b, c, t) = x.dims3()?;
    let (xs, ts) = (host(x), host(time));
    let out: Vec<f64> = (0..b * c * t)
        .map(|i| f(xs[i], ts[i / (c * t)], i % (c * t)))
        .collect();
    Ok(Tensor::from_vec(out, (b, c, t), x.device())?.to_dtype(x.dtype())?)
}

/// Knows the data `c (T,)` exactly and outputs the v target for it (v objective).
struct VOracle(Vec<f64>);

impl Net for VOracle {
    fn forward(
        &self,
        x: &Tensor,
        time: &Tensor,
        _: &NetInputs,
        _: &mut dyn NoiseSource,
    ) -> Result<Tensor> {
        // x = α x₀ + β ε and v = α ε − β x₀ = (α x − x₀)/β.
        per_row(x, time, |x, t, j| {
            let (a, b) = ((t * FRAC_PI_2).cos(), (t * FRAC_PI_2).sin());
            (a * x - self.0[j]) / b
        })
    }
}

/// Knows the data exactly and outputs the EDM network target `F = (c − c_skip x_σ)/c_out`.
struct KOracle(Vec<f64>, f64);

impl Net for KOracle {
    fn forward(
        &self,
        x: &Tensor,
        c_noise: &Tensor,
        _: &NetInputs,
        _: &mut dyn NoiseSource,
    ) -> Result<Tensor> {
        let sd = self.1;
        per_row(x, c_noise, |x_in, cn, j| {
            let s = (4.0 * cn).exp();
            let norm = (s * s + sd * sd).sqrt();
            let x_sigma = x_in * norm;
            let (c_skip, c_out) = (sd * sd / (s * s + sd * sd), s * sd / norm);
            (self.0[j] - c_skip * x_sigma) / c_out
        })
    }
}

struct ZeroNet;

impl Net for ZeroNet {
    fn forward(
        &self,
        x: &Tensor,
        _: &Tensor,
        _: &NetInputs,
        _: &mut dyn NoiseSource,
    ) -> Result<Tensor> {
        Ok(x.zeros_like()?)
    }
}

fn data() -> (Vec<f64>, Tensor) {
    let c: Vec<f64> = (0..16).map(|i| ((i as f64) * 0.7).sin() * 0.8).collect();
    let x = Tensor::from_vec(c.clone(), (1, 1, 16), &Device::Cpu)
        .unwrap()
        .repeat((3, 1, 1))
        .unwrap();
    (c, x)
}

#[test]
fn oracle_networks_denoise_exactly_and_give_zero_loss() {
    let (c, x) = data();
    let eps = SeededNoise::new(3)
        .randn(&[3, 1, 16], &Device::Cpu)
        .unwrap()
        .to_dtype(DType::F64)
        .unwrap();
    let sigmas = Tensor::new(&[0.05f64, 0.9, 12.0], &Device::Cpu).unwrap();
    let x_noisy = (&x
        + eps
            .broadcast_mul(&sigmas.reshape((3, 1, 1)).unwrap())
            .unwrap())
    .unwrap();
    let inputs = NetInputs::none();
    let v = VDiffusion::new(
        VOracle(c.clone()),
        Box::new(UniformDistribution {
            vmin: 0.1,
            vmax: 5.0,
        }),
        Compat::Fixed,
    );
    let k = KDiffusion::new(
        KOracle(c.clone(), 0.2),
        Box::new(LogNormalDistribution {
            mean: -1.0,
            std: 1.0,
        }),
        0.2,
        0.0,
    );
    for (name, d) in [("v", &v as &dyn Diffusion), ("k", &k as &dyn Diffusion)] {
        let y = host(
            &d.denoise(&x_noisy, &sigmas, &inputs, &mut SeededNoise::new(0))
                .unwrap(),
        );
        for (i, got) in y.iter().enumerate() {
            assert!(
                (got - c[i % 16]).abs() < 1e-9,
                "{name}: {got} vs {}",
                c[i % 16]
            );
        }
        let loss = d
            .loss(&x, &inputs, &mut SeededNoise::new(1), None)
            .unwrap()
            .to_scalar::<f64>()
            .unwrap();
        assert!(loss.abs() < 1e-16, "{name}: oracle loss {loss}");
    }
    // The reference's division form of the v target agrees away from σ = 0.
    let v_ref = VDiffusion::new(
        VOracle(c),
        Box::new(VDistribution {
            compat: Compat::V0_0_61,
            ..Default::default()
        }),
        Compat::V0_0_61,
    );
    let loss = v_ref
        .loss(&x, &inputs, &mut SeededNoise::new(1), None)
        .unwrap()
        .to_scalar::<f64>()
        .unwrap();
    assert!(loss.abs() < 1e-12, "reference-mode oracle loss {loss}");
}

#[test]
fn zero_network_losses_match_their_closed_form_and_draw_order() {
    let (_, x) = data();
    let d = Device::Cpu;
    let sigma_draw = Tensor::new(&[0.3f32, -1.2, 0.8], &d).unwrap();
    let eps = SeededNoise::new(5).randn(&[3, 1, 16], &d).unwrap();
    let inputs = NetInputs::none();
    let (xs, es) = (host(&x), host(&eps));

    // V, fixed: σ = (vmax − vmin)·u + vmin from one uniform draw, then ε; loss = mean((αε − βx)²).
    let v = VDiffusion::new(
        ZeroNet,
        Box::new(UniformDistribution {
            vmin: 0.0,
            vmax: 2.0,
        }),
        Compat::Fixed,
    );
    let mut replay = ReplayNoise::new([sigma_draw.abs().unwrap(), eps.clone()]);
    let got = v
        .loss(&x, &inputs, &mut replay, None)
        .unwrap()
        .to_scalar::<f64>()
        .unwrap();
    assert_eq!(replay.remaining(), 0);
    let sig: Vec<f64> = host(&sigma_draw).iter().map(|u| 2.0 * u.abs()).collect();
    let want = (0..48)
        .map(|i| {
            let s = sig[i / 16];
            let (a, b) = (1.0 / (1.0 + s * s).sqrt(), s / (1.0 + s * s).sqrt());
            (a * es[i] - b * xs[i]).powi(2)
        })
        .sum::<f64>()
        / 48.0;
    assert!((got - want).abs() < 1e-5 * want, "v loss {got} vs {want}");

    // K: σ = exp(mean + std·n), x̂ = clip(c_skip·x_σ), loss = mean_b(w(σ_b)·mean((x̂ − x)²)).
    let sd = 0.5;
    let k = KDiffusion::new(
        ZeroNet,
        Box::new(LogNormalDistribution {
            mean: -0.5,
            std: 1.0,
        }),
        sd,
        0.0,
    );
    let mut replay = ReplayNoise::new([sigma_draw.clone(), eps.clone()]);
    let got = k
        .loss(&x, &inputs, &mut replay, None)
        .unwrap()
        .to_scalar::<f64>()
        .unwrap();
    let sig: Vec<f64> = host(&sigma_draw).iter().map(|n| (-0.5 + n).exp()).collect();
    let want = (0..3)
        .map(|b| {
            let s = sig[b];
            let c_skip = sd * sd / (s * s + sd * sd);
            let w = (s * s + sd * sd) / (s * sd).powi(2);
            let mse = (0..16)
                .map(|j| {
                    let i = b * 16 + j;
                    ((c_skip * (xs[i] + s * es[i])).clamp(-1.0, 1.0) - xs[i]).powi(2)
                })
                .sum::<f64>()
                / 16.0;
            w * mse
        })
        .sum::<f64>()
        / 3.0;
    assert!((got - want).abs() < 1e-5 * want, "k loss {got} vs {want}");

    // A given noise skips the ε draw: only the sigma draw is consumed.
    let mut replay = ReplayNoise::new([sigma_draw]);
    k.loss(&x, &inputs, &mut replay, Some(&eps)).unwrap();
    assert_eq!(replay.taken(), 1);
}

/// The exact v prediction for the mixture, in angle coordinates (well defined at t = 1).
struct MixtureV(Mixture);

impl Net for MixtureV {
    fn forward(
        &self,
        x: &Tensor,
        time: &Tensor,
        _: &NetInputs,
        _: &mut dyn NoiseSource,
    ) -> Result<Tensor> {
        let m = &self.0;
        per_row(x, time, |xt, t, _| {
            let (a, b) = ((t * FRAC_PI_2).cos(), (t * FRAC_PI_2).sin());
            // x_t | component k ~ N(α μ_k, α² s_k² + β²); posterior mean of x₀ within component k.
            let mut logw = Vec::new();
            for k in 0..m.weights.len() {
                let v = a * a * m.stds[k].powi(2) + b * b;
                logw.push(
                    m.weights[k].ln() - 0.5 * v.ln() - 0.5 * (xt - a * m.means[k]).powi(2) / v,
                );
            }
            let top = logw.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            let (mut num, mut den) = (0.0, 0.0);
            for k in 0..m.weights.len() {
                let w = (logw[k] - top).exp();
                let s2 = m.stds[k].powi(2);
                let v = a * a * s2 + b * b;
                num += w * (m.means[k] + a * s2 / v * (xt - a * m.means[k]));
                den += w;
            }
            (a * xt - num / den) / b
        })
    }
}

#[test]
fn v_sampler_from_pure_noise_reaches_the_data_distribution() {
    let mix = Mixture::two_bumps();
    let v = VDiffusion::new(
        MixtureV(mix.clone()),
        Box::new(UniformDistribution::default()),
        Compat::Fixed,
    );
    let inputs = NetInputs::none();
    let denoiser = ObjectiveDenoiser {
        diffusion: &v,
        inputs: &inputs,
    };
    let sigmas = LinearSchedule::angle().sigmas(100).unwrap();
    assert_eq!(sigmas[0], f64::INFINITY);
    let n = 4000;
    let z = start_noise(n, 11);
    let x = VSampler
        .sample(
            &denoiser,
            &z,
            &sigmas,
            &mut SeededNoise::new(0),
            &mut ignore_steps,
        )
        .unwrap();
    let ks = ks_distance(&host(&x), |v| mix.cdf(v));
    println!("VSampler from σ = ∞, 100 linear-angle steps: KS {ks:.4}");
    assert!(ks < 1.95 / (n as f64).sqrt(), "KS {ks}");
}
