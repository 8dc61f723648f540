//! AudioDiffusionAutoencoder / MultiEncoder1d / AutoEncoder1d: latent and decode shapes
//! (docs/reference.md §4.5-4.7), the encoder's channel list, and the bottleneck call under both
//! behaviours (docs/reference.md Appendix A.8).

use adiff_core::models::{
    AudioDiffusionAutoencoder, AudioDiffusionAutoencoderConfig, AutoEncoder1d, AutoEncoder1dConfig,
    MultiEncoder1dConfig, Sampling,
};
use adiff_core::sampler::ignore_steps;
use adiff_core::{Compat, Error, NoiseSource, SeededNoise};
use candle_core::{DType, Device, Tensor};
use candle_nn::{VarBuilder, VarMap};

fn kwargs(extra: serde_json::Value) -> serde_json::Value {
    let mut v = serde_json::json!({
        "in_channels": 1, "channels": 8, "patch_blocks": 1, "patch_factor": 2,
        "multipliers": [1, 2, 4], "factors": [2, 2], "num_blocks": [1, 1], "attentions": [0, 0, 1],
        "attention_heads": 2, "attention_features": 8, "resnet_groups": 4,
        "encoder_depth": 2, "encoder_channels": 4
    });
    for (k, x) in extra.as_object().unwrap() {
        v[k] = x.clone();
    }
    v
}

fn build(extra: serde_json::Value, compat: Compat) -> AudioDiffusionAutoencoder {
    let cfg = AudioDiffusionAutoencoderConfig::from_kwargs(&kwargs(extra)).unwrap();
    let vm = VarMap::new();
    let vb = VarBuilder::from_varmap(&vm, DType::F32, &Device::Cpu);
    AudioDiffusionAutoencoder::new(&cfg, compat, vb).unwrap()
}

fn audio(b: usize, t: usize) -> Tensor {
    SeededNoise::new(9)
        .randn(&[b, 1, t], &Device::Cpu)
        .unwrap()
        .affine(0.3, 0.0)
        .unwrap()
}

#[test]
fn encoder_channel_list_follows_the_spec_examples() {
    let mut c = MultiEncoder1dConfig {
        in_channels: 1,
        channels: 128,
        patch_factor: 16,
        patch_blocks: 1,
        resnet_groups: 8,
        kernel_multiplier_downsample: 2,
        num_layers: 4,
        num_layers_out: 0,
        latent_channels: 32,
        multipliers: vec![1, 2, 4, 4, 4, 4, 4],
        factors: vec![4, 4, 4, 2, 2, 2],
        num_blocks: vec![2; 6],
    };
    assert_eq!(c.channels_list(), [0, 0, 0, 0, 512]);
    // The README autoencoder: 16 * 4 * 4 * 4 * 2 = 2048 samples per latent frame.
    assert_eq!(c.factor(), 2048);
    c.num_layers_out = 2;
    assert_eq!(c.channels_list(), [0, 0, 512, 512, 512]);
    c.num_layers_out = 4;
    assert_eq!(c.channels_list(), [1, 256, 512, 512, 512]);
    c.num_layers_out = 5;
    assert!(matches!(c.validate(), Err(Error::Config { .. })));
}

#[test]
fn latent_and_decode_shapes_and_latent_range() {
    let model = build(serde_json::json!({}), Compat::Fixed);
    assert_eq!(model.factor(), 8);
    let x = audio(3, 64);
    let mut noise = SeededNoise::new(1);
    let latent = model.encode(&x, &mut noise).unwrap();
    assert_eq!(latent.dims(), [3, 4, 8]);
    let m = latent
        .abs()
        .unwrap()
        .flatten_all()
        .unwrap()
        .max(0)
        .unwrap()
        .to_scalar::<f32>()
        .unwrap();
    assert!(m < 1.0, "tanh latent must lie in (-1, 1), max |z| = {m}");
    let y = model
        .decode(
            &latent,
            &Sampling::reference_defaults(3, Compat::Fixed),
            &mut noise,
            &mut ignore_steps,
        )
        .unwrap();
    assert_eq!(y.dims(), [3, 1, 64]);
    let loss = model.loss(&x, &mut noise).unwrap();
    assert!(loss.bottleneck.is_none());
    assert!(loss
        .total()
        .unwrap()
        .to_scalar::<f32>()
        .unwrap()
        .is_finite());
}

#[test]
fn encode_rejects_a_length_that_is_not_a_multiple_of_the_factor() {
    let model = build(serde_json::json!({}), Compat::Fixed);
    let err = model
        .encode(&audio(1, 60), &mut SeededNoise::new(0))
        .unwrap_err();
    assert!(matches!(err, Error::InvalidInput { .. }), "{err}");
}

