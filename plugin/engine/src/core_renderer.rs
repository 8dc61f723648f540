//! `CoreRenderer`: the [`Renderer`] backed by adiff-core's models (a model folder loaded on the
//! worker), running them the way the `adiff` command line does: windows of the model's training
//! length with an eighth of overlap, crossfaded, one seeded noise stream.

use crate::buffer::AudioBuf;
use crate::error::{EngineError, Result};
use crate::renderer::{Progress, RenderSettings, Renderer, SamplerKind};
use adiff_core::audio::{resample_clip, AudioClip};
use adiff_core::models::bandext::stage::Stage;
use adiff_core::models::folder::{FolderConfig, SamplerSetting};
use adiff_core::models::sampling::{sampler_from, schedule_from, Sampling};
use adiff_core::models::AnyModel;
use adiff_core::pipeline::{sample_in_windows, WindowJob};
use adiff_core::sampler::StepInfo;
use adiff_core::SeededNoise;
use candle_core::{Device, Tensor};
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};

/// A loaded adiff-core model.
pub struct CoreRenderer {
    config: FolderConfig,
    model: AnyModel,
    path: PathBuf,
    device: Device,
    /// A low-rate generator's band-extension stage (applied to Generate's output).
    stage: Option<Stage>,
}

fn core(path: &Path, e: adiff_core::Error) -> EngineError {
    EngineError::Model {
        path: path.to_path_buf(),
        reason: e.to_string(),
    }
}

impl CoreRenderer {
    /// Loads the model folder `dir` (config.json + model.safetensors) on the CPU.
    pub fn load(dir: &Path) -> Result<Self> {
        let device = Device::Cpu;
        let (config, model) = AnyModel::load(dir, &device).map_err(|e| core(dir, e))?;
        let stage = Stage::load(dir, &config).map_err(|e| core(dir, e))?;
        Ok(Self {
            config,
            model,
            path: dir.to_path_buf(),
            device,
            stage,
        })
    }

    fn sampling(&self, s: &RenderSettings) -> Result<Sampling> {
        let sampler = match s.sampler {
            SamplerKind::Adpm2 => SamplerSetting::ADPM2Sampler { rho: 1.0 },
            SamplerKind::AEuler => SamplerSetting::AEulerSampler {},
            SamplerKind::Karras => SamplerSetting::KarrasSampler {
                s_tmin: 0.0,
                s_tmax: f64::INFINITY,
                s_churn: 0.0,
                s_noise: 1.0,
            },
        };
        let compat = self.config.compat;
        Ok(Sampling {
            num_steps: s.steps.max(1),
            sampler: sampler_from(&sampler, compat).map_err(|e| core(&self.path, e))?,
            schedule: schedule_from(&self.config.sampling.sigma_schedule, compat)
                .map_err(|e| core(&self.path, e))?,
        })
    }

    /// `(batch, channels, length)` for the model: channels as batch for a mono model.
    fn to_tensor(&self, clip: &AudioBuf) -> Result<Tensor> {
        let len = clip.len();
        let data: Vec<f32> = clip
            .channel(0)
            .iter()
            .chain(clip.channel(1))
            .copied()
            .collect();
        let shape = if self.config.channels == 1 {
            (2, 1, len)
        } else {
            (1, 2, len)
        };
        Tensor::from_vec(data, shape, &self.device).map_err(|e| core(&self.path, e.into()))
    }

    fn from_tensor(&self, y: &Tensor, rate: f64) -> Result<AudioBuf> {
        let y = y
            .flatten_all()
            .and_then(|t| t.to_vec1::<f32>())
            .map_err(|e| core(&self.path, e.into()))?;
        let half = y.len() / 2;
        Ok(AudioBuf::from_channels(
            y[..half].to_vec(),
            y[half..].to_vec(),
            rate,
        ))
    }

    /// Runs `job` over windows of `window` input samples (adiff-core's `sample_in_windows`, as
    /// the command line does), reporting progress over all windows; a `false` cancels.
    fn windowed<F: WindowJob>(
        &self,
        x: &Tensor,
        window: usize,
        scale: usize,
        seed: u64,
        progress: Progress<'_>,
        job: F,
    ) -> Result<Tensor> {
        let mut cancelled = false;
        let y = sample_in_windows(
            x,
            window,
            scale,
            seed,
            |s| {
                if progress(s.done()) {
                    ControlFlow::Continue(())
                } else {
                    cancelled = true;
                    ControlFlow::Break(())
                }
            },
            job,
        );
        if cancelled {
            return Err(EngineError::Cancelled);
        }
        y.map_err(|e| core(&self.path, e))
    }

