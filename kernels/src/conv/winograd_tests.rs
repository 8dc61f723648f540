//! The Winograd F(4, 3) convolution against a direct one evaluated in f64, for every instruction
//! set this CPU can run (always including the portable fallback), and through the public
//! `conv1d` entry point against candle's stock op.
//!
//! Tolerance: inputs uniform in [-1, 1], weights uniform in [-1, 1]/sqrt(3·ci), so outputs are
//! O(1). The transforms scale values by at most 8 before the f32 sums over channels, so we allow
//! a little more than the direct kernels' reordering bound: max |ours - ref| <= 5e-5·(1 + max|ref|).

use super::conv_tests::{max_abs_diff, per_item, rand_tensor};
use super::winograd::conv3;
use super::{conv1d_stock, conv1d_with, Isa};
use candle_core::{Result, Tensor};

/// (batch, ci, t, co, padding): odd lengths, lengths not a multiple of the 4-sample tile, one
/// tile, several time ranges, channel counts off the kernels' row blocks.
const CASES: &[(usize, usize, usize, usize, usize)] = &[
    (1, 1, 3, 1, 0),
    (1, 2, 5, 3, 1),
    (2, 3, 17, 5, 1),
    (1, 8, 6, 8, 2),
    (1, 16, 301, 24, 1),
    (2, 33, 1027, 40, 1),
    (1, 64, 4096, 64, 1),
    (3, 5, 258, 7, 0),
    (1, 128, 130, 96, 1),
];

fn direct_f64(
    x: &[f32],
    w: &[f32],
    bias: &[f32],
    (b, ci, t): (usize, usize, usize),
    co: usize,
    pad: usize,
) -> Vec<f32> {
    let t_out = t + 2 * pad - 2;
    let mut y = vec![0f32; b * co * t_out];
    for bi in 0..b {
        for o in 0..co {
            for i in 0..t_out {
                let mut acc = bias[o] as f64;
                for c in 0..ci {
                    for k in 0..3 {
                        let src = (i + k) as isize - pad as isize;
                        if src >= 0 && (src as usize) < t {
                            acc += w[(o * ci + c) * 3 + k] as f64
                                * x[(bi * ci + c) * t + src as usize] as f64;
                        }
                    }
                }
                y[(bi * co + o) * t_out + i] = acc as f32;
            }
        }
    }
    y
}

#[test]
fn winograd_matches_direct_f64_on_many_shapes() -> Result<()> {
    for isa in Isa::runnable() {
        for (n, &(b, ci, t, co, pad)) in CASES.iter().enumerate() {
            let x = rand_tensor(&[b, ci, t], 10 + n as u64, 1.0)?;
            let w = rand_tensor(&[co, ci, 3], 20 + n as u64, 1.0 / (3.0 * ci as f32).sqrt())?;
            let bias = rand_tensor(&[co], 30 + n as u64, 0.5)?;
            let (xv, wv, bv) = (
                x.flatten_all()?.to_vec1::<f32>()?,
                w.flatten_all()?.to_vec1::<f32>()?,
                bias.to_vec1::<f32>()?,
            );
            let ours = conv3(&xv, &wv, &bv, (b, ci, t), co, pad, isa)?;
            let reference = direct_f64(&xv, &wv, &bv, (b, ci, t), co, pad);
            let t_out = t + 2 * pad - 2;
            let (ours, reference) = (
                Tensor::from_vec(ours, (b, co, t_out), x.device())?,
                Tensor::from_vec(reference, (b, co, t_out), x.device())?,
            );
            let (diff, mag) = max_abs_diff(&ours, &reference)?;
            assert!(
                diff <= 5e-5 * (1.0 + mag),
                "{isa:?} case {n} {:?}: max |winograd - direct| = {diff:e} (max {mag})",
                (b, ci, t, co, pad)
            );
        }
    }
    Ok(())
}

/// The gradients of `sum(ours · up)` and `sum(stock · up)` with respect to `[x, w, bias]` agree
/// within `1e-4·(1 + max|stock's|)`.
fn assert_same_gradients(
    label: &str,
    ours: &Tensor,
    stock: &Tensor,
    up: &Tensor,
    vars: [&candle_core::Var; 3],
) -> Result<()> {
    let g_ours = (ours * up)?.sum_all()?.backward()?;
    let g_stock = (stock * up)?.sum_all()?.backward()?;
    for (name, v) in ["x", "w", "bias"].into_iter().zip(vars) {
        let (a, r) = (g_ours.get(v).expect("grad"), g_stock.get(v).expect("grad"));
        let (diff, mag) = max_abs_diff(a, r)?;
        assert!(
            diff <= 1e-4 * (1.0 + mag),
            "{label}: gradient of {name} {diff:e} (max {mag})"
        );
    }
    Ok(())
}

