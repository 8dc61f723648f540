//! The UNet1d state dict against docs/reference.md §2: the §2.2 small config asks for exactly the
//! 121 listed keys and shapes, the §2.7 formula-weights case reproduces the reference output, and
//! parameter counts match §2.5.

use adiff_core::unet::unet_from_tensors;
use adiff_core::unet::{
    parameter_count, state_dict_shapes, UNet1d, UNet1dConfig, UNetConditional1d,
    UNetConditional1dConfig,
};
use adiff_core::weights::record_shapes;
use adiff_core::NetInputs;
use candle_core::{DType, Device, Tensor};
use std::collections::HashMap;

/// The §2.2 config.
fn small_config() -> UNet1dConfig {
    UNet1dConfig {
        in_channels: 1,
        channels: 16,
        patch_factor: 2,
        patch_blocks: 1,
        multipliers: vec![1, 2, 2],
        factors: vec![2, 2],
        attentions: vec![0, 0, 1],
        num_blocks: vec![1, 1],
        attention_heads: 2,
        attention_features: 4,
        attention_multiplier: 2,
        resnet_groups: 4,
        kernel_multiplier_downsample: 2,
        use_nearest_upsample: false,
        use_skip_scale: true,
        use_context_time: true,
        use_magnitude_channels: false,
        ..UNet1dConfig::default_model(1)
    }
}

/// docs/reference.md §2.2's listing, in state-dict order: `(key, shape)`.
fn listed_keys() -> Vec<(String, Vec<usize>)> {
    include_str!("data/unet_small_state_dict.txt")
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let (key, shape) = l.split_once(' ').expect("key and shape");
            let dims = shape
                .trim_matches(|c| c == '(' || c == ')')
                .split(',')
                .filter(|s| !s.is_empty())
                .map(|s| s.parse().expect("a dimension"))
                .collect();
            (key.to_string(), dims)
        })
        .collect()
}

#[test]
fn small_config_asks_for_exactly_the_121_listed_keys_in_order() {
    let listed = listed_keys();
    assert_eq!(listed.len(), 121);
    let asked = state_dict_shapes(&small_config()).unwrap();
    assert_eq!(
        asked, listed,
        "keys/shapes/order differ from docs/reference.md §2.2"
    );
    let params: usize = listed
        .iter()
        .map(|(_, s)| s.iter().product::<usize>())
        .sum();
    assert_eq!(params, 105_868);
    assert_eq!(parameter_count(&small_config()).unwrap(), 105_868);
}

/// The §2.7 weights: entry k, element i = 0.1 sin(0.37 i + 0.11 k + 0.5).
fn formula_weights(dtype: DType) -> HashMap<String, Tensor> {
    listed_keys()
        .into_iter()
        .enumerate()
        .map(|(k, (key, shape))| {
            let n: usize = shape.iter().product();
            let v: Vec<f64> = (0..n)
                .map(|i| 0.1 * (0.37 * i as f64 + 0.11 * k as f64 + 0.5).sin())
                .collect();
            let t = Tensor::from_vec(v, shape, &Device::Cpu)
                .unwrap()
                .to_dtype(dtype)
                .unwrap();
            (key, t)
        })
        .collect()
}

fn formula_output(dtype: DType) -> Vec<Vec<f64>> {
    let d = Device::Cpu;
    let net = unet_from_tensors(&small_config(), formula_weights(dtype), dtype, &d).unwrap();
    let x: Vec<f64> = (0..2)
        .flat_map(|b| (0..64).map(move |n| (0.05 * (n + 1) as f64 * (b + 1) as f64).sin()))
        .collect();
    let x = Tensor::from_vec(x, (2, 1, 64), &d)
        .unwrap()
        .to_dtype(dtype)
        .unwrap();
    let t = Tensor::new(&[0.25f64, 0.75], &d)
        .unwrap()
        .to_dtype(dtype)
        .unwrap();
    let y = net.forward(&x, Some(&t), &NetInputs::none()).unwrap();
    assert_eq!(y.dims(), &[2, 1, 64]);
    let y = y.to_dtype(DType::F64).unwrap().squeeze(1).unwrap();
    y.to_vec2::<f64>().unwrap()
}

