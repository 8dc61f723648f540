//! The CLAP adapter (clack-plugin + clack-extensions) over [`adiff_engine`].
//!
//! No callback can panic into the host: clack catches panics at its FFI boundary, and `process`
//! additionally runs under `catch_unwind` and always returns `Ok` (writing silence on trouble),
//! because an `Err` from `process` would be boxed (an allocation) and logged.

mod ext;

use crate::denormals::DenormalGuard;
use adiff_engine::{Engine, Processor, Transport};
use clack_extensions::audio_ports::PluginAudioPorts;
use clack_extensions::params::PluginParams;
use clack_extensions::render::PluginRender;
use clack_extensions::state::PluginState;
use clack_plugin::events::event_types::TransportFlags;
use clack_plugin::events::spaces::CoreEventSpace;
use clack_plugin::prelude::*;
use clack_plugin::process::audio::{ChannelPair, PairedChannels};
use std::panic::{catch_unwind, AssertUnwindSafe};

/// Stable CLAP plugin ID.
pub const PLUGIN_ID: &str = "dev.adiff.plugin";
/// Name shown by hosts.
pub const PLUGIN_NAME: &str = "adiff";

/// The CLAP plugin type.
pub struct AdiffClap;

impl Plugin for AdiffClap {
    type AudioProcessor<'a> = AdiffAudio<'a>;
    type Shared<'a> = AdiffShared;
    type MainThread<'a> = AdiffMain<'a>;

    fn declare_extensions(builder: &mut PluginExtensions<Self>, _shared: Option<&AdiffShared>) {
        builder
            .register::<PluginAudioPorts>()
            .register::<PluginParams>()
            .register::<PluginState>()
            .register::<PluginRender>();
    }
}

impl DefaultPluginFactory for AdiffClap {
    fn get_descriptor() -> PluginDescriptor {
        use clack_plugin::plugin::features::*;
        PluginDescriptor::new(PLUGIN_ID, PLUGIN_NAME)
            .with_vendor("adiff")
            .with_version(env!("CARGO_PKG_VERSION"))
            .with_description(
                "Waveform diffusion: capture, generate, upsample, inpaint and continue audio",
            )
            .with_features([AUDIO_EFFECT, STEREO])
    }

    fn new_shared(_host: HostSharedHandle<'_>) -> Result<AdiffShared, PluginError> {
        let engine = Engine::new(crate::models::factory())
            .map_err(|_| PluginError::Message("cannot start the render worker"))?;
        Ok(AdiffShared { engine })
    }

    fn new_main_thread<'a>(
        host: HostMainThreadHandle<'a>,
        shared: &'a AdiffShared,
    ) -> Result<AdiffMain<'a>, PluginError> {
        Ok(AdiffMain { host, shared })
    }
}

/// Thread-safe part: the engine (its parameters are atomics).
pub struct AdiffShared {
    pub(crate) engine: Engine,
}

impl PluginShared<'_> for AdiffShared {}

/// Main-thread part.
pub struct AdiffMain<'a> {
    host: HostMainThreadHandle<'a>,
    shared: &'a AdiffShared,
}

impl<'a> PluginMainThread<'a, AdiffShared> for AdiffMain<'a> {}

/// Audio-thread part: the engine's processor.
pub struct AdiffAudio<'a> {
    shared: &'a AdiffShared,
    processor: Processor,
    rate: f64,
}

impl<'a> PluginAudioProcessor<'a, AdiffShared, AdiffMain<'a>> for AdiffAudio<'a> {
    fn activate(
        _host: HostAudioProcessorHandle<'a>,
        _main: &AdiffMain<'a>,
        shared: &'a AdiffShared,
        config: PluginAudioConfiguration,
    ) -> Result<Self, PluginError> {
        let processor = shared.engine.activate(config.sample_rate);
        Ok(Self {
            shared,
            processor,
            rate: config.sample_rate,
        })
    }

    fn process(
        &mut self,
        process: Process,
        audio: Audio,
        events: Events,
    ) -> Result<ProcessStatus, PluginError> {
        let _ftz = DenormalGuard::new();
        let outcome = catch_unwind(AssertUnwindSafe(|| {
            self.process_block(&process, audio, &events)
        }));
        if outcome.is_err() {
            // Nothing sensible can be written any more; the host keeps running.
            return Ok(ProcessStatus::Continue);
        }
        Ok(ProcessStatus::Continue)
    }
}

impl AdiffAudio<'_> {
    fn transport(&self, process: &Process) -> Transport {
        match process.transport {
            Some(t) => {
                let playing = t.flags.contains(TransportFlags::IS_PLAYING);
                let position = t
                    .flags
                    .contains(TransportFlags::HAS_SECONDS_TIMELINE)
                    .then(|| (f64::from(t.song_pos_seconds) * self.rate).round() as i64);
                Transport { playing, position }
            }
            None => Transport::default(),
        }
    }

    fn process_block(&mut self, process: &Process, mut audio: Audio, events: &Events) {
        let transport = self.transport(process);
        let Some(mut pair) = audio.port_pair(0) else {
            self.apply_events(events);
            return silence(audio);
        };
        let Some(mut channels) = pair.channels().ok().and_then(|c| c.into_f32()) else {
            self.apply_events(events);
            return silence(audio);
        };
        let (mut left, mut right) = (take_output(&mut channels, 0), take_output(&mut channels, 1));
        let frames = left.as_ref().map_or(0, |l| l.len());
        for batch in events.input.batch() {
            for e in batch.events() {
                self.apply_event(e);
            }
            let start = batch.first_sample().min(frames);
            let end = batch
                .next_batch_first_sample()
                .unwrap_or(frames)
                .clamp(start, frames);
            let Some(l) = left.as_deref_mut() else {
                continue;
            };
            let r = right.as_deref_mut().map(|r| &mut r[start..end]);
            let t = Transport {
                position: transport.position.map(|p| p + start as i64),
                ..transport
            };
            self.processor.process(&mut l[start..end], r, &t);
        }
    }

    fn apply_events(&self, events: &Events) {
        for e in events.input {
            self.apply_event(e);
        }
    }

    fn apply_event(&self, e: &UnknownEvent) {
        apply_param_event(&self.shared.engine, e);
    }
}

/// Sets the parameter named by a CLAP param-value event.
pub(crate) fn apply_param_event(engine: &Engine, e: &UnknownEvent) {
    if let Some(CoreEventSpace::ParamValue(ev)) = e.as_core_event() {
        if let Some(id) = ev.param_id() {
            engine.params().set_by_id(id.get(), ev.value());
        }
    }
}

/// The output slice of channel `i` holding the dry input, ready for in-place processing.
fn take_output<'a>(channels: &mut PairedChannels<'a, f32>, i: usize) -> Option<&'a mut [f32]> {
    match channels.channel_pair(i)? {
        ChannelPair::InPlace(buf) => Some(buf),
        ChannelPair::InputOutput(input, output) => {
            let n = input.len().min(output.len());
            output[..n].copy_from_slice(&input[..n]);
            Some(output)
        }
        ChannelPair::OutputOnly(output) => {
            output.fill(0.0);
            Some(output)
        }
        ChannelPair::InputOnly(_) => None,
    }
}

/// Writes zeros to every f32 output channel.
fn silence(mut audio: Audio) {
    for mut port in audio.output_ports() {
        if let Some(mut ch) = port.channels().ok().and_then(|c| c.into_f32()) {
            for c in ch.iter_mut() {
                c.fill(0.0);
            }
        }
    }
}
