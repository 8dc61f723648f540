//! Inpainting, continuation and variation through adiff-core's use-case layer
//! (`adiff_core::render::Model`, which the command line and the plugin both call), with a tiny
//! random-weight generator folder:
//! - inpainting keeps the input exactly farther than the seam (`rate / 100` samples) from the
//!   regenerated samples, regenerates them, the same seed gives the same audio and another seed
//!   other audio; `Keep::Outside` and the equivalent `Keep::Mask` agree; a mask with two holes
//!   regenerates both; results come at the clip's rate and length; a sampler that cannot inpaint
//!   is refused naming adpm2; a cancel returns `Error::Cancelled`;
//! - a continuation appends exactly the asked frames after the clip, restored exactly (the last
//!   seam's samples crossfade into the continuation);
//! - a variation keeps length and rate, departs further from its input at strength 0.9 than at
//!   0.3, and is reproducible by seed;
//! - a generator with a band-extension stage generates at the stage's rate, and inpaints and
//!   continues at the clip's.

use adiff_core::audio::AudioClip;
use adiff_core::models::folder::ModelKind;
use adiff_core::models::{AudioDiffusionModel, AudioDiffusionModelConfig};
use adiff_core::render::{seam, Extend, Keep, Model, RenderOptions};
use adiff_core::sampler::SamplerKind;
use adiff_core::Compat;
use adiff_tests::tiny::save_random_folder;
use candle_core::Device;
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

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

/// The tiny generator's folder, written once per test process.
fn folder() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("adiff-render-edit-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        tiny_generator(&dir);
        dir
    })
}

fn model() -> Model {
    Model::open(folder(), &Device::Cpu).expect("opens the folder")
}

fn opts(seed: u64) -> RenderOptions {
    RenderOptions {
        steps: Some(4),
        ..RenderOptions::seeded(seed)
    }
}

fn go() -> impl FnMut(f32) -> ControlFlow<()> {
    |_| ControlFlow::Continue(())
}

/// `n` frames of a stereo test signal at `rate` (`n` not a multiple of the UNet factor).
fn clip(n: usize, rate: u32) -> AudioClip {
    let t = |i: usize| i as f32 * RATE as f32 / rate as f32;
    let l: Vec<f32> = (0..n).map(|i| 0.4 * (t(i) * 0.05).sin()).collect();
    let r: Vec<f32> = (0..n).map(|i| 0.3 * (t(i) * 0.11).cos()).collect();
    AudioClip::new(rate, vec![l, r]).expect("clip")
}

/// Distance of each sample to the nearest regenerated one (`usize::MAX`: none).
fn distances(keep: &[bool]) -> Vec<usize> {
    let holes: Vec<usize> = (0..keep.len()).filter(|&i| !keep[i]).collect();
    (0..keep.len())
        .map(|i| {
            holes
                .iter()
                .map(|&j| i.abs_diff(j))
                .min()
                .unwrap_or(usize::MAX)
        })
        .collect()
}

/// Checks `out` against `x` for inpainting with `keep`: same rate, channels and length; exactly
/// the input farther than the seam from every regenerated sample; more than half of each hole's
/// samples changed; finite.
fn check_inpainted(x: &AudioClip, out: &AudioClip, keep: &[bool], holes: &[(usize, usize)]) {
    assert_eq!(out.sample_rate(), x.sample_rate(), "the clip's rate");
    assert_eq!(out.num_channels(), x.num_channels());
    assert_eq!(out.len(), x.len(), "the clip's length");
    let fade = seam(x.sample_rate());
    assert_eq!(fade, x.sample_rate() as usize / 100);
    let dist = distances(keep);
    for c in 0..x.num_channels() {
        let (a, b) = (&x.channels()[c], &out.channels()[c]);
        let mut exact = 0;
        for i in 0..x.len() {
            if dist[i] > fade {
                assert_eq!(
                    a[i], b[i],
                    "channel {c} sample {i}, {} from the nearest hole, changed",
                    dist[i]
                );
                exact += 1;
            }
        }
        assert!(exact > 0, "nothing was far enough from the holes to check");
        for &(s, e) in holes {
            let changed = (s..e).filter(|&i| (a[i] - b[i]).abs() > 1e-4).count();
            assert!(
                changed > (e - s) / 2,
                "channel {c}: only {changed} of the {} samples of {s}..{e} changed",
                e - s
            );
        }
        assert!(b.iter().all(|v| v.is_finite()));
    }
}

