//! The built `.vst3` bundle loaded through its VST3 entry points by a minimal host written on the
//! `vst3` crate: factory and class info, the single-component effect (component, processor,
//! controller), parameters (info, text, normalisation, sample-accurate changes), capture a test
//! signal, upsample on the worker, play back, state into a fresh instance, offline process mode,
//! a refused corrupt state, and teardown.
#![allow(unsafe_code)]
// COM calls into a dynamic library
// The bindings' enum types differ by platform (c_int on Windows): some casts are no-ops here.
#![allow(clippy::unnecessary_cast)]

mod plugin_vst3_common;

use adiff_core::audio::AudioClip;
use adiff_core::render::{shipped, RenderOptions, UpsampleTarget};
use adiff_engine::{AudioBuf, Param, RenderSettings, Renderer, SamplerKind};
use plugin_vst3_common::{test_signal, Effect, Handler, Module};
use std::ops::ControlFlow;
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};
use vst3::ComWrapper;
use vst3::Steinberg::Vst::{
    IAudioProcessorTrait, IComponentHandler, IComponentTrait, IEditControllerTrait, ParameterInfo,
    ProcessModes_, RestartFlags_, SpeakerArr,
};
use vst3::Steinberg::{
    kResultFalse, kResultOk, kResultTrue, IPluginBaseTrait, IPluginFactory3, IPluginFactory3Trait,
    IPluginFactoryTrait, PClassInfo, PClassInfoW, TUID,
};

const RATE: f64 = 48_000.0;
const BLOCK: usize = 480;
const REALTIME: i32 = ProcessModes_::kRealtime as i32;
const OFFLINE: i32 = ProcessModes_::kOffline as i32;

fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace")
        .to_path_buf()
}

/// Runs `cargo xtask bundle adiff-plugin` and returns the `.so` inside the `.vst3` bundle.
fn build_bundle() -> PathBuf {
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
    let arch = std::env::consts::ARCH;
    target.join(format!(
        "bundled/adiff-plugin.vst3/Contents/{arch}-linux/adiff-plugin.so"
    ))
}

fn wide(s: &[u16]) -> String {
    let end = s.iter().position(|&c| c == 0).unwrap_or(s.len());
    String::from_utf16_lossy(&s[..end])
}

fn narrow(s: &[std::ffi::c_char]) -> String {
    s.iter()
        .take_while(|&&c| c != 0)
        .map(|&c| c as u8 as char)
        .collect()
}

fn norm(p: Param, plain: f64) -> f64 {
    p.spec().normalize(plain)
}

fn param(effect: &Effect, p: Param) -> f64 {
    // SAFETY: plain value call on a live controller.
    p.spec()
        .denormalize(unsafe { effect.controller.getParamNormalized(p.id()) })
}

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

/// Sets up at `rate` in `mode`, negotiates stereo, activates and starts processing.
fn start(effect: &Effect, mode: i32) {
    assert_eq!(effect.setup(RATE, mode), kResultOk);
    let (mut i, mut o) = (SpeakerArr::kStereo, SpeakerArr::kStereo);
    // SAFETY: plain calls on a live instance with valid pointers.
    unsafe {
        assert_eq!(
            effect.processor.setBusArrangements(&mut i, 1, &mut o, 1),
            kResultTrue
        );
        assert_eq!(effect.component.setActive(1), kResultOk);
        assert_eq!(effect.processor.setProcessing(1), kResultOk);
    }
}

fn stop(effect: &Effect) {
    // SAFETY: plain calls on a live instance.
    unsafe {
        assert_eq!(effect.processor.setProcessing(0), kResultOk);
        assert_eq!(effect.component.setActive(0), kResultOk);
    }
}

fn play(effect: &Effect, n: usize) -> Vec<f32> {
    effect.run(&[0.0; 8], 8, &[(Param::Trigger.id(), 0, 0.0)]);
    effect.run(&vec![0.0; n], BLOCK, &[(Param::Trigger.id(), 0, 1.0)])
}