/// Shapes that pass `winograd::applies` go through it from `conv1d`: the public op must still
/// match candle's stock convolution, and its gradients (the backward's stride-1 input gradient
/// is again a kernel-3 convolution) must match the stock autograd.
#[test]
fn conv1d_takes_winograd_and_matches_stock() -> Result<()> {
    let (b, ci, t, co) = (2, 256, 515, 128);
    assert!(super::winograd::applies(ci, co, 3, 1, t));
    for isa in Isa::runnable() {
        let x = candle_core::Var::from_tensor(&rand_tensor(&[b, ci, t], 1, 1.0)?)?;
        let w = candle_core::Var::from_tensor(&rand_tensor(
            &[co, ci, 3],
            2,
            1.0 / (3.0 * ci as f32).sqrt(),
        )?)?;
        let bias = candle_core::Var::from_tensor(&rand_tensor(&[co], 3, 0.5)?)?;
        let up = rand_tensor(&[b, co, t], 4, 1.0)?;
        let ours = conv1d_with(&x, &w, Some(&bias), 1, 1, isa)?;
        // One batch item at a time (candle's batched conv1d backward is wrong, see `per_item`).
        let stock = per_item(&x, |xi| conv1d_stock(xi, &w, Some(&bias), 1, 1))?;
        let (diff, mag) = max_abs_diff(&ours, &stock)?;
        assert!(
            diff <= 5e-5 * (1.0 + mag),
            "{isa:?}: forward {diff:e} (max {mag})"
        );
        assert_same_gradients(&format!("{isa:?}"), &ours, &stock, &up, [&x, &w, &bias])?;
    }
    Ok(())
}

/// Strided convolutions whose polyphase form has three taps per phase (kernel `2s + 1`, the
/// UNet's downsampling) and transposed convolutions with two or three taps per output phase
/// (the UNet's upsampling) take the Winograd path; they must match candle's stock ops (one batch
/// item at a time, see `per_item`), and the strided ones' gradients its autograd (their input
/// gradient is a transposed convolution that takes the Winograd path too; candle's stock
/// transposed convolution has no backward to compare with).
#[test]
fn strided_and_transposed_convolutions_take_winograd_and_match_stock() -> Result<()> {
    use super::{conv_transpose1d_stock, conv_transpose1d_with};
    // (batch, ci, t, co, k, stride, padding)
    let strided = [(2, 8, 2051, 32, 9, 4, 4), (1, 16, 1030, 40, 5, 2, 2)];
    let transposed = [
        (2, 32, 515, 8, 8, 4, 2),
        (1, 40, 513, 16, 4, 2, 1),
        (1, 32, 511, 16, 6, 2, 2),
    ];
    for isa in Isa::runnable() {
        for (n, &(b, ci, t, co, k, s, p)) in strided.iter().chain(&transposed).enumerate() {
            let is_transposed = n >= strided.len();
            let x = candle_core::Var::from_tensor(&rand_tensor(&[b, ci, t], 40 + n as u64, 1.0)?)?;
            let w_shape = if is_transposed {
                [ci, co, k]
            } else {
                [co, ci, k]
            };
            let w = candle_core::Var::from_tensor(&rand_tensor(
                &w_shape,
                50 + n as u64,
                1.0 / (k as f32 * ci as f32).sqrt(),
            )?)?;
            let bias = candle_core::Var::from_tensor(&rand_tensor(&[co], 60 + n as u64, 0.5)?)?;
            let (ours, stock) = if is_transposed {
                let t_out = (t - 1) * s + k - 2 * p;
                assert!(
                    super::winograd::applies_phased(ci, s * co, t + k.div_ceil(s) - 1),
                    "case {n}"
                );
                let ours = conv_transpose1d_with(&x, &w, Some(&bias), s, p, 0, isa)?;
                let stock = per_item(&x, |xi| {
                    conv_transpose1d_stock(xi, &w, Some(&bias), s, p, 0)
                })?;
                assert_eq!(ours.dims(), &[b, co, t_out]);
                (ours, stock)
            } else {
                let t_out = (t + 2 * p - k) / s + 1;
                assert!(
                    k.div_ceil(s) == 3 && super::winograd::applies_phased(ci * s, co, t_out),
                    "case {n}"
                );
                let ours = conv1d_with(&x, &w, Some(&bias), s, p, isa)?;
                let stock = per_item(&x.pad_with_zeros(2, p, p)?, |xi| {
                    conv1d_stock(xi, &w, Some(&bias), s, 0)
                })?;
                (ours, stock)
            };
            let (diff, mag) = max_abs_diff(&ours, &stock)?;
            assert!(
                diff <= 5e-5 * (1.0 + mag),
                "{isa:?} case {n}: forward {diff:e} (max {mag})"
            );
            if is_transposed {
                continue;
            }
            let up = rand_tensor(stock.dims(), 70 + n as u64, 1.0)?;
            let label = format!("{isa:?} case {n}");
            assert_same_gradients(&label, &ours, &stock, &up, [&x, &w, &bias])?;
        }
    }
    Ok(())
}