fn keep_outside(n: usize, holes: &[(usize, usize)]) -> Vec<bool> {
    (0..n)
        .map(|i| !holes.iter().any(|&(s, e)| (s..e).contains(&i)))
        .collect()
}

#[test]
fn inpaint_keeps_the_rest_exactly_and_regenerates_the_span() {
    let m = model();
    let x = clip(1_500, RATE);
    let (start, end) = (600, 730);
    let keep = Keep::Outside {
        start: start as f64 / RATE as f64,
        end: end as f64 / RATE as f64,
    };
    let out = m.inpaint(&x, &keep, &opts(3), &mut go()).expect("inpaints");
    let mask = keep_outside(x.len(), &[(start, end)]);
    check_inpainted(&x, &out, &mask, &[(start, end)]);

    let again = m.inpaint(&x, &keep, &opts(3), &mut go()).expect("inpaints");
    assert_eq!(again.channels(), out.channels(), "same seed, same audio");
    let other = m.inpaint(&x, &keep, &opts(4), &mut go()).expect("inpaints");
    assert_ne!(
        other.channels()[0][start..end],
        out.channels()[0][start..end],
        "another seed, other audio"
    );
    // The same span as a per-sample mask is the same request.
    let masked = m
        .inpaint(&x, &Keep::Mask(mask), &opts(3), &mut go())
        .expect("inpaints");
    assert_eq!(
        masked.channels(),
        out.channels(),
        "Keep::Mask = Keep::Outside"
    );
}

#[test]
fn inpaint_at_another_rate_comes_back_at_the_clips_rate() {
    let m = model();
    let rate = 24_000;
    let x = clip(2_101, rate);
    let (start, end) = (900, 1_100);
    let keep = Keep::Outside {
        start: start as f64 / rate as f64,
        end: end as f64 / rate as f64,
    };
    let out = m.inpaint(&x, &keep, &opts(8), &mut go()).expect("inpaints");
    check_inpainted(
        &x,
        &out,
        &keep_outside(x.len(), &[(start, end)]),
        &[(start, end)],
    );
}

#[test]
fn a_mask_with_two_holes_regenerates_both_and_keeps_the_rest() {
    let m = model();
    let x = clip(1_500, RATE);
    let holes = [(150, 250), (1_000, 1_090)];
    let mask = keep_outside(x.len(), &holes);
    let out = m
        .inpaint(&x, &Keep::Mask(mask.clone()), &opts(6), &mut go())
        .expect("inpaints");
    check_inpainted(&x, &out, &mask, &holes);
    // Between the holes, farther than the seam from both, the input is kept (checked above for
    // every such sample): there are some.
    let fade = seam(RATE);
    assert!(250 + fade < 1_000 - fade);
}

#[test]
fn inpaint_and_continue_refuse_a_sampler_that_cannot_inpaint() {
    let m = model();
    let x = clip(700, RATE);
    let aeuler = RenderOptions {
        sampler: Some(SamplerKind::Aeuler),
        ..opts(1)
    };
    let keep = Keep::Outside {
        start: 0.01,
        end: 0.02,
    };
    let e = m
        .inpaint(&x, &keep, &aeuler, &mut go())
        .expect_err("aeuler cannot inpaint");
    assert!(e.to_string().contains("adpm2"), "{e}");
    assert!(e.to_string().contains("aeuler"), "{e}");
    let e = m
        .continue_clip(&x, Extend::Spans(1), &aeuler, &mut go())
        .expect_err("aeuler cannot continue");
    assert!(e.to_string().contains("adpm2"), "{e}");
    // adpm2, named, inpaints.
    let adpm2 = RenderOptions {
        sampler: Some(SamplerKind::Adpm2),
        ..opts(1)
    };
    m.inpaint(&x, &keep, &adpm2, &mut go())
        .expect("adpm2 inpaints");
}

