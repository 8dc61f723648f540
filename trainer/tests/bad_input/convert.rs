//! Bad checkpoints for `convert`: not a zip, no data.pkl, a truncated zip, hostile pickles (a
//! memo bomb of a few hundred bytes, 100,000-deep nesting, a 4 GiB string claim), broken
//! safetensors, a NaN weight; and bad config / output arguments. Each must be refused naming the
//! file, quickly and under the memory cap, with no output folder left behind.

use super::build::*;
use super::harness::{args, case, Case, Ctx, Expect};

/// `convert <name> --config gen/config.json -o dir/converted`, after writing `bytes` as `name`.
fn conv(c: &Ctx, name: &str, bytes: &[u8]) -> Vec<String> {
    std::fs::write(c.dir.join(name), bytes).unwrap();
    conv_path(c, &c.p(name))
}

fn conv_path(c: &Ctx, ckpt: &str) -> Vec<String> {
    args(&[
        "convert",
        ckpt,
        "--config",
        &c.fx("gen").join("config.json").to_string_lossy(),
        "-o",
        &c.p("converted"),
    ])
}

/// The tiny generator's weights, changed by `f`, saved as `dir/ckpt.safetensors`.
fn weights_ckpt(
    c: &Ctx,
    f: impl FnOnce(&mut std::collections::BTreeMap<String, StTensor>),
) -> String {
    let mut t = st_read(&c.fx("gen").join("model.safetensors"));
    f(&mut t);
    let p = c.dir.join("ckpt.safetensors");
    st_write(&p, &t);
    p.to_string_lossy().into_owned()
}

fn valid_pt_zip() -> Vec<u8> {
    pt_with(&pickle_empty_dict())
}

