//! Upsampling: to a higher rate by a factor, or at the clip's own rate, restoring the band above
//! where its content ends (measured, or given).

use super::layout::{check_finite, exact_length, from_model, to_model};
use super::ops::windowed;
use super::{checkpoint, Inner, Model, OnProgress, RenderOptions};
use crate::audio::bandwidth::{self, Bandwidth};
use crate::audio::resample_clip;
use crate::audio::{limits, AudioClip};
use crate::models::bandext::stream::{append_block, chunking, process_chunks, upsample_streaming};
use crate::models::bandext::synth::brickwall_highpass;
use crate::models::bandext::{sinc_down, BandExtension};
use crate::models::folder::FolderConfig;
use crate::models::{AnyModel, AudioDiffusionUpsampler};
use crate::{Error, Result, SeededNoise};

/// What an upsampling makes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum UpsampleTarget {
    /// A rate `K` times the clip's (`None`: the model's first factor).
    Factor(Option<usize>),
    /// The clip's own rate, with the band above this cut-off (Hz) restored.
    Bandwidth(f64),
    /// The clip's own rate, with the band above where its content ends restored (the cut-off is
    /// measured, [`crate::audio::bandwidth::detect`]).
    Auto,
}

/// How an upsampling runs, worked out before anything is sampled.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct UpsamplePlan {
    /// The clip's rate.
    pub in_rate: u32,
    /// The result's rate.
    pub out_rate: u32,
    /// The result's channels: the clip's, or a multi-channel diffusion model's own count.
    pub out_channels: usize,
    /// The model factor used (1: the clip already reaches its Nyquist frequency, nothing to do).
    pub factor: usize,
    /// Same-rate modes: the cut-off above which the result is the model's.
    pub cutoff_hz: Option<f64>,
    /// What the measurement found ([`UpsampleTarget::Auto`]).
    pub detected: Option<Bandwidth>,
    /// Where the model's new band starts (Hz at the result's rate); above `cutoff_hz` when the
    /// content ends lower than the model's largest factor reaches, leaving a gap.
    pub restored_from_hz: f64,
}

impl UpsamplePlan {
    /// Frames of the result of a clip of `frames` frames.
    pub fn out_frames(&self, frames: usize) -> usize {
        (frames as u64 * self.out_rate as u64 / self.in_rate.max(1) as u64) as usize
    }

    /// Refuses a result of a `frames`-frame clip past the limits: those of a clip held in
    /// memory, or (`streamed`) those of a 32-bit WAV written block by block.
    pub fn check_size(&self, frames: usize, streamed: bool) -> Result<()> {
        let channels = self.out_channels;
        let out = self.out_frames(frames);
        let max = if streamed {
            limits::max_stream_frames(self.out_rate, channels, 4)
        } else {
            limits::max_frames(self.out_rate, channels)
        };
        if out > max {
            return Err(Error::input(
                "output length",
                format!(
                    "{:.0} s at {} Hz x {channels} channels; at most {:.0} s{}",
                    out as f64 / self.out_rate as f64,
                    self.out_rate,
                    max as f64 / self.out_rate as f64,
                    if streamed { "" } else { " held in memory" }
                ),
            ));
        }
        Ok(())
    }

    /// Whether the result is the clip itself (nothing to restore).
    pub fn is_identity(&self) -> bool {
        self.factor == 1
    }

    /// One line on the plan, for front ends to show.
    pub fn describe(&self) -> String {
        let found = match self.detected {
            Some(b) if b.limited => format!(
                "content ends at {:.0} Hz (a {:.0} dB drop); ",
                b.cutoff_hz, b.drop_db
            ),
            Some(_) => "content reaches the Nyquist frequency; ".to_string(),
            None => String::new(),
        };
        if self.is_identity() {
            return format!("{found}nothing to restore, the output is the input");
        }
        match self.cutoff_hz {
            Some(c) if self.restored_from_hz > c + 1.0 => format!(
                "{found}restoring above {:.0} Hz at {} Hz by x{} (the model's largest factor; {c:.0} to {:.0} Hz stays empty)",
                self.restored_from_hz, self.out_rate, self.factor, self.restored_from_hz
            ),
            Some(c) => format!(
                "{found}restoring above {c:.0} Hz at {} Hz (model factor x{})",
                self.out_rate, self.factor
            ),
            None => format!(
                "{} Hz to {} Hz (x{})",
                self.in_rate, self.out_rate, self.factor
            ),
        }
    }
}

