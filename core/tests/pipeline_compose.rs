//! DiffusionSampler, DiffusionInpainter and SpanBySpanComposer (docs/reference.md §3.8–§3.10) on a
//! network with a known output: final clamp, num_steps resolution, conditioning forwarded on every
//! call, RePaint keeping the source, and the composer's span bookkeeping (keep_start, lengths, the
//! previous span's second half as the next window's first half).

use adiff_core::diffusion::{KDiffusion, LogNormalDistribution};
use adiff_core::pipeline::{
    sequential_mask, CancelFlag, DiffusionInpainter, DiffusionSampler, SpanBySpanComposer,
};
use adiff_core::sampler::{ignore_steps, ADPM2Sampler, AEulerSampler, StepInfo};
use adiff_core::schedule::KarrasSchedule;
use adiff_core::{Compat, Error, Net, NetInputs, NoiseSource, Result, SeededNoise};
use candle_core::{DType, Device, Tensor};
use std::cell::Cell;

/// Outputs a constant F; counts calls and checks that the features input arrives on every call.
struct ConstNet {
    value: f64,
    calls: Cell<usize>,
    expect_features: bool,
}

impl Net for ConstNet {
    fn forward(
        &self,
        x: &Tensor,
        _: &Tensor,
        inputs: &NetInputs,
        _: &mut dyn NoiseSource,
    ) -> Result<Tensor> {
        self.calls.set(self.calls.get() + 1);
        assert_eq!(
            inputs.features.is_some(),
            self.expect_features,
            "conditioning forwarded on every call"
        );
        Ok((x.ones_like()? * self.value)?)
    }
}

fn k_diffusion(value: f64, expect_features: bool) -> KDiffusion<ConstNet> {
    let net = ConstNet {
        value,
        calls: Cell::new(0),
        expect_features,
    };
    KDiffusion::new(
        net,
        Box::new(LogNormalDistribution {
            mean: -3.0,
            std: 1.0,
        }),
        0.5,
        0.0,
    )
}

fn noise(shape: &[usize], seed: u64) -> Tensor {
    SeededNoise::new(seed).randn(shape, &Device::Cpu).unwrap()
}

#[test]
fn diffusion_sampler_clamps_resolves_steps_and_forwards_inputs() {
    let diffusion = k_diffusion(50.0, true);
    let sampler = AEulerSampler {
        compat: Compat::V0_0_61,
    };
    let schedule = KarrasSchedule {
        sigma_min: 1e-4,
        sigma_max: 3.0,
        rho: 9.0,
        compat: Compat::V0_0_61,
    };
    let mut pipeline = DiffusionSampler {
        diffusion: &diffusion,
        sampler: &sampler,
        schedule: &schedule,
        num_steps: None,
    };
    let inputs = NetInputs {
        features: Some(Tensor::zeros((2, 4), DType::F32, &Device::Cpu).unwrap()),
        ..NetInputs::none()
    };
    let start = noise(&[2, 1, 32], 1);
    let r = pipeline.sample(
        &start,
        None,
        &inputs,
        &mut SeededNoise::new(2),
        &mut ignore_steps,
    );
    assert!(
        matches!(r, Err(Error::Config { .. })),
        "no num_steps anywhere"
    );
    pipeline.num_steps = Some(5);
    let y = pipeline
        .sample(
            &start,
            None,
            &inputs,
            &mut SeededNoise::new(2),
            &mut ignore_steps,
        )
        .unwrap();
    assert_eq!(
        diffusion.net.calls.get(),
        4,
        "num_steps = 5 runs 4 steps under 0.0.61"
    );
    let v = y.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    assert!(v.iter().all(|x| (-1.0..=1.0).contains(x)), "clamped");
    // The call's num_steps wins over the constructor's.
    pipeline
        .sample(
            &start,
            Some(3),
            &inputs,
            &mut SeededNoise::new(2),
            &mut ignore_steps,
        )
        .unwrap();
    assert_eq!(diffusion.net.calls.get(), 4 + 2);
}

fn inpainter<'a>(
    diffusion: &'a KDiffusion<ConstNet>,
    sampler: &'a ADPM2Sampler,
    schedule: &'a KarrasSchedule,
) -> DiffusionInpainter<'a> {
    DiffusionInpainter {
        diffusion,
        num_steps: 3,
        num_resamples: 2,
        sampler,
        schedule,
    }
}

#[test]
fn sequential_mask_keeps_the_first_part() {
    let like = Tensor::zeros((2, 3, 6), DType::F32, &Device::Cpu).unwrap();
    let m = sequential_mask(&like, 4).unwrap();
    assert_eq!(m.dims(), &[2, 3, 6]);
    assert_eq!(
        m.to_dtype(DType::F32)
            .unwrap()
            .sum_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap(),
        24.0
    );
    assert_eq!(
        m.get(1).unwrap().get(2).unwrap().to_vec1::<u8>().unwrap(),
        vec![1, 1, 1, 1, 0, 0]
    );
}