#[test]
fn bottleneck_is_called_with_info_when_fixed() {
    let v = serde_json::json!({"bottleneck": {"class": "Variational", "kwargs": {"channels": 4}}});
    let model = build(v, Compat::Fixed);
    let mut noise = SeededNoise::new(2);
    let (latent, kl) = model.encode_with_info(&audio(3, 64), &mut noise).unwrap();
    assert_eq!(latent.dims(), [3, 4, 8]);
    let kl = kl
        .expect("the bottleneck's loss")
        .to_scalar::<f32>()
        .unwrap();
    assert!(kl.is_finite() && kl >= 0.0, "kl {kl}");
    let loss = model.loss(&audio(3, 64), &mut noise).unwrap();
    assert!(loss.bottleneck.is_some());
}

#[test]
fn reference_bottleneck_call_unpacks_the_batch_axis() {
    let v = serde_json::json!({"bottleneck": {"class": "Variational", "kwargs": {"channels": 4}}});
    let model = build(v, Compat::V0_0_61);
    // Batch 2: `latent, info = tensor` gives row 0, a (C, T) tensor, and no loss.
    let (latent, kl) = model
        .encode_with_info(&audio(2, 64), &mut SeededNoise::new(2))
        .unwrap();
    assert_eq!(latent.dims(), [4, 8]);
    assert!(kl.is_none());
    // Any other batch fails, as the reference's unpacking does.
    assert!(model
        .encode(&audio(3, 64), &mut SeededNoise::new(2))
        .is_err());
}

#[test]
fn autoencoder1d_round_trip_shapes_and_noisy_draw_count() {
    let cfg: AutoEncoder1dConfig = serde_json::from_value(serde_json::json!({
        "in_channels": 2, "channels": 8, "patch_blocks": 1, "patch_factor": 2, "resnet_groups": 4,
        "multipliers": [1, 2, 2], "factors": [2, 2], "num_blocks": [1, 1], "use_noisy": true,
        "use_magnitude_channels": true
    }))
    .unwrap();
    let vm = VarMap::new();
    let model = AutoEncoder1d::new(
        &cfg,
        Compat::Fixed,
        VarBuilder::from_varmap(&vm, DType::F32, &Device::Cpu),
    )
    .unwrap();
    let x = SeededNoise::new(4)
        .randn(&[2, 2, 32], &Device::Cpu)
        .unwrap();
    let mut noise = adiff_core::ReplayNoise::new([
        Tensor::zeros((2, 16, 4), DType::F32, &Device::Cpu).unwrap(),
        Tensor::zeros((2, 16, 8), DType::F32, &Device::Cpu).unwrap(),
        Tensor::zeros((2, 8, 16), DType::F32, &Device::Cpu).unwrap(),
    ]);
    let e = model.encode(&x, &mut noise).unwrap();
    assert_eq!(e.latent.dims(), [2, 16, 4]);
    assert_eq!(e.xs.len(), 2);
    let y = model.decode(&e.latent, &mut noise).unwrap();
    assert_eq!(y.dims(), [2, 2, 32]);
    // One draw before each of the two upsample blocks and one before to_out, in that order.
    assert_eq!(noise.remaining(), 0);
}

#[test]
fn readme_autoencoder_latent_and_context_shapes() {
    // docs/reference.md §4.6: encoder_depth=4, encoder_channels=32 on the default model,
    // x (2, 1, 2^18).
    let kw = serde_json::json!({"in_channels": 1, "encoder_depth": 4, "encoder_channels": 32});
    let cfg = AudioDiffusionAutoencoderConfig::from_kwargs(&kw).unwrap();
    assert_eq!(
        cfg.unet_config().context_channels,
        Some(vec![0, 0, 0, 0, 512])
    );
    let vm = VarMap::new();
    let vb = VarBuilder::from_varmap(&vm, DType::F32, &Device::Cpu);
    let enc = adiff_core::models::MultiEncoder1d::new(&cfg.encoder_config(), vb).unwrap();
    let x = audio(2, 1 << 18);
    let latent = enc.encode(&x).unwrap();
    assert_eq!(latent.dims(), [2, 32, 128]);
    let context = enc.decode(&latent).unwrap();
    assert_eq!(context.len(), 1);
    assert_eq!(context[0].dims(), [2, 512, 128]);
    // decode draws its start noise at latent frames x factor = 2^18 samples.
    assert_eq!(128 * enc.config().factor(), 1 << 18);
}
