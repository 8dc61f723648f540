//! Fast CPU `Conv1d` (PyTorch `nn.Conv1d`, groups 1, dilation 1) as a candle custom op, with backward.
//!
//! The input is split into `stride` phases (`ph[c, r, m] = x_padded[c, m·stride + r]`), which turns
//! the strided convolution into a stride-1 one over `ci·stride` rows whose taps are read in place by
//! the micro-kernels of [`super::conv_kernel`]: no im2col matrix, no output transpose.

use super::conv_kernel::{
    round_up, run, run_bf16, unaliased, weight_stride, with_phase_split, TapConv, W_MAX,
};
use super::conv_wgrad::{weight_grad, WeightGrad};
use super::isa::Isa;
use super::{conv_path_ok, f32_values, storage_like};
use candle_core::{bail, CpuStorage, CustomOp2, CustomOp3, DType, Layout, Result, Shape, Tensor};

/// `conv1d(x [b, ci, t], w [co, ci, k], bias [co]?)` with symmetric zero `padding`: returns
/// `[b, co, (t + 2·padding - k) / stride + 1]`. Uses the fast kernel for f32 CPU tensors (best
/// [`Isa`] of this CPU) and candle's stock op otherwise. Differentiable.
pub fn conv1d(
    x: &Tensor,
    w: &Tensor,
    bias: Option<&Tensor>,
    stride: usize,
    padding: usize,
) -> Result<Tensor> {
    conv1d_with(x, w, bias, stride, padding, Isa::detect())
}

/// [`conv1d`] with an explicit instruction set (tests use it to run the portable fallback).
pub fn conv1d_with(
    x: &Tensor,
    w: &Tensor,
    bias: Option<&Tensor>,
    stride: usize,
    padding: usize,
    isa: Isa,
) -> Result<Tensor> {
    if !conv_path_ok(&[Some(x), Some(w), bias]) || stride == 0 {
        return conv1d_stock(x, w, bias, stride, padding);
    }
    let bias = match bias {
        Some(b) => b.contiguous()?,
        None => Tensor::zeros(w.dim(0)?, w.dtype(), w.device())?,
    };
    // When the padding is wider than what the outputs reach back to (very short inputs), the
    // backward's transposed convolution would crop more than it produces: pad explicitly instead.
    let (t, k) = (x.dim(2)?, w.dim(2)?);
    let t_out = (t + 2 * padding).saturating_sub(k) / stride + 1;
    let (x, padding) = if padding > 0 && (t_out - 1) * stride + k < 2 * padding + 1 {
        (x.pad_with_zeros(2, padding, padding)?, 0)
    } else {
        (x.clone(), padding)
    };
    let op = Conv1dOp {
        stride,
        padding,
        isa,
    };
    x.contiguous()?.apply_op3(&w.contiguous()?, &bias, op)
}

/// The stock candle composite the fast op replaces: `x.conv1d(w) + bias`.
pub fn conv1d_stock(
    x: &Tensor,
    w: &Tensor,
    bias: Option<&Tensor>,
    stride: usize,
    padding: usize,
) -> Result<Tensor> {
    let y = x.conv1d(w, padding, stride, 1, 1)?;
    match bias {
        Some(b) => y.broadcast_add(&b.reshape((1, b.dim(0)?, 1))?),
        None => Ok(y),
    }
}

/// The taps of a stride-`s`, kernel-`k` convolution over `ci` phase-split input channels of
/// `m`-long phase rows, in (input channel, phase, shift) order: each tap's start in a batch item's
/// buffer, and its index in the weight's `(c, k)` row (tap (c, r, qq) is kernel index qq·s + r).
fn tap_list(ci: usize, s: usize, k: usize, m: usize) -> (Vec<usize>, Vec<usize>) {
    let q = k.div_ceil(s);
    let mut offsets = Vec::with_capacity(ci * k);
    let mut kidx = Vec::with_capacity(ci * k);
    for c in 0..ci {
        for r in 0..s {
            for qq in 0..q {
                if qq * s + r < k {
                    offsets.push((c * s + r) * m + qq);
                    kidx.push(c * k + qq * s + r);
                }
            }
        }
    }
    (offsets, kidx)
}

struct Conv1dOp {
    stride: usize,
    padding: usize,
    isa: Isa,
}

