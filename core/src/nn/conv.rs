//! `nn.Conv1d` and `nn.ConvTranspose1d` with PyTorch's layouts and padding rules.
//!
//! Conv1d weight `[out, in, k]`; ConvTranspose1d weight `[in, out, k]`, output length
//! `(T-1)*stride - 2*padding + k + output_padding` (docs/reference.md §0).

use crate::nn::init::uniform_fan_in;
use crate::{Error, Result};
use candle_core::Tensor;
use candle_nn::VarBuilder;

/// `nn.Conv1d(in, out, kernel, stride, padding, bias=True)` (dilation 1, one group).
#[derive(Debug, Clone)]
pub struct Conv1d {
    /// `[out, in, k]`.
    pub weight: Tensor,
    /// `[out]`.
    pub bias: Option<Tensor>,
    /// Zero padding on both sides, in samples.
    pub padding: usize,
    /// Stride, in samples.
    pub stride: usize,
}

impl Conv1d {
    /// Builds the layer under `vb` (`weight`, `bias`) with PyTorch's default initialisation.
    pub fn new(
        in_channels: usize,
        out_channels: usize,
        kernel_size: usize,
        stride: usize,
        padding: usize,
        vb: VarBuilder,
    ) -> Result<Self> {
        let init = uniform_fan_in(in_channels * kernel_size);
        let weight = vb.get_with_hints((out_channels, in_channels, kernel_size), "weight", init)?;
        let bias = Some(vb.get_with_hints(out_channels, "bias", init)?);
        Ok(Self {
            weight,
            bias,
            padding,
            stride,
        })
    }

    /// `(batch, in, length)` -> `(batch, out, length')`.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let (_, _, len) = x.dims3()?;
        let k = self.weight.dim(2)?;
        let (p, s) = (self.padding, self.stride);
        let len_out = (len + 2 * p).saturating_sub(k) / s.max(1) + 1;
        if cpu_f32(&[x, &self.weight]) {
            // The crate's direct CPU kernel (tested against candle's op, with its own backward).
            return Ok(crate::ops::conv1d(
                x,
                &self.weight,
                self.bias.as_ref(),
                s,
                p,
            )?);
        }
        let tracked = x.track_op() || self.weight.track_op();
        let y = if tracked {
            conv1d_unfolded(x, &self.weight, s, p, len_out)?
        } else {
            x.conv1d(&self.weight, p, s, 1, 1)?
        };
        add_channel_bias(y, self.bias.as_ref())
    }
}

/// `nn.ConvTranspose1d(in, out, kernel, stride, padding, output_padding, bias=True)`.
#[derive(Debug, Clone)]
pub struct ConvTranspose1d {
    /// `[in, out, k]` (PyTorch's transposed layout).
    pub weight: Tensor,
    /// `[out]`.
    pub bias: Option<Tensor>,
    /// Stride, in samples.
    pub stride: usize,
    /// Samples cropped on each side of the full output.
    pub padding: usize,
    /// Extra samples appended on the right.
    pub output_padding: usize,
    /// The CPU kernel's reordered weight, kept while `weight` is a constant (inference).
    phase_cache: std::sync::Arc<crate::ops::PhaseKernelCache>,
}

impl ConvTranspose1d {
    /// Builds the layer under `vb` (`weight`, `bias`). PyTorch's fan-in for this layout is `out * k`.
    pub fn new(
        in_channels: usize,
        out_channels: usize,
        kernel_size: usize,
        stride: usize,
        padding: usize,
        output_padding: usize,
        vb: VarBuilder,
    ) -> Result<Self> {
        let init = uniform_fan_in(out_channels * kernel_size);
        let weight = vb.get_with_hints((in_channels, out_channels, kernel_size), "weight", init)?;
        let bias = Some(vb.get_with_hints(out_channels, "bias", init)?);
        Ok(Self {
            weight,
            bias,
            stride,
            padding,
            output_padding,
            phase_cache: Default::default(),
        })
    }

