//! Register-blocked direct convolution in "tap list" form, with AVX-512, AVX2+FMA and portable
//! micro-kernels and a cache-blocked parallel driver (no im2col: inputs are read in place).
//!
//! Every convolution in [`crate`] is reduced to one computation:
//! `y[b, o, t] = bias[o] + Σ_j w[o, j] · x[b][off[j] + t]` for `t < t_out`,
//! where `x[b]` is one flat buffer per batch item (padded rows laid end to end) and `off[j]` is where
//! tap `j` (an input row and a shift) starts. A strided convolution becomes this form after a
//! polyphase split of its input, a transposed one after splitting its output into phases.
//!
//! A micro-kernel keeps an `NR x W` block of outputs (output rows x time) in registers and streams
//! the taps: per tap it loads `W` input samples once and broadcasts `NR` weights, read in place
//! from the `[out][taps]` weight matrix (no packing pass). The driver walks tap chunks of about
//! 16 KiB of weights (kept in L1) and time ranges of 256 samples, and spreads (batch, row block,
//! time range) tasks over candle's CPU thread pool.
#![allow(unsafe_code)]

use super::isa::Isa;
use candle_core::{bail, Result};

/// A multiple of the widest output tile of any micro-kernel. Callers size every input row so that
/// reads up to `round_up(t_out, W_MAX) + max shift` stay inside the buffer. 64 rather than the
/// widest tile (32): the longer rows measured faster (1x1 512 ch x 1024: 2.71 -> 2.35 ms;
/// transposed k8 s4 512 -> 256 ch x 1024: 18.2 -> 12.9 ms), by where rows fall in the caches.
pub(crate) const W_MAX: usize = 64;

/// Bytes of weights one tap chunk may hold (sized to stay in a 32 KiB L1 beside the inputs).
pub(crate) const WEIGHT_CHUNK_BYTES: usize = 16 * 1024;

/// Output samples per task along time.
const TIME_RANGE: usize = 256;

/// One convolution in tap-list form (see the module docs), over f32 values (or bf16 pairs).
pub(crate) struct TapConv<'a, T = f32> {
    /// Batch items.
    pub batch: usize,
    /// Input channels: each owns `x_len / channels` consecutive values of a batch item, and its
    /// taps are channel 0's shifted by that much (what the bf16 path pairs channels by).
    pub channels: usize,
    /// Inputs, `batch * x_len` values.
    pub x: &'a [T],
    /// Length of one batch item's input buffer.
    pub x_len: usize,
    /// Start of each tap inside a batch item's buffer.
    pub offsets: &'a [usize],
    /// Weights: row `o` holds its taps at `w[o·ldw ..][..taps]`.
    pub w: &'a [T],
    /// Row stride of `w` (at least the number of taps); [`weight_stride`] gives one the driver
    /// reads in place.
    pub ldw: usize,
    /// Bias `[out]`.
    pub bias: &'a [f32],
    /// Output rows.
    pub out: usize,
    /// Output samples per row.
    pub t_out: usize,
}

/// A row length (in f32) that is not a multiple of 128 values (512 bytes), so that the rows a
/// kernel call reads do not all map to the same cache sets.
pub(crate) fn unaliased(m: usize) -> usize {
    if m.is_multiple_of(128) {
        m + 16
    } else {
        m
    }
}

/// The weight row stride for `ntaps` 4-byte taps that the driver reads in place: rows whose
/// stride is a multiple of 512 bytes would map the micro-kernel's NR weight streams to the same
/// cache sets, so those get 16 values of padding.
pub(crate) fn weight_stride(ntaps: usize) -> usize {
    if (ntaps * 4).is_multiple_of(512) {
        ntaps + 16
    } else {
        ntaps
    }
}

pub(crate) fn round_up(n: usize, m: usize) -> usize {
    n.div_ceil(m) * m
}

/// A micro-kernel: accumulates `NR` rows x `W` samples of output over `taps`, reading the weight of
/// row `r`, tap `i` at `w[r * ldw + i]`. `bias` non-null: start from `bias[0..NR]`; null: start
/// from the values already in `y` (row stride `ldy`).
pub(crate) type Micro<T> =
    unsafe fn(&[usize], *const T, *const T, usize, *mut f32, usize, *const f32);

pub(crate) struct Spec<T> {
    /// Output rows per call.
    pub nr: usize,
    /// Output samples per call.
    pub w: usize,
    pub micro: Micro<T>,
}