#[test]
fn composer_chains_spans() {
    // The network output is constant, so with D clipped to [−1, 1] the final sample in the
    // generated half is a deterministic function of the draws; check the bookkeeping instead:
    // lengths, the kept start, and that each window starts with the previous generated half.
    let diffusion = k_diffusion(0.0, false);
    let sampler = ADPM2Sampler {
        rho: 1.0,
        compat: Compat::V0_0_61,
    };
    let schedule = KarrasSchedule {
        sigma_min: 1e-4,
        sigma_max: 3.0,
        rho: 9.0,
        compat: Compat::V0_0_61,
    };
    let start = noise(&[2, 1, 16], 5).clamp(-1.0, 1.0).unwrap();
    for keep_start in [false, true] {
        let composer = SpanBySpanComposer {
            inpainter: inpainter(&diffusion, &sampler, &schedule),
            num_spans: 3,
        };
        let y = composer
            .compose(
                &start,
                keep_start,
                &NetInputs::none(),
                &mut SeededNoise::new(6),
                &mut ignore_steps,
            )
            .unwrap();
        let expect = 3 * 8 + if keep_start { 16 } else { 0 };
        assert_eq!(y.dims(), &[2, 1, expect]);
        if keep_start {
            let head = y
                .narrow(2, 0, 16)
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1::<f32>()
                .unwrap();
            assert_eq!(head, start.flatten_all().unwrap().to_vec1::<f32>().unwrap());
        }
    }
    // Replaying the inpainter by hand: span k is the second half of inpainting the window whose
    // first half is span k−1 (the start's second half for k = 0) and whose second half is zeros.
    let inp = inpainter(&diffusion, &sampler, &schedule);
    let mask = sequential_mask(&start, 8).unwrap();
    let mut rng = SeededNoise::new(6);
    let mut prev = start.narrow(2, 8, 8).unwrap();
    let mut expected = Vec::new();
    for _ in 0..3 {
        let window = Tensor::cat(&[&prev, &prev.zeros_like().unwrap()], 2).unwrap();
        let out = inp
            .inpaint(
                &window,
                &mask,
                &NetInputs::none(),
                &mut rng,
                &mut ignore_steps,
            )
            .unwrap();
        // RePaint returns the known half unchanged.
        assert_eq!(
            out.narrow(2, 0, 8).unwrap().to_vec3::<f32>().unwrap(),
            prev.to_vec3::<f32>().unwrap()
        );
        prev = out.narrow(2, 8, 8).unwrap();
        expected.push(prev.clone());
    }
    let composer = SpanBySpanComposer {
        inpainter: inp,
        num_spans: 3,
    };
    let y = composer
        .compose(
            &start,
            false,
            &NetInputs::none(),
            &mut SeededNoise::new(6),
            &mut ignore_steps,
        )
        .unwrap();
    assert_eq!(
        y.to_vec3::<f32>().unwrap(),
        Tensor::cat(&expected, 2).unwrap().to_vec3::<f32>().unwrap()
    );
    // Odd lengths are refused with a named error (the reference fails on a slice assignment).
    let odd = noise(&[1, 1, 15], 1);
    let composer = SpanBySpanComposer {
        inpainter: inpainter(&diffusion, &sampler, &schedule),
        num_spans: 1,
    };
    let r = composer.compose(
        &odd,
        false,
        &NetInputs::none(),
        &mut SeededNoise::new(6),
        &mut ignore_steps,
    );
    assert!(matches!(r, Err(Error::InvalidInput { .. })));
}

#[test]
fn composer_progress_and_cancel() {
    let diffusion = k_diffusion(0.0, false);
    let sampler = ADPM2Sampler {
        rho: 1.0,
        compat: Compat::Fixed,
    };
    let schedule = KarrasSchedule::new(1e-3, 3.0);
    let composer = SpanBySpanComposer {
        inpainter: inpainter(&diffusion, &sampler, &schedule),
        num_spans: 4,
    };
    let flag = CancelFlag::new();
    let mut steps = 0;
    let mut on_step = |i: &StepInfo| {
        steps += 1;
        if steps == 5 {
            flag.cancel();
        }
        flag.on_step(i)
    };
    let start = noise(&[1, 1, 16], 2);
    let r = composer.compose(
        &start,
        true,
        &NetInputs::none(),
        &mut SeededNoise::new(1),
        &mut on_step,
    );
    // 3 steps per span (fixed: all steps), counted over the 4 spans.
    assert!(
        matches!(r, Err(Error::Cancelled { step: 5, total: 12 })),
        "{r:?}"
    );
    assert_eq!(flag.progress().step, 5);
    assert_eq!(flag.progress().total, 12);
}
