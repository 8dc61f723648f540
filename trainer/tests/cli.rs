//! The `adiff` binary end to end: the demo (shipped model + random-weight UNet timing), `info`, an
//! upsampling run through a small model folder built in the test, and the bad-input cases (one
//! clear line on stderr, non-zero exit).

use adiff_core::audio::{read_audio, write_wav, AudioClip, WavEncoding};
use adiff_core::models::folder::{FolderConfig, ModelFolder, ModelKind};
use adiff_core::models::{
    AudioDiffusionModel, AudioDiffusionModelConfig, AudioDiffusionUpsampler,
    AudioDiffusionUpsamplerConfig,
};
use adiff_core::Compat;
use candle_core::{DType, Device, Tensor};
use candle_nn::{VarBuilder, VarMap};
use std::collections::HashMap;
use std::path::Path;
use std::process::{Command, Output};

fn adiff(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_adiff"))
        .args(args)
        .output()
        .expect("the adiff binary runs")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Refused with exactly one non-empty line on stderr that contains `words`.
fn assert_refused(o: &Output, words: &str) {
    assert!(
        !o.status.success(),
        "expected a failure, stdout: {}",
        String::from_utf8_lossy(&o.stdout)
    );
    let err = stderr(o);
    let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "expected one line, got: {err}");
    assert!(lines[0].contains(words), "`{}` lacks `{words}`", lines[0]);
}

/// A tiny upsampler (factors 2 and 4) at 16 kHz with random weights, saved as a model folder.
fn tiny_upsampler(dir: &Path) {
    let kwargs = serde_json::json!({
        "in_channels": 1, "channels": 8, "patch_factor": 2, "multipliers": [1, 2], "factors": [2],
        "num_blocks": [1], "attentions": [0, 0], "resnet_groups": 4, "factor": [2, 4]
    });
    let cfg = AudioDiffusionUpsamplerConfig::from_kwargs(&kwargs).unwrap();
    let varmap = VarMap::new();
    AudioDiffusionUpsampler::new(&cfg, Compat::Fixed, vb(&varmap)).unwrap();
    save(
        dir,
        ModelKind::AudioDiffusionUpsampler,
        kwargs,
        16_000,
        &varmap,
    );
}

fn vb(varmap: &VarMap) -> VarBuilder<'static> {
    VarBuilder::from_varmap(varmap, DType::F32, &Device::Cpu)
}

/// Saves the weights of `varmap` as a model folder (mono, window 2,048).
fn save(dir: &Path, kind: ModelKind, kwargs: serde_json::Value, rate: u32, varmap: &VarMap) {
    let config = FolderConfig::new(kind, kwargs, rate, 1, 2048);
    ModelFolder::from_varmap(config, varmap)
        .unwrap()
        .save(dir)
        .unwrap();
}

fn sine_clip(rate: u32, channels: usize, secs: f64) -> AudioClip {
    let n = (rate as f64 * secs) as usize;
    let ch = (0..channels)
        .map(|c| {
            (0..n)
                .map(|i| 0.4 * (i as f32 * 0.05 * (c + 1) as f32).sin())
                .collect()
        })
        .collect();
    AudioClip::new(rate, ch).unwrap()
}

