//! The audio-thread half of the engine: capture, trigger / transport-synced playback, mix, gain.
//!
//! Everything it touches is allocated at activation. It never allocates, frees, locks, waits
//! (except in offline mode, for a pending render) or does I/O: it exchanges owned buffers with
//! the worker through bounded channels with `try_send`/`try_recv`, and buffers it replaces go back
//! to the worker to be freed.

use crate::buffer::AudioBuf;
use crate::params::Param;
use crate::renderer::{RenderSettings, SamplerKind};
use crate::shared::Shared;
use crate::worker::{Delivery, Job, Mode, RenderRequest};
use crossbeam_channel::{Receiver, Sender};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The host transport at the start of a block.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Transport {
    /// True while the host is playing.
    pub playing: bool,
    /// Timeline position of the block's first frame, samples at the host rate (if known).
    pub position: Option<i64>,
}

/// Largest capture buffer, frames (16 Mi: 128 MiB per stereo buffer; 349 s at 48 kHz, still over
/// 60 s up to 279 kHz). Two such buffers are allocated at activation.
pub const MAX_CAPTURE_FRAMES: usize = 1 << 24;

/// How long an offline bounce waits for a pending render at most.
const OFFLINE_WAIT: Duration = Duration::from_secs(600);

#[derive(Debug, Default, Clone, Copy)]
struct Edges {
    arm: bool,
    trigger: bool,
    render: bool,
    cancel: bool,
}

/// The audio processor of one activation.
pub struct Processor {
    shared: Arc<Shared>,
    jobs: Sender<Job>,
    deliveries: Receiver<Delivery>,
    recycle: Sender<AudioBuf>,
    worker: Option<std::thread::Thread>,
    rate: f64,
    capture_frames: usize,
    capture: Option<AudioBuf>,
    spare: Option<AudioBuf>,
    capturing: bool,
    arm_pending: bool,
    outbox_capture: Option<AudioBuf>,
    outbox_request: Option<RenderRequest>,
    outbox_recycle: Option<AudioBuf>,
    result: Option<AudioBuf>,
    play_pos: Option<usize>,
    prev: Edges,
    epoch: u64,
}

pub(crate) struct ProcessorEnds {
    pub jobs: Sender<Job>,
    pub deliveries: Receiver<Delivery>,
    pub recycle: Sender<AudioBuf>,
    pub worker: Option<std::thread::Thread>,
}

impl Processor {
    /// Allocates the capture buffers (`capture_seconds` at `rate`, two of them for double
    /// buffering). Main thread, at activation.
    pub(crate) fn new(shared: Arc<Shared>, ends: ProcessorEnds, rate: f64) -> Self {
        let epoch = shared.state_epoch();
        let seconds = shared.params.get(Param::CaptureSeconds);
        let capture_frames = ((seconds * rate).ceil() as usize).min(MAX_CAPTURE_FRAMES);
        let prev = Edges {
            arm: shared.params.on(Param::Arm),
            trigger: shared.params.on(Param::Trigger),
            render: shared.params.on(Param::Render),
            cancel: shared.params.on(Param::Cancel),
        };
        Self {
            shared,
            jobs: ends.jobs,
            deliveries: ends.deliveries,
            recycle: ends.recycle,
            worker: ends.worker,
            rate,
            capture_frames,
            capture: Some(AudioBuf::with_capacity(capture_frames, rate)),
            spare: Some(AudioBuf::with_capacity(capture_frames, rate)),
            capturing: false,
            arm_pending: false,
            outbox_capture: None,
            outbox_request: None,
            outbox_recycle: None,
            result: None,
            play_pos: None,
            prev,
            epoch,
        }
    }

    /// Capture capacity, frames.
    pub fn capture_capacity(&self) -> usize {
        self.capture_frames
    }

    /// True while recording.
    pub fn capturing(&self) -> bool {
        self.capturing
    }

    /// Frames of the result ready for playback (0 if none).
    pub fn result_len(&self) -> usize {
        self.result.as_ref().map_or(0, AudioBuf::len)
    }

