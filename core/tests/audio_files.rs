//! Reading and writing audio files through `adiff_core::audio`: round trips of WAV (float and
//! 16-bit) and FLAC, and the errors for missing, unsupported, corrupt and truncated files.

use adiff_core::audio::{read_audio, write_wav, AudioClip, WavEncoding};
use adiff_core::Error;
use std::path::Path;

fn test_clip(rate: u32, channels: usize, len: usize) -> AudioClip {
    let ch = (0..channels)
        .map(|c| {
            (0..len)
                .map(|i| 0.5 * ((i as f32) * 0.01 * (c + 1) as f32).sin())
                .collect()
        })
        .collect();
    AudioClip::new(rate, ch).unwrap()
}

fn assert_audio_error(r: adiff_core::Result<AudioClip>, path: &Path, words: &str) {
    match r {
        Err(Error::Audio { path: p, reason }) => {
            assert_eq!(p, path);
            assert!(reason.contains(words), "reason `{reason}` lacks `{words}`");
        }
        other => panic!(
            "expected an audio error naming {}, got {other:?}",
            path.display()
        ),
    }
}

#[test]
fn float_wav_round_trips_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.wav");
    let clip = test_clip(44_100, 2, 5000);
    write_wav(&path, &clip, WavEncoding::Float32).unwrap();
    assert_eq!(read_audio(&path).unwrap(), clip);
}

#[test]
fn pcm16_wav_round_trips_within_a_quantisation_step() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.wav");
    let clip = test_clip(22_050, 1, 3000);
    write_wav(&path, &clip, WavEncoding::Pcm16).unwrap();
    let back = read_audio(&path).unwrap();
    assert_eq!(
        (back.sample_rate(), back.num_channels(), back.len()),
        (22_050, 1, 3000)
    );
    let worst = clip.channels()[0]
        .iter()
        .zip(&back.channels()[0])
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    assert!(worst <= 1.0 / 32767.0, "{worst}");
}

#[test]
fn flac_is_decoded() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.flac");
    let samples: Vec<Vec<i16>> = vec![
        (0..2500).map(|i| (i * 7 % 2000 - 1000) as i16).collect(),
        (0..2500).map(|i| -(i as i16)).collect(),
    ];
    std::fs::write(&path, flac::encode(48_000, &samples, 1024)).unwrap();
    let clip = read_audio(&path).unwrap();
    assert_eq!(
        (clip.sample_rate(), clip.num_channels(), clip.len()),
        (48_000, 2, 2500)
    );
    for (c, ch) in samples.iter().enumerate() {
        for (i, v) in ch.iter().enumerate() {
            assert_eq!(
                clip.channels()[c][i],
                *v as f32 / 32768.0,
                "channel {c} sample {i}"
            );
        }
    }
}

#[test]
fn a_missing_file_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nope.wav");
    assert_audio_error(read_audio(&path), &path, "no such file");
}

#[test]
fn a_text_file_is_unsupported() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notes.mp3");
    std::fs::write(
        &path,
        "this is not audio at all, just some words in a file\n".repeat(40),
    )
    .unwrap();
    assert_audio_error(read_audio(&path), &path, "unsupported");
}

#[test]
fn a_wav_with_a_garbage_header_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.wav");
    write_wav(&path, &test_clip(8000, 1, 1000), WavEncoding::Pcm16).unwrap();
    let mut bytes = std::fs::read(&path).unwrap();
    for b in &mut bytes[8..40] {
        *b = 0xA5;
    }
    std::fs::write(&path, bytes).unwrap();
    assert_audio_error(read_audio(&path), &path, "unsupported or unrecognised");
}

#[test]
fn a_truncated_wav_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cut.wav");
    write_wav(&path, &test_clip(8000, 2, 4000), WavEncoding::Pcm16).unwrap();
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..bytes.len() - 3000]).unwrap();
    assert_audio_error(read_audio(&path), &path, "truncated");
}

#[test]
fn a_flac_with_a_corrupt_frame_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.flac");
    let samples = vec![(0..3000)
        .map(|i| (i % 300) as i16 * 50)
        .collect::<Vec<i16>>()];
    let mut bytes = flac::encode(16_000, &samples, 1024);
    let n = bytes.len();
    bytes[n - 700] ^= 0xFF; // inside the last frame's samples: its CRC no longer matches
    std::fs::write(&path, bytes).unwrap();
    assert_audio_error(read_audio(&path), &path, "corrupt");
}

#[test]
fn an_empty_file_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("empty.wav");
    std::fs::write(&path, b"").unwrap();
    assert_audio_error(read_audio(&path), &path, "empty");
}

#[test]
fn writing_into_a_missing_folder_names_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("no/such/dir/out.wav");
    let r = write_wav(&path, &test_clip(8000, 1, 10), WavEncoding::Float32);
    assert!(matches!(r, Err(Error::Audio { path: p, .. }) if p == path));
}

/// A minimal FLAC encoder for tests: 16-bit samples in VERBATIM subframes, fixed block size.
mod flac {
    fn crc8(data: &[u8]) -> u8 {
        data.iter().fold(0u8, |mut crc, b| {
            crc ^= b;
            for _ in 0..8 {
                crc = if crc & 0x80 != 0 {
                    (crc << 1) ^ 0x07
                } else {
                    crc << 1
                };
            }
            crc
        })
    }

    fn crc16(data: &[u8]) -> u16 {
        data.iter().fold(0u16, |mut crc, b| {
            crc ^= (*b as u16) << 8;
            for _ in 0..8 {
                crc = if crc & 0x8000 != 0 {
                    (crc << 1) ^ 0x8005
                } else {
                    crc << 1
                };
            }
            crc
        })
    }

    pub fn encode(rate: u32, channels: &[Vec<i16>], block: usize) -> Vec<u8> {
        let (nch, total) = (channels.len(), channels[0].len());
        let mut out = b"fLaC".to_vec();
        out.extend_from_slice(&[0x80, 0, 0, 34]); // last metadata block, STREAMINFO, 34 bytes
        out.extend_from_slice(&(block as u16).to_be_bytes());
        out.extend_from_slice(&(block as u16).to_be_bytes());
        out.extend_from_slice(&[0; 6]); // frame sizes unknown
                                        // 20 bits rate, 3 bits channels-1, 5 bits bps-1, 36 bits total samples.
        let packed: u64 =
            ((rate as u64) << 44) | (((nch - 1) as u64) << 41) | (15u64 << 36) | total as u64;
        out.extend_from_slice(&packed.to_be_bytes());
        out.extend_from_slice(&[0; 16]); // MD5 unknown
        for (f, start) in (0..total).step_by(block).enumerate() {
            let n = block.min(total - start);
            assert!(f < 128, "test encoder codes frame numbers in one byte");
            let mut fr = vec![0xFF, 0xF8, 0x70, (((nch - 1) as u8) << 4) | 0x08, f as u8];
            fr.extend_from_slice(&((n - 1) as u16).to_be_bytes());
            fr.push(crc8(&fr));
            for ch in channels {
                fr.push(0x02); // VERBATIM, no wasted bits
                for v in &ch[start..start + n] {
                    fr.extend_from_slice(&v.to_be_bytes());
                }
            }
            let crc = crc16(&fr);
            fr.extend_from_slice(&crc.to_be_bytes());
            out.extend_from_slice(&fr);
        }
        out
    }
}
