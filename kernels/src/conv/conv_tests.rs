//! Tests of the fast convolutions against candle's stock ops on random inputs, for every
//! instruction set this CPU can run (always including the portable fallback).
//!
//! Tolerance: inputs are uniform in [-1, 1] and weights uniform in [-1, 1]/sqrt(ci·k), so outputs are
//! O(1); the kernels only reorder f32 sums, so we require max |ours - stock| <= 2e-5·(1 + max|stock|).

use super::{conv1d_stock, conv1d_with, conv_transpose1d_stock, conv_transpose1d_with, Isa};
use candle_core::{Device, Result, Tensor, Var};

/// A deterministic uniform [-scale, scale] tensor (xorshift; no global RNG).
pub(crate) fn rand_tensor(shape: &[usize], seed: u64, scale: f32) -> Result<Tensor> {
    let n: usize = shape.iter().product();
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let v: Vec<f32> = (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            ((s >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0) * scale
        })
        .collect();
    Tensor::from_vec(v, shape, &Device::Cpu)
}

pub(crate) fn max_abs_diff(a: &Tensor, b: &Tensor) -> Result<(f32, f32)> {
    assert_eq!(a.dims(), b.dims(), "shapes differ");
    let diff = (a - b)?.abs()?.flatten_all()?.max(0)?.to_scalar::<f32>()?;
    let mag = b.abs()?.flatten_all()?.max(0)?.to_scalar::<f32>()?;
    Ok((diff, mag))
}

/// Applies `f` to each batch item and concatenates. candle 0.11's stock `conv_transpose1d` with
/// padding 0 and output_padding 0 (its col2im path) is wrong for every batch item after the
/// first (measured: max error 2.2 on a (2, 3, 9) input), so references are built item by item.
pub(crate) fn per_item(x: &Tensor, f: impl Fn(&Tensor) -> Result<Tensor>) -> Result<Tensor> {
    let items = (0..x.dim(0)?)
        .map(|i| f(&x.narrow(0, i, 1)?))
        .collect::<Result<Vec<_>>>()?;
    Tensor::cat(&items, 0)
}

fn check(name: &str, ours: &Tensor, stock: &Tensor, rel: f32) -> Result<()> {
    let (diff, mag) = max_abs_diff(ours, stock)?;
    assert!(
        diff <= rel * (1.0 + mag),
        "{name}: max |ours - stock| = {diff:e} (max |stock| = {mag}) exceeds {rel:e}·(1 + max)"
    );
    Ok(())
}

/// (batch, ci, t, co, k, stride, padding)
const CONV_CASES: &[(usize, usize, usize, usize, usize, usize, usize)] = &[
    (1, 1, 17, 8, 3, 1, 1),
    (2, 3, 31, 5, 3, 1, 1),
    (1, 8, 100, 13, 9, 4, 4),
    (2, 16, 64, 32, 5, 2, 2),
    (1, 7, 33, 3, 1, 1, 0),
    (3, 5, 50, 7, 4, 3, 0),
    (1, 20, 45, 25, 7, 2, 5),
    (1, 64, 257, 40, 3, 1, 1),
    (1, 300, 40, 13, 3, 1, 1),
    (2, 4, 10, 4, 2, 5, 0),
    (1, 2, 3, 2, 3, 1, 0),
    (1, 3, 1, 2, 1, 3, 1),
    (2, 2, 2, 3, 5, 2, 4),
    (2, 9, 64, 5, 1, 1, 0),
    (1, 4, 66, 6, 3, 1, 0),
    // 1x1 with more taps than one packing chunk (256) and several tiles per batch item.
    (2, 300, 200, 20, 1, 1, 0),
    // Long enough for several time blocks of the weight gradient, with ragged tails.
    (3, 4, 5003, 6, 3, 1, 1),
    (2, 3, 4099, 5, 9, 4, 4),
];

#[test]
fn conv1d_matches_stock_on_many_shapes() -> Result<()> {
    for isa in Isa::runnable() {
        for (i, &(b, ci, t, co, k, s, p)) in CONV_CASES.iter().enumerate() {
            let x = rand_tensor(&[b, ci, t], 1 + i as u64, 1.0)?;
            let w = rand_tensor(&[co, ci, k], 100 + i as u64, 1.0 / ((ci * k) as f32).sqrt())?;
            let bias = rand_tensor(&[co], 200 + i as u64, 0.5)?;
            let ours = conv1d_with(&x, &w, Some(&bias), s, p, isa)?;
            let stock = conv1d_stock(&x, &w, Some(&bias), s, p)?;
            check(&format!("{isa:?} conv1d case {i}"), &ours, &stock, 2e-5)?;
            let ours = conv1d_with(&x, &w, None, s, p, isa)?;
            let stock = conv1d_stock(&x, &w, None, s, p)?;
            check(
                &format!("{isa:?} conv1d no-bias case {i}"),
                &ours,
                &stock,
                2e-5,
            )?;
        }
    }
    Ok(())
}