    /// Processes one block in place: `left`/`right` hold the dry input and receive the output.
    /// `right` is `None` for mono. Any length works; nothing here allocates or panics.
    pub fn process(
        &mut self,
        left: &mut [f32],
        mut right: Option<&mut [f32]>,
        transport: &Transport,
    ) {
        self.service();
        self.handle_edges(transport);
        if self.shared.offline() {
            self.wait_for_pending_render();
        }

        let p = &self.shared.params;
        let mix = (p.get(Param::Mix) / 100.0) as f32;
        let gain = 10f32.powf(p.get(Param::Gain) as f32 / 20.0);
        let sync_start = match (p.on(Param::Sync), transport) {
            (
                true,
                Transport {
                    playing: true,
                    position: Some(pos),
                },
            ) => Some(*pos),
            _ => None,
        };
        let n = match right.as_deref() {
            Some(r) => left.len().min(r.len()),
            None => left.len(),
        };
        for i in 0..n {
            let l = clean(left[i]);
            let r = right.as_deref().map_or(l, |r| clean(r[i]));
            if self.capturing {
                if let Some(cap) = self.capture.as_mut() {
                    cap.push(l, r);
                }
            }
            // Nothing playing: the dry signal passes through (gain still applies).
            let (wl, wr) = self.wet(sync_start, i).unwrap_or((l, r));
            left[i] = flush((l + mix * (wl - l)) * gain);
            if let Some(rr) = right.as_deref_mut() {
                rr[i] = flush((r + mix * (wr - r)) * gain);
            }
        }
        if self.capturing && self.capture.as_ref().is_some_and(AudioBuf::is_full) {
            self.finish_capture();
        }
        self.flush_outbox();
    }

    /// The wet frame for sample `i` of this block (`None`: nothing is playing), advancing
    /// trigger playback.
    #[inline]
    fn wet(&mut self, sync_start: Option<i64>, i: usize) -> Option<(f32, f32)> {
        let res = self.result.as_ref()?;
        if let Some(start) = sync_start {
            let pos = start + i as i64 - res.anchor;
            return if pos >= 0 {
                res.frame(pos as usize)
            } else {
                None
            };
        }
        let pos = self.play_pos?;
        let f = res.frame(pos);
        self.play_pos = f.map(|_| pos + 1);
        f
    }

    fn handle_edges(&mut self, transport: &Transport) {
        let p = &self.shared.params;
        let now = Edges {
            arm: p.on(Param::Arm),
            trigger: p.on(Param::Trigger),
            render: p.on(Param::Render),
            cancel: p.on(Param::Cancel),
        };
        let epoch = self.shared.state_epoch();
        if epoch != self.epoch {
            // Values restored by a state load are a new baseline, not edges.
            self.epoch = epoch;
            self.prev = now;
        }
        if now.arm && !self.prev.arm {
            self.arm_pending = true;
        }
        if !now.arm {
            self.arm_pending = false;
            if self.capturing {
                self.finish_capture();
            }
        }
        if self.arm_pending && !self.capturing {
            self.start_capture(transport);
        }
        if now.trigger && !self.prev.trigger {
            self.play_pos = Some(0);
        }
        if now.cancel && !self.prev.cancel {
            self.shared.cancel();
            self.outbox_request = None;
        }
        if now.render && !self.prev.render {
            if self.capturing {
                self.finish_capture();
            }
            self.outbox_request = Some(self.request());
        }
        self.prev = now;
    }

    fn request(&self) -> RenderRequest {
        let p = &self.shared.params;
        RenderRequest {
            gen: self.shared.next_request(),
            mode: Mode::from_index(p.get(Param::Mode) as usize),
            settings: RenderSettings {
                steps: p.get(Param::Steps) as usize,
                sampler: SamplerKind::from_index(p.get(Param::Sampler) as usize)
                    .unwrap_or(SamplerKind::Adpm2),
                seed: p.get(Param::Seed) as u64,
                guidance: p.get(Param::Guidance) as f32,
                factor: if p.get(Param::UpsampleAuto) >= 0.5 {
                    0
                } else {
                    crate::params::factor_from_index(p.get(Param::Factor) as usize)
                },
            },
            region: (p.get(Param::RegionStart), p.get(Param::RegionEnd)),
            length: p.get(Param::Length),
        }
    }

