//! Inpaint and Continue with a model folder in the plugin engine's core renderer: the kept part of
//! the clip comes back exactly (RePaint returns the source where the mask keeps it), the region is
//! regenerated, the same seed gives the same audio, and a continuation appends exactly the asked
//! number of frames after an untouched copy of the clip.

use adiff_core::models::folder::ModelKind;
use adiff_core::models::{AudioDiffusionModel, AudioDiffusionModelConfig};
use adiff_core::Compat;
use adiff_engine::core_renderer::CoreRenderer;
use adiff_engine::{AudioBuf, RenderSettings, Renderer, SamplerKind};
use adiff_tests::tiny::save_random_folder;
use std::path::{Path, PathBuf};

const RATE: u32 = 16_000;
const WINDOW: usize = 512;

/// A tiny generator (mono, total factor 8) with random weights, saved as a model folder.
fn tiny_generator(dir: &Path) {
    let kwargs = serde_json::json!({
        "in_channels": 1, "channels": 8, "patch_blocks": 1, "patch_factor": 2,
        "multipliers": [1, 2, 2], "factors": [2, 2], "num_blocks": [1, 1], "attentions": [0, 0, 0],
        "attention_heads": 2, "attention_features": 8, "attention_multiplier": 2, "resnet_groups": 4
    });
    let cfg = AudioDiffusionModelConfig::from_kwargs(&kwargs).expect("config");
    save_random_folder(
        dir,
        ModelKind::AudioDiffusionModel,
        kwargs,
        (RATE, 1, WINDOW),
        |vb| AudioDiffusionModel::new(&cfg, Compat::Fixed, vb).map(drop),
    );
}

fn renderer() -> CoreRenderer {
    let dir: PathBuf = std::env::temp_dir().join(format!("adiff-core-edit-{}", std::process::id()));
    if !dir.join("model.safetensors").exists() {
        std::fs::create_dir_all(&dir).expect("temp dir");
        tiny_generator(&dir);
    }
    CoreRenderer::load(&dir).expect("loads the folder")
}

fn settings(seed: u64) -> RenderSettings {
    RenderSettings {
        steps: 4,
        sampler: SamplerKind::Adpm2,
        seed,
        guidance: 1.0,
        factor: 4,
    }
}

/// 700 frames (not a multiple of the UNet factor) of a stereo test signal.
fn clip() -> AudioBuf {
    let l: Vec<f32> = (0..700).map(|i| 0.4 * (i as f32 * 0.05).sin()).collect();
    let r: Vec<f32> = (0..700).map(|i| 0.3 * (i as f32 * 0.11).cos()).collect();
    AudioBuf::from_channels(l, r, f64::from(RATE))
}

#[test]
fn inpaint_keeps_the_rest_exactly_and_regenerates_the_region() {
    let mut r = renderer();
    let x = clip();
    let (start, end) = (200, 330);
    let out = r
        .inpaint(&x, start, end, &settings(3), &mut |_| true)
        .expect("inpaints");
    assert_eq!(out.len(), x.len());
    for c in 0..2 {
        let (a, b) = (x.channel(c), out.channel(c));
        for i in (0..start).chain(end..x.len()) {
            assert_eq!(
                a[i], b[i],
                "channel {c} sample {i} outside the region changed"
            );
        }
        let changed = (start..end).filter(|&i| (a[i] - b[i]).abs() > 1e-4).count();
        assert!(
            changed > (end - start) / 2,
            "channel {c}: only {changed} region samples changed"
        );
        assert!(b.iter().all(|v| v.is_finite()));
    }
    let again = r
        .inpaint(&x, start, end, &settings(3), &mut |_| true)
        .expect("inpaints");
    assert_eq!(again.channel(0), out.channel(0), "same seed, same audio");
    let other = r
        .inpaint(&x, start, end, &settings(4), &mut |_| true)
        .expect("inpaints");
    assert_ne!(
        other.channel(0),
        out.channel(0),
        "another seed, other audio"
    );
}

