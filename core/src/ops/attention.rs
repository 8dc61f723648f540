//! Tiled ("flash") attention on the CPU: `softmax(q·kᵀ·scale)·v` computed over blocks of keys with
//! a running max and sum (online softmax), so the full score matrix is never materialised; the
//! `AttentionBase` core of `modules.py` (audio-diffusion-pytorch 0.0.61, SPEC §1.3), f32 softmax.
//!
//! One body in plain Rust, compiled per instruction set (AVX-512F, AVX2+FMA, portable) so that
//! the compiler vectorises it: scores are accumulated along keys from a transposed key block,
//! values along features. Differentiable: the backward recomputes the scores of each head from
//! `q` and `k` (nothing but q, k, v and the output is kept from the forward) and applies the
//! softmax gradient in one pass (`dS = P ∘ (dP − rowsum(dO ∘ O))`), with candle matmuls. Tensors
//! that are not f32 on the CPU take the stock composite.
#![allow(unsafe_code)]

use super::isa::Isa;
use super::vec_math::{exp_approx, par_chunks_mut};
use super::{f32_slice, fast_path_ok};
use candle_core::{bail, CpuStorage, CustomOp3, Layout, Result, Shape, Tensor};

/// Query rows per block.
const QB: usize = 16;
/// Keys per block.
const KB: usize = 64;

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
        let mut out = vec![0f32; heads * n * d];
        let (scale, isa) = (self.scale, self.isa);
        par_chunks_mut(&mut out, (n * d).max(1), |h, o| {
            let head = Head {
                q: &q[h * n * d..][..n * d],
                k: &k[h * m * d..][..m * d],
                v: &v[h * m * d..][..m * d],
                n,
                m,
                d,
                scale,
            };
            match isa {
                // SAFETY: the feature set each function is compiled for is checked first.
                #[cfg(target_arch = "x86_64")]
                Isa::Avx512 if isa.is_supported() => unsafe { head_avx512(&head, o) },
                #[cfg(target_arch = "x86_64")]
                Isa::Avx2 if isa.is_supported() => unsafe { head_avx2(&head, o) },
                _ => head_body(&head, o),
            }
        });
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
        let (q, k, v) = (q.detach(), k.detach(), v.detach());
        let (out, dout) = (out.detach(), dout.detach().contiguous()?);
        let r = q.rank();
        let scale = f64::from(self.scale);
        let s = (q.matmul(&k.transpose(r - 2, r - 1)?.contiguous()?)? * scale)?;
        let p = candle_nn::ops::softmax_last_dim(&s)?;
        drop(s);
        let dv = p.transpose(r - 2, r - 1)?.contiguous()?.matmul(&dout)?;
        let dp = dout.matmul(&v.transpose(r - 2, r - 1)?.contiguous()?)?;
        let row = (&dout * &out)?.sum_keepdim(r - 1)?;
        let ds = (p * dp.broadcast_sub(&row)?)?;
        let dq = (ds.matmul(&k)? * scale)?;
        let dk = (ds.transpose(r - 2, r - 1)?.contiguous()?.matmul(&q)? * scale)?;
        Ok((Some(dq), Some(dk), Some(dv)))
    }
}

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

#[inline(always)]
fn head_body(h: &Head, out: &mut [f32]) {
    let (n, m, d) = (h.n, h.m, h.d);
    let mut kt = vec![0f32; d * KB];
    let mut s = vec![0f32; QB * KB];
    let mut acc = vec![0f32; QB * d];
    let (mut run_max, mut run_sum) = ([f32::NEG_INFINITY; QB], [0f32; QB]);
    for i0 in (0..n).step_by(QB) {
        let qb = QB.min(n - i0);
        acc.fill(0.0);
        run_max.fill(f32::NEG_INFINITY);
        run_sum.fill(0.0);
        for j0 in (0..m).step_by(KB) {
            let kb = KB.min(m - j0);
            // Transposed key block kt[dd][j] = k[j0 + j][dd].
            for j in 0..kb {
                for dd in 0..d {
                    kt[dd * KB + j] = h.k[(j0 + j) * d + dd];
                }
            }
            // Scores s[i][j] = scale · q[i]·k[j], accumulated along keys.
            for i in 0..qb {
                let row = &mut s[i * KB..i * KB + kb];
                row.fill(0.0);
                for dd in 0..d {
                    let qv = h.q[(i0 + i) * d + dd] * h.scale;
                    for (sj, &kv) in row.iter_mut().zip(&kt[dd * KB..dd * KB + kb]) {
                        *sj += qv * kv;
                    }
                }
            }
            // Online softmax: rescale what was accumulated when the running max grows.
            for i in 0..qb {
                let row = &mut s[i * KB..i * KB + kb];
                let block_max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                let new_max = run_max[i].max(block_max);
                let corr = exp_approx(run_max[i] - new_max);
                let mut block_sum = 0f32;
                for p in row.iter_mut() {
                    *p = exp_approx(*p - new_max);
                    block_sum += *p;
                }
                run_sum[i] = run_sum[i] * corr + block_sum;
                run_max[i] = new_max;
                let a = &mut acc[i * d..(i + 1) * d];
                for x in a.iter_mut() {
                    *x *= corr;
                }
                for (j, &p) in row.iter().enumerate() {
                    for (x, &vv) in a.iter_mut().zip(&h.v[(j0 + j) * d..(j0 + j + 1) * d]) {
                        *x += p * vv;
                    }
                }
            }
        }
        for i in 0..qb {
            let inv = 1.0 / run_sum[i];
            for (o, &a) in out[(i0 + i) * d..(i0 + i + 1) * d]
                .iter_mut()
                .zip(&acc[i * d..(i + 1) * d])
            {
                *o = a * inv;
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn head_avx512(h: &Head, out: &mut [f32]) {
    head_body(h, out)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn head_avx2(h: &Head, out: &mut [f32]) {
    head_body(h, out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::conv_tests::{max_abs_diff, rand_tensor};
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
        let cases = [(1, 2, 5, 6, 4), (2, 3, 17, 70, 8), (1, 4, 64, 64, 32)];
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
