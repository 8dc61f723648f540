//! Tests of the use-case layer that need no diffusion weights: the shipped upsampler's plans and
//! results, the factor choice, keep-masks and the sampler rules. (`tests/tests/render_edit.rs`
//! and `trainer/tests/one_path.rs` cover the diffusion kinds end to end.)

use super::ops::{keep_mask, Keep};
use super::upsample::factor_for;
use super::*;
use crate::audio::AudioClip;
use crate::eval::metrics::signal_metrics;
use crate::models::bandext::sinc_down;
use crate::models::bandext::synth::brickwall_highpass;
use crate::models::folder::SamplingDefaults;
use crate::sampler::SamplerKind;
use crate::Compat;

fn go() -> impl FnMut(f32) -> ControlFlow<()> {
    |_| ControlFlow::Continue(())
}

/// A deterministic full-band "music" clip at 48 kHz, `n` samples: plucked notes (harmonics up to
/// 20 kHz at 1/h, decaying together), a bass line, and hi-hat bursts of differenced white noise
/// (xorshift) on every eighth.
fn music(n: usize) -> Vec<f32> {
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut prev = 0.0;
    let tau = std::f64::consts::TAU;
    (0..n)
        .map(|i| {
            let t = i as f64 / 48_000.0;
            let (idx, tn) = ((t / 0.25) as usize, t % 0.25);
            let f = [440.0, 523.25, 587.33, 659.25, 783.99][idx % 5];
            let mut pluck = 0.0;
            let mut h = 1.0;
            while f * h < 20_000.0 {
                pluck += (tau * f * h * tn).sin() / h;
                h += 1.0;
            }
            pluck *= (-tn * 6.0).exp();
            let bass = (tau * f / 3.0 * (t % 1.0)).sin() * (-(t % 1.0) * 1.5).exp();
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let white = (state >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0;
            let hat = (white - prev) * (-(t % 0.125) * 60.0).exp();
            prev = white;
            (0.3 * pluck + 0.3 * bass + 0.12 * hat) as f32
        })
        .collect()
}

fn lowpass(x: &[f32], hz: f64) -> Vec<f32> {
    let hp = brickwall_highpass(x, hz / 24_000.0).unwrap();
    x.iter().zip(&hp).map(|(a, h)| a - h).collect()
}

#[test]
fn the_factor_is_the_smallest_whose_band_edge_reaches_the_cut_off() {
    let f = [2, 4, 8];
    assert_eq!(factor_for(48_000, 6_000.0, &f), 4);
    assert_eq!(
        factor_for(48_000, 5_568.0, &f),
        4,
        "within 10 % of the x4 edge"
    );
    assert_eq!(factor_for(48_000, 5_000.0, &f), 8);
    assert_eq!(factor_for(48_000, 11_000.0, &f), 2);
    assert_eq!(
        factor_for(48_000, 1_000.0, &f),
        8,
        "the largest when none reaches"
    );
    assert_eq!(factor_for(48_000, 23_900.0, &f), 1, "already full band");
    assert_eq!(factor_for(44_100, 16_000.0, &f), 2);
}

#[test]
fn keep_masks_follow_the_span_in_samples_of_the_clip() {
    let clip = AudioClip::mono(1000, vec![0.0; 100]).unwrap();
    let m = keep_mask(
        &Keep::Outside {
            start: 0.01,
            end: 0.0205,
        },
        &clip,
    )
    .unwrap();
    let holes: Vec<usize> = (0..100).filter(|i| !m[*i]).collect();
    assert_eq!(holes, (10..21).collect::<Vec<_>>());
    for bad in [
        Keep::Outside {
            start: 0.05,
            end: 0.05,
        },
        Keep::Outside {
            start: -0.01,
            end: 0.05,
        },
        Keep::Outside {
            start: 0.0,
            end: f64::NAN,
        },
        Keep::Outside {
            start: 0.0,
            end: 0.2,
        },
        Keep::Mask(vec![true; 99]),
    ] {
        assert!(keep_mask(&bad, &clip).is_err(), "{bad:?}");
    }
}

#[test]
fn only_a_sampler_that_inpaints_may_inpaint() {
    let d = SamplingDefaults::default();
    let ok = RenderOptions::seeded(1);
    assert!(ok
        .inpainting_sampler(&d, Compat::Fixed, "inpainting")
        .is_ok());
    let e = RenderOptions {
        sampler: Some(SamplerKind::Aeuler),
        ..ok.clone()
    }
    .inpainting_sampler(&d, Compat::Fixed, "inpainting")
    .err()
    .expect("refused")
    .to_string();
    assert!(e.contains("adpm2") && e.contains("aeuler"), "{e}");
    for (steps, good) in [(1, false), (2, true), (10_000, true), (10_001, false)] {
        let o = RenderOptions {
            steps: Some(steps),
            ..ok.clone()
        };
        assert_eq!(o.sampling(&d, Compat::Fixed).is_ok(), good, "{steps} steps");
    }
}

#[test]
fn the_shipped_upsampler_plans_each_target() {
    let m = shipped::upsampler().unwrap();
    assert_eq!(m.kind(), ModelKind::BandExtension);
    assert_eq!(m.factors(), vec![2, 4, 8]);
    let x = lowpass(&music(48_000), 6_000.0);
    let clip = AudioClip::mono(48_000, x).unwrap();
    let p = m
        .plan_upsample(&clip, UpsampleTarget::Factor(Some(4)))
        .unwrap();
    assert_eq!((p.out_rate, p.factor, p.cutoff_hz), (192_000, 4, None));
    let p = m
        .plan_upsample(&clip, UpsampleTarget::Bandwidth(6_000.0))
        .unwrap();
    assert_eq!(
        (p.out_rate, p.factor, p.cutoff_hz),
        (48_000, 4, Some(6_000.0))
    );
    let p = m.plan_upsample(&clip, UpsampleTarget::Auto).unwrap();
    let found = p.detected.unwrap();
    assert!(
        found.limited && (found.cutoff_hz - 6_000.0).abs() < 200.0,
        "{found:?}"
    );
    assert_eq!((p.out_rate, p.factor), (48_000, 4));
    assert!(m
        .plan_upsample(&clip, UpsampleTarget::Factor(Some(3)))
        .is_err());
    assert!(m
        .plan_upsample(&clip, UpsampleTarget::Bandwidth(24_000.0))
        .is_err());
    assert!(m
        .plan_upsample(&clip, UpsampleTarget::Bandwidth(f64::NAN))
        .is_err());
    // A full-band clip: nothing to restore, the output is the input.
    let full = AudioClip::mono(48_000, music(48_000)).unwrap();
    let (out, p) = m
        .upsample(
            &full,
            UpsampleTarget::Auto,
            &RenderOptions::seeded(1),
            &mut go(),
        )
        .unwrap();
    assert!(p.is_identity());
    assert_eq!(out.channels(), full.channels());
    // A model that does not upsample says so.
    let e = m
        .generate(None, &RenderOptions::seeded(1), &mut go())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("BandExtension") && e.contains("generator"),
        "{e}"
    );
}

