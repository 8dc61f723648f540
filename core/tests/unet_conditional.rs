//! UNetConditional1d (docs/reference.md §1.13): the 0.0.61 no-op conditioning, the optional 0.0.70
//! cross-attention (docs/reference.md §1.8), embedding masking from the noise source, and batched
//! classifier-free guidance.

use adiff_core::unet::{UNet1dConfig, UNetConditional1d, UNetConditional1dConfig};
use adiff_core::weights::record_shapes;
use adiff_core::{Error, Net, NetInputs, ReplayNoise, SeededNoise};
use candle_core::{DType, Device, Tensor};
use candle_nn::{VarBuilder, VarMap};
use std::collections::HashMap;

const E: usize = 6;

fn config(cross: bool) -> UNetConditional1dConfig {
    UNetConditional1dConfig {
        context_embedding_max_length: 10,
        unet: UNet1dConfig {
            channels: 16,
            patch_factor: 2,
            multipliers: vec![1, 2, 2],
            factors: vec![2, 2],
            num_blocks: vec![1, 1],
            attentions: vec![0, 1, 1],
            attention_heads: 2,
            attention_features: 4,
            resnet_groups: 4,
            context_embedding_features: Some(E),
            use_cross_attention: cross,
            ..UNet1dConfig::default_model(1)
        },
    }
}

fn build(cross: bool) -> UNetConditional1d {
    let varmap = VarMap::new();
    UNetConditional1d::new(
        &config(cross),
        VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu),
    )
    .unwrap()
}

fn data() -> (Tensor, Tensor, Tensor, Tensor) {
    let d = Device::Cpu;
    let mut noise = SeededNoise::new(5);
    let x = adiff_core::NoiseSource::randn(&mut noise, &[2, 1, 32], &d).unwrap();
    let t = Tensor::new(&[0.2f32, 0.7], &d).unwrap();
    let e1 = adiff_core::NoiseSource::randn(&mut noise, &[2, 4, E], &d).unwrap();
    let e2 = adiff_core::NoiseSource::randn(&mut noise, &[2, 4, E], &d).unwrap();
    (x, t, e1, e2)
}

fn with(embedding: &Tensor, scale: f64, mask: f64) -> NetInputs {
    NetInputs {
        embedding: Some(embedding.clone()),
        embedding_scale: scale,
        embedding_mask_proba: mask,
        ..NetInputs::none()
    }
}

fn max_diff(a: &Tensor, b: &Tensor) -> f32 {
    (a - b)
        .unwrap()
        .abs()
        .unwrap()
        .max_all()
        .unwrap()
        .to_scalar()
        .unwrap()
}

#[test]
fn cross_attention_adds_exactly_the_0_0_70_keys() {
    let plain: HashMap<_, _> = record_shapes(|vb| UNetConditional1d::new(&config(false), vb))
        .unwrap()
        .into_iter()
        .collect();
    let cross: HashMap<_, _> = record_shapes(|vb| UNetConditional1d::new(&config(true), vb))
        .unwrap()
        .into_iter()
        .collect();
    assert_eq!(plain["fixed_embedding.embedding.weight"], vec![10, E]);
    assert!(plain.keys().all(|k| !k.contains("cross_attention")));
    let added: Vec<_> = cross
        .iter()
        .filter(|(k, _)| !plain.contains_key(*k))
        .collect();
    // Transformers at down level 1, the bottleneck and up level 1, one block each, C = 32, HD = 8.
    assert_eq!(added.len(), 3 * 8);
    for (key, shape) in added {
        let (_, leaf) = key
            .split_once(".cross_attention.")
            .expect("only cross_attention keys are added");
        let want = match leaf {
            "norm.weight" | "norm.bias" | "attention.to_out.bias" => vec![32],
            "norm_context.weight" | "norm_context.bias" => vec![E],
            "to_q.weight" => vec![8, 32],
            "to_kv.weight" => vec![16, E],
            "attention.to_out.weight" => vec![32, 8],
            other => panic!("unexpected key {other}"),
        };
        assert_eq!(shape, &want, "{key}");
    }
}

