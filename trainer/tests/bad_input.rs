//! The bad-input suite: table-driven cases, each building its input from scratch (tiny model
//! folders with random weights, WAV / safetensors / zip / pickle bytes written by the test), run
//! through the `adiff` binary under a 4 GB address-space cap (`prlimit --as`) and a 60 s deadline,
//! each with its exact expected outcome. Bad input: non-zero exit, exactly one `error: ` line on
//! stderr naming the thing (clap-level rejections: exit 2 and the flag named), no panic or abort
//! text, nothing in the case folder changed (an existing output stays byte for byte), no
//! temporary leftovers. Odd-but-valid input: success and a correct output. One #[test] per
//! category; each runs all its cases and reports every failure together.
//!
//! Categories: audio input, flags, output paths, model folders, convert checkpoints, and the
//! property-style pass (seeded mutations of a WAV, a config.json and a safetensors). The plugin
//! state's property pass is `plugin/engine/tests/state_fuzz.rs`.

#[path = "bad_input/audio.rs"]
mod audio;
#[path = "bad_input/build.rs"]
mod build;
#[path = "bad_input/convert.rs"]
mod convert;
#[path = "bad_input/flags.rs"]
mod flags;
#[path = "bad_input/fuzz.rs"]
mod fuzz;
#[path = "bad_input/harness.rs"]
mod harness;
#[path = "bad_input/models.rs"]
mod models;
#[path = "bad_input/outputs.rs"]
mod outputs;

use harness::{run_category, Case};

fn run(category: &str, cases: Vec<Case>) {
    let root = tempfile::tempdir().unwrap();
    let (fx, vars) = build::fixtures(root.path());
    run_category(category, &fx, &vars, cases);
}

#[test]
fn the_suite_has_at_least_150_hand_written_cases() {
    let n = audio::cases().len()
        + flags::cases().len()
        + outputs::cases().len()
        + models::cases().len()
        + convert::cases().len();
    let f = fuzz::cases().len();
    eprintln!(
        "bad_input: {n} hand-written cases + {f} mutation cases = {}",
        n + f
    );
    assert!(n >= 150, "only {n} hand-written cases");
    assert!(f >= 3 * 60, "only {f} mutation cases");
}

#[test]
fn prlimit_is_available_and_a_valid_run_fits_under_the_cap() {
    let dir = tempfile::tempdir().unwrap();
    build::pcm16(8000, 1, 800).write(&dir.path().join("in.wav"));
    let a = harness::args(&[
        "upsample",
        &dir.path().join("in.wav").to_string_lossy(),
        "-o",
        &dir.path().join("out.wav").to_string_lossy(),
        "--factor",
        "2",
    ]);
    let r = harness::run_adiff(&a, dir.path(), dir.path(), "probe");
    assert!(
        r.success(),
        "a valid upsample under the cap: {}",
        r.summary()
    );
    harness::check_wav(&dir.path().join("out.wav"), Some((16_000, 1, 1600))).unwrap();
}

#[test]
fn audio_input() {
    run("audio", audio::cases());
}

#[test]
fn flags() {
    run("flags", flags::cases());
}

#[test]
fn output_paths() {
    run("outputs", outputs::cases());
}

#[test]
fn model_folders() {
    run("models", models::cases());
}

#[test]
fn convert_checkpoints() {
    run("convert", convert::cases());
}

fn mutations(prefix: &str) -> Vec<Case> {
    fuzz::cases()
        .into_iter()
        .filter(|c| c.name.starts_with(prefix))
        .collect()
}

#[test]
fn mutated_wavs() {
    run("mutated WAV", mutations("wav"));
}

#[test]
fn mutated_configs() {
    run("mutated config.json", mutations("config.json"));
}

#[test]
fn mutated_weights() {
    run("mutated model.safetensors", mutations("model.safetensors"));
}