impl CustomOp3 for Conv1dOp {
    fn name(&self) -> &'static str {
        "adiff-conv1d"
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
        let (co, ci_w, k) = wl.shape().dims3()?;
        let (s, p) = (self.stride, self.padding);
        if ci != ci_w || bias.len() != co || k == 0 || t + 2 * p < k {
            bail!(
                "adiff conv1d: input {:?}, weight {:?}, bias {:?}, padding {p} do not fit",
                xl.shape(),
                wl.shape(),
                bl.shape()
            );
        }
        let t_out = (t + 2 * p - k) / s + 1;
        let q = k.div_ceil(s);
        if !bf16 && s > 1 && q == 3 && super::winograd::applies_phased(ci * s, co, t_out) {
            // The polyphase form is a stride-1, kernel-3 convolution over ci·s phase rows:
            // y[t] = Σ_{c, r, j} w[c, j·s + r] · ph[c, r, t + j] (taps past k are zero).
            let m = t_out + 2;
            let w3 = super::vec_math::par_collect(co * ci * s * 3, ci * s * 3, |o, row| {
                for (i, d) in row.iter_mut().enumerate() {
                    let (c, r, j) = (i / (3 * s), i / 3 % s, i % 3);
                    if j * s + r < k {
                        *d = w[(o * ci + c) * k + j * s + r];
                    }
                }
            });
            let y = with_phase_split(x, (b, ci, t), s, p, m, |ph| {
                super::winograd::conv3(ph, &w3, bias, (b, ci * s, m), co, 0, self.isa)
            })?;
            return Ok((storage_like(xs, y), Shape::from((b, co, t_out))));
        }
        // Unpadded stride-1 1x1 inputs are read in place (the driver packs them into panels), and
        // so are others whose rows already cover the padded output tiles; everything else goes
        // through the phase split.
        let direct = s == 1 && p == 0 && (k == 1 || (t_out % W_MAX == 0 && t % 128 != 0));
        let m = if direct {
            t
        } else {
            unaliased(round_up(t_out, W_MAX) + q - 1)
        };
        let (offsets, kidx) = tap_list(ci, s, k, m);
        let ntaps = offsets.len();
        // With stride 1 the taps are in the weight's own (c, k) order: read it in place.
        // Otherwise reordered into rows the driver reads in place.
        let wt_owned;
        let (wt, ldw): (&[f32], usize) = if s == 1 {
            (w, ntaps)
        } else {
            let ldw = weight_stride(ntaps);
            wt_owned = super::vec_math::par_collect(co * ldw, ldw, |o, row| {
                for (d, &ki) in row.iter_mut().zip(&kidx) {
                    *d = w[o * ci * k + ki];
                }
            });
            (&wt_owned, ldw)
        };
        let run_on = |ph: &[f32]| {
            let conv = TapConv {
                batch: b,
                channels: ci,
                x: ph,
                x_len: ci * s * m,
                offsets: &offsets,
                w: wt,
                ldw,
                bias,
                out: co,
                t_out,
            };
            if bf16 {
                run_bf16(&conv, self.isa)
            } else {
                run(&conv, self.isa)
            }
        };
        let y = if !bf16 && super::winograd::applies(ci, co, k, s, t_out) {
            super::winograd::conv3(x, w, bias, (b, ci, t), co, p, self.isa)?
        } else if direct {
            run_on(x)?
        } else {
            with_phase_split(x, (b, ci, t), s, p, m, run_on)?
        };
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
        let t = x.dim(2)?;
        let k = w.dim(2)?;
        let t_out = grad.dim(2)?;
        // Transposed-convolution length of the gradient; output_padding restores t exactly.
        let back = ((t_out - 1) * s + k) as isize - 2 * p as isize;
        if back < 0 || back as usize > t {
            bail!("adiff conv1d backward: cannot map length {t_out} back to {t}");
        }
        let gx = if s == 1 && p < k {
            // A stride-1 convolution's input gradient is the convolution of the output gradient
            // with the kernel transposed and reversed, padded by k - 1 - p: again a convolution
            // of kernel k (Winograd for kernel 3; 1x1 read in place), without the transposed
            // convolution's phase split and interleave passes.
            let wt = if w.dtype() == DType::F32 {
                w.contiguous()?.apply_op1_no_bwd(&FlipOp)?
            } else {
                let rev = Tensor::from_vec(vec![2u32, 1, 0], 3, w.device())?;
                w.transpose(0, 1)?.contiguous()?.index_select(&rev, 2)?
            };
            conv1d_with(grad, &wt, None, 1, k - 1 - p, self.isa)?
        } else {
            super::conv_transpose1d::conv_transpose1d_with(
                grad,
                w,
                None,
                s,
                p,
                t - back as usize,
                self.isa,
            )?
        };
        // dL/dw[o, c, j] = Σ_b Σ_t grad[b, o, t] · x_padded[b, c, t·s + j].
        let gw = conv1d_weight_grad(x, grad, k, s, p, self.isa)?;
        let gb = bias_grad(grad, self.isa)?;
        Ok((Some(gx), Some(gw), Some(gb)))
    }
}

/// `w [co, ci, k]` → `[ci, co, k]` with the taps reversed: the kernel of a stride-1 convolution's
/// input gradient, in one pass (candle's transpose copy and `index_select` were two serial
/// passes of every such layer's backward).
struct FlipOp;

