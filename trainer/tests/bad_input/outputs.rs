//! Bad output paths: the input itself (same path, another spelling, a symlink, a hard link),
//! missing and read-only folders, folders as outputs, failures after the audio is written (the
//! spectrogram), and an existing output left byte-for-byte unchanged by every failing run (the
//! harness writes a sentinel `out.wav` before each refused case and compares afterwards).

use super::build::*;
use super::harness::{args, case, is_root, Case, Ctx, Expect};

fn input(c: &Ctx) -> String {
    pcm16(8000, 1, 800).write(&c.dir.join("in.wav"));
    c.p("in.wav")
}

fn up_to(c: &Ctx, out: &str) -> Vec<String> {
    let i = input(c);
    args(&["upsample", &i, "-o", out, "--factor", "2"])
}

fn gen_to(c: &Ctx, out: &str) -> Vec<String> {
    args(&[
        "generate",
        "-o",
        out,
        "--model",
        &c.fx("gen").to_string_lossy(),
        "--seconds",
        "0.05",
        "--steps",
        "2",
    ])
}

fn inpaint_to(c: &Ctx, out: &str) -> Vec<String> {
    let i = input(c);
    args(&[
        "inpaint",
        &i,
        "-o",
        out,
        "--model",
        &c.fx("gen").to_string_lossy(),
        "--start",
        "0.02",
        "--end",
        "0.05",
        "--steps",
        "2",
    ])
}

/// A read-only sub-folder `ro/` (mode 0555).
fn read_only(c: &Ctx) -> String {
    use std::os::unix::fs::PermissionsExt;
    let d = c.dir.join("ro");
    std::fs::create_dir(&d).unwrap();
    std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o555)).unwrap();
    d.join("out.wav").to_string_lossy().into_owned()
}

