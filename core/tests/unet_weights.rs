//! Loading and saving UNet weights: round trip, wrapper prefixes with duplicate-copy checks, and
//! clear errors for truncated files, missing keys, wrong shapes and leftovers.

use adiff_core::unet::{load_model, load_unet, unet_from_tensors, UNet1d, UNet1dConfig};
use adiff_core::weights::{read_tensors, save_safetensors};
use adiff_core::{Error, NetInputs};
use candle_core::{DType, Device, Tensor};
use candle_nn::{VarBuilder, VarMap};
use std::collections::HashMap;

fn tiny() -> UNet1dConfig {
    UNet1dConfig {
        channels: 8,
        patch_factor: 2,
        multipliers: vec![1, 2],
        factors: vec![2],
        num_blocks: vec![1],
        attentions: vec![0, 0],
        resnet_groups: 4,
        ..UNet1dConfig::default_model(1)
    }
}

/// A freshly initialised tiny UNet and its state dict.
fn initialised() -> (UNet1d, HashMap<String, Tensor>) {
    let d = Device::Cpu;
    let varmap = VarMap::new();
    let net = UNet1d::new(&tiny(), VarBuilder::from_varmap(&varmap, DType::F32, &d)).unwrap();
    let tensors = varmap
        .data()
        .lock()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.as_tensor().detach()))
        .collect();
    (net, tensors)
}

fn run(net: &UNet1d) -> Vec<f32> {
    let d = Device::Cpu;
    let x = Tensor::arange(0f32, 16.0, &d)
        .unwrap()
        .affine(0.1, -0.5)
        .unwrap()
        .reshape((1, 1, 16))
        .unwrap()
        .sin()
        .unwrap();
    let t = Tensor::new(&[0.3f32], &d).unwrap();
    net.forward(&x, Some(&t), &NetInputs::none())
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap()
}

/// The trained-from-VarMap network records gradients (composite kernels) while a loaded one runs
/// the fused inference kernels: equal up to f32 rounding.
fn assert_close(a: Vec<f32>, b: Vec<f32>) {
    assert_eq!(a.len(), b.len());
    for (x, y) in a.iter().zip(&b) {
        assert!((x - y).abs() < 1e-5, "{x} vs {y}");
    }
}

fn prefixed(tensors: &HashMap<String, Tensor>, prefix: &str) -> HashMap<String, Tensor> {
    tensors
        .iter()
        .map(|(k, v)| (format!("{prefix}{k}"), v.clone()))
        .collect()
}

#[test]
fn save_then_load_gives_the_same_network() {
    let dir = tempfile::tempdir().unwrap();
    let (net, tensors) = initialised();
    let path = dir.path().join("unet.safetensors");
    save_safetensors(&tensors, &path).unwrap();
    let loaded = load_unet(&tiny(), &path, None, DType::F32, &Device::Cpu).unwrap();
    assert_close(run(&net), run(&loaded));
    let back = read_tensors(&path, &Device::Cpu).unwrap();
    assert_eq!(back.len(), tensors.len());
    for (k, t) in &tensors {
        let diff = (t - &back[k]).unwrap().abs().unwrap().max_all().unwrap();
        assert_eq!(
            diff.to_scalar::<f32>().unwrap(),
            0.0,
            "{k} changed in the round trip"
        );
    }
}

#[test]
fn wrapper_prefixes_are_resolved_and_duplicates_checked() {
    let dir = tempfile::tempdir().unwrap();
    let (net, tensors) = initialised();
    let want = run(&unet_from_tensors(&tiny(), tensors.clone(), DType::F32, &Device::Cpu).unwrap());
    assert_close(run(&net), want.clone());
    // Model1d layout: both copies, under an outer Lightning-style `model.`.
    let mut both = prefixed(&tensors, "model.unet.");
    both.extend(prefixed(&tensors, "model.diffusion.net."));
    let path = dir.path().join("both.safetensors");
    save_safetensors(&both, &path).unwrap();
    assert_eq!(
        run(&load_unet(&tiny(), &path, None, DType::F32, &Device::Cpu).unwrap()),
        want
    );
    // Only the diffusion copy (a deduplicating exporter), and an explicit prefix.
    let path = dir.path().join("diff.safetensors");
    save_safetensors(&prefixed(&tensors, "diffusion.net."), &path).unwrap();
    assert_eq!(
        run(&load_unet(&tiny(), &path, None, DType::F32, &Device::Cpu).unwrap()),
        want
    );
    assert_eq!(
        run(&load_unet(
            &tiny(),
            &path,
            Some("diffusion.net."),
            DType::F32,
            &Device::Cpu
        )
        .unwrap()),
        want
    );
    assert!(matches!(
        load_unet(&tiny(), &path, Some("nope."), DType::F32, &Device::Cpu),
        Err(Error::WeightsFile { .. })
    ));
    // Copies that disagree are refused, naming the key.
    let key = "to_in.module_list.0.block.block1.project.bias";
    both.insert(
        format!("model.diffusion.net.{key}"),
        (tensors[key].clone() + 1.0).unwrap(),
    );
    let path = dir.path().join("disagree.safetensors");
    save_safetensors(&both, &path).unwrap();
    match load_unet(&tiny(), &path, None, DType::F32, &Device::Cpu) {
        Err(Error::WeightAudit { problems, .. }) => {
            assert!(problems.iter().any(|p| p.contains(key)), "{problems:?}")
        }
        other => panic!("expected a WeightAudit error, got {other:?}"),
    }
    // The generic loader strips an outer `model.` and audits the rest.
    let path = dir.path().join("generic.safetensors");
    save_safetensors(&prefixed(&tensors, "model."), &path).unwrap();
    let net2 = load_model(&path, None, DType::F32, &Device::Cpu, |vb| {
        UNet1d::new(&tiny(), vb)
    })
    .unwrap();
    assert_eq!(run(&net2), want);
}