pub(crate) fn spec(isa: Isa) -> Spec<f32> {
    match isa {
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 => Spec {
            nr: 8,
            w: 32,
            micro: micro_avx512::<8>,
        },
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 => Spec {
            nr: 6,
            w: 16,
            micro: micro_avx2::<6>,
        },
        _ => Spec {
            nr: 4,
            w: 16,
            micro: micro_portable::<4>,
        },
    }
}

/// A raw pointer shared by the tasks of a parallel section, each of which writes a disjoint part.
pub(crate) struct SharedPtr(pub *mut f32);
impl Clone for SharedPtr {
    fn clone(&self) -> Self {
        *self
    }
}
impl Copy for SharedPtr {}
// SAFETY: tasks write pairwise-disjoint parts of one buffer that outlives the parallel section; no
// element is read by one task while another writes it.
unsafe impl Send for SharedPtr {}
unsafe impl Sync for SharedPtr {}

thread_local! {
    /// The phase-split input of the last convolution on this thread, kept so that repeated calls
    /// (every layer, every sampler step) reuse warm pages instead of faulting in fresh ones.
    static SCRATCH: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Splits `x [batch, ci, t]` into `[batch][ci][stride][m]` with
/// `ph[b, c, r, i] = x[b, c, i·stride + r - pad_left]` (zero outside `0..t`), rows in parallel,
/// into a per-thread scratch buffer, and hands it to `f`.
pub(crate) fn with_phase_split<R>(
    x: &[f32],
    (batch, ci, t): (usize, usize, usize),
    stride: usize,
    pad_left: usize,
    m: usize,
    f: impl FnOnce(&[f32]) -> R,
) -> R {
    let rows = batch * ci * stride;
    let mut ph = SCRATCH.with(|s| std::mem::take(&mut *s.borrow_mut()));
    if ph.len() < rows * m {
        ph.resize(rows * m, 0.0);
    }
    super::vec_math::par_chunks_mut(&mut ph[..rows * m], m.max(1), |row, dst| {
        let r = row % stride;
        let src = &x[(row / stride) * t..][..t];
        if stride == 1 {
            let i0 = pad_left.min(m);
            let n = t.min(m - i0);
            dst[..i0].fill(0.0);
            dst[i0..i0 + n].copy_from_slice(&src[..n]);
            dst[i0 + n..].fill(0.0);
            return;
        }
        for (i, d) in dst.iter_mut().enumerate() {
            let idx = i * stride + r;
            *d = if idx >= pad_left && idx - pad_left < t {
                src[idx - pad_left]
            } else {
                0.0
            };
        }
    });
    let res = f(&ph[..rows * m]);
    SCRATCH.with(|s| *s.borrow_mut() = ph);
    res
}

/// Runs `conv` with the micro-kernel of `isa`; returns `y` as `[batch][out][t_out]`.
pub(crate) fn run(conv: &TapConv, isa: Isa) -> Result<Vec<f32>> {
    if !isa.is_supported() {
        bail!("adiff ops: this CPU cannot run {isa:?} kernels");
    }
    check(conv)?;
    Ok(drive(conv, spec(isa)))
}

fn check<T>(conv: &TapConv<T>) -> Result<()> {
    let ntaps = conv.offsets.len();
    let max_off = conv.offsets.iter().copied().max().unwrap_or(0);
    // In-place reads cover whole tiles; packed ones (see `drive`) stop at the buffer's end.
    let reach = if packs(conv) {
        conv.t_out
    } else {
        round_up(conv.t_out, W_MAX)
    };
    if conv.x.len() != conv.batch * conv.x_len
        || conv.ldw < ntaps
        || conv.w.len() != conv.out * conv.ldw
        || conv.bias.len() != conv.out
        || max_off + reach > conv.x_len
    {
        bail!("adiff ops: inconsistent tap-list convolution geometry");
    }
    Ok(())
}

/// Whether [`drive`] reads `conv`'s inputs from packed tile panels: with one tap per channel (1x1
/// convolutions). Kernels with several shifted taps per row read the rows in place, where the
/// shifts share cache lines (packed, their tiles' inputs would take k times the L2).
fn packs<T>(conv: &TapConv<T>) -> bool {
    conv.offsets.len() == conv.channels
}

/// The cache-blocked parallel loop over (batch, row block, time range) tasks.
fn drive<T: Copy + Default + Send + Sync>(conv: &TapConv<T>, spec: Spec<T>) -> Vec<f32> {
    let ntaps = conv.offsets.len();
    let Spec { nr, w: wd, micro } = spec;
    let out_pad = round_up(conv.out, nr);
    let t_pad = round_up(conv.t_out, wd);
    let n_cb = out_pad / nr;
    // Weights are read in place unless the last row block is ragged, or the row stride aliases
    // (see `weight_stride`) and each weight is read more than once (several time ranges or batch
    // items; read once, the copy cost more than the aliasing: k3 512 ch x 32 samples spent half
    // its time copying 3 MB). The copy is made in parallel (serially it was a visible share of
    // the strided and transposed convolutions, whose reordered kernels are megabytes).
    let aliased = weight_stride(conv.ldw) != conv.ldw;
    let reread = conv.batch > 1 || t_pad > round_up(TIME_RANGE, wd);
    let w_padded;
    let (w, ldw): (&[T], usize) = if out_pad == conv.out && !(aliased && reread) {
        (conv.w, conv.ldw)
    } else {
        let ldw = weight_stride(ntaps);
        let mut v = vec![T::default(); out_pad * ldw];
        super::vec_math::par_chunks_mut(&mut v, ldw, |o, dst| {
            if let Some(src) = conv.w.get(o * conv.ldw..o * conv.ldw + ntaps) {
                dst[..ntaps].copy_from_slice(src);
            }
        });
        w_padded = v;
        (&w_padded, ldw)
    };
    let mut bias = vec![0f32; out_pad];
    bias[..conv.out].copy_from_slice(conv.bias);
    let n_y = conv.batch * out_pad * t_pad;
    if ntaps == 0 {
        let mut y = vec![0f32; n_y];
        for (row, chunk) in y.chunks_mut(t_pad).enumerate() {
            chunk.fill(bias[row % out_pad]);
        }
        return compact(y, conv.batch, conv.out, out_pad, conv.t_out, t_pad);
    }

    let tap_chunk = (WEIGHT_CHUNK_BYTES / (nr * std::mem::size_of::<T>())).max(1);
    let t_range = round_up(TIME_RANGE, wd).min(t_pad);
    let n_tr = t_pad.div_ceil(t_range);
    let n_tasks = conv.batch * n_cb * n_tr;
    let n_tiles = t_pad / wd;
    let (packed, packed_offsets);
    let (x, offsets, batch_stride, time_stride) = if packs(conv) {
        packed = pack_panels(conv, wd, n_tiles);
        // Tap i of a panel starts at i·wd; tile j of batch item b at (b·n_tiles + j)·ntaps·wd.
        packed_offsets = (0..ntaps).map(|i| i * wd).collect::<Vec<_>>();
        (
            &packed[..],
            &packed_offsets[..],
            n_tiles * ntaps * wd,
            ntaps,
        )
    } else {
        (conv.x, conv.offsets, conv.x_len, 1)
    };
    let mut y: Vec<f32> = Vec::with_capacity(n_y);
    let yp = SharedPtr(y.as_mut_ptr());
    let bias = &bias;
    candle_core::utils::barrier_pool().execute_chunked(n_tasks, |range| {
        // The whole wrapper, not its raw-pointer field: the closure must capture the `Send` type.
        #[allow(clippy::redundant_locals)]
        let yp = yp;
        for task in range {
            // Row blocks vary fastest: consecutive tasks (one thread's chunk) share a time range,
            // so its inputs stay in L2 while every row block reads them.
            let cb = task % n_cb;
            let tr = (task / n_cb) % n_tr;
            let b = task / (n_tr * n_cb);
            let (t0, t1) = (tr * t_range, ((tr + 1) * t_range).min(t_pad));
            for c0 in (0..ntaps).step_by(tap_chunk) {
                let c1 = (c0 + tap_chunk).min(ntaps);
                let taps = &offsets[c0..c1];
                // SAFETY: all pointers stay in bounds: packed, tile t / wd < n_tiles of batch item
                // b is a panel of ntaps x wd values and the taps read i·wd .. i·wd + wd; in
                // place, `run` checked max offset + padded tile width <= x_len; `w` holds
                // out_pad * ldw values (ldw >= ntaps), and `y` has capacity out_pad * t_pad per
                // batch item with t < t_pad and rows cb * nr .. cb * nr + nr <= out_pad. This
                // task alone writes its (b, cb, time range) tile; the first tap chunk writes every
                // element of it (bias start) before later chunks read it back.
                // `isa.is_supported()` was checked above.
                unsafe {
                    let wc = w.as_ptr().add(cb * nr * ldw + c0);
                    let yb = yp.0.add((b * out_pad + cb * nr) * t_pad);
                    let bp = if c0 == 0 {
                        bias.as_ptr().add(cb * nr)
                    } else {
                        std::ptr::null()
                    };
                    let mut t = t0;
                    while t < t1 {
                        let xp = x.as_ptr().add(b * batch_stride + t * time_stride);
                        micro(taps, xp, wc, ldw, yb.add(t), t_pad, bp);
                        t += wd;
                    }
                }
            }
        }
    });
    // SAFETY: the tasks cover every (batch, row block, time tile), so all n_y values were written.
    unsafe { y.set_len(n_y) };
    compact(y, conv.batch, conv.out, out_pad, conv.t_out, t_pad)
}

/// `P[b, j, i, e] = x[b][off[i] + j·wd + e]` for the `n_tiles` time tiles of `wd` samples: each
/// tile's taps as one contiguous ntaps x wd panel, so that a micro-kernel call streams its inputs
/// in order instead of reading a tile from every tap's row (rows about a tile apart in memory ran
/// the kernel at 70% of its speed on contiguous panels: 135 vs 185 GFLOP/s on one core).
fn pack_panels<T: Copy + Default + Send + Sync>(
    conv: &TapConv<T>,
    wd: usize,
    n_tiles: usize,
) -> Vec<T> {
    let ntaps = conv.offsets.len();
    let len = conv.batch * n_tiles * ntaps * wd;
    // Chunks of up to 256 tap rows, so that short inputs (one tile) still pack on every core.
    const CHUNK_ROWS: usize = 256;
    let mut p: Vec<T> = Vec::with_capacity(len);
    let spare = &mut p.spare_capacity_mut()[..len];
    super::vec_math::par_chunks_mut(spare, CHUNK_ROWS * wd, |i, dst| {
        for (r, d) in dst.chunks_exact_mut(wd).enumerate() {
            let g = i * CHUNK_ROWS + r;
            let (bj, tap) = (g / ntaps, g % ntaps);
            let (b, j) = (bj / n_tiles, bj % n_tiles);
            // A tile past the end of a batch item's buffer (rows read in place, `check`) is
            // zero-filled; past the end of a row it reads the next row, whose outputs are
            // dropped.
            let start = conv.offsets[tap] + j * wd;
            let n = wd.min(conv.x_len.saturating_sub(start));
            let src = &conv.x[b * conv.x_len + start..][..n];
            for (d, &v) in d.iter_mut().zip(src) {
                d.write(v);
            }
            for d in &mut d[n..] {
                d.write(T::default());
            }
        }
    });
    // SAFETY: the chunks cover 0..len (a multiple of wd) and every value was written above.
    unsafe { p.set_len(len) };
    p
}

/// Drops the padding rows and columns of `[batch][out_pad][t_pad]`.
fn compact(
    y: Vec<f32>,
    batch: usize,
    out: usize,
    out_pad: usize,
    t: usize,
    t_pad: usize,
) -> Vec<f32> {
    if out == out_pad && t == t_pad {
        return y;
    }
    // Rows in parallel: a serial copy here was a visible share of the forward's idle-core time.
    super::vec_math::par_collect(batch * out * t, t.max(1), |row, dst| {
        let s = ((row / out) * out_pad + row % out) * t_pad;
        dst.copy_from_slice(&y[s..s + t]);
    })
}

/// Portable micro-kernel: `NR` rows x 16 samples, plain Rust (auto-vectorised for the target).
///
/// # Safety
/// `x + off + 16` for every tap, `w + (NR - 1) * ldw + taps.len()`, the `NR` x 16 tile at `y`
/// (row stride `ldy`) and `bias + NR` (when non-null) must be in bounds.
unsafe fn micro_portable<const NR: usize>(
    taps: &[usize],
    x: *const f32,
    w: *const f32,
    ldw: usize,
    y: *mut f32,
    ldy: usize,
    bias: *const f32,
) {
    const W: usize = 16;
    let mut acc = [[0f32; W]; NR];
    for (r, row) in acc.iter_mut().enumerate() {
        if bias.is_null() {
            row.copy_from_slice(std::slice::from_raw_parts(y.add(r * ldy), W));
        } else {
            row.fill(*bias.add(r));
        }
    }
    for (i, &off) in taps.iter().enumerate() {
        let xs = &*(x.add(off) as *const [f32; W]);
        for (r, row) in acc.iter_mut().enumerate() {
            let wr = *w.add(r * ldw + i);
            for v in 0..W {
                row[v] += wr * xs[v];
            }
        }
    }
    for (r, row) in acc.iter().enumerate() {
        std::slice::from_raw_parts_mut(y.add(r * ldy), W).copy_from_slice(row);
    }
}

/// AVX-512 micro-kernel: `NR` rows x 32 samples (`2·NR` zmm accumulators).
///
/// # Safety
/// The CPU must support AVX-512F; bounds as for [`micro_portable`] with 32 samples.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn micro_avx512<const NR: usize>(
    taps: &[usize],
    x: *const f32,
    w: *const f32,
    ldw: usize,
    y: *mut f32,
    ldy: usize,
    bias: *const f32,
) {
    use std::arch::x86_64::*;
    let mut acc = [[_mm512_setzero_ps(); 2]; NR];
    for (r, a) in acc.iter_mut().enumerate() {
        if bias.is_null() {
            a[0] = _mm512_loadu_ps(y.add(r * ldy));
            a[1] = _mm512_loadu_ps(y.add(r * ldy + 16));
        } else {
            let b = _mm512_set1_ps(*bias.add(r));
            *a = [b, b];
        }
    }
    for (i, &off) in taps.iter().enumerate() {
        let xp = x.add(off);
        let x0 = _mm512_loadu_ps(xp);
        let x1 = _mm512_loadu_ps(xp.add(16));
        let wp = w.add(i);
        for (r, a) in acc.iter_mut().enumerate() {
            let wr = _mm512_set1_ps(*wp.add(r * ldw));
            a[0] = _mm512_fmadd_ps(wr, x0, a[0]);
            a[1] = _mm512_fmadd_ps(wr, x1, a[1]);
        }
    }
    for (r, a) in acc.iter().enumerate() {
        _mm512_storeu_ps(y.add(r * ldy), a[0]);
        _mm512_storeu_ps(y.add(r * ldy + 16), a[1]);
    }
}

