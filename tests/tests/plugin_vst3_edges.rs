//! The VST3 adapter at the edges a host may take it to (in-process, through its COM interfaces):
//! refused formats and arrangements, bus queries, parameter flushes without audio, processing
//! while inactive, in-place and mono buses, non-finite input, unknown and read-only parameters,
//! bad text, and render progress reported to the host as output parameter changes.
#![allow(unsafe_code)]
// COM calls and raw host buffers
// The bindings' enum types differ by platform (c_int on Windows): some casts are no-ops here.
#![allow(clippy::unnecessary_cast)]

mod plugin_vst3_common;

use adiff_engine::Param;
use plugin_vst3_common::{Changes, Effect, Module};
use std::time::{Duration, Instant};
use vst3::ComWrapper;
use vst3::Steinberg::Vst::{
    AudioBusBuffers, AudioBusBuffers__type0, BusDirections_, BusInfo, IAudioProcessorTrait,
    IComponentTrait, IEditControllerTrait, IParameterChanges, MediaTypes_, ProcessData,
    ProcessModes_, SpeakerArr, SymbolicSampleSizes_,
};
use vst3::Steinberg::{kInvalidArgument, kResultFalse, kResultOk, kResultTrue, IPluginBaseTrait};

fn norm(p: Param, v: f64) -> f64 {
    p.spec().normalize(v)
}

/// One `process` call on raw channel pointers (`None`: no bus at all).
fn raw(
    effect: &Effect,
    n: usize,
    ins: Option<&mut [*mut f32]>,
    outs: Option<&mut [*mut f32]>,
    changes: &ComWrapper<Changes>,
    output: Option<&ComWrapper<Changes>>,
) -> i32 {
    let bus = |ch: Option<&mut [*mut f32]>| {
        ch.map(|c| AudioBusBuffers {
            numChannels: c.len() as i32,
            silenceFlags: 0,
            __field0: AudioBusBuffers__type0 {
                channelBuffers32: c.as_mut_ptr(),
            },
        })
    };
    let (mut i, mut o) = (bus(ins), bus(outs));
    let ptr =
        |b: &mut Option<AudioBusBuffers>| b.as_mut().map_or(std::ptr::null_mut(), |b| b as *mut _);
    let mut data = ProcessData {
        processMode: ProcessModes_::kRealtime as i32,
        symbolicSampleSize: SymbolicSampleSizes_::kSample32 as i32,
        numSamples: n as i32,
        numInputs: i32::from(i.is_some()),
        numOutputs: i32::from(o.is_some()),
        inputs: ptr(&mut i),
        outputs: ptr(&mut o),
        inputParameterChanges: changes
            .as_com_ref::<IParameterChanges>()
            .expect("changes")
            .as_ptr(),
        outputParameterChanges: output
            .and_then(|c| c.as_com_ref::<IParameterChanges>())
            .map_or(std::ptr::null_mut(), |c| c.as_ptr()),
        inputEvents: std::ptr::null_mut(),
        outputEvents: std::ptr::null_mut(),
        processContext: std::ptr::null_mut(),
    };
    // SAFETY: the buses and channel pointers are valid for `n` frames during the call.
    unsafe { effect.processor.process(&mut data) }
}

fn value(effect: &Effect, p: Param) -> f64 {
    // SAFETY: plain call on a live controller.
    p.spec()
        .denormalize(unsafe { effect.controller.getParamNormalized(p.id()) })
}

