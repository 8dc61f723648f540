//! Kernel benchmarks: the fast `adiff_core::ops` kernels against candle's stock ops on the UNet's
//! shapes. Throughput is reported in FLOPs (2 per multiply-accumulate), so criterion's "elem/s"
//! reads as FLOP/s. Run: `cargo bench -p adiff-core --bench kernels [-- <filter>]`.

/// The `adiff` binary's allocator (glibc's maps and zero-faults every large tensor afresh).
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

use adiff_core::ops;
use candle_core::{Device, Result, Tensor};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use std::time::Duration;

fn rand(shape: &[usize], scale: f32) -> Result<Tensor> {
    Tensor::rand(-scale, scale, shape, &Device::Cpu)
}

/// (name, ci, t, co, k, stride, padding): UNet1d convolutions at 2^18 samples (default config).
const CONVS: &[(&str, usize, usize, usize, usize, usize, usize)] = &[
    ("k3_c128_t16384", 128, 16384, 128, 3, 1, 1),
    ("k3_c16_t65536", 16, 65536, 16, 3, 1, 1),
    ("k3_c256_t4096", 256, 4096, 256, 3, 1, 1),
    ("k3_c1024to512_t256", 1024, 256, 512, 3, 1, 1),
    ("k3_c512_t1024", 512, 1024, 512, 3, 1, 1),
    ("k3_c1024to512_t1024", 1024, 1024, 512, 3, 1, 1),
    ("k3_c512_t32", 512, 32, 512, 3, 1, 1),
    ("k3_c1024to512_t128", 1024, 128, 512, 3, 1, 1),
    ("k3_c512_t64", 512, 64, 512, 3, 1, 1),
    ("k9s4_c128to256_t16384", 128, 16384, 256, 9, 4, 4),
    ("k1_c512_t1024", 512, 1024, 512, 1, 1, 0),
];

/// (name, ci, t, co, k, stride, padding): UNet1d upsampling transposed convolutions.
const CONVTS: &[(&str, usize, usize, usize, usize, usize, usize)] = &[
    ("k8s4_c256to128_t4096", 256, 4096, 128, 8, 4, 2),
    ("k8s4_c512to256_t1024", 512, 1024, 256, 8, 4, 2),
    ("k4s2_c512_t64", 512, 64, 512, 4, 2, 1),
];

fn bench_conv1d(c: &mut Criterion) {
    let mut g = c.benchmark_group("conv1d");
    g.sample_size(10).measurement_time(Duration::from_secs(3));
    for &(name, ci, t, co, k, s, p) in CONVS {
        let x = rand(&[1, ci, t], 1.0).expect("input");
        let w = rand(&[co, ci, k], 0.1).expect("weight");
        let b = rand(&[co], 0.1).expect("bias");
        let t_out = (t + 2 * p - k) / s + 1;
        g.throughput(Throughput::Elements((2 * co * ci * k * t_out) as u64));
        g.bench_function(BenchmarkId::new("adiff", name), |bn| {
            bn.iter(|| ops::conv1d(&x, &w, Some(&b), s, p).expect("conv1d"))
        });
        g.bench_function(BenchmarkId::new("candle", name), |bn| {
            bn.iter(|| ops::conv1d_stock(&x, &w, Some(&b), s, p).expect("conv1d"))
        });
        let bf = |t: &Tensor| t.to_dtype(candle_core::DType::BF16).expect("bf16");
        let (xb, wb, bb) = (bf(&x), bf(&w), bf(&b));
        g.bench_function(BenchmarkId::new("adiff_bf16", name), |bn| {
            bn.iter(|| ops::conv1d(&xb, &wb, Some(&bb), s, p).expect("conv1d"))
        });
    }
    g.finish();
}

/// (name, batch, ci, t, co): kernel-3 convolutions of the small (training) config, batch 4 x 2^16.
const CONV_GRADS: &[(&str, usize, usize, usize, usize)] = &[
    ("k3_b4_c64_t4096", 4, 64, 4096, 64),
    ("k3_b4_c128_t1024", 4, 128, 1024, 128),
    ("k3_b4_c256to128_t1024", 4, 256, 1024, 128),
    ("k3_b4_c128_t256", 4, 128, 256, 128),
    ("k3_b4_c256to128_t256", 4, 256, 256, 128),
];

/// One convolution's backward as training runs it: the gradients of input, weight and bias from
/// an upstream gradient (3x the forward's FLOPs with the forward itself).
fn bench_conv1d_backward(c: &mut Criterion) {
    let mut g = c.benchmark_group("conv1d_backward");
    g.sample_size(10).measurement_time(Duration::from_secs(3));
    for &(name, b, ci, t, co) in CONV_GRADS {
        let x =
            candle_core::Var::from_tensor(&rand(&[b, ci, t], 1.0).expect("input")).expect("var");
        let w =
            candle_core::Var::from_tensor(&rand(&[co, ci, 3], 0.1).expect("weight")).expect("var");
        let bias = candle_core::Var::from_tensor(&rand(&[co], 0.1).expect("bias")).expect("var");
        let up = rand(&[b, co, t], 1.0).expect("upstream");
        g.throughput(Throughput::Elements((3 * 2 * b * co * ci * 3 * t) as u64));
        g.bench_function(BenchmarkId::new("adiff", name), |bn| {
            bn.iter(|| {
                let y = ops::conv1d(&x, &w, Some(&bias), 1, 1).expect("conv1d");
                (y * &up)
                    .expect("mul")
                    .sum_all()
                    .expect("sum")
                    .backward()
                    .expect("backward")
            })
        });
    }
    g.finish();
}

