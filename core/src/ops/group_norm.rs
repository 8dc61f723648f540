//! Fused `GroupNorm` → `x·(scale + 1) + shift` → `SiLU`, the front half of `modules.py::ConvBlock1d`
//! (audio-diffusion-pytorch 0.0.61, SPEC §1.3), as one candle custom op: one pass for the group
//! statistics (f64 totals of shifted f32 partial sums), one pass that writes `silu(a·x + b)` with
//! per-(batch, channel) `a`, `b`. The stock composite is about ten full-tensor passes.
//!
//! The op has no backward: [`group_norm_scale_shift_silu`] uses it only when no input is tracked
//! for gradients, and the stock composite otherwise.

use super::isa::Isa;
use super::vec_math::{affine_act, par_chunks_mut, shifted_sums};
use super::{f32_slice, fast_path_ok};
use candle_core::{bail, CpuStorage, CustomOp3, Layout, Result, Shape, Tensor};

/// `silu?( scale_shift?( GroupNorm(groups, eps)(x) · weight + bias ) )` for `x (batch, channels,
/// length)`, `weight`/`bias (channels)` and `scale_shift = (scale, shift)`, each `(batch, channels,
/// 1)`, applied as `y·(scale + 1) + shift`. Statistics use the biased variance (PyTorch).
pub fn group_norm_scale_shift_silu(
    x: &Tensor,
    groups: usize,
    weight: &Tensor,
    bias: &Tensor,
    eps: f64,
    scale_shift: Option<(&Tensor, &Tensor)>,
    silu: bool,
) -> Result<Tensor> {
    let args = GroupNormArgs { groups, eps, silu };
    group_norm_with(x, weight, bias, scale_shift, args, Isa::detect())
}

/// The scalar settings of the fused op.
#[derive(Debug, Clone, Copy)]
pub struct GroupNormArgs {
    /// Number of groups G (channels must divide by it).
    pub groups: usize,
    /// Added to the variance.
    pub eps: f64,
    /// Apply SiLU at the end.
    pub silu: bool,
}

/// [`group_norm_scale_shift_silu`] with an explicit instruction set.
pub fn group_norm_with(
    x: &Tensor,
    weight: &Tensor,
    bias: &Tensor,
    scale_shift: Option<(&Tensor, &Tensor)>,
    args: GroupNormArgs,
    isa: Isa,
) -> Result<Tensor> {
    let (s, sh) = (scale_shift.map(|p| p.0), scale_shift.map(|p| p.1));
    let all = [Some(x), Some(weight), Some(bias), s, sh];
    let tracked = all.iter().flatten().any(|t| t.track_op());
    if tracked || !fast_path_ok(&all) {
        return group_norm_stock(x, weight, bias, scale_shift, args);
    }
    let (b, c, _) = x.dims3()?;
    // Per-(batch, channel) affine factors: a0 = weight·(scale + 1), b0 = bias·(scale + 1) + shift.
    let w = weight.reshape((1, c))?;
    let bi = bias.reshape((1, c))?;
    let (a0, b0) = match scale_shift {
        Some((scale, shift)) => {
            let s1 = (scale.reshape((b, c))? + 1.0)?;
            let a0 = w.broadcast_mul(&s1)?;
            let b0 = bi.broadcast_mul(&s1)?.add(&shift.reshape((b, c))?)?;
            (a0, b0)
        }
        None => (w.broadcast_as((b, c))?, bi.broadcast_as((b, c))?),
    };
    let op = GroupNormOp { args, isa };
    x.contiguous()?
        .apply_op3_no_bwd(&a0.contiguous()?, &b0.contiguous()?, &op)
}

/// The stock candle composite the fused op replaces.
pub fn group_norm_stock(
    x: &Tensor,
    weight: &Tensor,
    bias: &Tensor,
    scale_shift: Option<(&Tensor, &Tensor)>,
    args: GroupNormArgs,
) -> Result<Tensor> {
    let (b, c, t) = x.dims3()?;
    let g = args.groups;
    if g == 0 || c % g != 0 {
        bail!("group norm: {c} channels do not split into {g} groups");
    }
    let xg = x.reshape((b, g, (c / g) * t))?;
    let mean = xg.mean_keepdim(2)?;
    let xc = xg.broadcast_sub(&mean)?;
    let var = xc.sqr()?.mean_keepdim(2)?;
    let xn = xc
        .broadcast_div(&(var + args.eps)?.sqrt()?)?
        .reshape((b, c, t))?;
    let y = xn
        .broadcast_mul(&weight.reshape((1, c, 1))?)?
        .broadcast_add(&bias.reshape((1, c, 1))?)?;
    let y = match scale_shift {
        Some((s, sh)) => y
            .broadcast_mul(&(s.reshape((b, c, 1))? + 1.0)?)?
            .broadcast_add(&sh.reshape((b, c, 1))?)?,
        None => y,
    };
    if args.silu {
        y.silu()
    } else {
        Ok(y)
    }
}

struct GroupNormOp {
    args: GroupNormArgs,
    isa: Isa,
}

impl CustomOp3 for GroupNormOp {
    fn name(&self) -> &'static str {
        "adiff-group-norm-scale-shift-silu"
    }

    fn cpu_fwd(
        &self,
        xs: &CpuStorage,
        xl: &Layout,
        a_s: &CpuStorage,
        al: &Layout,
        b_s: &CpuStorage,
        bl: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (x, a0, b0) = (f32_slice(xs, xl)?, f32_slice(a_s, al)?, f32_slice(b_s, bl)?);
        let (b, c, t) = xl.shape().dims3()?;
        let g = self.args.groups;
        if g == 0 || c % g != 0 || a0.len() != b * c || b0.len() != b * c {
            bail!(
                "adiff group norm: {c} channels, {g} groups, factors {:?}",
                al.shape()
            );
        }
        let group_len = (c / g) * t;
        let isa = self.isa;
        // Pass 1: (mean, 1/std) per (batch, group).
        let mut stats = vec![(0f64, 0f64); b * g];
        par_chunks_mut(&mut stats, 1, |i, st| {
            let xs = &x[i * group_len..(i + 1) * group_len];
            let shift = xs.first().copied().unwrap_or(0.0);
            let (s, q) = shifted_sums(isa, xs, shift);
            let n = group_len.max(1) as f64;
            let m = s / n;
            let var = (q / n - m * m).max(0.0);
            st[0] = (shift as f64 + m, 1.0 / (var + self.args.eps).sqrt());
        });
        // Pass 2: y = act(a·x + b) per (batch, channel) row.
        let mut y = vec![0f32; b * c * t];
        let silu = self.args.silu;
        par_chunks_mut(&mut y, t.max(1), |row, dst| {
            let (mean, rstd) = stats[row / (c / g)];
            let a = rstd * a0[row] as f64;
            let bb = b0[row] as f64 - mean * a;
            affine_act(isa, &x[row * t..][..t], dst, a as f32, bb as f32, silu);
        });
        Ok((CpuStorage::F32(y), Shape::from((b, c, t))))
    }
}
