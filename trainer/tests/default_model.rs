//! `adiff upsample` with the shipped band-extension upsampler: embedded default (no `--model`),
//! the same model from its folder `models/upsampler`, rates, exact lengths, and what it adds above
//! the input's Nyquist frequency compared with the reference's plain sinc `upsample`.

use adiff_core::audio::stft::power_spectrogram;
use adiff_core::audio::{read_audio, upsample, write_wav, AudioClip, WavEncoding};
use candle_core::{Device, Tensor};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn adiff(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_adiff"))
        .args(args)
        .output()
        .expect("the adiff binary runs")
}

fn shipped_folder() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../models/upsampler")
}

/// A band-limited "instrument" at `rate`: harmonics of 220 Hz up to 0.45 `rate`, 1/h amplitudes,
/// plucked every 0.25 s.
fn harmonic_clip(rate: u32, channels: usize, secs: f64) -> AudioClip {
    let n = (rate as f64 * secs) as usize;
    let tau = std::f64::consts::TAU;
    let ch = (0..channels)
        .map(|c| {
            let f0 = 220.0 * (1.0 + 0.5 * c as f64);
            (0..n)
                .map(|i| {
                    let t = i as f64 / rate as f64;
                    let tn = t % 0.25;
                    let mut v = 0.0;
                    let mut h = 1.0;
                    while f0 * h < 0.45 * rate as f64 {
                        v += (tau * f0 * h * t).sin() * (-tn * (4.0 + h)).exp() / h;
                        h += 1.0;
                    }
                    (0.4 * v) as f32
                })
                .collect()
        })
        .collect();
    AudioClip::new(rate, ch).unwrap()
}

/// Mean power per STFT bin in `bins` (n_fft 2048, hop 512).
fn band_power(x: &[f32], bins: std::ops::Range<usize>) -> f64 {
    let spec = power_spectrogram(x, 2048, 512).unwrap();
    let width = bins.len() as f64;
    spec.iter()
        .map(|f| f[bins.clone()].iter().sum::<f64>() / width)
        .sum::<f64>()
        / spec.len() as f64
}

fn sinc_up(x: &[f32], k: usize) -> Vec<f32> {
    let t = Tensor::from_vec(x.to_vec(), (1, 1, x.len()), &Device::Cpu).unwrap();
    upsample(&t, k)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap()
}

fn run_ok(args: &[&str]) -> String {
    let o = adiff(args);
    assert!(
        o.status.success(),
        "adiff {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn default_upsample_uses_the_shipped_model_and_fills_above_the_input_nyquist() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.wav");
    let output = dir.path().join("out.wav");
    let clip = harmonic_clip(12_000, 1, 1.5);
    write_wav(&input, &clip, WavEncoding::Float32).unwrap();
    let (i, o) = (input.to_str().unwrap(), output.to_str().unwrap());
    let said = run_ok(&["upsample", i, "-o", o, "--factor", "4", "--seed", "3"]);
    assert!(said.contains("shipped upsampler"), "{said}");
    let out = read_audio(&output).unwrap();
    assert_eq!(
        (out.sample_rate(), out.num_channels(), out.len()),
        (48_000, 1, 4 * clip.len())
    );
    let y = &out.channels()[0];
    assert!(y.iter().all(|v| v.is_finite()));
    let sinc = sinc_up(&clip.channels()[0], 4);
    assert_eq!(sinc.len(), y.len());
    // Above the input's Nyquist frequency (6 kHz = bin 256 of 1025; from 7 kHz, past sinc's
    // transition band) plain sinc leaves next to nothing; the model fills the band with a
    // predicted envelope.
    let (hf_model, hf_sinc) = (band_power(y, 300..1025), band_power(&sinc, 300..1025));
    eprintln!("high band power: model {hf_model:e}, sinc {hf_sinc:e}");
    assert!(
        hf_model > 30.0 * hf_sinc && hf_model > 0.0,
        "high band: model {hf_model:e}, sinc {hf_sinc:e}"
    );
    // Well below it the model keeps sinc's known band (within 5 % in power).
    let (lf_model, lf_sinc) = (band_power(y, 2..200), band_power(&sinc, 2..200));
    assert!(
        (lf_model / lf_sinc - 1.0).abs() < 0.05,
        "low band: model {lf_model:e}, sinc {lf_sinc:e}"
    );
}

