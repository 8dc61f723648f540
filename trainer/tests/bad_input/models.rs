//! Bad model folders: each case copies a valid tiny folder (random weights, built once per test)
//! or the band-extension folder (models/upsampler) and breaks one thing: the config's JSON, its
//! kind, a size field, the weights file, one tensor. Run through `info`, `generate`, `upsample`
//! and `inpaint`.

use super::build::*;
use super::harness::{args, case, Case, Ctx, Expect};
use serde_json::json;
use std::path::Path;

/// A copy of fixture `fx` at `dir/model`, changed by `f`; returns its path.
fn m(c: &Ctx, fx: &str, f: impl FnOnce(&Path)) -> String {
    let d = c.copy_fx(fx, "model");
    f(&d);
    d.to_string_lossy().into_owned()
}

fn info(dir: String) -> Vec<String> {
    args(&["info", &dir, "--no-timing"])
}

fn info_timed(dir: String) -> Vec<String> {
    args(&["info", &dir])
}

fn gen(c: &Ctx, dir: String) -> Vec<String> {
    args(&[
        "generate",
        "-o",
        &c.out(),
        "--model",
        &dir,
        "--seconds",
        "0.05",
        "--steps",
        "2",
    ])
}

fn inpaint(c: &Ctx, dir: String) -> Vec<String> {
    pcm16(8000, 1, 800).write(&c.dir.join("in.wav"));
    args(&[
        "inpaint",
        &c.p("in.wav"),
        "-o",
        &c.out(),
        "--model",
        &dir,
        "--start",
        "0.02",
        "--end",
        "0.05",
        "--steps",
        "2",
    ])
}

/// `upsample` of a 4 kHz clip by 2 through a diffusion upsampler folder.
fn up(c: &Ctx, dir: String) -> Vec<String> {
    pcm16(4000, 1, 400).write(&c.dir.join("in.wav"));
    args(&[
        "upsample",
        &c.p("in.wav"),
        "-o",
        &c.out(),
        "--model",
        &dir,
        "--factor",
        "2",
        "--steps",
        "2",
    ])
}

/// `upsample` of an 8 kHz clip through a band-extension folder by `factor`.
fn up_be(c: &Ctx, dir: String, factor: &str) -> Vec<String> {
    pcm16(8000, 1, 800).write(&c.dir.join("in.wav"));
    args(&[
        "upsample",
        &c.p("in.wav"),
        "-o",
        &c.out(),
        "--model",
        &dir,
        "--factor",
        factor,
    ])
}

fn set(key: &'static str, v: serde_json::Value) -> impl FnOnce(&Path) {
    move |d: &Path| mutate_config(d, |c| c[key] = v)
}

fn set_kw(key: &'static str, v: serde_json::Value) -> impl FnOnce(&Path) {
    move |d: &Path| mutate_config(d, |c| c["model"][key] = v)
}

fn set_be(key: &'static str, v: serde_json::Value) -> impl FnOnce(&Path) {
    move |d: &Path| mutate_config(d, |c| c["config"][key] = v)
}

fn write(name: &'static str, bytes: &'static [u8]) -> impl FnOnce(&Path) {
    move |d: &Path| std::fs::write(d.join(name), bytes).unwrap()
}

fn rm(name: &'static str) -> impl FnOnce(&Path) {
    move |d: &Path| std::fs::remove_file(d.join(name)).unwrap()
}

fn weights(
    f: impl FnOnce(&mut std::collections::BTreeMap<String, StTensor>, &str),
) -> impl FnOnce(&Path) {
    move |d: &Path| {
        let name = pick_tensor(&d.join("model.safetensors"));
        mutate_weights(d, |t| f(t, &name));
    }
}

fn drop_tensor(t: &mut std::collections::BTreeMap<String, StTensor>, name: &str) {
    t.remove(name);
}

fn extra_tensor(t: &mut std::collections::BTreeMap<String, StTensor>, _: &str) {
    t.insert(
        "unet.bogus_extra.weight".into(),
        StTensor {
            dtype: "F32".into(),
            shape: vec![2, 2],
            data: vec![0; 16],
        },
    );
}

fn transpose(t: &mut std::collections::BTreeMap<String, StTensor>, name: &str) {
    let s = &mut t.get_mut(name).unwrap().shape;
    s.swap(0, 1);
}

