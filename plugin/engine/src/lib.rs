//! adiff-engine: the framework-agnostic plugin engine under the CLAP and VST3 adapters.
//! It holds no clack or vst3 types and no `unsafe`.
//!
//! Roles (DESIGN.md, "Plugin: one engine, two thin adapters"):
//! - [`Shared`] (parameter values, progress and flags as atomics),
//! - [`Engine`], the controller on the main thread (parameters, state, model path, activation),
//! - [`Processor`] on the audio thread (capture, trigger, playback, mix),
//! - [`worker`]: the named render thread that owns the [`Renderer`].

pub mod buffer;
pub mod error;
pub mod model_renderer;
pub mod params;
pub mod processor;
pub mod renderer;
pub mod resample;
pub mod shared;
pub mod sketch;
pub mod state;
pub mod worker;

pub use buffer::AudioBuf;
pub use error::{EngineError, Result};
pub use model_renderer::ModelRenderer;
pub use params::{Param, ParamSpec, ParamValues, PARAMS};
pub use processor::{Processor, Transport};
pub use renderer::{Progress, RenderSettings, Renderer, RendererFactory, SamplerKind};
pub use shared::Shared;
pub use sketch::SketchRenderer;

use crossbeam_channel::{bounded, Receiver, Sender};
use processor::ProcessorEnds;
use std::path::PathBuf;
use std::sync::Arc;
use worker::{Control, Delivery, Job, Worker, WorkerEnds};

/// Capacity of the audio thread -> worker job queue.
const JOB_QUEUE: usize = 16;
/// Capacity of the worker -> audio thread delivery queue.
const DELIVERY_QUEUE: usize = 4;
/// Capacity of the audio thread -> worker recycle queue.
const RECYCLE_QUEUE: usize = 16;

/// One plugin instance's engine: the main-thread controller plus the worker it started.
pub struct Engine {
    shared: Arc<Shared>,
    jobs: Sender<Job>,
    deliveries: Receiver<Delivery>,
    recycle: Sender<AudioBuf>,
    worker: Worker,
}

impl Engine {
    /// Starts the worker (it loads no model until the first render).
    pub fn new(factory: RendererFactory) -> Result<Self> {
        let shared = Arc::new(Shared::default());
        let (jobs, jobs_rx) = bounded(JOB_QUEUE);
        let (deliveries_tx, deliveries) = bounded(DELIVERY_QUEUE);
        let (recycle, recycle_rx) = bounded(RECYCLE_QUEUE);
        let (control, control_rx) = bounded(JOB_QUEUE);
        let ends = WorkerEnds {
            jobs: jobs_rx,
            control: control_rx,
            deliveries: deliveries_tx,
            recycle: recycle_rx,
        };
        let worker = Worker::spawn(shared.clone(), factory, ends, control)?;
        Ok(Self {
            shared,
            jobs,
            deliveries,
            recycle,
            worker,
        })
    }

    /// The state every thread shares.
    pub fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    /// Parameter values.
    pub fn params(&self) -> &ParamValues {
        &self.shared.params
    }

    /// Builds the audio processor for `host_rate` Hz (allocates its buffers). Main thread.
    pub fn activate(&self, host_rate: f64) -> Processor {
        let rate = if host_rate.is_finite() && host_rate >= 1000.0 {
            host_rate
        } else {
            48_000.0
        };
        self.shared.set_host_rate(rate);
        let ends = ProcessorEnds {
            jobs: self.jobs.clone(),
            deliveries: self.deliveries.clone(),
            recycle: self.recycle.clone(),
            worker: self.worker.thread(),
        };
        let p = Processor::new(self.shared.clone(), ends, rate);
        self.worker.send(Control::Replay);
        p
    }

    /// Chooses the model folder (`None`: embedded default); it loads on the next render.
    pub fn set_model_path(&self, path: Option<PathBuf>) {
        self.worker.send(Control::SetModel(path));
    }

    /// The model folder in use (`None`: embedded default).
    pub fn model_path(&self) -> Option<PathBuf> {
        self.shared.stored().model_path.clone()
    }

    /// Offline (bounce) mode: the audio thread waits for a pending render instead of playing
    /// silence.
    pub fn set_offline(&self, on: bool) {
        self.shared.set_offline(on);
    }

    /// The rendered result kept for playback and the project (at the host rate it was delivered
    /// at), if any.
    pub fn result(&self) -> Option<AudioBuf> {
        self.shared.stored().result.clone()
    }

    /// Serialises parameters, model path, captured clip and rendered result.
    pub fn save_state(&self) -> Vec<u8> {
        let stored = self.shared.stored();
        state::encode(
            &self.shared.params,
            stored.model_path.as_deref(),
            stored.captured.as_ref(),
            stored.result.as_ref(),
        )
    }

    /// Restores a state. A newer, corrupt or truncated state is refused with a logged reason and
    /// the instance starts clean (default parameters, no clips); the error is returned too.
    pub fn load_state(&self, bytes: &[u8]) -> Result<()> {
        self.shared.cancel();
        let (s, outcome) = match state::decode(bytes) {
            Ok(s) => (s, Ok(())),
            Err(e) => {
                self.shared
                    .log(format!("state refused, starting clean: {e}"));
                (state::PluginState::default(), Err(e))
            }
        };
        self.shared.params.reset();
        for (p, v) in &s.params {
            self.shared.params.set(*p, *v);
        }
        self.shared.bump_state_epoch();
        let model_changed = {
            let mut stored = self.shared.stored();
            let changed = stored.model_path != s.model_path;
            stored.captured = s.captured;
            stored.result = s.result;
            changed
        };
        if model_changed {
            self.worker.send(Control::SetModel(s.model_path));
        }
        self.worker.send(Control::Replay);
        outcome
    }
}
