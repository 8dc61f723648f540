//! Generation, inpainting, continuation and variation.

use super::layout::{check_finite, exact_length, from_model, seam, splice, to_model};
use super::{Inner, Model, OnProgress, RenderOptions};
use crate::audio::resample_clip;
use crate::audio::splice::restore_mask;
use crate::audio::{limits, AudioClip};
use crate::models::bandext::stage::Stage;
use crate::models::folder::FolderConfig;
use crate::models::{AnyModel, AudioDiffusionModel};
use crate::pipeline::sample_in_windows;
use crate::sampler::StepInfo;
use crate::{Error, NoiseSource, Result, SeededNoise};
use candle_core::Tensor;
use std::ops::ControlFlow;

/// Longest generation, in model windows: the whole clip goes through the network at once, and its
/// memory grows with the length (the default UNet needs about 3.5 KB a sample).
pub const MAX_GENERATE_WINDOWS: usize = 8;
/// Longest stretch one inpainting regenerates, in model windows (from the first to the last
/// regenerated sample).
pub const MAX_SPAN_WINDOWS: usize = 8;
/// Most RePaint resamples per step (each is a full network call).
pub const MAX_RESAMPLES: usize = 100;
/// Most spans one continuation may add.
pub const MAX_SPANS: usize = 1000;

/// What inpainting keeps.
#[derive(Debug, Clone, PartialEq)]
pub enum Keep {
    /// Everything but the span `[start, end)`, in seconds into the clip.
    Outside {
        /// Start of the span to regenerate (s).
        start: f64,
        /// End of the span to regenerate (s).
        end: f64,
    },
    /// One entry per sample of the clip: `true` keeps it, `false` regenerates it.
    Mask(Vec<bool>),
}

/// How much a continuation adds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Extend {
    /// This many spans, each half a model window.
    Spans(usize),
    /// This many seconds (rounded up to whole spans for the network, cut back after).
    Seconds(f64),
}

/// The pieces of a diffusion model a generator operation needs.
struct Generator<'a> {
    config: &'a FolderConfig,
    model: &'a AudioDiffusionModel,
    stage: Option<&'a Stage>,
}

/// A per-step callback reporting `step / total` to `on`.
fn steps<'a, 'b: 'a>(
    on: &'a mut (dyn FnMut(f32) -> ControlFlow<()> + 'b),
) -> impl FnMut(&StepInfo) -> ControlFlow<()> + use<'a, 'b> {
    move |s: &StepInfo| on(s.step as f32 / s.total.max(1) as f32)
}

