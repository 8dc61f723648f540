//! `ModelRenderer`: the one adapter from the worker's [`Renderer`] onto adiff-core's use-case
//! layer ([`adiff_core::render::Model`]), which plans rates, windows, stages and seams exactly as
//! for the `adiff` command line: the same folder, clip, seed and options give the same samples.

use crate::buffer::AudioBuf;
use crate::error::{EngineError, Result};
use crate::renderer::{Progress, RenderSettings, Renderer};
use adiff_core::audio::AudioClip;
use adiff_core::models::folder::ModelKind;
use adiff_core::render::{shipped, Extend, Keep, Model, RenderOptions, UpsampleTarget};
use candle_core::Device;
use std::ops::ControlFlow;
use std::path::Path;

/// A model of any kind, plus an optional renderer for the modes it cannot do.
pub struct ModelRenderer {
    model: Model,
    fallback: Option<Box<dyn Renderer>>,
    note: Option<String>,
}

impl ModelRenderer {
    /// `model`, with `fallback` serving the modes it cannot do (none: those modes are refused).
    pub fn new(model: Model, fallback: Option<Box<dyn Renderer>>) -> Self {
        Self {
            model,
            fallback,
            note: None,
        }
    }

    /// The model folder `dir` on the CPU.
    pub fn open(dir: &Path) -> Result<Self> {
        let model = Model::open(dir, &Device::Cpu).map_err(|e| EngineError::Model {
            path: dir.to_path_buf(),
            reason: e.to_string(),
        })?;
        Ok(Self::new(model, None))
    }

    /// The embedded shipped upsampler, with `fallback` for the other modes.
    pub fn shipped(fallback: Option<Box<dyn Renderer>>) -> Result<Self> {
        let model = shipped::upsampler().map_err(|e| EngineError::Model {
            path: shipped::UPSAMPLER_NAME.into(),
            reason: e.to_string(),
        })?;
        Ok(Self::new(model, fallback))
    }

    /// The model.
    pub fn model(&self) -> &Model {
        &self.model
    }

    fn generates(&self) -> bool {
        self.model.kind() == ModelKind::AudioDiffusionModel
    }

    /// The fallback for `mode`, or the error naming why the model cannot do it.
    fn fallback(&mut self, mode: &'static str) -> Result<&mut Box<dyn Renderer>> {
        let reason = format!(
            "the model {} is a {:?}, which cannot {}",
            self.model.name(),
            self.model.kind(),
            mode.to_lowercase()
        );
        self.fallback
            .as_mut()
            .ok_or(EngineError::Render { mode, reason })
    }

    fn failed(&self, mode: &'static str, e: adiff_core::Error) -> EngineError {
        match e {
            adiff_core::Error::Cancelled { .. } => EngineError::Cancelled,
            e => EngineError::Render {
                mode,
                reason: e.to_string(),
            },
        }
    }
}

/// The settings as the use-case layer's options (the plugin always names steps and sampler; its
/// Steps control starts at 1, which runs as 2, the fewest a schedule has).
fn options(s: &RenderSettings) -> RenderOptions {
    RenderOptions {
        steps: Some(s.steps.max(2)),
        sampler: Some(s.sampler),
        seed: s.seed,
        ..RenderOptions::default()
    }
}

/// A stereo buffer as a clip at its rate (rounded to whole Hz).
fn to_clip(buf: &AudioBuf) -> adiff_core::Result<AudioClip> {
    let rate = buf.rate.round().clamp(1.0, f64::from(u32::MAX)) as u32;
    AudioClip::new(rate, vec![buf.channel(0).to_vec(), buf.channel(1).to_vec()])
}

/// A clip as a stereo buffer (a mono clip on both sides).
fn to_buf(clip: AudioClip, anchor: i64) -> AudioBuf {
    let rate = f64::from(clip.sample_rate());
    let mut chans = clip.into_channels().into_iter();
    let left = chans.next().unwrap_or_default();
    let right = chans.next().unwrap_or_else(|| left.clone());
    let mut out = AudioBuf::from_channels(left, right, rate);
    out.anchor = anchor;
    out
}