#[test]
fn truncated_and_garbage_files_are_errors_not_panics() {
    let dir = tempfile::tempdir().unwrap();
    let (_, tensors) = initialised();
    let path = dir.path().join("unet.safetensors");
    save_safetensors(&tensors, &path).unwrap();
    let bytes = std::fs::read(&path).unwrap();
    for cut in [bytes.len() - 1, bytes.len() / 2, 12, 3, 0] {
        std::fs::write(&path, &bytes[..cut]).unwrap();
        let err = load_unet(&tiny(), &path, None, DType::F32, &Device::Cpu).unwrap_err();
        assert!(
            matches!(err, Error::WeightsFile { .. }),
            "cut at {cut}: {err}"
        );
    }
    let pt = dir.path().join("garbage.pt");
    std::fs::write(&pt, b"not a zip archive at all").unwrap();
    assert!(matches!(
        load_unet(&tiny(), &pt, None, DType::F32, &Device::Cpu),
        Err(Error::WeightsFile { .. })
    ));
    let missing = dir.path().join("absent.safetensors");
    assert!(matches!(
        load_unet(&tiny(), &missing, None, DType::F32, &Device::Cpu),
        Err(Error::Io { .. })
    ));
}

#[test]
fn missing_wrong_shape_and_unexpected_keys_are_named() {
    let d = Device::Cpu;
    let (_, tensors) = initialised();
    let key = "downsamples.0.blocks.0.block2.project.weight";
    let expected = tensors[key].dims().to_vec();

    let mut missing = tensors.clone();
    missing.remove(key);
    match unet_from_tensors(&tiny(), missing, DType::F32, &d) {
        Err(Error::MissingKey {
            key: k,
            expected: e,
        }) => assert_eq!((k.as_str(), e), (key, expected.clone())),
        other => panic!("expected MissingKey, got {other:?}"),
    }

    let mut wrong = tensors.clone();
    wrong.insert(
        key.to_string(),
        Tensor::zeros((16, 16, 1), DType::F32, &d).unwrap(),
    );
    match unet_from_tensors(&tiny(), wrong, DType::F32, &d) {
        Err(Error::ShapeMismatch {
            key: k,
            expected: e,
            found,
        }) => {
            assert_eq!(
                (k.as_str(), e, found),
                (key, expected.clone(), vec![16, 16, 1])
            );
        }
        other => panic!("expected ShapeMismatch, got {other:?}"),
    }

    let mut extra = tensors.clone();
    extra.insert(
        "stray.weight".into(),
        Tensor::zeros(3, DType::F32, &d).unwrap(),
    );
    assert!(matches!(
        unet_from_tensors(&tiny(), extra, DType::F32, &d),
        Err(Error::UnexpectedKey { .. })
    ));

    // Several problems are all reported at once, each by name.
    let mut many = tensors;
    many.remove(key);
    many.remove("to_mapping.0.bias");
    many.insert(
        "stray.weight".into(),
        Tensor::zeros(3, DType::F32, &d).unwrap(),
    );
    match unet_from_tensors(&tiny(), many, DType::F32, &d) {
        Err(Error::WeightAudit { problems, .. }) => {
            assert_eq!(problems.len(), 3, "{problems:?}");
            for name in [key, "to_mapping.0.bias", "stray.weight"] {
                assert!(
                    problems.iter().any(|p| p.contains(name)),
                    "{name} not in {problems:?}"
                );
            }
        }
        other => panic!("expected WeightAudit, got {other:?}"),
    }
}
