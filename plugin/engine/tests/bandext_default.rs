//! The shipped band-extension upsampler (`models/upsampler`) behind the engine, as the plugin's
//! default model: an Upsample render plays back exactly `BandExtension::upsample_clip` of the
//! captured clip (brought down by the factor with the reference's sinc `downsample`), same seed.

use adiff_core::audio::AudioClip;
use adiff_core::models::bandext::{sinc_down, BandExtension};
use adiff_core::SeededNoise;
use adiff_engine::bandext_renderer::BandExtRenderer;
use adiff_engine::{
    AudioBuf, Engine, Param, Processor, RenderSettings, Renderer, SamplerKind, SketchRenderer,
    Transport,
};
use std::time::{Duration, Instant};

const CONFIG: &str = include_str!("../../../models/upsampler/config.json");
const WEIGHTS: &[u8] = include_bytes!("../../../models/upsampler/model.safetensors");

fn engine() -> Engine {
    Engine::new(Box::new(|_| {
        let r = BandExtRenderer::from_bytes(
            CONFIG,
            WEIGHTS,
            "models/upsampler",
            Some(Box::new(SketchRenderer::new(48_000.0))),
        )?;
        Ok(Box::new(r) as Box<dyn Renderer>)
    }))
    .expect("engine starts")
}

/// A band-limited stereo test signal: partials below 2.5 kHz, different in each channel.
fn signal(n: usize, rate: f64, detune: f32) -> Vec<f32> {
    (0..n)
        .map(|i| {
            let t = i as f32 / rate as f32;
            [220.0f32, 660.0, 1320.0, 2400.0]
                .iter()
                .enumerate()
                .map(|(k, f)| 0.2 / (k + 1) as f32 * (std::f32::consts::TAU * f * detune * t).sin())
                .sum()
        })
        .collect()
}

fn run(p: &mut Processor, left: &[f32], right: &[f32], block: usize) -> (Vec<f32>, Vec<f32>) {
    let (mut ol, mut or) = (Vec::new(), Vec::new());
    for (a, b) in left.chunks(block).zip(right.chunks(block)) {
        let (mut l, mut r) = (a.to_vec(), b.to_vec());
        p.process(&mut l, Some(&mut r), &Transport::default());
        ol.extend_from_slice(&l);
        or.extend_from_slice(&r);
    }
    (ol, or)
}

/// Captures `(l, r)`, renders Upsample by `factor_index` with `seed`, plays the result back.
fn render_and_play(rate: f64, l: &[f32], r: &[f32], factor_index: f64, seed: f64) -> [Vec<f32>; 2] {
    let e = engine();
    let mut p = e.activate(rate);
    e.params().set(Param::Arm, 1.0);
    run(&mut p, l, r, 100);
    e.params().set(Param::Arm, 0.0);
    run(&mut p, &[0.0; 8], &[0.0; 8], 8);
    e.params().set(Param::Mode, 1.0);
    e.params().set(Param::Factor, factor_index);
    e.params().set(Param::Seed, seed);
    let seen = e.shared().results_received();
    e.params().set(Param::Render, 1.0);
    let t = Instant::now();
    while e.shared().results_received() <= seen {
        assert!(t.elapsed() < Duration::from_secs(60), "no result delivered");
        run(&mut p, &[0.0; 64], &[0.0; 64], 64);
        std::thread::sleep(Duration::from_millis(1));
    }
    assert_eq!(p.result_len(), l.len());
    e.params().set(Param::Trigger, 1.0);
    let silent = vec![0.0; l.len()];
    let (a, b) = run(&mut p, &silent, &silent, 256);
    [a, b]
}

/// `upsample_clip` of the clip brought down by `factor`, made the clip's length (frames past the
/// last whole multiple of `factor` are the input's).
fn expected(rate: f64, l: &[f32], r: &[f32], factor: usize, seed: u64) -> [Vec<f32>; 2] {
    let model = BandExtension::from_bytes(CONFIG, WEIGHTS, "models/upsampler").expect("loads");
    let low = AudioClip::new(
        (rate / factor as f64).round() as u32,
        vec![
            sinc_down(l, factor).expect("down"),
            sinc_down(r, factor).expect("down"),
        ],
    )
    .expect("clip");
    let up = model
        .upsample_clip(&low, factor, &mut SeededNoise::new(seed))
        .expect("upsamples");
    let mut chans = up.into_channels();
    for (c, x) in chans.iter_mut().zip([l, r]) {
        assert_eq!(c.len(), x.len() / factor * factor);
        let n = c.len();
        c.extend_from_slice(&x[n..]);
    }
    [chans[0].clone(), chans[1].clone()]
}

