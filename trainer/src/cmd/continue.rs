//! `adiff continue`: extend a clip span by span (`SpanBySpanComposer`): each span inpaints the
//! second half of a window whose first half is the music so far.

use super::audio::{at_rate, from_model, read_input, seam, to_model, write_output};
use super::common::{check_output, model_dir, step_bar, InputArgs, SamplingArgs};
use super::model;
use super::upsample::exact_length;
use adiff_core::audio::limits;
use adiff_core::audio::splice::restore_known;
use adiff_core::models::bandext::stage::Stage;
use adiff_core::SeededNoise;
use anyhow::{bail, Context, Result};
use candle_core::Tensor;
use clap::Args;
use std::path::PathBuf;

/// Most spans one `continue` may add.
pub const MAX_SPANS: usize = 1000;

/// Options of `adiff continue`.
#[derive(Debug, Args)]
pub struct ContinueArgs {
    /// Input audio (WAV, FLAC, MP3, OGG, ...).
    pub input: PathBuf,
    /// Output WAV file (the input followed by the continuation).
    #[arg(short, long)]
    pub output: PathBuf,
    /// Number of new spans, each half a model window long: 1 to 1000 (and at most 3 h in all).
    #[arg(long, default_value_t = 2)]
    pub spans: usize,
    /// Model folder (config.json + model.safetensors).
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// Write the output at this rate instead, 1000 to 384000 Hz (default: the input's rate).
    #[arg(long)]
    pub out_rate: Option<u32>,
    #[command(flatten)]
    pub input_check: InputArgs,
    #[command(flatten)]
    pub sampling: SamplingArgs,
}

/// Runs the command.
pub fn run(args: &ContinueArgs) -> Result<()> {
    check_output(Some(&args.input), &args.output)?;
    super::common::check_out_rate(args.out_rate)?;
    if !(1..=MAX_SPANS).contains(&args.spans) {
        bail!("--spans must be 1 to {MAX_SPANS}, got {}", args.spans);
    }
    let input = read_input(&args.input, args.input_check.repair_samples)?;
    let dir = model_dir(args.model.as_ref())?;
    let device = args.sampling.device()?;
    let (cfg, m) = model::load_generator(&dir, &device, "continuing")?;
    let stage = Stage::load(&dir, &cfg)
        .with_context(|| format!("loading the band-extension stage of {}", dir.display()))?;
    let clip = at_rate(&input, cfg.sample_rate)?;
    let window = cfg.window_length;
    let total = clip.len() as f64 + (args.spans * (window / 2)) as f64;
    if total / cfg.sample_rate as f64 > limits::MAX_SECONDS {
        bail!(
            "--spans {} would make {:.0} s of audio, more than the {:.0} s limit",
            args.spans,
            total / cfg.sample_rate as f64,
            limits::MAX_SECONDS
        );
    }
    let (x, layout) = to_model(&clip, cfg.channels, &device)?;
    let sampling = args.sampling.sampling(&cfg.sampling, cfg.compat)?;
    let mut noise = SeededNoise::new(args.sampling.seed);
    let bar = step_bar((sampling.num_steps * args.spans) as u64, "continuing");
    let new = m
        .continuation(
            &x,
            window,
            args.spans * (window / 2),
            &sampling,
            &mut noise,
            &mut super::common::on_step(&bar),
        )
        .context("continuing")?;
    bar.finish_and_clear();
    let y = Tensor::cat(&[&x, &new], 2)?;
    let mut out = from_model(&y, layout, cfg.sample_rate)?;
    super::audio::check_finite_output(&out, &dir)?;
    if let Some(stage) = &stage {
        out = stage.apply(&out, &mut noise).context("band-extending")?;
    }
    let mut out = at_rate(&out, input.sample_rate())?;
    if stage.is_some() {
        // The input itself, full band, then the continuation.
        let n = input.len();
        let len = out.len().max(n);
        out = restore_known(
            &input,
            &exact_length(&out, len)?,
            n,
            n,
            seam(input.sample_rate()),
        )?;
    }
    let written = write_output(&args.output, &out, args.out_rate)?;
    println!(
        "wrote {} ({} Hz, {:.2} s)",
        args.output.display(),
        written.sample_rate(),
        written.duration_secs()
    );
    Ok(())
}