// One case a line: the table reads as a list of cases.
#[rustfmt::skip]
pub fn cases() -> Vec<Case> {
    use Expect::*;
    let text = b"this is not a checkpoint, only some text in a .pt file\n".repeat(20);
    vec![
        case("pt: not a zip", move |c| conv(c, "text.pt", &text), Refused(&["text.pt"])),
        case("pt: empty file", |c| conv(c, "empty.pt", b""), Refused(&["empty.pt"])),
        case("pt: zip without data.pkl", |c| conv(c, "nopkl.pt", &zip(&[("archive/other.txt", b"hello")])), Refused(&["nopkl.pt"])),
        case("pt: empty zip", |c| conv(c, "emptyzip.pt", &zip(&[])), Refused(&["emptyzip.pt"])),
        case("pt: truncated zip", |c| { let z = pt_with(&pickle_deep_tuple(100)); conv(c, "cut.pt", &z[..z.len() / 2]) }, Refused(&["cut.pt"])),
        case("pt: zip with a bad CRC", |c| { let mut z = pt_with(&pickle_empty_dict()); z[14] ^= 0xff; conv(c, "badcrc.pt", &z) }, Refused(&["badcrc.pt"])),
        case("pt: pickle memo bomb", |c| conv(c, "bomb.pt", &pt_with(&pickle_memo_bomb())), Refused(&["bomb.pt"])),
        case("pt: 100000-deep nested tuple", |c| conv(c, "deep_tuple.pt", &pt_with(&pickle_deep_tuple(100_000))), Refused(&["deep_tuple.pt"])),
        case("pt: 100000-deep nested list", |c| conv(c, "deep_list.pt", &pt_with(&pickle_deep_list(100_000))), Refused(&["deep_list.pt"])),
        case("pt: 4 GiB string claim", |c| conv(c, "huge_str.pt", &pt_with(&pickle_huge_string())), Refused(&["huge_str.pt"])),
        case("pt: missing memo slot", |c| conv(c, "memo.pt", &pt_with(&pickle_missing_memo())), Refused(&["memo.pt"])),
        case("pt: garbage opcodes", |c| conv(c, "opcodes.pt", &pt_with(b"\x80\x02\xff\xfe\xfd\xfc.")), Refused(&["opcodes.pt"])),
        case("pt: pickle without STOP", |c| conv(c, "nostop.pt", &pt_with(b"\x80\x02}q\x00(")), Refused(&["nostop.pt"])),
        case("pt: no tensors (empty dict)", |c| conv(c, "notensors.pt", &valid_pt_zip()), Refused(&["notensors.pt"])),
        case("pt: tensor whose storage is missing", |c| conv(c, "nostorage.pt", &pt_with(&pickle_missing_storage())), Refused(&["nostorage.pt"])),
        case("ckpt: memo bomb under .ckpt", |c| conv(c, "bomb.ckpt", &pt_with(&pickle_memo_bomb())), Refused(&["bomb.ckpt"])),
        case("safetensors: garbage", |c| conv(c, "junk.safetensors", b"junk junk junk junk junk"), Refused(&["junk.safetensors"])),
        case("safetensors: empty", |c| conv(c, "empty.safetensors", b""), Refused(&["empty.safetensors"])),
        case("safetensors: header length u64::MAX", |c| { let mut b = std::fs::read(c.fx("gen").join("model.safetensors")).unwrap(); b[..8].copy_from_slice(&u64::MAX.to_le_bytes()); conv(c, "hdr.safetensors", &b) }, Refused(&["hdr.safetensors"])),
        case("safetensors: truncated", |c| { let b = std::fs::read(c.fx("gen").join("model.safetensors")).unwrap(); conv(c, "cut.safetensors", &b[..b.len() / 3]) }, Refused(&["cut.safetensors"])),
        case("safetensors: NaN weight", |c| { let p = weights_ckpt(c, |t| { let k = t.keys().find(|k| t[*k].shape.len() >= 2).unwrap().clone(); set_f32(t.get_mut(&k).unwrap(), 0, f32::NAN); }); conv_path(c, &p) }, Refused(&["non-finite"])),
        case("safetensors: missing tensor", |c| { let name = c.vars["tensor"].clone(); let p = weights_ckpt(c, |t| { t.remove(&name); }); conv_path(c, &p) }, Refused(&["{tensor}"])),
        case("checkpoint is a folder", |c| { std::fs::create_dir(c.dir.join("ckpt_dir.pt")).unwrap(); conv_path(c, &c.p("ckpt_dir.pt")) }, Refused(&["ckpt_dir.pt"])),
        case("checkpoint missing", |c| conv_path(c, &c.p("absent.pt")), Refused(&["absent.pt"])),
        case("config invalid JSON", |c| { std::fs::write(c.dir.join("bad_config.json"), b"{").unwrap(); let mut a = conv_path(c, &c.fx("gen").join("model.safetensors").to_string_lossy()); a[3] = c.p("bad_config.json"); a }, Refused(&["bad_config.json"])),
        case("config missing", |c| { let mut a = conv_path(c, &c.fx("gen").join("model.safetensors").to_string_lossy()); a[3] = c.p("no_config.json"); a }, Refused(&["no_config.json"])),
        case("config with window_length 0", |c| { let d = c.copy_fx("gen", "cfgdir"); mutate_config(&d, |v| v["window_length"] = 0.into()); let mut a = conv_path(c, &c.fx("gen").join("model.safetensors").to_string_lossy()); a[3] = d.join("config.json").to_string_lossy().into_owned(); a }, Refused(&["window_length"])),
        case("output folder exists and is not empty", |c| { std::fs::create_dir(c.dir.join("converted")).unwrap(); std::fs::write(c.dir.join("converted/keep.txt"), b"keep").unwrap(); conv_path(c, &c.fx("gen").join("model.safetensors").to_string_lossy()) }, Refused(&["converted", "not empty"])),
        case("output is a file", |c| { std::fs::write(c.dir.join("converted"), b"a file").unwrap(); conv_path(c, &c.fx("gen").join("model.safetensors").to_string_lossy()) }, Refused(&["converted"])),
        case("--band-extension folder missing", |c| { let mut a = conv_path(c, &c.fx("gen").join("model.safetensors").to_string_lossy()); a.extend(args(&["--band-extension", &c.p("no_be"), "--band-extension-factor", "2"])); a }, Refused(&["no_be"])),
        case("--band-extension-factor 0", |c| { let mut a = conv_path(c, &c.fx("gen").join("model.safetensors").to_string_lossy()); a.extend(args(&["--band-extension", &c.fx("be").to_string_lossy(), "--band-extension-factor", "0"])); a }, Refused(&["0"])),
        case("--store f64", |c| { let mut a = conv_path(c, &c.fx("gen").join("model.safetensors").to_string_lossy()); a.extend(args(&["--store", "f64"])); a }, Usage("--store")),
        case("a valid conversion works", |c| conv_path(c, &c.fx("gen").join("model.safetensors").to_string_lossy()), Ok(|c, _| { let d = c.dir.join("converted"); if d.join("config.json").is_file() && d.join("model.safetensors").is_file() { Result::Ok(()) } else { Err("the converted folder is incomplete".into()) } })),
    ]
}
