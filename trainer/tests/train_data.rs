//! Data problems: an undecodable file is skipped with one warning and counted in the summary; an
//! empty or all-silent folder is an error before training starts.

mod train_support;

use train_support::*;

fn short_run<'a>(data: &'a str, cfg: &'a str, run: &'a str) -> Vec<&'a str> {
    vec![
        "train",
        "--data",
        data,
        "--model",
        cfg,
        "--out",
        run,
        "--steps",
        "2",
        "--batch-size",
        "2",
        "--val-every",
        "0",
        "--val-windows",
        "2",
        "--sample-every",
        "0",
        "--checkpoint-every",
        "0",
        "--no-progress",
    ]
}

#[test]
fn corrupt_files_are_skipped_and_reported() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    synth_folder(&data.join("good"), 4, 5);
    std::fs::write(
        data.join("broken.wav"),
        b"RIFF\x10\x00\x00\x00WAVEjunkjunkjunk",
    )
    .unwrap();
    std::fs::write(
        data.join("noise.mp3"),
        (0..4000u32)
            .map(|i| (i * 7919 % 251) as u8)
            .collect::<Vec<_>>(),
    )
    .unwrap();
    let cfg = tmp.path().join("config.json");
    tiny_upsampler_config(&cfg, 256);
    let run = tmp.path().join("run");
    let out = adiff(&short_run(s(&data), s(&cfg), s(&run)), &[]);
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("skipped: 2 undecodable"), "{stdout}");
    for name in ["broken.wav", "noise.mp3"] {
        assert_eq!(
            stderr.matches(name).count(),
            1,
            "one warning for {name}:\n{stderr}"
        );
        assert!(stdout.contains(name), "{stdout}");
    }
    assert!(run.join("model/model.safetensors").is_file());
}

#[test]
fn empty_or_silent_folders_fail_before_training() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = tmp.path().join("config.json");
    tiny_upsampler_config(&cfg, 256);
    let empty = tmp.path().join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let run = tmp.path().join("run1");
    let out = adiff(&short_run(s(&empty), s(&cfg), s(&run)), &[]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no audio files"));

    let silent = tmp.path().join("silent");
    std::fs::create_dir_all(&silent).unwrap();
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: RATE,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(silent.join("quiet.wav"), spec).unwrap();
    for _ in 0..4000 {
        w.write_sample(0i16).unwrap();
    }
    w.finalize().unwrap();
    let run = tmp.path().join("run2");
    let out = adiff(&short_run(s(&silent), s(&cfg), s(&run)), &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("1 silent"), "{stderr}");
    assert!(!run.join("metrics.jsonl").exists(), "training started");
}
