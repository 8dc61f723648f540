//! Fused `GroupNorm` → `x·(scale + 1) + shift` → `SiLU`, the front half of `modules.py::ConvBlock1d`
//! (audio-diffusion-pytorch 0.0.61, reference §1.3), as one candle custom op: one pass for the
//! group statistics (f64 totals of shifted f32 partial sums), one pass that writes `silu(a·x + b)`
//! with per-(batch, channel) `a`, `b`. The stock composite is about ten full-tensor passes.
//!
//! The op is differentiable: its backward is one more fused op (statistics recomputed, then per
//! row `Σ dz` and `Σ dz·n`, then `dx` in one pass), and the gradients of weight, bias, scale and
//! shift flow through the per-(batch, channel) factors, which are ordinary candle ops.

use super::isa::Isa;
use super::vec_math::{affine_act, gn_bwd_dx, gn_bwd_sums, par_chunks_mut, shifted_sums, GnRow};
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
    if !fast_path_ok(&all) {
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
    let (x, a0, b0) = (x.contiguous()?, a0.contiguous()?, b0.contiguous()?);
    if tracked {
        x.apply_op3(&a0, &b0, op)
    } else {
        x.apply_op3_no_bwd(&a0, &b0, &op)
    }
}

/// `(mean, 1/std)` of one group, as the forward pass computes them.
fn group_stats(isa: Isa, xs: &[f32], eps: f64) -> (f64, f64) {
    let shift = xs.first().copied().unwrap_or(0.0);
    let (s, q) = shifted_sums(isa, xs, shift);
    let n = xs.len().max(1) as f64;
    let m = s / n;
    let var = (q / n - m * m).max(0.0);
    (shift as f64 + m, 1.0 / (var + eps).sqrt())
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

/// From this many (batch, group) pairs the forward runs one task per group (statistics and
/// output rows together, the group's inputs read from memory once); below it, the rows are spread
/// over the pool on their own so that both threads work.
const GROUP_TASKS: usize = 4;

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
        let (isa, silu, cg) = (self.isa, self.args.silu, c / g);
        let factors = |row: usize, (mean, rstd): (f64, f64)| {
            let a = rstd * a0[row] as f64;
            (a as f32, (b0[row] as f64 - mean * a) as f32)
        };
        if b * g >= GROUP_TASKS {
            // One task per (batch, group): its statistics, then its rows while they are in L2.
            let y = super::vec_math::par_collect(b * c * t, group_len.max(1), |i, dst| {
                let xs = &x[i * group_len..(i + 1) * group_len];
                let st = group_stats(isa, xs, self.args.eps);
                for (j, (src, d)) in xs
                    .chunks_exact(t.max(1))
                    .zip(dst.chunks_exact_mut(t.max(1)))
                    .enumerate()
                {
                    let (a, bb) = factors(i * cg + j, st);
                    affine_act(isa, src, d, a, bb, silu);
                }
            });
            return Ok((CpuStorage::F32(y), Shape::from((b, c, t))));
        }
        // Few groups: (mean, 1/std) per (batch, group), then the rows in parallel.
        let mut stats = vec![(0f64, 0f64); b * g];
        par_chunks_mut(&mut stats, 1, |i, st| {
            st[0] = group_stats(isa, &x[i * group_len..(i + 1) * group_len], self.args.eps);
        });
        let y = super::vec_math::par_collect(b * c * t, t.max(1), |row, dst| {
            let (a, bb) = factors(row, stats[row / cg]);
            affine_act(isa, &x[row * t..][..t], dst, a, bb, silu);
        });
        Ok((CpuStorage::F32(y), Shape::from((b, c, t))))
    }

    fn bwd(
        &self,
        x: &Tensor,
        a0: &Tensor,
        b0: &Tensor,
        _res: &Tensor,
        dy: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let (b, c, t) = x.dims3()?;
        let ab = Tensor::cat(&[a0.flatten_all()?, b0.flatten_all()?], 0)?;
        let op = GroupNormBwdOp {
            args: self.args,
            isa: self.isa,
        };
        let out = x.apply_op3_no_bwd(&ab, &dy.contiguous()?, &op)?;
        let n = b * c * t;
        let dx = out.narrow(0, 0, n)?.reshape((b, c, t))?;
        let da = out.narrow(0, n, b * c)?.reshape(a0.shape())?;
        let db = out.narrow(0, n + b * c, b * c)?.reshape(b0.shape())?;
        Ok((Some(dx), Some(da), Some(db)))
    }
}