#[test]
fn without_cross_attention_the_embedding_does_nothing_as_in_0_0_61() {
    let net = build(false);
    let (x, t, e1, e2) = data();
    let a = net
        .forward(&x, Some(&t), &with(&e1, 1.0, 0.0), &mut SeededNoise::new(0))
        .unwrap();
    let b = net
        .forward(&x, Some(&t), &with(&e2, 1.0, 0.0), &mut SeededNoise::new(0))
        .unwrap();
    let g = net
        .forward(&x, Some(&t), &with(&e1, 5.0, 0.0), &mut SeededNoise::new(0))
        .unwrap();
    assert_eq!(max_diff(&a, &b), 0.0);
    assert!(max_diff(&a, &g) < 1e-5);
}

#[test]
fn cross_attention_conditions_and_guidance_is_one_batched_call() {
    let net = build(true);
    let (x, t, e1, e2) = data();
    let mut n = SeededNoise::new(0);
    let cond = net
        .forward(&x, Some(&t), &with(&e1, 1.0, 0.0), &mut n)
        .unwrap();
    let other = net
        .forward(&x, Some(&t), &with(&e2, 1.0, 0.0), &mut n)
        .unwrap();
    assert!(
        max_diff(&cond, &other) > 1e-4,
        "the embedding must change the output"
    );
    let fixed = net.fixed_embedding.forward(&e1).unwrap();
    let null = net
        .forward(&x, Some(&t), &with(&fixed, 1.0, 0.0), &mut n)
        .unwrap();
    let guided = net
        .forward(&x, Some(&t), &with(&e1, 3.0, 0.0), &mut n)
        .unwrap();
    let manual = (&null + ((&cond - &null).unwrap() * 3.0).unwrap()).unwrap();
    assert!(
        max_diff(&guided, &manual) < 1e-5,
        "{}",
        max_diff(&guided, &manual)
    );
}

#[test]
fn the_embedding_mask_is_drawn_from_the_noise_source() {
    let net = build(true);
    let (x, t, e1, _) = data();
    let d = Device::Cpu;
    let fixed = net.fixed_embedding.forward(&e1).unwrap();
    let mut n = SeededNoise::new(0);
    let cond = net
        .forward(&x, Some(&t), &with(&e1, 1.0, 0.0), &mut n)
        .unwrap();
    let null = net
        .forward(&x, Some(&t), &with(&fixed, 1.0, 0.0), &mut n)
        .unwrap();
    // Recorded bernoulli draw (float32, as the fixtures store it): row 0 masked, row 1 kept.
    let mask = Tensor::new(&[1f32, 0.0], &d)
        .unwrap()
        .reshape((2, 1, 1))
        .unwrap();
    let mut replay = ReplayNoise::new([mask]);
    let masked = Net::forward(&net, &x, &t, &with(&e1, 1.0, 0.5), &mut replay).unwrap();
    assert_eq!(replay.remaining(), 0);
    assert!(
        max_diff(
            &masked.narrow(0, 0, 1).unwrap(),
            &null.narrow(0, 0, 1).unwrap()
        ) < 1e-6
    );
    assert!(
        max_diff(
            &masked.narrow(0, 1, 1).unwrap(),
            &cond.narrow(0, 1, 1).unwrap()
        ) < 1e-6
    );
    // p = 1 masks everything without drawing.
    let mut empty = ReplayNoise::new([]);
    let all = net
        .forward(&x, Some(&t), &with(&e1, 1.0, 1.0), &mut empty)
        .unwrap();
    assert!(max_diff(&all, &null) < 1e-6);
}

#[test]
fn a_missing_or_too_long_embedding_is_an_error() {
    let net = build(false);
    let (x, t, _, _) = data();
    let none = NetInputs::none();
    assert!(matches!(
        net.forward(&x, Some(&t), &none, &mut SeededNoise::new(0)),
        Err(Error::InvalidInput { .. })
    ));
    let long = Tensor::zeros((2, 11, E), DType::F32, &Device::Cpu).unwrap();
    assert!(net
        .forward(
            &x,
            Some(&t),
            &with(&long, 1.0, 0.0),
            &mut SeededNoise::new(0)
        )
        .is_err());
    let mut bad = config(false);
    bad.unet.context_embedding_features = None;
    assert!(matches!(
        UNetConditional1d::new(&bad, VarBuilder::zeros(DType::F32, &Device::Cpu)),
        Err(Error::Config { .. })
    ));
}