#[test]
fn continue_appends_the_asked_frames_after_an_untouched_clip() {
    let mut r = renderer();
    let x = clip();
    let frames = 600; // more than one span (WINDOW / 2 = 256) and not a multiple of it
    let out = r
        .continue_clip(&x, frames, &settings(9), &mut |_| true)
        .expect("continues");
    assert_eq!(out.len(), x.len() + frames);
    for c in 0..2 {
        assert_eq!(
            &out.channel(c)[..x.len()],
            x.channel(c),
            "channel {c}: the clip changed"
        );
        let tail = &out.channel(c)[x.len()..];
        assert!(tail.iter().all(|v| v.is_finite()));
        assert!(
            tail.iter().any(|v| v.abs() > 1e-3),
            "channel {c}: the continuation is silent"
        );
    }
}

#[test]
fn a_cancelled_inpaint_reports_cancelled() {
    let mut r = renderer();
    let mut calls = 0;
    let res = r.inpaint(&clip(), 10, 100, &settings(1), &mut |_| {
        calls += 1;
        false
    });
    assert!(
        matches!(res, Err(adiff_engine::EngineError::Cancelled)),
        "got {res:?}"
    );
    assert_eq!(calls, 1, "stopped at the first step");
}

/// A low-rate generator with a band-extension stage (the shipped upsampler's folder copied in):
/// Generate, Inpaint and Continue hand back audio at the stage's output rate, `factor` times the
/// frames, and the stage adds content above the network's Nyquist frequency.
#[test]
fn a_band_extension_stage_brings_every_mode_to_the_output_rate() {
    use adiff_core::models::folder::{BandExtensionStage, FolderConfig, BAND_EXTENSION_DIR};
    let dir = std::env::temp_dir().join(format!("adiff-core-stage-{}", std::process::id()));
    std::fs::create_dir_all(dir.join(BAND_EXTENSION_DIR)).expect("temp dir");
    tiny_generator(&dir);
    let cfg_path = dir.join("config.json");
    let mut cfg = FolderConfig::read(&cfg_path).expect("config");
    cfg.band_extension = Some(BandExtensionStage { factor: 4 });
    cfg.write(&cfg_path).expect("writes");
    let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("../models/upsampler");
    for f in ["config.json", "model.safetensors"] {
        std::fs::copy(shipped.join(f), dir.join(BAND_EXTENSION_DIR).join(f)).expect("copies");
    }
    let mut r = CoreRenderer::load(&dir).expect("loads the folder");
    assert_eq!(r.sample_rate(), f64::from(RATE));
    let out_rate = f64::from(RATE * 4);
    let g = r
        .generate(1200, &settings(1), &mut |_| true)
        .expect("generates");
    assert_eq!((g.rate, g.len()), (out_rate, 4800));
    let x = clip();
    let i = r
        .inpaint(&x, 200, 400, &settings(2), &mut |_| true)
        .expect("inpaints");
    assert_eq!((i.rate, i.len()), (out_rate, 4 * x.len()));
    let c = r
        .continue_clip(&x, 300, &settings(3), &mut |_| true)
        .expect("continues");
    assert_eq!((c.rate, c.len()), (out_rate, 4 * (x.len() + 300)));
    // Above the network's Nyquist (RATE / 2) the stage put energy: the generated clip minus its
    // own sinc band-limit to RATE is not silent.
    use adiff_core::models::bandext::{sinc_down, sinc_up};
    let up = sinc_up(&sinc_down(g.channel(0), 4).expect("down"), 4).expect("up");
    let hf: f64 = g
        .channel(0)
        .iter()
        .zip(&up)
        .map(|(a, b)| f64::from(a - b).powi(2))
        .sum();
    assert!(hf > 1e-6, "no energy above the network's band: {hf}");
    std::fs::remove_dir_all(&dir).ok();
}
