//! Model configs: reference keyword arguments with the reference defaults (docs/reference.md §4.2),
//! `"inf"`, unknown keys refused, objectives chosen by `diffusion_type`.

use adiff_core::models::{
    AudioDiffusionAutoencoderConfig, AudioDiffusionConditionalConfig, AudioDiffusionModel,
    AudioDiffusionModelConfig, DiffusionType, DistributionConfig, Objective,
};
use adiff_core::{Compat, Error};
use candle_core::{DType, Device};
use candle_nn::{VarBuilder, VarMap};

#[test]
fn defaults_are_the_reference_model_defaults() {
    let c = AudioDiffusionModelConfig::from_kwargs(&serde_json::json!({"in_channels": 2})).unwrap();
    assert_eq!(c.unet.in_channels, 2);
    assert_eq!(c.unet.channels, 128);
    assert_eq!(c.unet.patch_factor, 16);
    assert_eq!(c.unet.multipliers, [1, 2, 4, 4, 4, 4, 4]);
    assert_eq!(c.unet.factors, [4, 4, 4, 2, 2, 2]);
    assert_eq!(c.unet.attentions, [0, 0, 0, 1, 1, 1, 1]);
    assert_eq!(c.diffusion.diffusion_type, DiffusionType::V);
    assert_eq!(
        c.diffusion.diffusion_sigma_distribution,
        DistributionConfig::VDistribution {
            min_value: 0.0,
            max_value: f64::INFINITY,
            sigma_data: 1.0
        }
    );
    let a = AudioDiffusionAutoencoderConfig::from_kwargs(&serde_json::json!({})).unwrap();
    assert_eq!(
        (a.encoder_depth, a.encoder_channels, a.encoder_out_layers),
        (4, 64, 0)
    );
    let k = serde_json::json!({"embedding_features": 8, "embedding_max_length": 4});
    assert_eq!(
        AudioDiffusionConditionalConfig::from_kwargs(&k)
            .unwrap()
            .embedding_mask_proba,
        0.1
    );
}

#[test]
fn infinity_round_trips_as_text() {
    let c = AudioDiffusionModelConfig::default_model(1);
    let v = serde_json::to_value(&c).unwrap();
    assert_eq!(
        v["diffusion_sigma_distribution"]["kwargs"]["max_value"],
        "inf"
    );
    let back = AudioDiffusionModelConfig::from_kwargs(&v).unwrap();
    assert_eq!(back, c);
}

#[test]
fn unknown_keyword_is_named() {
    let err =
        AudioDiffusionModelConfig::from_kwargs(&serde_json::json!({"chanels": 8})).unwrap_err();
    assert!(
        matches!(&err, Error::Config { field, .. } if field.ends_with("chanels")),
        "{err}"
    );
    let err = AudioDiffusionModelConfig::from_kwargs(&serde_json::json!({"diffusion_type": "x"}))
        .unwrap_err();
    assert!(matches!(err, Error::Json { .. }), "{err}");
}

fn tiny(kind: &str, extra: serde_json::Value) -> AudioDiffusionModelConfig {
    let mut v = serde_json::json!({
        "channels": 8, "patch_factor": 2, "multipliers": [1, 2], "factors": [2], "num_blocks": [1],
        "attentions": [0, 0], "resnet_groups": 4, "diffusion_type": kind
    });
    for (k, x) in extra.as_object().unwrap() {
        v[k] = x.clone();
    }
    AudioDiffusionModelConfig::from_kwargs(&v).unwrap()
}

#[test]
fn diffusion_type_selects_the_objective_and_k_needs_sigma_data() {
    let vm = VarMap::new();
    let vb = || VarBuilder::from_varmap(&vm, DType::F32, &Device::Cpu);
    let m =
        AudioDiffusionModel::new(&tiny("v", serde_json::json!({})), Compat::Fixed, vb()).unwrap();
    assert!(matches!(m.model.diffusion, Objective::V(_)));
    let k = tiny(
        "k",
        serde_json::json!({"diffusion_sigma_data": 0.1,
        "diffusion_sigma_distribution": {"class": "LogNormalDistribution", "kwargs": {"mean": -3.0, "std": 1.0}}}),
    );
    let m = AudioDiffusionModel::new(&k, Compat::Fixed, vb()).unwrap();
    assert!(matches!(m.model.diffusion, Objective::K(_)));
    let err = AudioDiffusionModel::new(&tiny("k", serde_json::json!({})), Compat::Fixed, vb())
        .unwrap_err();
    assert!(
        matches!(&err, Error::Config { field, .. } if field == "diffusion_sigma_data"),
        "{err}"
    );
}

#[test]
fn sigma_distribution_parameters_that_give_nan_sigmas_are_refused() {
    let vm = VarMap::new();
    let vb = || VarBuilder::from_varmap(&vm, DType::F32, &Device::Cpu);
    for (dist, field) in [
        (
            serde_json::json!({"class": "VDistribution", "kwargs": {"sigma_data": 0.0}}),
            "diffusion_sigma_distribution.sigma_data",
        ),
        (
            serde_json::json!({"class": "VDistribution", "kwargs": {"min_value": 2.0, "max_value": 1.0}}),
            "diffusion_sigma_distribution.min_value",
        ),
        (
            serde_json::json!({"class": "LogNormalDistribution", "kwargs": {"mean": -3.0, "std": -1.0}}),
            "diffusion_sigma_distribution.std",
        ),
        (
            serde_json::json!({"class": "UniformDistribution", "kwargs": {"vmin": 1.0, "vmax": 0.5}}),
            "diffusion_sigma_distribution.vmin",
        ),
    ] {
        let cfg = tiny(
            "v",
            serde_json::json!({ "diffusion_sigma_distribution": dist }),
        );
        let err = AudioDiffusionModel::new(&cfg, Compat::Fixed, vb()).unwrap_err();
        assert!(
            matches!(&err, Error::Config { field: f, .. } if f == field),
            "{err}"
        );
    }
    // KDiffusion's dynamic threshold is a quantile: 1 (the max) is accepted, above 1 is not.
    let k = |q: f64| {
        tiny(
            "k",
            serde_json::json!({"diffusion_sigma_data": 0.1, "diffusion_dynamic_threshold": q}),
        )
    };
    AudioDiffusionModel::new(&k(1.0), Compat::Fixed, vb()).unwrap();
    let err = AudioDiffusionModel::new(&k(1.5), Compat::Fixed, vb()).unwrap_err();
    assert!(
        matches!(&err, Error::Config { field, .. } if field == "diffusion_dynamic_threshold"),
        "{err}"
    );
    // The reference's README distribution and the defaults stay accepted.
    let ok = serde_json::json!({"class": "VDistribution", "kwargs": {"min_value": 0.2, "max_value": 4.0, "sigma_data": 0.5}});
    let cfg = tiny(
        "v",
        serde_json::json!({ "diffusion_sigma_distribution": ok }),
    );
    AudioDiffusionModel::new(&cfg, Compat::V0_0_61, vb()).unwrap();
}
