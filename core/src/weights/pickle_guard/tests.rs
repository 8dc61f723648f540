//! Tests of the pickle guard: valid pickles, each refusal, and the checkpoint readers.

use super::*;
use std::io::{Cursor as IoCursor, Write};
use std::time::{Duration, Instant};

/// An in-memory zip of `(name, bytes)` entries, stored uncompressed as torch.save does.
fn zip_of(entries: &[(&str, &[u8])]) -> Vec<u8> {
    let mut w = zip::ZipWriter::new(IoCursor::new(Vec::new()));
    let opts =
        zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    for (name, bytes) in entries {
        w.start_file(*name, opts).expect("start entry");
        w.write_all(bytes).expect("write entry");
    }
    w.finish().expect("finish zip").into_inner()
}

/// `scan_archive` under the default limits of a zip holding `pkl` as `archive/data.pkl`.
fn scan_pkl(pkl: &[u8]) -> Result<Usage, Refusal> {
    let zip = zip_of(&[("archive/data.pkl", pkl), ("archive/version", b"3\n")]);
    scan_archive(IoCursor::new(zip), &GuardLimits::default())
}

/// A BINUNICODE opcode with its text.
fn unicode(s: &str) -> Vec<u8> {
    let mut v = vec![b'X'];
    v.extend_from_slice(&(s.len() as u32).to_le_bytes());
    v.extend_from_slice(s.as_bytes());
    v
}

/// A protocol-2 pickle of `OrderedDict({"a": 1, "b": [2.5, True], "c": ("x", None)})` with
/// memo puts and gets, as torch.save writes dicts.
fn valid_dict() -> Vec<u8> {
    let mut p = vec![0x80, 2];
    p.extend_from_slice(b"ccollections\nOrderedDict\nq\x00)Rq\x01(");
    p.extend(unicode("a"));
    p.extend_from_slice(b"q\x02K\x01");
    p.extend(unicode("b"));
    p.extend_from_slice(b"](G\x40\x04\x00\x00\x00\x00\x00\x00\x88eq\x03");
    p.extend(unicode("c"));
    p.extend(unicode("x"));
    p.extend_from_slice(b"N\x86q\x04uh\x04\x30.");
    p
}

#[test]
fn a_small_valid_dict_passes() {
    let usage = scan_pkl(&valid_dict()).expect("valid pickle");
    assert_eq!(usage.memo, 5);
    assert!(usage.depth <= 3, "{usage:?}");
    assert!(usage.nodes < 100, "{usage:?}");
}

#[test]
fn protocol_4_opcodes_pass() {
    // FRAME, SHORT_BINUNICODE, STACK_GLOBAL, MEMOIZE, EMPTY_DICT, SETITEM, BINBYTES.
    let mut p = vec![0x80, 4, 0x95];
    p.extend_from_slice(&40u64.to_le_bytes());
    p.extend_from_slice(b"\x8c\x0bcollections\x94\x8c\x0bOrderedDict\x94\x93\x94)R\x94");
    p.extend_from_slice(b"\x8c\x01kC\x02hi\x8a\x02\x01\x01\x86s.");
    let usage = scan_pkl(&p).expect("protocol 4 pickle");
    assert_eq!(usage.memo, 4);
}

#[test]
fn the_repository_checkpoint_passes() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/unet_small.ckpt");
    let usage = check_checkpoint(&path).expect("real checkpoint");
    // 25 600 pickle bytes: about 0.5 nodes and 1.5 payload bytes per byte, depth 7, far
    // inside the 16-per-byte budgets.
    assert!(usage.depth < 10, "{usage:?}");
    assert!(
        usage.nodes < 2 * 25_600 && usage.bytes < 4 * 25_600,
        "{usage:?}"
    );
}

/// The memo bomb: a list put in the memo, then 40 levels of a list of 8 gets of the
/// previous level: 8^40 nodes if materialised, in about 800 bytes.
fn memo_bomb() -> Vec<u8> {
    let mut p = vec![0x80, 2, b']', b'q', 0];
    for _ in 0..40 {
        p.push(b'(');
        for _ in 0..8 {
            p.extend_from_slice(b"h\x00");
        }
        p.extend_from_slice(b"lq\x00");
    }
    p.push(b'.');
    p
}

#[test]
fn the_memo_bomb_is_refused_quickly_by_the_node_budget() {
    let start = Instant::now();
    let err = scan_pkl(&memo_bomb()).expect_err("bomb");
    assert!(start.elapsed() < Duration::from_secs(1));
    assert_eq!(err, Refusal::NodeBudget { budget: 1_000_000 });
    assert!(err.to_string().contains("budget"), "{err}");
}