/// Checks a continuation of `x` by `frames`: the clip restored exactly up to the last seam, then
/// `frames` new, finite, non-silent samples, at the clip's rate.
fn check_continued(x: &AudioClip, out: &AudioClip, frames: usize) {
    assert_eq!(out.sample_rate(), x.sample_rate(), "the clip's rate");
    assert_eq!(out.len(), x.len() + frames, "the clip and the asked frames");
    let keep = x.len() - seam(x.sample_rate());
    for c in 0..x.num_channels() {
        assert_eq!(
            &out.channels()[c][..keep],
            &x.channels()[c][..keep],
            "channel {c}: the clip changed"
        );
        let tail = &out.channels()[c][x.len()..];
        assert!(tail.iter().all(|v| v.is_finite()));
        assert!(
            tail.iter().any(|v| v.abs() > 1e-3),
            "channel {c}: the continuation is silent"
        );
    }
}

#[test]
fn continue_appends_the_asked_frames_after_an_untouched_clip() {
    let m = model();
    let x = clip(700, RATE);
    let frames = 600; // more than one span (WINDOW / 2 = 256) and not a multiple of it
    let out = m
        .continue_clip(
            &x,
            Extend::Seconds(frames as f64 / RATE as f64),
            &opts(9),
            &mut go(),
        )
        .expect("continues");
    check_continued(&x, &out, frames);
    let again = m
        .continue_clip(
            &x,
            Extend::Seconds(frames as f64 / RATE as f64),
            &opts(9),
            &mut go(),
        )
        .expect("continues");
    assert_eq!(again.channels(), out.channels(), "same seed, same audio");
    // Whole spans: each is half a model window.
    let spans = m
        .continue_clip(&x, Extend::Spans(2), &opts(9), &mut go())
        .expect("continues");
    check_continued(&x, &spans, 2 * (WINDOW / 2));
}

#[test]
fn continue_at_another_rate_appends_the_asked_frames_at_the_clips_rate() {
    let m = model();
    let rate = 24_000;
    // 1,051 frames: not a whole number of model samples, so the resampling round trip does not
    // give the length by itself.
    for n in [1_050, 1_051] {
        let x = clip(n, rate);
        let frames = 900; // 600 frames at the model's 16 kHz
        let out = m
            .continue_clip(
                &x,
                Extend::Seconds(frames as f64 / rate as f64),
                &opts(2),
                &mut go(),
            )
            .expect("continues");
        check_continued(&x, &out, frames);
    }
}

/// A hole narrower than one model sample (3 samples at 48 kHz under a 16 kHz model) is still
/// regenerated: every clip sample of a model sample's period counts.
#[test]
fn a_hole_narrower_than_a_model_sample_is_regenerated() {
    let m = model();
    let rate = 48_000;
    let x = clip(4_000, rate);
    let keep = keep_outside(x.len(), &[(2_001, 2_004)]);
    let out = m
        .inpaint(&x, &Keep::Mask(keep.clone()), &opts(6), &mut go())
        .expect("inpaints");
    let changed = (2_001..2_004)
        .filter(|&i| (x.channels()[0][i] - out.channels()[0][i]).abs() > 1e-5)
        .count();
    assert!(changed > 0, "the 3-sample hole came back as the input");
    let dist = distances(&keep);
    for i in (0..x.len()).filter(|&i| dist[i] > seam(rate)) {
        assert_eq!(
            x.channels()[0][i],
            out.channels()[0][i],
            "sample {i} changed"
        );
    }
}

#[test]
fn a_cancelled_inpaint_reports_cancelled() {
    let m = model();
    let mut calls = 0;
    let keep = Keep::Outside {
        start: 10.0 / RATE as f64,
        end: 100.0 / RATE as f64,
    };
    let res = m.inpaint(&clip(700, RATE), &keep, &opts(1), &mut |_| {
        calls += 1;
        ControlFlow::Break(())
    });
    assert!(
        matches!(res, Err(adiff_core::Error::Cancelled { .. })),
        "got {res:?}"
    );
    assert_eq!(calls, 1, "stopped at the first progress call");
}