/// The smallest factor of `factors` whose low rate `rate / K` has its Nyquist frequency at most
/// 10 % above `cutoff` (the largest when none does); 1 when the cut-off is within 2 % of Nyquist.
/// The 10 % lets a measured cut-off a little below a factor's band edge use that factor: between
/// the cut-off and the edge the model's output is the input's own band (its sinc-upsampled low
/// rate), and the input is kept below the cut-off anyway.
pub(super) fn factor_for(rate: u32, cutoff: f64, factors: &[usize]) -> usize {
    if rate as f64 / (2.0 * cutoff) <= 1.02 {
        return 1;
    }
    let ratio = rate as f64 / (2.0 * cutoff * 1.1);
    let mut sorted = factors.to_vec();
    sorted.sort_unstable();
    sorted
        .iter()
        .copied()
        .find(|&k| k >= 2 && k as f64 >= ratio)
        .or(sorted.last().copied())
        .unwrap_or(1)
}

impl Model {
    /// Checks that the model can upsample `clip` to `target` and works out how.
    pub fn plan_upsample(&self, clip: &AudioClip, target: UpsampleTarget) -> Result<UpsamplePlan> {
        let factors = self.factors();
        if factors.is_empty() {
            return Err(self.cannot(
                "upsampling",
                "an upsampler (AudioDiffusionUpsampler or BandExtension)",
            ));
        }
        let r = clip.sample_rate();
        if clip.is_empty() {
            return Err(Error::input("clip", "it is empty: nothing to upsample"));
        }
        match target {
            UpsampleTarget::Factor(k) => {
                let k = k.unwrap_or(factors[0]);
                if !factors.contains(&k) {
                    return Err(Error::input(
                        "factor",
                        format!("model {} upsamples by {factors:?}, not by {k}", self.name),
                    ));
                }
                let out = (r as u64) * k as u64;
                if out > limits::MAX_RATE as u64 {
                    return Err(Error::input(
                        "factor",
                        format!(
                            "a clip at {r} Hz upsampled by {k} would be {out} Hz, above the supported {} Hz",
                            limits::MAX_RATE
                        ),
                    ));
                }
                if let Some(cfg) = self.config() {
                    check_diffusion_rates(cfg, r, k)?;
                }
                Ok(UpsamplePlan {
                    in_rate: r,
                    out_rate: out as u32,
                    out_channels: self.out_channels(clip),
                    factor: k,
                    cutoff_hz: None,
                    detected: None,
                    restored_from_hz: r as f64 / 2.0,
                })
            }
            UpsampleTarget::Bandwidth(hz) => {
                let nyquist = r as f64 / 2.0;
                if !(hz.is_finite() && hz > 0.0 && hz < nyquist) {
                    return Err(Error::input(
                        "bandwidth",
                        format!("the cut-off must be above 0 and below the clip's Nyquist frequency {nyquist:.0} Hz, got {hz}"),
                    ));
                }
                self.same_rate_plan(clip, hz, None, &factors)
            }
            UpsampleTarget::Auto => {
                let found = bandwidth::detect(clip)?;
                let hz = if found.limited {
                    found.cutoff_hz
                } else {
                    r as f64 / 2.0
                };
                self.same_rate_plan(clip, hz, Some(found), &factors)
            }
        }
    }

    /// The channels of what this model makes of `clip`.
    fn out_channels(&self, clip: &AudioClip) -> usize {
        match self.config() {
            Some(cfg) if cfg.channels > 1 => cfg.channels,
            _ => clip.num_channels(),
        }
    }

    fn same_rate_plan(
        &self,
        clip: &AudioClip,
        cutoff: f64,
        detected: Option<Bandwidth>,
        factors: &[usize],
    ) -> Result<UpsamplePlan> {
        let r = clip.sample_rate();
        // A diffusion upsampler works at its own rate R: the factor is chosen there.
        let work_rate = self.sample_rate().unwrap_or(r);
        let k = factor_for(work_rate, cutoff.min(work_rate as f64 / 2.0), factors);
        if let (Some(cfg), true) = (self.config(), k > 1) {
            if cfg.sample_rate % k as u32 != 0 {
                return Err(Error::input(
                    "factor",
                    format!(
                        "the model's rate {} Hz is not divisible by {k}",
                        cfg.sample_rate
                    ),
                ));
            }
        }
        Ok(UpsamplePlan {
            in_rate: r,
            out_rate: r,
            out_channels: self.out_channels(clip),
            factor: k,
            cutoff_hz: Some(cutoff),
            detected,
            restored_from_hz: (work_rate as f64 / (2.0 * k as f64)).max(cutoff),
        })
    }