/// The backward of [`GroupNormOp`]: inputs `x`, the factors `[a0; b0]` flattened, and `dy`;
/// output `[dx (b·c·t); da0 (b·c); db0 (b·c)]` flattened. With `n` the normalised input,
/// `z = a0·n + b0`, `dz = dy·act'(z)`: `da0 = Σ_t dz·n`, `db0 = Σ_t dz` per row, and
/// `dx = rstd·(a0·dz - mean_g(a0·dz) - n·mean_g(a0·dz·n))` per group.
struct GroupNormBwdOp {
    args: GroupNormArgs,
    isa: Isa,
}

impl CustomOp3 for GroupNormBwdOp {
    fn name(&self) -> &'static str {
        "adiff-group-norm-scale-shift-silu-backward"
    }

    fn cpu_fwd(
        &self,
        xs: &CpuStorage,
        xl: &Layout,
        ab_s: &CpuStorage,
        abl: &Layout,
        dy_s: &CpuStorage,
        dyl: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (x, ab, dy) = (
            f32_slice(xs, xl)?,
            f32_slice(ab_s, abl)?,
            f32_slice(dy_s, dyl)?,
        );
        let (b, c, t) = xl.shape().dims3()?;
        let g = self.args.groups;
        if g == 0 || c % g != 0 || ab.len() != 2 * b * c || dy.len() != x.len() {
            bail!("adiff group norm backward: {c} channels, {g} groups, inconsistent inputs");
        }
        let (a0, b0) = ab.split_at(b * c);
        let (cg, isa, silu) = (c / g, self.isa, self.args.silu);
        let group_len = cg * t;
        let row = |r: usize, (mean, rstd): (f64, f64)| GnRow {
            mean: mean as f32,
            rstd: rstd as f32,
            a: a0[r],
            b: b0[r],
            silu,
        };
        // One task per (batch, group), all passes over the group's rows while they are in L2:
        // [mean, rstd, Σ dz per row, Σ dz·n per row] into `recs`, then dx into `out`.
        let rec = 2 + 2 * cg;
        let n = b * c * t;
        let recs: Vec<std::sync::Mutex<Vec<f64>>> = (0..b * g)
            .map(|_| std::sync::Mutex::new(Vec::new()))
            .collect();
        // The last 2·b·c values (the factors' gradients, written below) are past every group.
        let mut out = super::vec_math::par_collect(n + 2 * b * c, group_len.max(1), |i, dst| {
            if i >= b * g {
                return;
            }
            let mut r = vec![0f64; rec];
            let st = group_stats(isa, &x[i * group_len..(i + 1) * group_len], self.args.eps);
            (r[0], r[1]) = st;
            for j in 0..cg {
                let rr = i * cg + j;
                let span = rr * t..(rr + 1) * t;
                let (s1, s2) = gn_bwd_sums(isa, &x[span.clone()], &dy[span], row(rr, st));
                (r[2 + j], r[2 + cg + j]) = (s1, s2);
            }
            let count = group_len.max(1) as f64;
            let (mut m1, mut m2) = (0f64, 0f64);
            for j in 0..cg {
                m1 += a0[i * cg + j] as f64 * r[2 + j];
                m2 += a0[i * cg + j] as f64 * r[2 + cg + j];
            }
            let m = ((m1 / count) as f32, (m2 / count) as f32);
            for j in 0..cg {
                let rr = i * cg + j;
                let span = rr * t..(rr + 1) * t;
                let d = &mut dst[j * t..(j + 1) * t];
                gn_bwd_dx(isa, &x[span.clone()], &dy[span], d, row(rr, st), m);
            }
            if let Ok(mut slot) = recs[i].lock() {
                *slot = r;
            }
        });
        let recs: Vec<f64> = recs
            .into_iter()
            .flat_map(|m| m.into_inner().unwrap_or_default())
            .collect();
        if recs.len() != b * g * rec {
            bail!("adiff group norm backward: a group's sums are missing");
        }
        for i in 0..b * g {
            let r = &recs[i * rec..(i + 1) * rec];
            for j in 0..cg {
                out[n + i * cg + j] = r[2 + cg + j] as f32;
                out[n + b * c + i * cg + j] = r[2 + j] as f32;
            }
        }
        let len = out.len();
        Ok((CpuStorage::F32(out), Shape::from(len)))
    }
}