impl candle_core::CustomOp1 for FlipOp {
    fn name(&self) -> &'static str {
        "adiff-conv-flip-kernel"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let w = f32_values(s, l)?;
        let (co, ci, k) = l.shape().dims3()?;
        let mut wt = vec![0f32; w.len()];
        for (o, rows) in w.chunks_exact((ci * k).max(1)).enumerate() {
            for (c, taps) in rows.chunks_exact(k.max(1)).enumerate() {
                let dst = &mut wt[(c * co + o) * k..(c * co + o + 1) * k];
                for (d, &v) in dst.iter_mut().zip(taps.iter().rev()) {
                    *d = v;
                }
            }
        }
        Ok((CpuStorage::F32(wt), Shape::from((ci, co, k))))
    }
}

/// `gw[o, c, j] = Σ_b Σ_{t < t_out} dy[b, o, t] · x_pad[b, c, t·stride + j]` for `j < k`, where
/// `x_pad` is `x [b, ci, t]` with `padding` zeros on the left (and zeros past its end): the weight
/// gradient `[co, ci, k]` of `conv1d(x, w, stride, padding)` whose output gradient is `dy [b, co,
/// t_out]`. f32 runs the tap-list kernel ([`super::conv_wgrad`]); bf16 candle's stock conv.
pub(crate) fn conv1d_weight_grad(
    x: &Tensor,
    dy: &Tensor,
    k: usize,
    stride: usize,
    padding: usize,
    isa: Isa,
) -> Result<Tensor> {
    if x.dtype() != DType::F32 || dy.dtype() != DType::F32 {
        // Both operands contiguous: candle 0.11's CPU conv1d multiplies by the wrong buffer when
        // its kernel is a strided view (its own conv1d backward is wrong for batch > 1).
        return x
            .transpose(0, 1)?
            .contiguous()?
            .conv1d(&dy.transpose(0, 1)?.contiguous()?, padding, 1, stride, 1)?
            .transpose(0, 1)?
            .narrow(2, 0, k)?
            .contiguous();
    }
    let op = WeightGradOp {
        k,
        stride,
        padding,
        isa,
    };
    x.contiguous()?.apply_op2_no_bwd(&dy.contiguous()?, &op)
}

struct WeightGradOp {
    k: usize,
    stride: usize,
    padding: usize,
    isa: Isa,
}

impl CustomOp2 for WeightGradOp {
    fn name(&self) -> &'static str {
        "adiff-conv1d-weight-grad"
    }

    fn cpu_fwd(
        &self,
        xs: &CpuStorage,
        xl: &Layout,
        ds: &CpuStorage,
        dl: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (x, dy) = (f32_values(xs, xl)?, f32_values(ds, dl)?);
        let (b, ci, t) = xl.shape().dims3()?;
        let (b2, co, t_out) = dl.shape().dims3()?;
        let (k, s, p) = (self.k, self.stride, self.padding);
        if b != b2 || k == 0 || s == 0 {
            bail!(
                "adiff conv1d weight gradient: input {:?}, output gradient {:?}, kernel {k}, stride {s}",
                xl.shape(),
                dl.shape()
            );
        }
        let q = k.div_ceil(s);
        let m = unaliased(round_up(t_out, W_MAX) + q - 1);
        let (offsets, kidx) = tap_list(ci, s, k, m);
        let taps = with_phase_split(&x, (b, ci, t), s, p, m, |ph| {
            weight_grad(
                &WeightGrad {
                    batch: b,
                    x: ph,
                    x_len: ci * s * m,
                    offsets: &offsets,
                    dy: &dy,
                    out: co,
                    t_out,
                },
                self.isa,
            )
        });
        let ntaps = offsets.len();
        let mut gw = vec![0f32; co * ci * k];
        for o in 0..co {
            for (j, &ki) in kidx.iter().enumerate() {
                gw[o * ci * k + ki] = taps[o * ntaps + j];
            }
        }
        Ok((CpuStorage::F32(gw), Shape::from((co, ci, k))))
    }
}

/// `Σ_b Σ_t dy[b, o, t]` for `dy [b, co, t]`: the bias gradient of a convolution, one row sum per
/// output channel in parallel (candle's strided reduction over axes 0 and 2 was a tenth of a
/// small-config training step).
pub(crate) fn bias_grad(dy: &Tensor, isa: Isa) -> Result<Tensor> {
    if dy.dtype() != DType::F32 || !dy.device().is_cpu() {
        return dy.sum((0, 2));
    }
    dy.contiguous()?.apply_op1_no_bwd(&BiasGradOp { isa })
}

struct BiasGradOp {
    isa: Isa,
}

impl candle_core::CustomOp1 for BiasGradOp {
    fn name(&self) -> &'static str {
        "adiff-conv-bias-grad"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let dy = f32_values(s, l)?;
        let (b, co, t) = l.shape().dims3()?;
        let mut gb = vec![0f32; co];
        super::vec_math::par_chunks_mut(&mut gb, 1, |o, dst| {
            let total: f64 = (0..b)
                .map(|bi| {
                    super::vec_math::shifted_sums(self.isa, &dy[(bi * co + o) * t..][..t], 0.0).0
                })
                .sum();
            dst[0] = total as f32;
        });
        Ok((CpuStorage::F32(gb), Shape::from(co)))
    }
}
