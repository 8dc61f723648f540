//! Property-style pass over the plugin state decoder: seeded random mutations of a valid state
//! (raw byte flips, truncations, insertions, deletions; the same on the payload with the length
//! and checksum re-sealed so the mutation reaches the JSON header and the clip parser; and
//! hand-made hostile headers). `state::decode` must return `Ok` or `Err` for every one, never
//! panic, never take long, and every `Ok` state must be within the engine's documented bounds
//! (saved parameters only, each finite and inside its spec's range, whole for stepped ones; clips
//! at a finite rate in 1,000..=1,536,000 Hz with both channels as long as the clip and every
//! sample finite). All failures are collected and reported together.

use adiff_engine::state::{self, decode, encode, fnv1a64, MAGIC, VERSION};
use adiff_engine::{AudioBuf, Param, ParamValues};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::{Duration, Instant};

const FIXED_LEN: usize = 8 + 4 + 8 + 8;

/// xorshift64*: a tiny seeded generator (no dependency).
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Self(seed.max(1))
    }
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }
    fn byte(&mut self) -> u8 {
        (self.next() >> 56) as u8
    }
}

/// One seeded mutation of `bytes`: a bit flip, a byte overwrite, a truncation, an insertion, a
/// deletion, a run of 0xff, or a copied block; returns what it did.
fn mutate(bytes: &mut Vec<u8>, rng: &mut Rng) -> String {
    let n = bytes.len();
    match rng.below(7) {
        0 => {
            let i = rng.below(n);
            let bit = 1u8 << rng.below(8);
            bytes[i] ^= bit;
            format!("flip bit {bit:#04x} at {i}")
        }
        1 => {
            let i = rng.below(n);
            let b = rng.byte();
            bytes[i] = b;
            format!("byte {b:#04x} at {i}")
        }
        2 => {
            let keep = rng.below(n);
            bytes.truncate(keep);
            format!("truncate to {keep}")
        }
        3 => {
            let i = rng.below(n + 1);
            let k = 1 + rng.below(16);
            let ins: Vec<u8> = (0..k).map(|_| rng.byte()).collect();
            bytes.splice(i..i, ins);
            format!("insert {k} bytes at {i}")
        }
        4 => {
            let i = rng.below(n);
            let k = (1 + rng.below(16)).min(n - i);
            bytes.drain(i..i + k);
            format!("delete {k} bytes at {i}")
        }
        5 => {
            let i = rng.below(n);
            let k = (1 + rng.below(8)).min(n - i);
            bytes[i..i + k].fill(0xff);
            format!("0xff x{k} at {i}")
        }
        _ => {
            let from = rng.below(n);
            let to = rng.below(n);
            let k = (1 + rng.below(32)).min(n - from).min(n - to);
            let block = bytes[from..from + k].to_vec();
            bytes[to..to + k].copy_from_slice(&block);
            format!("copy {k} bytes {from}->{to}")
        }
    }
}

/// State bytes around `payload`, with a correct length and checksum.
fn seal(version: u32, payload: &[u8]) -> Vec<u8> {
    let mut out = MAGIC.to_vec();
    out.extend_from_slice(&version.to_le_bytes());
    out.extend_from_slice(&(payload.len() as u64).to_le_bytes());
    out.extend_from_slice(&fnv1a64(payload).to_le_bytes());
    out.extend_from_slice(payload);
    out
}

/// A payload from a JSON header text and raw clip bytes.
fn payload(header: &str, blobs: &[u8]) -> Vec<u8> {
    let mut p = (header.len() as u32).to_le_bytes().to_vec();
    p.extend_from_slice(header.as_bytes());
    p.extend_from_slice(blobs);
    p
}

fn valid_state() -> Vec<u8> {
    let p = ParamValues::default();
    p.set(Param::Steps, 7.0);
    p.set(Param::Mix, 25.0);
    p.set(Param::Gain, -3.25);
    let mut cap = AudioBuf::from_channels(
        (0..24).map(|i| (i as f32 * 0.3).sin() * 0.5).collect(),
        (0..24).map(|i| (i as f32 * 0.2).cos() * 0.5).collect(),
        44_100.0,
    );
    cap.anchor = 1234;
    let res = AudioBuf::from_channels(vec![0.25; 16], vec![-0.25; 16], 48_000.0);
    encode(
        &p,
        Some(std::path::Path::new("/models/m")),
        Some(&cap),
        Some(&res),
    )
}