#[test]
fn conv1d_reads_strided_views() -> Result<()> {
    // A transposed (non-contiguous) input must give the same result as its contiguous copy.
    let x = rand_tensor(&[1, 40, 6], 7, 1.0)?.transpose(1, 2)?;
    let w = rand_tensor(&[4, 6, 3], 8, 0.3)?;
    for isa in Isa::runnable() {
        let ours = conv1d_with(&x, &w, None, 1, 1, isa)?;
        let stock = conv1d_stock(&x.contiguous()?, &w, None, 1, 1)?;
        check(&format!("{isa:?} strided view"), &ours, &stock, 2e-5)?;
    }
    Ok(())
}

/// (batch, ci, t, co, k, stride, padding, output_padding)
type ConvTCase = (usize, usize, usize, usize, usize, usize, usize, usize);

const CONVT_CASES: &[ConvTCase] = &[
    (1, 8, 16, 8, 4, 2, 1, 0),
    (2, 16, 33, 8, 8, 4, 2, 0),
    (1, 6, 11, 5, 6, 3, 2, 1),
    (1, 3, 7, 5, 3, 1, 1, 0),
    (2, 6, 9, 4, 5, 2, 0, 1),
    (1, 5, 13, 7, 3, 4, 0, 2),
    (1, 32, 300, 24, 8, 4, 2, 0),
    (1, 1, 1, 1, 1, 1, 0, 0),
    (2, 3, 9, 4, 3, 1, 0, 0),
    // More output channels than one phase-kernel block (32), the last block ragged.
    (1, 6, 20, 40, 4, 2, 1, 0),
];

#[test]
fn conv_transpose1d_matches_stock_on_many_shapes() -> Result<()> {
    for isa in Isa::runnable() {
        for (i, &(b, ci, t, co, k, s, p, op)) in CONVT_CASES.iter().enumerate() {
            let x = rand_tensor(&[b, ci, t], 300 + i as u64, 1.0)?;
            let w = rand_tensor(&[ci, co, k], 400 + i as u64, 1.0 / ((ci * k) as f32).sqrt())?;
            let bias = rand_tensor(&[co], 500 + i as u64, 0.5)?;
            let ours = conv_transpose1d_with(&x, &w, Some(&bias), s, p, op, isa)?;
            let stock = per_item(&x, |xi| {
                conv_transpose1d_stock(xi, &w, Some(&bias), s, p, op)
            })?;
            check(
                &format!("{isa:?} conv_transpose1d case {i}"),
                &ours,
                &stock,
                2e-5,
            )?;
        }
    }
    Ok(())
}

#[test]
fn conv1d_gradients_match_stock_autograd() -> Result<()> {
    for isa in Isa::runnable() {
        for (i, &(b, ci, t, co, k, s, p)) in CONV_CASES.iter().enumerate() {
            let x = Var::from_tensor(&rand_tensor(&[b, ci, t], 600 + i as u64, 1.0)?)?;
            let w = Var::from_tensor(&rand_tensor(&[co, ci, k], 700 + i as u64, 0.3)?)?;
            let bias = Var::from_tensor(&rand_tensor(&[co], 800 + i as u64, 0.5)?)?;
            // Explicit padding (candle's conv1d backward underflows on the degenerate cases) and
            // one batch item at a time (its batched padding-0 backward is wrong, see `per_item`).
            let y_ref = per_item(&x.pad_with_zeros(2, p, p)?, |xi| {
                conv1d_stock(xi, &w, Some(&bias), s, 0)
            })?;
            let g = rand_tensor(y_ref.dims(), 900 + i as u64, 1.0)?;
            let grads_ref = (y_ref * &g)?.sum_all()?.backward()?;
            let y = conv1d_with(&x, &w, Some(&bias), s, p, isa)?;
            let grads = (y * &g)?.sum_all()?.backward()?;
            for (name, v) in [("x", &x), ("w", &w), ("bias", &bias)] {
                let ours = grads.get(v).expect("gradient of the fast op");
                let stock = grads_ref.get(v).expect("gradient of the stock op");
                check(
                    &format!("{isa:?} conv1d grad {name} case {i}"),
                    ours,
                    stock,
                    5e-5,
                )?;
            }
        }
    }
    Ok(())
}

#[test]
fn conv_transpose1d_gradients_match_adjoint_of_stock_conv1d() -> Result<()> {
    // <conv_transpose1d(x, w), g> = <x, conv1d(g, w)>, and stock conv1d is differentiable, so the
    // gradients of the right-hand side (computed by candle) are the reference.
    for isa in Isa::runnable() {
        for (i, &(b, ci, t, co, k, s, p, op)) in CONVT_CASES.iter().enumerate().take(6) {
            let x = Var::from_tensor(&rand_tensor(&[b, ci, t], 1000 + i as u64, 1.0)?)?;
            let w = Var::from_tensor(&rand_tensor(&[ci, co, k], 1100 + i as u64, 0.3)?)?;
            let y = conv_transpose1d_with(&x, &w, None, s, p, op, isa)?;
            let g = rand_tensor(y.dims(), 1200 + i as u64, 1.0)?;
            let grads = (y * &g)?.sum_all()?.backward()?;
            let adj = per_item(&g, |gi| conv1d_stock(gi, &w, None, s, p))?;
            let grads_ref = (adj * x.as_tensor())?.sum_all()?.backward()?;
            for (name, v) in [("x", &x), ("w", &w)] {
                let ours = grads.get(v).expect("gradient of the fast op");
                let stock = grads_ref.get(v).expect("gradient of the adjoint");
                check(
                    &format!("{isa:?} conv_transpose1d grad {name} case {i}"),
                    ours,
                    stock,
                    5e-5,
                )?;
            }
        }
    }
    Ok(())
}

