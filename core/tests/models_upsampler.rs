//! AudioDiffusionUpsampler (docs/reference.md §4.4): the training context is
//! `upsample(downsample(x, f), f)` after one randint draw; the factor embedding is the index under
//! 0.0.61 and the value when fixed (docs/reference.md Appendix A.7); sampling draws the start noise
//! like the upsampled signal first.

use adiff_core::audio::sinc::down_up;
use adiff_core::models::embedding::SinusoidalEmbedding;
use adiff_core::models::{AudioDiffusionUpsampler, AudioDiffusionUpsamplerConfig, Sampling};
use adiff_core::sampler::ignore_steps;
use adiff_core::{Compat, NetInputs, NoiseSource, SeededNoise};
use candle_core::{DType, Device, Tensor};
use candle_nn::{VarBuilder, VarMap};

fn config(factor: serde_json::Value) -> AudioDiffusionUpsamplerConfig {
    AudioDiffusionUpsamplerConfig::from_kwargs(&serde_json::json!({
        "in_channels": 1, "factor": factor, "factor_features": 8, "channels": 8, "patch_factor": 2,
        "multipliers": [1, 2, 4], "factors": [2, 2], "num_blocks": [1, 1], "attentions": [0, 0, 1],
        "attention_heads": 2, "attention_features": 8, "resnet_groups": 4
    }))
    .unwrap()
}

fn build(
    vm: &VarMap,
    cfg: &AudioDiffusionUpsamplerConfig,
    compat: Compat,
) -> AudioDiffusionUpsampler {
    AudioDiffusionUpsampler::new(
        cfg,
        compat,
        VarBuilder::from_varmap(vm, DType::F32, &Device::Cpu),
    )
    .unwrap()
}

fn scalar(t: &Tensor) -> f32 {
    t.to_scalar::<f32>().unwrap()
}

/// The loss computed by hand from public pieces, with the same stream of draws.
fn expected_loss(model: &AudioDiffusionUpsampler, x: &Tensor, seed: u64, embed_value: bool) -> f32 {
    let mut noise = SeededNoise::new(seed);
    let b = x.dim(0).unwrap();
    let n = model.factors().len() as i64;
    let idx: Vec<i64> = noise
        .randint(0, n, &[b], &Device::Cpu)
        .unwrap()
        .to_vec1()
        .unwrap();
    let rows: Vec<Tensor> = (0..b)
        .map(|r| {
            down_up(
                &x.narrow(0, r, 1).unwrap(),
                model.factors()[idx[r] as usize],
            )
            .unwrap()
        })
        .collect();
    let values: Vec<f32> = idx
        .iter()
        .map(|&i| {
            if embed_value {
                model.factors()[i as usize] as f32
            } else {
                i as f32
            }
        })
        .collect();
    let features = SinusoidalEmbedding::new(8)
        .unwrap()
        .forward(&Tensor::new(values, &Device::Cpu).unwrap())
        .unwrap();
    let inputs = NetInputs {
        channels_list: vec![Tensor::cat(&rows, 0).unwrap()],
        features: Some(features),
        ..NetInputs::none()
    };
    scalar(&model.model.loss(x, &inputs, &mut noise).unwrap())
}

#[test]
fn training_embeds_the_index_under_0_0_61_and_the_value_when_fixed() {
    let cfg = config(serde_json::json!([2, 4]));
    let vm = VarMap::new();
    let fixed = build(&vm, &cfg, Compat::Fixed);
    let reference = build(&vm, &cfg, Compat::V0_0_61);
    let x = SeededNoise::new(3)
        .randn(&[4, 1, 64], &Device::Cpu)
        .unwrap()
        .affine(0.5, 0.0)
        .unwrap();
    for seed in [1, 2, 5] {
        let f = scalar(&fixed.loss(&x, &mut SeededNoise::new(seed)).unwrap());
        let r = scalar(&reference.loss(&x, &mut SeededNoise::new(seed)).unwrap());
        let ef = expected_loss(&fixed, &x, seed, true);
        let er = expected_loss(&reference, &x, seed, false);
        assert!(
            (f - ef).abs() <= 1e-6 * ef.abs().max(1.0),
            "fixed {f} vs {ef}"
        );
        assert!(
            (r - er).abs() <= 1e-6 * er.abs().max(1.0),
            "0.0.61 {r} vs {er}"
        );
    }
    // The check discriminates: embedding the index instead gives another loss.
    let as_index = expected_loss(&fixed, &x, 1, false);
    let as_value = expected_loss(&fixed, &x, 1, true);
    assert!(
        (as_index - as_value).abs() > 1e-5,
        "{as_index} vs {as_value}"
    );
}

#[test]
fn sampling_upsamples_by_the_factor_and_stays_in_range() {
    let cfg = config(serde_json::json!(2));
    let vm = VarMap::new();
    let model = build(&vm, &cfg, Compat::Fixed);
    let low = SeededNoise::new(8)
        .randn(&[2, 1, 32], &Device::Cpu)
        .unwrap()
        .affine(0.2, 0.0)
        .unwrap();
    let s = Sampling::reference_defaults(3, Compat::Fixed);
    let y = model
        .sample(&low, None, &s, &mut SeededNoise::new(0), &mut ignore_steps)
        .unwrap();
    assert_eq!(y.dims(), [2, 1, 64]);
    let m = y
        .abs()
        .unwrap()
        .flatten_all()
        .unwrap()
        .max(0)
        .unwrap()
        .to_scalar::<f32>()
        .unwrap();
    assert!(m <= 1.0);
    let y4 = model
        .sample(
            &low,
            Some(4),
            &s,
            &mut SeededNoise::new(0),
            &mut ignore_steps,
        )
        .unwrap();
    assert_eq!(y4.dims(), [2, 1, 128]);
}

#[test]
fn zero_or_missing_factors_are_config_errors() {
    let vm = VarMap::new();
    for f in [serde_json::json!(0), serde_json::json!([])] {
        let cfg = config(f);
        let r = AudioDiffusionUpsampler::new(
            &cfg,
            Compat::Fixed,
            VarBuilder::from_varmap(&vm, DType::F32, &Device::Cpu),
        );
        assert!(matches!(r, Err(adiff_core::Error::Config { .. })));
    }
}
