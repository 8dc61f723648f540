//! Blocked attention on the CPU: `softmax(q·kᵀ·scale)·v` computed over blocks of [`GB`] query
//! rows, so that only `GB x m` scores exist at a time (never the full `n x m` score matrix); the
//! `AttentionBase` core of `modules.py` (audio-diffusion-pytorch 0.0.61, reference §1.3), f32
//! softmax.
//!
//! Per head and block: the scores `q kᵀ` are one product on the convolutions' micro-kernels
//! ([`super::small_gemm`], keys transposed once per head), each row is normalised in place
//! (`softmax`, a vectorisable `exp`), and `P v` is a second product written into the output.
//! Heads are spread over candle's CPU thread pool. Differentiable: the backward recomputes each
//! block's scores from `q` and `k` (nothing but q, k, v and the output is kept from the forward),
//! applies the softmax gradient in one pass (`dS = P ∘ (dP − rowsum(dO ∘ O))`) and runs its four
//! products (`dO vᵀ`, `dS k`, `qᵀ dS`, `dOᵀ P`) on the same micro-kernels, one head per task.
//! Tensors that are not f32 on the CPU take the stock composite.
#![allow(unsafe_code)]

use super::conv_kernel::SharedPtr;
use super::isa::Isa;
use super::small_gemm::{gemm, transpose_into, Mat};
use super::vec_math::exp_approx;
use super::{f32_slice, fast_path_ok};
use candle_core::{bail, CpuStorage, CustomOp3, Layout, Result, Shape, Storage, Tensor};

/// `softmax(q·kᵀ·scale, keys)·v` for `q (…, n, d)`, `k (…, m, d)`, `v (…, m, d)` with the same
/// leading dimensions (e.g. `(batch, heads)`); returns `(…, n, d)`.
pub fn attention(q: &Tensor, k: &Tensor, v: &Tensor, scale: f64) -> Result<Tensor> {
    attention_with(q, k, v, scale, Isa::detect())
}

/// [`attention`] with an explicit instruction set.
pub fn attention_with(q: &Tensor, k: &Tensor, v: &Tensor, scale: f64, isa: Isa) -> Result<Tensor> {
    if !fast_path_ok(&[Some(q), Some(k), Some(v)]) || q.rank() < 2 {
        return attention_stock(q, k, v, scale);
    }
    let op = AttentionOp {
        scale: scale as f32,
        isa,
    };
    let (q, k, v) = (q.contiguous()?, k.contiguous()?, v.contiguous()?);
    if [&q, &k, &v].iter().any(|t| t.track_op()) {
        q.apply_op3(&k, &v, op)
    } else {
        q.apply_op3_no_bwd(&k, &v, &op)
    }
}

/// The stock candle composite: `softmax_last_dim(q·kᵀ·scale)·v`, with the full score matrix.
pub fn attention_stock(q: &Tensor, k: &Tensor, v: &Tensor, scale: f64) -> Result<Tensor> {
    let r = q.rank();
    let s = (q
        .contiguous()?
        .matmul(&k.transpose(r - 2, r - 1)?.contiguous()?)?
        * scale)?;
    // `softmax_last_dim` is a fused op without backward; the generic one is differentiable.
    let p = if s.track_op() {
        candle_nn::ops::softmax(&s, candle_core::D::Minus1)?
    } else {
        candle_nn::ops::softmax_last_dim(&s)?
    };
    p.matmul(&v.contiguous()?)
}

struct AttentionOp {
    scale: f32,
    isa: Isa,
}

