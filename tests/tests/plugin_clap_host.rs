//! The built `.clap` bundle loaded with clack-host as a DAW would: factory, instance, parameters,
//! activate, process, capture a test signal, upsample on the worker, play back, state save/load
//! into a fresh instance, refused state, offline render mode, deactivate.
#![allow(unsafe_code)] // loading a dynamic library

mod plugin_common;

use adiff_core::audio::AudioClip;
use adiff_core::render::{shipped, RenderOptions, UpsampleTarget};
use adiff_engine::{AudioBuf, Param, RenderSettings, Renderer, SamplerKind};
use clack_extensions::params::{ParamInfoBuffer, PluginParams};
use clack_extensions::render::{PluginRender, RenderMode};
use clack_extensions::state::PluginState;
use clack_host::prelude::*;
use plugin_common::{instantiate, test_signal, Blocks, TestHost, MAX_BLOCK};
use std::ffi::CString;
use std::ops::ControlFlow;
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

const RATE: f64 = 48_000.0;
const BLOCK: usize = 480;

fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace")
        .to_path_buf()
}

/// Runs `cargo xtask bundle adiff-plugin` and returns the bundle directory.
pub fn build_bundles() -> PathBuf {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let status = Command::new(cargo)
        .current_dir(workspace_root())
        .args(["xtask", "bundle", "adiff-plugin"])
        .status()
        .expect("runs cargo xtask");
    assert!(status.success(), "cargo xtask bundle failed");
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target"));
    target.join("bundled")
}

fn load_entry() -> PluginEntry {
    let path = build_bundles().join("adiff-plugin.clap");
    assert!(path.is_file(), "{} missing", path.display());
    // SAFETY: the library is our own plugin, built just now; clack-host checks the entry's version.
    unsafe { PluginEntry::load(&path) }.expect("loads the .clap")
}

fn config() -> PluginAudioConfiguration {
    PluginAudioConfiguration {
        sample_rate: RATE,
        min_frames_count: 1,
        max_frames_count: MAX_BLOCK as u32,
    }
}

fn get(instance: &mut PluginInstance<TestHost>, p: Param) -> f64 {
    let h = instance.plugin_handle();
    let ext = h.get_extension::<PluginParams>().expect("params extension");
    ext.get_value(&h, ClapId::new(p.id())).expect("value")
}

fn wait_for_render(
    instance: &mut PluginInstance<TestHost>,
    processor: &mut StartedPluginAudioProcessor<TestHost>,
    blocks: &mut Blocks,
) {
    let t = Instant::now();
    while get(instance, Param::Progress) < 100.0 {
        assert!(
            t.elapsed() < Duration::from_secs(60),
            "render did not finish"
        );
        blocks.run(processor, &[0.0; BLOCK], BLOCK);
        std::thread::sleep(Duration::from_millis(1));
    }
    blocks.run(processor, &[0.0; BLOCK], BLOCK);
}

fn play(
    processor: &mut StartedPluginAudioProcessor<TestHost>,
    blocks: &mut Blocks,
    n: usize,
) -> Vec<f32> {
    blocks.set_param(Param::Trigger.id(), 0.0);
    blocks.run(processor, &[0.0; 8], 8);
    blocks.set_param(Param::Trigger.id(), 1.0);
    blocks.run(processor, &vec![0.0; n], BLOCK)
}

/// What the default model's Upsample by `factor` must play: adiff-core's same-rate upsampling of
/// the captured (stereo, both sides `signal`) clip with the shipped upsampler, its band taken to
/// end at `RATE / (2 factor)`, seeded with `seed`; left channel, at the clip's rate and length.
fn default_upsample(signal: &[f32], factor: usize, seed: u64) -> Vec<f32> {
    let clip = AudioClip::new(RATE as u32, vec![signal.to_vec(), signal.to_vec()]).expect("clip");
    let (out, plan) = shipped::upsampler()
        .expect("the embedded model loads")
        .upsample(
            &clip,
            UpsampleTarget::Bandwidth(RATE / (2.0 * factor as f64)),
            &RenderOptions::seeded(seed),
            &mut |_| ControlFlow::Continue(()),
        )
        .expect("upsamples");
    assert_eq!((plan.out_rate, plan.factor), (RATE as u32, factor));
    assert_eq!(out.len(), signal.len());
    out.channels()[0].clone()
}

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

