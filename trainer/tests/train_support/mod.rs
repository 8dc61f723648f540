//! Shared helpers of the `train_*` tests: synthetic music-like audio,
//! a tiny upsampler config, and running the `adiff` binary.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub const RATE: u32 = 8000;

/// Writes `n` one-second 16-bit WAVs of plucked harmonic notes (fundamentals 110-440 Hz, partials
/// up to the Nyquist frequency, exponential decay), deterministic in `seed`.
pub fn synth_folder(dir: &Path, n: usize, seed: u64) {
    std::fs::create_dir_all(dir).unwrap();
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut rnd = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state >> 11) as f64 / (1u64 << 53) as f64
    };
    for i in 0..n {
        let spec = hound::WavSpec {
            channels: 1,
            sample_rate: RATE,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        };
        let mut w = hound::WavWriter::create(dir.join(format!("take_{i:02}.wav")), spec).unwrap();
        let len = RATE as usize;
        let mut buf = vec![0.0f64; len];
        for _note in 0..4 {
            let f0 = 110.0 * 2f64.powf(2.0 * rnd());
            let start = (rnd() * 0.7 * len as f64) as usize;
            let decay = 3.0 + 6.0 * rnd();
            let bright = 0.5 + 0.4 * rnd();
            let mut k = 1.0;
            while k * f0 < RATE as f64 / 2.0 {
                let amp = 0.25 * bright.powf(k - 1.0);
                for (t, b) in buf.iter_mut().enumerate().skip(start) {
                    let s = (t - start) as f64 / RATE as f64;
                    *b += amp * (-decay * s).exp() * (std::f64::consts::TAU * k * f0 * s).sin();
                }
                k += 1.0;
            }
        }
        let peak = buf.iter().fold(1e-9f64, |m, v| m.max(v.abs()));
        for v in buf {
            w.write_sample((v / peak * 0.8 * 32767.0) as i16).unwrap();
        }
        w.finalize().unwrap();
    }
}

/// A model folder `config.json` for a tiny upsampler (factor 2 at 8 kHz, 8 channels, two levels).
pub fn tiny_upsampler_config(path: &Path, window: usize) {
    let cfg = serde_json::json!({
        "format": "adiff-model",
        "format_version": 1,
        "kind": "AudioDiffusionUpsampler",
        "sample_rate": RATE,
        "channels": 1,
        "window_length": window,
        "sampling": {
            "num_steps": 8,
            "sampler": {"class": "AEulerSampler", "kwargs": {}},
            "sigma_schedule": {"class": "KarrasSchedule", "kwargs": {"sigma_min": 0.0001, "sigma_max": 3.0, "rho": 9.0}}
        },
        "model": {
            "in_channels": 1,
            "factor": 2,
            "channels": 8,
            "patch_blocks": 1,
            "patch_factor": 2,
            "multipliers": [1, 2, 2],
            "factors": [2, 2],
            "num_blocks": [1, 1],
            "attentions": [0, 0, 0],
            "resnet_groups": 4,
            "kernel_multiplier_downsample": 2,
            "use_skip_scale": true,
            "use_context_time": true
        }
    });
    std::fs::write(path, serde_json::to_string_pretty(&cfg).unwrap()).unwrap();
}

/// Runs `adiff` with `args` (and extra environment), returning its output.
pub fn adiff(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_adiff"));
    c.args(args);
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().expect("running adiff")
}

/// Runs `adiff` and panics with its stderr unless it succeeds; returns stdout.
pub fn adiff_ok(args: &[&str]) -> String {
    let out = adiff(args, &[]);
    assert!(
        out.status.success(),
        "adiff {args:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

pub fn path(p: &Path, rel: &str) -> PathBuf {
    p.join(rel)
}

/// `(step, loss, lr, grad_norm, val_loss, val_loss_ema)` of every metrics line, as text (bit-exact).
pub fn curve(run: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(run.join("metrics.jsonl")).unwrap();
    text.lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            let f = |k: &str| v.get(k).map(|x| x.to_string()).unwrap_or_default();
            format!(
                "{} {} {} {} {} {}",
                f("step"),
                f("loss"),
                f("lr"),
                f("grad_norm"),
                f("val_loss"),
                f("val_loss_ema")
            )
        })
        .collect()
}

/// Validation losses `(step, val_loss)` of a run.
pub fn val_losses(run: &Path) -> Vec<(u64, f64)> {
    let text = std::fs::read_to_string(run.join("metrics.jsonl")).unwrap();
    text.lines()
        .filter_map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).ok()?;
            Some((v.get("step")?.as_u64()?, v.get("val_loss")?.as_f64()?))
        })
        .collect()
}
