//! `IAudioProcessor::process`: host buffers and parameter queues onto the engine [`Processor`].
//!
//! Parameter points are applied sample-accurately: the block is split at every point's offset and
//! each segment goes through the engine processor with the values in force at its start. Nothing
//! here allocates, locks a lock the worker can hold, or panics on host input.
#![allow(unsafe_code)] // raw host buffers and COM parameter queues

use super::AdiffVst3;
use adiff_engine::{Param, Transport};
use std::slice;
use std::sync::atomic::Ordering;
use vst3::ComRef;
use vst3::Steinberg::tresult;
use vst3::Steinberg::Vst::{
    AudioBusBuffers, IParamValueQueueTrait, IParameterChanges, IParameterChangesTrait,
    ProcessContext_, ProcessData, Sample32, SymbolicSampleSizes_,
};
use vst3::Steinberg::{kInvalidArgument, kResultFalse, kResultOk};

type Changes<'a> = Option<ComRef<'a, IParameterChanges>>;

/// Processes one block.
///
/// # Safety
/// `data` is null or the host's valid `ProcessData` for this call, with buffers of `numSamples`
/// frames as VST3 specifies.
pub unsafe fn process(plugin: &AdiffVst3, data: *mut ProcessData) -> tresult {
    // SAFETY: per the contract, valid for this call or null.
    let Some(data) = (unsafe { data.as_mut() }) else {
        return kInvalidArgument;
    };
    // SAFETY: the host's parameter changes for this block, valid for this call (or null).
    let changes: Changes = unsafe { ComRef::from_raw(data.inputParameterChanges) };
    let n = data.numSamples.max(0) as usize;
    if data.symbolicSampleSize != SymbolicSampleSizes_::kSample32 as i32 {
        apply_all(plugin, changes);
        return kResultFalse;
    }
    // SAFETY: the host's bus arrays, `numInputs`/`numOutputs` long, valid for this call.
    let (input, output) = unsafe {
        (
            bus(data.inputs, data.numInputs),
            bus(data.outputs, data.numOutputs),
        )
    };
    // SAFETY: channel arrays and sample buffers of `n` frames, as VST3 specifies.
    let (left, right) = unsafe { prepare(input, output, n) };
    let Some(left) = left else {
        apply_all(plugin, changes);
        return kResultOk;
    };
    let mut right = right;
    let Ok(mut slot) = plugin.processor.try_lock() else {
        // Being (de)activated right now: silence, never wait.
        left.fill(0.0);
        if let Some(r) = right {
            r.fill(0.0);
        }
        apply_all(plugin, changes);
        return kResultOk;
    };
    let Some(processor) = slot.as_mut() else {
        left.fill(0.0);
        if let Some(r) = right {
            r.fill(0.0);
        }
        apply_all(plugin, changes);
        return kResultOk;
    };
    // SAFETY: the host's process context for this block, valid for this call (or null).
    let transport = unsafe { transport(data.processContext) };

    let n = n as i32;
    let mut start = 0i32;
    apply_at(plugin, changes, 0, n);
    while start < n {
        let end = next_offset(changes, start, n);
        let (s, e) = (start as usize, end as usize);
        let t = Transport {
            position: transport.position.map(|p| p + i64::from(start)),
            ..transport
        };
        processor.process(
            &mut left[s..e],
            right.as_deref_mut().map(|r| &mut r[s..e]),
            &t,
        );
        start = end;
        if start < n {
            apply_at(plugin, changes, start, n);
        }
    }
    if n > 0 {
        apply_at(plugin, changes, n, n);
    }
    report_progress(plugin, data.outputParameterChanges);
    let flags = silence_flags(left, right.as_deref());
    // SAFETY: the same host bus array as above, valid for this call.
    if let Some(out) = unsafe { bus(data.outputs, data.numOutputs) } {
        out.silenceFlags = flags;
    }
    kResultOk
}

/// Sends the read-only progress parameter to the host (output parameter changes) when it moved.
fn report_progress(plugin: &AdiffVst3, out: *mut IParameterChanges) {
    // SAFETY: the host's output parameter changes for this block, valid for this call (or null).
    let Some(out) = (unsafe { ComRef::from_raw(out) }) else {
        return;
    };
    let progress = plugin.engine.shared().progress();
    if plugin.sent_progress.load(Ordering::Relaxed) == progress.to_bits() {
        return;
    }
    let id = Param::Progress.id();
    let mut index = 0;
    // SAFETY: `out` is live; `id` and `index` are valid for the call.
    let queue = unsafe { ComRef::from_raw(out.addParameterData(&id, &mut index)) };
    let Some(queue) = queue else {
        return;
    };
    let value = Param::Progress
        .spec()
        .normalize(f64::from(progress) * 100.0);
    let mut point = 0;
    // SAFETY: `queue` is the live queue the host just returned.
    if unsafe { queue.addPoint(0, value, &mut point) } == kResultOk {
        plugin
            .sent_progress
            .store(progress.to_bits(), Ordering::Relaxed);
    }
}

/// VST3 silence flags of the output: bit `c` set when channel `c` is all zeros.
fn silence_flags(left: &[f32], right: Option<&[f32]>) -> u64 {
    let silent = |c: &[f32]| c.iter().all(|&x| x == 0.0);
    u64::from(silent(left)) | right.map_or(0, |r| u64::from(silent(r)) << 1)
}

