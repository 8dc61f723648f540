//! Fast CPU `ConvTranspose1d` (PyTorch `nn.ConvTranspose1d`, groups 1, dilation 1) as a candle
//! custom op, with backward (candle 0.11's stock transposed convolution has none).
//!
//! Output phase `r` of a stride-`s` transposed convolution is a stride-1 correlation of the input
//! with the taps `k ≡ r (mod s)`, reversed: with `Q = ceil(k/s)` and the full output
//! `z[v·s + r] = Σ_q w[q·s + r] · x[v - q]`, all `s` phases are computed as one stride-1 convolution
//! with `s·co` output rows over the input padded by `Q - 1`, then interleaved.

use super::conv1d::conv1d_with;
use super::conv_kernel::{
    round_up, run, run_bf16, unaliased, weight_stride, with_phase_split, TapConv, W_MAX,
};
use super::isa::Isa;
use super::vec_math::par_collect;
use super::{conv_path_ok, f32_values, storage_like};
use candle_core::{bail, CpuStorage, CustomOp3, Layout, Result, Shape, Tensor, TensorId};
use std::sync::{Arc, Mutex};

/// The reordered per-phase kernels of one constant weight, built on first use and reused by
/// [`conv_transpose1d_cached`] (one per layout: the direct kernel's and the Winograd form's).
/// For inference weights: rebuilding them from `w` every call was most of a short layer's time
/// (k4 s2 512 ch x 32 samples: 8 MB of weights reordered for 67 MFLOP).
/// Entries are keyed by the weight tensor's id, so a layer whose weight was replaced rebuilds.
#[derive(Debug, Default)]
pub struct PhaseKernelCache {
    /// For one weight id at a time.
    entries: Mutex<Vec<PhaseEntry>>,
}

/// (weight id, Winograd layout?, kernels).
type PhaseEntry = (TensorId, bool, Arc<Vec<f32>>);

impl PhaseKernelCache {
    fn get_or_build(
        &self,
        id: TensorId,
        winograd: bool,
        build: impl FnOnce() -> Vec<f32>,
    ) -> Arc<Vec<f32>> {
        // A poisoned lock only means another call panicked while building: start afresh.
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries.retain(|(i, ..)| *i == id);
        if let Some((.., k)) = entries.iter().find(|(_, wg, _)| *wg == winograd) {
            return k.clone();
        }
        let k = Arc::new(build());
        entries.push((id, winograd, k.clone()));
        k
    }
}

/// `conv_transpose1d(x [b, ci, t], w [ci, co, k], bias [co]?)`: returns
/// `[b, co, (t - 1)·stride - 2·padding + k + output_padding]`. Fast kernel for f32 CPU tensors,
/// candle's stock op otherwise. Differentiable on the fast path.
pub fn conv_transpose1d(
    x: &Tensor,
    w: &Tensor,
    bias: Option<&Tensor>,
    stride: usize,
    padding: usize,
    output_padding: usize,
) -> Result<Tensor> {
    conv_transpose1d_with(x, w, bias, stride, padding, output_padding, Isa::detect())
}

/// [`conv_transpose1d`] whose phase kernels are kept in `cache` after the first call. `w` must be
/// the same constant weight on every call with this cache: it is used only when `w` records no
/// gradient (a tracked weight, e.g. during training, is read afresh).
pub fn conv_transpose1d_cached(
    x: &Tensor,
    w: &Tensor,
    bias: Option<&Tensor>,
    (stride, padding, output_padding): (usize, usize, usize),
    cache: &Arc<PhaseKernelCache>,
) -> Result<Tensor> {
    let cache = (!w.track_op()).then(|| (cache.clone(), w.id()));
    conv_transpose1d_op(
        x,
        w,
        bias,
        (stride, padding, output_padding),
        Isa::detect(),
        cache,
    )
}

/// [`conv_transpose1d`] with an explicit instruction set.
pub fn conv_transpose1d_with(
    x: &Tensor,
    w: &Tensor,
    bias: Option<&Tensor>,
    stride: usize,
    padding: usize,
    output_padding: usize,
    isa: Isa,
) -> Result<Tensor> {
    conv_transpose1d_op(x, w, bias, (stride, padding, output_padding), isa, None)
}

