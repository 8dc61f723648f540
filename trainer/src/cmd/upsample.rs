//! `adiff upsample`: a clip at rate r to rate r·K. Without `--model`, and for a folder of kind
//! "BandExtension", through the band-extension model (the shipped one is embedded, see
//! [`super::shipped`]) on the whole clip; through a diffusion upsampler folder otherwise, in
//! overlapping windows of the model's training length, crossfaded.

use super::audio::{at_rate, check_finite_output, from_model, read_input, to_model, write_output};
use super::common::{check_output, InputArgs, SamplingArgs};
use super::{model, run, shipped};
use adiff_core::audio::{
    limits, spectrogram::write_spectrogram_png, AudioClip, WavEncoding, WavSink,
};
use adiff_core::models::bandext::stream::upsample_streaming;
use adiff_core::models::bandext::BandExtension;
use adiff_core::models::AnyModel;
use adiff_core::noise::SeededNoise;
use anyhow::{bail, Context, Result};
use clap::Args;
use std::path::{Path, PathBuf};

/// Options of `adiff upsample`.
#[derive(Debug, Args)]
pub struct UpsampleArgs {
    /// Input audio (WAV, FLAC, MP3, OGG, ...).
    pub input: PathBuf,
    /// Output WAV file.
    #[arg(short, long)]
    pub output: PathBuf,
    /// Upsampling factor K (default: the model's first); the output rate is the input's times K.
    #[arg(long)]
    pub factor: Option<usize>,
    /// Model folder (config.json + model.safetensors); default: the shipped band-extension
    /// upsampler embedded in the binary (models/upsampler).
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// Write the output at this rate instead, 1000 to 384000 Hz.
    #[arg(long)]
    pub out_rate: Option<u32>,
    /// Also write a before/after spectrogram PNG.
    #[arg(long)]
    pub spectrogram: Option<PathBuf>,
    #[command(flatten)]
    pub input_check: InputArgs,
    #[command(flatten)]
    pub sampling: SamplingArgs,
}

/// The rates of an upsampling job: input r, model low rate R/K, model rate R, target r·K.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Plan {
    /// Factor K.
    pub factor: usize,
    /// Rate the model's input must have (R / K).
    pub low_rate: u32,
    /// The model's rate R.
    pub model_rate: u32,
    /// The natural output rate r·K.
    pub target_rate: u32,
}

/// Checks that the model can serve input rate `rate` at `factor` and works out the rates.
pub fn plan(rate: u32, factor: Option<usize>, factors: &[usize], model_rate: u32) -> Result<Plan> {
    let k = factor.unwrap_or(factors[0]);
    if !factors.contains(&k) {
        bail!("this model upsamples by {factors:?}, not by {k}");
    }
    if model_rate % k as u32 != 0 {
        bail!("the model's rate {model_rate} Hz is not divisible by the factor {k}");
    }
    let target = rate as u64 * k as u64;
    if target > model_rate as u64 {
        bail!(
            "input at {rate} Hz upsampled by {k} would be {target} Hz, above the model's {model_rate} Hz: this model cannot serve that rate (use an input at {} Hz or below)",
            model_rate / k as u32
        );
    }
    Ok(Plan {
        factor: k,
        low_rate: model_rate / k as u32,
        model_rate,
        target_rate: target as u32,
    })
}

/// Runs the command.
pub fn run(args: &UpsampleArgs) -> Result<()> {
    check_output(Some(&args.input), &args.output)?;
    super::common::check_out_rate(args.out_rate)?;
    super::common::check_spectrogram(args.spectrogram.as_deref(), Some(&args.input), &args.output)?;
    let input = read_input(&args.input, args.input_check.repair_samples)?;
    let dir = match &args.model {
        None => return run_band_extension(args, &input, &shipped::upsampler()?, shipped::NAME),
        Some(d) if shipped::is_band_extension(d) => {
            let m = BandExtension::load(d)
                .with_context(|| format!("loading model folder {}", d.display()))?;
            return run_band_extension(args, &input, &m, &d.display().to_string());
        }
        Some(d) => d.clone(),
    };
    let device = args.sampling.device()?;
    let (cfg, any) = model::load(&dir, &device)?;
    let AnyModel::Upsampler(m) = any else {
        bail!(
            "model folder {} holds a {:?}, not an upsampler",
            dir.display(),
            cfg.kind
        );
    };
    let plan = plan(
        input.sample_rate(),
        args.factor,
        m.factors(),
        cfg.sample_rate,
    )?;
    let sampling = args.sampling.sampling(&cfg.sampling, cfg.compat)?;
    let low = at_rate(&input, plan.low_rate)?;
    let (x, layout) = to_model(&low, cfg.channels, &device)?;
    let window = (cfg.window_length / plan.factor).max(1);
    let y = run::windowed(
        &x,
        window,
        plan.factor,
        args.sampling.seed,
        "upsampling",
        |piece, noise, on_step| m.sample(piece, Some(plan.factor), &sampling, noise, on_step),
    )
    .context("upsampling")?;
    let out = from_model(&y, layout, plan.model_rate)?;
    check_finite_output(&out, &dir)?;
    let mut out = at_rate(&out, plan.target_rate)?;
    out = exact_length(&out, input.len() * plan.factor)?;
    finish(args, &input, &out)
}

