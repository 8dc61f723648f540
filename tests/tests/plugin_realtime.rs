//! Realtime proof: a counting global allocator, armed only on the audio thread inside `process`,
//! sees zero allocations and deallocations over thousands of blocks of 1..=4096 frames, through
//! the engine's processor and through the CLAP adapter driven by clack-host, with a render
//! finishing (and its buffer swapped in and the old one recycled) in the middle.
#![allow(unsafe_code)] // the counting allocator below

mod plugin_common;

use adiff_engine::{Engine, Param, Renderer, SketchRenderer, Transport};
use adiff_plugin::clap::{AdiffClap, PLUGIN_ID};
use clack_extensions::params::PluginParams;
use clack_host::prelude::*;
use clack_plugin::entry::SinglePluginEntry;
use plugin_common::{test_signal, Blocks, MAX_BLOCK};
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::time::{Duration, Instant};

struct Counting;

thread_local! {
    static ARMED: Cell<bool> = const { Cell::new(false) };
    static ALLOCS: Cell<usize> = const { Cell::new(0) };
    static FREES: Cell<usize> = const { Cell::new(0) };
}

fn armed() -> bool {
    ARMED.try_with(Cell::get).unwrap_or(false)
}

fn bump(counter: &'static std::thread::LocalKey<Cell<usize>>) {
    let _ = counter.try_with(|c| c.set(c.get() + 1));
}

// SAFETY: every call forwards to `System` with the caller's arguments unchanged; the counters are
// atomics and the thread-local flag is const-initialised (no allocation, no re-entrancy).
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if armed() {
            bump(&ALLOCS);
        }
        // SAFETY: forwarded contract.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if armed() {
            bump(&FREES);
        }
        // SAFETY: forwarded contract.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if armed() {
            bump(&ALLOCS);
        }
        // SAFETY: forwarded contract.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if armed() {
            bump(&ALLOCS);
            bump(&FREES);
        }
        // SAFETY: forwarded contract.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Counts what `f` allocates and frees on this thread.
fn counted(f: &mut dyn FnMut()) -> (usize, usize) {
    let (a0, f0) = (ALLOCS.with(Cell::get), FREES.with(Cell::get));
    ARMED.with(|a| a.set(true));
    f();
    ARMED.with(|a| a.set(false));
    (ALLOCS.with(Cell::get) - a0, FREES.with(Cell::get) - f0)
}

/// Block sizes 1..=4096 from a fixed LCG (every size class, reproducibly).
struct Sizes(u64);

impl Sizes {
    fn next(&mut self) -> usize {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        1 + ((self.0 >> 33) as usize % MAX_BLOCK)
    }
}

#[test]
fn the_counter_sees_allocations_on_the_armed_thread_only() {
    let (a, f) = counted(&mut || drop(std::hint::black_box(vec![1u8; 64])));
    assert_eq!((a, f), (1, 1));
    let (a, f) = counted(&mut || {
        std::thread::spawn(|| drop(std::hint::black_box(vec![1u8; 64])))
            .join()
            .ok();
    });
    assert!(a >= 1, "spawning allocates on this thread");
    let _ = f;
}

#[test]
fn engine_processor_never_allocates_on_the_audio_thread() {
    const RATE: f64 = 48_000.0;
    let engine = Engine::new(Box::new(|_| {
        let mut r = SketchRenderer::new(RATE);
        r.step_delay = Duration::from_millis(4);
        Ok(Box::new(r) as Box<dyn Renderer>)
    }))
    .expect("engine");
    let mut p = engine.activate(RATE);
    let signal = test_signal(MAX_BLOCK);
    let (mut l, mut r) = (vec![0.0f32; MAX_BLOCK], vec![0.0f32; MAX_BLOCK]);
    let mut sizes = Sizes(7);
    let (mut allocs, mut frees, mut blocks) = (0, 0, 0);
    let mut block =
        |p: &mut adiff_engine::Processor, n: usize, allocs: &mut usize, frees: &mut usize| {
            l[..n].copy_from_slice(&signal[..n]);
            r[..n].copy_from_slice(&signal[..n]);
            let (a, f) = counted(&mut || {
                p.process(
                    &mut l[..n],
                    Some(&mut r[..n]),
                    &Transport {
                        playing: true,
                        position: Some(0),
                    },
                )
            });
            *allocs += a;
            *frees += f;
        };
    let params = engine.params();
    for round in 0..3 {
        // Capture ~2 s, then ask for an upsample (20 steps x 4 ms) and keep processing.
        params.set(Param::Arm, 1.0);
        for _ in 0..40 {
            block(&mut p, sizes.next(), &mut allocs, &mut frees);
            blocks += 1;
        }
        params.set(Param::Arm, 0.0);
        params.set(Param::Render, 1.0);
        let seen = engine.shared().results_received();
        let t = Instant::now();
        while engine.shared().results_received() == seen {
            assert!(
                t.elapsed() < Duration::from_secs(60),
                "round {round}: no result"
            );
            block(&mut p, sizes.next(), &mut allocs, &mut frees);
            blocks += 1;
        }
        // Play it back (trigger, then transport sync) for a while.
        params.set(Param::Render, 0.0);
        params.set(Param::Trigger, 1.0);
        for i in 0..400 {
            if i == 200 {
                params.set(Param::Sync, 1.0);
            }
            block(&mut p, sizes.next(), &mut allocs, &mut frees);
            blocks += 1;
        }
        params.set(Param::Trigger, 0.0);
        params.set(Param::Sync, 0.0);
    }
    assert!(engine.shared().results_received() >= 3);
    assert!(blocks >= 1200, "only {blocks} blocks");
    assert_eq!(
        (allocs, frees),
        (0, 0),
        "audio thread allocated {allocs} times and freed {frees} times"
    );
}