// One case a line: the table reads as a list of cases.
#[rustfmt::skip]
pub fn cases() -> Vec<Case> {
    use Expect::*;
    let root = is_root();
    // Root writes into a read-only folder anyway, so the refusal cannot be observed as root.
    let ro = |refused: Expect| {
        if root {
            Skip("running as root: a read-only folder does not stop root")
        } else {
            refused
        }
    };
    vec![
        case("output = input", |c| { let i = input(c); up_to(c, &i) }, Refused(&["in.wav", "same file|overwrite"])),
        case("output = input via ./", |c| { let o = format!("{}/./in.wav", c.dir.display()); up_to(c, &o) }, Refused(&["same file|overwrite"])),
        case("output = input via sub/../", |c| { std::fs::create_dir(c.dir.join("sub")).unwrap(); let o = format!("{}/sub/../in.wav", c.dir.display()); up_to(c, &o) }, Refused(&["same file|overwrite"])),
        case("output = symlink to input", |c| { let i = input(c); std::os::unix::fs::symlink(&i, c.dir.join("link.wav")).unwrap(); up_to(c, &c.p("link.wav")) }, Refused(&["same file|overwrite"])),
        case("output = hard link to input", |c| { let i = input(c); std::fs::hard_link(&i, c.dir.join("hard.wav")).unwrap(); up_to(c, &c.p("hard.wav")) }, Refused(&["same file"])),
        case("output = hard link to input (inpaint)", |c| { let i = input(c); std::fs::hard_link(&i, c.dir.join("hard.wav")).unwrap(); inpaint_to(c, &c.p("hard.wav")) }, Refused(&["same file"])),
        case("output = input (inpaint)", |c| { let i = input(c); inpaint_to(c, &i) }, Refused(&["same file|overwrite"])),
        case("spectrogram = input", |c| { let i = input(c); let mut a = up_to(c, &c.out()); a.extend(args(&["--spectrogram", &i])); a }, Refused(&["in.wav"])),
        case("spectrogram = output", |c| { let mut a = up_to(c, &c.out()); a.extend(args(&["--spectrogram", &c.out()])); a }, Refused(&["out.wav"])),
        case("output in a missing folder", |c| up_to(c, &c.p("missing_dir/out.wav")), Refused(&["missing_dir"])),
        case("output in a missing folder (generate)", |c| gen_to(c, &c.p("missing_dir/out.wav")), Refused(&["missing_dir"])),
        case("output under a file", |c| { let i = input(c); let o = format!("{i}/out.wav"); up_to(c, &o) }, Refused(&["in.wav"])),
        case("output is a folder", |c| { std::fs::create_dir(c.dir.join("outdir")).unwrap(); up_to(c, &c.p("outdir")) }, Refused(&["outdir", "folder"])),
        case("output is a folder with trailing slash", |c| { std::fs::create_dir(c.dir.join("outdir")).unwrap(); up_to(c, &c.p("outdir/")) }, Refused(&["outdir", "folder"])),
        case("output is a folder (generate)", |c| { std::fs::create_dir(c.dir.join("outdir")).unwrap(); gen_to(c, &c.p("outdir")) }, Refused(&["outdir", "folder"])),
        case("output is the empty path", |c| up_to(c, ""), Usage("--output")),
        case("spectrogram = ./output (another spelling of a path not yet written)", |c| { let mut a = up_to(c, "new.wav"); a.extend(args(&["--spectrogram", "./new.wav"])); a }, Refused(&["new.wav"])),
        case("spectrogram in a missing folder (nothing written)", |c| { let mut a = up_to(c, &c.out()); a.extend(args(&["--spectrogram", &c.p("nodir/s.png")])); a }, Refused(&["nodir"])),
        case("spectrogram is a folder (nothing written)", |c| { std::fs::create_dir(c.dir.join("pngdir")).unwrap(); let mut a = gen_to(c, &c.out()); a[6] = "0.2".into(); a.extend(args(&["--spectrogram", &c.p("pngdir")])); a }, Refused(&["pngdir"])),
        case("spectrogram of a 400-sample clip: clean error or success", |c| { let mut a = gen_to(c, &c.out()); a.extend(args(&["--spectrogram", &c.p("short.png")])); a }, CleanOrWav),
        case("output in a read-only folder", |c| { let o = read_only(c); up_to(c, &o) }, ro(Refused(&["ro"]))),
        case("output in a read-only folder (generate)", |c| { let o = read_only(c); gen_to(c, &o) }, ro(Refused(&["ro"]))),
        case("a failing run keeps an existing output (bad factor)", |c| { std::fs::write(c.dir.join("out.wav"), b"precious bytes").unwrap(); let mut a = up_to(c, &c.out()); a[5] = "3".into(); a }, Refused(&["3"])),
        case("a failing run keeps an existing output (bad input)", |c| { std::fs::write(c.dir.join("out.wav"), b"precious bytes").unwrap(); std::fs::write(c.dir.join("bad.wav"), b"not audio at all").unwrap(); args(&["upsample", &c.p("bad.wav"), "-o", &c.out()]) }, Refused(&["bad.wav"])),
        case("a failing run keeps an existing output (bad model)", |c| { std::fs::write(c.dir.join("out.wav"), b"precious bytes").unwrap(); gen_to(c, &c.p("out.wav")).into_iter().map(|a| if a.ends_with("/gen") { c.p("no_model") } else { a }).collect() }, Refused(&["no_model"])),
        case("an existing output is replaced on success", |c| { std::fs::write(c.dir.join("out.wav"), b"old").unwrap(); up_to(c, &c.out()) }, Wav { rate: 16_000, channels: 1, frames: 1600 }),
        case("an output name with spaces and unicode works", |c| { let o = c.p("o u t \u{00e9}\u{4e2d}.wav"); let mut a = up_to(c, &o); a.extend(args(&["--spectrogram", &c.p("s p.png")])); a }, Ok(|c, _| super::harness::check_wav(&c.dir.join("o u t \u{00e9}\u{4e2d}.wav"), Some((16_000, 1, 1600))))),
        case("output without .wav extension works", |c| up_to(c, &c.p("out.audio")), Ok(|c, _| super::harness::check_wav(&c.dir.join("out.audio"), Some((16_000, 1, 1600))))),
    ]
}
