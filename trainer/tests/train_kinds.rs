//! Every model kind trains through `adiff train`: a few updates of a tiny generator, autoencoder
//! and conditional model, each ending with a preview render (WAV + PNG), a finite loss and an
//! exported folder. (The upsampler has its own end-to-end test.)

mod train_support;

use train_support::*;

fn config(path: &std::path::Path, kind: &str, extra: serde_json::Value) {
    let mut model = serde_json::json!({
        "in_channels": 1, "channels": 8, "patch_blocks": 1, "patch_factor": 2,
        "multipliers": [1, 2, 2], "factors": [2, 2], "num_blocks": [1, 1], "attentions": [0, 0, 0],
        "resnet_groups": 4, "kernel_multiplier_downsample": 2
    });
    if let (Some(m), Some(e)) = (model.as_object_mut(), extra.as_object()) {
        m.extend(e.clone());
    }
    let cfg = serde_json::json!({
        "format": "adiff-model", "format_version": 1, "kind": kind, "sample_rate": RATE,
        "channels": 1, "window_length": 256,
        "sampling": {
            "num_steps": 3,
            "sampler": {"class": "AEulerSampler", "kwargs": {}},
            "sigma_schedule": {"class": "KarrasSchedule", "kwargs": {"sigma_min": 0.0001, "sigma_max": 3.0, "rho": 9.0}}
        },
        "model": model
    });
    std::fs::write(path, serde_json::to_string_pretty(&cfg).unwrap()).unwrap();
}

#[test]
fn generator_autoencoder_and_conditional_train_render_and_export() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    synth_folder(&data, 4, 9);
    let kinds = [
        ("AudioDiffusionModel", serde_json::json!({})),
        (
            "AudioDiffusionAutoencoder",
            serde_json::json!({"encoder_depth": 2, "encoder_channels": 4}),
        ),
        (
            "AudioDiffusionConditional",
            serde_json::json!({"embedding_features": 8, "embedding_max_length": 2}),
        ),
    ];
    for (kind, extra) in kinds {
        let cfg = tmp.path().join(format!("{kind}.json"));
        config(&cfg, kind, extra);
        let run = tmp.path().join(kind);
        let out = adiff_ok(&[
            "train",
            "--data",
            s(&data),
            "--model",
            s(&cfg),
            "--out",
            s(&run),
            "--steps",
            "3",
            "--batch-size",
            "2",
            "--warmup",
            "1",
            "--val-every",
            "0",
            "--val-windows",
            "2",
            "--val-fraction",
            "0.5",
            "--sample-every",
            "3",
            "--sample-steps",
            "3",
            "--num-samples",
            "1",
            "--checkpoint-every",
            "3",
            "--no-progress",
        ]);
        assert!(out.contains("step 3 of 3"), "{kind}: {out}");
        let samples = run.join("samples/step-000000003");
        assert!(
            samples.join("sample-0.wav").is_file() && samples.join("sample-0.png").is_file(),
            "{kind}: no preview"
        );
        let losses: Vec<f64> = std::fs::read_to_string(run.join("metrics.jsonl"))
            .unwrap()
            .lines()
            .filter_map(|l| {
                serde_json::from_str::<serde_json::Value>(l)
                    .ok()?
                    .get("loss")?
                    .as_f64()
            })
            .collect();
        assert_eq!(losses.len(), 3, "{kind}");
        assert!(losses.iter().all(|l| l.is_finite()), "{kind}: {losses:?}");
        let (header, _) =
            adiff_core::models::AnyModel::load(&run.join("model"), &candle_core::Device::Cpu)
                .unwrap();
        assert_eq!(format!("{:?}", header.kind), kind);
    }
}
