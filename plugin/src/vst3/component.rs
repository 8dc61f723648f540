//! The single-component effect: `IComponent` (buses, activation, state) and `IAudioProcessor`
//! (setup, arrangements, processing) over one [`Engine`]; `IEditController` is in `controller`.
#![allow(unsafe_code)] // COM class called by the host

use super::guard;
use crate::models;
use adiff_engine::{Engine, Processor};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};
use vst3::Steinberg::Vst::{
    BusDirection, BusDirections_, BusInfo, BusInfo_, BusTypes_, IAudioProcessor,
    IAudioProcessorTrait, IComponent, IComponentHandler, IComponentTrait, IEditController,
    IProcessContextRequirements, IProcessContextRequirementsTrait, IProcessContextRequirements_,
    IoMode, MediaType, MediaTypes_, ProcessData, ProcessModes_, ProcessSetup, RoutingInfo,
    SpeakerArr, SpeakerArrangement, SymbolicSampleSizes_,
};
use vst3::Steinberg::{kInvalidArgument, kNotImplemented, kResultFalse, kResultOk, kResultTrue};
use vst3::Steinberg::{tresult, FUnknown, IBStream, IPluginBaseTrait, TBool, TUID};
use vst3::{Class, ComPtr};

/// The host's component handler, kept to tell it about parameter changes after a state load.
pub(crate) struct Handler(pub(crate) ComPtr<IComponentHandler>);

// SAFETY: VST3 requires IComponentHandler to be callable from the main thread, and this adapter
// only calls it from main-thread callbacks (setState); moving the pointer between threads is fine.
unsafe impl Send for Handler {}

/// One plugin instance: the engine plus the processor of the current activation.
pub struct AdiffVst3 {
    /// The processor while active. Locked by the main thread (setActive) and, with `try_lock`
    /// only, by the audio thread; the worker never touches it, so the audio thread never waits.
    pub(crate) processor: Mutex<Option<Processor>>,
    pub(crate) handler: Mutex<Option<Handler>>,
    rate: AtomicU64,
    /// Progress last sent to the host through output parameter changes (f32 bits; audio thread).
    pub(crate) sent_progress: AtomicU32,
    /// Declared last: dropped after the processor (which hands its buffers back to the worker).
    pub(crate) engine: Engine,
}

impl Class for AdiffVst3 {
    type Interfaces = (
        IComponent,
        IAudioProcessor,
        IEditController,
        IProcessContextRequirements,
    );
}

impl AdiffVst3 {
    /// A new instance with its render worker started (no model is loaded until the first render).
    pub fn new() -> Option<Self> {
        let engine = Engine::new(models::factory()).ok()?;
        Some(Self {
            processor: Mutex::new(None),
            handler: Mutex::new(None),
            rate: AtomicU64::new(48_000f64.to_bits()),
            sent_progress: AtomicU32::new(0),
            engine,
        })
    }

    /// The processor slot (main thread; a poisoned lock is recovered).
    fn processor_slot(&self) -> MutexGuard<'_, Option<Processor>> {
        self.processor.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Prints and clears what the engine logged (main thread).
    pub(crate) fn flush_log(&self) {
        for m in self.engine.shared().take_messages() {
            eprintln!("adiff (vst3): {m}");
        }
    }
}

fn is_main_audio(media: MediaType, index: i32) -> bool {
    media == MediaTypes_::kAudio as MediaType && index == 0
}

fn is_direction(dir: BusDirection) -> bool {
    dir == BusDirections_::kInput as BusDirection || dir == BusDirections_::kOutput as BusDirection
}

impl IPluginBaseTrait for AdiffVst3 {
    unsafe fn initialize(&self, _context: *mut FUnknown) -> tresult {
        kResultOk
    }

    unsafe fn terminate(&self) -> tresult {
        guard(kResultOk, || {
            self.processor_slot().take();
            self.handler
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .take();
            self.flush_log();
            kResultOk
        })
    }
}

impl IComponentTrait for AdiffVst3 {
    unsafe fn getControllerClassId(&self, _class_id: *mut TUID) -> tresult {
        // Single component: the controller is this object (queryInterface IEditController).
        kResultFalse
    }

    unsafe fn setIoMode(&self, _mode: IoMode) -> tresult {
        kResultOk
    }

    unsafe fn getBusCount(&self, media: MediaType, dir: BusDirection) -> i32 {
        i32::from(media == MediaTypes_::kAudio as MediaType && is_direction(dir))
    }

    unsafe fn getBusInfo(
        &self,
        media: MediaType,
        dir: BusDirection,
        index: i32,
        bus: *mut BusInfo,
    ) -> tresult {
        guard(kInvalidArgument, || {
            // SAFETY: the host passes a valid, writable BusInfo (or null, refused).
            let Some(bus) = (unsafe { bus.as_mut() }) else {
                return kInvalidArgument;
            };
            if !is_main_audio(media, index) || !is_direction(dir) {
                return kInvalidArgument;
            }
            bus.mediaType = media;
            bus.direction = dir;
            bus.channelCount = 2;
            let name = if dir == BusDirections_::kInput as BusDirection {
                "Input"
            } else {
                "Output"
            };
            super::text::copy_wstr(name, &mut bus.name);
            bus.busType = BusTypes_::kMain as i32;
            bus.flags = BusInfo_::BusFlags_::kDefaultActive as u32;
            kResultOk
        })
    }