    /// `(batch, in, T)` -> `(batch, out, (T-1)*stride - 2*padding + k + output_padding)`.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        transposed_conv(
            x,
            &self.weight,
            self.bias.as_ref(),
            (self.stride, self.padding, self.output_padding),
            Some(&self.phase_cache),
        )
    }
}

/// f32 tensors on the CPU: the domain of the [`crate::ops`] kernels.
fn cpu_f32(ts: &[&Tensor]) -> bool {
    // bf16 too: the kernels pair channels for the CPU's bf16 dot product where it has one.
    let dt = ts.first().map(|t| t.dtype());
    matches!(dt, Some(candle_core::DType::F32 | candle_core::DType::BF16))
        && ts
            .iter()
            .all(|t| t.device().is_cpu() && Some(t.dtype()) == dt)
}

/// Conv1d as unfold + matmul, built only from ops whose backward is right: candle 0.11's conv1d
/// backward gives wrong weight gradients for batch > 1 and wrong input gradients for 1x1 kernels
/// (and underflows on very short sequences), so gradients are never taken through it.
fn conv1d_unfolded(
    x: &Tensor,
    w: &Tensor,
    stride: usize,
    padding: usize,
    len_out: usize,
) -> Result<Tensor> {
    let (b, c_in, len) = x.dims3()?;
    let (c_out, _, k) = w.dims3()?;
    // Pad so that every tap can take `len_out * stride` samples, then keep every stride-th one.
    let need = (k - 1) + len_out * stride;
    let right = need.saturating_sub(len + padding);
    let xp = x.pad_with_zeros(2, padding, right)?;
    let taps = (0..k)
        .map(|j| {
            let t = xp.narrow(2, j, len_out * stride)?;
            if stride == 1 {
                Ok(t)
            } else {
                t.reshape((b, c_in, len_out, stride))?
                    .narrow(3, 0, 1)?
                    .squeeze(3)
            }
        })
        .collect::<candle_core::Result<Vec<_>>>()?;
    // cols[b, c*k + j, t] = xp[b, c, t*stride + j], matching the weight layout [out, in, k].
    let cols = Tensor::stack(&taps, 2)?.reshape((b, c_in * k, len_out))?;
    let w2 = w
        .reshape((1, c_out, c_in * k))?
        .broadcast_as((b, c_out, c_in * k))?;
    Ok(w2.contiguous()?.matmul(&cols.contiguous()?)?)
}

fn add_channel_bias(y: Tensor, bias: Option<&Tensor>) -> Result<Tensor> {
    match bias {
        Some(b) => {
            let c = b.dim(0)?;
            Ok(y.broadcast_add(&b.reshape((1, c, 1))?)?)
        }
        None => Ok(y),
    }
}

/// Checks the arguments of a transposed convolution; returns the unpadded output length
/// `(T-1)*stride + k` and the output length `(T-1)*stride - 2*padding + k + output_padding`.
fn transposed_len(
    x: &Tensor,
    weight: &Tensor,
    stride: usize,
    padding: usize,
    output_padding: usize,
) -> Result<(usize, usize)> {
    let (_, c_in, t) = x.dims3()?;
    let (w_in, _, k) = weight.dims3()?;
    if c_in != w_in {
        return Err(Error::input(
            "x",
            format!("transposed conv expects {w_in} input channels, got {c_in}"),
        ));
    }
    if t == 0 || stride == 0 || k == 0 {
        return Err(Error::input(
            "x",
            format!("transposed conv needs T, stride and k >= 1 (T={t}, stride={stride}, k={k})"),
        ));
    }
    let full = (t - 1) * stride + k;
    let out_len = (full + output_padding)
        .checked_sub(2 * padding)
        .filter(|&n| n > 0)
        .ok_or_else(|| {
            Error::input(
                "x",
                format!("transposed conv output would be empty (T={t}, k={k}, padding={padding})"),
            )
        })?;
    Ok((full, out_len))
}