/// AVX2+FMA micro-kernel: `NR` rows x 16 samples (`2·NR` ymm accumulators).
///
/// # Safety
/// The CPU must support AVX2 and FMA; bounds as for [`micro_portable`].
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn micro_avx2<const NR: usize>(
    taps: &[usize],
    x: *const f32,
    w: *const f32,
    ldw: usize,
    y: *mut f32,
    ldy: usize,
    bias: *const f32,
) {
    use std::arch::x86_64::*;
    let mut acc = [[_mm256_setzero_ps(); 2]; NR];
    for (r, a) in acc.iter_mut().enumerate() {
        if bias.is_null() {
            a[0] = _mm256_loadu_ps(y.add(r * ldy));
            a[1] = _mm256_loadu_ps(y.add(r * ldy + 8));
        } else {
            let b = _mm256_set1_ps(*bias.add(r));
            *a = [b, b];
        }
    }
    for (i, &off) in taps.iter().enumerate() {
        let xp = x.add(off);
        let x0 = _mm256_loadu_ps(xp);
        let x1 = _mm256_loadu_ps(xp.add(8));
        let wp = w.add(i);
        for (r, a) in acc.iter_mut().enumerate() {
            let wr = _mm256_broadcast_ss(&*wp.add(r * ldw));
            a[0] = _mm256_fmadd_ps(wr, x0, a[0]);
            a[1] = _mm256_fmadd_ps(wr, x1, a[1]);
        }
    }
    for (r, a) in acc.iter().enumerate() {
        _mm256_storeu_ps(y.add(r * ldy), a[0]);
        _mm256_storeu_ps(y.add(r * ldy + 8), a[1]);
    }
}