    unsafe fn getRoutingInfo(&self, _in: *mut RoutingInfo, _out: *mut RoutingInfo) -> tresult {
        kNotImplemented
    }

    unsafe fn activateBus(
        &self,
        media: MediaType,
        dir: BusDirection,
        index: i32,
        _state: TBool,
    ) -> tresult {
        if is_main_audio(media, index) && is_direction(dir) {
            kResultOk
        } else {
            kInvalidArgument
        }
    }

    unsafe fn setActive(&self, state: TBool) -> tresult {
        guard(kResultFalse, || {
            let mut slot = self.processor_slot();
            if state != 0 {
                if slot.is_none() {
                    let rate = f64::from_bits(self.rate.load(Ordering::Relaxed));
                    *slot = Some(self.engine.activate(rate));
                }
            } else {
                // Dropping the processor keeps a capture in progress (it goes to the worker).
                slot.take();
            }
            drop(slot);
            self.flush_log();
            kResultOk
        })
    }

    unsafe fn setState(&self, state: *mut IBStream) -> tresult {
        // SAFETY: forwarded host stream pointer (null is handled there).
        guard(kResultFalse, || unsafe {
            super::controller::load_state(self, state)
        })
    }

    unsafe fn getState(&self, state: *mut IBStream) -> tresult {
        // SAFETY: forwarded host stream pointer (null is handled there).
        guard(kResultFalse, || unsafe {
            super::controller::save_state(self, state)
        })
    }
}

impl IAudioProcessorTrait for AdiffVst3 {
    unsafe fn setBusArrangements(
        &self,
        inputs: *mut SpeakerArrangement,
        num_ins: i32,
        outputs: *mut SpeakerArrangement,
        num_outs: i32,
    ) -> tresult {
        guard(kResultFalse, || {
            if num_ins != 1 || num_outs != 1 || inputs.is_null() || outputs.is_null() {
                return kResultFalse;
            }
            // SAFETY: one arrangement each, as counted by the host (non-null checked).
            let (i, o) = unsafe { (*inputs, *outputs) };
            if i == SpeakerArr::kStereo && o == SpeakerArr::kStereo {
                kResultTrue
            } else {
                kResultFalse
            }
        })
    }

    unsafe fn getBusArrangement(
        &self,
        dir: BusDirection,
        index: i32,
        arr: *mut SpeakerArrangement,
    ) -> tresult {
        if arr.is_null() || index != 0 || !is_direction(dir) {
            return kInvalidArgument;
        }
        // SAFETY: the host passes a writable arrangement (non-null checked).
        unsafe { *arr = SpeakerArr::kStereo };
        kResultOk
    }

    unsafe fn canProcessSampleSize(&self, size: i32) -> tresult {
        if size == SymbolicSampleSizes_::kSample32 as i32 {
            kResultTrue
        } else {
            kResultFalse
        }
    }

    unsafe fn getLatencySamples(&self) -> u32 {
        0
    }

    unsafe fn setupProcessing(&self, setup: *mut ProcessSetup) -> tresult {
        guard(kResultFalse, || {
            // SAFETY: the host passes a valid ProcessSetup (or null, refused).
            let Some(setup) = (unsafe { setup.as_ref() }) else {
                return kInvalidArgument;
            };
            if setup.symbolicSampleSize != SymbolicSampleSizes_::kSample32 as i32 {
                return kResultFalse;
            }
            self.rate
                .store(setup.sampleRate.to_bits(), Ordering::Relaxed);
            // Offline bounce: the audio thread may wait for a pending render.
            self.engine
                .set_offline(setup.processMode == ProcessModes_::kOffline as i32);
            kResultOk
        })
    }

    unsafe fn setProcessing(&self, _state: TBool) -> tresult {
        // The engine's activation (buffer allocation) happens in setActive, on the main thread;
        // setProcessing may come from the audio thread, so it changes nothing here.
        kResultOk
    }

    unsafe fn process(&self, data: *mut ProcessData) -> tresult {
        let _ftz = crate::denormals::DenormalGuard::new();
        // SAFETY: forwarded host ProcessData pointer (null is handled there).
        guard(kResultOk, || unsafe { super::process::process(self, data) })
    }

    unsafe fn getTailSamples(&self) -> u32 {
        0
    }
}

impl IProcessContextRequirementsTrait for AdiffVst3 {
    unsafe fn getProcessContextRequirements(&self) -> u32 {
        IProcessContextRequirements_::Flags_::kNeedTransportState as u32
    }
}