impl CustomOp3 for AttentionOp {
    fn name(&self) -> &'static str {
        "adiff-tiled-attention"
    }

    fn cpu_fwd(
        &self,
        qs: &CpuStorage,
        ql: &Layout,
        ks: &CpuStorage,
        kl: &Layout,
        vs: &CpuStorage,
        vl: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (q, k, v) = (f32_slice(qs, ql)?, f32_slice(ks, kl)?, f32_slice(vs, vl)?);
        let dims = ql.shape().dims();
        let r = dims.len();
        let (n, d) = (dims[r - 2], dims[r - 1]);
        let kd = kl.shape().dims();
        let m = kd[kd.len() - 2];
        let heads: usize = dims[..r - 2].iter().product();
        if kl.shape() != vl.shape()
            || kd.len() != r
            || kd[..r - 2] != dims[..r - 2]
            || kd[r - 1] != d
        {
            bail!(
                "adiff attention: q {:?}, k {:?}, v {:?} do not fit",
                ql.shape(),
                kl.shape(),
                vl.shape()
            );
        }
        let (scale, isa) = (self.scale, self.isa);
        let failed = std::sync::atomic::AtomicBool::new(false);
        let out = super::vec_math::par_collect(heads * n * d, (n * d).max(1), |h, o| {
            let head = Head {
                q: &q[h * n * d..][..n * d],
                k: &k[h * m * d..][..m * d],
                v: &v[h * m * d..][..m * d],
                n,
                m,
                d,
                scale,
            };
            FWD_SCRATCH.with(|sc| {
                if head_forward(isa, &head, o, &mut sc.borrow_mut()).is_err() {
                    failed.store(true, std::sync::atomic::Ordering::Relaxed);
                }
            });
        });
        if failed.into_inner() {
            bail!(
                "adiff attention: q {:?}, k {:?} do not fit",
                ql.shape(),
                kl.shape()
            );
        }
        Ok((CpuStorage::F32(out), ql.shape().clone()))
    }

    /// With `S = q·kᵀ·s`, `P = softmax(S)`, `O = P·v`: `dv = Pᵀ·dO`, `dP = dO·vᵀ`,
    /// `dS = P ∘ (dP − rowsum(dO ∘ O))`, `dq = dS·k·s`, `dk = dSᵀ·q·s`.
    fn bwd(
        &self,
        q: &Tensor,
        k: &Tensor,
        v: &Tensor,
        out: &Tensor,
        dout: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let dout = dout.contiguous()?;
        let dims = q.dims();
        let r = dims.len();
        let (n, d, m) = (dims[r - 2], dims[r - 1], k.dim(r - 2)?);
        let heads: usize = dims[..r - 2].iter().product();
        let (qs, ql) = q.storage_and_layout();
        let (ks, kl) = k.storage_and_layout();
        let (vs, vl) = v.storage_and_layout();
        let (os, ol) = out.storage_and_layout();
        let (gs, gl) = dout.storage_and_layout();
        let (
            Storage::Cpu(qs),
            Storage::Cpu(ks),
            Storage::Cpu(vs),
            Storage::Cpu(os),
            Storage::Cpu(gs),
        ) = (&*qs, &*ks, &*vs, &*os, &*gs)
        else {
            bail!("adiff attention backward: expected CPU tensors");
        };
        let (q_, k_, v_) = (f32_slice(qs, ql)?, f32_slice(ks, kl)?, f32_slice(vs, vl)?);
        let (o_, g_) = (f32_slice(os, ol)?, f32_slice(gs, gl)?);
        let (mut dq, mut dk, mut dv) = (
            vec![0f32; heads * n * d],
            vec![0f32; heads * m * d],
            vec![0f32; heads * m * d],
        );
        let outs = [
            SharedPtr(dq.as_mut_ptr()),
            SharedPtr(dk.as_mut_ptr()),
            SharedPtr(dv.as_mut_ptr()),
        ];
        let (scale, isa) = (self.scale, self.isa);
        let failed = std::sync::atomic::AtomicBool::new(false);
        candle_core::utils::barrier_pool().execute_chunked(heads, |range| {
            // The whole wrapper, not its raw-pointer field: the closure must capture the `Send` type.
            #[allow(clippy::redundant_locals)]
            let outs = outs;
            let mut scratch = Scratch::default();
            for h in range {
                let head = BwdHead {
                    q: &q_[h * n * d..][..n * d],
                    k: &k_[h * m * d..][..m * d],
                    v: &v_[h * m * d..][..m * d],
                    o: &o_[h * n * d..][..n * d],
                    d_o: &g_[h * n * d..][..n * d],
                    n,
                    m,
                    d,
                    scale,
                };
                // SAFETY: head h's rows of dq, dk and dv (n·d, m·d, m·d values from h times
                // that) lie inside the three buffers, and only this task writes them.
                let (dq, dk, dv) = unsafe {
                    (
                        std::slice::from_raw_parts_mut(outs[0].0.add(h * n * d), n * d),
                        std::slice::from_raw_parts_mut(outs[1].0.add(h * m * d), m * d),
                        std::slice::from_raw_parts_mut(outs[2].0.add(h * m * d), m * d),
                    )
                };
                if head_backward(isa, &head, (dq, dk, dv), &mut scratch).is_err() {
                    failed.store(true, std::sync::atomic::Ordering::Relaxed);
                }
            }
        });
        if failed.into_inner() {
            bail!("adiff attention backward: q {dims:?}, k/v [.., {m}, {d}] do not fit");
        }
        let dev = q.device();
        Ok((
            Some(Tensor::from_vec(dq, q.shape(), dev)?),
            Some(Tensor::from_vec(dk, k.shape(), dev)?),
            Some(Tensor::from_vec(dv, v.shape(), dev)?),
        ))
    }
}

