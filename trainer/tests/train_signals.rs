//! `adiff train` under signals and damage: SIGINT and SIGTERM checkpoint the step they stop at and
//! print the resume command; a second signal quits at once without damaging a checkpoint; a run
//! killed before its first checkpoint does not wedge its folder; `--resume` works from another
//! directory; and a damaged file stops a resume with an error naming that file.

mod train_support;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};
use train_support::*;

/// Longest wait for a training process to reach a step or to exit.
const DEADLINE: Duration = Duration::from_secs(40);

/// A temporary folder with `data/` (six one-second clips) and `config.json` (a tiny upsampler).
struct Fixture {
    tmp: tempfile::TempDir,
}

impl Fixture {
    fn new(seed: u64) -> Self {
        let tmp = tempfile::tempdir().unwrap();
        synth_folder(&tmp.path().join("data"), 6, seed);
        tiny_upsampler_config(&tmp.path().join("config.json"), 256);
        Self { tmp }
    }

    fn dir(&self) -> &Path {
        self.tmp.path()
    }

    fn run(&self, name: &str) -> PathBuf {
        self.dir().join(name)
    }

    /// `adiff train` arguments of a tiny new run in `run`, then `extra`.
    fn args(&self, run: &Path, steps: u64, extra: &[&str]) -> Vec<String> {
        let mut v: Vec<String> = [
            "train",
            "--data",
            s(&self.dir().join("data")),
            "--model",
            s(&self.dir().join("config.json")),
            "--out",
            s(run),
        ]
        .iter()
        .map(|x| x.to_string())
        .collect();
        v.extend(tiny_settings(steps));
        v.extend(extra.iter().map(|x| x.to_string()));
        v
    }
}

/// Settings that make each update take milliseconds.
fn tiny_settings(steps: u64) -> Vec<String> {
    let steps = steps.to_string();
    [
        "--steps",
        steps.as_str(),
        "--batch-size",
        "2",
        "--warmup",
        "2",
        "--val-every",
        "0",
        "--val-windows",
        "2",
        "--val-fraction",
        "0.25",
        "--sample-every",
        "0",
        "--threads",
        "1",
        "--no-progress",
        "--seed",
        "3",
    ]
    .iter()
    .map(|x| x.to_string())
    .collect()
}

/// Starts `adiff` with `args` in `cwd`; its stderr goes to `stderr_file`.
fn spawn(args: &[String], cwd: &Path, stderr_file: &Path) -> Child {
    Command::new(env!("CARGO_BIN_EXE_adiff"))
        .args(args)
        .current_dir(cwd)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(fs::File::create(stderr_file).unwrap())
        .spawn()
        .expect("starting adiff")
}

/// Runs `adiff` in `cwd` to the end; returns (status, stdout, stderr).
fn run_in(args: &[&str], cwd: &Path) -> (ExitStatus, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_adiff"))
        .args(args)
        .current_dir(cwd)
        .output()
        .expect("running adiff");
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    (out.status, text(&out.stdout), text(&out.stderr))
}

/// The highest training step in the run's metrics so far (0 while there is none).
fn trained_step(run: &Path) -> u64 {
    let text = fs::read_to_string(run.join("metrics.jsonl")).unwrap_or_default();
    text.lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v.get("loss").is_some())
        .filter_map(|v| v.get("step")?.as_u64())
        .max()
        .unwrap_or(0)
}