fn check_formula_case(dtype: DType, tol: f64) {
    let y = formula_output(dtype);
    let want0 = [
        0.19183694033328025,
        0.20743689066952445,
        0.17394744886341215,
        0.19666175348875586,
        0.17029859855089657,
        0.21653491285989068,
    ];
    let want1 = [
        0.19193620488186253,
        0.20781518995007478,
        0.1746298851599173,
        0.19769910035766433,
        0.17156171378622342,
        0.21808929643824557,
    ];
    for (row, want) in [(&y[0], want0), (&y[1], want1)] {
        for (j, w) in want.iter().enumerate() {
            assert!(
                (row[j] - w).abs() < tol,
                "{dtype:?}: y[{j}] = {} vs {w}",
                row[j]
            );
        }
    }
    let worst = [(&y[0], want0), (&y[1], want1)]
        .iter()
        .flat_map(|(row, want)| {
            want.iter()
                .enumerate()
                .map(move |(j, w)| (row[j] - w).abs())
        })
        .fold(0.0, f64::max);
    println!("docs/reference.md §2.7 {dtype:?}: max abs error over the listed values {worst:.2e}");
    let sum: f64 = y.iter().flatten().sum();
    assert!(
        (sum - 24.478943708579152).abs() < tol * 128.0,
        "{dtype:?}: sum {sum}"
    );
    assert!(
        y.iter().flatten().all(|&v| v > 0.0),
        "all values are positive in the reference"
    );
}

#[test]
fn formula_weights_case_matches_spec_2_7_in_f32() {
    check_formula_case(DType::F32, 1e-5);
}

#[test]
fn formula_weights_case_matches_spec_2_7_in_f64() {
    check_formula_case(DType::F64, 1e-10);
}

#[test]
fn default_model_has_the_reference_parameter_count() {
    let cfg = UNet1dConfig::default_model(1);
    let shapes = state_dict_shapes(&cfg).unwrap();
    assert_eq!(shapes.len(), 501);
    assert_eq!(parameter_count(&cfg).unwrap(), 106_196_500);
    // docs/reference.md §2.5 breakdown of a few modules.
    let sum_of = |prefix: &str| -> usize {
        shapes
            .iter()
            .filter(|(k, _)| k.starts_with(prefix))
            .map(|(_, s)| s.iter().product::<usize>())
            .sum()
    };
    assert_eq!(sum_of("to_mapping."), 525_312);
    assert_eq!(sum_of("to_time."), 66_624);
    assert_eq!(sum_of("to_in."), 8_474);
    assert_eq!(sum_of("downsamples.1."), 5_382_656);
    assert_eq!(sum_of("bottleneck."), 6_830_080);
    assert_eq!(sum_of("upsamples.0."), 13_917_184);
    assert_eq!(sum_of("upsamples.5."), 2_233_984);
    assert_eq!(sum_of("to_out."), 1_082);
    // AudioDiffusionConditional(embedding_max_length=512, embedding_features=768): +512*768.
    let ccfg = UNetConditional1dConfig {
        context_embedding_max_length: 512,
        unet: UNet1dConfig {
            context_embedding_features: Some(768),
            ..cfg.clone()
        },
    };
    let n: usize = record_shapes(|vb| UNetConditional1d::new(&ccfg, vb))
        .unwrap()
        .iter()
        .map(|(_, s)| s.iter().product::<usize>())
        .sum();
    assert_eq!(n, 106_589_716);
    // The upsampler's UNet: two channels into to_in (+34).
    let up = UNet1dConfig {
        context_channels: Some(vec![1]),
        ..cfg
    };
    assert_eq!(parameter_count(&up).unwrap(), 106_196_534);
}

#[test]
fn option_changes_keys_as_spec_2_3_says() {
    let keys = |cfg: &UNet1dConfig| -> HashMap<String, Vec<usize>> {
        state_dict_shapes(cfg).unwrap().into_iter().collect()
    };
    let base = keys(&small_config());
    let nearest = keys(&UNet1dConfig {
        use_nearest_upsample: true,
        ..small_config()
    });
    assert!(!nearest.contains_key("upsamples.0.upsample.weight"));
    assert_eq!(nearest["upsamples.0.upsample.1.weight"], vec![32, 32, 3]);
    let no_time = keys(&UNet1dConfig {
        use_context_time: false,
        ..small_config()
    });
    assert!(no_time.keys().all(|k| !k.contains("to_scale_shift")
        && !k.starts_with("to_mapping")
        && !k.starts_with("to_time")));
    let ctx = keys(&UNet1dConfig {
        context_channels: Some(vec![1, 0, 4]),
        ..small_config()
    });
    assert_eq!(
        ctx["to_in.module_list.0.block.block1.project.weight"],
        vec![8, 2, 3]
    );
    assert_eq!(
        ctx["downsamples.1.blocks.0.block1.groupnorm.weight"],
        vec![36]
    );
    assert_eq!(ctx["downsamples.1.blocks.0.to_out.weight"], vec![32, 36, 1]);
    let mag = keys(&UNet1dConfig {
        use_magnitude_channels: true,
        ..small_config()
    });
    assert_eq!(
        mag["to_out.module_list.0.block.to_scale_shift.to_scale_shift.1.weight"],
        vec![4, 64]
    );
    let att = keys(&UNet1dConfig {
        attentions: vec![0, 1, 1],
        ..small_config()
    });
    assert!(att.contains_key("downsamples.1.transformer.to_in.0.weight"));
    assert!(att.contains_key("upsamples.0.blocks.1.block1.groupnorm.weight"));
    assert!(att.contains_key("upsamples.0.transformer.to_out.1.weight"));
    let feats = keys(&UNet1dConfig {
        context_features: Some(5),
        ..small_config()
    });
    assert_eq!(feats["to_features.0.weight"], vec![64, 5]);
    assert_eq!(feats.len(), base.len() + 2);
}