#[test]
fn a_cloned_large_string_is_refused_by_the_payload_budget() {
    // One 1 MiB string memoised, then fetched 100 times into a list.
    let mut p = vec![0x80, 2, b']', b'(', b'X'];
    p.extend_from_slice(&(1u32 << 20).to_le_bytes());
    p.extend(std::iter::repeat_n(b'a', 1 << 20));
    p.extend_from_slice(b"q\x00");
    p.extend((0..100).flat_map(|_| *b"h\x00"));
    p.extend_from_slice(b"e.");
    let err = scan_pkl(&p).expect_err("payload bomb");
    assert_eq!(err, Refusal::PayloadBudget { budget: 64 << 20 });
}

#[test]
fn deep_tuple1_nesting_is_refused_by_depth_without_recursion() {
    let mut p = vec![0x80, 2, b')'];
    p.extend(std::iter::repeat_n(0x85u8, 100_000));
    p.push(b'.');
    let err = scan_pkl(&p).expect_err("deep");
    assert_eq!(err, Refusal::Depth { limit: 64 });
    assert!(err.to_string().contains("depth"), "{err}");
}

#[test]
fn deep_mark_tuple_nesting_is_refused_by_depth() {
    let mut p = vec![0x80, 2];
    p.extend(std::iter::repeat_n(b'(', 100_000));
    p.extend(std::iter::repeat_n(b't', 100_000));
    p.push(b'.');
    assert_eq!(scan_pkl(&p), Err(Refusal::Depth { limit: 64 }));
    // Nesting built by APPEND of each list into the one below it is caught the same way.
    let mut p = vec![0x80, 2];
    p.extend(std::iter::repeat_n(b']', 100_000));
    p.extend(std::iter::repeat_n(b'a', 99_999));
    p.push(b'.');
    assert_eq!(scan_pkl(&p), Err(Refusal::Depth { limit: 64 }));
}

#[test]
fn a_truncated_stream_is_refused() {
    let full = valid_dict();
    for cut in [full.len() - 1, full.len() / 2, 3, 1, 0] {
        let err = scan_pkl(&full[..cut]).expect_err("truncated");
        assert!(matches!(err, Refusal::Truncated { .. }), "cut {cut}: {err}");
    }
    // A length prefix pointing past the end.
    let mut p = vec![0x80, 2, b'X'];
    p.extend_from_slice(&u32::MAX.to_le_bytes());
    assert_eq!(scan_pkl(&p), Err(Refusal::Truncated { offset: 7 }));
}

#[test]
fn an_unknown_opcode_is_refused() {
    let err = scan_pkl(&[0x80, 2, b'N', 0xff, b'.']).expect_err("unknown");
    assert_eq!(
        err,
        Refusal::UnknownOpcode {
            offset: 3,
            code: 0xff
        }
    );
    let err = scan_pkl(&[0x80, 2, 0x82, 1, b'.']).expect_err("EXT1");
    assert_eq!(
        err,
        Refusal::UnsupportedOpcode {
            offset: 2,
            name: "EXT1"
        }
    );
}

#[test]
fn an_inert_unknown_global_passes() {
    // A Lightning checkpoint's hyper-parameters: argparse.Namespace() with no arguments.
    let namespace = b"\x80\x02cargparse\nNamespace\n)\x81}b.";
    assert!(scan_pkl(namespace).is_ok());
}

#[test]
fn an_unknown_global_is_refused_by_name() {
    let err = scan_pkl(b"\x80\x02cos\nsystem\nX\x02\x00\x00\x00ls\x85R.").expect_err("global");
    assert_eq!(
        err,
        Refusal::UnknownGlobal {
            module: "os".into(),
            name: "system".into()
        }
    );
    assert!(err.to_string().contains("os.system"), "{err}");
    let stack = b"\x80\x04\x8c\x08builtins\x8c\x04eval\x93.";
    let err = scan_pkl(stack).expect_err("stack global");
    assert!(err.to_string().contains("builtins.eval"), "{err}");
}

#[test]
fn a_memo_flood_is_refused_by_the_memo_limit() {
    let limits = GuardLimits {
        max_memo: 1000,
        ..GuardLimits::default()
    };
    let mut p = vec![0x80, 2, b'N'];
    for id in 0u32..2000 {
        p.push(b'r');
        p.extend_from_slice(&id.to_le_bytes());
    }
    p.push(b'.');
    assert_eq!(
        scan_pickle(&p, &limits),
        Err(Refusal::MemoEntries { limit: 1000 })
    );
}