/// A 48 kHz clip low-passed at 6 kHz, upsampled with no factor, stays at 48 kHz and its length,
/// keeps the input below the measured cut-off, and comes closer to the original above 6 kHz than
/// the input (log-spectral distance); it is what the factor form gives on the clip brought down by
/// 4. (Against sinc + noise fill it is measured on held-out recordings, not on this synthetic
/// clip, where noise fill is closer: `core/examples/bandwidth_eval.rs`, numbers in the README.)
#[test]
fn measured_upsampling_at_the_same_rate_beats_noise_fill_above_the_cut_off() {
    let m = shipped::upsampler().unwrap();
    let truth = music(96_000);
    let x = lowpass(&truth, 6_000.0);
    let clip = AudioClip::mono(48_000, x.clone()).unwrap();
    let (out, plan) = m
        .upsample(
            &clip,
            UpsampleTarget::Auto,
            &RenderOptions::seeded(3),
            &mut go(),
        )
        .unwrap();
    assert_eq!((out.sample_rate(), out.len()), (48_000, x.len()));
    assert_eq!(plan.factor, 4);
    let y = &out.channels()[0];
    // Below the cut-off the output is the input (up to the chunk crossfade's rounding).
    let cut = plan.cutoff_hz.unwrap();
    let low_err = lowpass(y, cut)
        .iter()
        .zip(lowpass(&x, cut))
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    assert!(
        low_err < 1e-3,
        "the band below the cut-off moved by {low_err}"
    );
    let ours = signal_metrics(&truth, y, 4).unwrap().lsd_hf;
    let input = signal_metrics(&truth, &x, 4).unwrap().lsd_hf;
    assert!(
        ours < input / 2.0,
        "LSD above 6 kHz: ours {ours:.3}, input {input:.3}"
    );
    let low = AudioClip::mono(12_000, sinc_down(&x, 4).unwrap()).unwrap();
    let (up, _) = m
        .upsample(
            &low,
            UpsampleTarget::Factor(Some(4)),
            &RenderOptions::seeded(3),
            &mut go(),
        )
        .unwrap();
    let mut up = up.channels()[0].clone();
    up.resize(x.len(), 0.0);
    let factor_form = signal_metrics(&truth, &up, 4).unwrap().lsd_hf;
    assert!(
        (ours - factor_form).abs() < 0.05,
        "same rate {ours:.3}, factor form {factor_form:.3}"
    );
}

#[test]
fn a_cancel_stops_the_band_extension_and_says_so() {
    let m = shipped::upsampler().unwrap();
    let clip = AudioClip::mono(48_000, lowpass(&music(9_600), 6_000.0)).unwrap();
    let mut calls = 0;
    let r = m.upsample(
        &clip,
        UpsampleTarget::Bandwidth(6_000.0),
        &RenderOptions::seeded(1),
        &mut |_| {
            calls += 1;
            ControlFlow::Break(())
        },
    );
    assert!(matches!(r, Err(Error::Cancelled { .. })), "{r:?}");
    assert_eq!(calls, 1);
    let e = m
        .upsample(
            &clip,
            UpsampleTarget::Auto,
            &RenderOptions {
                guidance: Some(3.0),
                ..RenderOptions::seeded(1)
            },
            &mut go(),
        )
        .unwrap_err()
        .to_string();
    assert!(e.contains("guidance"), "{e}");
}