/// bf16 tensors: the result must equal the f32 convolution of the same (bf16-exact) values up to
/// the final rounding to bf16 (relative 2^-9) and f32 summation order: 4e-3·(1 + max|ref|).
#[test]
fn bf16_convolutions_match_f32_on_bf16_values() -> Result<()> {
    use candle_core::DType;
    let bf = |t: Tensor| t.to_dtype(DType::BF16);
    for isa in Isa::runnable() {
        for (i, &(b, ci, t, co, k, s, p)) in CONV_CASES.iter().enumerate() {
            let x = bf(rand_tensor(&[b, ci, t], 1300 + i as u64, 1.0)?)?;
            let w = bf(rand_tensor(
                &[co, ci, k],
                1400 + i as u64,
                1.0 / ((ci * k) as f32).sqrt(),
            )?)?;
            let bias = bf(rand_tensor(&[co], 1500 + i as u64, 0.5)?)?;
            let ours = conv1d_with(&x, &w, Some(&bias), s, p, isa)?;
            assert_eq!(ours.dtype(), DType::BF16);
            let f = |t: &Tensor| t.to_dtype(DType::F32);
            let want = conv1d_stock(&f(&x)?, &f(&w)?, Some(&f(&bias)?), s, p)?;
            check(
                &format!("{isa:?} bf16 conv1d case {i}"),
                &f(&ours)?,
                &want,
                4e-3,
            )?;
        }
        for (i, &(b, ci, t, co, k, s, p, op)) in CONVT_CASES.iter().enumerate() {
            let x = bf(rand_tensor(&[b, ci, t], 1600 + i as u64, 1.0)?)?;
            let w = bf(rand_tensor(
                &[ci, co, k],
                1700 + i as u64,
                1.0 / ((ci * k) as f32).sqrt(),
            )?)?;
            let ours = conv_transpose1d_with(&x, &w, None, s, p, op, isa)?;
            let f = |t: &Tensor| t.to_dtype(DType::F32);
            let want = per_item(&f(&x)?, |xi| {
                conv_transpose1d_stock(xi, &f(&w)?, None, s, p, op)
            })?;
            check(
                &format!("{isa:?} bf16 conv_transpose1d case {i}"),
                &f(&ours)?,
                &want,
                4e-3,
            )?;
        }
    }
    Ok(())
}

/// The cached transposed convolution equals the uncached one on both kernel layouts (a short
/// input runs the direct kernel, a long one the Winograd form), rebuilds when the weight tensor
/// is replaced (the cache is keyed by its id), and leaves a tracked weight's gradient intact.
#[test]
fn cached_phase_kernels_match_and_follow_the_weight() -> Result<()> {
    let cache = std::sync::Arc::new(super::PhaseKernelCache::default());
    let (ci, co, k, s, p) = (32, 32, 8, 4, 2);
    let w1 = rand_tensor(&[ci, co, k], 60, 0.1)?;
    let w2 = rand_tensor(&[ci, co, k], 61, 0.1)?;
    let bias = rand_tensor(&[co], 62, 0.5)?;
    let isa = Isa::detect();
    for (w, seed) in [(&w1, 63), (&w1, 64), (&w2, 65)] {
        for t in [20, 700] {
            let x = rand_tensor(&[2, ci, t], seed, 1.0)?;
            let ours = super::conv_transpose1d_cached(&x, w, Some(&bias), (s, p, 0), &cache)?;
            let plain = conv_transpose1d_with(&x, w, Some(&bias), s, p, 0, isa)?;
            let (diff, mag) = max_abs_diff(&ours, &plain)?;
            assert!(diff == 0.0, "t {t}: cached differs by {diff:e} (max {mag})");
        }
    }
    // A trainable weight bypasses the cache: its gradient is the uncached op's.
    let wv = Var::from_tensor(&w1)?;
    let x = rand_tensor(&[1, ci, 20], 66, 1.0)?;
    let up = rand_tensor(&[1, co, (20 - 1) * s + k - 2 * p], 67, 1.0)?;
    let g_cached = (super::conv_transpose1d_cached(&x, &wv, None, (s, p, 0), &cache)? * &up)?
        .sum_all()?
        .backward()?;
    let g_plain = (conv_transpose1d_with(&x, &wv, None, s, p, 0, isa)? * &up)?
        .sum_all()?
        .backward()?;
    let (a, b) = (
        g_cached.get(&wv).expect("grad"),
        g_plain.get(&wv).expect("grad"),
    );
    assert_eq!(max_abs_diff(a, b)?.0, 0.0);
    Ok(())
}