/// The one transposed 1-d convolution of the crate (PyTorch semantics, weight `[in, out, k]`).
///
/// f32 on the CPU runs [`crate::ops::conv_transpose1d`]. Elsewhere (CUDA, f64, half types):
/// candle 0.11's `conv_transpose1d` has no backward pass, so this runs `conv_transpose2d` (which
/// has one) on a height-1 view with no padding, then crops `padding` samples on the left and keeps
/// `(T-1)*stride - 2*padding + k + output_padding` samples (zero-extended on the right when
/// `output_padding > padding`, as PyTorch does before the bias).
pub fn conv_transpose1d(
    x: &Tensor,
    weight: &Tensor,
    bias: Option<&Tensor>,
    stride: usize,
    padding: usize,
    output_padding: usize,
) -> Result<Tensor> {
    transposed_conv(x, weight, bias, (stride, padding, output_padding), None)
}

/// [`conv_transpose1d`], with the CPU kernel's phase kernels kept in `cache` (a layer's) while
/// the weight is a constant.
fn transposed_conv(
    x: &Tensor,
    weight: &Tensor,
    bias: Option<&Tensor>,
    (stride, padding, output_padding): (usize, usize, usize),
    cache: Option<&std::sync::Arc<crate::ops::PhaseKernelCache>>,
) -> Result<Tensor> {
    transposed_len(x, weight, stride, padding, output_padding)?;
    if cpu_f32(&[x, weight]) {
        // The crate's direct CPU kernel (3-7x faster than the height-1 conv_transpose2d on the
        // UNet's shapes; tested against candle's op, with its own backward).
        let geometry = (stride, padding, output_padding);
        return Ok(match cache {
            Some(cache) => crate::ops::conv_transpose1d_cached(x, weight, bias, geometry, cache),
            None => crate::ops::conv_transpose1d(x, weight, bias, stride, padding, output_padding),
        }?);
    }
    conv_transpose1d_via_2d(x, weight, bias, stride, padding, output_padding)
}