    fn start_capture(&mut self, transport: &Transport) {
        if self.capture.is_none() {
            self.capture = self.spare.take();
        }
        if let Some(cap) = self.capture.as_mut() {
            cap.clear();
            cap.anchor = if transport.playing {
                transport.position.unwrap_or(0)
            } else {
                0
            };
            self.capturing = true;
            self.arm_pending = false;
        }
    }

    fn finish_capture(&mut self) {
        self.capturing = false;
        if self.outbox_capture.is_none() {
            self.outbox_capture = self.capture.take();
            self.capture = self.spare.take();
        }
    }

    /// Takes deliveries from the worker, recycling what they replace.
    fn service(&mut self) {
        self.flush_outbox();
        while self.outbox_recycle.is_none() {
            let Ok(d) = self.deliveries.try_recv() else {
                break;
            };
            match d {
                Delivery::Result(buf) if buf.rate == self.rate => {
                    self.outbox_recycle = self.result.replace(buf);
                    self.shared.result_received();
                }
                Delivery::Spare(buf)
                    if buf.capacity() == self.capture_frames && self.spare.is_none() =>
                {
                    if self.capture.is_none() {
                        self.capture = Some(buf);
                    } else {
                        self.spare = Some(buf);
                    }
                }
                Delivery::Result(buf) | Delivery::Spare(buf) => self.outbox_recycle = Some(buf),
            }
            self.flush_outbox();
        }
    }

    fn flush_outbox(&mut self) {
        let mut sent = false;
        if let Some(buf) = self.outbox_capture.take() {
            match self.jobs.try_send(Job::Captured(buf)) {
                Ok(()) => sent = true,
                Err(e) => {
                    if let Job::Captured(b) = e.into_inner() {
                        self.outbox_capture = Some(b);
                    }
                }
            }
        }
        if self.outbox_capture.is_none() {
            if let Some(r) = self.outbox_request.take() {
                match self.jobs.try_send(Job::Render(r)) {
                    Ok(()) => sent = true,
                    Err(_) => self.outbox_request = Some(r),
                }
            }
        }
        if let Some(buf) = self.outbox_recycle.take() {
            match self.recycle.try_send(buf) {
                Ok(()) => sent = true,
                Err(e) => self.outbox_recycle = Some(e.into_inner()),
            }
        }
        if sent {
            if let Some(w) = &self.worker {
                w.unpark();
            }
        }
    }

    /// Offline bounce: wait (bounded) until a pending render is delivered.
    fn wait_for_pending_render(&mut self) {
        let deadline = Instant::now() + OFFLINE_WAIT;
        while (self.shared.render_pending() || self.outbox_request.is_some())
            && Instant::now() < deadline
        {
            self.flush_outbox();
            std::thread::sleep(Duration::from_millis(1));
        }
        self.service();
    }
}

impl Drop for Processor {
    fn drop(&mut self) {
        // Deactivation (main thread): a capture in progress is kept, and whatever is still
        // queued here goes to the worker. A render request the full job queue cannot take now
        // would be lost with this processor while the shared state still counts it as pending
        // (an offline block of the next activation would then wait for it), so it is cancelled.
        if self.capturing {
            self.finish_capture();
        }
        self.flush_outbox();
        if self.outbox_request.take().is_some() {
            self.shared.cancel();
        }
    }
}

/// NaN and infinities become silence.
#[inline]
fn clean(x: f32) -> f32 {
    if x.is_finite() {
        x
    } else {
        0.0
    }
}

/// Non-finite and denormal values become zero on the way out.
#[inline]
fn flush(x: f32) -> f32 {
    if x.is_finite() && x.abs() >= f32::MIN_POSITIVE {
        x
    } else {
        0.0
    }
}