    /// `clip` upsampled as [`Model::plan_upsample`] plans it; returns the result and the plan.
    pub fn upsample(
        &self,
        clip: &AudioClip,
        target: UpsampleTarget,
        opts: &RenderOptions,
        on: OnProgress<'_>,
    ) -> Result<(AudioClip, UpsamplePlan)> {
        let plan = self.plan_upsample(clip, target)?;
        plan.check_size(clip.len(), false)?;
        let mut chans = vec![Vec::new(); plan.out_channels];
        self.upsample_into(clip, &plan, opts, on, &mut |block| {
            append_block(&mut chans, block);
            Ok(())
        })?;
        Ok((AudioClip::new(plan.out_rate, chans)?, plan))
    }

    /// Runs `plan` on `clip`, handing the result to `emit` in blocks of frames (planar, one slice
    /// per channel, in order): a band-extension model streams chunk by chunk, so a front end can
    /// write hours of audio in bounded memory; a diffusion upsampler hands the whole result once.
    /// Non-finite output is refused, naming the model.
    pub fn upsample_into(
        &self,
        clip: &AudioClip,
        plan: &UpsamplePlan,
        opts: &RenderOptions,
        on: OnProgress<'_>,
        emit: &mut dyn FnMut(&[&[f32]]) -> Result<()>,
    ) -> Result<()> {
        opts.refuse_guidance()?;
        if plan.in_rate != clip.sample_rate() {
            return Err(Error::input(
                "upsample plan",
                format!(
                    "made for {} Hz, the clip is at {} Hz",
                    plan.in_rate,
                    clip.sample_rate()
                ),
            ));
        }
        let name = self.name.clone();
        let mut checked = |block: &[&[f32]]| -> Result<()> {
            if block.iter().any(|c| c.iter().any(|v| !v.is_finite())) {
                return Err(Error::input(
                    format!("model {name}"),
                    "it produced non-finite samples (NaN or infinity)",
                ));
            }
            emit(block)
        };
        if plan.is_identity() {
            checkpoint(on, 1.0)?;
            let same = clip.with_channels(plan.out_channels)?;
            let block: Vec<&[f32]> = same.channels().iter().map(Vec::as_slice).collect();
            return checked(&block);
        }
        match &self.inner {
            Inner::BandExtension(m) => band_extend(m, clip, plan, opts.seed, on, &mut checked),
            Inner::Diffusion {
                config,
                model: AnyModel::Upsampler(m),
                ..
            } => {
                let out = self.diffusion_upsample(config, m, clip, plan, opts, on)?;
                let block: Vec<&[f32]> = out.channels().iter().map(Vec::as_slice).collect();
                checked(&block)
            }
            Inner::Diffusion { .. } => Err(self.cannot("upsampling", "an upsampler")),
        }
    }

    /// Runs `plan` on `clip` straight into a 32-bit float WAV at `path` (a temporary file beside
    /// it, renamed when complete), block by block, so memory does not grow with the clip's length
    /// for a band-extension model; the size is checked first. Returns the frames written.
    pub fn upsample_to_wav(
        &self,
        clip: &AudioClip,
        plan: &UpsamplePlan,
        opts: &RenderOptions,
        path: &std::path::Path,
        on: OnProgress<'_>,
    ) -> Result<usize> {
        let streams = matches!(self.inner, Inner::BandExtension(_));
        plan.check_size(clip.len(), streams)?;
        let mut sink = crate::audio::WavSink::create(
            path,
            plan.out_rate,
            plan.out_channels,
            crate::audio::WavEncoding::Float32,
        )?;
        self.upsample_into(clip, plan, opts, on, &mut |block| sink.write(block))?;
        let frames = sink.frames();
        sink.finish()?;
        Ok(frames)
    }

