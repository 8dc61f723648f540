//! Progress and cooperative cancellation of the samplers: a 50-step sampling cancelled after step
//! 10 returns within one step with `Error::Cancelled`, and drops everything it held.

use adiff_core::diffusion::Denoiser;
use adiff_core::pipeline::CancelFlag;
use adiff_core::sampler::{
    ADPM2Sampler, AEulerSampler, DpmPp2MSampler, EulerSampler, HeunSampler, KarrasSampler, Sampler,
    StepInfo, VSampler,
};
use adiff_core::schedule::karras;
use adiff_core::{Compat, Error, NoiseSource, Result, SeededNoise};
use candle_core::{Device, Tensor};
use std::ops::ControlFlow;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

fn start() -> Tensor {
    SeededNoise::new(1)
        .randn(&[1, 1, 64], &Device::Cpu)
        .unwrap()
}

#[test]
fn cancel_from_the_callback_after_step_10_of_50() {
    let calls = AtomicUsize::new(0);
    let denoiser = |x: &Tensor, _: f64, _: &mut dyn NoiseSource| -> Result<Tensor> {
        calls.fetch_add(1, Ordering::SeqCst);
        Ok((x * 0.5)?)
    };
    let flag = CancelFlag::new();
    let mut seen = Vec::new();
    let mut on_step = |info: &StepInfo| {
        seen.push(info.step);
        if info.step == 10 {
            flag.cancel();
        }
        flag.on_step(info)
    };
    let sigmas = karras(0.01, 10.0, 7.0, 50, Compat::Fixed).unwrap();
    let r = EulerSampler.sample(
        &denoiser as &dyn Denoiser,
        &start(),
        &sigmas,
        &mut SeededNoise::new(2),
        &mut on_step,
    );
    assert!(
        matches!(
            r,
            Err(Error::Cancelled {
                step: 10,
                total: 50
            })
        ),
        "{r:?}"
    );
    assert_eq!(
        calls.load(Ordering::SeqCst),
        10,
        "no denoiser call after the cancel"
    );
    assert_eq!(
        seen,
        (1..=10).collect::<Vec<_>>(),
        "progress reported once per step, in order"
    );
    assert_eq!(flag.progress().step, 10);
    assert_eq!(flag.progress().total, 50);
}

#[test]
fn cancel_from_another_thread_stops_within_one_step_and_leaks_nothing() {
    let held = Arc::new(());
    let calls = Arc::new(AtomicUsize::new(0));
    let flag = CancelFlag::new();
    let worker = {
        let (held, calls, flag) = (held.clone(), calls.clone(), flag.clone());
        std::thread::Builder::new()
            .name("sampling".into())
            .spawn(move || {
                let denoiser =
                    move |x: &Tensor, _: f64, _: &mut dyn NoiseSource| -> Result<Tensor> {
                        let _keep = &held;
                        calls.fetch_add(1, Ordering::SeqCst);
                        std::thread::sleep(Duration::from_millis(5));
                        Ok((x * 0.5)?)
                    };
                let sigmas = karras(0.01, 10.0, 7.0, 50, Compat::Fixed).unwrap();
                let mut on_step = |i: &StepInfo| flag.on_step(i);
                EulerSampler.sample(
                    &denoiser as &dyn Denoiser,
                    &start(),
                    &sigmas,
                    &mut SeededNoise::new(2),
                    &mut on_step,
                )
            })
            .unwrap()
    };
    while flag.progress().step < 10 {
        assert!(!worker.is_finished(), "the sampling ended before step 10");
        std::thread::sleep(Duration::from_micros(200));
    }
    let at_cancel = flag.progress().step as usize;
    flag.cancel();
    let r = worker.join().expect("no panic");
    match r {
        Err(Error::Cancelled { step, total: 50 }) => {
            assert!(
                step >= 10 && step <= at_cancel + 1,
                "stopped at {step}, cancelled at {at_cancel}"
            );
            assert_eq!(
                calls.load(Ordering::SeqCst),
                step,
                "one denoiser call per finished step, none after"
            );
        }
        other => panic!("expected Cancelled, got {other:?}"),
    }
    assert_eq!(
        Arc::strong_count(&held),
        1,
        "the sampler released the denoiser and everything it held"
    );
}

#[test]
fn every_sampler_honours_the_callback() {
    let denoiser =
        |x: &Tensor, _: f64, _: &mut dyn NoiseSource| -> Result<Tensor> { Ok((x * 0.5)?) };
    let churn = HeunSampler {
        s_churn: 1.0,
        ..Default::default()
    };
    let samplers: Vec<Box<dyn Sampler>> = vec![
        Box::new(EulerSampler),
        Box::new(HeunSampler::default()),
        Box::new(churn),
        Box::new(DpmPp2MSampler),
        Box::new(VSampler),
        Box::new(AEulerSampler::default()),
        Box::new(ADPM2Sampler::default()),
        Box::new(KarrasSampler {
            params: churn,
            compat: Compat::V0_0_61,
        }),
        Box::new(AEulerSampler {
            compat: Compat::V0_0_61,
        }),
    ];
    let sigmas = karras(0.01, 10.0, 7.0, 20, Compat::Fixed).unwrap();
    for s in &samplers {
        let mut on_step = |i: &StepInfo| {
            if i.step == 3 {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        };
        let r = s.sample(
            &denoiser as &dyn Denoiser,
            &start(),
            &sigmas,
            &mut SeededNoise::new(3),
            &mut on_step,
        );
        assert!(
            matches!(r, Err(Error::Cancelled { step: 3, .. })),
            "{s:?}: {r:?}",
            s = std::any::type_name_of_val(s)
        );
    }
    // Inpainting too.
    let src = start();
    let mask = src.ones_like().unwrap();
    let mut on_step = |i: &StepInfo| {
        if i.step == 2 {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        }
    };
    let r = ADPM2Sampler::default().inpaint(
        &denoiser as &dyn Denoiser,
        &src,
        &mask,
        &sigmas,
        2,
        &mut SeededNoise::new(3),
        &mut on_step,
    );
    assert!(
        matches!(r, Err(Error::Cancelled { step: 2, total: 20 })),
        "{r:?}"
    );
}
