//! Building models from model folders ([`AnyModel::load`]) and converting a reference-style
//! checkpoint (wrapper prefix, duplicated UNet) into a folder ([`convert`]).

use adiff_core::models::folder::{FolderConfig, ModelFolder, ModelKind, CONFIG_FILE, WEIGHTS_FILE};
use adiff_core::models::{
    convert, convert_to, AnyModel, AudioDiffusionUpsampler, AudioDiffusionUpsamplerConfig, Sampling,
};
use adiff_core::sampler::ignore_steps;
use adiff_core::{Compat, Error, NoiseSource, SeededNoise};
use candle_core::{DType, Device, Tensor};
use candle_nn::{VarBuilder, VarMap};
use std::collections::HashMap;

fn kwargs() -> serde_json::Value {
    serde_json::json!({
        "in_channels": 1, "factor": 2, "channels": 8, "patch_factor": 2, "multipliers": [1, 2],
        "factors": [2], "num_blocks": [1], "attentions": [0, 0], "resnet_groups": 4
    })
}

/// A randomly initialised upsampler and its tensors. The model is rebuilt from the plain
/// (untracked) tensors, as a loaded folder is: `nn` runs its fused f32 CPU kernels only on
/// untracked tensors, so a `Var`-backed model differs from a loaded one by rounding.
fn model() -> (AudioDiffusionUpsampler, HashMap<String, Tensor>) {
    let cfg = AudioDiffusionUpsamplerConfig::from_kwargs(&kwargs()).unwrap();
    let vm = VarMap::new();
    AudioDiffusionUpsampler::new(
        &cfg,
        Compat::Fixed,
        VarBuilder::from_varmap(&vm, DType::F32, &Device::Cpu),
    )
    .unwrap();
    let tensors: HashMap<String, Tensor> = vm
        .data()
        .lock()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.as_tensor().detach()))
        .collect();
    let m = AudioDiffusionUpsampler::new(
        &cfg,
        Compat::Fixed,
        VarBuilder::from_tensors(tensors.clone(), DType::F32, &Device::Cpu),
    )
    .unwrap();
    (m, tensors)
}

fn header() -> FolderConfig {
    FolderConfig::new(ModelKind::AudioDiffusionUpsampler, kwargs(), 16_000, 1, 64)
}

fn upsample(m: &AudioDiffusionUpsampler) -> Vec<f32> {
    let low = SeededNoise::new(4)
        .randn(&[1, 1, 16], &Device::Cpu)
        .unwrap()
        .affine(0.3, 0.0)
        .unwrap();
    let s = Sampling::reference_defaults(3, Compat::Fixed);
    let y = m
        .sample(&low, None, &s, &mut SeededNoise::new(6), &mut ignore_steps)
        .unwrap();
    y.flatten_all().unwrap().to_vec1().unwrap()
}

fn upsampler(m: AnyModel) -> AudioDiffusionUpsampler {
    match m {
        AnyModel::Upsampler(u) => u,
        other => panic!("expected an upsampler, got {:?}", other.kind()),
    }
}

#[test]
fn a_saved_folder_loads_into_the_same_model() {
    let (m, tensors) = model();
    let dir = tempfile::tempdir().unwrap();
    ModelFolder::new(header(), tensors)
        .unwrap()
        .save(dir.path())
        .unwrap();
    let (cfg, loaded) = AnyModel::load(dir.path(), &Device::Cpu).unwrap();
    assert_eq!(cfg.sample_rate, 16_000);
    assert_eq!(upsample(&upsampler(loaded)), upsample(&m));
}