#[test]
fn clap_adapter_never_allocates_on_the_audio_thread() {
    let entry = PluginEntry::load_from_clack::<SinglePluginEntry<AdiffClap>>(c"").expect("entry");
    let id = std::ffi::CString::new(PLUGIN_ID).expect("id");
    let (mut instance, _) = plugin_common::instantiate(&entry, &id);
    let config = PluginAudioConfiguration {
        sample_rate: 44_100.0,
        min_frames_count: 1,
        max_frames_count: MAX_BLOCK as u32,
    };
    let stopped = instance.activate(|_, _| (), config).expect("activates");
    let mut processor = stopped.start_processing().expect("starts");
    let mut blocks = Blocks::default();
    let signal = test_signal(MAX_BLOCK);
    blocks.input[0].copy_from_slice(&signal);
    blocks.input[1].copy_from_slice(&signal);
    let mut sizes = Sizes(11);
    let (mut allocs, mut frees, mut count) = (0, 0, 0);
    let mut run = |blocks: &mut Blocks,
                   processor: &mut StartedPluginAudioProcessor<_>,
                   allocs: &mut usize,
                   frees: &mut usize| {
        let n = sizes.next();
        blocks.process_with(processor, n, &mut |f| {
            let (a, fr) = counted(f);
            *allocs += a;
            *frees += fr;
        });
        n
    };
    let progress = |instance: &mut PluginInstance<_>| {
        let h = instance.plugin_handle();
        let ext = h.get_extension::<PluginParams>().expect("params");
        ext.get_value(&h, ClapId::new(Param::Progress.id()))
            .unwrap_or(0.0)
    };
    for round in 0..2 {
        blocks.set_param(Param::Arm.id(), 1.0);
        blocks.set_param(Param::Steps.id(), 30.0);
        for _ in 0..30 {
            run(&mut blocks, &mut processor, &mut allocs, &mut frees);
            count += 1;
        }
        blocks.set_param(Param::Arm.id(), 0.0);
        blocks.set_param(Param::Render.id(), 1.0);
        run(&mut blocks, &mut processor, &mut allocs, &mut frees);
        let t = Instant::now();
        let mut done_blocks = 0;
        // Keep processing while the worker renders, and 50 blocks after it finished.
        while done_blocks < 50 {
            assert!(
                t.elapsed() < Duration::from_secs(120),
                "round {round}: render never finished"
            );
            run(&mut blocks, &mut processor, &mut allocs, &mut frees);
            count += 1;
            if progress(&mut instance) >= 100.0 {
                done_blocks += 1;
            }
        }
        blocks.set_param(Param::Render.id(), 0.0);
        blocks.set_param(Param::Trigger.id(), 1.0);
        let mut moved = 0.0f32;
        for _ in 0..300 {
            let n = run(&mut blocks, &mut processor, &mut allocs, &mut frees);
            count += 1;
            let d = blocks.output[0][..n]
                .iter()
                .zip(&blocks.input[0][..n])
                .map(|(o, i)| (o - i).abs());
            moved = d.fold(moved, f32::max);
        }
        // Mix is 100 %: without the rendered result in playback the output would be the input.
        assert!(
            moved > 1e-3,
            "round {round}: the result was not played back (max change {moved})"
        );
        blocks.set_param(Param::Trigger.id(), 0.0);
    }
    assert!(count >= 800, "only {count} blocks");
    assert_eq!(
        (allocs, frees),
        (0, 0),
        "audio thread allocated {allocs} times and freed {frees} times"
    );
    instance.deactivate(processor.stop_processing());
}
