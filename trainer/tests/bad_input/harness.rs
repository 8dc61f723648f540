//! Running table-driven cases against the `adiff` binary: each case builds its inputs from scratch
//! in its own folder, runs the binary under a memory cap (`prlimit --as`) and a deadline, and is
//! judged against its exact expected outcome. A category runs all its cases and reports every
//! failure at once.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// Address-space cap of every spawned process (bytes).
pub const MEMORY_CAP: &str = "--as=4000000000";
/// Wall-clock limit of every spawned process; past it the case is a hang.
pub const DEADLINE: Duration = Duration::from_secs(60);

/// Where a case runs and the shared fixtures it may copy from.
pub struct Ctx {
    /// The case's own folder (empty when the case starts); outputs go to `dir/out.wav` by
    /// convention.
    pub dir: PathBuf,
    /// Fixtures built once per category (tiny models with random weights, the band-extension
    /// folder copied from models/upsampler); cases copy them before mutating.
    pub fx: HashMap<&'static str, PathBuf>,
    /// Names substituted into expected needles as `{name}`.
    pub vars: HashMap<&'static str, String>,
}

impl Ctx {
    /// A path in the case folder, as a string argument.
    pub fn p(&self, name: &str) -> String {
        self.dir.join(name).to_string_lossy().into_owned()
    }
    /// A fixture path.
    pub fn fx(&self, name: &str) -> &Path {
        self.fx
            .get(name)
            .unwrap_or_else(|| panic!("no fixture {name}"))
    }
    /// The conventional output path.
    pub fn out(&self) -> String {
        self.p("out.wav")
    }
    /// A copy of fixture `name` at `dir/<to>`; returns its path.
    pub fn copy_fx(&self, name: &str, to: &str) -> PathBuf {
        let dst = self.dir.join(to);
        copy_dir(self.fx(name), &dst);
        dst
    }
}

/// Copies a folder tree.
pub fn copy_dir(src: &Path, dst: &Path) {
    std::fs::create_dir_all(dst).unwrap();
    for e in std::fs::read_dir(src).unwrap() {
        let e = e.unwrap();
        let to = dst.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &to);
        } else {
            std::fs::copy(e.path(), &to).unwrap();
        }
    }
}

/// Arguments as owned strings.
pub fn args(a: &[&str]) -> Vec<String> {
    a.iter().map(|s| s.to_string()).collect()
}

/// A success check: gets the case and the run, says what is wrong.
pub type Check = fn(&Ctx, &Run) -> Result<(), String>;

/// The exact outcome a case expects.
pub enum Expect {
    /// Non-zero exit (not a signal), stderr's non-empty lines are exactly one `error: ...` line
    /// containing every needle (case-insensitive; `a|b` means either; `{var}` is substituted).
    /// Nothing in the case folder changes (an existing `out.wav` sentinel stays byte for byte).
    Refused(&'static [&'static str]),
    /// A clap-level rejection: exit code 2 and the flag named on stderr.
    Usage(&'static str),
    /// Success; `out.wav` is a valid WAV at this rate, channel count and length, all finite.
    Wav {
        rate: u32,
        channels: usize,
        frames: usize,
    },
    /// Success and the check passes.
    Ok(Check),
    /// Either a clean refusal (one `error:` line, nothing changed) or success with a finite,
    /// readable `out.wav` (the property-style pass).
    CleanOrWav,
    /// Either a clean refusal or success (commands without an audio output, e.g. `info`).
    CleanOrOk,
    /// Not run here; the reason says why.
    Skip(&'static str),
}

/// Builds a case's command line in a context.
pub type BuildArgs = dyn Fn(&Ctx) -> Vec<String> + Send + Sync;

/// A named case: what to build and run, and what must come out.
pub struct Case {
    pub name: String,
    pub build: Box<BuildArgs>,
    pub expect: Expect,
}

/// A case from a plain function.
pub fn case(
    name: impl Into<String>,
    build: impl Fn(&Ctx) -> Vec<String> + Send + Sync + 'static,
    expect: Expect,
) -> Case {
    Case {
        name: name.into(),
        build: Box::new(build),
        expect,
    }
}

/// What a run of the binary gave.
pub struct Run {
    pub status: Option<ExitStatus>,
    pub timed_out: bool,
    pub stdout: String,
    pub stderr: String,
    pub secs: f64,
}

impl Run {
    pub fn code(&self) -> Option<i32> {
        self.status.and_then(|s| s.code())
    }
    pub fn success(&self) -> bool {
        self.status.is_some_and(|s| s.success())
    }
    fn first_err_line(&self) -> String {
        self.stderr
            .lines()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("")
            .chars()
            .take(300)
            .collect()
    }
    /// One line describing the outcome (exit code and first stderr line).
    pub fn summary(&self) -> String {
        if self.timed_out {
            return format!("HANG (killed after {:?})", DEADLINE);
        }
        let how = match self.status {
            Some(s) => match s.code() {
                Some(c) => format!("exit {c}"),
                None => {
                    use std::os::unix::process::ExitStatusExt;
                    format!("killed by signal {:?}", s.signal())
                }
            },
            None => "no status".into(),
        };
        format!(
            "{how}, {:.1} s, stderr: {:?}",
            self.secs,
            self.first_err_line()
        )
    }
}

/// Whether this process runs as root (a read-only folder does not stop root).
pub fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// Runs the binary with `args` in `cwd` under the memory cap and the deadline; stdout and stderr
/// go to files under `logs` (pipes could fill while we poll).
pub fn run_adiff(args: &[String], cwd: &Path, logs: &Path, tag: &str) -> Run {
    let out_path = logs.join(format!("{tag}.stdout"));
    let err_path = logs.join(format!("{tag}.stderr"));
    let t = Instant::now();
    let mut child = Command::new("prlimit")
        .arg(MEMORY_CAP)
        .arg("--")
        .arg(env!("CARGO_BIN_EXE_adiff"))
        .args(args)
        .current_dir(cwd)
        .env("RUST_BACKTRACE", "0")
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out_path).unwrap())
        .stderr(std::fs::File::create(&err_path).unwrap())
        .spawn()
        .expect("prlimit runs the adiff binary (util-linux prlimit is needed)");
    let mut timed_out = false;
    let status = loop {
        match child.try_wait() {
            Ok(Some(s)) => break Some(s),
            Ok(None) if t.elapsed() > DEADLINE => {
                timed_out = true;
                let _ = child.kill();
                break child.wait().ok();
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(5)),
            Err(_) => break None,
        }
    };
    let read =
        |p: &Path| String::from_utf8_lossy(&std::fs::read(p).unwrap_or_default()).into_owned();
    Run {
        status,
        timed_out,
        stdout: read(&out_path),
        stderr: read(&err_path),
        secs: t.elapsed().as_secs_f64(),
    }
}