/// Checks an accepted state against the documented bounds.
fn check_bounds(s: &state::PluginState) -> Result<(), String> {
    let mut seen = Vec::new();
    for &(p, v) in &s.params {
        let spec = p.spec();
        if p == Param::Progress {
            return Err("the read-only progress was restored".into());
        }
        if seen.contains(&p) {
            return Err(format!("parameter {} twice", spec.key));
        }
        seen.push(p);
        if !v.is_finite() || v < spec.min || v > spec.max {
            return Err(format!(
                "parameter {} = {v} outside {}..={}",
                spec.key, spec.min, spec.max
            ));
        }
        if spec.is_stepped() && v.fract() != 0.0 {
            return Err(format!("stepped parameter {} = {v} is not whole", spec.key));
        }
    }
    for (what, clip) in [("captured", &s.captured), ("result", &s.result)] {
        let Some(c) = clip else { continue };
        if !(c.rate.is_finite() && (1000.0..=1_536_000.0).contains(&c.rate)) {
            return Err(format!("{what} clip rate {}", c.rate));
        }
        for ch in 0..2 {
            if c.channel(ch).len() != c.len() {
                return Err(format!(
                    "{what} channel {ch} has {} frames, the clip {}",
                    c.channel(ch).len(),
                    c.len()
                ));
            }
            if let Some(x) = c.channel(ch).iter().find(|x| !x.is_finite()) {
                return Err(format!("{what} channel {ch} holds {x}"));
            }
        }
    }
    Ok(())
}

/// Decodes `bytes` under `catch_unwind` and a time check; `None` when all is well.
fn probe(bytes: &[u8]) -> Option<String> {
    let t = Instant::now();
    let outcome = catch_unwind(AssertUnwindSafe(|| decode(bytes)));
    let took = t.elapsed();
    if took > Duration::from_secs(2) {
        return Some(format!("decode took {took:?} (hang)"));
    }
    match outcome {
        Err(p) => {
            let msg = p
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            Some(format!("PANIC: {msg}"))
        }
        Ok(Err(e)) => {
            let text = e.to_string();
            if text.trim().is_empty() || !text.starts_with("state") {
                Some(format!("error without a state message: {text:?}"))
            } else {
                None
            }
        }
        Ok(Ok(s)) => check_bounds(&s)
            .err()
            .map(|e| format!("accepted out of bounds: {e}")),
    }
}

