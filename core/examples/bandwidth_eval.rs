//! Bandwidth-aware upsampling on held-out audio: each test clip (music and real recordings of a
//! dataset built by `data/make.sh` or `../shared/data/make_dataset.sh`, 48 kHz) is band-limited at
//! a cut-off three ways (an exact brick wall; an MP3-style shelf, the band above 35 dB down; the
//! brick wall plus a noise floor 70 dB below the clip's RMS), then restored at its own rate by the
//! shipped upsampler with the cut-off measured (`UpsampleTarget::Auto`, what `adiff upsample IN -o
//! OUT` does) and given (`--bandwidth`). Printed: the detected cut-offs, and the log-spectral
//! distance to the original above the cut-off (metrics of `core/src/audio/metrics.rs`) of the
//! band-limited input, of sinc + noise fill (the strongest free baseline) and of the upsampler.
//!
//! `cargo run --release -p adiff-core --example bandwidth_eval -- DATA_DIR [CUTOFF_HZ] [MAX_CLIPS]`

use adiff_core::audio::read_audio;
use adiff_core::audio::AudioClip;
use adiff_core::eval::baselines::noise_fill;
use adiff_core::eval::metrics::signal_metrics;
use adiff_core::models::bandext::sinc_down;
use adiff_core::models::bandext::synth::brickwall_highpass;
use adiff_core::render::{shipped, RenderOptions, UpsampleTarget};
use adiff_core::SeededNoise;
use std::ops::ControlFlow;
use std::path::PathBuf;

type Res<T> = Result<T, Box<dyn std::error::Error>>;

fn main() -> Res<()> {
    let args: Vec<String> = std::env::args().collect();
    let dir = PathBuf::from(
        args.get(1)
            .ok_or("usage: bandwidth_eval DATA_DIR [CUTOFF_HZ] [MAX_CLIPS]")?,
    );
    let cutoff: f64 = args.get(2).map_or(Ok(6000.0), |s| s.parse())?;
    let max: usize = args.get(3).map_or(Ok(24), |s| s.parse())?;
    let manifest = std::fs::read_to_string(dir.join("manifest.tsv"))?;
    let rate = 48_000u32;
    // The metrics' factor: bins at and above rate / (2 K) = the cut-off.
    let k = (rate as f64 / (2.0 * cutoff)).round() as usize;
    let model = shipped::upsampler()?;
    let mut rows = Vec::new();
    for line in manifest.lines().skip(1) {
        let f: Vec<&str> = line.split('\t').collect();
        if f.len() < 7 || f[1] != "test" || !(f[2] == "music" || f[2] == "real") {
            continue;
        }
        if f[5].parse::<u32>().unwrap_or(0) < 44_100 || f[6] != "48000" {
            continue;
        }
        if rows.len() / 3 >= max {
            break;
        }
        let clip = read_audio(dir.join(f[0]))?.with_channels(1)?;
        let x = clip.channels()[0].clone();
        let hp = brickwall_highpass(&x, cutoff / (rate as f64 / 2.0))?;
        let wall: Vec<f32> = x.iter().zip(&hp).map(|(a, h)| a - h).collect();
        let shelf: Vec<f32> = wall
            .iter()
            .zip(&hp)
            .map(|(l, h)| l + h * 10f32.powf(-35.0 / 20.0))
            .collect();
        let rms = (x.iter().map(|v| f64::from(*v).powi(2)).sum::<f64>() / x.len() as f64).sqrt();
        let mut white = SeededNoise::new(99);
        let floor_noise =
            adiff_core::NoiseSource::randn(&mut white, &[x.len()], &candle_core::Device::Cpu)?
                .to_vec1::<f32>()?;
        let floor: Vec<f32> = wall
            .iter()
            .zip(&floor_noise)
            .map(|(l, n)| l + n * (rms * 10f64.powf(-70.0 / 20.0)) as f32)
            .collect();
        let mut row = vec![f[0].to_string()];
        for (name, input) in [("wall", &wall), ("shelf", &shelf), ("floor", &floor)] {
            let clip = AudioClip::mono(rate, input.clone())?;
            let opts = RenderOptions::seeded(1);
            let (auto, plan) = model.upsample(&clip, UpsampleTarget::Auto, &opts, &mut |_| {
                ControlFlow::Continue(())
            })?;
            let (given, _) =
                model.upsample(&clip, UpsampleTarget::Bandwidth(cutoff), &opts, &mut |_| {
                    ControlFlow::Continue(())
                })?;
            let nf = noise_fill(&sinc_down(input, k)?, k, &mut SeededNoise::new(1))?;
            let m = |y: &[f32]| {
                let mut y = y.to_vec();
                y.resize(x.len(), 0.0);
                signal_metrics(&x, &y, k).map(|m| m.lsd_hf)
            };
            row.push(format!(
                "{name}: detected {:>6.0} Hz | LSD>fc input {:.3} noise-fill {:.3} auto {:.3} given {:.3}",
                plan.cutoff_hz.unwrap_or(f64::NAN),
                m(input)?,
                m(&nf)?,
                m(&auto.channels()[0])?,
                m(&given.channels()[0])?
            ));
            rows.push((
                name,
                plan.cutoff_hz.unwrap_or(f64::NAN),
                m(input)?,
                m(&nf)?,
                m(&auto.channels()[0])?,
                m(&given.channels()[0])?,
            ));
        }
        println!("{}", row.join("\n    "));
    }
    println!(
        "\nmeans over {} clips (cut-off {cutoff} Hz, LSD above it, decades):",
        rows.len() / 3
    );
    println!("| band limit | detected cut-off (mean, min..max Hz) | input | sinc + noise fill | adiff upsample (measured) | adiff upsample --bandwidth |");
    println!("|---|---|---|---|---|---|");
    for name in ["wall", "shelf", "floor"] {
        let r: Vec<_> = rows.iter().filter(|r| r.0 == name).collect();
        let n = r.len().max(1) as f64;
        let mean = |i: usize| r.iter().map(|r| [r.1, r.2, r.3, r.4, r.5][i]).sum::<f64>() / n;
        let (lo, hi) = r
            .iter()
            .fold((f64::MAX, f64::MIN), |(a, b), r| (a.min(r.1), b.max(r.1)));
        println!(
            "| {name} | {:.0} ({lo:.0}..{hi:.0}) | {:.3} | {:.3} | {:.3} | {:.3} |",
            mean(0),
            mean(1),
            mean(2),
            mean(3),
            mean(4)
        );
    }
    Ok(())
}