#[test]
fn convert_strips_the_wrapper_and_folds_the_duplicate_unet() {
    let (m, tensors) = model();
    let mut ckpt = HashMap::new();
    for (k, t) in &tensors {
        ckpt.insert(format!("model.{k}"), t.clone());
        if let Some(rest) = k.strip_prefix("unet.") {
            ckpt.insert(format!("model.diffusion.net.{rest}"), t.clone());
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("last.safetensors");
    candle_core::safetensors::save(&ckpt, &path).unwrap();
    let out = dir.path().join("folder");
    let folder = convert(&path, header(), &out, &Device::Cpu).unwrap();
    assert_eq!(folder.tensors.len(), tensors.len());
    assert!(folder.tensors.keys().all(|k| k.starts_with("unet.")));
    let (_, loaded) = AnyModel::load(&out, &Device::Cpu).unwrap();
    assert_eq!(upsample(&upsampler(loaded)), upsample(&m));
}

#[test]
fn convert_to_f16_stores_half_the_bytes_and_loads_the_rounded_weights() {
    let (_, tensors) = model();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("w.safetensors");
    candle_core::safetensors::save(&tensors, &path).unwrap();
    let (full, half) = (dir.path().join("f32"), dir.path().join("f16"));
    convert(&path, header(), &full, &Device::Cpu).unwrap();
    convert_to(
        &path,
        header(),
        &half,
        &Device::Cpu,
        candle_core::DType::F16,
    )
    .unwrap();
    let size = |d: &std::path::Path| std::fs::metadata(d.join(WEIGHTS_FILE)).unwrap().len();
    let params: usize = tensors.values().map(|t| t.elem_count()).sum();
    // The tensor data shrinks by exactly 2 bytes a parameter (the header is a few names).
    assert!(size(&full) - size(&half) >= 2 * params as u64 - 64);
    let loaded = ModelFolder::load(&half, &Device::Cpu).unwrap();
    for (k, t) in &tensors {
        let want = t
            .to_dtype(candle_core::DType::F16)
            .unwrap()
            .to_dtype(candle_core::DType::F32)
            .unwrap();
        let got = loaded.tensors[k].to_dtype(candle_core::DType::F32).unwrap();
        let flat = |t: &Tensor| t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        assert_eq!(
            flat(&got),
            flat(&want),
            "{k}: stored weights are the f16-rounded originals"
        );
    }
    // And the folder runs (AnyModel reads f16 into the f32 network).
    AnyModel::load(&half, &Device::Cpu).unwrap();
}

#[test]
fn convert_lists_missing_weights_and_writes_nothing() {
    let (_, mut tensors) = model();
    let mut keys: Vec<_> = tensors.keys().cloned().collect();
    keys.sort();
    tensors.remove(&keys[0]);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.safetensors");
    candle_core::safetensors::save(&tensors, &path).unwrap();
    let out = dir.path().join("folder");
    let err = convert(&path, header(), &out, &Device::Cpu).unwrap_err();
    assert!(err.to_string().contains(&keys[0]), "{err}");
    assert!(!out.join(WEIGHTS_FILE).exists());
}

#[test]
fn a_header_that_disagrees_with_the_network_names_the_config() {
    let (_, tensors) = model();
    let dir = tempfile::tempdir().unwrap();
    let mut h = header();
    h.channels = 2;
    ModelFolder::new(h, tensors)
        .unwrap()
        .save(dir.path())
        .unwrap();
    let err = AnyModel::load(dir.path(), &Device::Cpu).unwrap_err();
    assert!(matches!(err, Error::Config { .. }), "{err}");
    assert!(
        err.to_string()
            .contains(&dir.path().join(CONFIG_FILE).display().to_string()),
        "{err}"
    );
}

#[test]
fn an_unknown_network_keyword_names_the_config() {
    let (_, tensors) = model();
    let dir = tempfile::tempdir().unwrap();
    let mut h = header();
    h.model["factor_feature"] = 8.into();
    ModelFolder::new(h, tensors)
        .unwrap()
        .save(dir.path())
        .unwrap();
    let msg = AnyModel::load(dir.path(), &Device::Cpu)
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("factor_feature") && msg.contains(CONFIG_FILE),
        "{msg}"
    );
}