fn conv_transpose1d_op(
    x: &Tensor,
    w: &Tensor,
    bias: Option<&Tensor>,
    (stride, padding, output_padding): (usize, usize, usize),
    isa: Isa,
    cache: Option<(Arc<PhaseKernelCache>, TensorId)>,
) -> Result<Tensor> {
    if !conv_path_ok(&[Some(x), Some(w), bias]) || stride == 0 {
        return conv_transpose1d_stock(x, w, bias, stride, padding, output_padding);
    }
    let bias = match bias {
        Some(b) => b.contiguous()?,
        None => Tensor::zeros(w.dim(1)?, w.dtype(), w.device())?,
    };
    let op = ConvTranspose1dOp {
        stride,
        padding,
        output_padding,
        isa,
        cache,
    };
    x.contiguous()?.apply_op3(&w.contiguous()?, &bias, op)
}

/// The stock candle composite the fast op replaces: `x.conv_transpose1d(w) + bias`.
pub fn conv_transpose1d_stock(
    x: &Tensor,
    w: &Tensor,
    bias: Option<&Tensor>,
    stride: usize,
    padding: usize,
    output_padding: usize,
) -> Result<Tensor> {
    let y = x.conv_transpose1d(w, padding, output_padding, stride, 1, 1)?;
    match bias {
        Some(b) => y.broadcast_add(&b.reshape((1, b.dim(0)?, 1))?),
        None => Ok(y),
    }
}

struct ConvTranspose1dOp {
    stride: usize,
    padding: usize,
    output_padding: usize,
    isa: Isa,
    /// Where the phase kernels of a constant weight (this id) are kept between calls.
    cache: Option<(Arc<PhaseKernelCache>, TensorId)>,
}

impl ConvTranspose1dOp {
    /// The phase kernels of one layout: from the cache when the op has one, else built.
    fn kernels(&self, winograd: bool, build: impl FnOnce() -> Vec<f32>) -> Arc<Vec<f32>> {
        match &self.cache {
            Some((cache, id)) => cache.get_or_build(*id, winograd, build),
            None => Arc::new(build()),
        }
    }

    /// The phases `z [b, rows, v_len]` by the tap-list kernels: `rows` = s·co rows (stride `ldw`)
    /// of `q` taps per input channel over the input padded by `q - 1` into rows of `m`.
    fn direct(
        &self,
        x: &[f32],
        wt: &[f32],
        zero_bias: &[f32],
        (b, ci, t): (usize, usize, usize),
        (rows, ldw, q, m, v_len): (usize, usize, usize, usize, usize),
        bf16: bool,
    ) -> Result<Vec<f32>> {
        let offsets: Vec<usize> = (0..ci)
            .flat_map(|c| (0..q).map(move |j| c * m + j))
            .collect();
        with_phase_split(x, (b, ci, t), 1, q - 1, m, |xp| {
            let conv = TapConv {
                batch: b,
                channels: ci,
                x: xp,
                x_len: ci * m,
                offsets: &offsets,
                w: wt,
                ldw,
                bias: zero_bias,
                out: rows,
                t_out: v_len,
            };
            if bf16 {
                run_bf16(&conv, self.isa)
            } else {
                run(&conv, self.isa)
            }
        })
    }
}