#[test]
fn the_network_checks_its_inputs() {
    let d = Device::Cpu;
    let net = UNet1d::new(
        &small_config(),
        candle_nn::VarBuilder::zeros(DType::F32, &d),
    )
    .unwrap();
    let t = Tensor::new(&[0.5f32], &d).unwrap();
    let bad_len = Tensor::zeros((1, 1, 30), DType::F32, &d).unwrap();
    assert!(net.forward(&bad_len, Some(&t), &NetInputs::none()).is_err());
    let bad_ch = Tensor::zeros((1, 2, 32), DType::F32, &d).unwrap();
    assert!(net.forward(&bad_ch, Some(&t), &NetInputs::none()).is_err());
    let ok = Tensor::zeros((1, 1, 32), DType::F32, &d).unwrap();
    assert!(
        net.forward(&ok, None, &NetInputs::none()).is_err(),
        "time is required with use_context_time"
    );
    assert_eq!(
        net.forward(&ok, Some(&t), &NetInputs::none())
            .unwrap()
            .dims(),
        &[1, 1, 32]
    );
}

#[test]
fn pytorch_lightning_checkpoint_loads_by_reference_names() {
    // data/unet_small.ckpt: torch.save layout (zip + pickle) of {"state_dict": {"model.unet.*",
    // "model.diffusion.net.*" sharing storage}}, written by data/make_unet_small_ckpt.py.
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/unet_small.ckpt");
    let d = Device::Cpu;
    let net = adiff_core::unet::load_unet(&small_config(), &path, None, DType::F32, &d).unwrap();
    let reference =
        unet_from_tensors(&small_config(), formula_weights(DType::F32), DType::F32, &d).unwrap();
    let x = Tensor::arange(0f32, 64.0, &d)
        .unwrap()
        .affine(0.05, 0.0)
        .unwrap()
        .sin()
        .unwrap()
        .reshape((1, 1, 64))
        .unwrap();
    let t = Tensor::new(&[0.5f32], &d).unwrap();
    let a = net.forward(&x, Some(&t), &NetInputs::none()).unwrap();
    let b = reference.forward(&x, Some(&t), &NetInputs::none()).unwrap();
    let diff = (a - b)
        .unwrap()
        .abs()
        .unwrap()
        .max_all()
        .unwrap()
        .to_scalar::<f32>()
        .unwrap();
    assert_eq!(diff, 0.0);
}

#[test]
fn norm_quantile_with_level0_context_follows_the_compat_switch() {
    // docs/reference.md §1.10 / Appendix A bug 9: 0.0.61 scales after concatenating the level-0
    // context, so the output silently takes in + n0 channels; the corrected mode scales the audio
    // channels only.
    let d = Device::Cpu;
    let cfg = UNet1dConfig {
        norm_quantile: 0.9,
        context_channels: Some(vec![1]),
        ..small_config()
    };
    let fixed = UNet1d::new(&cfg, candle_nn::VarBuilder::zeros(DType::F32, &d)).unwrap();
    let reference = fixed.clone().with_compat(adiff_core::Compat::V0_0_61);
    let x = Tensor::ones((1, 1, 32), DType::F32, &d).unwrap();
    let inputs = NetInputs {
        channels_list: vec![Tensor::ones((1, 1, 32), DType::F32, &d).unwrap()],
        ..NetInputs::none()
    };
    let t = Tensor::new(&[0.5f32], &d).unwrap();
    assert_eq!(
        fixed.forward(&x, Some(&t), &inputs).unwrap().dims(),
        &[1, 1, 32]
    );
    assert_eq!(
        reference.forward(&x, Some(&t), &inputs).unwrap().dims(),
        &[1, 2, 32]
    );
    // A missing or mis-sized context is refused.
    assert!(fixed.forward(&x, Some(&t), &NetInputs::none()).is_err());
    let wrong = NetInputs {
        channels_list: vec![Tensor::ones((1, 2, 32), DType::F32, &d).unwrap()],
        ..NetInputs::none()
    };
    assert!(fixed.forward(&x, Some(&t), &wrong).is_err());
}

#[test]
fn half_precision_forward_stays_close_to_f32() {
    let f32_out = formula_output(DType::F32);
    for dtype in [DType::BF16, DType::F16] {
        let half = formula_output(dtype);
        let worst = f32_out
            .iter()
            .flatten()
            .zip(half.iter().flatten())
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f64::max);
        assert!(worst < 2e-2, "{dtype:?}: max deviation {worst}");
    }
}
