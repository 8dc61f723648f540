//! The model folder format (`config.json` + `model.safetensors`): round trip, UNet alias folding,
//! and clear errors that name the path for every broken folder.

use adiff_core::models::folder::{
    fold_unet_aliases, FolderConfig, ModelFolder, ModelKind, SamplerSetting, CONFIG_FILE,
    WEIGHTS_FILE,
};
use adiff_core::{Compat, Error};
use candle_core::{DType, Device, Tensor};
use std::collections::HashMap;
use std::path::Path;

fn config() -> FolderConfig {
    let model = serde_json::json!({"in_channels": 1, "channels": 8, "factor": 2});
    let mut c = FolderConfig::new(ModelKind::AudioDiffusionUpsampler, model, 48_000, 1, 65_536);
    c.compat = Compat::V0_0_61;
    c.sampling.num_steps = 25;
    c.sampling.sampler = SamplerSetting::ADPM2Sampler { rho: 2.0 };
    c
}

fn tensors() -> HashMap<String, Tensor> {
    let d = Device::Cpu;
    let w = Tensor::arange(0f32, 6.0, &d)
        .unwrap()
        .reshape((2, 3))
        .unwrap();
    let b = Tensor::new(&[0.5f32, -0.25], &d).unwrap();
    let mut m = HashMap::new();
    m.insert("unet.to_in.weight".to_string(), w.clone());
    m.insert("diffusion.net.to_in.weight".to_string(), w);
    m.insert("diffusion.net.to_in.bias".to_string(), b);
    m
}

fn values(t: &Tensor) -> Vec<f32> {
    t.flatten_all().unwrap().to_vec1::<f32>().unwrap()
}

#[test]
fn save_then_load_gives_the_same_config_and_each_tensor_once() {
    let dir = tempfile::tempdir().unwrap();
    let folder = ModelFolder::new(config(), tensors()).unwrap();
    folder.save(dir.path()).unwrap();
    assert!(dir.path().join(CONFIG_FILE).is_file() && dir.path().join(WEIGHTS_FILE).is_file());
    let back = ModelFolder::load(dir.path(), &Device::Cpu).unwrap();
    assert_eq!(back.config, config());
    let mut keys: Vec<_> = back.tensors.keys().cloned().collect();
    keys.sort();
    assert_eq!(keys, ["unet.to_in.bias", "unet.to_in.weight"]);
    assert_eq!(
        values(&back.tensors["unet.to_in.weight"]),
        [0.0, 1.0, 2.0, 3.0, 4.0, 5.0]
    );
    assert_eq!(values(&back.tensors["unet.to_in.bias"]), [0.5, -0.25]);
    assert_eq!(back.parameter_count(), 8);
    // No temporary files are left behind.
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names.len(), 2, "{names:?}");
}

#[test]
fn config_json_is_readable_and_holds_the_header_fields() {
    let dir = tempfile::tempdir().unwrap();
    ModelFolder::new(config(), tensors())
        .unwrap()
        .save(dir.path())
        .unwrap();
    let text = std::fs::read_to_string(dir.path().join(CONFIG_FILE)).unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["format"], "adiff-model");
    assert_eq!(v["kind"], "AudioDiffusionUpsampler");
    assert_eq!(v["sample_rate"], 48_000);
    assert_eq!(v["channels"], 1);
    assert_eq!(v["window_length"], 65_536);
    assert_eq!(v["compat"], "0.0.61");
    assert_eq!(v["sampling"]["sampler"]["class"], "ADPM2Sampler");
    assert_eq!(v["sampling"]["sigma_schedule"]["kwargs"]["rho"], 9.0);
    assert_eq!(v["model"]["factor"], 2);
}

#[test]
fn unequal_unet_twins_are_refused() {
    let mut m = tensors();
    m.insert(
        "diffusion.net.to_in.weight".into(),
        Tensor::zeros((2, 3), DType::F32, &Device::Cpu).unwrap(),
    );
    let err = fold_unet_aliases(m).unwrap_err();
    assert!(
        err.to_string().contains("diffusion.net.to_in.weight"),
        "{err}"
    );
    let mut m = tensors();
    m.insert(
        "diffusion.net.to_in.weight".into(),
        Tensor::zeros(6, DType::F32, &Device::Cpu).unwrap(),
    );
    assert!(matches!(
        fold_unet_aliases(m),
        Err(Error::ShapeMismatch { .. })
    ));
}

