//! The plugin engine with a model folder (adiff-core): capture, upsample on the worker, play
//! back, and compare with what `adiff upsample` writes for the same model, seed and settings.

use adiff_core::audio::{resample_clip, write_wav, AudioClip, WavEncoding};
use adiff_core::models::folder::ModelKind;
use adiff_core::models::{AudioDiffusionUpsampler, AudioDiffusionUpsamplerConfig};
use adiff_core::Compat;
use adiff_engine::{Engine, Param, Processor, Transport};
use adiff_tests::tiny::save_random_folder;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

const RATE: u32 = 16_000;
const SEED: u64 = 5;
const STEPS: usize = 3;

/// A tiny upsampler (x2) with random weights, saved as a model folder.
fn tiny_upsampler(dir: &Path) {
    let kwargs = serde_json::json!({
        "in_channels": 1, "channels": 8, "patch_blocks": 1, "patch_factor": 2,
        "multipliers": [1, 2, 2], "factors": [2, 2], "num_blocks": [1, 1], "attentions": [0, 0, 0],
        "attention_heads": 2, "attention_features": 8, "attention_multiplier": 2, "resnet_groups": 4,
        "factor": [2]
    });
    let cfg = AudioDiffusionUpsamplerConfig::from_kwargs(&kwargs).expect("config");
    save_random_folder(
        dir,
        ModelKind::AudioDiffusionUpsampler,
        kwargs,
        (RATE, 1, 2048),
        |vb| AudioDiffusionUpsampler::new(&cfg, Compat::Fixed, vb).map(drop),
    );
}

fn run(p: &mut Processor, input: &[f32]) -> Vec<f32> {
    let mut out = Vec::with_capacity(input.len());
    for chunk in input.chunks(256) {
        let mut l = chunk.to_vec();
        let mut r = chunk.to_vec();
        p.process(&mut l, Some(&mut r), &Transport::default());
        out.extend_from_slice(&l);
    }
    out
}

fn scratch_dir() -> PathBuf {
    let d = std::env::temp_dir().join(format!("adiff-plugin-core-{}", std::process::id()));
    std::fs::create_dir_all(&d).expect("temp dir");
    d
}

#[test]
fn folder_model_upsample_in_the_plugin_matches_the_command_line() {
    let dir = scratch_dir();
    let model = dir.join("tiny-upsampler");
    tiny_upsampler(&model);

    let engine = Engine::new(adiff_plugin::models::factory()).expect("engine");
    engine.set_model_path(Some(model.clone()));
    let mut p = engine.activate(f64::from(RATE));
    let signal: Vec<f32> = (0..6000).map(|i| 0.4 * (i as f32 * 0.05).sin()).collect();
    let params = engine.params();
    params.set(Param::Arm, 1.0);
    run(&mut p, &signal);
    params.set(Param::Arm, 0.0);
    params.set(Param::Mode, 1.0);
    params.set(Param::Sampler, 1.0); // AEuler
    params.set(Param::Steps, STEPS as f64);
    params.set(Param::Seed, SEED as f64);
    params.set(Param::Render, 1.0);
    run(&mut p, &[0.0; 8]);
    let t = Instant::now();
    while engine.shared().results_received() == 0 {
        assert!(
            t.elapsed() < Duration::from_secs(300),
            "no result: {:?}",
            engine.shared().take_messages()
        );
        run(&mut p, &[0.0; 64]);
        std::thread::sleep(Duration::from_millis(5));
    }
    params.set(Param::Trigger, 1.0);
    let played = run(&mut p, &vec![0.0; signal.len()]);

    // The command line on the same input brought to the model's input rate (8 kHz).
    let cli = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/debug/adiff");
    if !cli.is_file() {
        eprintln!(
            "skipping the command-line comparison: {} is not built",
            cli.display()
        );
        return;
    }
    let clip = AudioClip::new(RATE, vec![signal.clone(), signal.clone()]).expect("clip");
    let low = resample_clip(&clip, RATE / 2).expect("resample");
    let input = dir.join("low.wav");
    write_wav(&input, &low, WavEncoding::Float32).expect("writes");
    let output = dir.join("up.wav");
    let status = Command::new(&cli)
        .args(["upsample"])
        .arg(&input)
        .arg("-o")
        .arg(&output)
        .arg("--model")
        .arg(&model)
        .args([
            "--sampler",
            "aeuler",
            "--steps",
            &STEPS.to_string(),
            "--seed",
            &SEED.to_string(),
        ])
        .status()
        .expect("runs adiff");
    assert!(status.success());
    let expected = adiff_core::audio::read_audio(&output).expect("reads");
    assert_eq!(expected.sample_rate(), RATE);
    let want = &expected.channels()[0];
    assert_eq!(want.len(), played.len());
    let err = played
        .iter()
        .zip(want)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    assert!(
        err < 1e-5,
        "plugin playback differs from `adiff upsample` by {err}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