impl CustomOp3 for ConvTranspose1dOp {
    fn name(&self) -> &'static str {
        "adiff-conv-transpose1d"
    }

    fn cpu_fwd(
        &self,
        xs: &CpuStorage,
        xl: &Layout,
        ws: &CpuStorage,
        wl: &Layout,
        bs: &CpuStorage,
        bl: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (x, w, bias) = (
            f32_values(xs, xl)?,
            f32_values(ws, wl)?,
            f32_values(bs, bl)?,
        );
        let (x, w, bias): (&[f32], &[f32], &[f32]) = (&x, &w, &bias);
        let bf16 = matches!(xs, CpuStorage::BF16(_));
        let (b, ci, t) = xl.shape().dims3()?;
        let (ci_w, co, k) = wl.shape().dims3()?;
        let (s, p, op) = (self.stride, self.padding, self.output_padding);
        let full = (t.max(1) - 1) * s + k + op;
        if ci != ci_w || bias.len() != co || k == 0 || t == 0 || full < 2 * p {
            bail!(
                "adiff conv_transpose1d: input {:?}, weight {:?}, bias {:?}, padding {p} do not fit",
                xl.shape(),
                wl.shape(),
                bl.shape()
            );
        }
        let t_out = full - 2 * p;
        let q = k.div_ceil(s);
        let v_len = t + q - 1;
        let m = unaliased(round_up(v_len, W_MAX) + q - 1);
        // The phases' kernels: row o·s + r (stride ld), tap (c, j) holds w[c, o, (q - 1 - j)·s + r]
        // (zero past the kernel end), `width` values a tap row with the taps at `lead + c·width +
        // j`. One task per block of OB output channels: each w[c, o0 .. o0 + OB, ..] run is one
        // contiguous read (a task per channel read k values a page apart per input channel, and
        // took half of a short layer's time).
        const OB: usize = 32;
        let phase_kernels = |width: usize, lead: usize, ld: usize| {
            par_collect(s * co * ld, OB * s * ld, |blk, rows| {
                let o0 = blk * OB;
                let nb = OB.min(co - o0);
                for c in 0..ci {
                    let src = &w[(c * co + o0) * k..][..nb * k];
                    for (oo, taps) in src.chunks_exact(k).enumerate() {
                        for r in 0..s {
                            let row = &mut rows[(oo * s + r) * ld + c * width + lead..][..q];
                            for (j, d) in row.iter_mut().enumerate() {
                                let kk = (q - 1 - j) * s + r;
                                if kk < k {
                                    *d = taps[kk];
                                }
                            }
                        }
                    }
                }
            })
        };
        let zero_bias = vec![0f32; s * co];
        // z[b, o·s + r, v] for v < v_len, in rows of z_len.
        let winograd =
            !bf16 && (q == 2 || q == 3) && super::winograd::applies_phased(ci, s * co, v_len);
        let (z, z_len) = if winograd {
            // As a kernel-3 convolution padded by 2 with the taps right-aligned (a leading zero
            // tap when q = 2): out[u] = Σ_j wt[j]·x[u + j - (q - 1)] = z[u], u < t + 2.
            let w3 = self.kernels(true, || phase_kernels(3, 3 - q, 3 * ci));
            let z = super::winograd::conv3(x, &w3, &zero_bias, (b, ci, t), s * co, 2, self.isa)?;
            (z, t + 2)
        } else {
            let ldw = weight_stride(ci * q);
            let wt = self.kernels(false, || phase_kernels(q, 0, ldw));
            let geometry = (s * co, ldw, q, m, v_len);
            let z = self.direct(x, &wt, &zero_bias, (b, ci, t), geometry, bf16)?;
            (z, v_len)
        };
        // Interleave the phases: y[b, o, t] = bias[o] + z[b, o·s + r, v] with t + p = v·s + r.
        let y = par_collect(b * co * t_out, t_out.max(1), |row, dst| {
            let (bi, o) = (row / co, row % co);
            let (mut v, mut r) = (p / s, p % s);
            for d in dst.iter_mut() {
                let zv = if v < v_len {
                    z[((bi * co + o) * s + r) * z_len + v]
                } else {
                    0.0
                };
                *d = bias[o] + zv;
                r += 1;
                if r == s {
                    r = 0;
                    v += 1;
                }
            }
        });
        Ok((storage_like(xs, y), Shape::from((b, co, t_out))))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _bias: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let (s, p) = (self.stride, self.padding);
        let (t, k) = (x.dim(2)?, w.dim(2)?);
        // dL/dx = conv1d(grad, w) (w [ci, co, k] read as a [out = ci, in = co, k] kernel).
        let gx = conv1d_with(grad, w, None, s, p, self.isa)?;
        let gx = if gx.dim(2)? > t {
            gx.narrow(2, 0, t)?
        } else {
            gx
        };
        if gx.dim(2)? != t {
            bail!("adiff conv_transpose1d backward: output_padding >= stride is not supported");
        }
        // dL/dw[c, o, j] = Σ_b Σ_m x[b, c, m] · grad[b, o, m·s + j - p]: the weight gradient of
        // a convolution of `grad` whose output gradient is `x`.
        let gw = super::conv1d::conv1d_weight_grad(grad, x, k, s, p, self.isa)?;
        let gb = super::conv1d::bias_grad(grad, self.isa)?;
        Ok((Some(gx), Some(gw), Some(gb)))
    }
}