/// One head's operands for the backward, row-major: `q`, the output `o` and its gradient `d_o`
/// `(n, d)`; `k`, `v` `(m, d)`.
struct BwdHead<'a> {
    q: &'a [f32],
    k: &'a [f32],
    v: &'a [f32],
    o: &'a [f32],
    d_o: &'a [f32],
    n: usize,
    m: usize,
    d: usize,
    scale: f32,
}

/// Per-task buffers of [`head_forward`] / [`head_backward`], reused from head to head.
#[derive(Default)]
struct Scratch {
    kt: Vec<f32>,
    vt: Vec<f32>,
    p: Vec<f32>,
    g: Vec<f32>,
    qt: Vec<f32>,
    dot: Vec<f32>,
    dkt: Vec<f32>,
    dvt: Vec<f32>,
    taps: Vec<usize>,
}

thread_local! {
    /// The forward's per-thread buffers (transposed keys, one block of scores, the tap list).
    static FWD_SCRATCH: std::cell::RefCell<Scratch> = std::cell::RefCell::new(Scratch::default());
}

/// One head's output over blocks of [`GB`] query rows: `P = softmax(scale·q kᵀ)` for the block's
/// `GB x m` scores, then `o = P v`, both products on [`small_gemm::gemm`].
fn head_forward(isa: Isa, h: &Head, out: &mut [f32], s: &mut Scratch) -> Result<()> {
    let (n, m, d) = (h.n, h.m, h.d);
    transpose_into(h.k, m, d, &mut s.kt);
    s.p.resize(GB * m, 0.0);
    for i0 in (0..n).step_by(GB) {
        let qb = GB.min(n - i0);
        let p = &mut s.p[..qb * m];
        let q = Mat {
            data: &h.q[i0 * d..(i0 + qb) * d],
            ld: d,
        };
        gemm(
            isa,
            (qb, m, d),
            q,
            Mat { data: &s.kt, ld: m },
            p,
            m,
            false,
            &mut s.taps,
        )?;
        for row in p.chunks_exact_mut(m) {
            softmax_row(isa, row, h.scale);
        }
        let o = &mut out[i0 * d..(i0 + qb) * d];
        gemm(
            isa,
            (qb, d, m),
            Mat { data: p, ld: m },
            Mat { data: h.v, ld: d },
            o,
            d,
            false,
            &mut s.taps,
        )?;
    }
    Ok(())
}

