//! Bad arguments: `--seconds`, `--steps`, `--out-rate`, `--factor`, `--spans`, `--start/--end`,
//! `--seed`, `--device`, `--guidance`, with NaN / inf / negative / huge values; clap-level
//! rejections (exit 2, the flag named) and the edges that must work.

use super::build::*;
use super::harness::{args, case, Case, Ctx, Expect};

fn gen(c: &Ctx, extra: &[&str]) -> Vec<String> {
    let mut a = args(&[
        "generate",
        "-o",
        &c.out(),
        "--model",
        &c.fx("gen").to_string_lossy(),
    ]);
    let has = |f: &str| extra.iter().any(|e| e.starts_with(f));
    if !has("--seconds") {
        a.extend(args(&["--seconds", "0.05"]));
    }
    if !has("--steps") {
        a.extend(args(&["--steps", "2"]));
    }
    a.extend(args(extra));
    a
}

fn input(c: &Ctx) -> String {
    pcm16(8000, 1, 800).write(&c.dir.join("in.wav"));
    c.p("in.wav")
}

/// `upsample in.wav -o out.wav` with the shipped model plus `extra`.
fn up(c: &Ctx, extra: &[&str]) -> Vec<String> {
    let i = input(c);
    let mut a = args(&["upsample", &i, "-o", &c.out()]);
    a.extend(args(extra));
    a
}

/// `upsample` through the tiny diffusion upsampler (16 kHz, factors 2 and 4) from 4 kHz.
fn up_model(c: &Ctx, extra: &[&str]) -> Vec<String> {
    pcm16(4000, 1, 400).write(&c.dir.join("in.wav"));
    let mut a = args(&[
        "upsample",
        &c.p("in.wav"),
        "-o",
        &c.out(),
        "--model",
        &c.fx("up").to_string_lossy(),
    ]);
    if !extra.contains(&"--steps") {
        a.extend(args(&["--steps", "2"]));
    }
    a.extend(args(extra));
    a
}

fn inpaint(c: &Ctx, extra: &[&str]) -> Vec<String> {
    let i = input(c);
    let mut a = args(&[
        "inpaint",
        &i,
        "-o",
        &c.out(),
        "--model",
        &c.fx("gen").to_string_lossy(),
    ]);
    if !extra.contains(&"--steps") {
        a.extend(args(&["--steps", "2"]));
    }
    a.extend(args(extra));
    a
}

fn cont(c: &Ctx, model: &str, extra: &[&str]) -> Vec<String> {
    let i = input(c);
    let mut a = args(&[
        "continue",
        &i,
        "-o",
        &c.out(),
        "--model",
        model,
        "--steps",
        "2",
    ]);
    a.extend(args(extra));
    a
}

/// The tiny generator with a 2^20-sample window: 300 spans of half a window are past 3 hours.
fn long_window_model(c: &Ctx) -> String {
    let m = c.copy_fx("gen", "long_window");
    mutate_config(&m, |v| v["window_length"] = (1u64 << 20).into());
    m.to_string_lossy().into_owned()
}

