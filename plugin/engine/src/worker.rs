//! The render worker: a named thread that owns the model (nih-plug's background-thread habit).
//!
//! It talks to the audio thread only through bounded channels polled with `try_recv`/`try_send`
//! (it never blocks in a channel, so the audio thread's `try_send` never has a sleeper to wake
//! through a lock), parks between polls, and exits on [`Control::Shutdown`].

use crate::buffer::AudioBuf;
use crate::error::{EngineError, Result};
use crate::params::MODES;
use crate::renderer::{RenderSettings, Renderer, RendererFactory};
use crate::resample::resample;
use crate::shared::Shared;
use crossbeam_channel::{Receiver, Sender, TrySendError};
use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

/// What a render does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Unconditional generation.
    Generate,
    /// Full-band version of the captured clip.
    Upsample,
    /// Regenerate a region of the captured clip.
    Inpaint,
    /// Extend the captured clip.
    Continue,
}

impl Mode {
    /// From the `mode` parameter's index.
    pub fn from_index(i: usize) -> Self {
        match i {
            0 => Self::Generate,
            2 => Self::Inpaint,
            3 => Self::Continue,
            _ => Self::Upsample,
        }
    }

    fn name(self) -> &'static str {
        MODES[self as usize]
    }
}

/// A render request, read from the parameters on the audio thread (plain `Copy` data).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RenderRequest {
    /// Generation: a newer request or a cancel makes this one stale.
    pub gen: u64,
    /// What to render.
    pub mode: Mode,
    /// Sampler settings.
    pub settings: RenderSettings,
    /// Inpaint region, seconds into the captured clip.
    pub region: (f64, f64),
    /// Generate / continue length, seconds.
    pub length: f64,
}

/// Audio thread -> worker.
#[derive(Debug)]
pub enum Job {
    /// Render this.
    Render(RenderRequest),
    /// A finished capture (the worker keeps it and sends back an empty buffer).
    Captured(AudioBuf),
}

/// Worker -> audio thread.
#[derive(Debug)]
pub enum Delivery {
    /// A rendered result at the host rate.
    Result(AudioBuf),
    /// An empty capture buffer to record into next.
    Spare(AudioBuf),
}

/// Main thread -> worker.
#[derive(Debug)]
pub enum Control {
    /// Use another model folder (loaded on the next render).
    SetModel(Option<PathBuf>),
    /// Deliver the stored result again, resampled to the current host rate (after activation or
    /// a state load).
    Replay,
    /// Exit the thread.
    Shutdown,
}

/// The channel ends the worker thread owns.
pub(crate) struct WorkerEnds {
    pub jobs: Receiver<Job>,
    pub control: Receiver<Control>,
    pub deliveries: Sender<Delivery>,
    pub recycle: Receiver<AudioBuf>,
}

/// Handle to the worker thread: tells it to shut down and joins it on drop.
pub struct Worker {
    handle: Option<JoinHandle<()>>,
    control: Sender<Control>,
    shared: Arc<Shared>,
}

impl Worker {
    pub(crate) fn spawn(
        shared: Arc<Shared>,
        factory: RendererFactory,
        ends: WorkerEnds,
        control: Sender<Control>,
    ) -> Result<Self> {
        let state = WorkerState {
            shared: shared.clone(),
            factory,
            renderer: None,
            ends,
            outbox: VecDeque::new(),
        };
        let handle = std::thread::Builder::new()
            .name("adiff-render".into())
            .spawn(move || state.run())
            .map_err(EngineError::Thread)?;
        Ok(Self {
            handle: Some(handle),
            control,
            shared,
        })
    }

    /// The thread, to unpark it after sending work.
    pub fn thread(&self) -> Option<std::thread::Thread> {
        self.handle.as_ref().map(|h| h.thread().clone())
    }