#[test]
fn vst3_adapter_handles_host_edge_cases() {
    let module = Module::in_process(adiff_plugin::vst3::GetPluginFactory());
    let effect = Effect::new(&module, &adiff_plugin::vst3::CLASS_ID);
    let audio = MediaTypes_::kAudio as i32;
    let (input, output) = (
        BusDirections_::kInput as i32,
        BusDirections_::kOutput as i32,
    );
    // SAFETY: plain calls on a live instance with valid pointers.
    unsafe {
        assert_eq!(effect.component.initialize(std::ptr::null_mut()), kResultOk);
        assert_eq!(
            effect
                .processor
                .canProcessSampleSize(SymbolicSampleSizes_::kSample32 as i32),
            kResultTrue
        );
        assert_eq!(
            effect
                .processor
                .canProcessSampleSize(SymbolicSampleSizes_::kSample64 as i32),
            kResultFalse
        );
        let (mut mono, mut stereo) = (SpeakerArr::kMono, SpeakerArr::kStereo);
        assert_eq!(
            effect
                .processor
                .setBusArrangements(&mut mono, 1, &mut stereo, 1),
            kResultFalse
        );
        assert_eq!(
            effect
                .processor
                .setBusArrangements(&mut stereo, 1, &mut stereo, 1),
            kResultTrue
        );
        let mut arr = 0;
        assert_eq!(
            effect.processor.getBusArrangement(output, 0, &mut arr),
            kResultOk
        );
        assert_eq!(arr, SpeakerArr::kStereo);
        assert_eq!(
            effect.processor.getBusArrangement(output, 1, &mut arr),
            kInvalidArgument
        );
        assert_eq!(effect.component.getBusCount(audio, input), 1);
        assert_eq!(
            effect
                .component
                .getBusCount(MediaTypes_::kEvent as i32, input),
            0
        );
        let mut info: BusInfo = std::mem::zeroed();
        assert_eq!(
            effect.component.getBusInfo(audio, output, 0, &mut info),
            kResultOk
        );
        assert_eq!(info.channelCount, 2);
        assert_eq!(
            effect.component.getBusInfo(audio, output, 1, &mut info),
            kInvalidArgument
        );
        // Read-only and unknown parameters, bad text.
        assert_eq!(
            effect
                .controller
                .setParamNormalized(Param::Progress.id(), 1.0),
            kResultOk
        );
        assert_eq!(
            value(&effect, Param::Progress),
            0.0,
            "progress is read-only"
        );
        assert_eq!(
            effect.controller.setParamNormalized(12345, 1.0),
            kInvalidArgument
        );
        let mut text: Vec<u16> = "loud".encode_utf16().chain([0]).collect();
        let mut v = 0.0;
        assert_eq!(
            effect
                .controller
                .getParamValueByString(Param::Gain.id(), text.as_mut_ptr(), &mut v),
            kResultFalse
        );
    }

    // Inactive: silence out, parameters still applied; a flush without buffers applies them too.
    let (mut l, mut r) = (vec![1f32; 64], vec![1f32; 64]);
    let mut input = vec![0.5f32; 64];
    let changes = Changes::new(&[(Param::Mix.id(), 10, norm(Param::Mix, 50.0))]);
    let mut ins = [input.as_mut_ptr(), input.as_mut_ptr()];
    let mut outs = [l.as_mut_ptr(), r.as_mut_ptr()];
    assert_eq!(
        raw(&effect, 64, Some(&mut ins), Some(&mut outs), &changes, None),
        kResultOk
    );
    assert!(l.iter().chain(&r).all(|&x| x == 0.0), "inactive: silence");
    assert_eq!(value(&effect, Param::Mix), 50.0);
    let flush = Changes::new(&[(Param::Mix.id(), 0, norm(Param::Mix, 100.0)), (999, 0, 1.0)]);
    assert_eq!(raw(&effect, 0, None, None, &flush, None), kResultOk);
    assert_eq!(value(&effect, Param::Mix), 100.0);

    assert_eq!(
        effect.setup(48_000.0, ProcessModes_::kRealtime as i32),
        kResultOk
    );
    // SAFETY: plain calls on a live instance.
    unsafe {
        assert_eq!(effect.component.setActive(1), kResultOk);
        assert_eq!(effect.processor.setProcessing(1), kResultOk);
    }
    let flush = Changes::new(&[(
        Param::Gain.id(),
        0,
        norm(Param::Gain, 20.0 * 0.5f64.log10()),
    )]);
    assert_eq!(
        raw(&effect, 0, None, None, &flush, None),
        kResultOk,
        "flush while active"
    );

    // In place (input and output share buffers), with NaN and infinity in the input.
    let mut buf_l: Vec<f32> = (0..64).map(|i| i as f32 / 64.0).collect();
    let mut buf_r = buf_l.clone();
    buf_l[3] = f32::NAN;
    buf_r[5] = f32::INFINITY;
    let expect: Vec<f32> = (0..64).map(|i| i as f32 / 128.0).collect();
    let mut chans = [buf_l.as_mut_ptr(), buf_r.as_mut_ptr()];
    let mut same = chans;
    assert_eq!(
        raw(
            &effect,
            64,
            Some(&mut chans),
            Some(&mut same),
            &Changes::new(&[]),
            None
        ),
        kResultOk
    );
    for (i, (&a, &b)) in buf_l.iter().zip(&buf_r).enumerate() {
        let (el, er) = (
            if i == 3 { 0.0 } else { expect[i] },
            if i == 5 { 0.0 } else { expect[i] },
        );
        assert!(
            (a - el).abs() < 1e-6 && (b - er).abs() < 1e-6,
            "frame {i}: {a} {b}"
        );
    }

    // A mono input bus feeds both output channels.
    let mut mono = vec![0.5f32; 32];
    let (mut l, mut r) = (vec![9f32; 32], vec![9f32; 32]);
    let mut ins = [mono.as_mut_ptr()];
    let mut outs = [l.as_mut_ptr(), r.as_mut_ptr()];
    assert_eq!(
        raw(
            &effect,
            32,
            Some(&mut ins),
            Some(&mut outs),
            &Changes::new(&[]),
            None
        ),
        kResultOk
    );
    assert!(l.iter().chain(&r).all(|&x| (x - 0.25).abs() < 1e-6));
    // No input bus: the output is the (silent) dry signal.
    let mut outs = [l.as_mut_ptr(), r.as_mut_ptr()];
    assert_eq!(
        raw(&effect, 32, None, Some(&mut outs), &Changes::new(&[]), None),
        kResultOk
    );
    assert!(l.iter().chain(&r).all(|&x| x == 0.0));

    // A generate render reports its progress to the host through output parameter changes.
    let request = Changes::new(&[
        (Param::Mode.id(), 0, norm(Param::Mode, 0.0)),
        (Param::Length.id(), 0, norm(Param::Length, 0.5)),
        (Param::Steps.id(), 0, norm(Param::Steps, 4.0)),
        (Param::Render.id(), 0, 1.0),
    ]);
    let mut reported = Vec::new();
    let t = Instant::now();
    let mut first = true;
    while reported.last() != Some(&1.0) {
        assert!(
            t.elapsed() < Duration::from_secs(60),
            "no progress reported: {reported:?}"
        );
        let out = Changes::output(&[]);
        let mut outs = [l.as_mut_ptr(), r.as_mut_ptr()];
        let changes = if first { &request } else { &Changes::new(&[]) };
        first = false;
        assert_eq!(
            raw(&effect, 32, None, Some(&mut outs), changes, Some(&out)),
            kResultOk
        );
        reported.extend(out.points(Param::Progress.id()).into_iter().map(|(_, v)| v));
        std::thread::sleep(Duration::from_millis(1));
    }
    assert_eq!(value(&effect, Param::Progress), 100.0);

    // SAFETY: plain calls on a live instance.
    unsafe {
        assert_eq!(effect.processor.setProcessing(0), kResultOk);
        assert_eq!(effect.component.setActive(0), kResultOk);
        assert_eq!(effect.component.terminate(), kResultOk);
    }
}