/// Runs `conv` (f32 values that are exactly bf16, e.g. converted from bf16 tensors) with the
/// AVX-512 BF16 dot-product kernel when the CPU has it and `isa` is AVX-512: channels are paired
/// (`vdpbf16ps` multiplies bf16 pairs and accumulates in f32). Otherwise the f32 kernel of `isa`
/// runs, which gives the same products (bf16 x bf16 is exact in f32).
pub(crate) fn run_bf16(conv: &TapConv, isa: Isa) -> Result<Vec<f32>> {
    if !(isa == Isa::Avx512 && Isa::has_avx512_bf16()) {
        return run(conv, isa);
    }
    check(conv)?;
    let ci = conv.channels.max(1);
    let (ntaps, cs) = (conv.offsets.len(), conv.x_len / ci);
    let tpc = ntaps / ci;
    let first = &conv.offsets[..tpc];
    if ntaps != tpc * ci
        || conv.x_len != cs * ci
        || (0..ntaps).any(|j| conv.offsets[j] != first[j % tpc] + (j / tpc) * cs)
    {
        bail!("adiff ops: bf16 pairing needs every channel's taps to repeat channel 0's");
    }
    let cp = ci.div_ceil(2);
    let pack = |lo: f32, hi: f32| {
        u32::from(half::bf16::from_f32(lo).to_bits())
            | (u32::from(half::bf16::from_f32(hi).to_bits()) << 16)
    };
    // x2[b][p][e] = (x[b][2p][e], x[b][2p + 1][e]) (zero for a missing odd channel).
    let mut x2 = vec![0u32; conv.batch * cp * cs];
    super::vec_math::par_chunks_mut(&mut x2, cs.max(1), |row, dst| {
        let (b, p) = (row / cp, row % cp);
        let base = b * conv.x_len;
        let lo = &conv.x[base + 2 * p * cs..][..cs];
        if 2 * p + 1 < ci {
            let hi = &conv.x[base + (2 * p + 1) * cs..][..cs];
            for ((d, &l), &h) in dst.iter_mut().zip(lo).zip(hi) {
                *d = pack(l, h);
            }
        } else {
            for (d, &l) in dst.iter_mut().zip(lo) {
                *d = pack(l, 0.0);
            }
        }
    });
    let offsets: Vec<usize> = (0..cp * tpc)
        .map(|j| first[j % tpc] + (j / tpc) * cs)
        .collect();
    let mut w2 = vec![0u32; conv.out * cp * tpc];
    for o in 0..conv.out {
        let src = &conv.w[o * conv.ldw..][..ntaps];
        for j in 0..cp * tpc {
            let (p, u) = (j / tpc, j % tpc);
            let hi = if 2 * p + 1 < ci {
                src[(2 * p + 1) * tpc + u]
            } else {
                0.0
            };
            w2[o * cp * tpc + j] = pack(src[2 * p * tpc + u], hi);
        }
    }
    let paired = TapConv {
        batch: conv.batch,
        channels: cp,
        x: &x2,
        x_len: cp * cs,
        offsets: &offsets,
        w: &w2,
        ldw: cp * tpc,
        bias: conv.bias,
        out: conv.out,
        t_out: conv.t_out,
    };
    check(&paired)?;
    Ok(drive(
        &paired,
        Spec {
            nr: 8,
            w: 32,
            micro: micro_avx512_bf16::<8>,
        },
    ))
}