impl Model {
    fn generator(&self, what: &str) -> Result<Generator<'_>> {
        match &self.inner {
            Inner::Diffusion {
                config,
                model: AnyModel::Generator(model),
                stage,
            } => Ok(Generator {
                config,
                model,
                stage: stage.as_ref(),
            }),
            _ => Err(self.cannot(what, "a generator (AudioDiffusionModel)")),
        }
    }

    /// `seconds` of new audio (default: one model window), at [`Model::output_rate`].
    pub fn generate(
        &self,
        seconds: Option<f64>,
        opts: &RenderOptions,
        on: OnProgress<'_>,
    ) -> Result<AudioClip> {
        let g = self.generator("generating")?;
        opts.refuse_guidance()?;
        let cfg = g.config;
        let rate = cfg.sample_rate;
        let window_secs = cfg.window_length as f64 / rate as f64;
        let max_seconds = window_secs * MAX_GENERATE_WINDOWS as f64;
        let want = match seconds {
            Some(s) if s.is_finite() && s > 0.0 && s <= max_seconds + 1e-9 => {
                (s * rate as f64).round() as usize
            }
            Some(s) => {
                return Err(Error::input(
                    "length",
                    format!("must be above 0 and at most {max_seconds:.2} s for this model ({MAX_GENERATE_WINDOWS} windows of {window_secs:.2} s, generated at once; continuing makes longer audio), got {s}"),
                ))
            }
            None => cfg.window_length,
        };
        if want == 0 {
            return Err(Error::input(
                "length",
                format!("shorter than one sample at {rate} Hz"),
            ));
        }
        let unit = g.model.config().unet.total_factor();
        let len = want.div_ceil(unit) * unit;
        let sampling = opts.sampling(&cfg.sampling, cfg.compat)?;
        let mut noise = SeededNoise::new(opts.seed);
        let start = noise.randn(&[1, cfg.channels, len], &self.device)?;
        let y = g
            .model
            .sample(&start, &sampling, &mut noise, &mut steps(on))?;
        let clip = from_model(&y.narrow(2, 0, want)?, super::Layout::Native, rate)?;
        check_finite(&clip, &self.name)?;
        match g.stage {
            // The fill continues the same seeded stream.
            Some(stage) => stage.apply(&clip, &mut noise),
            None => Ok(clip),
        }
    }

    /// `clip` with the samples `keep` does not keep regenerated (RePaint through the model's
    /// inpainting sampler, `opts.resamples` per step), at the clip's rate and channel count (a
    /// mono clip through a stereo model comes back stereo). Only the regenerated stretch and one
    /// model window on each side go through the network; the rest is the input itself, with a
    /// 10 ms crossfade at each seam.
    pub fn inpaint(
        &self,
        clip: &AudioClip,
        keep: &Keep,
        opts: &RenderOptions,
        on: OnProgress<'_>,
    ) -> Result<AudioClip> {
        let g = self.generator("inpainting")?;
        opts.refuse_guidance()?;
        let cfg = g.config;
        let sampler = opts.inpainting_sampler(&cfg.sampling, cfg.compat, "inpainting")?;
        let resamples = opts.resamples()?;
        let r_in = clip.sample_rate();
        let keep = keep_mask(keep, clip)?;
        let Some(a_in) = keep.iter().position(|k| !k) else {
            return Err(Error::input(
                "inpaint span",
                "keeps every sample: nothing to regenerate",
            ));
        };
        let b_in = keep.iter().rposition(|k| !k).map_or(a_in, |b| b + 1);
        let max_secs = (cfg.window_length * MAX_SPAN_WINDOWS) as f64 / cfg.sample_rate as f64;
        let span_secs = (b_in - a_in) as f64 / r_in as f64;
        if span_secs > max_secs + 1e-9 {
            return Err(Error::input(
                "inpaint span",
                format!("{span_secs:.2} s from the first to the last regenerated sample; at most {max_secs:.2} s ({MAX_SPAN_WINDOWS} model windows) at once"),
            ));
        }
        let context =
            (cfg.window_length as u64 * r_in as u64).div_ceil(cfg.sample_rate as u64) as usize;
        let (lo, hi) = (
            a_in.saturating_sub(context),
            (b_in + context).min(clip.len()),
        );
        let region = resample_clip(&clip.slice(lo, hi - lo), cfg.sample_rate)?;
        // A network sample is regenerated when any clip sample within its period is.
        let (rm, ri) = (cfg.sample_rate as u64, r_in as u64);
        let region_keep = &keep[lo..hi];
        let model_keep: Vec<bool> = (0..region.len() as u64)
            .map(|i| {
                let a = ((i * ri) / rm) as usize;
                let b = (((i + 1) * ri).div_ceil(rm) as usize)
                    .clamp(a + 1, region_keep.len().max(a + 1));
                region_keep
                    .get(a..b.min(region_keep.len()))
                    .is_none_or(|s| s.iter().all(|k| *k))
            })
            .collect();
        if model_keep.iter().all(|k| *k) {
            return Err(Error::input(
                "inpaint span",
                format!(
                    "shorter than one sample at the model's {} Hz",
                    cfg.sample_rate
                ),
            ));
        }
        let (x, layout) = to_model(&region, cfg.channels, &self.device)?;
        let sampling = opts.sampling(&cfg.sampling, cfg.compat)?;
        let mut noise = SeededNoise::new(opts.seed);
        let y = g.model.inpaint_mask(
            &x,
            &model_keep,
            &sampling,
            sampler.as_ref(),
            resamples,
            &mut noise,
            &mut steps(on),
        )?;
        let mut out = from_model(&y, layout, cfg.sample_rate)?;
        check_finite(&out, &self.name)?;
        if let Some(stage) = g.stage {
            out = stage.apply(&out, &mut noise)?;
        }
        let out = exact_length(&resample_clip(&out, r_in)?, hi - lo)?;
        let base = clip.with_channels(out.num_channels())?;
        let generated = splice(&base, &out, lo)?;
        restore_mask(&base, &generated, &keep, seam(r_in))
    }

    /// `clip` followed by new audio, generated span by span (each span inpaints the second half of
    /// a model window whose first half is the music so far), at the clip's rate; the clip itself
    /// comes back untouched, crossfaded into the continuation over 10 ms.
    pub fn continue_clip(
        &self,
        clip: &AudioClip,
        extend: Extend,
        opts: &RenderOptions,
        on: OnProgress<'_>,
    ) -> Result<AudioClip> {
        let g = self.generator("continuing")?;
        if clip.is_empty() {
            return Err(Error::input("clip", "it is empty"));
        }
        opts.refuse_guidance()?;
        let cfg = g.config;
        let sampler = opts.inpainting_sampler(&cfg.sampling, cfg.compat, "continuing")?;
        let window = cfg.window_length;
        let (frames, new_r) = continuation_length(cfg, clip, extend)?;
        let (r, n) = (clip.sample_rate(), clip.len());
        // Only the clip's last window (and an eighth more, beyond the resampler's edge) goes
        // through the network, the stage and the resampling; the rest is the clip itself.
        let context_model = window + window / 8;
        let ctx = ((context_model as u64 * r as u64).div_ceil(cfg.sample_rate as u64) as usize)
            .max(seam(r))
            .min(n);
        let region = clip.slice(n - ctx, ctx);
        let at_model = resample_clip(&region, cfg.sample_rate)?;
        let (x, layout) = to_model(&at_model, cfg.channels, &self.device)?;
        let sampling = opts.sampling(&cfg.sampling, cfg.compat)?;
        let mut noise = SeededNoise::new(opts.seed);
        let new = g.model.continuation_with(
            &x,
            window,
            frames,
            &sampling,
            sampler.as_ref(),
            &mut noise,
            &mut steps(on),
        )?;
        let y = Tensor::cat(&[&x, &new], 2)?;
        let mut out = from_model(&y, layout, cfg.sample_rate)?;
        check_finite(&out, &self.name)?;
        if let Some(stage) = g.stage {
            out = stage.apply(&out, &mut noise)?;
        }
        let tail = exact_length(&resample_clip(&out, r)?, ctx + new_r)?;
        let base = region.with_channels(tail.num_channels())?;
        let tail = crate::audio::splice::restore_known(&base, &tail, ctx, ctx, seam(r))?;
        let head = clip.slice(0, n - ctx).with_channels(tail.num_channels())?;
        append(head, tail)
    }

    /// A variation of `clip` (audio-to-audio, the "init audio" of stable-audio-tools): noised to
    /// `opts.strength` of the schedule's largest noise level, then denoised by the model, window
    /// by window with crossfades, at the clip's rate and length.
    pub fn variation(
        &self,
        clip: &AudioClip,
        opts: &RenderOptions,
        on: OnProgress<'_>,
    ) -> Result<AudioClip> {
        let g = self.generator("a variation")?;
        if clip.is_empty() {
            return Err(Error::input("clip", "it is empty"));
        }
        opts.refuse_guidance()?;
        let strength = opts.strength()?;
        if opts.sampler == Some(crate::sampler::SamplerKind::V) {
            return Err(Error::input(
                "sampler",
                "a variation starts a k-diffusion sampler part-way; `v` cannot start there",
            ));
        }
        let cfg = g.config;
        let at_model = resample_clip(clip, cfg.sample_rate)?;
        let (x, layout) = to_model(&at_model, cfg.channels, &self.device)?;
        let unit = g.model.config().unet.total_factor();
        let len = x.dim(2)?;
        let x = x.pad_with_zeros(2, 0, len.div_ceil(unit) * unit - len)?;
        let window = cfg.window_length.div_ceil(unit) * unit;
        let sampling = opts.sampling(&cfg.sampling, cfg.compat)?;
        let y = windowed(&x, window, 1, opts.seed, on, |piece, noise, on_step| {
            g.model.vary(piece, strength, &sampling, noise, on_step)
        })?;
        let mut out = from_model(&y.narrow(2, 0, len)?, layout, cfg.sample_rate)?;
        check_finite(&out, &self.name)?;
        let mut noise = SeededNoise::new(opts.seed ^ 0x5eed_57a6e);
        if let Some(stage) = g.stage {
            out = stage.apply(&out, &mut noise)?;
        }
        exact_length(&resample_clip(&out, clip.sample_rate())?, clip.len())
    }
}