    fn diffusion_upsample(
        &self,
        cfg: &FolderConfig,
        m: &AudioDiffusionUpsampler,
        clip: &AudioClip,
        plan: &UpsamplePlan,
        opts: &RenderOptions,
        on: OnProgress<'_>,
    ) -> Result<AudioClip> {
        let k = plan.factor;
        let low = resample_clip(clip, cfg.sample_rate / k as u32)?;
        let (x, layout) = to_model(&low, cfg.channels, &self.device)?;
        let sampling = opts.sampling(&cfg.sampling, cfg.compat)?;
        let window = (cfg.window_length / k).max(1);
        let y = windowed(&x, window, k, opts.seed, on, |piece, noise, on_step| {
            m.sample(piece, Some(k), &sampling, noise, on_step)
        })?;
        let out = from_model(&y, layout, cfg.sample_rate)?;
        check_finite(&out, &self.name)?;
        let out = exact_length(
            &resample_clip(&out, plan.out_rate)?,
            clip.len() * plan.out_rate as usize / clip.sample_rate() as usize,
        )?;
        match plan.cutoff_hz {
            None => Ok(out),
            Some(fc) => {
                let base = clip.with_channels(out.num_channels())?;
                let chans = base
                    .channels()
                    .iter()
                    .zip(out.channels())
                    .map(|(x, y)| keep_below(x, y, fc, clip.sample_rate()))
                    .collect::<Result<Vec<_>>>()?;
                AudioClip::new(clip.sample_rate(), chans)
            }
        }
    }
}

/// Refuses a diffusion upsampler that cannot serve a clip at `rate` by `k`.
fn check_diffusion_rates(cfg: &FolderConfig, rate: u32, k: usize) -> Result<()> {
    if !cfg.sample_rate.is_multiple_of(k as u32) {
        return Err(Error::input(
            "factor",
            format!(
                "the model's rate {} Hz is not divisible by the factor {k}",
                cfg.sample_rate
            ),
        ));
    }
    let target = rate as u64 * k as u64;
    if target > cfg.sample_rate as u64 {
        return Err(Error::input(
            "factor",
            format!(
                "a clip at {rate} Hz upsampled by {k} would be {target} Hz, above the model's {} Hz: this model cannot serve that rate (use a clip at {} Hz or below)",
                cfg.sample_rate,
                cfg.sample_rate / k as u32
            ),
        ));
    }
    Ok(())
}

/// `x` below `cutoff` and `y` above it: `x + highpass(y - x)` with an exact zero-phase FFT
/// brick wall at `cutoff` (Hz at `rate`).
fn keep_below(x: &[f32], y: &[f32], cutoff: f64, rate: u32) -> Result<Vec<f32>> {
    let diff: Vec<f32> = x.iter().zip(y).map(|(a, b)| b - a).collect();
    let high = brickwall_highpass(&diff, cutoff / (rate as f64 / 2.0))?;
    Ok(x.iter().zip(&high).map(|(a, h)| a + h).collect())
}

/// The band-extension model on `clip` as `plan` says, chunk by chunk with one seeded stream.
fn band_extend(
    m: &BandExtension,
    clip: &AudioClip,
    plan: &UpsamplePlan,
    seed: u64,
    on: OnProgress<'_>,
    emit: &mut dyn FnMut(&[&[f32]]) -> Result<()>,
) -> Result<()> {
    let k = plan.factor;
    let mut noise = SeededNoise::new(seed);
    let total = clip.len().max(1) as f32;
    let mut done = 0usize;
    checkpoint(on, 0.0)?;
    match plan.cutoff_hz {
        None => upsample_streaming(m, clip, k, &mut noise, &mut |block| {
            done += block.first().map_or(0, |b| b.len()) / k;
            checkpoint(on, (done as f32 / total).min(1.0))?;
            emit(block)
        }),
        Some(fc) => {
            // Same rate: each chunk brought down by K with the sinc the model was fitted with,
            // band-extended back up, and kept above the cut-off only.
            let (chunk, overlap) = chunking(1);
            let rate = clip.sample_rate();
            process_chunks(
                clip,
                chunk,
                overlap,
                1,
                &mut |piece| {
                    piece
                        .iter()
                        .map(|x| {
                            let lo = sinc_down(x, k)?;
                            let mut y = m.upsample_signal(&lo, k, &mut noise)?;
                            // Past the last whole multiple of K the model has nothing: the
                            // input itself, so the difference there is zero.
                            let known = y.len().min(x.len());
                            y.truncate(known);
                            y.extend_from_slice(&x[known..]);
                            keep_below(x, &y, fc, rate)
                        })
                        .collect()
                },
                &mut |block| {
                    done += block.first().map_or(0, |b| b.len());
                    checkpoint(on, (done as f32 / total).min(1.0))?;
                    emit(block)
                },
            )
        }
    }
}
