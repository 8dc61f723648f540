//! Realtime proof for the VST3 adapter: a counting global allocator, armed only on the audio thread
//! around `IAudioProcessor::process`, sees zero allocations and deallocations over thousands of
//! blocks of 1..=4096 frames with parameter changes at random offsets, a capture, and a render
//! finishing (its buffer swapped in, the old one recycled) in the middle, then playback.
#![allow(unsafe_code)]
// the counting allocator and COM calls
// The bindings' enum types differ by platform (c_int on Windows): some casts are no-ops here.
#![allow(clippy::unnecessary_cast)]

mod plugin_vst3_common;

use adiff_engine::Param;
use plugin_vst3_common::{test_signal, Changes, Effect, Module, MAX_BLOCK};
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use vst3::ComWrapper;
use vst3::Steinberg::Vst::{
    AudioBusBuffers, AudioBusBuffers__type0, IAudioProcessorTrait, IComponentTrait,
    IEditControllerTrait, IParameterChanges, ProcessContext, ProcessContext_, ProcessData,
    ProcessModes_, SpeakerArr, SymbolicSampleSizes_,
};
use vst3::Steinberg::{kResultOk, kResultTrue, IPluginBaseTrait};

struct Counting;

thread_local! {
    static ARMED: Cell<bool> = const { Cell::new(false) };
    static COUNT: Cell<usize> = const { Cell::new(0) };
}

fn note() {
    if ARMED.try_with(Cell::get).unwrap_or(false) {
        let _ = COUNT.try_with(|c| c.set(c.get() + 1));
    }
}

// SAFETY: every call forwards to `System` unchanged; the thread-locals are const-initialised
// (touching them never allocates or re-enters the allocator).
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note();
        // SAFETY: forwarded contract.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        note();
        // SAFETY: forwarded contract.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note();
        // SAFETY: forwarded contract.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note();
        // SAFETY: forwarded contract.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Preallocated host buffers for blocks of up to `MAX_BLOCK` frames.
struct Host {
    input: [Vec<f32>; 2],
    output: [Vec<f32>; 2],
    position: i64,
}

impl Host {
    /// One `process` call of `n` frames of `signal` (from `at`), counting the audio thread's
    /// allocations inside the call only. Returns (result, allocations).
    fn block(
        &mut self,
        effect: &Effect,
        signal: &[f32],
        at: usize,
        n: usize,
        changes: &ComWrapper<Changes>,
        output: &ComWrapper<Changes>,
    ) -> (i32, usize) {
        for c in 0..2 {
            for i in 0..n {
                self.input[c][i] = signal.get(at + i).copied().unwrap_or(0.0);
            }
        }
        let mut in_ptrs = [self.input[0].as_mut_ptr(), self.input[1].as_mut_ptr()];
        let mut out_ptrs = [self.output[0].as_mut_ptr(), self.output[1].as_mut_ptr()];
        let mut inputs = AudioBusBuffers {
            numChannels: 2,
            silenceFlags: 0,
            __field0: AudioBusBuffers__type0 {
                channelBuffers32: in_ptrs.as_mut_ptr(),
            },
        };
        let mut outputs = AudioBusBuffers {
            numChannels: 2,
            silenceFlags: 0,
            __field0: AudioBusBuffers__type0 {
                channelBuffers32: out_ptrs.as_mut_ptr(),
            },
        };
        // SAFETY: all-zero is a valid ProcessContext (plain data).
        let mut context: ProcessContext = unsafe { std::mem::zeroed() };
        context.sampleRate = 48_000.0;
        context.state = ProcessContext_::StatesAndFlags_::kPlaying as u32;
        context.projectTimeSamples = self.position;
        self.position += n as i64;
        let changes = changes.as_com_ref::<IParameterChanges>().expect("changes");
        let mut data = ProcessData {
            processMode: ProcessModes_::kRealtime as i32,
            symbolicSampleSize: SymbolicSampleSizes_::kSample32 as i32,
            numSamples: n as i32,
            numInputs: 1,
            numOutputs: 1,
            inputs: &mut inputs,
            outputs: &mut outputs,
            inputParameterChanges: changes.as_ptr(),
            outputParameterChanges: output
                .as_com_ref::<IParameterChanges>()
                .expect("output")
                .as_ptr(),
            inputEvents: std::ptr::null_mut(),
            outputEvents: std::ptr::null_mut(),
            processContext: &mut context,
        };
        let before = COUNT.with(Cell::get);
        ARMED.with(|a| a.set(true));
        // SAFETY: every pointer in `data` is valid for `n` frames during the call.
        let r = unsafe { effect.processor.process(&mut data) };
        ARMED.with(|a| a.set(false));
        (r, COUNT.with(Cell::get) - before)
    }
}

/// A small deterministic generator (block sizes and offsets).
struct Lcg(u64);

