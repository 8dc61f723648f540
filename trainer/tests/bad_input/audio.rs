//! Bad audio input: header values outside the limits, broken files, non-finite and huge samples,
//! lengths past 3 hours / 2^28 samples; and odd-but-valid files that must work. Most cases go
//! through `upsample` with the shipped (embedded) band-extension model, the fastest command that
//! reads audio; the command-coverage cases go through `inpaint`, `continue` and `encode`.

use super::build::*;
use super::harness::{args, case, check_wav, Case, Ctx, Expect, Run};

/// `upsample IN -o out.wav --factor 2` with the shipped model.
fn up(c: &Ctx, input: &str) -> Vec<String> {
    args(&["upsample", &c.p(input), "-o", &c.out(), "--factor", "2"])
}

/// Writes `wav` as `name` and upsamples it.
fn up_wav(c: &Ctx, name: &str, wav: WavFile) -> Vec<String> {
    wav.write(&c.dir.join(name));
    up(c, name)
}

/// Writes raw bytes as `name` and upsamples it.
fn up_bytes(c: &Ctx, name: &str, bytes: &[u8]) -> Vec<String> {
    std::fs::write(c.dir.join(name), bytes).unwrap();
    up(c, name)
}

/// `inpaint IN -o out.wav --model gen --start 0.02 --end 0.05 --steps 2`.
fn inpaint(c: &Ctx, input: &str) -> Vec<String> {
    args(&[
        "inpaint",
        &c.p(input),
        "-o",
        &c.out(),
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

fn cont(c: &Ctx, input: &str) -> Vec<String> {
    args(&[
        "continue",
        &c.p(input),
        "-o",
        &c.out(),
        "--model",
        &c.fx("gen").to_string_lossy(),
        "--spans",
        "1",
        "--steps",
        "2",
    ])
}

fn encode(c: &Ctx, input: &str) -> Vec<String> {
    args(&[
        "encode",
        &c.p(input),
        "-o",
        &c.p("out.safetensors"),
        "--model",
        &c.fx("ae").to_string_lossy(),
    ])
}

const GARBAGE: &[u8] = b"this is not audio, only text that happens to have an audio file name. ";

fn garbage() -> Vec<u8> {
    GARBAGE.repeat(40)
}

/// The repair note on stdout names the count (`n`) of repaired samples.
fn repaired(n: usize) -> fn(&Ctx, &Run) -> Result<(), String> {
    fn check(c: &Ctx, r: &Run, n: usize) -> Result<(), String> {
        check_wav(&c.dir.join("out.wav"), Some((16_000, 1, 1600)))?;
        let has = r.stdout.lines().any(|l| {
            let l = l.to_lowercase();
            l.contains(&n.to_string())
                && ["repair", "replac", "clamp", "non-finite"]
                    .iter()
                    .any(|w| l.contains(w))
        });
        if has {
            Ok(())
        } else {
            Err(format!(
                "no repair note with the count {n} on stdout: {:?}",
                r.stdout
            ))
        }
    }
    match n {
        5 => |c, r| check(c, r, 5),
        6 => |c, r| check(c, r, 6),
        _ => |c, r| check(c, r, 7),
    }
}

fn repair_args(c: &Ctx, name: &str) -> Vec<String> {
    let mut a = up(c, name);
    a.push("--repair-samples".into());
    a
}

/// A sparse 8-bit WAV whose data chunk holds `bytes` zero bytes (the file takes no disk space).
fn sparse_wav(path: &std::path::Path, channels: u16, rate: u32, bytes: u64) {
    let mut w = WavFile::new(FMT_PCM, channels, rate, 8, Vec::new());
    w.data_len = Some(bytes as u32);
    let header = w.bytes();
    std::fs::write(path, &header).unwrap();
    let f = std::fs::OpenOptions::new().write(true).open(path).unwrap();
    f.set_len(header.len() as u64 + bytes).unwrap();
}

// One case a line: the table reads as a list of cases.
#[rustfmt::skip]
pub fn cases() -> Vec<Case> {
    use Expect::*;
    let guid = |tag: u16| {
        let mut g = [0u8; 16];
        g[..2].copy_from_slice(&tag.to_le_bytes());
        g[2..].copy_from_slice(&GUID_TAIL);
        g
    };
    let ext = move |channels: u16, mask: u32, tag: u16, bits: u16| {
        let data = if tag == FMT_FLOAT {
            f32_bytes(&sine(800, channels as usize))
        } else {
            pcm16_bytes(&sine(800, channels as usize))
        };
        let mut w = WavFile::new(FMT_EXTENSIBLE, channels, 8000, bits, data);
        w.ext = Some((bits, mask, guid(tag)));
        w
    };
    let ok_8k_x2 = |channels| Wav {
        rate: 16_000,
        channels,
        frames: 1600,
    };
    vec![
        // --- sample rates
        case("rate 0 Hz", |c| up_wav(c, "zero_rate.wav", pcm16(0, 1, 800)), Refused(&["zero_rate.wav", "sample rate"])),
        case("rate 1 Hz", |c| up_wav(c, "one_hz.wav", pcm16(1, 1, 800)), Refused(&["one_hz.wav", "sample rate"])),
        case("rate 999 Hz", |c| up_wav(c, "rate_low.wav", pcm16(999, 1, 800)), Refused(&["rate_low.wav", "sample rate"])),
        case("rate 384001 Hz", |c| up_wav(c, "rate_high.wav", pcm16(384_001, 1, 800)), Refused(&["rate_high.wav", "sample rate"])),
        case("rate u32::MAX", |c| up_wav(c, "rate_max.wav", pcm16(u32::MAX, 1, 800)), Refused(&["rate_max.wav", "sample rate"])),
        case("rate 1000 Hz is accepted (inpaint)", |c| { pcm16(1000, 1, 200).write(&c.dir.join("in.wav")); inpaint(c, "in.wav") }, Wav { rate: 1000, channels: 1, frames: 200 }),
        case("rate 384000 Hz is accepted (inpaint)", |c| { pcm16(384_000, 1, 38_400).write(&c.dir.join("in.wav")); inpaint(c, "in.wav") }, Wav { rate: 384_000, channels: 1, frames: 38_400 }),
        case("rate 1000 Hz upsampled by 2", |c| up_wav(c, "in.wav", pcm16(1000, 1, 100)), Wav { rate: 2000, channels: 1, frames: 200 }),
        case("rate 0 Hz (inpaint)", |c| { pcm16(0, 1, 800).write(&c.dir.join("zero_rate.wav")); inpaint(c, "zero_rate.wav") }, Refused(&["zero_rate.wav", "sample rate"])),
        case("rate 384001 Hz (continue)", |c| { pcm16(384_001, 1, 800).write(&c.dir.join("rate_high.wav")); cont(c, "rate_high.wav") }, Refused(&["rate_high.wav", "sample rate"])),
        case("rate 1 Hz (encode)", |c| { pcm16(1, 1, 800).write(&c.dir.join("one_hz.wav")); encode(c, "one_hz.wav") }, Refused(&["one_hz.wav", "sample rate"])),
        // --- channels
        case("0 channels", |c| up_wav(c, "no_channels.wav", WavFile::new(FMT_PCM, 0, 8000, 16, pcm16_bytes(&sine(800, 1)))), Refused(&["no_channels.wav", "channels"])),
        case("9 channels", |c| up_wav(c, "nine_ch.wav", pcm16(8000, 9, 800)), Refused(&["nine_ch.wav", "channels"])),
        case("65535 channels", |c| up_wav(c, "many_ch.wav", WavFile::new(FMT_PCM, 65535, 8000, 16, vec![0; 65535 * 2 * 4])), Refused(&["many_ch.wav", "channels"])),
        case("9 channels (inpaint)", |c| { pcm16(8000, 9, 800).write(&c.dir.join("nine_ch.wav")); inpaint(c, "nine_ch.wav") }, Refused(&["nine_ch.wav", "channels"])),
        case("0 channels (encode)", |c| { WavFile::new(FMT_PCM, 0, 8000, 16, pcm16_bytes(&sine(800, 1))).write(&c.dir.join("no_channels.wav")); encode(c, "no_channels.wav") }, Refused(&["no_channels.wav", "channels"])),
        case("8 channels are accepted", |c| up_wav(c, "in.wav", pcm16(8000, 8, 800)), ok_8k_x2(8)),
        case("stereo is accepted", |c| up_wav(c, "in.wav", pcm16(8000, 2, 800)), ok_8k_x2(2)),
        // --- sample formats
        case("bits per sample 0", |c| up_wav(c, "bits_zero.wav", WavFile::new(FMT_PCM, 1, 8000, 0, vec![0; 1600])), Refused(&["bits_zero.wav"])),
        case("bits per sample 7", |c| up_wav(c, "bits_seven.wav", WavFile::new(FMT_PCM, 1, 8000, 7, vec![0; 1600])), Refused(&["bits_seven.wav"])),
        case("bits per sample 64 int", |c| up_wav(c, "bits_sixtyfour.wav", WavFile::new(FMT_PCM, 1, 8000, 64, vec![0; 6400])), Refused(&["bits_sixtyfour.wav"])),
        case("bits per sample 12 float", |c| up_wav(c, "float_twelve.wav", WavFile::new(FMT_FLOAT, 1, 8000, 12, vec![0; 1600])), Refused(&["float_twelve.wav"])),
        case("unknown format tag 0x1234", |c| up_wav(c, "odd_tag.wav", WavFile::new(0x1234, 1, 8000, 16, pcm16_bytes(&sine(800, 1)))), Refused(&["odd_tag.wav"])),
        case("block align 0", |c| { let mut w = pcm16(8000, 1, 800); w.block_align = Some(0); up_wav(c, "align_zero.wav", w) }, Refused(&["align_zero.wav"])),
        case("8-bit unsigned is accepted", |c| up_wav(c, "in.wav", WavFile::new(FMT_PCM, 1, 8000, 8, sine(800, 1).iter().map(|x| (128.0 + x * 100.0) as u8).collect())), ok_8k_x2(1)),
        case("24-bit is accepted", |c| up_wav(c, "in.wav", WavFile::new(FMT_PCM, 1, 8000, 24, sine(800, 1).iter().flat_map(|x| { let v = (x * 8_000_000.0) as i32; [v as u8, (v >> 8) as u8, (v >> 16) as u8] }).collect())), ok_8k_x2(1)),
        case("32-bit int is accepted", |c| up_wav(c, "in.wav", WavFile::new(FMT_PCM, 1, 8000, 32, sine(800, 1).iter().flat_map(|x| ((x * 2e9) as i32).to_le_bytes()).collect())), ok_8k_x2(1)),
        case("64-bit float is accepted", |c| up_wav(c, "in.wav", WavFile::new(FMT_FLOAT, 1, 8000, 64, sine(800, 1).iter().flat_map(|&x| f64::from(x).to_le_bytes()).collect())), ok_8k_x2(1)),
        case("extensible PCM, mask 0 (unassigned)", move |c| up_wav(c, "in.wav", ext(2, 0, FMT_PCM, 16)), ok_8k_x2(2)),
        case("extensible float, stereo mask", move |c| up_wav(c, "in.wav", ext(2, 0x3, FMT_FLOAT, 32)), ok_8k_x2(2)),
        case("extensible, mask with fewer bits than channels", move |c| up_wav(c, "in.wav", ext(2, 0x4, FMT_PCM, 16)), ok_8k_x2(2)),
        // WAVEFORMATEXTENSIBLE: mask bits beyond nChannels are ignored; nChannels rules.
        case("extensible, mask with 18 bits for 2 channels", move |c| up_wav(c, "in.wav", ext(2, 0x3FFFF, FMT_PCM, 16)), ok_8k_x2(2)),
        case("extensible, mask 0xFFFFFFFF", move |c| up_wav(c, "in.wav", ext(1, u32::MAX, FMT_PCM, 16)), ok_8k_x2(1)),
        case("extensible, unknown sub-format GUID", move |c| { let mut w = ext(1, 0x4, FMT_PCM, 16); w.ext = Some((16, 0x4, [0x5A; 16])); up_wav(c, "odd_guid.wav", w) }, Refused(&["odd_guid.wav"])),
        case("extensible, 9 channels", move |c| up_wav(c, "ext_nine.wav", ext(9, 0x1FF, FMT_PCM, 16)), Refused(&["ext_nine.wav", "channels"])),
        // --- sample values
        case("NaN samples", |c| up_wav(c, "nan_samples.wav", float_with(8000, 800, f32::NAN, 3)), Refused(&["nan_samples.wav", "non-finite", "3"])),
        case("+Inf samples", |c| up_wav(c, "pos_inf.wav", float_with(8000, 800, f32::INFINITY, 4)), Refused(&["pos_inf.wav", "non-finite", "4"])),
        case("-Inf samples", |c| up_wav(c, "neg_inf.wav", float_with(8000, 800, f32::NEG_INFINITY, 2)), Refused(&["neg_inf.wav", "non-finite", "2"])),
        case("3e38 samples", |c| up_wav(c, "huge_samples.wav", float_with(8000, 800, 3e38, 5)), Refused(&["huge_samples.wav", "out of range|out-of-range", "5"])),
        case("-1000.5 samples", |c| up_wav(c, "over_range.wav", float_with(8000, 800, -1000.5, 1)), Refused(&["over_range.wav", "out of range|out-of-range", "1"])),
        case("f64 1e300 samples", |c| up_wav(c, "double_huge.wav", WavFile::new(FMT_FLOAT, 1, 8000, 64, (0..800).flat_map(|i| (if i % 100 == 7 { 1e300f64 } else { 0.1 }).to_le_bytes()).collect())), Refused(&["double_huge.wav", "out of range|out-of-range|non-finite", "8"])),
        case("NaN and 3e38 mixed", |c| { let mut s = sine(800, 1); s[3] = f32::NAN; s[9] = 3e38; up_wav(c, "mixed_bad.wav", float32(8000, 1, &s)) }, Refused(&["mixed_bad.wav", "non-finite|out of range|out-of-range"])),
        case("NaN in the second channel only", |c| { let mut s = sine(800, 2); s[801] = f32::NAN; up_wav(c, "nan_right.wav", float32(8000, 2, &s)) }, Refused(&["nan_right.wav", "non-finite"])),
        case("NaN samples (inpaint)", |c| { float_with(8000, 800, f32::NAN, 3).write(&c.dir.join("nan_samples.wav")); inpaint(c, "nan_samples.wav") }, Refused(&["nan_samples.wav", "non-finite"])),
        case("Inf samples (continue)", |c| { float_with(8000, 800, f32::INFINITY, 3).write(&c.dir.join("pos_inf.wav")); cont(c, "pos_inf.wav") }, Refused(&["pos_inf.wav", "non-finite"])),
        case("3e38 samples (encode)", |c| { float_with(8000, 800, 3e38, 3).write(&c.dir.join("huge_samples.wav")); encode(c, "huge_samples.wav") }, Refused(&["huge_samples.wav", "out of range|out-of-range"])),
        case("|x| = 1000 exactly is accepted", |c| up_wav(c, "in.wav", float_with(8000, 800, 1000.0, 2)), ok_8k_x2(1)),
        case("subnormal samples are accepted", |c| { let s: Vec<f32> = (0..800).map(|i| f32::from_bits(1 + i as u32) * if i % 2 == 0 { 1.0 } else { -1.0 }).collect(); up_wav(c, "in.wav", float32(8000, 1, &s)) }, ok_8k_x2(1)),
        case("all-zero samples are accepted", |c| up_wav(c, "in.wav", float32(8000, 1, &[0.0; 800])), ok_8k_x2(1)),
        case("--repair-samples fixes 7 NaN", |c| { float_with(8000, 800, f32::NAN, 7).write(&c.dir.join("in.wav")); repair_args(c, "in.wav") }, Ok(repaired(7))),
        case("--repair-samples clamps 5 x 3e38", |c| { float_with(8000, 800, 3e38, 5).write(&c.dir.join("in.wav")); repair_args(c, "in.wav") }, Ok(repaired(5))),
        case("--repair-samples fixes 6 -Inf", |c| { float_with(8000, 800, f32::NEG_INFINITY, 6).write(&c.dir.join("in.wav")); repair_args(c, "in.wav") }, Ok(repaired(6))),
        // --- broken files
        case("truncated WAV body", |c| { let mut w = pcm16(8000, 1, 800); w.data_len = Some(1600); w.data.truncate(800); up_wav(c, "cut_short.wav", w) }, Refused(&["cut_short.wav", "truncat"])),
        case("huge declared data size, short body", |c| { let mut w = pcm16(8000, 1, 800); w.data_len = Some(0xFFFF_FFF0); up_wav(c, "huge_claim.wav", w) }, Refused(&["huge_claim.wav"])),
        case("RIFF header only", |c| up_bytes(c, "header_only.wav", b"RIFF\x04\x00\x00\x00WAVE"), Refused(&["header_only.wav"])),
        case("no fmt chunk", |c| { let mut w = pcm16(8000, 1, 800); w.omit_fmt = true; up_wav(c, "no_fmt.wav", w) }, Refused(&["no_fmt.wav"])),
        case("no data chunk", |c| { let mut w = pcm16(8000, 1, 800); w.omit_data = true; up_wav(c, "no_data.wav", w) }, Refused(&["no_data.wav"])),
        case("empty data chunk", |c| up_wav(c, "empty_data.wav", WavFile::new(FMT_PCM, 1, 8000, 16, Vec::new())), Refused(&["empty_data.wav"])),
        case("WAV cut inside the fmt chunk", |c| { let b = pcm16(8000, 1, 800).bytes(); up_bytes(c, "cut_fmt.wav", &b[..24]) }, Refused(&["cut_fmt.wav"])),
        case("garbage .wav", |c| up_bytes(c, "garbage.wav", &garbage()), Refused(&["garbage.wav"])),
        case("garbage .flac", |c| up_bytes(c, "garbage.flac", &garbage()), Refused(&["garbage.flac"])),
        case("garbage .mp3", |c| up_bytes(c, "garbage.mp3", &garbage()), Refused(&["garbage.mp3"])),
        case("garbage .ogg", |c| up_bytes(c, "garbage.ogg", &garbage()), Refused(&["garbage.ogg"])),
        case("fLaC magic then garbage", |c| { let mut b = b"fLaC".to_vec(); b.extend(garbage()); up_bytes(c, "fake.flac", &b) }, Refused(&["fake.flac"])),
        case("OggS magic then garbage", |c| { let mut b = b"OggS\x00\x02".to_vec(); b.extend(garbage()); up_bytes(c, "fake.ogg", &b) }, Refused(&["fake.ogg"])),
        case("empty file", |c| up_bytes(c, "empty.wav", b""), Refused(&["empty.wav", "empty"])),
        case("a folder as input", |c| { std::fs::create_dir(c.dir.join("a_folder.wav")).unwrap(); up(c, "a_folder.wav") }, Refused(&["a_folder.wav", "folder"])),
        case("missing file", |c| up(c, "not_there.wav"), Refused(&["not_there.wav", "no such file"])),
        case("garbage (inpaint)", |c| { std::fs::write(c.dir.join("garbage.wav"), garbage()).unwrap(); inpaint(c, "garbage.wav") }, Refused(&["garbage.wav"])),
        case("empty file (continue)", |c| { std::fs::write(c.dir.join("empty.wav"), b"").unwrap(); cont(c, "empty.wav") }, Refused(&["empty.wav", "empty"])),
        case("missing file (encode)", |c| encode(c, "not_there.wav"), Refused(&["not_there.wav", "no such file"])),
        // --- lengths
        case("1-frame file", |c| up_wav(c, "in.wav", pcm16(8000, 1, 1)), Wav { rate: 16_000, channels: 1, frames: 2 }),
        case("1-frame file (inpaint past its end)", |c| { pcm16(8000, 1, 1).write(&c.dir.join("one_frame.wav")); inpaint(c, "one_frame.wav") }, Refused(&["--start/--end", "past the end of the clip"])),
        case("LIST and odd-sized unknown chunks before data are skipped", |c| { let mut w = pcm16(8000, 1, 800); w.extra_chunks.push((*b"LIST", b"INFOINAM\x03\x00\x00\x00abc\x00".to_vec())); w.extra_chunks.push((*b"abcd", b"odd!!".to_vec())); up_wav(c, "in.wav", w) }, ok_8k_x2(1)),
        case("3 h + 1 s at 1000 Hz", |c| { sparse_wav(&c.dir.join("too_long.wav"), 1, 1000, 3 * 3600 * 1000 + 1000); up(c, "too_long.wav") }, Refused(&["too_long.wav", "too long"])),
        case("2^28 + 8 samples (8 ch, 8-bit, 384 kHz)", |c| { sparse_wav(&c.dir.join("too_many.wav"), 8, 384_000, (1 << 28) + 8); up(c, "too_many.wav") }, Refused(&["too_many.wav", "too long"])),
        case("3 h + 1 s (inpaint)", |c| { sparse_wav(&c.dir.join("too_long.wav"), 1, 1000, 3 * 3600 * 1000 + 1000); inpaint(c, "too_long.wav") }, Refused(&["too_long.wav", "too long"])),
    ]
}