/// Upsamples `input` with band-extension model `m` (named `name` in messages) at its own rate,
/// chunk by chunk with crossfades (`upsample_streaming`), one seeded stream, written to the file
/// as it goes; `--steps`, `--sampler` and `--schedule` do not apply.
fn run_band_extension(
    args: &UpsampleArgs,
    input: &AudioClip,
    m: &BandExtension,
    name: &str,
) -> Result<()> {
    let s = &args.sampling;
    if s.guidance.is_some() {
        bail!(
            "--guidance applies to conditional models only; this command's model takes no guidance"
        );
    }
    // Validates --device (the band-extension model itself runs on the CPU).
    s.device()?;
    let k = args.factor.unwrap_or(m.factors()[0]);
    if !m.factors().contains(&k) {
        bail!("this model upsamples by {:?}, not by {k}", m.factors());
    }
    if s.steps.is_some() || s.sampler.is_some() || s.schedule.is_some() {
        println!("note: {name} is a band-extension model, not a diffusion model: --steps, --sampler and --schedule do not apply");
    }
    println!(
        "upsampling by {k} with {name}: learned high-band envelope + phase-retrieved fill (seed {})",
        s.seed
    );
    let target = input
        .sample_rate()
        .checked_mul(k as u32)
        .filter(|r| *r <= limits::MAX_RATE)
        .with_context(|| {
            format!(
                "input at {} Hz upsampled by {k} is above the supported {} Hz",
                input.sample_rate(),
                limits::MAX_RATE
            )
        })?;
    let (frames, channels) = (input.len() * k, input.num_channels());
    let streamed = args.spectrogram.is_none() && args.out_rate.is_none_or(|r| r == target);
    let max = if streamed {
        limits::max_stream_frames(target, channels, 4)
    } else {
        limits::max_frames(target, channels)
    };
    if frames > max {
        bail!(
            "the output {} would be {:.0} s at {target} Hz x {channels} channels; at most {:.0} s{}",
            args.output.display(),
            frames as f64 / target as f64,
            max as f64 / target as f64,
            if streamed { "" } else { " when --spectrogram or --out-rate keep it in memory" }
        );
    }
    let mut noise = SeededNoise::new(s.seed);
    if streamed {
        return stream_to_file(&args.output, input, m, k, target, &mut noise, name);
    }
    let mut chans = vec![Vec::new(); input.num_channels()];
    upsample_streaming(m, input, k, &mut noise, &mut |block| {
        chans
            .iter_mut()
            .zip(block)
            .for_each(|(c, b)| c.extend_from_slice(b));
        Ok(())
    })
    .context("upsampling")?;
    finish(args, input, &AudioClip::new(target, chans)?)
}

/// Band-extends `input` by `k` chunk by chunk straight into `output` at `target` Hz: memory does
/// not grow with the input's length. A non-finite block stops the run, naming model `name`.
fn stream_to_file(
    output: &Path,
    input: &AudioClip,
    m: &BandExtension,
    k: usize,
    target: u32,
    noise: &mut SeededNoise,
    name: &str,
) -> Result<()> {
    let channels = input.num_channels();
    let mut sink = WavSink::create(output, target, channels, WavEncoding::Float32)?;
    upsample_streaming(m, input, k, noise, &mut |block| {
        if block.iter().any(|c| c.iter().any(|v| !v.is_finite())) {
            return Err(adiff_core::Error::input(
                name,
                "the band extension produced non-finite samples",
            ));
        }
        sink.write(block)
    })
    .context("upsampling")?;
    let frames = sink.frames();
    sink.finish()?;
    println!(
        "wrote {} ({target} Hz, {channels} channels, {:.2} s)",
        output.display(),
        frames as f64 / target as f64
    );
    Ok(())
}

/// Writes the output (and the spectrogram when asked).
fn finish(args: &UpsampleArgs, input: &AudioClip, out: &AudioClip) -> Result<()> {
    let written = write_output(&args.output, out, args.out_rate)?;
    println!(
        "wrote {} ({} Hz, {} channels, {:.2} s)",
        args.output.display(),
        written.sample_rate(),
        written.num_channels(),
        written.duration_secs()
    );
    if let Some(png) = &args.spectrogram {
        write_before_after(png, input, &written)?;
        println!("wrote {} (top: input, bottom: output)", png.display());
    }
    Ok(())
}

/// A before/after spectrogram PNG: `input` brought to `output`'s rate (top), `output` (bottom).
pub fn write_before_after(png: &Path, input: &AudioClip, output: &AudioClip) -> Result<()> {
    let before = at_rate(input, output.sample_rate())?.with_channels(1)?;
    let after = output.with_channels(1)?;
    write_spectrogram_png(png, &[&before.channels()[0], &after.channels()[0]])?;
    Ok(())
}

/// The clip cut or zero-padded to exactly `len` samples (resampling chains can differ by one).
pub fn exact_length(clip: &AudioClip, len: usize) -> Result<AudioClip> {
    let channels = clip
        .channels()
        .iter()
        .map(|c| {
            let mut c = c.clone();
            c.resize(len, 0.0);
            c
        })
        .collect();
    Ok(AudioClip::new(clip.sample_rate(), channels)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plans_follow_the_rates() {
        let p = plan(12_000, Some(4), &[2, 4, 8], 48_000).unwrap();
        assert_eq!(
            p,
            Plan {
                factor: 4,
                low_rate: 12_000,
                model_rate: 48_000,
                target_rate: 48_000
            }
        );
        let p = plan(11_025, Some(4), &[2, 4, 8], 48_000).unwrap();
        assert_eq!((p.low_rate, p.target_rate), (12_000, 44_100));
        assert_eq!(plan(24_000, None, &[2, 4], 48_000).unwrap().factor, 2);
    }

    #[test]
    fn refuses_rates_and_factors_the_model_cannot_serve() {
        let e = plan(44_100, Some(2), &[2, 4], 48_000)
            .unwrap_err()
            .to_string();
        assert!(e.contains("cannot serve"), "{e}");
        let e = plan(12_000, Some(3), &[2, 4], 48_000)
            .unwrap_err()
            .to_string();
        assert!(e.contains("not by 3"), "{e}");
    }
}
