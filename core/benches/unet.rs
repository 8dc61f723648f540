//! End-to-end CPU benchmarks: UNet1d forward (reference default config at 2^16 and 2^18 samples,
//! the seed README example `[3, 1, 2^16]`, the small upsampler config), one VSampler step, one
//! training step (forward + backward + AdamW, small config, batch 4 x 2^16) and the sinc
//! resampler. Throughput is in FLOPs counted from the config (`adiff_core::flops`, 2 per
//! multiply-accumulate), so criterion's "elem/s" reads as FLOP/s.
//! Run: `cargo bench -p adiff-core --bench unet [-- <filter>]` (see docs/performance.md).

/// The `adiff` binary's allocator (glibc's maps and zero-faults every large tensor afresh).
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

use adiff_core::diffusion::{Diffusion, ObjectiveDenoiser, VDiffusion, VDistribution};
use adiff_core::flops::unet1d_forward;
use adiff_core::optim::{AdamW, AdamWConfig};
use adiff_core::sampler::{Sampler, VSampler};
use adiff_core::unet::{UNet1d, UNet1dConfig};
use adiff_core::{Compat, NetInputs, SeededNoise};
use candle_core::{DType, Device, Tensor};
use candle_nn::{VarBuilder, VarMap};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use std::collections::HashMap;
use std::ops::ControlFlow;
use std::time::Duration;

/// The small upsampler UNet (3.8 M parameters; `trainer/src/cmd/demo_unet.json`, issue 11).
fn small_config() -> UNet1dConfig {
    UNet1dConfig {
        channels: 32,
        patch_factor: 4,
        multipliers: vec![1, 2, 4, 4, 4],
        factors: vec![4, 4, 2, 2],
        num_blocks: vec![2, 2, 2, 2],
        attentions: vec![0, 0, 1, 1, 1],
        attention_heads: 4,
        attention_features: 32,
        context_channels: Some(vec![1]),
        ..UNet1dConfig::default()
    }
}

/// A f32 UNet with randomly initialised weights: trainable (`VarMap`) or frozen plain tensors.
fn build(cfg: &UNet1dConfig, trainable: bool) -> (UNet1d, VarMap) {
    build_as(cfg, trainable, DType::F32)
}

/// [`build`] with weights of `dtype`.
fn build_as(cfg: &UNet1dConfig, trainable: bool, dtype: DType) -> (UNet1d, VarMap) {
    let dev = Device::Cpu;
    let varmap = VarMap::new();
    let net = UNet1d::new(cfg, VarBuilder::from_varmap(&varmap, dtype, &dev)).expect("unet");
    if trainable {
        return (net, varmap);
    }
    let frozen: HashMap<String, Tensor> = varmap
        .data()
        .lock()
        .expect("varmap")
        .iter()
        .map(|(k, v)| (k.clone(), v.as_tensor().detach()))
        .collect();
    let vb = VarBuilder::from_tensors(frozen, dtype, &dev);
    (UNet1d::new(cfg, vb).expect("unet"), varmap)
}

fn inputs(cfg: &UNet1dConfig, batch: usize, len: usize) -> NetInputs {
    let mut inputs = NetInputs::none();
    for &c in cfg
        .context_channels_padded()
        .iter()
        .take(1)
        .filter(|&&c| c > 0)
    {
        inputs.channels_list =
            vec![Tensor::randn(0f32, 1.0, (batch, c, len), &Device::Cpu).expect("ctx")];
    }
    inputs
}

fn bench_forward(c: &mut Criterion) {
    let mut g = c.benchmark_group("unet_forward");
    g.sample_size(10).measurement_time(Duration::from_secs(10));
    let cases = [
        ("default_1x2^16", UNet1dConfig::default(), 1, 1 << 16),
        ("default_1x2^18", UNet1dConfig::default(), 1, 1 << 18),
        ("seed_readme_3x2^16", UNet1dConfig::default(), 3, 1 << 16),
        ("small_1x2^16", small_config(), 1, 1 << 16),
    ];
    for (name, cfg, batch, len) in cases {
        let (net, _) = build(&cfg, false);
        let x = Tensor::randn(0f32, 1.0, (batch, cfg.in_channels, len), &Device::Cpu).expect("x");
        let t = Tensor::full(0.5f32, batch, &Device::Cpu).expect("t");
        let inp = inputs(&cfg, batch, len);
        g.throughput(Throughput::Elements(
            unet1d_forward(&cfg, batch, len).total() as u64,
        ));
        g.bench_function(BenchmarkId::new("adiff", name), |bn| {
            bn.iter(|| net.forward(&x, Some(&t), &inp).expect("forward"))
        });
    }
    // bf16 weights and activations (the convolutions use the bf16 dot product where present).
    let cfg = UNet1dConfig::default();
    let (net_bf16, _) = build_as(&cfg, false, DType::BF16);
    let len = 1usize << 18;
    let x = Tensor::randn(0f32, 1.0, (1, 1, len), &Device::Cpu)
        .expect("x")
        .to_dtype(DType::BF16)
        .expect("bf16");
    let t = Tensor::full(0.5f32, 1, &Device::Cpu)
        .expect("t")
        .to_dtype(DType::BF16)
        .expect("bf16");
    let inp = NetInputs::none();
    g.throughput(Throughput::Elements(
        unet1d_forward(&cfg, 1, len).total() as u64
    ));
    g.bench_function(BenchmarkId::new("adiff", "default_1x2^18_bf16"), |bn| {
        bn.iter(|| net_bf16.forward(&x, Some(&t), &inp).expect("forward"))
    });
    g.finish();
}

