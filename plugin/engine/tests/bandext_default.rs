//! The shipped band-extension upsampler (`models/upsampler`, embedded in adiff-core) behind the
//! engine, as the plugin's default model (`ModelRenderer::shipped` with the sketch model for the
//! other modes). An Upsample render with factor index `i < 3` (factor `k = 2^(i+1)`) is
//! adiff-core's same-rate upsampling of the captured clip with its band taken to end at
//! `rate / (2k)` (`UpsampleTarget::Bandwidth`), same seed; *Upsample Auto* measures the cut-off
//! (`UpsampleTarget::Auto`). The result comes at the clip's (host's) rate and length.
//!
//! Output gain: the defaults are Gain 0 dB (a factor of exactly `10^0 = 1`) and Mix 100 %, and
//! playback runs over silent input, so a played-back sample is `(0 + 1 * (wet - 0)) * 1 = wet`,
//! only denormals flushed to 0: the played-back audio equals the stored result within 1e-6.
//! At -6.02 dB (a factor of 1/2) it is half the stored result.

use adiff_core::audio::AudioClip;
use adiff_core::render::{shipped, RenderOptions, UpsamplePlan, UpsampleTarget};
use adiff_engine::{
    AudioBuf, Engine, ModelRenderer, Param, Processor, RenderSettings, Renderer, SamplerKind,
    SketchRenderer, Transport,
};
use std::ops::ControlFlow;
use std::time::{Duration, Instant};

/// The plugin's default: the shipped upsampler, the sketch model for the other modes (as
/// `adiff_plugin::models::default_renderer`, which this crate cannot depend on).
fn default_renderer() -> ModelRenderer {
    ModelRenderer::shipped(Some(Box::new(SketchRenderer::new(48_000.0)))).expect("loads")
}