/// Waits until the training process has done `step` updates (it must still be running).
fn wait_for_step(child: &mut Child, run: &Path, step: u64, stderr_file: &Path) {
    let start = Instant::now();
    while trained_step(run) < step {
        if let Some(status) = child.try_wait().unwrap() {
            panic!(
                "adiff exited ({status}) before step {step}:\n{}",
                fs::read_to_string(stderr_file).unwrap_or_default()
            );
        }
        assert!(
            start.elapsed() < DEADLINE,
            "no step {step} within {DEADLINE:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Waits for the process to exit (killing it at the deadline).
fn wait_exit(child: &mut Child) -> ExitStatus {
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if start.elapsed() > DEADLINE {
            let _ = child.kill();
            panic!("adiff did not exit within {DEADLINE:?} of the signal");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Sends the signals (`"INT"`, `"TERM"`) to `pid`, one right after the other, from one shell.
fn send(pid: u32, signals: &[&str]) {
    let script: Vec<String> = signals.iter().map(|g| format!("kill -{g} {pid}")).collect();
    let status = Command::new("sh")
        .args(["-c", &script.join("; ")])
        .status()
        .expect("running kill");
    assert!(status.success(), "kill failed");
}

/// The step a checkpoint file records, after checking that the file parses as safetensors.
fn checkpoint_step(path: &Path) -> u64 {
    let bytes = fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    safetensors::SafeTensors::deserialize(&bytes).expect("a loadable checkpoint");
    let (_, header) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
    let meta = header.metadata().as_ref().unwrap()["adiff_checkpoint"].clone();
    let meta: serde_json::Value = serde_json::from_str(&meta).unwrap();
    meta["step"].as_u64().unwrap()
}

fn checkpoint_path(run: &Path, step: u64) -> PathBuf {
    run.join(format!("ckpt-{step:09}.safetensors"))
}

/// Complete checkpoint files of a run.
fn checkpoints(run: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = fs::read_dir(run)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            let name = p.file_name().unwrap().to_string_lossy();
            name.starts_with("ckpt-") && name.ends_with(".safetensors")
        })
        .collect();
    v.sort();
    v
}

/// The number after "at step " in `text`.
fn reported_step(text: &str) -> u64 {
    let rest = text
        .split("at step ")
        .nth(1)
        .unwrap_or_else(|| panic!("no `at step N` in:\n{text}"));
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().unwrap()
}

/// Training steps of the metrics file, in file order.
fn loss_steps(run: &Path) -> Vec<u64> {
    fs::read_to_string(run.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|v| v.get("loss").is_some())
        .map(|v| v["step"].as_u64().unwrap())
        .collect()
}

/// A run stopped by `signal` checkpoints the step it stopped at, exports the model, exits with
/// `code`, says how to resume, and the resume continues from that step.
fn signal_checkpoints_and_resumes(signal: &str, code: i32, seed: u64) {
    let fx = Fixture::new(seed);
    let run = fx.run("run");
    let log = fx.dir().join("stderr.txt");
    let args = fx.args(&run, 100_000, &["--checkpoint-every", "100000"]);
    let mut child = spawn(&args, fx.dir(), &log);
    wait_for_step(&mut child, &run, 2, &log);
    send(child.id(), &[signal]);
    let status = wait_exit(&mut child);
    let err = fs::read_to_string(&log).unwrap();
    assert_eq!(status.code(), Some(code), "{err}");

    let step = reported_step(&err);
    assert!(step >= 2, "{err}");
    let resume_hint = format!("adiff train --resume {}", s(&run));
    assert!(err.contains(&resume_hint), "no `{resume_hint}` in:\n{err}");
    assert_eq!(checkpoint_step(&checkpoint_path(&run, step)), step);
    assert!(run.join("model/model.safetensors").is_file());
    assert_eq!(loss_steps(&run).last(), Some(&step));

    let stop = (step + 2).to_string();
    let out = adiff_ok(&[
        "train",
        "--resume",
        s(&run),
        "--stop-after",
        &stop,
        "--no-progress",
    ]);
    assert!(
        out.contains(&format!("step {stop} of 100000 (2 this session)")),
        "{out}"
    );
    assert_eq!(loss_steps(&run), (1..=step + 2).collect::<Vec<_>>());
}

#[test]
fn sigint_checkpoints_the_current_step_and_resumes() {
    signal_checkpoints_and_resumes("INT", 130, 21);
}

#[test]
fn sigterm_checkpoints_the_current_step_and_resumes() {
    signal_checkpoints_and_resumes("TERM", 143, 22);
}

#[test]
fn a_second_signal_exits_at_once_and_leaves_the_folder_resumable() {
    let fx = Fixture::new(23);
    let run = fx.run("run");
    let log = fx.dir().join("stderr.txt");
    let args = fx.args(&run, 100_000, &["--checkpoint-every", "1"]);
    let mut child = spawn(&args, fx.dir(), &log);
    wait_for_step(&mut child, &run, 2, &log);
    send(child.id(), &["TERM", "INT"]);
    let status = wait_exit(&mut child);
    let err = fs::read_to_string(&log).unwrap();
    assert_eq!(status.code(), Some(130), "{err}");
    // Every complete checkpoint still loads, and the run continues from the newest.
    let listed = checkpoints(&run);
    let newest = listed.iter().map(|p| checkpoint_step(p)).max().unwrap();
    let stop = (newest + 1).to_string();
    let out = adiff_ok(&[
        "train",
        "--resume",
        s(&run),
        "--stop-after",
        &stop,
        "--no-progress",
    ]);
    assert!(
        out.contains(&format!("step {stop} of 100000 (1 this session)")),
        "{out}"
    );
}

#[test]
fn a_run_killed_before_its_first_checkpoint_does_not_wedge_its_folder() {
    let fx = Fixture::new(24);
    let kill_early = |name: &str| {
        let run = fx.run(name);
        let log = fx.dir().join(format!("{name}.stderr.txt"));
        let args = fx.args(&run, 100_000, &["--checkpoint-every", "100000"]);
        let mut child = spawn(&args, fx.dir(), &log);
        wait_for_step(&mut child, &run, 1, &log);
        child.kill().unwrap(); // SIGKILL: no handler runs
        wait_exit(&mut child);
        assert!(checkpoints(&run).is_empty());
        assert!(run.join("run.json").is_file());
        run
    };

    // A plain rerun in the same folder starts over and leaves no line of the killed attempt.
    let a = kill_early("a");
    let args = fx.args(&a, 3, &[]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (status, out, err) = run_in(&args, fx.dir());
    assert!(status.success(), "{out}\n{err}");
    assert!(out.contains("step 3 of 3 (3 this session)"), "{out}");
    assert_eq!(loss_steps(&a), vec![1, 2, 3]);

    // `--resume` of such a folder starts from step 0 with a note.
    let b = kill_early("b");
    let (status, out, err) = run_in(
        &[
            "train",
            "--resume",
            s(&b),
            "--stop-after",
            "2",
            "--no-progress",
        ],
        fx.dir(),
    );
    assert!(status.success(), "{out}\n{err}");
    assert!(err.contains("no checkpoint yet"), "{err}");
    assert!(out.contains("step 2 of 100000 (2 this session)"), "{out}");
    assert_eq!(loss_steps(&b), vec![1, 2]);
}

#[test]
fn resume_works_from_another_directory_and_old_relative_paths_still_load() {
    let fx = Fixture::new(25);
    let elsewhere = fx.dir().join("elsewhere");
    fs::create_dir(&elsewhere).unwrap();
    let mut args = vec![
        "train",
        "--data",
        "data",
        "--model",
        "config.json",
        "--out",
        "run",
    ];
    let settings = tiny_settings(4);
    args.extend(settings.iter().map(String::as_str));
    args.extend(["--stop-after", "2"]);
    let (status, out, err) = run_in(&args, fx.dir());
    assert!(status.success(), "{out}\n{err}");

    let spec_path = fx.run("run").join("run.json");
    let mut spec: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(&spec_path).unwrap()).unwrap();
    let root = PathBuf::from(spec["settings"]["data"]["root"].as_str().unwrap());
    assert!(root.is_absolute() && root.is_dir(), "{root:?}");

    let resume = ["train", "--resume", "../run", "--no-progress"];
    let (status, out, err) = run_in(&resume, &elsewhere);
    assert!(status.success(), "{out}\n{err}");
    assert!(out.contains("step 4 of 4 (2 this session)"), "{out}");

    // An older run.json with a relative data folder: read against the current directory.
    spec["settings"]["data"]["root"] = "data".into();
    fs::write(&spec_path, spec.to_string()).unwrap();
    let (status, out, err) = run_in(&["train", "--resume", "run", "--no-progress"], fx.dir());
    assert!(status.success(), "{out}\n{err}");
    let (status, _, err) = run_in(&resume, &elsewhere);
    assert!(!status.success());
    assert!(err.contains("run.json") && err.contains("`data`"), "{err}");
}

#[test]
fn damaged_files_stop_a_resume_with_an_error_naming_them() {
    let fx = Fixture::new(26);
    let run = fx.run("run");
    let args = fx.args(&run, 6, &["--stop-after", "2"]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    adiff_ok(&args);
    let metrics = run.join("metrics.jsonl");
    let good = fs::read_to_string(&metrics).unwrap();
    let resume = [
        "train",
        "--resume",
        s(&run),
        "--stop-after",
        "3",
        "--no-progress",
    ];

    // Garbage in the middle of metrics.jsonl: an error naming the file and the line.
    let (first, rest) = good.split_once('\n').unwrap();
    fs::write(&metrics, format!("{first}\n\u{1}garbage{{\n{rest}")).unwrap();
    let (status, _, err) = run_in(&resume, fx.dir());
    assert!(!status.success());
    assert!(
        err.contains(&format!("{} line 2", metrics.display())),
        "{err}"
    );

    // A torn last line: a warning naming the file, and the resume goes on.
    fs::write(&metrics, format!("{good}{{\"step\":3,\"lo")).unwrap();
    let (status, out, err) = run_in(&resume, fx.dir());
    assert!(status.success(), "{out}\n{err}");
    assert!(
        err.contains(s(&metrics)) && err.contains("warning"),
        "{err}"
    );
    assert_eq!(loss_steps(&run), vec![1, 2, 3]);

    // No readable checkpoint, then garbage run.json: errors naming the files.
    let listed = checkpoints(&run);
    for ckpt in &listed {
        fs::write(ckpt, b"not a checkpoint").unwrap();
    }
    let (status, _, err) = run_in(&resume, fx.dir());
    assert!(!status.success());
    assert!(listed.iter().all(|c| err.contains(s(c))), "{err}");
    let spec = run.join("run.json");
    fs::write(&spec, "{ \"settings\": ").unwrap();
    let (status, _, err) = run_in(&resume, fx.dir());
    assert!(!status.success());
    assert!(err.contains(s(&spec)), "{err}");
}