fn max_err(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

#[test]
fn upsample_with_the_default_model_plays_back_upsample_clip_with_the_same_seed() {
    for (rate, n, index, factor, seed) in [
        (48_000.0, 9_603, 1.0, 4, 42),
        (44_100.0, 8_000, 2.0, 8, 7),
        (48_000.0, 6_000, 0.0, 2, 3),
    ] {
        let (l, r) = (signal(n, rate, 1.0), signal(n, rate, 1.01));
        let played = render_and_play(rate, &l, &r, index, seed as f64);
        let want = expected(rate, &l, &r, factor, seed);
        for c in 0..2 {
            let err = max_err(&played[c], &want[c]);
            assert!(
                err < 1e-6,
                "x{factor} at {rate} Hz, channel {c}: played back differs by {err}"
            );
        }
        // The render is not the input: the band above the input's Nyquist was filled.
        assert!(
            max_err(&played[0], &l) > 1e-4,
            "x{factor}: nothing rendered"
        );
    }
}

#[test]
fn another_seed_or_factor_changes_the_render() {
    let n = 9_600;
    let (l, r) = (signal(n, 48_000.0, 1.0), signal(n, 48_000.0, 1.01));
    let a = expected(48_000.0, &l, &r, 4, 1);
    assert!(max_err(&a[0], &expected(48_000.0, &l, &r, 4, 2)[0]) > 1e-5);
    assert!(max_err(&a[0], &expected(48_000.0, &l, &r, 8, 1)[0]) > 1e-5);
}

#[test]
fn generate_inpaint_and_continue_with_the_default_use_the_sketch_model() {
    let mut d = BandExtRenderer::from_bytes(
        CONFIG,
        WEIGHTS,
        "models/upsampler",
        Some(Box::new(SketchRenderer::new(48_000.0))),
    )
    .expect("loads");
    let mut sketch = SketchRenderer::new(48_000.0);
    let s = RenderSettings {
        steps: 3,
        sampler: SamplerKind::Adpm2,
        seed: 5,
        guidance: 1.0,
        factor: 4,
    };
    let g = d.generate(2_000, &s, &mut |_| true).expect("generates");
    let want = sketch
        .generate(2_000, &s, &mut |_| true)
        .expect("generates");
    assert_eq!(g.channel(0), want.channel(0));
    let clip = AudioBuf::from_channels(signal(3_000, 48_000.0, 1.0), vec![0.0; 3_000], 48_000.0);
    let i = d
        .inpaint(&clip, 500, 1_500, &s, &mut |_| true)
        .expect("inpaints");
    let want = sketch
        .inpaint(&clip, 500, 1_500, &s, &mut |_| true)
        .expect("inpaints");
    assert_eq!(i.channel(0), want.channel(0));
    let c = d
        .continue_clip(&clip, 1_000, &s, &mut |_| true)
        .expect("continues");
    let want = sketch
        .continue_clip(&clip, 1_000, &s, &mut |_| true)
        .expect("continues");
    assert_eq!(c.channel(1), want.channel(1));

    // A band-extension folder alone has no generator: Generate is refused, naming it.
    let mut alone =
        BandExtRenderer::from_bytes(CONFIG, WEIGHTS, "models/upsampler", None).expect("loads");
    let e = alone.generate(100, &s, &mut |_| true).expect_err("refused");
    assert!(e.to_string().contains("BandExtension"), "{e}");
    // A factor the model does not serve is refused.
    let bad = RenderSettings { factor: 3, ..s };
    assert!(alone.upsample(&clip, &bad, &mut |_| true).is_err());
}

#[test]
fn clips_shorter_than_the_factor_or_the_stft_never_panic() {
    let mut d =
        BandExtRenderer::from_bytes(CONFIG, WEIGHTS, "models/upsampler", None).expect("loads");
    for n in [0, 1, 3, 7, 100, 1_025] {
        let x = signal(n, 48_000.0, 1.0);
        let clip = AudioBuf::from_channels(x.clone(), x, 48_000.0);
        for factor in [2, 4, 8] {
            let s = RenderSettings {
                steps: 1,
                sampler: SamplerKind::Adpm2,
                seed: 1,
                guidance: 1.0,
                factor,
            };
            if let Ok(out) = d.upsample(&clip, &s, &mut |_| true) {
                assert_eq!(out.len(), n, "x{factor}, {n} frames");
            }
        }
    }
}