fn engine() -> Engine {
    Engine::new(Box::new(|_| {
        Ok(Box::new(default_renderer()) as Box<dyn Renderer>)
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

/// Triggers playback of the result and plays `n` frames over silence.
fn play(e: &Engine, p: &mut Processor, n: usize) -> [Vec<f32>; 2] {
    e.params().set(Param::Trigger, 0.0);
    run(p, &[0.0; 8], &[0.0; 8], 8);
    e.params().set(Param::Trigger, 1.0);
    let silent = vec![0.0; n];
    let (a, b) = run(p, &silent, &silent, 256);
    [a, b]
}

/// What an Upsample render gave: the engine's stored result and the played-back audio (default
/// gain and mix), plus the playback at -6.02 dB.
struct Rendered {
    stored: AudioBuf,
    played: [Vec<f32>; 2],
    played_half: [Vec<f32>; 2],
}

/// Captures `(l, r)` at `rate`, renders Upsample with `factor_index` (3: Upsample Auto on) and
/// `seed`, plays it back.
fn render_and_play(rate: f64, l: &[f32], r: &[f32], factor_index: f64, seed: f64) -> Rendered {
    let e = engine();
    let mut p = e.activate(rate);
    e.params().set(Param::Arm, 1.0);
    run(&mut p, l, r, 100);
    e.params().set(Param::Arm, 0.0);
    run(&mut p, &[0.0; 8], &[0.0; 8], 8);
    e.params().set(Param::Mode, 1.0);
    if factor_index >= 3.0 {
        e.params().set(Param::UpsampleAuto, 1.0);
    } else {
        e.params().set(Param::Factor, factor_index);
    }
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
    let stored = e.result().expect("a stored result");
    assert_eq!(e.params().get(Param::Gain), 0.0, "default gain is 0 dB");
    assert_eq!(e.params().get(Param::Mix), 100.0, "default mix is 100 %");
    let played = play(&e, &mut p, l.len());
    e.params().set(Param::Gain, -20.0 * 2f64.log10());
    let played_half = play(&e, &mut p, l.len());
    Rendered {
        stored,
        played,
        played_half,
    }
}

/// adiff-core's upsampling of the stereo clip `(l, r)` at `rate` to `target`, seeded with `seed`.
fn core_upsample(
    rate: f64,
    l: &[f32],
    r: &[f32],
    target: UpsampleTarget,
    seed: u64,
) -> ([Vec<f32>; 2], UpsamplePlan) {
    let clip = AudioClip::new(rate as u32, vec![l.to_vec(), r.to_vec()]).expect("clip");
    let (out, plan) = shipped::upsampler()
        .expect("the embedded model loads")
        .upsample(&clip, target, &RenderOptions::seeded(seed), &mut |_| {
            ControlFlow::Continue(())
        })
        .expect("upsamples");
    assert_eq!(out.sample_rate(), rate as u32, "same-rate upsampling");
    let chans = out.into_channels();
    ([chans[0].clone(), chans[1].clone()], plan)
}

/// The expected render of factor `factor`: the band above `rate / (2 factor)` restored.
fn expected(rate: f64, l: &[f32], r: &[f32], factor: usize, seed: u64) -> [Vec<f32>; 2] {
    let (out, plan) = core_upsample(
        rate,
        l,
        r,
        UpsampleTarget::Bandwidth(rate / (2.0 * factor as f64)),
        seed,
    );
    assert_eq!(plan.factor, factor, "the model factor serving x{factor}");
    out
}

fn max_err(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

fn check_render(what: &str, rate: f64, got: &Rendered, want: &[Vec<f32>; 2], input: &[f32]) {
    assert_eq!(got.stored.rate, rate, "{what}: result at the host rate");
    for (c, want) in want.iter().enumerate() {
        assert_eq!(want.len(), input.len(), "{what}: core keeps the length");
        // One code path (adiff-core's render layer): the stored result is the core's, bit for bit.
        assert_eq!(
            got.stored.channel(c),
            &want[..],
            "{what}, channel {c}: stored result differs from the core's by {}",
            max_err(got.stored.channel(c), want)
        );
        let err = max_err(&got.played[c], got.stored.channel(c));
        assert!(
            err < 1e-6,
            "{what}, channel {c}: played back differs by {err}"
        );
        let half: Vec<f32> = got.stored.channel(c).iter().map(|v| 0.5 * v).collect();
        let err = max_err(&got.played_half[c], &half);
        assert!(
            err < 1e-6,
            "{what}, channel {c}: -6 dB playback differs by {err}"
        );
    }
    // The render is not the input: the band above the cut-off was filled.
    assert!(
        max_err(&got.played[0], input) > 1e-4,
        "{what}: nothing rendered"
    );
}

#[test]
fn upsample_with_the_default_model_is_the_core_upsampling_with_the_same_seed() {
    for (rate, n, index, factor, seed) in [
        (48_000.0, 9_603, 1.0, 4, 42),
        (44_100.0, 8_000, 2.0, 8, 7),
        (48_000.0, 6_000, 0.0, 2, 3),
    ] {
        let (l, r) = (signal(n, rate, 1.0), signal(n, rate, 1.01));
        let got = render_and_play(rate, &l, &r, index, seed as f64);
        let want = expected(rate, &l, &r, factor, seed);
        check_render(&format!("x{factor} at {rate} Hz"), rate, &got, &want, &l);
    }
}

#[test]
fn upsample_auto_measures_the_cut_off_as_the_core_does() {
    let (rate, n, seed) = (48_000.0, 9_600, 11);
    let (l, r) = (signal(n, rate, 1.0), signal(n, rate, 1.01));
    let got = render_and_play(rate, &l, &r, 3.0, seed as f64);
    let (want, plan) = core_upsample(rate, &l, &r, UpsampleTarget::Auto, seed);
    let found = plan.detected.expect("Auto measures");
    assert!(
        found.limited && found.cutoff_hz < 6_000.0,
        "content ends near 2.4 kHz: {found:?}"
    );
    check_render("Auto", rate, &got, &want, &l);
}

#[test]
fn another_seed_or_factor_changes_the_render() {
    let n = 9_600;
    let (l, r) = (signal(n, 48_000.0, 1.0), signal(n, 48_000.0, 1.01));
    let a = expected(48_000.0, &l, &r, 4, 1);
    assert!(max_err(&a[0], &expected(48_000.0, &l, &r, 4, 2)[0]) > 1e-5);
    assert!(max_err(&a[0], &expected(48_000.0, &l, &r, 8, 1)[0]) > 1e-5);
    // The same through the plugin's renderer.
    let clip = AudioBuf::from_channels(l.clone(), r.clone(), 48_000.0);
    let s = RenderSettings {
        steps: 3,
        sampler: SamplerKind::Adpm2,
        seed: 1,
        guidance: 1.0,
        factor: 4,
    };
    let mut d = default_renderer();
    let one = d.upsample(&clip, &s, &mut |_| true).expect("renders");
    assert_eq!(
        one.channel(0),
        &a[0][..],
        "the renderer is the core's upsampling"
    );
    let two = d
        .upsample(&clip, &RenderSettings { seed: 2, ..s }, &mut |_| true)
        .expect("renders");
    assert!(max_err(one.channel(0), two.channel(0)) > 1e-5);
    let x8 = d
        .upsample(&clip, &RenderSettings { factor: 8, ..s }, &mut |_| true)
        .expect("renders");
    assert!(max_err(one.channel(0), x8.channel(0)) > 1e-5);
}

#[test]
fn generate_inpaint_and_continue_with_the_default_use_the_sketch_model() {
    let mut d = default_renderer();
    let mut sketch = SketchRenderer::new(48_000.0);
    let s = RenderSettings {
        steps: 3,
        sampler: SamplerKind::Adpm2,
        seed: 5,
        guidance: 1.0,
        factor: 4,
    };
    assert_eq!(d.sample_rate(), sketch.sample_rate());
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

    // A band-extension model alone has no generator: Generate is refused, naming it.
    let mut alone = ModelRenderer::shipped(None).expect("loads");
    let e = alone.generate(100, &s, &mut |_| true).expect_err("refused");
    assert!(e.to_string().contains("BandExtension"), "{e}");
    let e = alone
        .inpaint(&clip, 500, 1_500, &s, &mut |_| true)
        .expect_err("refused");
    assert!(e.to_string().contains("BandExtension"), "{e}");
    // A cut-off at the clip's Nyquist frequency (factor 1) leaves nothing to restore: refused,
    // naming the cut-off.
    let bad = RenderSettings { factor: 1, ..s };
    let e = alone
        .upsample(&clip, &bad, &mut |_| true)
        .expect_err("refused");
    assert!(e.to_string().contains("cut-off"), "{e}");
}

#[test]
fn clips_shorter_than_the_factor_or_the_stft_never_panic() {
    let mut d = ModelRenderer::shipped(None).expect("loads");
    for n in [0, 1, 3, 7, 100, 1_025] {
        let x = signal(n, 48_000.0, 1.0);
        let clip = AudioBuf::from_channels(x.clone(), x, 48_000.0);
        for factor in [2, 4, 8, 0] {
            let s = RenderSettings {
                steps: 1,
                sampler: SamplerKind::Adpm2,
                seed: 1,
                guidance: 1.0,
                factor,
            };
            if let Ok(out) = d.upsample(&clip, &s, &mut |_| true) {
                assert_eq!(out.len(), n, "x{factor}, {n} frames");
                assert_eq!(out.rate, clip.rate, "x{factor}, {n} frames");
            }
        }
    }
}
