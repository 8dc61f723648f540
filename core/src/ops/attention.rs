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
use candle_core::{bail, CpuStorage, CustomOp1, CustomOp3, Layout, Result, Shape, Tensor};

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
        let (scale, isa) = (self.scale, self.isa);
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
        let rows = RowOp {
            scale: self.scale,
            isa: self.isa,
        };
        // P = softmax(scale · q·kᵀ) in one pass over the products. Transposed operands go to
        // candle's matmul as strided views (its CPU gemm reads either order): copying the n x n
        // transposes made contiguous was a serial pass over every score matrix.
        let t = |x: &Tensor| x.transpose(r - 2, r - 1);
        let p = q.matmul(&t(&k.contiguous()?)?)?.apply_op1_no_bwd(&rows)?;
        let dv = t(&p)?.matmul(&dout)?;
        let dp = dout.matmul(&t(&v.contiguous()?)?)?;
        let row = (&dout * &out)?.sum_keepdim(r - 1)?.contiguous()?;
        // dS · scale = scale · P ∘ (dP − rowsum(dO ∘ O)), one pass.
        let ds = p.apply_op3_no_bwd(&dp, &row, &rows)?;
        let dq = ds.matmul(&k)?;
        let dk = t(&ds)?.matmul(&q)?;
        Ok((Some(dq), Some(dk), Some(dv)))
    }
}

/// The backward's row passes over a `(…, n, m)` score matrix: as a one-input op,
/// `P = softmax(scale · S)` per row; as a three-input op `(P, dP, D (…, n, 1))`,
/// `scale · P ∘ (dP − D)` per row.
struct RowOp {
    scale: f32,
    isa: Isa,
}

impl CustomOp1 for RowOp {
    fn name(&self) -> &'static str {
        "adiff-attention-softmax"
    }

    fn cpu_fwd(&self, st: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let mut y = f32_slice(st, l)?.to_vec();
        let m = l.shape().dims().last().copied().unwrap_or(1).max(1);
        let (scale, isa) = (self.scale, self.isa);
        par_chunks_mut(&mut y, m * ROWS_PER_TASK, |_, rows| {
            for row in rows.chunks_mut(m) {
                match isa {
                    // SAFETY: the feature set each function is compiled for is checked first.
                    #[cfg(target_arch = "x86_64")]
                    Isa::Avx512 if isa.is_supported() => unsafe { softmax_row_avx512(row, scale) },
                    #[cfg(target_arch = "x86_64")]
                    Isa::Avx2 if isa.is_supported() => unsafe { softmax_row_avx2(row, scale) },
                    _ => softmax_row_body(row, scale),
                }
            }
        });
        Ok((CpuStorage::F32(y), l.shape().clone()))
    }
}

impl CustomOp3 for RowOp {
    fn name(&self) -> &'static str {
        "adiff-attention-softmax-grad"
    }

    fn cpu_fwd(
        &self,
        ps: &CpuStorage,
        pl: &Layout,
        gs: &CpuStorage,
        gl: &Layout,
        ds: &CpuStorage,
        dl: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (p, d) = (f32_slice(ps, pl)?, f32_slice(ds, dl)?);
        let mut g = f32_slice(gs, gl)?.to_vec();
        let m = pl.shape().dims().last().copied().unwrap_or(1).max(1);
        if pl.shape() != gl.shape() || d.len() * m != p.len() {
            bail!(
                "adiff attention backward: P {:?}, dP {:?}, D {:?}",
                pl.shape(),
                gl.shape(),
                dl.shape()
            );
        }
        let (scale, isa) = (self.scale, self.isa);
        par_chunks_mut(&mut g, m * ROWS_PER_TASK, |task, rows| {
            for (i, row) in rows.chunks_mut(m).enumerate() {
                let at = task * ROWS_PER_TASK + i;
                let (pr, di) = (&p[at * m..(at + 1) * m], d[at]);
                match isa {
                    // SAFETY: as above.
                    #[cfg(target_arch = "x86_64")]
                    Isa::Avx512 if isa.is_supported() => unsafe {
                        softmax_grad_row_avx512(pr, row, di, scale)
                    },
                    #[cfg(target_arch = "x86_64")]
                    Isa::Avx2 if isa.is_supported() => unsafe {
                        softmax_grad_row_avx2(pr, row, di, scale)
                    },
                    _ => softmax_grad_row_body(pr, row, di, scale),
                }
            }
        });
        Ok((CpuStorage::F32(g), pl.shape().clone()))
    }
}

