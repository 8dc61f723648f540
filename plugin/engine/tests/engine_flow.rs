//! The engine end to end with the in-code sketch model: capture, render on the worker, play back,
//! cancel, state round trip, NaN scrubbing.

use adiff_engine::{
    AudioBuf, Engine, Param, Processor, RenderSettings, Renderer, SamplerKind, SketchRenderer,
    Transport,
};
use std::time::{Duration, Instant};

const RATE: f64 = 48_000.0;

fn engine(delay_ms: u64) -> Engine {
    Engine::new(Box::new(move |_| {
        let mut r = SketchRenderer::new(RATE);
        r.step_delay = Duration::from_millis(delay_ms);
        Ok(Box::new(r) as Box<dyn Renderer>)
    }))
    .expect("engine starts")
}

fn test_signal(n: usize) -> Vec<f32> {
    (0..n).map(|i| 0.5 * (i as f32 * 0.01).sin()).collect()
}

/// Runs `input` through the processor in blocks; returns the left output.
fn run(p: &mut Processor, input: &[f32], block: usize) -> Vec<f32> {
    let mut out = Vec::with_capacity(input.len());
    for chunk in input.chunks(block) {
        let mut l = chunk.to_vec();
        let mut r = chunk.to_vec();
        p.process(&mut l, Some(&mut r), &Transport::default());
        out.extend_from_slice(&l);
    }
    out
}

fn wait_for_result(e: &Engine, p: &mut Processor, seen: u64) {
    let t = Instant::now();
    while e.shared().results_received() <= seen {
        assert!(t.elapsed() < Duration::from_secs(20), "no result delivered");
        run(p, &[0.0; 64], 64);
        std::thread::sleep(Duration::from_millis(1));
    }
}

fn capture(e: &Engine, p: &mut Processor, signal: &[f32]) {
    e.params().set(Param::Arm, 1.0);
    run(p, signal, 100);
    e.params().set(Param::Arm, 0.0);
    run(p, &[0.0; 8], 8);
}

fn settings(e: &Engine) -> RenderSettings {
    RenderSettings {
        steps: e.params().get(Param::Steps) as usize,
        sampler: SamplerKind::Adpm2,
        seed: e.params().get(Param::Seed) as u64,
        guidance: 1.0,
        factor: 4,
    }
}

fn trigger_and_play(e: &Engine, p: &mut Processor, n: usize) -> Vec<f32> {
    e.params().set(Param::Trigger, 0.0);
    run(p, &[0.0; 4], 4);
    e.params().set(Param::Trigger, 1.0);
    run(p, &vec![0.0; n], 256)
}

#[test]
fn upsample_of_a_capture_plays_back_what_the_model_renders() {
    let e = engine(0);
    let mut p = e.activate(RATE);
    let signal = test_signal(4800);
    capture(&e, &mut p, &signal);
    e.params().set(Param::Mode, 1.0);
    e.params().set(Param::Seed, 42.0);
    e.params().set(Param::Steps, 5.0);
    let seen = e.shared().results_received();
    e.params().set(Param::Render, 1.0);
    wait_for_result(&e, &mut p, seen);
    assert_eq!(p.result_len(), 4800);

    let clip = AudioBuf::from_channels(signal.clone(), signal.clone(), RATE);
    let expected = SketchRenderer::new(RATE)
        .upsample(&clip, &settings(&e), &mut |_| true)
        .expect("renders");
    let played = trigger_and_play(&e, &mut p, 4800);
    let err = played
        .iter()
        .zip(expected.channel(0))
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f32::max);
    assert!(
        err < 1e-6,
        "played back audio differs from the model's render by {err}"
    );
    assert!((e.shared().progress() - 1.0).abs() < 1e-6);

    // Mix 0 % is the dry signal; -6 dB halves it (to 1e-3).
    e.params().set(Param::Mix, 0.0);
    e.params().set(Param::Gain, -20.0 * 2f64.log10());
    let dry = run(&mut p, &signal[..1000], 100);
    for (a, b) in dry.iter().zip(&signal[..1000]) {
        assert!((a - 0.5 * b).abs() < 1e-6);
    }
}

#[test]
fn state_from_one_instance_reproduces_the_output_in_a_fresh_one() {
    let e = engine(0);
    let mut p = e.activate(RATE);
    capture(&e, &mut p, &test_signal(2400));
    e.params().set(Param::Steps, 3.0);
    let seen = e.shared().results_received();
    e.params().set(Param::Render, 1.0);
    wait_for_result(&e, &mut p, seen);
    let first = trigger_and_play(&e, &mut p, 2400);
    let bytes = e.save_state();

    let fresh = engine(0);
    fresh.load_state(&bytes).expect("state loads");
    let mut q = fresh.activate(RATE);
    wait_for_result(&fresh, &mut q, 0);
    assert_eq!(fresh.params().get(Param::Steps), 3.0);
    let second = trigger_and_play(&fresh, &mut q, 2400);
    assert_eq!(first, second);
    assert_eq!(fresh.save_state(), bytes);
}