#[test]
fn demo_runs_the_shipped_model_and_says_the_unet_weights_are_random() {
    let dir = tempfile::tempdir().unwrap();
    let out_dir = dir.path().join("demo");
    let o = adiff(&[
        "demo",
        "--length",
        "4096",
        "--runs",
        "1",
        "--out",
        out_dir.to_str().unwrap(),
        "--seconds",
        "0.3",
        "--factor",
        "4",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("shipped trained upsampler"), "{out}");
    assert!(out.contains("RANDOM"), "{out}");
    assert!(out.contains("parameters:"), "{out}");
    assert!(out.contains("sinc upsampling:"), "{out}");
    let input = read_audio(out_dir.join("input.wav")).unwrap();
    let output = read_audio(out_dir.join("output.wav")).unwrap();
    assert_eq!((input.sample_rate(), input.len()), (12_000, 3600));
    assert_eq!((output.sample_rate(), output.len()), (48_000, 4 * 3600));
    assert!(output.channels()[0].iter().all(|v| v.is_finite()));
    assert!(out_dir.join("spectrogram.png").is_file());
}

#[test]
fn upsample_through_a_model_folder_gives_the_right_rate_and_length() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("model");
    tiny_upsampler(&model);
    let input = dir.path().join("in.wav");
    let output = dir.path().join("out.wav");
    let png = dir.path().join("out.png");
    // 8 kHz stereo, 0.7 s: several windows of 1024 low-rate samples, both channels as batch.
    write_wav(&input, &sine_clip(8000, 2, 0.7), WavEncoding::Pcm16).unwrap();
    let o = adiff(&[
        "upsample",
        input.to_str().unwrap(),
        "-o",
        output.to_str().unwrap(),
        "--factor",
        "2",
        "--model",
        model.to_str().unwrap(),
        "--steps",
        "3",
        "--seed",
        "7",
        "--spectrogram",
        png.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = read_audio(&output).unwrap();
    assert_eq!(
        (out.sample_rate(), out.num_channels(), out.len()),
        (16_000, 2, 2 * 5600)
    );
    assert!(out.channels().iter().flatten().all(|v| v.is_finite()));
    assert!(png.is_file());
    // The same seed gives the same output.
    let again = dir.path().join("again.wav");
    let o = adiff(&[
        "upsample",
        input.to_str().unwrap(),
        "-o",
        again.to_str().unwrap(),
        "--factor",
        "2",
        "--model",
        model.to_str().unwrap(),
        "--steps",
        "3",
        "--seed",
        "7",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(read_audio(&again).unwrap(), out);
    // --out-rate and a 44.1k-family input (resampled to the model's rates and back).
    let input2 = dir.path().join("in2.wav");
    write_wav(&input2, &sine_clip(4000, 1, 0.5), WavEncoding::Float32).unwrap();
    let o = adiff(&[
        "upsample",
        input2.to_str().unwrap(),
        "-o",
        output.to_str().unwrap(),
        "--factor",
        "4",
        "--model",
        model.to_str().unwrap(),
        "--steps",
        "2",
        "--out-rate",
        "22050",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = read_audio(&output).unwrap();
    assert_eq!((out.sample_rate(), out.len()), (22_050, 11_025));
}

#[test]
fn info_prints_the_config_and_parameter_count() {
    let dir = tempfile::tempdir().unwrap();
    tiny_upsampler(dir.path());
    let o = adiff(&["info", dir.path().to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.contains("AudioDiffusionUpsampler")
            && out.contains("parameters:")
            && out.contains("expected speed"),
        "{out}"
    );
}

#[test]
fn bad_inputs_are_refused_with_one_clear_line() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("model");
    tiny_upsampler(&model);
    let m = model.to_str().unwrap();
    let good = dir.path().join("good.wav");
    write_wav(&good, &sine_clip(8000, 1, 0.2), WavEncoding::Pcm16).unwrap();
    let g = good.to_str().unwrap();
    let out = dir.path().join("out.wav");
    let o_ = out.to_str().unwrap();

    // Unreadable audio.
    let junk = dir.path().join("junk.wav");
    std::fs::write(&junk, "not a wave file, only text ".repeat(50)).unwrap();
    let o = adiff(&[
        "upsample",
        junk.to_str().unwrap(),
        "-o",
        o_,
        "--factor",
        "2",
        "--model",
        m,
    ]);
    assert_refused(&o, "junk.wav");
    // A missing input.
    let o = adiff(&[
        "upsample",
        "/nonexistent/in.flac",
        "-o",
        o_,
        "--factor",
        "2",
        "--model",
        m,
    ]);
    assert_refused(&o, "no such file");
    // A model folder without weights.
    let empty = dir.path().join("noweights");
    std::fs::create_dir(&empty).unwrap();
    std::fs::copy(model.join("config.json"), empty.join("config.json")).unwrap();
    let o = adiff(&[
        "upsample",
        g,
        "-o",
        o_,
        "--factor",
        "2",
        "--model",
        empty.to_str().unwrap(),
    ]);
    assert_refused(&o, "no weights");
    // A rate the model cannot serve: 16 kHz x 2 = 32 kHz > the model's 16 kHz.
    let hi = dir.path().join("hi.wav");
    write_wav(&hi, &sine_clip(16_000, 1, 0.2), WavEncoding::Pcm16).unwrap();
    let o = adiff(&[
        "upsample",
        hi.to_str().unwrap(),
        "-o",
        o_,
        "--factor",
        "2",
        "--model",
        m,
    ]);
    assert_refused(&o, "cannot serve");
    // A factor the model was not made for.
    let o = adiff(&["upsample", g, "-o", o_, "--factor", "3", "--model", m]);
    assert_refused(&o, "not by 3");
    // Output == input (also through another spelling of the same path).
    let o = adiff(&["upsample", g, "-o", g, "--factor", "2", "--model", m]);
    assert_refused(&o, "overwrite the input");
    let other = format!("{}/./good.wav", dir.path().display());
    let o = adiff(&["upsample", g, "-o", &other, "--factor", "2", "--model", m]);
    assert_refused(&o, "overwrite the input");
    // Guidance on a model that takes none.
    let o = adiff(&[
        "upsample",
        g,
        "-o",
        o_,
        "--factor",
        "2",
        "--model",
        m,
        "--guidance",
        "3",
    ]);
    assert_refused(&o, "conditional models only");
    // A CUDA device in a build without CUDA.
    if !cfg!(feature = "cuda") {
        let o = adiff(&[
            "upsample", g, "-o", o_, "--factor", "2", "--model", m, "--device", "cuda",
        ]);
        assert_refused(&o, "no CUDA support");
    }
    // The input is untouched by all of this.
    assert_eq!(read_audio(&good).unwrap().len(), 1600);
    // A generator command on an upsampler folder.
    let o = adiff(&["generate", "-o", o_, "--model", m]);
    assert_refused(&o, "AudioDiffusionUpsampler; generating needs a generator");
}

#[test]
fn convert_turns_a_checkpoint_and_config_into_a_model_folder() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    tiny_upsampler(&src);
    // A reference-style checkpoint: every UNet tensor twice (`unet.*` and `diffusion.net.*`).
    let weights =
        candle_core::safetensors::load(src.join("model.safetensors"), &Device::Cpu).unwrap();
    let mut ckpt: HashMap<String, Tensor> = weights.clone();
    for (k, v) in &weights {
        if let Some(rest) = k.strip_prefix("unet.") {
            ckpt.insert(format!("diffusion.net.{rest}"), v.clone());
        }
    }
    let ckpt_path = dir.path().join("ref.safetensors");
    candle_core::safetensors::save(&ckpt, &ckpt_path).unwrap();
    let out = dir.path().join("converted");
    let config = src.join("config.json");
    let args = [
        "convert",
        ckpt_path.to_str().unwrap(),
        "--config",
        config.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
    ];
    let o = adiff(&args);
    assert!(o.status.success(), "{}", stderr(&o));
    let converted =
        candle_core::safetensors::load(out.join("model.safetensors"), &Device::Cpu).unwrap();
    assert_eq!(converted.len(), weights.len(), "each tensor once");
    for (k, v) in &weights {
        let diff = (v - &converted[k])
            .unwrap()
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        assert_eq!(diff, 0.0, "{k}");
    }
    // The output folder now exists and is not empty: a second conversion is refused.
    assert_refused(&adiff(&args), "not empty");
}

/// A tiny generator (random weights) at 12 kHz, saved as a model folder.
fn tiny_generator(dir: &Path) {
    let kwargs = serde_json::json!({
        "in_channels": 1, "channels": 8, "patch_factor": 2, "multipliers": [1, 2], "factors": [2],
        "num_blocks": [1], "attentions": [0, 0], "resnet_groups": 4
    });
    let cfg = AudioDiffusionModelConfig::from_kwargs(&kwargs).unwrap();
    let varmap = VarMap::new();
    AudioDiffusionModel::new(&cfg, Compat::Fixed, vb(&varmap)).unwrap();
    save(dir, ModelKind::AudioDiffusionModel, kwargs, 12_000, &varmap);
}

#[test]
fn a_generator_converted_with_a_band_extension_stage_generates_at_its_output_rate() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    tiny_generator(&src);
    let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("../models/upsampler");
    let (w, c) = (src.join("model.safetensors"), src.join("config.json"));
    let out = dir.path().join("staged");
    let convert = |out: &Path, factor: &str| {
        adiff(&[
            "convert",
            w.to_str().unwrap(),
            "--config",
            c.to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
            "--band-extension",
            shipped.to_str().unwrap(),
            "--band-extension-factor",
            factor,
        ])
    };
    // A factor the band-extension model does not serve: refused before anything is written.
    let bad = dir.path().join("bad");
    assert_refused(&convert(&bad, "3"), "not 3");
    assert!(!bad.exists());
    let o = convert(&out, "4");
    assert!(o.status.success(), "{}", stderr(&o));
    let cfg = FolderConfig::read(&out.join("config.json")).unwrap();
    assert_eq!(cfg.output_rate(), 48_000);
    let wav = dir.path().join("g.wav");
    let o = adiff(&[
        "generate",
        "--model",
        out.to_str().unwrap(),
        "--seconds",
        "0.5",
        "--steps",
        "3",
        "-o",
        wav.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let clip = read_audio(&wav).unwrap();
    // 0.5 s at the network's 12 kHz (6,000 samples), then x4 by the stage.
    assert_eq!((clip.sample_rate(), clip.len()), (48_000, 24_000));
    // Inpaint and continue: outside the regenerated span (and its 10 ms fades) the 48 kHz input
    // comes back sample for sample, full band; the network's band is only in the new audio.
    let input = dir.path().join("in.wav");
    let x = sine_clip(48_000, 1, 0.25);
    write_wav(&input, &x, WavEncoding::Float32).unwrap();
    let inp = dir.path().join("inpainted.wav");
    let o = adiff(&[
        "inpaint",
        input.to_str().unwrap(),
        "-o",
        inp.to_str().unwrap(),
        "--start",
        "0.1",
        "--end",
        "0.15",
        "--steps",
        "3",
        "--model",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let y = read_audio(&inp).unwrap();
    assert_eq!((y.sample_rate(), y.len()), (48_000, x.len()));
    let (a, b, fade) = (4_800, 7_200, 480);
    let (xs, ys) = (&x.channels()[0], &y.channels()[0]);
    assert_eq!(&ys[..a - fade], &xs[..a - fade]);
    assert_eq!(&ys[b + fade..], &xs[b + fade..]);
    assert!(ys[a..b].iter().zip(&xs[a..b]).any(|(p, q)| p != q));
    let cont = dir.path().join("continued.wav");
    let o = adiff(&[
        "continue",
        input.to_str().unwrap(),
        "-o",
        cont.to_str().unwrap(),
        "--spans",
        "1",
        "--steps",
        "3",
        "--model",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let y = read_audio(&cont).unwrap();
    // One span of half the 2,048-sample window at 12 kHz is 4,096 samples at 48 kHz.
    assert_eq!((y.sample_rate(), y.len()), (48_000, x.len() + 4_096));
    assert_eq!(&y.channels()[0][..x.len() - fade], &xs[..x.len() - fade]);
    // Without its sub-folder the folder is refused with the missing path named.
    std::fs::remove_dir_all(out.join("band_extension")).unwrap();
    let o = adiff(&[
        "generate",
        "--model",
        out.to_str().unwrap(),
        "-o",
        wav.to_str().unwrap(),
    ]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("band_extension"), "{}", stderr(&o));
}