/// [`conv_transpose1d`] through candle's `conv_transpose2d` on a height-1 view (any device and
/// dtype, differentiable).
pub fn conv_transpose1d_via_2d(
    x: &Tensor,
    weight: &Tensor,
    bias: Option<&Tensor>,
    stride: usize,
    padding: usize,
    output_padding: usize,
) -> Result<Tensor> {
    let (full, out_len) = transposed_len(x, weight, stride, padding, output_padding)?;
    let y = x
        .unsqueeze(2)?
        .conv_transpose2d(&weight.unsqueeze(2)?, 0, 0, stride, 1)?
        .squeeze(2)?;
    let available = full - padding.min(full);
    let y = if out_len <= available {
        y.narrow(2, padding, out_len)?
    } else {
        y.narrow(2, padding, available)?
            .pad_with_zeros(2, 0, out_len - available)?
    };
    add_channel_bias(y, bias)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    #[allow(clippy::too_many_arguments)]
    /// Direct definition: `y[o, s*i + j - pad] += x[c, i] * w[c, o, j]`.
    fn reference(
        x: &[f32],
        w: &[f32],
        cin: usize,
        cout: usize,
        k: usize,
        s: usize,
        p: usize,
        op: usize,
    ) -> Vec<f32> {
        let t = x.len() / cin;
        let n = (t - 1) * s + k + op - 2 * p;
        let mut y = vec![0f32; cout * n];
        for c in 0..cin {
            for i in 0..t {
                for o in 0..cout {
                    for j in 0..k {
                        let pos = (s * i + j) as isize - p as isize;
                        if pos >= 0 && (pos as usize) < n {
                            y[o * n + pos as usize] += x[c * t + i] * w[(c * cout + o) * k + j];
                        }
                    }
                }
            }
        }
        y
    }

    #[test]
    fn transposed_conv_matches_the_definition_for_even_and_odd_factors() {
        let d = Device::Cpu;
        for (f, cin, cout, t) in [
            (2usize, 3usize, 2usize, 5usize),
            (3, 2, 3, 4),
            (4, 1, 2, 3),
            (1, 2, 2, 4),
        ] {
            let (k, s, p, op) = (2 * f, f, f / 2 + f % 2, f % 2);
            let x: Vec<f32> = (0..cin * t).map(|i| (i as f32 * 0.37).sin()).collect();
            let w: Vec<f32> = (0..cin * cout * k)
                .map(|i| (i as f32 * 0.11 + 0.3).cos())
                .collect();
            let xt = Tensor::from_vec(x.clone(), (1, cin, t), &d).unwrap();
            let wt = Tensor::from_vec(w.clone(), (cin, cout, k), &d).unwrap();
            let want = reference(&x, &w, cin, cout, k, s, p, op);
            for y in [
                conv_transpose1d(&xt, &wt, None, s, p, op).unwrap(),
                conv_transpose1d_via_2d(&xt, &wt, None, s, p, op).unwrap(),
            ] {
                assert_eq!(y.dims(), &[1, cout, t * f]);
                let got = y.flatten_all().unwrap().to_vec1::<f32>().unwrap();
                for (a, b) in got.iter().zip(&want) {
                    assert!((a - b).abs() < 1e-5, "factor {f}: {a} vs {b}");
                }
            }
        }
    }

    #[test]
    fn unfolded_conv1d_matches_candle_forward() {
        let d = Device::Cpu;
        for (cin, cout, t, k, s, p) in [
            (3usize, 4usize, 16usize, 3usize, 1usize, 1usize),
            (3, 4, 16, 8, 4, 2),
            (2, 3, 5, 1, 1, 0),
            (4, 2, 12, 7, 3, 3),
            (2, 2, 2, 5, 2, 2),
        ] {
            let x = Tensor::arange(0f64, (2 * cin * t) as f64, &d)
                .unwrap()
                .sin()
                .unwrap()
                .reshape((2, cin, t))
                .unwrap();
            let w = Tensor::arange(0f64, (cout * cin * k) as f64, &d)
                .unwrap()
                .cos()
                .unwrap()
                .reshape((cout, cin, k))
                .unwrap();
            let want = x.conv1d(&w, p, s, 1, 1).unwrap();
            let len_out = want.dim(2).unwrap();
            let got = conv1d_unfolded(&x, &w, s, p, len_out).unwrap();
            let diff = (want - got)
                .unwrap()
                .abs()
                .unwrap()
                .max_all()
                .unwrap()
                .to_scalar::<f64>()
                .unwrap();
            assert!(diff < 1e-12, "k{k} s{s} p{p}: {diff}");
        }
    }

    #[test]
    fn transposed_conv_has_gradients() {
        let d = Device::Cpu;
        let x = Var::from_tensor(&Tensor::ones((1, 2, 4), candle_core::DType::F32, &d).unwrap())
            .unwrap();
        let w = Var::from_tensor(&Tensor::ones((2, 3, 4), candle_core::DType::F32, &d).unwrap())
            .unwrap();
        for via_2d in [false, true] {
            let y = if via_2d {
                conv_transpose1d_via_2d(x.as_tensor(), w.as_tensor(), None, 2, 1, 0).unwrap()
            } else {
                conv_transpose1d(x.as_tensor(), w.as_tensor(), None, 2, 1, 0).unwrap()
            };
            let grads = y.sum_all().unwrap().backward().unwrap();
            let gw = grads.get(w.as_tensor()).expect("weight gradient");
            let gx = grads.get(x.as_tensor()).expect("input gradient");
            assert_eq!(gw.dims(), &[2, 3, 4]);
            // Each input sample reaches 3 outputs x 4 taps, minus the taps cropped at the borders.
            let gx = gx.flatten_all().unwrap().to_vec1::<f32>().unwrap();
            assert_eq!(
                gx,
                vec![9.0, 12.0, 12.0, 9.0, 9.0, 12.0, 12.0, 9.0],
                "via_2d {via_2d}"
            );
        }
    }
}