/// `head` followed by `tail` (same rate and channels).
fn append(head: AudioClip, tail: AudioClip) -> Result<AudioClip> {
    let rate = head.sample_rate();
    let chans = head
        .into_channels()
        .into_iter()
        .zip(tail.into_channels())
        .map(|(mut h, t)| {
            h.extend_from_slice(&t);
            h
        })
        .collect();
    AudioClip::new(rate, chans)
}

/// How long a continuation of `clip` by `extend` is: in network samples (whole spans are what
/// the network makes; it is cut back after), and at the clip's rate (what was asked, exactly);
/// refused past [`MAX_SPANS`], the length limit or the memory limit.
fn continuation_length(
    cfg: &FolderConfig,
    clip: &AudioClip,
    extend: Extend,
) -> Result<(usize, usize)> {
    let half = (cfg.window_length / 2).max(1);
    let (rate, r) = (cfg.sample_rate as u64, clip.sample_rate() as u64);
    let (frames, new_r) = match extend {
        Extend::Spans(n) if (1..=MAX_SPANS).contains(&n) => {
            (n * half, ((n * half) as u64 * r).div_ceil(rate) as usize)
        }
        Extend::Spans(n) => {
            return Err(Error::input(
                "spans",
                format!("must be 1 to {MAX_SPANS}, got {n}"),
            ))
        }
        Extend::Seconds(s) if s.is_finite() && s > 0.0 && s <= limits::MAX_SECONDS => (
            ((s * rate as f64).round() as usize).max(1),
            (s * r as f64).round() as usize,
        ),
        Extend::Seconds(s) => {
            return Err(Error::input(
                "length",
                format!(
                    "must be above 0 and at most {:.0} s, got {s}",
                    limits::MAX_SECONDS
                ),
            ))
        }
    };
    if frames.div_ceil(half) > MAX_SPANS {
        return Err(Error::input(
            "length",
            format!("{frames} samples would take more than {MAX_SPANS} spans"),
        ));
    }
    let total = clip.duration_secs() + frames as f64 / rate as f64;
    if total > limits::MAX_SECONDS {
        return Err(Error::input(
            "length",
            format!(
                "the continued clip would be {total:.0} s, more than the {:.0} s limit",
                limits::MAX_SECONDS
            ),
        ));
    }
    let channels = if cfg.channels == 1 {
        clip.num_channels()
    } else {
        cfg.channels
    };
    let max = limits::max_frames(clip.sample_rate(), channels);
    if clip.len() + new_r > max {
        return Err(Error::input(
            "length",
            format!(
                "the continued clip would be {} samples x {channels} channels; at most {max} frames are held in memory",
                clip.len() + new_r
            ),
        ));
    }
    Ok((frames, new_r))
}