/// One head's gradients over blocks of [`GB`] query rows, the block's scores recomputed:
/// `P = softmax(scale·q kᵀ)`, `dS = scale·P ∘ (dO vᵀ − rowsum(dO ∘ O))`, `dq = dS k`,
/// `dkᵀ += qᵀ dS`, `dvᵀ += dOᵀ P`. The products run on [`small_gemm::gemm`]; only `GB x m`
/// scores exist at a time.
fn head_backward(
    isa: Isa,
    h: &BwdHead,
    (dq, dk, dv): (&mut [f32], &mut [f32], &mut [f32]),
    s: &mut Scratch,
) -> Result<()> {
    let (n, m, d) = (h.n, h.m, h.d);
    transpose_into(h.k, m, d, &mut s.kt);
    transpose_into(h.v, m, d, &mut s.vt);
    for buf in [&mut s.dkt, &mut s.dvt] {
        buf.clear();
        buf.resize(d * m, 0.0);
    }
    s.p.resize(GB * m, 0.0);
    s.g.resize(GB * m, 0.0);
    for i0 in (0..n).step_by(GB) {
        let qb = GB.min(n - i0);
        let (q, d_o, o) = (
            &h.q[i0 * d..(i0 + qb) * d],
            &h.d_o[i0 * d..(i0 + qb) * d],
            &h.o[i0 * d..(i0 + qb) * d],
        );
        let (p, g) = (&mut s.p[..qb * m], &mut s.g[..qb * m]);
        gemm(
            isa,
            (qb, m, d),
            Mat { data: q, ld: d },
            Mat { data: &s.kt, ld: m },
            p,
            m,
            false,
            &mut s.taps,
        )?;
        gemm(
            isa,
            (qb, m, d),
            Mat { data: d_o, ld: d },
            Mat { data: &s.vt, ld: m },
            g,
            m,
            false,
            &mut s.taps,
        )?;
        for r in 0..qb {
            let pr = &mut p[r * m..(r + 1) * m];
            let gr = &mut g[r * m..(r + 1) * m];
            let dd: f32 = d_o[r * d..(r + 1) * d]
                .iter()
                .zip(&o[r * d..(r + 1) * d])
                .map(|(a, b)| a * b)
                .sum();
            softmax_row(isa, pr, h.scale);
            softmax_grad_row(isa, pr, gr, dd, h.scale);
        }
        gemm(
            isa,
            (qb, d, m),
            Mat { data: g, ld: m },
            Mat { data: h.k, ld: d },
            &mut dq[i0 * d..],
            d,
            false,
            &mut s.taps,
        )?;
        transpose_into(q, qb, d, &mut s.qt);
        transpose_into(d_o, qb, d, &mut s.dot);
        gemm(
            isa,
            (d, m, qb),
            Mat {
                data: &s.qt,
                ld: qb,
            },
            Mat { data: g, ld: m },
            &mut s.dkt,
            m,
            true,
            &mut s.taps,
        )?;
        gemm(
            isa,
            (d, m, qb),
            Mat {
                data: &s.dot,
                ld: qb,
            },
            Mat { data: p, ld: m },
            &mut s.dvt,
            m,
            true,
            &mut s.taps,
        )?;
    }
    for (src, dst) in [(&s.dkt, dk), (&s.dvt, dv)] {
        for j in 0..m {
            for f in 0..d {
                dst[j * d + f] = src[f * m + j];
            }
        }
    }
    Ok(())
}

/// Query rows per block of the backward (and its score rows in flight: `GB x m`).
const GB: usize = 64;

#[inline(always)]
fn softmax_row_body(row: &mut [f32], scale: f32) {
    for v in row.iter_mut() {
        *v *= scale;
    }
    let mx = lane_max(row);
    for v in row.iter_mut() {
        *v = exp_approx(*v - mx);
    }
    let inv = 1.0 / lane_sum(row);
    for v in row.iter_mut() {
        *v *= inv;
    }
}

#[inline(always)]
fn softmax_grad_row_body(p: &[f32], g: &mut [f32], d: f32, scale: f32) {
    for (gv, &pv) in g.iter_mut().zip(p) {
        *gv = scale * pv * (*gv - d);
    }
}

super::isa::per_isa!(
    /// `row ← softmax(scale·row)`.
    fn softmax_row(row: &mut [f32], scale: f32) => softmax_row_body
);
super::isa::per_isa!(
    /// `g ← scale·p ∘ (g − d)`: one score row of the softmax gradient.
    fn softmax_grad_row(p: &[f32], g: &mut [f32], d: f32, scale: f32) => softmax_grad_row_body
);

/// One head's inputs: `q (n, d)`, `k (m, d)`, `v (m, d)`, row-major.
struct Head<'a> {
    q: &'a [f32],
    k: &'a [f32],
    v: &'a [f32],
    n: usize,
    m: usize,
    d: usize,
    scale: f32,
}

/// Lanes of the row reductions: independent accumulators, so that they vectorise (a float sum or
/// max in one running value is a dependent chain the compiler may not reorder).
const L: usize = 16;

