//! Tests of the fused GroupNorm → scale-shift → SiLU op against the stock composite evaluated in
//! f64 (the exact value), on every runnable instruction set. Tolerance: 2e-5·(1 + max|ref|).

use super::conv_tests::{max_abs_diff, rand_tensor};
use super::group_norm::{group_norm_stock, group_norm_with, GroupNormArgs};
use super::Isa;
use candle_core::{DType, Result, Tensor, Var};

/// (batch, channels, length, groups, offset added to x)
const CASES: &[(usize, usize, usize, usize, f32)] = &[
    (1, 8, 100, 8, 0.0),
    (2, 16, 37, 4, 0.0),
    (1, 1, 1000, 1, 0.0),
    (3, 64, 65, 32, 3.0),
    (2, 12, 1, 3, -2.0),
    (1, 128, 513, 8, 0.5),
];

fn f64_reference(
    x: &Tensor,
    w: &Tensor,
    b: &Tensor,
    ss: Option<(&Tensor, &Tensor)>,
    args: GroupNormArgs,
) -> Result<Tensor> {
    let d = |t: &Tensor| t.to_dtype(DType::F64);
    let ss64 = match ss {
        Some((s, sh)) => Some((d(s)?, d(sh)?)),
        None => None,
    };
    let y = group_norm_stock(
        &d(x)?,
        &d(w)?,
        &d(b)?,
        ss64.as_ref().map(|(s, sh)| (s, sh)),
        args,
    )?;
    y.to_dtype(DType::F32)
}

/// x, weight, bias, scale and shift of case `i` (seeded by the case index).
fn case_inputs(i: usize, (b, c, t): (usize, usize, usize), offset: f32) -> Result<[Tensor; 5]> {
    let s = |k: u64| k + i as u64;
    Ok([
        (rand_tensor(&[b, c, t], s(40), 2.0)? + offset as f64)?,
        rand_tensor(&[c], s(50), 1.0)?,
        rand_tensor(&[c], s(60), 0.5)?,
        rand_tensor(&[b, c, 1], s(70), 0.5)?,
        rand_tensor(&[b, c, 1], s(80), 0.5)?,
    ])
}

#[test]
fn fused_group_norm_matches_f64_composite() -> Result<()> {
    for isa in Isa::runnable() {
        for (i, &(b, c, t, g, offset)) in CASES.iter().enumerate() {
            let [x, w, bias, scale, shift] = case_inputs(i, (b, c, t), offset)?;
            for (silu, ss) in [(true, true), (true, false), (false, true), (false, false)] {
                let args = GroupNormArgs {
                    groups: g,
                    eps: 1e-5,
                    silu,
                };
                let ss = ss.then_some((&scale, &shift));
                let ours = group_norm_with(&x, &w, &bias, ss, args, isa)?;
                let want = f64_reference(&x, &w, &bias, ss, args)?;
                let (diff, mag) = max_abs_diff(&ours, &want)?;
                assert!(
                    diff <= 2e-5 * (1.0 + mag),
                    "{isa:?} case {i} silu {silu} scale-shift {}: max diff {diff:e} (max {mag})",
                    ss.is_some()
                );
            }
        }
    }
    Ok(())
}

/// Gradients of `Σ y·r` with respect to x, weight, bias, scale and shift.
fn grads_of(
    x: &Tensor,
    w: &Tensor,
    b: &Tensor,
    ss: Option<(&Tensor, &Tensor)>,
    r: &Tensor,
    f: impl Fn(&Tensor, &Tensor, &Tensor, Option<(&Tensor, &Tensor)>) -> Result<Tensor>,
) -> Result<Vec<Tensor>> {
    let vars: Vec<Var> = [Some(x), Some(w), Some(b), ss.map(|p| p.0), ss.map(|p| p.1)]
        .into_iter()
        .flatten()
        .map(Var::from_tensor)
        .collect::<Result<_>>()?;
    let v = |i: usize| vars[i].as_tensor();
    let ssv = ss.map(|_| (v(3), v(4)));
    let y = f(v(0), v(1), v(2), ssv)?;
    let r = r.to_dtype(y.dtype())?;
    let store = (y * r)?.sum_all()?.backward()?;
    vars.iter()
        .map(|var| match store.get(var.as_tensor()) {
            Some(g) => g.to_dtype(DType::F32),
            None => candle_core::bail!("no gradient"),
        })
        .collect()
}

#[test]
fn fused_group_norm_gradients_match_f64_composite() -> Result<()> {
    for isa in Isa::runnable() {
        for (i, &(b, c, t, g, offset)) in CASES.iter().enumerate() {
            let [x, w, bias, scale, shift] = case_inputs(i, (b, c, t), offset)?;
            let r = rand_tensor(&[b, c, t], 90 + i as u64, 1.0)?;
            for (silu, ss) in [(true, true), (true, false), (false, true), (false, false)] {
                let args = GroupNormArgs {
                    groups: g,
                    eps: 1e-5,
                    silu,
                };
                let ss = ss.then_some((&scale, &shift));
                let ours = grads_of(&x, &w, &bias, ss, &r, |x, w, b, ss| {
                    group_norm_with(x, w, b, ss, args, isa)
                })?;
                let d = |t: &Tensor| t.to_dtype(DType::F64);
                let ss64 = match ss {
                    Some((s, sh)) => Some((d(s)?, d(sh)?)),
                    None => None,
                };
                let want = grads_of(
                    &d(&x)?,
                    &d(&w)?,
                    &d(&bias)?,
                    ss64.as_ref().map(|(s, sh)| (s, sh)),
                    &r,
                    |x, w, b, ss| group_norm_stock(x, w, b, ss, args),
                )?;
                for (k, (o, e)) in ours.iter().zip(&want).enumerate() {
                    let (diff, mag) = max_abs_diff(o, e)?;
                    assert!(
                        diff <= 1e-4 * (1.0 + mag),
                        "{isa:?} case {i} silu {silu} scale-shift {} input {k}: max diff {diff:e} (max {mag})",
                        ss.is_some()
                    );
                }
            }
        }
    }
    Ok(())
}

#[test]
fn tracked_inputs_get_a_gradient() -> Result<()> {
    let x = Var::from_tensor(&rand_tensor(&[1, 8, 20], 1, 1.0)?)?;
    let w = rand_tensor(&[8], 2, 1.0)?;
    let b = rand_tensor(&[8], 3, 1.0)?;
    let args = GroupNormArgs {
        groups: 2,
        eps: 1e-5,
        silu: true,
    };
    let y = group_norm_with(&x, &w, &b, None, args, Isa::detect())?;
    let grads = y.sum_all()?.backward()?;
    assert!(grads.get(&x).is_some(), "gradient reaches x");
    Ok(())
}