fn bench_conv_transpose1d(c: &mut Criterion) {
    let mut g = c.benchmark_group("conv_transpose1d");
    g.sample_size(10).measurement_time(Duration::from_secs(3));
    for &(name, ci, t, co, k, s, p) in CONVTS {
        let x = rand(&[1, ci, t], 1.0).expect("input");
        let w = rand(&[ci, co, k], 0.1).expect("weight");
        let b = rand(&[co], 0.1).expect("bias");
        g.throughput(Throughput::Elements((2 * co * ci * k * t) as u64));
        g.bench_function(BenchmarkId::new("adiff", name), |bn| {
            bn.iter(|| ops::conv_transpose1d(&x, &w, Some(&b), s, p, 0).expect("convt"))
        });
        g.bench_function(BenchmarkId::new("candle", name), |bn| {
            bn.iter(|| ops::conv_transpose1d_stock(&x, &w, Some(&b), s, p, 0).expect("convt"))
        });
    }
    g.finish();
}

/// (name, channels, length, groups): ConvBlock1d norms of the default UNet at 2^18 samples.
const NORMS: &[(&str, usize, usize, usize)] = &[
    ("c128_t16384_g8", 128, 16384, 8),
    ("c8_t262144_g1", 8, 262144, 1),
    ("c512_t1024_g8", 512, 1024, 8),
];

fn bench_group_norm(c: &mut Criterion) {
    let mut g = c.benchmark_group("group_norm_silu");
    g.sample_size(10).measurement_time(Duration::from_secs(3));
    for &(name, ch, t, groups) in NORMS {
        let x = rand(&[1, ch, t], 1.0).expect("input");
        let w = rand(&[ch], 1.0).expect("weight");
        let b = rand(&[ch], 1.0).expect("bias");
        let scale = rand(&[1, ch, 1], 0.5).expect("scale");
        let shift = rand(&[1, ch, 1], 0.5).expect("shift");
        let args = ops::GroupNormArgs {
            groups,
            eps: 1e-5,
            silu: true,
        };
        g.throughput(Throughput::Bytes((4 * ch * t) as u64));
        g.bench_function(BenchmarkId::new("adiff", name), |bn| {
            bn.iter(|| {
                ops::group_norm_scale_shift_silu(
                    &x,
                    groups,
                    &w,
                    &b,
                    1e-5,
                    Some((&scale, &shift)),
                    true,
                )
                .expect("group norm")
            })
        });
        g.bench_function(BenchmarkId::new("candle", name), |bn| {
            bn.iter(|| ops::group_norm_stock(&x, &w, &b, Some((&scale, &shift)), args).expect("gn"))
        });
    }
    g.finish();
}

/// (name, batch x heads, tokens, head features): the attention of the training bench's small
/// config (levels of 1024 and 256 tokens) and of the default config at 2^18 samples.
const ATTENTIONS: &[(&str, usize, usize, usize)] = &[
    ("bh16_n1024_d32", 16, 1024, 32),
    ("bh16_n256_d32", 16, 256, 32),
    ("bh8_n256_d64", 8, 256, 64),
];

fn bench_attention(c: &mut Criterion) {
    let mut g = c.benchmark_group("attention");
    g.sample_size(10).measurement_time(Duration::from_secs(3));
    for &(name, bh, n, d) in ATTENTIONS {
        let (q, k, v) = (
            rand(&[bh, n, d], 1.0).expect("q"),
            rand(&[bh, n, d], 1.0).expect("k"),
            rand(&[bh, n, d], 1.0).expect("v"),
        );
        let scale = 1.0 / (d as f64).sqrt();
        // Two matrix products of n x n x d multiply-accumulates per head.
        g.throughput(Throughput::Elements((4 * bh * n * n * d) as u64));
        g.bench_function(BenchmarkId::new("adiff", name), |bn| {
            bn.iter(|| ops::attention(&q, &k, &v, scale).expect("attention"))
        });
        g.bench_function(BenchmarkId::new("candle", name), |bn| {
            bn.iter(|| ops::attention_stock(&q, &k, &v, scale).expect("attention"))
        });
    }
    g.finish();
}

criterion_group!(
    benches,
    bench_conv1d,
    bench_conv1d_backward,
    bench_conv_transpose1d,
    bench_group_norm,
    bench_attention
);
criterion_main!(benches);