#[inline(always)]
fn lane_max(x: &[f32]) -> f32 {
    let mut m = [f32::NEG_INFINITY; L];
    let mut it = x.chunks_exact(L);
    for c in &mut it {
        for l in 0..L {
            m[l] = m[l].max(c[l]);
        }
    }
    let tail = it
        .remainder()
        .iter()
        .copied()
        .fold(f32::NEG_INFINITY, f32::max);
    m.iter().copied().fold(tail, f32::max)
}

#[inline(always)]
fn lane_sum(x: &[f32]) -> f32 {
    let mut s = [0f32; L];
    let mut it = x.chunks_exact(L);
    for c in &mut it {
        for l in 0..L {
            s[l] += c[l];
        }
    }
    it.remainder().iter().sum::<f32>() + s.iter().sum::<f32>()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conv_tests::{max_abs_diff, rand_tensor};
    use candle_core::Var;

    #[test]
    fn tiled_attention_matches_stock_composite() -> Result<()> {
        // (batch, heads, n, m, d): ragged blocks (n % 16, m % 64 != 0), one key, long sequences.
        let cases = [
            (1, 8, 32, 32, 64),
            (2, 3, 17, 70, 8),
            (1, 1, 1, 1, 4),
            (1, 2, 130, 200, 16),
            (2, 4, 5, 129, 64),
        ];
        for isa in Isa::runnable() {
            for (i, &(b, h, n, m, d)) in cases.iter().enumerate() {
                let q = rand_tensor(&[b, h, n, d], 10 + i as u64, 2.0)?;
                let k = rand_tensor(&[b, h, m, d], 20 + i as u64, 2.0)?;
                let v = rand_tensor(&[b, h, m, d], 30 + i as u64, 1.0)?;
                let scale = 1.0 / (d as f64).sqrt();
                let ours = attention_with(&q, &k, &v, scale, isa)?;
                let want = attention_stock(&q, &k, &v, scale)?;
                let (diff, mag) = max_abs_diff(&ours, &want)?;
                // f32 sums of up to 200 softmax-weighted terms: 1e-5 absolute on O(1) outputs.
                assert!(
                    diff <= 1e-5 * (1.0 + mag),
                    "{isa:?} case {i}: {diff:e} (max {mag})"
                );
            }
        }
        Ok(())
    }

    #[test]
    fn gradients_match_the_stock_composite() -> Result<()> {
        // Tracked inputs take the tiled op with its own backward; the stock composite's autograd
        // is the reference. Loss = sum(O ∘ W) with a fixed random W, so dO is not constant.
        // Several query blocks with a ragged last one (n = 150 > 2·GB), whole micro-kernel
        // tiles (d = 32, 64) and ragged ones (d = 4, 8).
        let cases = [
            (1, 2, 5, 6, 4),
            (2, 3, 17, 70, 8),
            (1, 4, 64, 64, 32),
            (1, 2, 150, 96, 64),
        ];
        for isa in Isa::runnable() {
            for (i, &(b, h, n, m, d)) in cases.iter().enumerate() {
                let q = Var::from_tensor(&rand_tensor(&[b, h, n, d], 40 + i as u64, 2.0)?)?;
                let k = Var::from_tensor(&rand_tensor(&[b, h, m, d], 50 + i as u64, 2.0)?)?;
                let v = Var::from_tensor(&rand_tensor(&[b, h, m, d], 60 + i as u64, 1.0)?)?;
                let w = rand_tensor(&[b, h, n, d], 70 + i as u64, 1.0)?;
                let scale = 1.0 / (d as f64).sqrt();
                let ours = attention_with(&q, &k, &v, scale, isa)?;
                let want = attention_stock(&q, &k, &v, scale)?;
                let g_ours = (ours * &w)?.sum_all()?.backward()?;
                let g_want = (want * &w)?.sum_all()?.backward()?;
                for (name, t) in [("q", &q), ("k", &k), ("v", &v)] {
                    let (a, e) = (g_ours.get(t), g_want.get(t));
                    let (a, e) = (a.expect("our gradient"), e.expect("stock gradient"));
                    let (diff, mag) = max_abs_diff(a, e)?;
                    assert!(
                        diff <= 1e-4 * (1.0 + mag),
                        "{isa:?} case {i} d{name}: {diff:e} (max {mag})"
                    );
                }
            }
        }
        Ok(())
    }
}