// One case a line: the table reads as a list of cases.
#[rustfmt::skip]
pub fn cases() -> Vec<Case> {
    use Expect::*;
    let gen_ok = |frames| Wav {
        rate: GEN_RATE,
        channels: 1,
        frames,
    };
    vec![
        // --- generate --seconds
        case("--seconds 0", |c| gen(c, &["--seconds", "0"]), Refused(&["--seconds"])),
        case("--seconds=-1", |c| gen(c, &["--seconds=-1"]), Refused(&["--seconds"])),
        case("--seconds NaN", |c| gen(c, &["--seconds", "NaN"]), Refused(&["--seconds"])),
        case("--seconds inf", |c| gen(c, &["--seconds", "inf"]), Refused(&["--seconds"])),
        case("--seconds=-inf", |c| gen(c, &["--seconds=-inf"]), Refused(&["--seconds"])),
        case("--seconds 3600.001", |c| gen(c, &["--seconds", "3600.001"]), Refused(&["--seconds"])),
        case("--seconds 1e300", |c| gen(c, &["--seconds", "1e300"]), Refused(&["--seconds"])),
        case("--seconds 1e-9 (under one sample)", |c| gen(c, &["--seconds", "1e-9"]), Refused(&["--seconds", "shorter than one sample"])),
        case("--seconds abc", |c| gen(c, &["--seconds", "abc"]), Usage("--seconds")),
        case("--seconds 0.05 works", |c| gen(c, &["--seconds", "0.05"]), gen_ok(400)),
        case("--seconds 0.001 works (8 samples)", |c| gen(c, &["--seconds", "0.001"]), gen_ok(8)),
        // --- --steps
        case("--steps 0", |c| gen(c, &["--steps", "0"]), Refused(&["--steps"])),
        case("--steps 1", |c| gen(c, &["--steps", "1"]), Refused(&["--steps"])),
        case("--steps 10001", |c| gen(c, &["--steps", "10001"]), Refused(&["--steps"])),
        case("--steps usize::MAX", |c| gen(c, &["--steps", "18446744073709551615"]), Refused(&["--steps"])),
        case("--steps 2^64", |c| gen(c, &["--steps", "18446744073709551616"]), Usage("--steps")),
        case("--steps=-3", |c| gen(c, &["--steps=-3"]), Usage("--steps")),
        case("--steps 2.5", |c| gen(c, &["--steps", "2.5"]), Usage("--steps")),
        case("--steps 2 works", |c| gen(c, &["--steps", "2"]), gen_ok(400)),
        case("--steps 10001 (upsample, diffusion model)", |c| up_model(c, &["--steps", "10001", "--factor", "4"]), Refused(&["--steps"])),
        case("--steps 1 (inpaint)", |c| inpaint(c, &["--start", "0.02", "--end", "0.05", "--steps", "1"]), Refused(&["--steps"])),
        // --- --out-rate
        case("--out-rate 0", |c| gen(c, &["--out-rate", "0"]), Refused(&["--out-rate"])),
        case("--out-rate 999", |c| gen(c, &["--out-rate", "999"]), Refused(&["--out-rate"])),
        case("--out-rate 384001", |c| gen(c, &["--out-rate", "384001"]), Refused(&["--out-rate"])),
        case("--out-rate u32::MAX", |c| gen(c, &["--out-rate", "4294967295"]), Refused(&["--out-rate"])),
        case("--out-rate 2^32", |c| gen(c, &["--out-rate", "4294967296"]), Usage("--out-rate")),
        case("--out-rate=-1", |c| gen(c, &["--out-rate=-1"]), Usage("--out-rate")),
        case("--out-rate 1000 works", |c| gen(c, &["--out-rate", "1000"]), Wav { rate: 1000, channels: 1, frames: 50 }),
        case("--out-rate 384000 works", |c| gen(c, &["--out-rate", "384000"]), Wav { rate: 384_000, channels: 1, frames: 19_200 }),
        case("--out-rate 0 (upsample)", |c| up(c, &["--factor", "2", "--out-rate", "0"]), Refused(&["--out-rate"])),
        case("--out-rate 384001 (upsample)", |c| up(c, &["--factor", "2", "--out-rate", "384001"]), Refused(&["--out-rate"])),
        case("--out-rate 1 (inpaint)", |c| inpaint(c, &["--start", "0.02", "--end", "0.05", "--out-rate", "1"]), Refused(&["--out-rate"])),
        case("--out-rate 500 (continue)", |c| { let m = c.fx("gen").to_string_lossy().into_owned(); cont(c, &m, &["--spans", "1", "--out-rate", "500"]) }, Refused(&["--out-rate"])),
        case("--out-rate 44100 (upsample) works", |c| up(c, &["--factor", "2", "--out-rate", "44100"]), Wav { rate: 44_100, channels: 1, frames: 4410 }),
        // --- upsample --factor
        case("--factor 3 (shipped)", |c| up(c, &["--factor", "3"]), Refused(&["3", "factor|upsamples by"])),
        case("--factor 0 (shipped)", |c| up(c, &["--factor", "0"]), Refused(&["0", "factor|upsamples by"])),
        case("--factor 1 (shipped)", |c| up(c, &["--factor", "1"]), Refused(&["1", "factor|upsamples by"])),
        case("--factor 16 (shipped)", |c| up(c, &["--factor", "16"]), Refused(&["16"])),
        case("--factor usize::MAX (shipped)", |c| up(c, &["--factor", "18446744073709551615"]), Refused(&["18446744073709551615"])),
        case("--factor=-2", |c| up(c, &["--factor=-2"]), Usage("--factor")),
        case("--factor 8 (diffusion model offers 2, 4)", |c| up_model(c, &["--factor", "8"]), Refused(&["8"])),
        case("--factor 0 (diffusion model)", |c| up_model(c, &["--factor", "0"]), Refused(&["0"])),
        case("--factor 8 (shipped) works", |c| up(c, &["--factor", "8"]), Wav { rate: 64_000, channels: 1, frames: 6400 }),
        case("--factor 4 (diffusion model) works", |c| up_model(c, &["--factor", "4"]), Wav { rate: 16_000, channels: 1, frames: 1600 }),
        // --- continue --spans
        case("--spans 0", |c| { let m = c.fx("gen").to_string_lossy().into_owned(); cont(c, &m, &["--spans", "0"]) }, Refused(&["--spans"])),
        case("--spans 1001", |c| { let m = c.fx("gen").to_string_lossy().into_owned(); cont(c, &m, &["--spans", "1001"]) }, Refused(&["--spans"])),
        case("--spans usize::MAX", |c| { let m = c.fx("gen").to_string_lossy().into_owned(); cont(c, &m, &["--spans", "18446744073709551615"]) }, Refused(&["--spans"])),
        case("--spans 300 with a 2^20 window (past 3 h)", |c| { let m = long_window_model(c); cont(c, &m, &["--spans", "300"]) }, Refused(&["--spans", "10800 s limit"])),
        case("--spans=-1", |c| { let m = c.fx("gen").to_string_lossy().into_owned(); cont(c, &m, &["--spans=-1"]) }, Usage("--spans")),
        case("--spans 1 works", |c| { let m = c.fx("gen").to_string_lossy().into_owned(); cont(c, &m, &["--spans", "1"]) }, Wav { rate: GEN_RATE, channels: 1, frames: 800 + GEN_WINDOW / 2 }),
        // --- inpaint --start/--end (the clip is 0.1 s)
        case("--start = --end", |c| inpaint(c, &["--start", "0.05", "--end", "0.05"]), Refused(&["--start/--end"])),
        case("--start > --end", |c| inpaint(c, &["--start", "0.06", "--end", "0.02"]), Refused(&["--start/--end"])),
        case("--start=-0.01", |c| inpaint(c, &["--start=-0.01", "--end", "0.05"]), Refused(&["--start/--end"])),
        case("--start NaN", |c| inpaint(c, &["--start", "NaN", "--end", "0.05"]), Refused(&["--start/--end"])),
        case("--end NaN", |c| inpaint(c, &["--start", "0.01", "--end", "NaN"]), Refused(&["--start/--end"])),
        case("--end inf", |c| inpaint(c, &["--start", "0.01", "--end", "inf"]), Refused(&["--start/--end"])),
        case("--start=-inf", |c| inpaint(c, &["--start=-inf", "--end", "0.05"]), Refused(&["--start/--end"])),
        case("--end past the clip", |c| inpaint(c, &["--start", "0.01", "--end", "0.2"]), Refused(&["--start/--end", "past the end of the clip"])),
        case("--start past the clip", |c| inpaint(c, &["--start", "0.5", "--end", "0.6"]), Refused(&["--start/--end", "past the end of the clip"])),
        case("--end 1e300", |c| inpaint(c, &["--start", "0.01", "--end", "1e300"]), Refused(&["--start/--end"])),
        case("--start 1e300 --end inf", |c| inpaint(c, &["--start", "1e300", "--end", "inf"]), Refused(&["--start/--end"])),
        case("--start abc", |c| inpaint(c, &["--start", "abc", "--end", "0.05"]), Usage("--start")),
        case("--start 0 --end 0.1 (whole clip) works", |c| inpaint(c, &["--start", "0", "--end", "0.1"]), Wav { rate: 8000, channels: 1, frames: 800 }),
        // --- --seed
        case("--seed 0 works", |c| gen(c, &["--seed", "0"]), gen_ok(400)),
        case("--seed u64::MAX works", |c| gen(c, &["--seed", "18446744073709551615"]), gen_ok(400)),
        case("--seed 2^64", |c| gen(c, &["--seed", "18446744073709551616"]), Usage("--seed")),
        case("--seed=-1", |c| gen(c, &["--seed=-1"]), Usage("--seed")),
        case("--seed u64::MAX (shipped upsample) works", |c| up(c, &["--factor", "2", "--seed", "18446744073709551615"]), Wav { rate: 16_000, channels: 1, frames: 1600 }),
        // --- --device
        case("--device bogus (generate)", |c| gen(c, &["--device", "bogus"]), Refused(&["bogus"])),
        case("--device bogus (upsample, shipped)", |c| up(c, &["--factor", "2", "--device", "bogus"]), Refused(&["bogus"])),
        case("--device cuda:abc (inpaint)", |c| inpaint(c, &["--start", "0.01", "--end", "0.05", "--device", "cuda:abc"]), Refused(&["cuda:abc"])),
        case("--device empty (continue)", |c| { let m = c.fx("gen").to_string_lossy().into_owned(); cont(c, &m, &["--spans", "1", "--device", ""]) }, Refused(&["device"])),
        case("--device bogus (info)", |c| args(&["info", &c.fx("gen").to_string_lossy(), "--device", "bogus"]), Refused(&["bogus"])),
        // --- --guidance
        case("--guidance NaN", |c| gen(c, &["--guidance", "NaN"]), Refused(&["--guidance"])),
        case("--guidance inf (upsample)", |c| up_model(c, &["--factor", "2", "--guidance", "inf"]), Refused(&["--guidance"])),
        // --- other float / integer flags
        case("--resamples 0 (inpaint)", |c| inpaint(c, &["--start", "0.01", "--end", "0.05", "--resamples", "0"]), Refused(&["--resamples"])),
        case("--resamples usize::MAX (inpaint)", |c| inpaint(c, &["--start", "0.01", "--end", "0.05", "--resamples", "18446744073709551615"]), Refused(&["--resamples"])),
        case("unknown flag", |c| gen(c, &["--bogus-flag"]), Usage("--bogus-flag")),
        case("--sampler bogus", |c| gen(c, &["--sampler", "bogus"]), Usage("--sampler")),
        // --- --sampler: adiff-core's names; inpaint and continue need adpm2
        case("--sampler a-euler (an old name)", |c| gen(c, &["--sampler", "a-euler"]), Usage("--sampler")),
        case("--sampler dpmpp-2m (an old name)", |c| gen(c, &["--sampler", "dpmpp-2m"]), Usage("--sampler")),
        case("--sampler aeuler works", |c| gen(c, &["--sampler", "aeuler"]), gen_ok(400)),
        case("--sampler dpmpp2m works", |c| gen(c, &["--sampler", "dpmpp2m"]), gen_ok(400)),
        case("--sampler aeuler (inpaint)", |c| inpaint(c, &["--start", "0.01", "--end", "0.05", "--sampler", "aeuler"]), Refused(&["--sampler", "adpm2", "aeuler"])),
        case("--sampler karras (continue)", |c| { let m = c.fx("gen").to_string_lossy().into_owned(); cont(c, &m, &["--spans", "1", "--sampler", "karras"]) }, Refused(&["--sampler", "adpm2", "karras"])),
        case("--sampler adpm2 (inpaint) works", |c| inpaint(c, &["--start", "0.01", "--end", "0.05", "--sampler", "adpm2"]), Wav { rate: 8000, channels: 1, frames: 800 }),
        case("generate without --model", |c| args(&["generate", "-o", &c.out()]), Refused(&["--model"])),
    ]
}
