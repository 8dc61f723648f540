//! The sampling commands of `adiff` end to end on tiny random-weight model folders built here:
//! `generate`, `inpaint`, `continue`, `encode` + `decode` (shapes, rates, determinism, refusals).

use adiff_core::audio::{read_audio, write_wav, AudioClip, WavEncoding};
use adiff_core::models::folder::{FolderConfig, ModelFolder, ModelKind};
use adiff_core::models::{
    AudioDiffusionAutoencoder, AudioDiffusionAutoencoderConfig, AudioDiffusionModel,
    AudioDiffusionModelConfig,
};
use adiff_core::Compat;
use candle_core::{DType, Device};
use candle_nn::{VarBuilder, VarMap};
use std::path::Path;
use std::process::{Command, Output};

fn adiff(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_adiff"))
        .args(args)
        .output()
        .expect("the adiff binary runs")
}

fn ok(o: &Output) {
    assert!(
        o.status.success(),
        "adiff failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// The small UNet of the reference's model fixtures (8 channels, two levels, attention at the bottom).
fn unet_kwargs() -> serde_json::Value {
    serde_json::json!({
        "in_channels": 1, "channels": 8, "patch_blocks": 1, "patch_factor": 2, "multipliers": [1, 2, 4],
        "factors": [2, 2], "num_blocks": [1, 1], "attentions": [0, 0, 1], "attention_heads": 2,
        "attention_features": 8, "attention_multiplier": 2, "resnet_groups": 4
    })
}

fn save(
    dir: &Path,
    kind: ModelKind,
    kwargs: serde_json::Value,
    window: usize,
    build: impl FnOnce(VarBuilder),
) {
    let varmap = VarMap::new();
    build(VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu));
    let config = FolderConfig::new(kind, kwargs, 8000, 1, window);
    ModelFolder::from_varmap(config, &varmap)
        .unwrap()
        .save(dir)
        .unwrap();
}

fn tiny_generator(dir: &Path) {
    let kwargs = unet_kwargs();
    let cfg = AudioDiffusionModelConfig::from_kwargs(&kwargs).unwrap();
    save(dir, ModelKind::AudioDiffusionModel, kwargs, 512, |vb| {
        AudioDiffusionModel::new(&cfg, Compat::Fixed, vb).unwrap();
    });
}

fn tiny_autoencoder(dir: &Path) {
    let mut kwargs = unet_kwargs();
    kwargs["encoder_depth"] = 2.into();
    kwargs["encoder_channels"] = 4.into();
    kwargs["encoder_num_blocks"] = serde_json::json!([1, 1]);
    let cfg = AudioDiffusionAutoencoderConfig::from_kwargs(&kwargs).unwrap();
    save(
        dir,
        ModelKind::AudioDiffusionAutoencoder,
        kwargs,
        512,
        |vb| {
            AudioDiffusionAutoencoder::new(&cfg, Compat::Fixed, vb).unwrap();
        },
    );
}

fn write_sine(path: &Path, rate: u32, n: usize) -> AudioClip {
    let clip = AudioClip::mono(
        rate,
        (0..n).map(|i| 0.3 * (i as f32 * 0.07).sin()).collect(),
    )
    .unwrap();
    write_wav(path, &clip, WavEncoding::Float32).unwrap();
    clip
}

#[test]
fn generate_writes_the_asked_length_deterministically() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("gen");
    tiny_generator(&model);
    let (a, b) = (dir.path().join("a.wav"), dir.path().join("b.wav"));
    let m = model.to_str().unwrap();
    for out in [&a, &b] {
        ok(&adiff(&[
            "generate",
            "-o",
            out.to_str().unwrap(),
            "--model",
            m,
            "--seconds",
            "0.1",
            "--steps",
            "3",
            "--seed",
            "3",
        ]));
    }
    let clip = read_audio(&a).unwrap();
    assert_eq!((clip.sample_rate(), clip.len()), (8000, 800));
    assert!(clip.channels()[0]
        .iter()
        .all(|v| v.is_finite() && v.abs() <= 1.0));
    assert_eq!(read_audio(&b).unwrap(), clip);
    ok(&adiff(&[
        "generate",
        "-o",
        a.to_str().unwrap(),
        "--model",
        m,
        "--seconds",
        "0.1",
        "--steps",
        "3",
        "--seed",
        "4",
        "--sampler",
        "dpmpp2m",
    ]));
    assert_ne!(read_audio(&a).unwrap(), clip);
    ok(&adiff(&[
        "generate",
        "-o",
        a.to_str().unwrap(),
        "--model",
        m,
        "--steps",
        "2",
        "--out-rate",
        "16000",
    ]));
    assert_eq!(read_audio(&a).unwrap().len(), 1024);
    // Shorter than one sample: refused by name instead of sampling an empty tensor.
    let o = adiff(&[
        "generate",
        "-o",
        a.to_str().unwrap(),
        "--model",
        m,
        "--seconds",
        "0.00001",
    ]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("shorter than one sample"), "{err}");
}