/// Score rows per parallel task of the row passes.
const ROWS_PER_TASK: usize = 16;

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

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn softmax_row_avx512(row: &mut [f32], scale: f32) {
    softmax_row_body(row, scale)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn softmax_row_avx2(row: &mut [f32], scale: f32) {
    softmax_row_body(row, scale)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn softmax_grad_row_avx512(p: &[f32], g: &mut [f32], d: f32, scale: f32) {
    softmax_grad_row_body(p, g, d, scale)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn softmax_grad_row_avx2(p: &[f32], g: &mut [f32], d: f32, scale: f32) {
    softmax_grad_row_body(p, g, d, scale)
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

/// Query rows of one register tile (the scores' and the value products' row count).
const R: usize = 4;
/// Features of one register tile of the value products.
const F: usize = 32;

/// `s[r][j] = scale · q[rows[r]]·k[j0 + j]` for the `R` rows of a tile (rows past the block end
/// repeat the last row; their scores are not used): `R x KB` accumulators, one broadcast of q and
/// one shared load of the transposed keys per feature.
#[inline(always)]
fn score_tile(h: &Head, rows: [usize; R], kt: &[f32], ldk: usize, s: &mut [[f32; KB]; R]) {
    *s = [[0f32; KB]; R];
    for dd in 0..h.d {
        let Ok(kv) = <&[f32; KB]>::try_from(&kt[dd * ldk..dd * ldk + KB]) else {
            continue;
        };
        for r in 0..R {
            let qv = h.q[rows[r] * h.d + dd] * h.scale;
            for j in 0..KB {
                s[r][j] += qv * kv[j];
            }
        }
    }
}

/// `acc[rows] += p[rows] · v[j0 .. j0 + kb]` over features `f0 .. f0 + F`: `R x F` accumulators,
/// one shared load of values per key.
#[inline(always)]
fn value_tile(
    h: &Head,
    p: &[[f32; KB]; R],
    j0: usize,
    kb: usize,
    f0: usize,
    acc: &mut [[f32; F]; R],
) {
    for j in 0..kb {
        let Ok(vv) = <&[f32; F]>::try_from(&h.v[(j0 + j) * h.d + f0..][..F]) else {
            continue;
        };
        for r in 0..R {
            let pj = p[r][j];
            for f in 0..F {
                acc[r][f] += pj * vv[f];
            }
        }
    }
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

#[inline(always)]
fn head_body(h: &Head, out: &mut [f32]) {
    let (n, m, d) = (h.n, h.m, h.d);
    // The head's keys transposed once, kt[dd][j] = k[j][dd], rows padded with zeros to whole key
    // blocks (a per-block transpose cost two scalar moves per score).
    let ldk = m.div_ceil(KB) * KB;
    let mut kt = vec![0f32; d * ldk];
    for j in 0..m {
        for dd in 0..d {
            kt[dd * ldk + j] = h.k[j * d + dd];
        }
    }
    let mut acc = vec![0f32; QB * d];
    let mut p = [[0f32; KB]; R];
    let (mut run_max, mut run_sum) = ([f32::NEG_INFINITY; QB], [0f32; QB]);
    for i0 in (0..n).step_by(QB) {
        let qb = QB.min(n - i0);
        acc.fill(0.0);
        run_max.fill(f32::NEG_INFINITY);
        run_sum.fill(0.0);
        for j0 in (0..m).step_by(KB) {
            let kb = KB.min(m - j0);
            for r0 in (0..qb).step_by(R) {
                let rows: [usize; R] = std::array::from_fn(|r| i0 + (r0 + r).min(qb - 1));
                score_tile(h, rows, &kt[j0..], ldk, &mut p);
                let live = R.min(qb - r0);
                // Online softmax per row: rescale what was accumulated when the running max grows.
                for (r, row) in p.iter_mut().enumerate().take(live) {
                    let i = r0 + r;
                    let row = &mut row[..kb];
                    let new_max = run_max[i].max(lane_max(row));
                    let corr = exp_approx(run_max[i] - new_max);
                    // A loop without a reduction in it, so that the exponentials vectorise.
                    for v in row.iter_mut() {
                        *v = exp_approx(*v - new_max);
                    }
                    let block_sum = lane_sum(row);
                    run_sum[i] = run_sum[i] * corr + block_sum;
                    run_max[i] = new_max;
                    for x in &mut acc[i * d..(i + 1) * d] {
                        *x *= corr;
                    }
                }
                // Rows past the block end get zero weights (their accumulators are not written).
                for row in p.iter_mut().skip(live) {
                    row.fill(0.0);
                }
                let mut f0 = 0;
                while f0 + F <= d {
                    let mut t = [[0f32; F]; R];
                    for r in 0..live {
                        t[r].copy_from_slice(&acc[(r0 + r) * d + f0..][..F]);
                    }
                    value_tile(h, &p, j0, kb, f0, &mut t);
                    for r in 0..live {
                        acc[(r0 + r) * d + f0..][..F].copy_from_slice(&t[r]);
                    }
                    f0 += F;
                }
                // Features past the last full tile.
                for r in 0..live {
                    let a = &mut acc[(r0 + r) * d..(r0 + r + 1) * d];
                    for (j, &pj) in p[r][..kb].iter().enumerate() {
                        let vrow = &h.v[(j0 + j) * d..(j0 + j + 1) * d];
                        for (x, &vv) in a[f0..].iter_mut().zip(&vrow[f0..]) {
                            *x += pj * vv;
                        }
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