#[test]
fn an_oversized_pickle_entry_is_refused() {
    let limits = GuardLimits {
        max_pickle_bytes: 1024,
        ..GuardLimits::default()
    };
    let mut big = vec![0x80, 2];
    big.extend(std::iter::repeat_n(b'N', 4096));
    big.push(b'.');
    let zip = zip_of(&[("archive/data.pkl", &big)]);
    let err = scan_archive(IoCursor::new(zip), &limits).expect_err("oversized");
    assert_eq!(
        err,
        Refusal::EntryTooLarge {
            entry: "archive/data.pkl".into(),
            limit: 1024
        }
    );
}

#[test]
fn too_many_entries_are_refused() {
    let limits = GuardLimits {
        max_entries: 4,
        ..GuardLimits::default()
    };
    let names: Vec<String> = (0..5).map(|i| format!("archive/data/{i}")).collect();
    let entries: Vec<(&str, &[u8])> = names.iter().map(|n| (n.as_str(), &b"x"[..])).collect();
    let err = scan_archive(IoCursor::new(zip_of(&entries)), &limits).expect_err("entries");
    assert_eq!(err, Refusal::TooManyEntries { count: 5, limit: 4 });
}

#[test]
fn not_a_zip_is_refused() {
    let err = scan_archive(
        IoCursor::new(b"not a zip archive".to_vec()),
        &GuardLimits::default(),
    )
    .expect_err("not zip");
    assert!(matches!(err, Refusal::NotZip(_)), "{err}");
}

#[test]
fn a_bomb_checkpoint_fails_through_read_tensors() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("bomb.pt");
    let zip = zip_of(&[
        ("archive/data.pkl", &memo_bomb()),
        ("archive/version", b"3\n"),
    ]);
    std::fs::write(&path, zip).expect("write bomb");
    let start = Instant::now();
    let err = crate::weights::file::read_tensors(&path, &candle_core::Device::Cpu)
        .expect_err("bomb refused");
    assert!(start.elapsed() < Duration::from_secs(1));
    match err {
        crate::Error::WeightsFile { path: p, reason } => {
            assert_eq!(p, path);
            assert!(reason.contains("node budget"), "{reason}");
        }
        other => panic!("wrong error: {other}"),
    }
}

/// A torch.save-style checkpoint of `{"w": tensor}` whose float storage holds 4 values and
/// whose pickle claims the shape `(numel,)`.
fn tensor_checkpoint(numel: u32) -> Vec<u8> {
    let mut p = b"\x80\x02}q\x00(".to_vec();
    p.extend(unicode("w"));
    p.extend_from_slice(b"ctorch._utils\n_rebuild_tensor_v2\n((");
    p.extend(unicode("storage"));
    p.extend_from_slice(b"ctorch\nFloatStorage\n");
    p.extend(unicode("0"));
    p.extend(unicode("cpu"));
    p.extend_from_slice(b"K\x04tQK\x00J");
    p.extend_from_slice(&numel.to_le_bytes());
    p.extend_from_slice(b"\x85K\x01\x85\x89ccollections\nOrderedDict\n)RtRu.");
    let data: Vec<u8> = [1.0f32, 2.0, 3.0, 4.0]
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    zip_of(&[("archive/data.pkl", &p), ("archive/data/0", &data)])
}

#[test]
fn a_tensor_larger_than_its_storage_is_refused_before_allocation() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("w.pt");
    std::fs::write(&path, tensor_checkpoint(4)).expect("write");
    let tensors = crate::weights::file::read_tensors(&path, &candle_core::Device::Cpu)
        .expect("valid hand-built checkpoint");
    let w = tensors["w"].to_vec1::<f32>().expect("f32 vector");
    assert_eq!(w, [1.0, 2.0, 3.0, 4.0]);
    std::fs::write(&path, tensor_checkpoint(1 << 30)).expect("write");
    let err = crate::weights::file::read_tensors(&path, &candle_core::Device::Cpu)
        .expect_err("oversized tensor");
    match err {
        crate::Error::WeightsFile { reason, .. } => {
            assert!(reason.contains("needs 4294967296 bytes"), "{reason}");
        }
        other => panic!("wrong error: {other}"),
    }
}