#[test]
fn vst3_bundle_captures_upsamples_plays_back_and_restores_state() {
    let module = Module::load(&build_bundle());

    // Factory: one audio effect class, with unicode info.
    // SAFETY: plain calls on the live factory with valid out-pointers.
    let cid: TUID = unsafe {
        assert_eq!(module.factory.countClasses(), 1);
        let mut info: PClassInfo = std::mem::zeroed();
        assert_eq!(module.factory.getClassInfo(0, &mut info), kResultOk);
        assert_eq!(narrow(&info.category), "Audio Module Class");
        assert_eq!(narrow(&info.name), "adiff");
        assert_ne!(module.factory.getClassInfo(1, &mut info), kResultOk);
        let f3 = module
            .factory
            .cast::<IPluginFactory3>()
            .expect("IPluginFactory3");
        let mut w: PClassInfoW = std::mem::zeroed();
        assert_eq!(f3.getClassInfoUnicode(0, &mut w), kResultOk);
        assert_eq!(wide(&w.name), "adiff");
        assert_eq!(narrow(&w.subCategories), "Fx");
        assert_eq!(w.cid, info.cid);
        info.cid
    };
    assert!(
        module.create::<IComponentHandler>(&cid).is_none(),
        "unknown interface must be refused"
    );

    let effect = Effect::new(&module, &cid);
    let handler = ComWrapper::new(Handler::default());
    let restarts = handler.restarts.clone();
    // SAFETY: plain calls on a live instance with valid pointers; `handler` outlives the use.
    unsafe {
        assert_eq!(effect.component.initialize(std::ptr::null_mut()), kResultOk);
        let h = handler.as_com_ref::<IComponentHandler>().expect("handler");
        assert_eq!(effect.controller.setComponentHandler(h.as_ptr()), kResultOk);
        assert_eq!(
            effect.controller.getParameterCount() as usize,
            Param::all().count()
        );
        let mut info: ParameterInfo = std::mem::zeroed();
        assert_eq!(effect.controller.getParameterInfo(6, &mut info), kResultOk);
        assert_eq!(info.id, Param::Gain.id());
        assert_eq!(wide(&info.title), "Output Gain");
        assert_eq!(wide(&info.units), "dB");
        assert_eq!(info.defaultNormalizedValue, norm(Param::Gain, 0.0));
        assert_eq!(effect.controller.getParameterInfo(0, &mut info), kResultOk);
        assert_eq!((info.id, info.stepCount), (Param::Mode.id(), 3));
        // Three samplers and three upsample factors, as released (the normalised values of
        // saved automation keep their meaning), and the on/off Upsample Auto.
        for (p, steps) in [
            (Param::Sampler, 2),
            (Param::Factor, 2),
            (Param::UpsampleAuto, 1),
        ] {
            let index = Param::all().position(|q| q == p).expect("listed");
            assert_eq!(
                effect.controller.getParameterInfo(index as i32, &mut info),
                kResultOk
            );
            assert_eq!((info.id, info.stepCount), (p.id(), steps));
        }
        let mut aeuler: Vec<u16> = "aeuler".encode_utf16().chain([0]).collect();
        let mut v = -1.0;
        assert_eq!(
            effect.controller.getParamValueByString(
                Param::Sampler.id(),
                aeuler.as_mut_ptr(),
                &mut v
            ),
            kResultOk
        );
        assert_eq!(v, norm(Param::Sampler, 1.0));
        let mut text = [0u16; 128];
        let g = norm(Param::Gain, -6.0);
        assert_eq!(
            effect
                .controller
                .getParamStringByValue(Param::Gain.id(), g, &mut text),
            kResultOk
        );
        assert_eq!(wide(&text), "-6.0 dB");
        let mut typed: Vec<u16> = "Inpaint".encode_utf16().chain([0]).collect();
        let mut v = -1.0;
        assert_eq!(
            effect
                .controller
                .getParamValueByString(Param::Mode.id(), typed.as_mut_ptr(), &mut v),
            kResultOk
        );
        assert_eq!(v, norm(Param::Mode, 2.0));
        let plain = effect
            .controller
            .normalizedParamToPlain(Param::Gain.id(), g);
        assert!((plain + 6.0).abs() < 1e-9, "normalised -> plain: {plain}");
        assert_eq!(
            effect
                .controller
                .plainParamToNormalized(Param::Steps.id(), 20.0),
            norm(Param::Steps, 20.0)
        );
        assert_eq!(effect.controller.getParamNormalized(Param::Mix.id()), 1.0);
    }

    start(&effect, REALTIME);
    // Sample-accurate parameter changes: the gain halves exactly at offset 240.
    let half = norm(Param::Gain, 20.0 * 0.5f64.log10());
    let out = effect.run(
        &[0.5; BLOCK],
        BLOCK,
        &[
            (Param::Gain.id(), 0, norm(Param::Gain, 0.0)),
            (Param::Gain.id(), 240, half),
        ],
    );
    assert!(
        out[..240].iter().all(|&x| x == 0.5),
        "before the point: unity gain"
    );
    assert!(
        out[240..].iter().all(|&x| (x - 0.25).abs() < 1e-6),
        "from the point on: half gain"
    );
    effect.run(
        &[0.0; 8],
        8,
        &[(Param::Gain.id(), 0, norm(Param::Gain, 0.0))],
    );

    // Capture one second of a test signal, then upsample it.
    let signal = test_signal(48_000);
    let passed = effect.run(&signal, BLOCK, &[(Param::Arm.id(), 0, 1.0)]);
    assert!(
        max_diff(&passed, &signal) < 1e-6,
        "capture must pass audio through"
    );
    let request = [
        (Param::Arm.id(), 0, 0.0),
        (Param::Mode.id(), 0, norm(Param::Mode, 1.0)),
        (Param::Steps.id(), 0, norm(Param::Steps, 8.0)),
        (Param::Seed.id(), 0, norm(Param::Seed, 7.0)),
        (Param::Render.id(), 0, 1.0),
    ];
    effect.run(&[0.0; 8], 8, &request);
    let t = Instant::now();
    while param(&effect, Param::Progress) < 100.0 {
        assert!(
            t.elapsed() < Duration::from_secs(60),
            "render did not finish"
        );
        effect.run(&[0.0; BLOCK], BLOCK, &[]);
        std::thread::sleep(Duration::from_millis(1));
    }
    effect.run(&[0.0; BLOCK], BLOCK, &[]);
    let played = play(&effect, 48_000);
    let clip = AudioBuf::from_channels(signal.clone(), signal.clone(), RATE);
    let s = RenderSettings {
        steps: 8,
        sampler: SamplerKind::Adpm2,
        seed: 7,
        guidance: 1.0,
        factor: 4,
    };
    let expected = adiff_plugin::models::default_renderer()
        .expect("default model")
        .upsample(&clip, &s, &mut |_| true)
        .expect("render");
    let err = max_diff(&played, expected.channel(0));
    assert!(
        err < 1e-6,
        "played-back audio differs from the model's upsample by {err}"
    );
    // That is adiff-core's same-rate upsampling with the shipped upsampler, the band taken to end
    // at RATE / (2 x 4) (the default factor x4), same seed.
    let core = AudioClip::new(RATE as u32, vec![signal.clone(), signal.clone()]).expect("clip");
    let (core, _) = shipped::upsampler()
        .expect("the embedded model loads")
        .upsample(
            &core,
            UpsampleTarget::Bandwidth(RATE / 8.0),
            &RenderOptions::seeded(7),
            &mut |_| ControlFlow::Continue(()),
        )
        .expect("upsamples");
    let err = max_diff(&played, &core.channels()[0]);
    assert!(
        err < 1e-6,
        "played-back audio differs from adiff-core's upsample by {err}"
    );

    // State into a fresh instance reproduces the output without re-rendering.
    let state = effect.save();
    stop(&effect);
    // SAFETY: plain call on a live instance.
    assert_eq!(unsafe { effect.component.terminate() }, kResultOk);
    drop(effect);

    let fresh = Effect::new(&module, &cid);
    let fresh_handler = ComWrapper::new(Handler::default());
    let fresh_restarts = fresh_handler.restarts.clone();
    // SAFETY: plain calls with valid pointers; the handler outlives the instance's use of it.
    unsafe {
        assert_eq!(fresh.component.initialize(std::ptr::null_mut()), kResultOk);
        let h = fresh_handler
            .as_com_ref::<IComponentHandler>()
            .expect("handler");
        assert_eq!(fresh.controller.setComponentHandler(h.as_ptr()), kResultOk);
    }
    assert_eq!(fresh.load(&state), kResultOk);
    assert_eq!(
        fresh_restarts.load(Ordering::SeqCst),
        1,
        "state load must tell the host values changed"
    );
    assert_eq!(
        fresh_handler.last_flags.load(Ordering::SeqCst) as i32
            & RestartFlags_::kParamValuesChanged as i32,
        RestartFlags_::kParamValuesChanged as i32
    );
    assert_eq!(param(&fresh, Param::Steps), 8.0);
    assert_eq!(param(&fresh, Param::Seed), 7.0);
    start(&fresh, REALTIME);
    effect_settle(&fresh);
    let replayed = play(&fresh, 48_000);
    assert_eq!(
        replayed, played,
        "restored state must play the same audio without re-rendering"
    );
    assert_eq!(
        fresh.save(),
        state,
        "a restored state saves back identically"
    );

    // Offline process mode: a render requested in a block is waited for within that block.
    stop(&fresh);
    start(&fresh, OFFLINE);
    fresh.run(
        &[0.0; 8],
        8,
        &[(Param::Trigger.id(), 0, 0.0), (Param::Render.id(), 0, 0.0)],
    );
    let bounce = [
        (Param::Seed.id(), 0, norm(Param::Seed, 8.0)),
        (Param::Render.id(), 0, 1.0),
        (Param::Trigger.id(), 0, 1.0),
    ];
    let bounced = fresh.run(&vec![0.0; 4800], 4800, &bounce);
    let expected8 = adiff_plugin::models::default_renderer()
        .expect("default model")
        .upsample(&clip, &RenderSettings { seed: 8, ..s }, &mut |_| true)
        .expect("render");
    let err = max_diff(&bounced, &expected8.channel(0)[..4800]);
    assert!(
        err < 1e-6,
        "offline bounce did not wait for the render (error {err})"
    );

    // A corrupt state is refused; the instance starts clean and the host is told.
    stop(&fresh);
    let mut corrupt = state.clone();
    let mid = corrupt.len() / 2;
    corrupt[mid] ^= 0xff;
    assert_eq!(fresh.load(&corrupt), kResultFalse);
    assert_eq!(fresh_restarts.load(Ordering::SeqCst), 2);
    assert_eq!(param(&fresh, Param::Steps), Param::Steps.spec().default);
    assert_eq!(fresh.load(b"not a state"), kResultFalse);
    // SAFETY: plain call on a live instance.
    assert_eq!(unsafe { fresh.component.terminate() }, kResultOk);
    assert_eq!(restarts.load(Ordering::SeqCst), 0);
    drop(fresh);
}

/// Gives the worker time to hand the restored result to the new activation.
fn effect_settle(effect: &Effect) {
    effect.run(&[0.0; BLOCK], BLOCK, &[]);
    std::thread::sleep(Duration::from_millis(200));
}