fn rms_diff(a: &AudioClip, b: &AudioClip) -> f64 {
    let (mut sum, mut n) = (0.0, 0usize);
    for (x, y) in a.channels().iter().zip(b.channels()) {
        for (p, q) in x.iter().zip(y) {
            sum += f64::from(p - q).powi(2);
            n += 1;
        }
    }
    (sum / n.max(1) as f64).sqrt()
}

#[test]
fn a_variation_departs_further_at_a_higher_strength() {
    let m = model();
    // At another rate than the model's, and longer than one window (windowed with crossfades).
    let rate = 24_000;
    let x = clip(1_700, rate);
    // Enough steps that strengths 0.3 and 0.9 start at different sigmas of the schedule (with
    // few steps both can round to the same one, and the results are then the same).
    let vary = |strength: f64, seed: u64| {
        let o = RenderOptions {
            strength: Some(strength),
            steps: Some(20),
            ..RenderOptions::seeded(seed)
        };
        m.variation(&x, &o, &mut go()).expect("varies")
    };
    let low = vary(0.3, 5);
    let high = vary(0.9, 5);
    for v in [&low, &high] {
        assert_eq!(
            (v.sample_rate(), v.len(), v.num_channels()),
            (x.sample_rate(), x.len(), x.num_channels())
        );
        assert!(v.channels().iter().flatten().all(|s| s.is_finite()));
    }
    let (d_low, d_high) = (rms_diff(&low, &x), rms_diff(&high, &x));
    assert!(d_low > 0.0, "strength 0.3 changed nothing");
    assert!(
        d_high > d_low,
        "strength 0.9 departs {d_high} (RMS) from the input, 0.3 departs {d_low}"
    );
    assert_eq!(
        vary(0.3, 5).channels(),
        low.channels(),
        "same seed, same audio"
    );
    assert_ne!(
        vary(0.3, 6).channels(),
        low.channels(),
        "another seed, other audio"
    );
}

/// A low-rate generator with a band-extension stage (the shipped upsampler's folder copied in):
/// Generate hands back audio at the stage's output rate (`factor` times the frames, with content
/// above the network's Nyquist frequency); Inpaint and Continue hand back the clip's rate.
#[test]
fn a_band_extension_stage_generates_at_its_rate_and_edits_at_the_clips() {
    use adiff_core::models::folder::{BandExtensionStage, FolderConfig, BAND_EXTENSION_DIR};
    let dir = std::env::temp_dir().join(format!("adiff-render-stage-{}", std::process::id()));
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
    let m = Model::open(&dir, &Device::Cpu).expect("opens the folder");
    assert_eq!(m.sample_rate(), Some(RATE));
    assert_eq!(m.output_rate(), Some(RATE * 4));
    let g = m
        .generate(Some(1_200.0 / RATE as f64), &opts(1), &mut go())
        .expect("generates");
    assert_eq!((g.sample_rate(), g.len()), (RATE * 4, 4 * 1_200));
    let x = clip(700, RATE);
    let keep = Keep::Outside {
        start: 200.0 / RATE as f64,
        end: 400.0 / RATE as f64,
    };
    let i = m.inpaint(&x, &keep, &opts(2), &mut go()).expect("inpaints");
    check_inpainted(&x, &i, &keep_outside(x.len(), &[(200, 400)]), &[(200, 400)]);
    let c = m
        .continue_clip(
            &x,
            Extend::Seconds(300.0 / RATE as f64),
            &opts(3),
            &mut go(),
        )
        .expect("continues");
    check_continued(&x, &c, 300);
    // Above the network's Nyquist (RATE / 2) the stage put energy: the generated clip minus its
    // own sinc band-limit to RATE is not silent.
    use adiff_core::models::bandext::{sinc_down, sinc_up};
    let g0 = &g.channels()[0];
    let up = sinc_up(&sinc_down(g0, 4).expect("down"), 4).expect("up");
    let hf: f64 = g0
        .iter()
        .zip(&up)
        .map(|(a, b)| f64::from(a - b).powi(2))
        .sum();
    assert!(hf > 1e-6, "no energy above the network's band: {hf}");
    std::fs::remove_dir_all(&dir).ok();
}
