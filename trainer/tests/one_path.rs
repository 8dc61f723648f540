//! One way to run a model: for every mode the plugin offers and every model kind it can run
//! (a generator, a generator with a band-extension stage, a diffusion upsampler, the shipped
//! band-extension upsampler), `adiff` and the plugin engine give bit-identical audio for the same
//! folder, clip, seed and options. The plugin is driven through its engine (capture on the audio
//! thread, render on the worker); its kept result is compared with the command line's WAV.

use adiff_core::audio::{read_audio, write_wav, AudioClip, WavEncoding};
use adiff_core::models::folder::{
    BandExtensionStage, FolderConfig, ModelFolder, ModelKind, BAND_EXTENSION_DIR,
};
use adiff_core::models::{
    AudioDiffusionModel, AudioDiffusionModelConfig, AudioDiffusionUpsampler,
    AudioDiffusionUpsamplerConfig,
};
use adiff_core::Compat;
use adiff_engine::{AudioBuf, Engine, Param, Processor, Transport};
use candle_core::{DType, Device};
use candle_nn::{VarBuilder, VarMap};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// The rate of the tiny diffusion models: low, so that the plugin's shortest length (0.5 s) is a
/// couple of windows.
const RATE: u32 = 2048;
const WINDOW: usize = 512;

fn unet(extra: serde_json::Value) -> serde_json::Value {
    let mut k = serde_json::json!({
        "in_channels": 1, "channels": 8, "patch_blocks": 1, "patch_factor": 2,
        "multipliers": [1, 2, 2], "factors": [2, 2], "num_blocks": [1, 1], "attentions": [0, 0, 0],
        "attention_heads": 2, "attention_features": 8, "attention_multiplier": 2, "resnet_groups": 4
    });
    if let (Some(k), Some(e)) = (k.as_object_mut(), extra.as_object()) {
        k.extend(e.clone());
    }
    k
}

fn save(dir: &Path, kind: ModelKind, kwargs: serde_json::Value, build: impl FnOnce(VarBuilder)) {
    let varmap = VarMap::new();
    build(VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu));
    let config = FolderConfig::new(kind, kwargs, RATE, 1, WINDOW);
    ModelFolder::from_varmap(config, &varmap)
        .expect("folder")
        .save(dir)
        .expect("saves");
}

fn generator(dir: &Path) {
    let kwargs = unet(serde_json::json!({}));
    let cfg = AudioDiffusionModelConfig::from_kwargs(&kwargs).expect("config");
    save(dir, ModelKind::AudioDiffusionModel, kwargs, |vb| {
        AudioDiffusionModel::new(&cfg, Compat::Fixed, vb).expect("model");
    });
}

/// A generator whose output goes on through the shipped band-extension model, x4.
fn staged_generator(dir: &Path) {
    generator(dir);
    let path = dir.join("config.json");
    let mut cfg = FolderConfig::read(&path).expect("config");
    cfg.band_extension = Some(BandExtensionStage { factor: 4 });
    cfg.write(&path).expect("writes");
    let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("../models/upsampler");
    std::fs::create_dir_all(dir.join(BAND_EXTENSION_DIR)).expect("stage folder");
    for f in ["config.json", "model.safetensors"] {
        std::fs::copy(shipped.join(f), dir.join(BAND_EXTENSION_DIR).join(f)).expect("copies");
    }
}

fn upsampler(dir: &Path) {
    let kwargs = unet(serde_json::json!({ "factor": [2] }));
    let cfg = AudioDiffusionUpsamplerConfig::from_kwargs(&kwargs).expect("config");
    save(dir, ModelKind::AudioDiffusionUpsampler, kwargs, |vb| {
        AudioDiffusionUpsampler::new(&cfg, Compat::Fixed, vb).expect("model");
    });
}

/// A stereo test clip: partials up to a quarter of the rate, different in each channel.
fn clip(rate: u32, n: usize) -> [Vec<f32>; 2] {
    let side = |detune: f64| -> Vec<f32> {
        (0..n)
            .map(|i| {
                let t = i as f64 / rate as f64;
                [0.02, 0.05, 0.11, 0.2]
                    .iter()
                    .enumerate()
                    .map(|(k, f)| {
                        0.2 / (k + 1) as f64
                            * (std::f64::consts::TAU * f * rate as f64 * detune * t).sin()
                    })
                    .sum::<f64>() as f32
            })
            .collect()
    };
    [side(1.0), side(1.013)]
}