#[test]
fn clap_bundle_captures_upsamples_plays_back_and_restores_state() {
    let entry = load_entry();
    let factory = entry.get_plugin_factory().expect("plugin factory");
    let descriptor = factory.plugin_descriptor(0).expect("one plugin");
    let id = CString::from(descriptor.id().expect("id"));
    assert_eq!(id.to_str().ok(), Some(adiff_plugin::clap::PLUGIN_ID));
    assert_eq!(
        descriptor.name().and_then(|n| n.to_str().ok()),
        Some("adiff")
    );

    let (mut instance, rescans) = instantiate(&entry, &id);
    {
        let h = instance.plugin_handle();
        let params = h.get_extension::<PluginParams>().expect("params");
        assert_eq!(params.count(&h) as usize, Param::all().count());
        let mut buf = ParamInfoBuffer::new();
        let info = params.get_info(&h, 6, &mut buf).expect("info");
        assert_eq!(info.id.get(), Param::Gain.id());
        assert_eq!((info.min_value, info.max_value), (-60.0, 24.0));
        let mut text = [0u8; 64];
        let shown = params
            .value_to_text(&h, ClapId::new(Param::Gain.id()), -6.0, &mut text)
            .expect("text");
        assert_eq!(std::str::from_utf8(shown).ok(), Some("-6.0 dB"));
        assert_eq!(
            params.text_to_value(&h, ClapId::new(Param::Mode.id()), c"Inpaint"),
            Some(2.0)
        );
        // The sampler choices are the first three of adiff-core's sampler names, in the order
        // the parameter was released with; "Upsample Auto" is a parameter of its own.
        for (name, v) in [(c"adpm2", 0.0), (c"aeuler", 1.0), (c"karras", 2.0)] {
            assert_eq!(
                params.text_to_value(&h, ClapId::new(Param::Sampler.id()), name),
                Some(v),
                "{name:?}"
            );
        }
        assert_eq!(
            params.text_to_value(&h, ClapId::new(Param::Sampler.id()), c"dpmpp2m"),
            None
        );
        assert_eq!(
            params.text_to_value(&h, ClapId::new(Param::Factor.id()), c"x8"),
            Some(2.0)
        );
    }

    // Capture one second of a test signal, then upsample it.
    let mut processor = instance
        .activate(|_, _| (), config())
        .expect("activate")
        .start_processing()
        .expect("start");
    let mut blocks = Blocks::default();
    let signal = test_signal(48_000);
    blocks.set_param(Param::Arm.id(), 1.0);
    let passed = blocks.run(&mut processor, &signal, BLOCK);
    assert!(
        max_diff(&passed, &signal) < 1e-6,
        "capture must pass audio through (no result yet, mix ignored)"
    );
    blocks.set_param(Param::Arm.id(), 0.0);
    blocks.set_param(Param::Mode.id(), 1.0);
    blocks.set_param(Param::Steps.id(), 8.0);
    blocks.set_param(Param::Seed.id(), 7.0);
    blocks.set_param(Param::Render.id(), 1.0);
    blocks.run(&mut processor, &[0.0; 8], 8);
    wait_for_render(&mut instance, &mut processor, &mut blocks);
    let played = play(&mut processor, &mut blocks, 48_000);

    // The same model, seed and settings, called directly.
    let clip = AudioBuf::from_channels(signal.clone(), signal.clone(), RATE);
    let s = RenderSettings {
        steps: 8,
        sampler: SamplerKind::Adpm2,
        seed: 7,
        guidance: 1.0,
        factor: 4,
    };
    // With no model folder set, Upsample is the embedded `models/upsampler` at the default x4.
    assert_eq!(get(&mut instance, Param::Factor), 1.0);
    let expected = adiff_plugin::models::default_renderer()
        .expect("default model")
        .upsample(&clip, &s, &mut |_| true)
        .expect("render");
    let err = max_diff(&played, expected.channel(0));
    assert!(
        err < 1e-6,
        "played-back audio differs from the default model's upsample by {err}"
    );
    let err = max_diff(&played, &default_upsample(&signal, 4, 7));
    assert!(
        err < 1e-6,
        "played-back audio differs from the model's upsample by {err}"
    );

    // State into a fresh instance reproduces the output.
    let state = {
        let h = instance.plugin_handle();
        let ext = h.get_extension::<PluginState>().expect("state");
        let mut bytes = Vec::new();
        ext.save(&h, &mut bytes).expect("save");
        bytes
    };
    instance.deactivate(processor.stop_processing());
    drop(instance);

    let (mut fresh, fresh_rescans) = instantiate(&entry, &id);
    {
        let h = fresh.plugin_handle();
        let ext = h.get_extension::<PluginState>().expect("state");
        ext.load(&h, &mut state.as_slice()).expect("load");
    }
    assert_eq!(
        fresh_rescans.load(Ordering::SeqCst),
        1,
        "state load must rescan parameter values"
    );
    assert_eq!(get(&mut fresh, Param::Steps), 8.0);
    assert_eq!(get(&mut fresh, Param::Seed), 7.0);
    let mut processor = fresh
        .activate(|_, _| (), config())
        .expect("activate")
        .start_processing()
        .expect("start");
    let mut blocks = Blocks::default();
    blocks.run(&mut processor, &[0.0; BLOCK], BLOCK);
    std::thread::sleep(Duration::from_millis(200));
    let replayed = play(&mut processor, &mut blocks, 48_000);
    assert_eq!(
        replayed, played,
        "restored state must play the same audio without re-rendering"
    );

    // Offline: a render requested in a block is waited for within that block.
    {
        let h = fresh.plugin_handle();
        let render = h.get_extension::<PluginRender>().expect("render extension");
        render.set(&h, RenderMode::Offline).expect("offline");
    }
    blocks.set_param(Param::Trigger.id(), 0.0);
    blocks.set_param(Param::Render.id(), 0.0);
    blocks.run(&mut processor, &[0.0; 8], 8);
    blocks.set_param(Param::Seed.id(), 8.0);
    blocks.set_param(Param::Render.id(), 1.0);
    blocks.set_param(Param::Trigger.id(), 1.0);
    let bounced = blocks.run(&mut processor, &vec![0.0; 4096], 4096);
    let expected8 = default_upsample(&signal, 4, 8);
    let err = max_diff(&bounced, &expected8[..4096]);
    assert!(
        err < 1e-6,
        "offline bounce did not wait for the render (error {err})"
    );

    // A corrupt state is refused; the instance starts clean and the host is told to rescan.
    let mut corrupt = state.clone();
    let mid = corrupt.len() / 2;
    corrupt[mid] ^= 0xff;
    fresh.deactivate(processor.stop_processing());
    {
        let h = fresh.plugin_handle();
        let ext = h.get_extension::<PluginState>().expect("state");
        assert!(ext.load(&h, &mut corrupt.as_slice()).is_err());
    }
    assert_eq!(fresh_rescans.load(Ordering::SeqCst), 2);
    assert_eq!(get(&mut fresh, Param::Steps), Param::Steps.spec().default);
    assert_eq!(rescans.load(Ordering::SeqCst), 0);
}