/// What a file tree held: relative path -> contents (or length for big files, "dir" for folders).
fn snapshot(root: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<PathBuf, Vec<u8>>) {
        let Ok(rd) = std::fs::read_dir(dir) else {
            return;
        };
        for e in rd.flatten() {
            let p = e.path();
            let rel = p.strip_prefix(root).unwrap().to_path_buf();
            let Ok(meta) = std::fs::symlink_metadata(&p) else {
                continue;
            };
            if meta.file_type().is_symlink() {
                let target = std::fs::read_link(&p).unwrap_or_default();
                out.insert(rel, format!("link:{}", target.display()).into_bytes());
            } else if meta.is_dir() {
                out.insert(rel, b"dir".to_vec());
                walk(root, &p, out);
            } else if meta.len() > 16 << 20 {
                out.insert(rel, format!("big:{}", meta.len()).into_bytes());
            } else {
                out.insert(rel, std::fs::read(&p).unwrap_or_default());
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(root, root, &mut out);
    out
}

/// Temporary-file leftovers in a tree.
fn leftovers(snap: &BTreeMap<PathBuf, Vec<u8>>) -> Vec<String> {
    snap.keys()
        .filter_map(|p| {
            let name = p.file_name()?.to_string_lossy().to_lowercase();
            (name.ends_with(".tmp")
                || name.contains(".tmp.")
                || name.starts_with(".tmp")
                || name.ends_with('~')
                || name.ends_with(".part")
                || name.ends_with(".partial"))
            .then(|| p.display().to_string())
        })
        .collect()
}

/// The texts that must never be on stderr: panics and aborts.
fn crash_text(stderr: &str) -> Option<&'static str> {
    [
        "panicked",
        "overflow",
        "memory allocation of",
        "fatal runtime error",
        "RUST_BACKTRACE",
        "Segmentation fault",
        "core dumped",
    ]
    .into_iter()
    .find(|w| stderr.contains(w))
}

fn substitute(needle: &str, vars: &HashMap<&'static str, String>) -> String {
    let mut s = needle.to_string();
    for (k, v) in vars {
        s = s.replace(&format!("{{{k}}}"), v);
    }
    s
}

/// Checks the one-line refusal; `Err` says what is wrong.
fn check_refusal(run: &Run, needles: &[&str], ctx: &Ctx) -> Result<(), String> {
    if run.success() {
        return Err("expected a refusal, it succeeded".into());
    }
    if run.code().is_none() {
        return Err("killed by a signal (crash or memory abort)".into());
    }
    let lines: Vec<&str> = run
        .stderr
        .lines()
        .filter(|l| !l.trim().is_empty())
        .collect();
    if lines.len() != 1 {
        return Err(format!("expected one stderr line, got {}", lines.len()));
    }
    let line = lines[0];
    if !line.starts_with("error: ") {
        return Err("the line does not start with `error: `".into());
    }
    let low = line.to_lowercase();
    for needle in needles {
        let needle = substitute(needle, &ctx.vars);
        if !needle
            .split('|')
            .any(|alt| low.contains(&alt.to_lowercase()))
        {
            return Err(format!("the line lacks `{needle}`"));
        }
    }
    Ok(())
}

/// A WAV file's (rate, channels, samples as f64), parsed here (not through the library, whose
/// reader refuses samples past its input limits: an upsampled full-scale clip may overshoot).
pub fn parse_wav(bytes: &[u8]) -> Result<(u32, usize, Vec<f64>), String> {
    if bytes.len() < 12 || &bytes[..4] != b"RIFF" || &bytes[8..12] != b"WAVE" {
        return Err("the output is not a RIFF/WAVE file".into());
    }
    let (mut fmt, mut data) = (None, None);
    let mut i = 12;
    while i + 8 <= bytes.len() {
        let id = &bytes[i..i + 4];
        let len = u32::from_le_bytes(bytes[i + 4..i + 8].try_into().unwrap()) as usize;
        let body = &bytes[i + 8..(i + 8 + len).min(bytes.len())];
        if body.len() != len {
            return Err(format!(
                "chunk {:?} is cut short",
                String::from_utf8_lossy(id)
            ));
        }
        match id {
            b"fmt " => fmt = Some(body),
            b"data" => data = Some(body),
            _ => {}
        }
        i += 8 + len + (len % 2);
    }
    let fmt = fmt.ok_or("no fmt chunk")?;
    let data = data.ok_or("no data chunk")?;
    if fmt.len() < 16 {
        return Err("short fmt chunk".into());
    }
    let mut tag = u16::from_le_bytes([fmt[0], fmt[1]]);
    let channels = u16::from_le_bytes([fmt[2], fmt[3]]) as usize;
    let rate = u32::from_le_bytes(fmt[4..8].try_into().unwrap());
    let bits = u16::from_le_bytes([fmt[14], fmt[15]]);
    if tag == 0xFFFE && fmt.len() >= 26 {
        tag = u16::from_le_bytes([fmt[24], fmt[25]]);
    }
    let samples: Vec<f64> = match (tag, bits) {
        (3, 32) => data
            .chunks_exact(4)
            .map(|c| f64::from(f32::from_le_bytes(c.try_into().unwrap())))
            .collect(),
        (3, 64) => data
            .chunks_exact(8)
            .map(|c| f64::from_le_bytes(c.try_into().unwrap()))
            .collect(),
        (1, 16) => data
            .chunks_exact(2)
            .map(|c| f64::from(i16::from_le_bytes([c[0], c[1]])) / 32768.0)
            .collect(),
        (1, 32) => data
            .chunks_exact(4)
            .map(|c| f64::from(i32::from_le_bytes(c.try_into().unwrap())) / 2147483648.0)
            .collect(),
        _ => {
            return Err(format!(
                "unexpected output encoding: tag {tag}, {bits} bits"
            ))
        }
    };
    if channels == 0 || !samples.len().is_multiple_of(channels) {
        return Err(format!(
            "{} samples do not fill {channels} channels",
            samples.len()
        ));
    }
    Ok((rate, channels, samples))
}

/// Checks `out.wav`: a valid WAV, the wanted shape (when given), every sample finite.
pub fn check_wav(path: &Path, want: Option<(u32, usize, usize)>) -> Result<(), String> {
    if !path.is_file() {
        return Err(format!("{} was not written", path.display()));
    }
    let bytes = std::fs::read(path).map_err(|e| e.to_string())?;
    let (rate, channels, samples) = parse_wav(&bytes)?;
    let got = (rate, channels, samples.len() / channels);
    if let Some(w) = want {
        if got != w {
            return Err(format!(
                "output is (rate, channels, frames) = {got:?}, expected {w:?}"
            ));
        }
    }
    if let Some(x) = samples.iter().find(|x| !x.is_finite()) {
        return Err(format!("the output holds a non-finite sample {x}"));
    }
    Ok(())
}

/// Runs one case in `dir`; `Ok` or the reason it failed.
fn run_case(c: &Case, ctx: &Ctx, logs: &Path, tag: &str) -> Result<(), (String, Option<Run>)> {
    let args = (c.build)(ctx);
    let refusal_expected = matches!(c.expect, Expect::Refused(_) | Expect::Usage(_));
    let out = ctx.dir.join("out.wav");
    if refusal_expected && !out.exists() {
        // A sentinel: a failing command must leave an existing output untouched.
        std::fs::write(&out, format!("SENTINEL of {}", c.name)).unwrap();
    }
    let before = snapshot(&ctx.dir);
    let run = run_adiff(&args, &ctx.dir, logs, tag);
    let after = snapshot(&ctx.dir);
    let fail = |why: String, run: Run| Err((why, Some(run)));
    if run.timed_out {
        return fail("hang".into(), run);
    }
    if let Some(w) = crash_text(&run.stderr) {
        return fail(format!("crash text `{w}` on stderr"), run);
    }
    let left = leftovers(&after);
    if !left.is_empty() {
        return fail(format!("temporary leftovers: {left:?}"), run);
    }
    // Files that were there before must be unchanged, except the output on success.
    let changed: Vec<String> = before
        .iter()
        .filter(|(p, v)| {
            let is_output = p.as_path() == Path::new("out.wav");
            after.get(*p) != Some(*v) && !(is_output && run.success())
        })
        .map(|(p, _)| p.display().to_string())
        .collect();
    if !changed.is_empty() {
        return fail(
            format!("changed or removed pre-existing files: {changed:?}"),
            run,
        );
    }
    let new: Vec<String> = after
        .keys()
        .filter(|p| !before.contains_key(*p))
        .map(|p| p.display().to_string())
        .collect();
    let clean_refusal = |run: &Run| -> Result<(), String> {
        check_refusal(run, &[], ctx)?;
        if !new.is_empty() {
            return Err(format!("a failed run left new files: {new:?}"));
        }
        Ok(())
    };
    let verdict = match &c.expect {
        Expect::Skip(_) => Ok(()),
        Expect::Refused(needles) => check_refusal(&run, needles, ctx).and_then(|()| {
            if new.is_empty() {
                Ok(())
            } else {
                Err(format!("a failed run left new files: {new:?}"))
            }
        }),
        Expect::Usage(flag) => {
            if run.code() != Some(2) {
                Err("expected clap's usage error (exit 2)".into())
            } else if !run.stderr.contains(flag) {
                Err(format!("stderr does not name `{flag}`"))
            } else {
                Ok(())
            }
        }
        Expect::Wav {
            rate,
            channels,
            frames,
        } => {
            if !run.success() {
                Err("expected success".into())
            } else {
                check_wav(&out, Some((*rate, *channels, *frames)))
            }
        }
        Expect::Ok(check) => {
            if !run.success() {
                Err("expected success".into())
            } else {
                check(ctx, &run)
            }
        }
        Expect::CleanOrWav => {
            if run.success() {
                check_wav(&out, None)
            } else {
                clean_refusal(&run)
            }
        }
        Expect::CleanOrOk => {
            if run.success() {
                Ok(())
            } else {
                clean_refusal(&run)
            }
        }
    };
    verdict.map_err(|why| (why, Some(run)))
}

/// Runs every case of a category and fails once, listing every failing case.
pub fn run_category(
    category: &str,
    fixtures: &HashMap<&'static str, PathBuf>,
    vars: &HashMap<&'static str, String>,
    cases: Vec<Case>,
) {
    let root = tempfile::tempdir().unwrap();
    let logs = root.path().join("logs");
    std::fs::create_dir_all(&logs).unwrap();
    let t = Instant::now();
    let mut failures = Vec::new();
    let mut skipped = Vec::new();
    let mut names = std::collections::HashSet::new();
    for (i, c) in cases.iter().enumerate() {
        assert!(
            names.insert(c.name.clone()),
            "duplicate case name {}",
            c.name
        );
        if let Expect::Skip(why) = c.expect {
            skipped.push(format!("{}: {why}", c.name));
            continue;
        }
        let dir = root.path().join(format!("case{i:03}"));
        std::fs::create_dir_all(&dir).unwrap();
        let ctx = Ctx {
            dir,
            fx: fixtures.clone(),
            vars: vars.clone(),
        };
        if let Err((why, run)) = run_case(c, &ctx, &logs, &format!("case{i:03}")) {
            let detail = run.map(|r| r.summary()).unwrap_or_default();
            failures.push(format!("FAIL [{category}] {}: {why} -- {detail}", c.name));
        }
    }
    let ran = cases.len() - skipped.len();
    eprintln!(
        "[{category}] {} cases ({ran} run, {} skipped), {} failed, {:.1} s",
        cases.len(),
        skipped.len(),
        failures.len(),
        t.elapsed().as_secs_f64()
    );
    for s in &skipped {
        eprintln!("SKIP [{category}] {s}");
    }
    for f in &failures {
        eprintln!("{f}");
    }
    assert!(
        failures.is_empty(),
        "[{category}] {} of {ran} cases failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