fn nan(t: &mut std::collections::BTreeMap<String, StTensor>, name: &str) {
    set_f32(t.get_mut(name).unwrap(), 1, f32::NAN);
}

fn inf(t: &mut std::collections::BTreeMap<String, StTensor>, name: &str) {
    set_f32(t.get_mut(name).unwrap(), 0, f32::INFINITY);
}

fn zero_dim(t: &mut std::collections::BTreeMap<String, StTensor>, name: &str) {
    let x = t.get_mut(name).unwrap();
    x.shape[0] = 0;
    x.data.clear();
}

/// The band-extension tensor `factor_K`, changed by `f`.
fn be_tensor(key: &'static str, f: fn(&mut StTensor)) -> impl FnOnce(&Path) {
    move |d: &Path| mutate_weights(d, |t| f(t.get_mut(key).unwrap()))
}

/// Raw safetensors header surgery: the first 8 bytes (header length) set to `n`.
fn header_len(n: u64) -> impl FnOnce(&Path) {
    move |d: &Path| {
        let p = d.join("model.safetensors");
        let mut b = std::fs::read(&p).unwrap();
        b[..8].copy_from_slice(&n.to_le_bytes());
        std::fs::write(&p, b).unwrap();
    }
}

/// A safetensors whose first tensor's data_offsets run past the end of the file.
fn offsets_past_end(d: &Path) {
    let p = d.join("model.safetensors");
    let b = std::fs::read(&p).unwrap();
    let n = u64::from_le_bytes(b[..8].try_into().unwrap()) as usize;
    let mut h: serde_json::Value = serde_json::from_slice(&b[8..8 + n]).unwrap();
    let first = h
        .as_object()
        .unwrap()
        .keys()
        .find(|k| k.as_str() != "__metadata__")
        .unwrap()
        .clone();
    h[&first]["data_offsets"] = json!([0, 1u64 << 40]);
    let mut hb = serde_json::to_vec(&h).unwrap();
    while !hb.len().is_multiple_of(8) {
        hb.push(b' ');
    }
    let mut out = (hb.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(&hb);
    out.extend_from_slice(&b[8 + n..]);
    std::fs::write(&p, out).unwrap();
}

fn big() -> serde_json::Value {
    json!(1_000_000_000u64)
}

// One case a line: the table reads as a list of cases.
#[rustfmt::skip]
pub fn cases() -> Vec<Case> {
    use Expect::*;
    vec![
        // --- config.json itself
        case("missing config.json", |c| info(m(c, "gen", rm("config.json"))), Refused(&["config.json"])),
        case("config.json invalid JSON", |c| info(m(c, "gen", write("config.json", b"{\"kind\": \"AudioDiffusionModel\", oops"))), Refused(&["config.json"])),
        case("config.json is an array", |c| info(m(c, "gen", write("config.json", b"[1, 2, 3]"))), Refused(&["config.json"])),
        case("config.json is a number", |c| info(m(c, "gen", write("config.json", b"42"))), Refused(&["config.json"])),
        case("config.json is empty", |c| info(m(c, "gen", write("config.json", b""))), Refused(&["config.json"])),
        case("config.json is a folder", |c| info(m(c, "gen", |d| { std::fs::remove_file(d.join("config.json")).unwrap(); std::fs::create_dir(d.join("config.json")).unwrap(); })), Refused(&["config.json"])),
        case("config.json 100000-deep array", |c| info(m(c, "gen", |d| std::fs::write(d.join("config.json"), format!("{}{}", "[".repeat(100_000), "]".repeat(100_000))).unwrap())), Refused(&["config.json"])),
        case("unknown kind", |c| info(m(c, "gen", set("kind", json!("Bogus")))), Refused(&["kind"])),
        case("kind is a number", |c| info(m(c, "gen", set("kind", json!(42)))), Refused(&["kind"])),
        case("kind missing", |c| info(m(c, "gen", |d| mutate_config(d, |v| { v.as_object_mut().unwrap().remove("kind"); }))), Refused(&["kind"])),
        case("format other", |c| info(m(c, "gen", set("format", json!("other")))), Refused(&["format"])),
        case("format_version 2", |c| info(m(c, "gen", set("format_version", json!(2)))), Refused(&["format_version"])),
        case("unknown top-level field", |c| info(m(c, "gen", set("bogus_field", json!(1)))), Refused(&["bogus_field"])),
        case("sample_rate 0", |c| info(m(c, "gen", set("sample_rate", json!(0)))), Refused(&["sample_rate"])),
        case("sample_rate u32::MAX", |c| info(m(c, "gen", set("sample_rate", json!(4294967295u64)))), Refused(&["sample_rate"])),
        case("sample_rate -1", |c| info(m(c, "gen", set("sample_rate", json!(-1)))), Refused(&["sample_rate"])),
        case("sample_rate 999", |c| info(m(c, "gen", set("sample_rate", json!(999)))), Refused(&["sample_rate"])),
        case("channels 0", |c| info(m(c, "gen", set("channels", json!(0)))), Refused(&["channels"])),
        case("channels 1e9 (top level)", move |c| info(m(c, "gen", set("channels", big()))), Refused(&["channels"])),
        case("window_length 0", |c| info(m(c, "gen", set("window_length", json!(0)))), Refused(&["window_length"])),
        case("window_length 10^12", |c| info(m(c, "gen", set("window_length", json!(1_000_000_000_000u64)))), Refused(&["window_length"])),
        case("window_length 1e12 literal", |c| info(m(c, "gen", |d| config_text(d, |t| t.replace("\"window_length\": 512", "\"window_length\": 1e12")))), Refused(&["window_length"])),
        case("sampling.num_steps 0", |c| info(m(c, "gen", |d| mutate_config(d, |v| v["sampling"]["num_steps"] = json!(0)))), Refused(&["num_steps"])),
        case("model is an array", |c| info(m(c, "gen", set("model", json!([1, 2])))), Refused(&["model"])),
        case("band_extension factor 3, no folder", |c| info(m(c, "gen", set("band_extension", json!({"factor": 3})))), Refused(&["band_extension"])),
        // --- network kwargs
        case("kwargs channels 1e9", move |c| info(m(c, "gen", set_kw("channels", big()))), Refused(&["channels"])),
        case("kwargs in_channels 9", |c| info(m(c, "gen", set_kw("in_channels", json!(9)))), Refused(&["channels"])),
        case("kwargs multipliers huge", |c| info(m(c, "gen", set_kw("multipliers", json!([1, 1_000_000_000u64, 4])))), Refused(&["multipliers"])),
        case("kwargs multipliers []", |c| info(m(c, "gen", set_kw("multipliers", json!([])))), Refused(&["multipliers"])),
        case("kwargs num_blocks huge", |c| info(m(c, "gen", set_kw("num_blocks", json!([1_000_000_000u64, 1])))), Refused(&["num_blocks"])),
        case("kwargs attention_heads 1e9", move |c| info(m(c, "gen", set_kw("attention_heads", big()))), Refused(&["attention_heads"])),
        case("kwargs attention_heads 0", |c| info(m(c, "gen", set_kw("attention_heads", json!(0)))), Refused(&["attention_heads"])),
        case("kwargs attention_features 0", |c| info(m(c, "gen", set_kw("attention_features", json!(0)))), Refused(&["attention_features"])),
        case("kwargs factors []", |c| info(m(c, "gen", set_kw("factors", json!([])))), Refused(&["factors"])),
        case("kwargs factors [0, 2]", |c| info(m(c, "gen", set_kw("factors", json!([0, 2])))), Refused(&["factors"])),
        case("kwargs factors [1e9, 2]", |c| info(m(c, "gen", set_kw("factors", json!([1_000_000_000u64, 2])))), Refused(&["factors"])),
        case("kwargs attentions too short", |c| info(m(c, "gen", set_kw("attentions", json!([0])))), Refused(&["attentions"])),
        case("kwargs resnet_groups 0", |c| info(m(c, "gen", set_kw("resnet_groups", json!(0)))), Refused(&["resnet_groups"])),
        case("kwargs resnet_groups 3 (does not divide 8)", |c| info(m(c, "gen", set_kw("resnet_groups", json!(3)))), Refused(&["resnet_groups"])),
        case("kwargs patch_factor 0", |c| info(m(c, "gen", set_kw("patch_factor", json!(0)))), Refused(&["patch_factor"])),
        case("kwargs channels is a string", |c| info(m(c, "gen", set_kw("channels", json!("eight")))), Refused(&["channels"])),
        case("upsampler factor []", |c| info(m(c, "up", set_kw("factor", json!([])))), Refused(&["factor"])),
        case("upsampler factor [0]", |c| info(m(c, "up", set_kw("factor", json!([0])))), Refused(&["factor"])),
        // --- model.safetensors
        case("missing model.safetensors", |c| info(m(c, "gen", rm("model.safetensors"))), Refused(&["model.safetensors"])),
        case("model.safetensors is a folder", |c| info(m(c, "gen", |d| { std::fs::remove_file(d.join("model.safetensors")).unwrap(); std::fs::create_dir(d.join("model.safetensors")).unwrap(); })), Refused(&["model.safetensors"])),
        case("model.safetensors truncated to half", |c| info(m(c, "gen", |d| truncate_file(&d.join("model.safetensors"), 0.5))), Refused(&["model.safetensors"])),
        case("model.safetensors truncated inside the header", |c| info(m(c, "gen", |d| { let p = d.join("model.safetensors"); let b = std::fs::read(&p).unwrap(); std::fs::write(&p, &b[..20]).unwrap(); })), Refused(&["model.safetensors"])),
        case("model.safetensors empty", |c| info(m(c, "gen", write("model.safetensors", b""))), Refused(&["model.safetensors"])),
        case("safetensors header length u64::MAX", |c| info(m(c, "gen", header_len(u64::MAX))), Refused(&["model.safetensors"])),
        case("safetensors header length 1e9", |c| info(m(c, "gen", header_len(1_000_000_000))), Refused(&["model.safetensors"])),
        case("safetensors header not JSON", |c| info(m(c, "gen", write("model.safetensors", b"\x10\x00\x00\x00\x00\x00\x00\x00not json at all!"))), Refused(&["model.safetensors"])),
        case("safetensors offsets past the end", |c| info(m(c, "gen", offsets_past_end)), Refused(&["model.safetensors"])),
        case("safetensors with no tensors", |c| info(m(c, "gen", write("model.safetensors", b"\x08\x00\x00\x00\x00\x00\x00\x00{}      "))), Refused(&["model.safetensors"])),
        case("missing tensor", |c| info(m(c, "gen", weights(drop_tensor))), Refused(&["{tensor}"])),
        case("extra tensor", |c| info(m(c, "gen", weights(extra_tensor))), Refused(&["unet.bogus_extra.weight"])),
        case("transposed tensor", |c| info(m(c, "gen", weights(transpose))), Refused(&["{tensor}"])),
        case("NaN in a weight", |c| info(m(c, "gen", weights(nan))), Refused(&["{tensor}", "non-finite"])),
        case("+Inf in a weight", |c| info(m(c, "gen", weights(inf))), Refused(&["{tensor}", "non-finite"])),
        case("tensor with a zero dimension", |c| info(m(c, "gen", weights(zero_dim))), Refused(&["{tensor}"])),
        case("model folder missing", |c| info(c.p("no_such_model")), Refused(&["no_such_model"])),
        case("model folder is a file", |c| { std::fs::write(c.dir.join("model_file"), b"x").unwrap(); info(c.p("model_file")) }, Refused(&["model_file"])),
        // --- timed info (builds the network)
        case("info timed: kwargs channels 1e9", move |c| info_timed(m(c, "gen", set_kw("channels", big()))), Refused(&["channels"])),
        case("info timed: window_length 10^12", |c| info_timed(m(c, "gen", set("window_length", json!(1_000_000_000_000u64)))), Refused(&["window_length"])),
        case("info timed: attention_heads 1e9", move |c| info_timed(m(c, "gen", set_kw("attention_heads", big()))), Refused(&["attention_heads"])),
        // --- generate
        case("generate: missing tensor", |c| { let d = m(c, "gen", weights(drop_tensor)); gen(c, d) }, Refused(&["{tensor}"])),
        case("generate: NaN weight", |c| { let d = m(c, "gen", weights(nan)); gen(c, d) }, Refused(&["{tensor}", "non-finite"])),
        case("generate: transposed tensor", |c| { let d = m(c, "gen", weights(transpose)); gen(c, d) }, Refused(&["{tensor}"])),
        case("generate: kwargs channels 1e9", move |c| { let d = m(c, "gen", set_kw("channels", big())); gen(c, d) }, Refused(&["channels"])),
        case("generate: num_blocks huge", |c| { let d = m(c, "gen", set_kw("num_blocks", json!([1_000_000_000u64, 1]))); gen(c, d) }, Refused(&["num_blocks"])),
        case("generate: window_length 10^12", |c| { let d = m(c, "gen", set("window_length", json!(1_000_000_000_000u64))); gen(c, d) }, Refused(&["window_length"])),
        case("generate: sample_rate 0", |c| { let d = m(c, "gen", set("sample_rate", json!(0))); gen(c, d) }, Refused(&["sample_rate"])),
        case("generate: truncated weights", |c| { let d = m(c, "gen", |d| truncate_file(&d.join("model.safetensors"), 0.7)); gen(c, d) }, Refused(&["model.safetensors"])),
        case("generate: unknown kind", |c| { let d = m(c, "gen", set("kind", json!("Bogus"))); gen(c, d) }, Refused(&["kind"])),
        case("generate: config is an array", |c| { let d = m(c, "gen", write("config.json", b"[]")); gen(c, d) }, Refused(&["config.json"])),
        case("generate: sampling.num_steps 1e9 (no --steps)", |c| { let d = m(c, "gen", |d| mutate_config(d, |v| v["sampling"]["num_steps"] = json!(1_000_000_000u64))); args(&["generate", "-o", &c.out(), "--model", &d, "--seconds", "0.05"]) }, Refused(&["num_steps"])),
        // --- upsample --model (diffusion upsampler)
        case("upsample: missing tensor", |c| { let d = m(c, "up", weights(drop_tensor)); up(c, d) }, Refused(&["{up_tensor}"])),
        case("upsample: NaN weight", |c| { let d = m(c, "up", weights(nan)); up(c, d) }, Refused(&["{up_tensor}", "non-finite"])),
        case("upsample: factor []", |c| { let d = m(c, "up", set_kw("factor", json!([]))); up(c, d) }, Refused(&["factor"])),
        case("upsample: sample_rate 0", |c| { let d = m(c, "up", set("sample_rate", json!(0))); up(c, d) }, Refused(&["sample_rate"])),
        case("upsample: missing config.json", |c| { let d = m(c, "up", rm("config.json")); up(c, d) }, Refused(&["config.json"])),
        // --- inpaint --model
        case("inpaint: transposed tensor", |c| { let d = m(c, "gen", weights(transpose)); inpaint(c, d) }, Refused(&["{tensor}"])),
        case("inpaint: multipliers huge", |c| { let d = m(c, "gen", set_kw("multipliers", json!([1, 1_000_000_000u64, 4]))); inpaint(c, d) }, Refused(&["multipliers"])),
        case("inpaint: invalid JSON", |c| { let d = m(c, "gen", write("config.json", b"{")); inpaint(c, d) }, Refused(&["config.json"])),
        case("inpaint: missing weights", |c| { let d = m(c, "gen", rm("model.safetensors")); inpaint(c, d) }, Refused(&["model.safetensors"])),
        // --- band-extension folders
        case("band-ext: factors []", |c| { let d = m(c, "be", set_be("factors", json!([]))); up_be(c, d, "2") }, Refused(&["factors"])),
        case("band-ext: factors [] (no --factor)", |c| { let d = m(c, "be", set_be("factors", json!([]))); pcm16(8000, 1, 800).write(&c.dir.join("in.wav")); args(&["upsample", &c.p("in.wav"), "-o", &c.out(), "--model", &d]) }, Refused(&["factors"])),
        case("band-ext: factors [0]", |c| { let d = m(c, "be", set_be("factors", json!([0]))); up_be(c, d, "2") }, Refused(&["factors"])),
        case("band-ext: factors [1]", |c| { let d = m(c, "be", set_be("factors", json!([1]))); up_be(c, d, "2") }, Refused(&["factors"])),
        case("band-ext: factors [1e9]", |c| { let d = m(c, "be", set_be("factors", json!([1_000_000_000u64]))); up_be(c, d, "2") }, Refused(&["factors"])),
        case("band-ext: phase_iters 1e9", move |c| { let d = m(c, "be", set_be("phase_iters", big())); up_be(c, d, "2") }, Refused(&["phase_iters"])),
        case("band-ext: sample_rate 0", |c| { let d = m(c, "be", set_be("sample_rate", json!(0))); up_be(c, d, "2") }, Refused(&["sample_rate"])),
        case("band-ext: band_width 0", |c| { let d = m(c, "be", set_be("band_width", json!(0))); up_be(c, d, "2") }, Refused(&["band_width"])),
        case("band-ext: band_width 1e9", move |c| { let d = m(c, "be", set_be("band_width", big())); up_be(c, d, "2") }, Refused(&["band_width"])),
        case("band-ext: lo_bands 0", |c| { let d = m(c, "be", set_be("lo_bands", json!(0))); up_be(c, d, "2") }, Refused(&["lo_bands"])),
        case("band-ext: lo_bands 1e9", move |c| { let d = m(c, "be", set_be("lo_bands", big())); up_be(c, d, "2") }, Refused(&["lo_bands"])),
        case("band-ext: context 1e9", move |c| { let d = m(c, "be", set_be("context", big())); up_be(c, d, "2") }, Refused(&["context"])),
        case("band-ext: no config object", |c| { let d = m(c, "be", |d| std::fs::write(d.join("config.json"), br#"{"kind": "BandExtension"}"#).unwrap()); up_be(c, d, "2") }, Refused(&["config"])),
        case("band-ext: config invalid JSON", |c| { let d = m(c, "be", write("config.json", b"{\"kind\": \"BandExtension\", ")); up_be(c, d, "2") }, Refused(&["config.json"])),
        case("band-ext: missing model.safetensors", |c| { let d = m(c, "be", rm("model.safetensors")); up_be(c, d, "2") }, Refused(&["model.safetensors"])),
        case("band-ext: truncated model.safetensors", |c| { let d = m(c, "be", |d| truncate_file(&d.join("model.safetensors"), 0.5)); up_be(c, d, "2") }, Refused(&["model.safetensors"])),
        case("band-ext: missing tensor factor_4", |c| { let d = m(c, "be", |d| mutate_weights(d, |t| { t.remove("factor_4"); })); up_be(c, d, "4") }, Refused(&["factor_4"])),
        case("band-ext: transposed factor_2", |c| { let d = m(c, "be", be_tensor("factor_2", |t| t.shape.swap(0, 1))); up_be(c, d, "2") }, Refused(&["factor_2"])),
        case("band-ext: NaN in factor_2", |c| { let d = m(c, "be", be_tensor("factor_2", |t| set_f32(t, 3, f32::NAN))); up_be(c, d, "2") }, Refused(&["factor_2", "non-finite"])),
        case("band-ext: +Inf in factor_8", |c| { let d = m(c, "be", be_tensor("factor_8", |t| set_f32(t, 0, f32::INFINITY))); up_be(c, d, "8") }, Refused(&["factor_8", "non-finite"])),
        case("band-ext: factor 16 not offered", |c| { let d = m(c, "be", |_| {}); up_be(c, d, "16") }, Refused(&["16"])),
        case("band-ext: copy works (factor 4)", |c| { let d = m(c, "be", |_| {}); up_be(c, d, "4") }, Wav { rate: 32_000, channels: 1, frames: 3200 }),
        // --- a generator's band-extension stage
        case("stage: band_extension/ factors []", |c| { let d = m(c, "staged", |d| mutate_config(&d.join("band_extension"), |v| v["config"]["factors"] = json!([]))); gen(c, d) }, Refused(&["factors"])),
        case("stage: band_extension/ missing weights", |c| { let d = m(c, "staged", |d| std::fs::remove_file(d.join("band_extension/model.safetensors")).unwrap()); gen(c, d) }, Refused(&["band_extension"])),
        case("stage: factor 3 not offered", |c| { let d = m(c, "staged", set("band_extension", json!({"factor": 3}))); gen(c, d) }, Refused(&["3"])),
        case("stage: band_extension/ phase_iters 1e9", move |c| { let d = m(c, "staged", |d| mutate_config(&d.join("band_extension"), |v| v["config"]["phase_iters"] = json!(1_000_000_000u64))); gen(c, d) }, Refused(&["phase_iters"])),
        case("stage: works", |c| { let d = m(c, "staged", |_| {}); gen(c, d) }, Wav { rate: 16_000, channels: 1, frames: 800 }),
    ]
}
