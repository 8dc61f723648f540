//! End to end: `adiff train` trains a tiny upsampler for a few hundred updates, its validation
//! loss falls by at least half, and the exported model folder loads and upsamples.
//!
//! The default test synthesises plucked-string audio (harmonic notes up to the Nyquist frequency,
//! so the upper band is predictable from the lower one). The ignored test runs the same on the
//! project's own dataset: `bash data/make.sh --preset tiny --out DIR`, then
//! `ADIFF_TRAIN_DATA=DIR cargo test -p adiff-trainer --test train_e2e -- --ignored`.

mod train_support;

use adiff_core::models::{AnyModel, Sampling};
use adiff_core::sampler::ignore_steps;
use adiff_core::SeededNoise;
use candle_core::{Device, Tensor};
use std::path::Path;
use train_support::*;

/// Trains for 300 updates on `data` (validation: `val`, or a quarter of the files), checks the
/// validation loss halves, the previews exist and the export upsamples.
fn train_and_sample(tmp: &Path, data: &Path, val: Option<&Path>) {
    let cfg = tmp.join("config.json");
    tiny_upsampler_config(&cfg, 512);
    let run = tmp.join("run");
    let mut args = vec![
        "train",
        "--data",
        s(data),
        "--model",
        s(&cfg),
        "--out",
        s(&run),
        "--steps",
        "300",
        "--batch-size",
        "8",
        "--lr",
        "3e-3",
        "--warmup",
        "20",
        "--val-every",
        "100",
        "--val-windows",
        "16",
        "--val-fraction",
        "0.25",
        "--sample-every",
        "300",
        "--sample-steps",
        "8",
        "--num-samples",
        "1",
        "--checkpoint-every",
        "100",
        "--ema-decay",
        "0.99",
        "--no-progress",
        "--seed",
        "3",
    ];
    if let Some(v) = val {
        args.extend(["--val-data", s(v)]);
    }
    let out = adiff_ok(&args);
    println!("{out}");
    let vals = val_losses(&run);
    let (first, last) = (vals.first().unwrap().1, vals.last().unwrap().1);
    println!("validation loss by step: {vals:?}");
    assert_eq!(vals.first().unwrap().0, 0);
    assert_eq!(vals.last().unwrap().0, 300);
    assert!(
        last < 0.5 * first,
        "validation loss fell only from {first} to {last}"
    );

    // Preview renders: a WAV and a spectrogram PNG from the EMA weights.
    let samples = run.join("samples/step-000000300");
    assert!(samples.join("sample-0.wav").is_file() && samples.join("sample-0.png").is_file());

    // The exported folder loads through the same loader every front end uses, and upsamples.
    let (header, model) = AnyModel::load(&run.join("model"), &Device::Cpu).unwrap();
    assert_eq!(header.sample_rate, RATE);
    let AnyModel::Upsampler(up) = model else {
        panic!("exported a {:?}", header.kind)
    };
    let low: Vec<f32> = (0..256).map(|i| (i as f32 * 0.2).sin() * 0.5).collect();
    let low = Tensor::from_vec(low, (1, 1, 256), &Device::Cpu).unwrap();
    let sampling = Sampling::from_settings(&header.sampling, header.compat).unwrap();
    let y = up
        .sample(
            &low,
            None,
            &sampling,
            &mut SeededNoise::new(1),
            &mut ignore_steps,
        )
        .unwrap();
    assert_eq!(y.dims(), &[1, 1, 512]);
    let v = y.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    assert!(v.iter().all(|x| x.is_finite()));
    assert!(
        v.iter().map(|x| x.abs()).fold(0.0, f32::max) > 0.05,
        "the upsampled signal is silent"
    );
}

#[test]
fn tiny_upsampler_learns_and_its_export_samples() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    synth_folder(&data, 12, 1);
    train_and_sample(tmp.path(), &data, None);
}

#[test]
#[ignore = "needs the output of data/make.sh in ADIFF_TRAIN_DATA"]
fn tiny_upsampler_learns_on_the_project_dataset() {
    let root = std::env::var_os("ADIFF_TRAIN_DATA")
        .expect("set ADIFF_TRAIN_DATA to a data/make.sh output folder");
    let root = Path::new(&root);
    let tmp = tempfile::tempdir().unwrap();
    train_and_sample(tmp.path(), &root.join("train"), Some(&root.join("test")));
}