/// The first bus of a bus array, if any.
///
/// # Safety
/// `buses` is null or points to `count` valid `AudioBusBuffers`.
unsafe fn bus<'a>(buses: *mut AudioBusBuffers, count: i32) -> Option<&'a mut AudioBusBuffers> {
    if count < 1 {
        return None;
    }
    // SAFETY: per the contract.
    unsafe { buses.as_mut() }
}

/// Channel `i` of a 32-bit bus (null if absent).
///
/// # Safety
/// The bus's channel array is null or holds `numChannels` pointers.
unsafe fn channel(b: &AudioBusBuffers, i: usize) -> *mut Sample32 {
    if i >= b.numChannels.max(0) as usize {
        return std::ptr::null_mut();
    }
    // SAFETY: reading the 32-bit variant, the one negotiated with canProcessSampleSize.
    let chans = unsafe { b.__field0.channelBuffers32 };
    if chans.is_null() {
        return std::ptr::null_mut();
    }
    // SAFETY: `i < numChannels` entries are readable.
    unsafe { *chans.add(i) }
}

/// The output channels, holding the dry input (copied unless the host processes in place).
///
/// # Safety
/// Both buses' channel arrays are null or hold `numChannels` pointers, each null or to `n`
/// samples valid for this call.
unsafe fn prepare<'a>(
    input: Option<&mut AudioBusBuffers>,
    output: Option<&mut AudioBusBuffers>,
    n: usize,
) -> (Option<&'a mut [f32]>, Option<&'a mut [f32]>) {
    let Some(output) = output else {
        return (None, None);
    };
    output.silenceFlags = 0;
    let mut outs: [Option<&'a mut [f32]>; 2] = [None, None];
    // A host passing one buffer for both channels gets it processed once (no aliasing).
    let mut outs_ptr0 = std::ptr::null_mut();
    for (c, out) in outs.iter_mut().enumerate() {
        // SAFETY: per the contract.
        let o = unsafe { channel(output, c) };
        if o.is_null() || (c == 1 && outs_ptr0 == o) {
            continue;
        }
        if c == 0 {
            outs_ptr0 = o;
        }
        // A mono input feeds both output channels.
        let i = input.as_deref().map_or(std::ptr::null_mut(), |b| {
            let ch = c.min(b.numChannels.max(1) as usize - 1);
            // SAFETY: per the contract.
            unsafe { channel(b, ch) }
        });
        // SAFETY: `o` holds `n` samples for this call; no other reference to it exists.
        let o = unsafe { slice::from_raw_parts_mut(o, n) };
        if i.is_null() {
            o.fill(0.0);
        } else if i != o.as_mut_ptr() {
            // SAFETY: a distinct input buffer of `n` samples (in-place buffers are skipped).
            o.copy_from_slice(unsafe { slice::from_raw_parts(i, n) });
        }
        *out = Some(o);
    }
    let [l, r] = outs;
    (l, r)
}

/// The transport at the block start.
///
/// # Safety
/// `ctx` is null or the host's valid `ProcessContext`.
unsafe fn transport(ctx: *mut vst3::Steinberg::Vst::ProcessContext) -> Transport {
    // SAFETY: per the contract.
    match unsafe { ctx.as_ref() } {
        Some(c) => Transport {
            playing: c.state & ProcessContext_::StatesAndFlags_::kPlaying as u32 != 0,
            position: Some(c.projectTimeSamples),
        },
        None => Transport::default(),
    }
}

/// Calls `f(param_id, offset, normalized)` for every point, offsets clamped into `0..=n`.
fn for_each_point(changes: Changes, n: i32, mut f: impl FnMut(u32, i32, f64)) {
    let Some(changes) = changes else {
        return;
    };
    // SAFETY: `changes` is the host's live IParameterChanges for this call.
    let count = unsafe { changes.getParameterCount() };
    for q in 0..count {
        // SAFETY: as above; a returned queue stays valid for this call.
        let Some(queue) = (unsafe { ComRef::from_raw(changes.getParameterData(q)) }) else {
            continue;
        };
        // SAFETY: `queue` is a live IParamValueQueue.
        let (id, points) = unsafe { (queue.getParameterId(), queue.getPointCount()) };
        for i in 0..points {
            let (mut offset, mut value) = (0i32, 0f64);
            // SAFETY: out-pointers to locals.
            if unsafe { queue.getPoint(i, &mut offset, &mut value) } == kResultOk {
                f(id, offset.clamp(0, n), value);
            }
        }
    }
}

/// Sets one parameter from a normalised host value.
fn set_normalized(plugin: &AdiffVst3, id: u32, normalized: f64) {
    if let Some(p) = Param::from_id(id) {
        plugin
            .engine
            .params()
            .set_by_id(id, p.spec().denormalize(normalized));
    }
}

/// Applies the points at (clamped) offset `at`, in queue order.
fn apply_at(plugin: &AdiffVst3, changes: Changes, at: i32, n: i32) {
    for_each_point(changes, n, |id, offset, v| {
        if offset == at {
            set_normalized(plugin, id, v);
        }
    });
}

/// Applies every point (no audio to split).
fn apply_all(plugin: &AdiffVst3, changes: Changes) {
    for_each_point(changes, i32::MAX, |id, _, v| set_normalized(plugin, id, v));
}

/// The first point offset after `after` (or `n`).
fn next_offset(changes: Changes, after: i32, n: i32) -> i32 {
    let mut next = n;
    for_each_point(changes, n, |_, offset, _| {
        if offset > after && offset < next {
            next = offset;
        }
    });
    next
}