/// AVX-512 BF16 micro-kernel: `NR` rows x 32 samples; each tap is a pair of input channels
/// (`x`, `w` hold two bf16 per u32) multiplied and accumulated by `vdpbf16ps` in f32.
///
/// # Safety
/// The CPU must support AVX-512F and AVX-512 BF16; bounds as for [`micro_portable`] with 32
/// samples (in u32 pairs).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bf16")]
unsafe fn micro_avx512_bf16<const NR: usize>(
    taps: &[usize],
    x: *const u32,
    w: *const u32,
    ldw: usize,
    y: *mut f32,
    ldy: usize,
    bias: *const f32,
) {
    use std::arch::x86_64::*;
    let mut acc = [[_mm512_setzero_ps(); 2]; NR];
    for (r, a) in acc.iter_mut().enumerate() {
        if bias.is_null() {
            a[0] = _mm512_loadu_ps(y.add(r * ldy));
            a[1] = _mm512_loadu_ps(y.add(r * ldy + 16));
        } else {
            let b = _mm512_set1_ps(*bias.add(r));
            *a = [b, b];
        }
    }
    for (i, &off) in taps.iter().enumerate() {
        let xp = x.add(off);
        let x0: __m512bh = std::mem::transmute(_mm512_loadu_si512(xp as *const __m512i));
        let x1: __m512bh = std::mem::transmute(_mm512_loadu_si512(xp.add(16) as *const __m512i));
        let wp = w.add(i);
        for (r, a) in acc.iter_mut().enumerate() {
            let wr: __m512bh = std::mem::transmute(_mm512_set1_epi32(*wp.add(r * ldw) as i32));
            a[0] = _mm512_dpbf16_ps(a[0], x0, wr);
            a[1] = _mm512_dpbf16_ps(a[1], x1, wr);
        }
    }
    for (r, a) in acc.iter().enumerate() {
        _mm512_storeu_ps(y.add(r * ldy), a[0]);
        _mm512_storeu_ps(y.add(r * ldy + 16), a[1]);
    }
}