fn bench_sampler_step(c: &mut Criterion) {
    let mut g = c.benchmark_group("sampler_step");
    g.sample_size(10).measurement_time(Duration::from_secs(10));
    for (name, cfg, len) in [
        ("default_1x2^18", UNet1dConfig::default(), 1 << 18),
        ("small_1x2^16", small_config(), 1 << 16),
    ] {
        let (net, _) = build(&cfg, false);
        let diffusion = VDiffusion::new(net, Box::new(VDistribution::default()), Compat::Fixed);
        let inp = inputs(&cfg, 1, len);
        let denoiser = ObjectiveDenoiser {
            diffusion: &diffusion,
            inputs: &inp,
        };
        let x = Tensor::randn(0f32, 1.0, (1, cfg.in_channels, len), &Device::Cpu).expect("x");
        g.throughput(Throughput::Elements(
            unet1d_forward(&cfg, 1, len).total() as u64
        ));
        g.bench_function(BenchmarkId::new("adiff", name), |bn| {
            bn.iter(|| {
                let mut noise = SeededNoise::new(0);
                let mut on_step = |_: &adiff_core::sampler::StepInfo| ControlFlow::Continue(());
                VSampler
                    .sample(&denoiser, &x, &[1.0, 0.5], &mut noise, &mut on_step)
                    .expect("step")
            })
        });
    }
    g.finish();
}

fn bench_training_step(c: &mut Criterion) {
    let mut g = c.benchmark_group("training_step");
    g.sample_size(10).measurement_time(Duration::from_secs(20));
    let (cfg, batch, len) = (small_config(), 4, 1 << 16);
    let (net, varmap) = build(&cfg, true);
    let diffusion = VDiffusion::new(net, Box::new(VDistribution::default()), Compat::Fixed);
    let inp = inputs(&cfg, batch, len);
    let x = Tensor::randn(0f32, 0.3, (batch, cfg.in_channels, len), &Device::Cpu).expect("x");
    // The trainer's optimizer (in-place AdamW on the CPU), as `adiff train` runs it.
    let vars = varmap.all_vars();
    let mut opt = AdamW::new(vars.clone(), AdamWConfig::default()).expect("adamw");
    let mut noise = SeededNoise::new(0);
    // Forward + backward is about 3x the forward FLOPs (docs/reference.md §2.6).
    g.throughput(Throughput::Elements(
        3 * unet1d_forward(&cfg, batch, len).total() as u64,
    ));
    g.bench_function(BenchmarkId::new("adiff", "small_4x2^16"), |bn| {
        bn.iter(|| {
            let loss = diffusion.loss(&x, &inp, &mut noise, None).expect("loss");
            let store = loss.backward().expect("backward");
            let grads: Vec<Tensor> = vars
                .iter()
                .map(|v| match store.get(v) {
                    Some(g) => g.clone(),
                    None => v.zeros_like().expect("zeros"),
                })
                .collect();
            opt.step(&grads, 1e-4).expect("step");
        })
    });
    g.finish();
}

fn bench_sinc(c: &mut Criterion) {
    let mut g = c.benchmark_group("sinc_resample");
    g.sample_size(10).measurement_time(Duration::from_secs(5));
    let x = Tensor::randn(0f32, 1.0, (1, 1, 1 << 18), &Device::Cpu).expect("x");
    g.throughput(Throughput::Elements(1 << 18));
    for f in [2usize, 4] {
        g.bench_function(BenchmarkId::new("upsample", format!("x{f}_2^18")), |bn| {
            bn.iter(|| adiff_core::audio::sinc::upsample(&x, f).expect("upsample"))
        });
        g.bench_function(BenchmarkId::new("downsample", format!("x{f}_2^18")), |bn| {
            bn.iter(|| adiff_core::audio::sinc::downsample(&x, f).expect("downsample"))
        });
    }
    g.finish();
}

criterion_group!(
    benches,
    bench_forward,
    bench_sampler_step,
    bench_training_step,
    bench_sinc
);
criterion_main!(benches);