#[test]
fn a_new_request_cancels_the_old_one_and_cancel_stops_a_render() {
    let e = engine(20);
    let mut p = e.activate(RATE);
    capture(&e, &mut p, &test_signal(960));
    e.params().set(Param::Steps, 200.0);
    e.params().set(Param::Render, 1.0);
    run(&mut p, &[0.0; 64], 64);
    std::thread::sleep(Duration::from_millis(60));
    assert!(e.shared().render_pending());
    // Cancel: the 200-step (4 s) render stops within a few steps.
    e.params().set(Param::Cancel, 1.0);
    run(&mut p, &[0.0; 64], 64);
    assert!(!e.shared().render_pending());
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(e.shared().results_received(), 0);

    // Two requests in a row: only the second one's result arrives.
    e.params().set(Param::Cancel, 0.0);
    e.params().set(Param::Render, 0.0);
    run(&mut p, &[0.0; 8], 8);
    e.params().set(Param::Render, 1.0);
    run(&mut p, &[0.0; 8], 8);
    e.params().set(Param::Render, 0.0);
    e.params().set(Param::Steps, 2.0);
    run(&mut p, &[0.0; 8], 8);
    e.params().set(Param::Render, 1.0);
    let t = Instant::now();
    run(&mut p, &[0.0; 8], 8);
    wait_for_result(&e, &mut p, 0);
    assert!(
        t.elapsed() < Duration::from_secs(2),
        "the old 200-step render was not cancelled"
    );
    std::thread::sleep(Duration::from_millis(200));
    run(&mut p, &[0.0; 8], 8);
    assert_eq!(e.shared().results_received(), 1);
}

#[test]
fn nan_and_inf_never_come_out_and_never_reach_the_capture() {
    let e = engine(0);
    let mut p = e.activate(RATE);
    let mut signal = test_signal(512);
    signal[3] = f32::NAN;
    signal[7] = f32::INFINITY;
    signal[9] = 1e-40; // denormal
    e.params().set(Param::Arm, 1.0);
    let mut l = signal.clone();
    let mut r = signal.clone();
    p.process(&mut l, Some(&mut r), &Transport::default());
    assert!(l
        .iter()
        .chain(&r)
        .all(|v| v.is_finite() && (*v == 0.0 || v.abs() >= f32::MIN_POSITIVE)));
    assert_eq!((l[3], l[7], l[9]), (0.0, 0.0, 0.0));
    e.params().set(Param::Arm, 0.0);
    run(&mut p, &[0.0; 8], 8);
    let t = Instant::now();
    while e.save_state().len() < 512 * 8 {
        assert!(t.elapsed() < Duration::from_secs(5));
        std::thread::sleep(Duration::from_millis(2));
    }
}

#[test]
fn a_corrupt_state_is_refused_and_the_instance_starts_clean() {
    let e = engine(0);
    e.params().set(Param::Steps, 77.0);
    let mut bytes = e.save_state();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    assert!(e.load_state(&bytes).is_err());
    assert_eq!(e.params().get(Param::Steps), Param::Steps.spec().default);
    assert!(e
        .shared()
        .take_messages()
        .iter()
        .any(|m| m.contains("checksum")));
    assert!(e.load_state(b"").is_err());
}

#[test]
fn render_with_nothing_captured_logs_and_finishes() {
    let e = engine(0);
    let mut p = e.activate(RATE);
    e.params().set(Param::Mode, 1.0);
    e.params().set(Param::Render, 1.0);
    run(&mut p, &[0.0; 8], 8);
    let t = Instant::now();
    while e.shared().render_pending() {
        assert!(t.elapsed() < Duration::from_secs(5));
        std::thread::sleep(Duration::from_millis(2));
    }
    assert!(e
        .shared()
        .take_messages()
        .iter()
        .any(|m| m.contains("no captured clip")));
}

#[test]
fn host_rate_differs_from_model_rate_and_generate_has_the_asked_length() {
    let e = engine(0);
    let mut p = e.activate(44_100.0);
    e.params().set(Param::Mode, 0.0);
    e.params().set(Param::Length, 1.5);
    e.params().set(Param::Render, 1.0);
    run(&mut p, &[0.0; 8], 8);
    wait_for_result(&e, &mut p, 0);
    assert_eq!(p.result_len(), 66_150);
}

#[test]
fn a_state_load_does_not_fire_the_momentary_controls_it_restores() {
    let e = engine(0);
    e.params().set(Param::Render, 1.0);
    e.params().set(Param::Arm, 1.0);
    let bytes = e.save_state();
    let fresh = engine(0);
    let mut p = fresh.activate(RATE);
    run(&mut p, &[0.0; 8], 8);
    fresh.load_state(&bytes).expect("loads");
    assert!(fresh.params().on(Param::Render) && fresh.params().on(Param::Arm));
    run(&mut p, &[0.1; 64], 64);
    assert!(
        !fresh.shared().render_pending(),
        "a restored render = on started a render"
    );
    assert!(!p.capturing(), "a restored arm = on started a capture");
}

#[test]
fn a_request_left_unsent_at_deactivation_never_stalls_the_next_offline_block() {
    // Slow renders keep the worker busy, so a burst of render requests fills the job queue and
    // the last one is still waiting in the processor when it is deactivated.
    let e = engine(20);
    let mut p = e.activate(RATE);
    capture(&e, &mut p, &test_signal(4800));
    for _ in 0..64 {
        e.params().set(Param::Render, 1.0);
        run(&mut p, &[0.0; 16], 16);
        e.params().set(Param::Render, 0.0);
        run(&mut p, &[0.0; 16], 16);
    }
    drop(p);
    e.set_offline(true);
    let mut q = e.activate(RATE);
    let t = Instant::now();
    run(&mut q, &[0.0; 64], 64);
    // An offline block waits only for a render that will be delivered (bounded by its steps),
    // never for a request that was lost with the old processor (that wait is 600 s).
    assert!(
        t.elapsed() < Duration::from_secs(60),
        "offline block stalled for {:?}",
        t.elapsed()
    );
    assert!(
        !e.shared().render_pending(),
        "a render is still counted as pending"
    );
}