fn saved_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    ModelFolder::new(config(), tensors())
        .unwrap()
        .save(dir.path())
        .unwrap();
    dir
}

fn load_err(dir: &Path) -> String {
    ModelFolder::load(dir, &Device::Cpu)
        .unwrap_err()
        .to_string()
}

#[test]
fn a_folder_without_weights_names_the_missing_file() {
    let dir = saved_dir();
    std::fs::remove_file(dir.path().join(WEIGHTS_FILE)).unwrap();
    let err = ModelFolder::load(dir.path(), &Device::Cpu).unwrap_err();
    assert!(matches!(err, Error::WeightsFile { .. }), "{err}");
    let msg = err.to_string();
    assert!(
        msg.contains(&dir.path().join(WEIGHTS_FILE).display().to_string()),
        "{msg}"
    );
    assert!(msg.contains("missing"), "{msg}");
}

#[test]
fn a_missing_folder_or_config_names_the_path() {
    let dir = saved_dir();
    let nowhere = dir.path().join("no-such-model");
    assert!(load_err(&nowhere).contains("no-such-model"));
    std::fs::remove_file(dir.path().join(CONFIG_FILE)).unwrap();
    let msg = load_err(dir.path());
    assert!(
        msg.contains(&dir.path().join(CONFIG_FILE).display().to_string()),
        "{msg}"
    );
}

#[test]
fn a_corrupt_config_names_the_path_and_the_problem() {
    let dir = saved_dir();
    let cfg = dir.path().join(CONFIG_FILE);
    std::fs::write(&cfg, "{\"format\": \"adiff-model\", ").unwrap();
    let err = ModelFolder::load(dir.path(), &Device::Cpu).unwrap_err();
    assert!(matches!(err, Error::Json { .. }), "{err}");
    assert!(
        err.to_string().contains(&cfg.display().to_string()),
        "{err}"
    );

    let mut v: serde_json::Value = serde_json::to_value(config()).unwrap();
    v["format_version"] = 99.into();
    std::fs::write(&cfg, v.to_string()).unwrap();
    let msg = load_err(dir.path());
    assert!(
        msg.contains("format_version") && msg.contains(&cfg.display().to_string()),
        "{msg}"
    );

    let mut v: serde_json::Value = serde_json::to_value(config()).unwrap();
    v["kind"] = "Vocoder".into();
    std::fs::write(&cfg, v.to_string()).unwrap();
    let msg = load_err(dir.path());
    assert!(
        msg.contains("Vocoder") && msg.contains(&cfg.display().to_string()),
        "{msg}"
    );

    let mut v: serde_json::Value = serde_json::to_value(config()).unwrap();
    v["sample_rate"] = 0.into();
    std::fs::write(&cfg, v.to_string()).unwrap();
    assert!(load_err(dir.path()).contains("sample_rate"));
}

#[test]
fn corrupt_or_empty_weights_name_the_file() {
    let dir = saved_dir();
    let w = dir.path().join(WEIGHTS_FILE);
    std::fs::write(&w, b"not a safetensors file").unwrap();
    let err = ModelFolder::load(dir.path(), &Device::Cpu).unwrap_err();
    assert!(matches!(err, Error::WeightsFile { .. }), "{err}");
    assert!(err.to_string().contains(&w.display().to_string()), "{err}");
    candle_core::safetensors::save(&HashMap::<String, Tensor>::new(), &w).unwrap();
    assert!(load_err(dir.path()).contains("no tensors"));
}

#[test]
fn sampler_settings_read_the_reference_constructor_trees() {
    let v =
        serde_json::json!({"class": "KarrasSampler", "kwargs": {"s_tmax": "inf", "s_churn": 1.0}});
    let s: SamplerSetting = serde_json::from_value(v).unwrap();
    assert_eq!(
        s,
        SamplerSetting::KarrasSampler {
            s_tmin: 0.0,
            s_tmax: f64::INFINITY,
            s_churn: 1.0,
            s_noise: 1.0
        }
    );
    let back = serde_json::to_value(&s).unwrap();
    assert_eq!(back["kwargs"]["s_tmax"], "inf");
    let v = serde_json::json!({"class": "ADPM2Sampler", "kwargs": {}});
    assert_eq!(
        serde_json::from_value::<SamplerSetting>(v).unwrap(),
        SamplerSetting::ADPM2Sampler { rho: 1.0 }
    );
}