impl Lcg {
    fn below(&mut self, n: usize) -> usize {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        ((self.0 >> 33) as usize) % n.max(1)
    }
}

#[test]
fn vst3_process_never_allocates_on_the_audio_thread() {
    // The counter sees allocations when armed (so a zero below means something).
    ARMED.with(|a| a.set(true));
    let probe = std::hint::black_box(Vec::<u8>::with_capacity(8));
    drop(probe);
    ARMED.with(|a| a.set(false));
    assert_eq!(
        COUNT.with(Cell::get),
        2,
        "the counting allocator is installed"
    );
    COUNT.with(|c| c.set(0));

    let module = Module::in_process(adiff_plugin::vst3::GetPluginFactory());
    let effect = Effect::new(&module, &adiff_plugin::vst3::CLASS_ID);
    let (mut i, mut o) = (SpeakerArr::kStereo, SpeakerArr::kStereo);
    // SAFETY: plain calls on a live instance with valid pointers.
    unsafe {
        assert_eq!(effect.component.initialize(std::ptr::null_mut()), kResultOk);
        assert_eq!(
            effect.setup(48_000.0, ProcessModes_::kRealtime as i32),
            kResultOk
        );
        assert_eq!(
            effect.processor.setBusArrangements(&mut i, 1, &mut o, 1),
            kResultTrue
        );
        assert_eq!(effect.component.setActive(1), kResultOk);
        assert_eq!(effect.processor.setProcessing(1), kResultOk);
    }
    let mut host = Host {
        input: [vec![0.0; MAX_BLOCK], vec![0.0; MAX_BLOCK]],
        output: [vec![0.0; MAX_BLOCK], vec![0.0; MAX_BLOCK]],
        position: 0,
    };
    let signal = test_signal(96_000);
    let mut rng = Lcg(7);
    let norm = |p: Param, v: f64| p.spec().normalize(v);
    let (mut total, mut at, mut rendered_at, mut played) = (0usize, 0usize, None, false);
    // At least 3000 blocks, and 1000 more after the render is delivered (paced while it runs).
    let blocks = 3000;
    let started = std::time::Instant::now();
    let mut reported = Vec::new();
    let mut b = 0;
    while b < blocks || rendered_at.is_none_or(|r| b < r + 1000) {
        assert!(
            started.elapsed().as_secs() < 120,
            "the render never finished"
        );
        if b > 41 && rendered_at.is_none() {
            // Audio runs at its own pace: give the worker time as a real stream would.
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        let n = 1 + rng.below(MAX_BLOCK);
        let off = rng.below(n) as i32;
        let mut points = vec![(
            Param::Gain.id(),
            off,
            norm(Param::Gain, -(rng.below(12) as f64)),
        )];
        match b {
            0 => points.extend([
                (Param::Mode.id(), 0, norm(Param::Mode, 1.0)),
                (Param::Steps.id(), 0, norm(Param::Steps, 4.0)),
                (Param::Arm.id(), off, 1.0),
            ]),
            40 => points.push((Param::Arm.id(), off, 0.0)),
            41 => points.push((Param::Render.id(), off, 1.0)),
            _ => {}
        }
        // SAFETY: plain call on a live controller (outside the counted region).
        let done = unsafe { effect.controller.getParamNormalized(Param::Progress.id()) } >= 1.0;
        if b > 41 && done && rendered_at.is_none() {
            rendered_at = Some(b);
            points.push((Param::Trigger.id(), off, 1.0));
        }
        if let Some(r) = rendered_at {
            played |= b > r && host.output[0][..n].iter().any(|&x| x != 0.0);
        }
        let changes = Changes::new(&points);
        let output = Changes::output(&[Param::Progress.id()]);
        let (r, allocs) = host.block(&effect, &signal, at, n, &changes, &output);
        reported.extend(
            output
                .points(Param::Progress.id())
                .into_iter()
                .map(|(_, v)| v),
        );
        assert_eq!(r, kResultOk);
        assert_eq!(
            allocs, 0,
            "block {b} ({n} frames) allocated or freed {allocs} times on the audio thread"
        );
        drop(changes);
        at += n;
        total += n;
        b += 1;
    }
    let r = rendered_at.expect("the render finished during the run");
    assert!(
        r > 41 && b >= r + 1000,
        "the render finished in the middle (block {r} of {b})"
    );
    assert!(played, "the rendered result played back");
    assert_eq!(
        reported.last(),
        Some(&1.0),
        "progress reached the host as output parameter changes"
    );
    assert!(
        reported.windows(2).all(|w| w[0] != w[1]),
        "progress is sent only when it moves"
    );
    assert!(total > 1_000_000);
    // SAFETY: plain calls on a live instance.
    unsafe {
        assert_eq!(effect.processor.setProcessing(0), kResultOk);
        assert_eq!(effect.component.setActive(0), kResultOk);
        assert_eq!(effect.component.terminate(), kResultOk);
    }
}