fn scratch(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("adiff-one-path-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&d).expect("scratch folder");
    d
}

/// Runs `adiff` and returns the WAV it wrote to `out`.
fn cli(args: &[&str], out: &Path) -> AudioClip {
    let o = Command::new(env!("CARGO_BIN_EXE_adiff"))
        .args(args)
        .arg("-o")
        .arg(out)
        .output()
        .expect("adiff runs");
    assert!(
        o.status.success(),
        "adiff {args:?} failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    read_audio(out).expect("reads the output")
}

fn process(p: &mut Processor, l: &[f32], r: &[f32]) {
    for (a, b) in l.chunks(256).zip(r.chunks(256)) {
        let (mut a, mut b) = (a.to_vec(), b.to_vec());
        p.process(&mut a, Some(&mut b), &Transport::default());
    }
}

/// The plugin engine at `host` Hz with model folder `model` (`None`: the embedded default):
/// captures `input` on the audio thread, sets `params`, renders, and returns the kept result.
fn plugin(
    model: Option<&Path>,
    host: u32,
    input: Option<&[Vec<f32>; 2]>,
    params: &[(Param, f64)],
) -> AudioBuf {
    let e = Engine::new(adiff_plugin::models::factory()).expect("engine");
    e.set_model_path(model.map(Path::to_path_buf));
    let mut p = e.activate(f64::from(host));
    if let Some([l, r]) = input {
        e.params().set(Param::Arm, 1.0);
        process(&mut p, l, r);
        e.params().set(Param::Arm, 0.0);
        process(&mut p, &[0.0; 8], &[0.0; 8]);
    }
    for (param, v) in params {
        e.params().set(*param, *v);
    }
    let seen = e.shared().results_received();
    e.params().set(Param::Render, 1.0);
    let t = Instant::now();
    while e.shared().results_received() <= seen {
        assert!(
            t.elapsed() < Duration::from_secs(300),
            "no result: {:?}",
            e.shared().take_messages()
        );
        process(&mut p, &[0.0; 64], &[0.0; 64]);
        std::thread::sleep(Duration::from_millis(2));
    }
    e.result().expect("a kept result")
}

/// The command line's channels against the plugin's stereo result, bit for bit (a mono output is
/// on both of the plugin's sides).
fn assert_same(what: &str, cli: &AudioClip, plugin: &AudioBuf) {
    assert_eq!(f64::from(cli.sample_rate()), plugin.rate, "{what}: rates");
    assert_eq!(cli.len(), plugin.len(), "{what}: lengths");
    for c in 0..2 {
        let want = &cli.channels()[c.min(cli.num_channels() - 1)];
        let got = plugin.channel(c);
        let differ = want
            .iter()
            .zip(got)
            .filter(|(a, b)| a.to_bits() != b.to_bits())
            .count();
        assert_eq!(
            differ,
            0,
            "{what}: channel {c}: {differ} of {} samples differ",
            want.len()
        );
    }
    assert!(
        plugin.channel(0).iter().any(|v| v.abs() > 1e-4),
        "{what}: silent"
    );
}

fn write(dir: &Path, name: &str, rate: u32, c: &[Vec<f32>; 2]) -> PathBuf {
    let p = dir.join(name);
    let clip = AudioClip::new(rate, c.to_vec()).expect("clip");
    write_wav(&p, &clip, WavEncoding::Float32).expect("writes");
    p
}

const SEED: u64 = 7;
const STEPS: usize = 3;

fn s(p: &Path) -> &str {
    p.to_str().expect("a UTF-8 temp path")
}

#[test]
fn generate_inpaint_and_continue_match_for_a_generator_with_and_without_a_stage() {
    let dir = scratch("gen");
    for (tag, staged) in [("plain", false), ("staged", true)] {
        let model = dir.join(tag);
        if staged {
            staged_generator(&model);
        } else {
            generator(&model);
        }
        let out_rate = if staged { RATE * 4 } else { RATE };
        let (steps, seed) = (STEPS.to_string(), SEED.to_string());
        let common = ["--model", s(&model), "--steps", &steps, "--seed", &seed];

        // Generate: 0.5 s (two windows) with aeuler.
        let want = cli(
            &[
                &["generate", "--seconds", "0.5", "--sampler", "aeuler"],
                &common[..],
            ]
            .concat(),
            &dir.join(format!("{tag}-gen.wav")),
        );
        let got = plugin(
            Some(&model),
            out_rate,
            None,
            &[
                (Param::Mode, 0.0),
                (Param::Length, 0.5),
                (Param::Sampler, 1.0),
                (Param::Steps, STEPS as f64),
                (Param::Seed, SEED as f64),
            ],
        );
        assert_same(&format!("{tag} generate"), &want, &got);

        // Inpaint 0.5 .. 0.75 s of a 1.5 s stereo clip, and continue it by 0.5 s (four spans).
        let input = clip(RATE, 3072);
        let wav = write(&dir, &format!("{tag}-in.wav"), RATE, &input);
        let want = cli(
            &[
                &[
                    "inpaint",
                    s(&wav),
                    "--start",
                    "0.5",
                    "--end",
                    "0.75",
                    "--sampler",
                    "adpm2",
                ],
                &common[..],
            ]
            .concat(),
            &dir.join(format!("{tag}-inpaint.wav")),
        );
        let got = plugin(
            Some(&model),
            RATE,
            Some(&input),
            &[
                (Param::Mode, 2.0),
                (Param::RegionStart, 0.5),
                (Param::RegionEnd, 0.75),
                (Param::Sampler, 0.0),
                (Param::Steps, STEPS as f64),
                (Param::Seed, SEED as f64),
            ],
        );
        assert_same(&format!("{tag} inpaint"), &want, &got);
        let want = cli(
            &[&["continue", s(&wav), "--spans", "4"], &common[..]].concat(),
            &dir.join(format!("{tag}-continue.wav")),
        );
        let got = plugin(
            Some(&model),
            RATE,
            Some(&input),
            &[
                (Param::Mode, 3.0),
                (Param::Length, 0.5),
                (Param::Sampler, 0.0),
                (Param::Steps, STEPS as f64),
                (Param::Seed, SEED as f64),
            ],
        );
        assert_same(&format!("{tag} continue"), &want, &got);
        assert_eq!(got.len(), 3072 + 1024);
    }
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn upsample_matches_for_a_diffusion_upsampler_and_the_shipped_model() {
    let dir = scratch("up");
    // A diffusion upsampler (x2): the clip's band ends at a quarter of its rate.
    let model = dir.join("upsampler");
    upsampler(&model);
    let input = clip(RATE, 2048);
    let wav = write(&dir, "in.wav", RATE, &input);
    let (steps, seed) = (STEPS.to_string(), SEED.to_string());
    let want = cli(
        &[
            "upsample",
            s(&wav),
            "--model",
            s(&model),
            "--bandwidth",
            "512",
            "--sampler",
            "aeuler",
            "--steps",
            &steps,
            "--seed",
            &seed,
        ],
        &dir.join("up-diffusion.wav"),
    );
    assert_eq!(want.sample_rate(), RATE, "the same rate as the input");
    let got = plugin(
        Some(&model),
        RATE,
        Some(&input),
        &[
            (Param::Mode, 1.0),
            (Param::Factor, 0.0),
            (Param::Sampler, 1.0),
            (Param::Steps, STEPS as f64),
            (Param::Seed, SEED as f64),
        ],
    );
    assert_same("diffusion upsampler", &want, &got);

    // The shipped band-extension model (the default of both), by hand (x4: 6 kHz at 48 kHz) and
    // measured (Upsample Auto / no flag), on a clip whose band ends at 6 kHz.
    let input = clip(12_000, 2400).map(|c| {
        let low = AudioClip::mono(12_000, c).expect("clip");
        adiff_core::audio::resample_clip(&low, 48_000)
            .expect("resamples")
            .into_channels()
            .remove(0)
    });
    let wav = write(&dir, "in48.wav", 48_000, &input);
    for (flags, auto) in [(vec!["--bandwidth", "6000"], 0.0), (vec![], 1.0)] {
        let want = cli(
            &[&["upsample", s(&wav), "--seed", &seed], &flags[..]].concat(),
            &dir.join(format!("up-shipped-{auto}.wav")),
        );
        assert_eq!(want.sample_rate(), 48_000);
        let got = plugin(
            None,
            48_000,
            Some(&input),
            &[
                (Param::Mode, 1.0),
                (Param::Factor, 1.0),
                (Param::UpsampleAuto, auto),
                (Param::Seed, SEED as f64),
            ],
        );
        assert_same(&format!("shipped upsampler {flags:?}"), &want, &got);
    }
    std::fs::remove_dir_all(&dir).ok();
}
