//! A run killed in the middle of writing a checkpoint (the process aborts after the temporary file
//! is written and fsync'd, before the rename) resumes from the last complete checkpoint, nothing is
//! corrupt, and on the CPU the resumed loss curve and the exported weights are bit-identical to an
//! uninterrupted run.

mod train_support;

use train_support::*;

const ABORT_ENV: &str = "ADIFF_TEST_ABORT_CHECKPOINT_AT";

fn args<'a>(data: &'a str, cfg: &'a str, run: &'a str) -> Vec<&'a str> {
    vec![
        "train",
        "--data",
        data,
        "--model",
        cfg,
        "--out",
        run,
        "--steps",
        "12",
        "--batch-size",
        "4",
        "--grad-accum",
        "2",
        "--lr",
        "2e-3",
        "--warmup",
        "3",
        "--val-every",
        "4",
        "--val-windows",
        "4",
        "--val-fraction",
        "0.25",
        "--sample-every",
        "0",
        "--checkpoint-every",
        "4",
        "--keep-checkpoints",
        "2",
        "--no-progress",
        "--seed",
        "11",
    ]
}

#[test]
fn killed_while_checkpointing_then_resumed_matches_an_uninterrupted_run() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    synth_folder(&data, 8, 2);
    let cfg = tmp.path().join("config.json");
    tiny_upsampler_config(&cfg, 256);
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));

    adiff_ok(&args(s(&data), s(&cfg), s(&a)));

    // Killed between writing the step-8 checkpoint and renaming it.
    let killed = adiff(&args(s(&data), s(&cfg), s(&b)), &[(ABORT_ENV, "8")]);
    assert!(!killed.status.success(), "the run should have been killed");
    let names = |dir: &std::path::Path| {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    };
    let before = names(&b);
    assert!(
        before.contains(&"ckpt-000000004.safetensors".to_string()),
        "{before:?}"
    );
    assert!(
        before.contains(&".ckpt-000000008.safetensors.tmp".to_string()),
        "{before:?}"
    );
    assert!(
        !before.contains(&"ckpt-000000008.safetensors".to_string()),
        "{before:?}"
    );

    let out = adiff_ok(&["train", "--resume", s(&b), "--no-progress"]);
    assert!(out.contains("step 12 of 12 (8 this session)"), "{out}");
    let after = names(&b);
    assert!(
        !after.iter().any(|n| n.ends_with(".tmp")),
        "a temporary file survived: {after:?}"
    );
    assert!(
        after.contains(&"ckpt-000000008.safetensors".to_string())
            && after.contains(&"ckpt-000000012.safetensors".to_string()),
        "{after:?}"
    );

    // The same curve, bit for bit, and the same exported weights.
    assert_eq!(curve(&a), curve(&b));
    let wa = std::fs::read(a.join("model/model.safetensors")).unwrap();
    let wb = std::fs::read(b.join("model/model.safetensors")).unwrap();
    assert!(wa == wb, "the exported EMA weights differ after a resume");

    // A new run cannot silently overwrite an existing one.
    let again = adiff(&args(s(&data), s(&cfg), s(&b)), &[]);
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("--resume"));
}
