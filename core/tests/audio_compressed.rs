//! Reading lossy formats through symphonia: OGG Vorbis and MP3 files made by libsndfile
//! (`core/tests/data/make_compressed_audio.py`) decode to the sine they encode.

use adiff_core::audio::read_audio;
use std::path::Path;

/// Amplitude of the `freq` Hz component of `x` (rate `rate`), by correlation over whole periods.
fn amplitude_at(x: &[f32], rate: f64, freq: f64) -> f64 {
    let (mut s, mut c) = (0f64, 0f64);
    for (i, v) in x.iter().enumerate() {
        let ph = 2.0 * std::f64::consts::PI * freq * i as f64 / rate;
        s += *v as f64 * ph.sin();
        c += *v as f64 * ph.cos();
    }
    2.0 * (s * s + c * c).sqrt() / x.len() as f64
}

fn check_sine_file(name: &str) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name);
    let clip = read_audio(&path).unwrap_or_else(|e| panic!("{name}: {e}"));
    assert_eq!(clip.sample_rate(), 22_050, "{name}: rate");
    assert_eq!(clip.num_channels(), 2, "{name}: channels");
    // Encoders add priming/padding frames; the clip is 0.5 s (11,025 frames) give or take a frame block.
    let len = clip.len();
    assert!((10_000..=13_500).contains(&len), "{name}: {len} frames");
    // Away from the edges, the 440 Hz amplitude is 0.5 on the left and 0.25 on the right, and
    // almost nothing else is there (lossy codecs keep a pure tone within a few percent).
    let mid = |ch: &[f32]| ch[2000..8000].to_vec();
    for (c, want) in [(0usize, 0.5f64), (1, 0.25)] {
        let x = mid(&clip.channels()[c]);
        let a = amplitude_at(&x, 22_050.0, 440.0);
        assert!(
            (a - want).abs() < 0.05 * want,
            "{name} channel {c}: 440 Hz amplitude {a}, want {want}"
        );
        let rms = (x.iter().map(|v| (*v as f64).powi(2)).sum::<f64>() / x.len() as f64).sqrt();
        let tone_rms = want / 2f64.sqrt();
        assert!(
            (rms - tone_rms).abs() < 0.05 * tone_rms,
            "{name} channel {c}: rms {rms}, tone {tone_rms}"
        );
    }
}

#[test]
fn ogg_vorbis_decodes_to_its_sine() {
    check_sine_file("sine440.ogg");
}

#[test]
fn mp3_decodes_to_its_sine() {
    check_sine_file("sine440.mp3");
}