    /// Sends a control message (main thread) and wakes the worker. Never blocks: model changes
    /// and replays are coalesced flags (a render in progress may hold the worker for a while),
    /// and shutdown is also a flag that every render step checks.
    pub(crate) fn send(&self, c: Control) {
        match c {
            Control::SetModel(path) => {
                self.shared.stored().model_path = path;
                self.shared.model_changed.store(true, Ordering::Release);
            }
            Control::Replay => self.shared.replay.store(true, Ordering::Release),
            Control::Shutdown => {
                self.shared.begin_shutdown();
                let _ = self.control.try_send(Control::Shutdown);
            }
        }
        if let Some(h) = &self.handle {
            h.thread().unpark();
        }
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        self.send(Control::Shutdown);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

struct WorkerState {
    shared: Arc<Shared>,
    factory: RendererFactory,
    renderer: Option<Box<dyn Renderer>>,
    ends: WorkerEnds,
    outbox: VecDeque<Delivery>,
}

impl WorkerState {
    fn run(mut self) {
        loop {
            if matches!(self.ends.control.try_recv(), Ok(Control::Shutdown))
                || self.shared.shutting_down()
            {
                return;
            }
            if self.shared.model_changed.swap(false, Ordering::AcqRel) {
                self.renderer = None;
            }
            if self.shared.replay.swap(false, Ordering::AcqRel) {
                self.replay();
            }
            let mut latest = None;
            while let Ok(job) = self.ends.jobs.try_recv() {
                match job {
                    Job::Captured(buf) => self.keep_capture(buf),
                    Job::Render(r) => latest = Some(r),
                }
            }
            // Buffers the audio thread replaced are freed here, off the audio thread.
            while let Ok(buf) = self.ends.recycle.try_recv() {
                drop(buf);
            }
            self.flush_outbox();
            match latest {
                Some(r) if self.shared.is_current(r.gen) => self.render_and_deliver(r),
                Some(r) => self.shared.finish(r.gen),
                None => std::thread::park_timeout(Duration::from_millis(2)),
            }
            if self.shared.shutting_down() {
                return;
            }
        }
    }

    fn flush_outbox(&mut self) {
        while let Some(d) = self.outbox.pop_front() {
            match self.ends.deliveries.try_send(d) {
                Ok(()) => {}
                Err(TrySendError::Full(d)) => {
                    self.outbox.push_front(d);
                    return;
                }
                Err(TrySendError::Disconnected(_)) => return,
            }
        }
    }

    fn keep_capture(&mut self, buf: AudioBuf) {
        let spare = AudioBuf::with_capacity(buf.capacity(), buf.rate);
        let mut kept =
            AudioBuf::from_channels(buf.channel(0).to_vec(), buf.channel(1).to_vec(), buf.rate);
        kept.anchor = buf.anchor;
        drop(buf);
        self.shared.stored().captured = Some(kept);
        self.outbox.push_back(Delivery::Spare(spare));
        self.flush_outbox();
    }

    fn replay(&mut self) {
        let host = self.shared.host_rate();
        let result = self.shared.stored().result.clone();
        if let Some(r) = result {
            let r = resample(&r, host);
            self.outbox.retain(|d| !matches!(d, Delivery::Result(_)));
            self.outbox.push_back(Delivery::Result(r));
            self.flush_outbox();
        }
    }

    fn render_and_deliver(&mut self, r: RenderRequest) {
        match self.render(&r) {
            Ok(out) => {
                self.shared.stored().result = Some(out.clone());
                self.outbox.retain(|d| !matches!(d, Delivery::Result(_)));
                self.outbox.push_back(Delivery::Result(out));
                self.flush_outbox();
                self.shared.set_progress(1.0);
            }
            Err(EngineError::Cancelled) => self.shared.set_progress(0.0),
            Err(e) => {
                self.shared.set_progress(0.0);
                self.shared.log(format!("{e}"));
            }
        }
        self.shared.finish(r.gen);
    }

    fn render(&mut self, r: &RenderRequest) -> Result<AudioBuf> {
        if self.renderer.is_none() {
            let path = self.shared.stored().model_path.clone();
            self.renderer = Some((self.factory)(path.as_deref())?);
        }
        let Some(renderer) = self.renderer.as_mut() else {
            return Err(EngineError::Render {
                mode: r.mode.name(),
                reason: "no model".into(),
            });
        };
        let shared = self.shared.clone();
        let gen = r.gen;
        // Steps fill 0..0.99; 1.0 is set only once the result is on its way to the audio thread.
        let mut progress = move |f: f32| {
            shared.set_progress(0.99 * f);
            shared.is_current(gen)
        };
        let gen_rate = renderer.sample_rate();
        let host = self.shared.host_rate();
        let frames = |s: f64, rate: f64| (s.max(0.0) * rate).round() as usize;
        let captured = if r.mode == Mode::Generate {
            None
        } else {
            self.shared.stored().captured.clone()
        };
        // The captured clip goes to the renderer at its own rate: the model plans the rates.
        let out = match (r.mode, captured) {
            (Mode::Generate, _) => {
                renderer.generate(frames(r.length, gen_rate), &r.settings, &mut progress)?
            }
            (_, None) => {
                return Err(EngineError::Render {
                    mode: r.mode.name(),
                    reason: "no captured clip".into(),
                })
            }
            (Mode::Upsample, Some(c)) => renderer.upsample(&c, &r.settings, &mut progress)?,
            (Mode::Inpaint, Some(c)) => {
                let (start, end) = (
                    frames(r.region.0, c.rate).min(c.len()),
                    frames(r.region.1, c.rate).min(c.len()),
                );
                if start >= end {
                    let reason = format!(
                        "empty region {:.3}..{:.3} s of a {:.3} s clip",
                        r.region.0,
                        r.region.1,
                        c.seconds()
                    );
                    return Err(EngineError::Render {
                        mode: r.mode.name(),
                        reason,
                    });
                }
                renderer.inpaint(&c, start, end, &r.settings, &mut progress)?
            }
            (Mode::Continue, Some(c)) => {
                renderer.continue_clip(&c, frames(r.length, c.rate), &r.settings, &mut progress)?
            }
        };
        if let Some(note) = renderer.take_note() {
            self.shared.log(note);
        }
        if !self.shared.is_current(gen) {
            return Err(EngineError::Cancelled);
        }
        let mut out = resample(&out, host);
        out.anchor = if r.mode == Mode::Generate {
            0
        } else {
            out.anchor
        };
        Ok(sanitize(out))
    }
}

/// Non-finite samples from a model never reach the audio thread.
fn sanitize(mut b: AudioBuf) -> AudioBuf {
    for c in 0..2 {
        for v in b.channel_mut(c) {
            if !v.is_finite() {
                *v = 0.0;
            }
        }
    }
    b
}