#[test]
fn inpaint_and_continue_keep_rate_and_length() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("gen");
    tiny_generator(&model);
    let m = model.to_str().unwrap();
    let input = dir.path().join("in.wav");
    let clip = write_sine(&input, 8000, 2000);
    let out = dir.path().join("out.wav");
    let (i, o) = (input.to_str().unwrap(), out.to_str().unwrap());
    ok(&adiff(&[
        "inpaint", i, "-o", o, "--model", m, "--start", "0.1", "--end", "0.15", "--steps", "3",
    ]));
    let y = read_audio(&out).unwrap();
    assert_eq!((y.sample_rate(), y.len()), (8000, 2000));
    // Outside the span the clip is kept.
    let kept = (0..800)
        .chain(1200..2000)
        .map(|k| (y.channels()[0][k] - clip.channels()[0][k]).abs())
        .fold(0f32, f32::max);
    assert!(kept < 1e-5, "kept region moved by {kept}");
    ok(&adiff(&[
        "continue", i, "-o", o, "--model", m, "--spans", "2", "--steps", "3",
    ]));
    let y = read_audio(&out).unwrap();
    assert_eq!((y.sample_rate(), y.len()), (8000, 2000 + 2 * 256));
    assert_eq!(&y.channels()[0][..2000], &clip.channels()[0][..]);
    let bad = adiff(&[
        "inpaint", i, "-o", o, "--model", m, "--start", "0.2", "--end", "0.1",
    ]);
    assert!(!bad.status.success());
}

#[test]
fn encode_then_decode_round_trips_the_shape() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("ae");
    tiny_autoencoder(&model);
    let m = model.to_str().unwrap();
    let input = dir.path().join("in.wav");
    write_sine(&input, 8000, 1000);
    let latent = dir.path().join("z.safetensors");
    let out = dir.path().join("out.wav");
    ok(&adiff(&[
        "encode",
        input.to_str().unwrap(),
        "-o",
        latent.to_str().unwrap(),
        "--model",
        m,
    ]));
    let z = candle_core::safetensors::load(&latent, &Device::Cpu).unwrap();
    // The encoder folds patch_factor x factors = 8 samples into each latent frame.
    assert_eq!(z["latent"].dims(), &[1, 4, 1000 / 8]);
    ok(&adiff(&[
        "decode",
        latent.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "--model",
        m,
        "--steps",
        "3",
    ]));
    // 1000 samples are longer than the model's 512-sample window: both commands ran window by
    // window, and the pieces join to the whole length.
    let y = read_audio(&out).unwrap();
    assert_eq!((y.sample_rate(), y.len()), (8000, 1000));
    assert!(y.channels()[0].iter().all(|v| v.is_finite()));
    // A WAV is not a latent file.
    let bad = adiff(&[
        "decode",
        input.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "--model",
        m,
    ]);
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("not a latent file"));
    // An `info` tensor of the wrong dtype is refused naming the file, not with a bare dtype error.
    let mut z = z;
    z.insert(
        "info".to_string(),
        candle_core::Tensor::new(&[8000f32, 1000.0, 0.0], &Device::Cpu).unwrap(),
    );
    let forged = dir.path().join("forged.safetensors");
    candle_core::safetensors::save(&z, &forged).unwrap();
    let bad = adiff(&[
        "decode",
        forged.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "--model",
        m,
    ]);
    assert!(!bad.status.success());
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(
        err.contains("forged.safetensors") && err.contains("malformed `info`"),
        "{err}"
    );
}