fn report(what: &str, total: usize, failures: &[String]) {
    assert!(
        failures.is_empty(),
        "{what}: {} of {total} mutations failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
    eprintln!("{what}: {total} mutations, all decoded cleanly");
}

#[test]
fn the_valid_state_round_trips() {
    let bytes = valid_state();
    let s = decode(&bytes).expect("the valid state decodes");
    check_bounds(&s).unwrap();
    assert!(s.params.contains(&(Param::Steps, 7.0)));
    assert_eq!(s.captured.as_ref().map(|c| c.len()), Some(24));
    assert_eq!(s.result.as_ref().map(|c| c.len()), Some(16));
}

#[test]
fn raw_byte_mutations_decode_or_fail_cleanly() {
    let base = valid_state();
    let mut rng = Rng::new(0x5eed_0001);
    let mut failures = Vec::new();
    let total = 96;
    for i in 0..total {
        let mut b = base.clone();
        // One to three mutations stacked.
        let k = 1 + rng.below(3);
        let what: Vec<String> = (0..k)
            .map(|_| {
                if b.is_empty() {
                    b.push(0);
                }
                mutate(&mut b, &mut rng)
            })
            .collect();
        if let Some(f) = probe(&b) {
            failures.push(format!("raw #{i} [{}]: {f}", what.join("; ")));
        }
    }
    report("raw mutations", total, &failures);
}

#[test]
fn resealed_payload_mutations_decode_or_fail_cleanly() {
    // The checksum catches raw flips; re-sealing lets each mutation reach the JSON header and the
    // clip parser.
    let base = valid_state();
    let payload = base[FIXED_LEN..].to_vec();
    let mut rng = Rng::new(0x5eed_0002);
    let mut failures = Vec::new();
    let total = 128;
    let mut accepted = 0;
    for i in 0..total {
        let mut p = payload.clone();
        let k = 1 + rng.below(2);
        let what: Vec<String> = (0..k)
            .map(|_| {
                if p.is_empty() {
                    p.push(0);
                }
                mutate(&mut p, &mut rng)
            })
            .collect();
        let bytes = seal(VERSION, &p);
        if let Some(f) = probe(&bytes) {
            failures.push(format!("resealed #{i} [{}]: {f}", what.join("; ")));
        } else if decode(&bytes).is_ok() {
            accepted += 1;
        }
    }
    eprintln!("resealed: {accepted} of {total} accepted");
    report("resealed mutations", total, &failures);
}

#[test]
fn json_header_text_mutations_decode_or_fail_cleanly() {
    // Mutations confined to the JSON header text, re-sealed, with the header length fixed up:
    // these reach serde and the clip checks far more often than whole-payload mutations.
    let base = valid_state();
    let payload = &base[FIXED_LEN..];
    let json_len = u32::from_le_bytes([payload[0], payload[1], payload[2], payload[3]]) as usize;
    let json = payload[4..4 + json_len].to_vec();
    let blobs = payload[4 + json_len..].to_vec();
    let mut rng = Rng::new(0x5eed_0003);
    let mut failures = Vec::new();
    let total = 96;
    for i in 0..total {
        let mut j = json.clone();
        let what = mutate(&mut j, &mut rng);
        let mut p = (j.len() as u32).to_le_bytes().to_vec();
        p.extend_from_slice(&j);
        p.extend_from_slice(&blobs);
        if let Some(f) = probe(&seal(VERSION, &p)) {
            failures.push(format!(
                "json #{i} [{what}] {:?}: {f}",
                String::from_utf8_lossy(&j)
            ));
        }
    }
    report("JSON header mutations", total, &failures);
}

#[test]
fn hostile_headers_decode_or_fail_cleanly() {
    let clip = |rate: &str, frames: &str, anchor: &str| {
        format!(r#"{{"rate":{rate},"frames":{frames},"anchor":{anchor}}}"#)
    };
    let header = |params: &str, captured: &str, result: &str| {
        format!(
            r#"{{"version":1,"params":{{{params}}},"model_path":null,"captured":{captured},"result":{result}}}"#
        )
    };
    let four_frames: Vec<u8> = (0..8).flat_map(|_| 0.5f32.to_le_bytes()).collect();
    let nan_frames: Vec<u8> = (0..8)
        .flat_map(|i| [f32::NAN, f32::INFINITY, f32::NEG_INFINITY, 1e-45][i % 4].to_le_bytes())
        .collect();
    let steps = |v: &str| format!(r#""steps":"{v}""#);
    let mut cases: Vec<(String, Vec<u8>)> = Vec::new();
    let mut add = |name: &str, bytes: Vec<u8>| cases.push((name.to_string(), bytes));
    let sealed = |h: &str, blobs: &[u8]| seal(VERSION, &payload(h, blobs));
    for (name, frames) in [
        ("frames u64::MAX", "18446744073709551615"),
        ("frames 2^61", "2305843009213693952"),
        ("frames 2^62", "4611686018427387904"),
        ("frames 2^63", "9223372036854775808"),
        ("frames 1e9", "1000000000"),
        ("frames 5 (one too many)", "5"),
        ("frames 3 (one too few)", "3"),
        ("frames -1", "-1"),
        ("frames 1.5", "1.5"),
    ] {
        add(
            name,
            sealed(
                &header("", &clip("48000", frames, "0"), "null"),
                &four_frames,
            ),
        );
    }
    for (name, rate) in [
        ("rate 0", "0"),
        ("rate -48000", "-48000"),
        ("rate 999.999", "999.999"),
        ("rate 1536000.5", "1536000.5"),
        ("rate 1e308", "1e308"),
        ("rate 1e999 (inf in JSON)", "1e999"),
        ("rate 5e-324", "5e-324"),
        ("rate string", "\"48000\""),
    ] {
        add(
            name,
            sealed(&header("", &clip(rate, "4", "0"), "null"), &four_frames),
        );
    }
    add(
        "anchor i64::MIN",
        sealed(
            &header("", &clip("48000", "4", "-9223372036854775808"), "null"),
            &four_frames,
        ),
    );
    add(
        "anchor past i64",
        sealed(
            &header("", &clip("48000", "4", "9223372036854775808"), "null"),
            &four_frames,
        ),
    );
    add(
        "non-finite samples (scrubbed)",
        sealed(&header("", &clip("48000", "4", "0"), "null"), &nan_frames),
    );
    add(
        "both clips share one blob",
        sealed(
            &header("", &clip("48000", "4", "0"), &clip("48000", "4", "0")),
            &four_frames,
        ),
    );
    for v in [
        "NaN",
        "inf",
        "-inf",
        "1e400",
        "-1e400",
        "",
        "1e-400",
        "0x10",
        "9999999999999999999999",
        "-0",
    ] {
        add(
            &format!("steps {v:?}"),
            sealed(&header(&steps(v), "null", "null"), &[]),
        );
    }
    for key in Param::all().map(|p| p.spec().key) {
        for v in ["NaN", "1e308", "-1e308"] {
            add(
                &format!("{key} {v}"),
                sealed(&header(&format!(r#""{key}":"{v}""#), "null", "null"), &[]),
            );
        }
    }
    add(
        "params as numbers",
        sealed(&header(r#""steps":7,"mix":1e999"#, "null", "null"), &[]),
    );
    add(
        "duplicate key",
        sealed(&header(r#""steps":"3","steps":"5""#, "null", "null"), &[]),
    );
    add(
        "model_path with NUL",
        sealed(
            r#"{"version":1,"params":{},"model_path":"a\u0000b","captured":null,"result":null}"#,
            &[],
        ),
    );
    add(
        "model_path number",
        sealed(
            r#"{"version":1,"params":{},"model_path":7,"captured":null,"result":null}"#,
            &[],
        ),
    );
    add("header is an array", sealed("[1,2,3]", &[]));
    add("header is empty", sealed("", &[]));
    add("deeply nested header", {
        let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
        sealed(&deep, &[])
    });
    add("missing fields", sealed(r#"{"version":1}"#, &[]));
    add(
        "header version 2 inside a version-1 state",
        sealed(
            r#"{"version":2,"params":{},"model_path":null,"captured":null,"result":null}"#,
            &[],
        ),
    );
    // Fixed-header fields.
    let good = valid_state();
    let mut v0 = good.clone();
    v0[8..12].copy_from_slice(&0u32.to_le_bytes());
    add("version 0", v0);
    let mut vmax = good.clone();
    vmax[8..12].copy_from_slice(&u32::MAX.to_le_bytes());
    add("version u32::MAX", vmax);
    let mut lmax = good.clone();
    lmax[12..20].copy_from_slice(&u64::MAX.to_le_bytes());
    add("payload length u64::MAX", lmax);
    let p = &good[FIXED_LEN..];
    let mut jmax = p.to_vec();
    jmax[..4].copy_from_slice(&u32::MAX.to_le_bytes());
    add("JSON length u32::MAX", seal(VERSION, &jmax));
    let mut jzero = p.to_vec();
    jzero[..4].copy_from_slice(&0u32.to_le_bytes());
    add("JSON length 0", seal(VERSION, &jzero));
    add("payload of 3 bytes", seal(VERSION, &[1, 2, 3]));
    add("empty payload", seal(VERSION, &[]));
    add("magic only", MAGIC.to_vec());
    add("nothing", Vec::new());
    for cut in [FIXED_LEN - 1, FIXED_LEN, FIXED_LEN + 3, good.len() - 1] {
        add(&format!("cut to {cut}"), good[..cut].to_vec());
    }
    let mut extra = good.clone();
    extra.push(0);
    add("one byte extra", extra);

    let total = cases.len();
    let mut failures = Vec::new();
    for (name, bytes) in &cases {
        if let Some(f) = probe(bytes) {
            failures.push(format!("{name}: {f}"));
        }
    }
    report("hostile headers", total, &failures);
}
