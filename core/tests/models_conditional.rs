//! AudioDiffusionConditional (docs/reference.md §4.8): classifier-free guidance with
//! `embedding_scale` (default 5.0 in `sample`), an exact no-op without cross-attention (0.0.61) and
//! effective with the cross-attention wiring; training masks embeddings with one Bernoulli draw
//! after sigma and ε.

use adiff_core::models::conditional::DEFAULT_EMBEDDING_SCALE;
use adiff_core::models::{AudioDiffusionConditional, AudioDiffusionConditionalConfig, Sampling};
use adiff_core::sampler::ignore_steps;
use adiff_core::{Compat, NoiseSource, ReplayNoise, SeededNoise};
use candle_core::{DType, Device, Tensor};
use candle_nn::{VarBuilder, VarMap};

fn build(cross_attention: bool) -> AudioDiffusionConditional {
    let cfg = AudioDiffusionConditionalConfig::from_kwargs(&serde_json::json!({
        "embedding_features": 8, "embedding_max_length": 4, "embedding_mask_proba": 0.5,
        "in_channels": 1, "channels": 8, "patch_factor": 2, "multipliers": [1, 2, 4], "factors": [2, 2],
        "num_blocks": [1, 1], "attentions": [0, 0, 1], "attention_heads": 2, "attention_features": 8,
        "resnet_groups": 4, "use_cross_attention": cross_attention
    }))
    .unwrap();
    let vm = VarMap::new();
    AudioDiffusionConditional::new(
        &cfg,
        Compat::Fixed,
        VarBuilder::from_varmap(&vm, DType::F32, &Device::Cpu),
    )
    .unwrap()
}

fn sample(m: &AudioDiffusionConditional, embedding: &Tensor, scale: Option<f64>) -> Vec<f32> {
    let start = SeededNoise::new(1)
        .randn(&[2, 1, 32], &Device::Cpu)
        .unwrap();
    let s = Sampling::reference_defaults(3, Compat::Fixed);
    let y = m
        .sample(
            &start,
            embedding,
            scale,
            &s,
            &mut SeededNoise::new(2),
            &mut ignore_steps,
        )
        .unwrap();
    y.flatten_all().unwrap().to_vec1().unwrap()
}

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

#[test]
fn guidance_defaults_to_five_and_matters_with_cross_attention() {
    assert_eq!(DEFAULT_EMBEDDING_SCALE, 5.0);
    let m = build(true);
    let e = SeededNoise::new(3).randn(&[2, 4, 8], &Device::Cpu).unwrap();
    let default = sample(&m, &e, None);
    assert_eq!(default, sample(&m, &e, Some(5.0)));
    assert!(max_diff(&default, &sample(&m, &e, Some(1.0))) > 1e-6);
    // Another embedding gives another sample.
    let e2 = SeededNoise::new(4).randn(&[2, 4, 8], &Device::Cpu).unwrap();
    assert!(max_diff(&default, &sample(&m, &e2, None)) > 1e-6);
}

#[test]
fn without_cross_attention_guidance_is_an_exact_no_op() {
    let m = build(false);
    let e = SeededNoise::new(3).randn(&[2, 4, 8], &Device::Cpu).unwrap();
    let guided = sample(&m, &e, Some(3.0));
    let plain = sample(&m, &e, Some(1.0));
    assert!(
        max_diff(&guided, &plain) < 1e-5,
        "{}",
        max_diff(&guided, &plain)
    );
}

#[test]
fn training_draws_sigma_then_noise_then_the_mask() {
    let m = build(true);
    let d = Device::Cpu;
    let x = Tensor::zeros((2, 1, 32), DType::F32, &d).unwrap();
    let e = SeededNoise::new(3).randn(&[2, 4, 8], &d).unwrap();
    let sigma = Tensor::new(&[0.3f32, 0.7], &d).unwrap();
    let eps = SeededNoise::new(5).randn(&[2, 1, 32], &d).unwrap();
    // Masking every row is the same as training on the null embedding.
    let all = Tensor::ones((2, 1, 1), DType::F32, &d).unwrap();
    let mut noise = ReplayNoise::new([sigma.clone(), eps.clone(), all.clone()]);
    let masked = m
        .loss(&x, &e, &mut noise)
        .unwrap()
        .to_scalar::<f32>()
        .unwrap();
    assert_eq!(noise.remaining(), 0);
    let null = m.model.unet().fixed_embedding.forward(&e).unwrap();
    let mut noise = ReplayNoise::new([sigma, eps, all]);
    let on_null = m
        .loss(&x, &null, &mut noise)
        .unwrap()
        .to_scalar::<f32>()
        .unwrap();
    assert!(
        (masked - on_null).abs() <= 1e-6 * on_null.abs().max(1.0),
        "{masked} vs {on_null}"
    );
}