#[test]
fn the_shipped_folder_gives_the_default_output_and_rates_stay_exact() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.wav");
    // Stereo, 44.1 kHz family: 11025 Hz x 4 -> 44100 Hz, 0.77 s (not a multiple of any hop).
    let clip = harmonic_clip(11_025, 2, 0.77);
    write_wav(&input, &clip, WavEncoding::Pcm16).unwrap();
    let i = input.to_str().unwrap();
    let folder = shipped_folder();
    let m = folder.to_str().unwrap();
    let out = |name: &str, extra: &[&str]| {
        let p = dir.path().join(name);
        let mut args = vec!["upsample", i, "-o", p.to_str().unwrap()];
        args.extend_from_slice(extra);
        run_ok(&args);
        read_audio(&p).unwrap()
    };
    let default = out("default.wav", &["--factor", "4", "--seed", "5"]);
    let from_folder = out(
        "folder.wav",
        &["--factor", "4", "--seed", "5", "--model", m],
    );
    assert_eq!(
        (default.sample_rate(), default.num_channels(), default.len()),
        (44_100, 2, 4 * clip.len())
    );
    assert_eq!(default, from_folder);
    // Another seed draws another fill; --steps is accepted and has no effect on this model.
    let other = out(
        "other.wav",
        &["--factor", "4", "--seed", "6", "--steps", "9"],
    );
    assert_eq!(other.len(), default.len());
    assert_ne!(other, default);
    // Factors 2 and 8 too.
    let x2 = out("x2.wav", &["--factor", "2"]);
    assert_eq!((x2.sample_rate(), x2.len()), (22_050, 2 * clip.len()));
    // Without --factor the output stays at the input's own rate and length (the band above the
    // measured cut-off restored).
    let same = out("same.wav", &["--seed", "5"]);
    assert_eq!(
        (same.sample_rate(), same.num_channels(), same.len()),
        (11_025, 2, clip.len())
    );
    let x8 = out("x8.wav", &["--factor", "8", "--model", m]);
    assert_eq!((x8.sample_rate(), x8.len()), (88_200, 8 * clip.len()));
}

#[test]
fn the_shipped_model_refuses_what_it_cannot_do_in_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.wav");
    write_wav(&input, &harmonic_clip(8000, 1, 0.3), WavEncoding::Pcm16).unwrap();
    let i = input.to_str().unwrap();
    let o_ = dir.path().join("o.wav");
    let o_ = o_.to_str().unwrap();
    let folder = shipped_folder();
    let m = folder.to_str().unwrap();
    for (args, words) in [
        (vec!["upsample", i, "-o", o_, "--factor", "3"], "not by 3"),
        (
            vec!["upsample", i, "-o", o_, "--factor", "3", "--model", m],
            "not by 3",
        ),
        (
            vec!["generate", "-o", o_, "--model", m],
            "BandExtension; generating needs a generator",
        ),
        (
            vec!["upsample", i, "-o", o_, "--guidance", "2"],
            "conditional models only",
        ),
    ] {
        let o = adiff(&args);
        assert!(!o.status.success());
        let err = String::from_utf8_lossy(&o.stderr);
        let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
        assert_eq!(lines.len(), 1, "{err}");
        assert!(lines[0].contains(words), "{err}");
    }
    // `adiff info` describes the folder: its kind and the factors it serves.
    let said = run_ok(&["info", m]);
    assert!(
        said.contains("BandExtension") && said.contains("[2, 4, 8]"),
        "{said}"
    );
}
