//! A minimal CLAP host on clack-host, shared by the plugin test binaries: host handlers that
//! record parameter rescans, and a block driver with preallocated buffers.
#![allow(dead_code)]

use clack_extensions::params::{
    HostParams, HostParamsImplMainThread, HostParamsImplShared, ParamClearFlags, ParamRescanFlags,
};
use clack_host::events::event_types::ParamValueEvent;
use clack_host::prelude::*;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

/// Largest block the driver sends.
pub const MAX_BLOCK: usize = 4096;

/// The test host.
pub struct TestHost;

/// Thread-safe host side.
pub struct TestShared;

/// Main-thread host side: counts `params.rescan(VALUES)` calls.
pub struct TestMain {
    pub value_rescans: Arc<AtomicU32>,
}

impl SharedHandler<'_> for TestShared {
    fn request_restart(&self) {}
    fn request_process(&self) {}
    fn request_callback(&self) {}
}

impl HostParamsImplShared for TestShared {
    fn request_flush(&self) {}
}

impl MainThreadHandler<'_> for TestMain {}

impl HostParamsImplMainThread for TestMain {
    fn rescan(&self, flags: ParamRescanFlags) {
        if flags.contains(ParamRescanFlags::VALUES) {
            self.value_rescans.fetch_add(1, Ordering::SeqCst);
        }
    }
    fn clear(&self, _id: ClapId, _flags: ParamClearFlags) {}
}

impl HostHandlers for TestHost {
    type Shared<'a> = TestShared;
    type MainThread<'a> = TestMain;
    type AudioProcessor<'a> = ();

    fn declare_extensions(builder: &mut HostExtensions<Self>, _shared: &Self::Shared<'_>) {
        builder.register::<HostParams>();
    }
}

/// Creates a plugin instance; returns it and its rescan counter.
pub fn instantiate(
    entry: &PluginEntry,
    id: &std::ffi::CStr,
) -> (PluginInstance<TestHost>, Arc<AtomicU32>) {
    let info =
        HostInfo::new("adiff-tests", "adiff", "https://example.invalid", "0.1").expect("host info");
    let rescans = Arc::new(AtomicU32::new(0));
    let r = rescans.clone();
    let instance = PluginInstance::<TestHost>::new(
        |_| TestShared,
        move |_| TestMain { value_rescans: r },
        entry,
        id,
        &info,
    )
    .expect("instantiates");
    (instance, rescans)
}

/// Stereo buffers and event lists allocated once, for blocks of up to [`MAX_BLOCK`] frames.
pub struct Blocks {
    pub input: [Vec<f32>; 2],
    pub output: [Vec<f32>; 2],
    inputs: AudioPorts,
    outputs: AudioPorts,
    pub events: EventBuffer,
    out_events: EventBuffer,
}

impl Default for Blocks {
    fn default() -> Self {
        Self {
            input: [vec![0.0; MAX_BLOCK], vec![0.0; MAX_BLOCK]],
            output: [vec![0.0; MAX_BLOCK], vec![0.0; MAX_BLOCK]],
            inputs: AudioPorts::with_capacity(2, 1),
            outputs: AudioPorts::with_capacity(2, 1),
            events: EventBuffer::with_capacity(256),
            out_events: EventBuffer::with_capacity(256),
        }
    }
}

impl Blocks {
    /// Queues a parameter change at the block's first frame.
    pub fn set_param(&mut self, id: u32, value: f64) {
        self.events.push(&ParamValueEvent::new(
            0,
            ClapId::new(id),
            Pckn::match_all(),
            value,
        ));
    }

    /// Processes `frames` frames of `self.input`; `around` wraps exactly the plugin's `process`
    /// call (the realtime test arms its allocation counter there). The queued events are consumed.
    pub fn process_with(
        &mut self,
        processor: &mut StartedPluginAudioProcessor<TestHost>,
        frames: usize,
        around: &mut dyn FnMut(&mut dyn FnMut()),
    ) {
        let [in_l, in_r] = &mut self.input;
        let [out_l, out_r] = &mut self.output;
        let input = self.inputs.with_input_buffers([AudioPortBuffer {
            channels: AudioPortBufferType::f32_input_only(
                [&mut in_l[..frames], &mut in_r[..frames]]
                    .into_iter()
                    .map(InputChannel::variable),
            ),
            latency: 0,
        }]);
        let mut output = self.outputs.with_output_buffers([AudioPortBuffer {
            channels: AudioPortBufferType::f32_output_only(
                [&mut out_l[..frames], &mut out_r[..frames]].into_iter(),
            ),
            latency: 0,
        }]);
        let events = &self.events;
        let out_events = &mut self.out_events;
        let mut status = None;
        around(&mut || {
            status = Some(processor.process(
                &input,
                &mut output,
                &events.as_input(),
                &mut out_events.as_output(),
                None,
                None,
            ));
        });
        assert!(matches!(status, Some(Ok(_))), "process failed: {status:?}");
        self.events.clear();
        self.out_events.clear();
    }

    /// Processes one block with nothing wrapped around it.
    pub fn process(
        &mut self,
        processor: &mut StartedPluginAudioProcessor<TestHost>,
        frames: usize,
    ) {
        self.process_with(processor, frames, &mut |f| f());
    }

    /// Runs `signal` (both channels) through the plugin in blocks of `block`; returns the left
    /// output.
    pub fn run(
        &mut self,
        processor: &mut StartedPluginAudioProcessor<TestHost>,
        signal: &[f32],
        block: usize,
    ) -> Vec<f32> {
        let mut out = Vec::with_capacity(signal.len());
        for chunk in signal.chunks(block) {
            self.input[0][..chunk.len()].copy_from_slice(chunk);
            self.input[1][..chunk.len()].copy_from_slice(chunk);
            self.process(processor, chunk.len());
            out.extend_from_slice(&self.output[0][..chunk.len()]);
        }
        out
    }
}

/// A deterministic test signal: two sines, amplitude 0.5.
pub fn test_signal(n: usize) -> Vec<f32> {
    (0..n)
        .map(|i| 0.3 * (i as f32 * 0.013).sin() + 0.2 * (i as f32 * 0.071).sin())
        .collect()
}
