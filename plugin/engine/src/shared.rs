//! `Shared`: what every thread of one plugin instance sees: parameter values, render progress and
//! the request/cancel/finish generations as atomics, plus the stored clips that only the main
//! thread and the worker lock (the audio thread never does).

use crate::buffer::AudioBuf;
use crate::params::ParamValues;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};

/// Clips and model choice kept for the state (main thread and worker only).
#[derive(Debug, Default)]
pub struct Stored {
    /// Model folder; `None` is the embedded default.
    pub model_path: Option<PathBuf>,
    /// The last captured clip.
    pub captured: Option<AudioBuf>,
    /// The last rendered result, at the host rate it was delivered at.
    pub result: Option<AudioBuf>,
}

/// Thread-safe state of one plugin instance.
#[derive(Debug)]
pub struct Shared {
    /// Parameter values (plain).
    pub params: ParamValues,
    progress: AtomicU32,
    requested: AtomicU64,
    cancelled: AtomicU64,
    finished: AtomicU64,
    results_received: AtomicU64,
    offline: AtomicBool,
    shutdown: AtomicBool,
    host_rate: AtomicU64,
    state_epoch: AtomicU64,
    /// Set by the main thread: the worker drops its renderer (model folder changed).
    pub(crate) model_changed: AtomicBool,
    /// Set by the main thread: the worker re-delivers the stored result at the host rate.
    pub(crate) replay: AtomicBool,
    stored: Mutex<Stored>,
    messages: Mutex<Vec<String>>,
}

impl Default for Shared {
    fn default() -> Self {
        Self {
            params: ParamValues::default(),
            progress: AtomicU32::new(0),
            requested: AtomicU64::new(0),
            cancelled: AtomicU64::new(0),
            finished: AtomicU64::new(0),
            results_received: AtomicU64::new(0),
            offline: AtomicBool::new(false),
            shutdown: AtomicBool::new(false),
            host_rate: AtomicU64::new(48_000f64.to_bits()),
            state_epoch: AtomicU64::new(0),
            model_changed: AtomicBool::new(false),
            replay: AtomicBool::new(false),
            stored: Mutex::new(Stored::default()),
            messages: Mutex::new(Vec::new()),
        }
    }
}

impl Shared {
    /// Render progress, `0..=1`.
    pub fn progress(&self) -> f32 {
        f32::from_bits(self.progress.load(Ordering::Relaxed))
    }

    pub(crate) fn set_progress(&self, p: f32) {
        self.progress
            .store(p.clamp(0.0, 1.0).to_bits(), Ordering::Relaxed);
    }

    /// A new render request: returns its generation (this cancels every older one).
    pub(crate) fn next_request(&self) -> u64 {
        self.set_progress(0.0);
        self.requested.fetch_add(1, Ordering::AcqRel) + 1
    }

    /// Cancels the render in progress and any queued one.
    pub fn cancel(&self) {
        self.cancelled
            .store(self.requested.load(Ordering::Acquire), Ordering::Release);
    }

    /// True while `gen` is the newest request and was not cancelled (and no shutdown).
    pub(crate) fn is_current(&self, gen: u64) -> bool {
        !self.shutdown.load(Ordering::Acquire)
            && gen == self.requested.load(Ordering::Acquire)
            && gen > self.cancelled.load(Ordering::Acquire)
    }

    pub(crate) fn finish(&self, gen: u64) {
        self.finished.fetch_max(gen, Ordering::AcqRel);
    }

    /// True while a render was requested and has neither finished nor been cancelled.
    pub fn render_pending(&self) -> bool {
        let r = self.requested.load(Ordering::Acquire);
        r > self.finished.load(Ordering::Acquire) && r > self.cancelled.load(Ordering::Acquire)
    }

    /// How many rendered results the audio thread has taken into playback.
    pub fn results_received(&self) -> u64 {
        self.results_received.load(Ordering::Acquire)
    }

    pub(crate) fn result_received(&self) {
        self.results_received.fetch_add(1, Ordering::AcqRel);
    }

    /// True in offline (bounce) mode: the audio thread may wait for a pending render.
    pub fn offline(&self) -> bool {
        self.offline.load(Ordering::Relaxed)
    }

    /// Switches offline (bounce) mode.
    pub fn set_offline(&self, on: bool) {
        self.offline.store(on, Ordering::Relaxed);
    }

    pub(crate) fn shutting_down(&self) -> bool {
        self.shutdown.load(Ordering::Acquire)
    }

    pub(crate) fn begin_shutdown(&self) {
        self.shutdown.store(true, Ordering::Release);
    }

    /// The host's sample rate at the last activation, Hz.
    pub fn host_rate(&self) -> f64 {
        f64::from_bits(self.host_rate.load(Ordering::Relaxed))
    }

    pub(crate) fn set_host_rate(&self, rate: f64) {
        self.host_rate.store(rate.to_bits(), Ordering::Relaxed);
    }

    /// Counts state loads: the audio thread takes parameter values changed by a load as the new
    /// baseline instead of as edges (a restored "render = on" does not start a render).
    pub fn state_epoch(&self) -> u64 {
        self.state_epoch.load(Ordering::Acquire)
    }

    pub(crate) fn bump_state_epoch(&self) {
        self.state_epoch.fetch_add(1, Ordering::AcqRel);
    }

    /// Locks the stored clips (never from the audio thread). A poisoned lock is recovered.
    pub(crate) fn stored(&self) -> MutexGuard<'_, Stored> {
        self.stored.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records a message for the host's log (and stderr).
    pub(crate) fn log(&self, message: String) {
        eprintln!("adiff: {message}");
        self.messages
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(message);
    }

    /// Takes the messages logged since the last call (main thread).
    pub fn take_messages(&self) -> Vec<String> {
        std::mem::take(&mut *self.messages.lock().unwrap_or_else(|e| e.into_inner()))
    }
}