/// `job` over windows of `window` input samples with one seeded stream (the command line's and
/// the plugin's windowing), reporting the fraction of all steps done.
pub(crate) fn windowed<F: crate::pipeline::WindowJob>(
    x: &Tensor,
    window: usize,
    scale: usize,
    seed: u64,
    on: OnProgress<'_>,
    job: F,
) -> Result<Tensor> {
    sample_in_windows(x, window, scale, seed, |s| on(s.done()), job)
}

/// The per-sample keep mask of `keep` over `clip`.
pub(super) fn keep_mask(keep: &Keep, clip: &AudioClip) -> Result<Vec<bool>> {
    let (rate, len) = (clip.sample_rate(), clip.len());
    match keep {
        Keep::Outside { start, end } => {
            let (start, end) = (*start, *end);
            if !(start.is_finite() && end.is_finite() && 0.0 <= start && start < end) {
                return Err(Error::input(
                    "inpaint span",
                    format!("need 0 <= start < end, got {start} and {end}"),
                ));
            }
            let (a, b) = (
                (start * rate as f64).round() as usize,
                (end * rate as f64).round() as usize,
            );
            if b > len {
                return Err(Error::input(
                    "inpaint span",
                    format!(
                        "the end {end} s is past the end of the clip ({:.3} s)",
                        len as f64 / rate as f64
                    ),
                ));
            }
            if a >= b {
                return Err(Error::input(
                    "inpaint span",
                    format!("{start}..{end} s is shorter than one sample at {rate} Hz"),
                ));
            }
            Ok((0..len).map(|i| !(a..b).contains(&i)).collect())
        }
        Keep::Mask(m) if m.len() == len => Ok(m.clone()),
        Keep::Mask(m) => Err(Error::input(
            "inpaint mask",
            format!("{} entries for a clip of {len} samples", m.len()),
        )),
    }
}