/// The engine's progress as the use-case layer's.
fn on(progress: Progress<'_>) -> impl FnMut(f32) -> ControlFlow<()> + '_ {
    move |f| {
        if progress(f) {
            ControlFlow::Continue(())
        } else {
            ControlFlow::Break(())
        }
    }
}

impl Renderer for ModelRenderer {
    fn sample_rate(&self) -> f64 {
        match (self.model.sample_rate(), &self.fallback) {
            (Some(r), _) if self.generates() => f64::from(r),
            (_, Some(f)) => f.sample_rate(),
            (Some(r), None) => f64::from(r),
            (None, None) => 48_000.0,
        }
    }

    fn generate(
        &mut self,
        frames: usize,
        s: &RenderSettings,
        progress: Progress<'_>,
    ) -> Result<AudioBuf> {
        if !self.generates() {
            return self.fallback("Generate")?.generate(frames, s, progress);
        }
        let seconds = frames.max(1) as f64 / self.sample_rate();
        let out = self
            .model
            .generate(Some(seconds), &options(s), &mut on(progress))
            .map_err(|e| self.failed("Generate", e))?;
        Ok(to_buf(out, 0))
    }

    fn upsample(
        &mut self,
        clip: &AudioBuf,
        s: &RenderSettings,
        progress: Progress<'_>,
    ) -> Result<AudioBuf> {
        if self.model.factors().is_empty() {
            return self.fallback("Upsample")?.upsample(clip, s, progress);
        }
        let input = to_clip(clip).map_err(|e| self.failed("Upsample", e))?;
        let target = match s.factor {
            0 => UpsampleTarget::Auto,
            k => UpsampleTarget::Bandwidth(f64::from(input.sample_rate()) / (2.0 * k as f64)),
        };
        let (out, plan) = self
            .model
            .upsample(&input, target, &options(s), &mut on(progress))
            .map_err(|e| self.failed("Upsample", e))?;
        let measured = match plan.detected {
            Some(_) => String::new(),
            None => match adiff_core::audio::bandwidth::detect(&input) {
                Ok(b) if b.limited => format!(
                    " (the clip's content measures as ending at {:.0} Hz)",
                    b.cutoff_hz
                ),
                Ok(_) => " (the clip's content measures as reaching its Nyquist frequency)".into(),
                Err(_) => String::new(),
            },
        };
        self.note = Some(format!("upsample: {}{measured}", plan.describe()));
        Ok(to_buf(out, clip.anchor))
    }

    fn inpaint(
        &mut self,
        clip: &AudioBuf,
        start: usize,
        end: usize,
        s: &RenderSettings,
        progress: Progress<'_>,
    ) -> Result<AudioBuf> {
        if !self.generates() {
            return self
                .fallback("Inpaint")?
                .inpaint(clip, start, end, s, progress);
        }
        let input = to_clip(clip).map_err(|e| self.failed("Inpaint", e))?;
        let keep = Keep::Mask(
            (0..clip.len())
                .map(|i| !(start..end).contains(&i))
                .collect(),
        );
        let out = self
            .model
            .inpaint(&input, &keep, &options(s), &mut on(progress))
            .map_err(|e| self.failed("Inpaint", e))?;
        Ok(to_buf(out, clip.anchor))
    }

    fn continue_clip(
        &mut self,
        clip: &AudioBuf,
        frames: usize,
        s: &RenderSettings,
        progress: Progress<'_>,
    ) -> Result<AudioBuf> {
        if !self.generates() {
            return self
                .fallback("Continue")?
                .continue_clip(clip, frames, s, progress);
        }
        let input = to_clip(clip).map_err(|e| self.failed("Continue", e))?;
        let seconds = frames.max(1) as f64 / f64::from(input.sample_rate());
        let out = self
            .model
            .continue_clip(
                &input,
                Extend::Seconds(seconds),
                &options(s),
                &mut on(progress),
            )
            .map_err(|e| self.failed("Continue", e))?;
        Ok(to_buf(out, clip.anchor))
    }

    fn take_note(&mut self) -> Option<String> {
        self.note.take()
    }
}
