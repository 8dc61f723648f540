//! `SketchRenderer`: a tiny deterministic model built in code, for testing the engine and the
//! adapters without weights. It is not a diffusion model: `steps` steps each halve the distance
//! to a target made of the input and seeded noise, so its output is a pure function of (input,
//! seed, steps) and a render reports `steps` cancellable steps. Clips are brought to its rate
//! first.

use crate::buffer::AudioBuf;
use crate::error::{EngineError, Result};
use crate::renderer::{Progress, RenderSettings, Renderer};
use crate::resample::resample;
use std::time::Duration;

/// The in-code test model.
#[derive(Debug, Clone)]
pub struct SketchRenderer {
    /// Model rate, Hz.
    pub rate: f64,
    /// Sleep per step (to make renders last long enough to cancel in tests).
    pub step_delay: Duration,
}

impl SketchRenderer {
    /// A sketch model at `rate` Hz with no delay.
    pub fn new(rate: f64) -> Self {
        Self {
            rate,
            step_delay: Duration::ZERO,
        }
    }
}

/// SplitMix64: a tiny portable generator, so the sketch needs no tensors.
struct SplitMix(u64);

impl SplitMix {
    fn next_f32(&mut self) -> f32 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        ((z >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    }
}

impl SketchRenderer {
    /// Runs `steps` steps pulling `x` towards `target`, reporting progress.
    fn refine(
        &self,
        x: &mut AudioBuf,
        target: &AudioBuf,
        s: &RenderSettings,
        progress: Progress<'_>,
    ) -> Result<()> {
        let steps = s.steps.max(1);
        // `steps` halvings of the distance to the target, applied at once: x + (t - x)(1 - 2^-steps)
        // (one pass over the audio however many steps; the steps below only pace and report).
        let pull = 1.0 - 0.5f32.powi(steps.min(64) as i32);
        for c in 0..2 {
            let t = target.channel(c);
            for (v, &g) in x.channel_mut(c).iter_mut().zip(t) {
                *v += pull * (g - *v);
            }
        }
        for step in 0..steps {
            if !self.step_delay.is_zero() {
                std::thread::sleep(self.step_delay);
            }
            if !progress((step + 1) as f32 / steps as f32) {
                return Err(EngineError::Cancelled);
            }
        }
        Ok(())
    }

    /// Seeded "detail": white noise through a first difference (high-passed), at `level`.
    fn detail(&self, len: usize, seed: u64, level: f32) -> AudioBuf {
        let mut rng = SplitMix(seed);
        let mut chans = [Vec::with_capacity(len), Vec::with_capacity(len)];
        for ch in chans.iter_mut() {
            let mut prev = 0.0;
            for _ in 0..len {
                let n = rng.next_f32();
                ch.push(level * (n - prev));
                prev = n;
            }
        }
        let [l, r] = chans;
        AudioBuf::from_channels(l, r, self.rate)
    }
}

fn add(a: &AudioBuf, b: &AudioBuf) -> AudioBuf {
    let mix = |c| {
        a.channel(c)
            .iter()
            .zip(b.channel(c))
            .map(|(x, y)| x + y)
            .collect::<Vec<f32>>()
    };
    let mut out = AudioBuf::from_channels(mix(0), mix(1), a.rate);
    out.anchor = a.anchor;
    out
}

impl Renderer for SketchRenderer {
    fn sample_rate(&self) -> f64 {
        self.rate
    }

    fn generate(
        &mut self,
        frames: usize,
        s: &RenderSettings,
        progress: Progress<'_>,
    ) -> Result<AudioBuf> {
        let target = self.detail(frames, s.seed, 0.25);
        let mut x = AudioBuf::from_channels(vec![0.0; frames], vec![0.0; frames], self.rate);
        self.refine(&mut x, &target, s, progress)?;
        Ok(x)
    }

    fn upsample(
        &mut self,
        clip: &AudioBuf,
        s: &RenderSettings,
        progress: Progress<'_>,
    ) -> Result<AudioBuf> {
        let clip = &resample(clip, self.rate);
        let target = add(clip, &self.detail(clip.len(), s.seed, 0.05));
        let mut x = clip.clone();
        self.refine(&mut x, &target, s, progress)?;
        Ok(x)
    }

    fn inpaint(
        &mut self,
        clip: &AudioBuf,
        start: usize,
        end: usize,
        s: &RenderSettings,
        progress: Progress<'_>,
    ) -> Result<AudioBuf> {
        // The region comes at the clip's rate; the sketch works at its own.
        let scale = |i: usize| (i as f64 * self.rate / clip.rate).round() as usize;
        let (start, end) = (scale(start), scale(end));
        let clip = &resample(clip, self.rate);
        let mut target = clip.clone();
        let fill = self.detail(clip.len(), s.seed, 0.25);
        for c in 0..2 {
            let f = fill.channel(c);
            let (a, b) = (start.min(clip.len()), end.min(clip.len()));
            target.channel_mut(c)[a..b].copy_from_slice(&f[a..b]);
        }
        let mut x = clip.clone();
        self.refine(&mut x, &target, s, progress)?;
        Ok(x)
    }

    fn continue_clip(
        &mut self,
        clip: &AudioBuf,
        frames: usize,
        s: &RenderSettings,
        progress: Progress<'_>,
    ) -> Result<AudioBuf> {
        let frames = (frames as f64 * self.rate / clip.rate).round() as usize;
        let clip = &resample(clip, self.rate);
        let more = self.generate(frames, s, progress)?;
        let join = |c| {
            clip.channel(c)
                .iter()
                .chain(more.channel(c))
                .copied()
                .collect::<Vec<f32>>()
        };
        let mut out = AudioBuf::from_channels(join(0), join(1), self.rate);
        out.anchor = clip.anchor;
        Ok(out)
    }
}