    /// Runs one sampling `job`, reporting its steps as progress; a `false` from `progress` cancels.
    fn stepped<F>(&self, progress: Progress<'_>, job: F) -> Result<Tensor>
    where
        F: FnOnce(&mut dyn FnMut(&StepInfo) -> ControlFlow<()>) -> adiff_core::Result<Tensor>,
    {
        let mut cancelled = false;
        let mut on_step = |st: &StepInfo| {
            if progress(st.step as f32 / st.total.max(1) as f32) {
                ControlFlow::Continue(())
            } else {
                cancelled = true;
                ControlFlow::Break(())
            }
        };
        let y = job(&mut on_step);
        if cancelled {
            return Err(EngineError::Cancelled);
        }
        y.map_err(|e| core(&self.path, e))
    }

    /// A low-rate generator's output through its band-extension stage (to its output rate; the
    /// worker resamples to the host), or `out` unchanged for a model without one. Inpaint and
    /// Continue get the stage over the whole clip: the renderer sees the captured clip only at the
    /// network's rate.
    fn staged(&self, out: AudioBuf, noise: &mut SeededNoise) -> Result<AudioBuf> {
        let Some(stage) = &self.stage else {
            return Ok(out);
        };
        let mut up = |c: usize| {
            stage
                .apply_signal(out.channel(c), noise)
                .map_err(|e| core(&self.path, e))
        };
        let (left, right) = (up(0)?, up(1)?);
        Ok(AudioBuf::from_channels(
            left,
            right,
            self.sample_rate() * stage.factor() as f64,
        ))
    }

    fn unsupported(&self, mode: &'static str) -> EngineError {
        EngineError::Render {
            mode,
            reason: format!(
                "the model in {} is a {:?}",
                self.path.display(),
                self.config.kind
            ),
        }
    }
}

impl Renderer for CoreRenderer {
    fn sample_rate(&self) -> f64 {
        f64::from(self.config.sample_rate)
    }

    fn generate(
        &mut self,
        frames: usize,
        s: &RenderSettings,
        progress: Progress<'_>,
    ) -> Result<AudioBuf> {
        let AnyModel::Generator(m) = &self.model else {
            return Err(self.unsupported("Generate"));
        };
        let sampling = self.sampling(s)?;
        let mut noise = SeededNoise::new(s.seed);
        let batch = if self.config.channels == 1 { 2 } else { 1 };
        let start = adiff_core::NoiseSource::randn(
            &mut noise,
            &[batch, self.config.channels.min(2), frames.max(1)],
            &self.device,
        )
        .map_err(|e| core(&self.path, e))?;
        let y = self.stepped(progress, |on_step| {
            m.sample(&start, &sampling, &mut noise, on_step)
        })?;
        let out = self.from_tensor(&y, self.sample_rate())?;
        self.staged(out, &mut noise)
    }

    fn upsample(
        &mut self,
        clip: &AudioBuf,
        s: &RenderSettings,
        progress: Progress<'_>,
    ) -> Result<AudioBuf> {
        let AnyModel::Upsampler(m) = &self.model else {
            return Err(self.unsupported("Upsample"));
        };
        let factor = m.factors()[0];
        let rate = self.config.sample_rate;
        let low_rate = rate / factor as u32;
        // The clip (at the model rate) band-limited to the model's input rate, as the command line
        // brings its input to that rate.
        let model_rate_clip = AudioClip::new(
            rate,
            vec![clip.channel(0).to_vec(), clip.channel(1).to_vec()],
        )
        .map_err(|e| core(&self.path, e))?;
        let low = resample_clip(&model_rate_clip, low_rate).map_err(|e| core(&self.path, e))?;
        let [l, r]: [Vec<f32>; 2] = match low.into_channels().try_into() {
            Ok(c) => c,
            Err(_) => return Err(self.unsupported("Upsample")),
        };
        let x = self.to_tensor(&AudioBuf::from_channels(l, r, f64::from(low_rate)))?;
        let sampling = self.sampling(s)?;
        let window = (self.config.window_length / factor).max(1);
        let y = self.windowed(
            &x,
            window,
            factor,
            s.seed,
            progress,
            |piece, noise, on_step| m.sample(piece, Some(factor), &sampling, noise, on_step),
        )?;
        let mut out = self.from_tensor(&y, f64::from(rate))?;
        out.anchor = clip.anchor;
        Ok(out)
    }

    fn inpaint(
        &mut self,
        clip: &AudioBuf,
        start: usize,
        end: usize,
        s: &RenderSettings,
        progress: Progress<'_>,
    ) -> Result<AudioBuf> {
        let AnyModel::Generator(m) = &self.model else {
            return Err(self.unsupported("Inpaint"));
        };
        let (start, end) = (start.min(clip.len()), end.min(clip.len()));
        if start >= end {
            return Ok(clip.clone());
        }
        let x = self.to_tensor(clip)?;
        let sampling = self.sampling(s)?;
        let mut noise = SeededNoise::new(s.seed);
        let y = self.stepped(progress, |on_step| {
            m.inpaint_span(&x, (start, end), &sampling, 1, &mut noise, on_step)
        })?;
        let mut out = self.staged(self.from_tensor(&y, self.sample_rate())?, &mut noise)?;
        out.anchor = clip.anchor;
        Ok(out)
    }

    fn continue_clip(
        &mut self,
        clip: &AudioBuf,
        frames: usize,
        s: &RenderSettings,
        progress: Progress<'_>,
    ) -> Result<AudioBuf> {
        let AnyModel::Generator(m) = &self.model else {
            return Err(self.unsupported("Continue"));
        };
        let x = self.to_tensor(clip)?;
        let sampling = self.sampling(s)?;
        let mut noise = SeededNoise::new(s.seed);
        let window = self.config.window_length;
        let new = self.stepped(progress, |on_step| {
            m.continuation(&x, window, frames.max(1), &sampling, &mut noise, on_step)
        })?;
        let y = Tensor::cat(&[&x, &new], 2).map_err(|e| core(&self.path, e.into()))?;
        let mut out = self.staged(self.from_tensor(&y, self.sample_rate())?, &mut noise)?;
        out.anchor = clip.anchor;
        Ok(out)
    }
}
