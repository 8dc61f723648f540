//! Kernel-3, stride-1 convolutions by Winograd's minimal filtering F(4, 3).
//!
//! Four outputs of a 3-tap correlation, `y[4j + i] = Σ_k g[k]·d[4j + i + k]`, are
//! `Aᵀ [(G g) ∘ (Bᵀ d)]` over the six inputs `d[4j .. 4j + 6]`, with the interpolation points
//! 0, ±1, ±2 and ∞ (Lavin & Gray, "Fast Algorithms for Convolutional Neural Networks", 2016):
//!
//! ```text
//!        | 4  0 -5  0  1  0 |        | 1/4    0     0   |        | 1  1  1  1  1  0 |
//!        | 0 -4 -4  1  1  0 |        | -1/6  -1/6  -1/6 |   Aᵀ = | 0  1 -1  2 -2  0 |
//!   Bᵀ = | 0  4 -4 -1  1  0 |    G = | -1/6   1/6  -1/6 |        | 0  1  1  4  4  0 |
//!        | 0 -2 -1  2  1  0 |        | 1/24  1/12  1/6  |        | 0  1 -1  8 -8  1 |
//!        | 0  2 -1 -2  1  0 |        | 1/24 -1/12  1/6  |
//!        | 0  4  0 -5  0  1 |        | 0      0     1   |
//! ```
//!
//! Summed over input channels, each of the six transformed points is an independent matrix
//! product `M_ξ[o, j] = Σ_c U_ξ[o, c]·V_ξ[c, j]` with `U = G g` and `V = Bᵀ d`: six 1x1
//! convolutions over a quarter of the time steps, run by the tap-list micro-kernels of
//! [`super::conv_kernel`]. That is 6/4 = 1.5 multiply-adds per output and input channel instead of
//! the direct form's 3. The transforms are O(input + output) and vectorise.
//!
//! Rounding: the transforms multiply values by at most 8 and the products are f32 sums over
//! `ci` terms as in the direct form; the tests bound the difference to the direct convolution.

#![allow(unsafe_code)]

mod transform;

use super::conv_kernel::{round_up, spec, Micro, SharedPtr, Spec, WEIGHT_CHUNK_BYTES};
use super::isa::Isa;
use candle_core::Result;
use transform::{transform_input, transform_output, transform_weights, Panels};

/// Input and output channels below which the direct kernel stays faster (the transforms are
/// memory-bound; the products must dominate them).
const MIN_CHANNELS: usize = 32;

/// Output samples below which the direct kernel stays faster: a 32-tile panel holds 128 outputs,
/// so shorter rows compute padding, and the direct kernel reads each weight once in place there
/// (512 ch x 64: 0.35 vs 0.43 ms; at 128 samples Winograd wins: 1024 -> 512 ch 0.88 vs 1.36 ms).
const MIN_T_OUT: usize = 128;

/// Whether a convolution of this geometry takes the Winograd path: kernel 3, stride 1, enough
/// channels and samples, and not switched off with `ADIFF_WINOGRAD=0`.
pub(crate) fn applies(ci: usize, co: usize, k: usize, stride: usize, t_out: usize) -> bool {
    k == 3
        && stride == 1
        && ci >= MIN_CHANNELS
        && co >= MIN_CHANNELS
        && t_out >= MIN_T_OUT
        && enabled()
}

/// Output samples below which the strided and transposed convolutions keep their direct
/// kernels: their polyphase forms have ci·s input or s·co output rows, and at the UNet's short
/// levels the Winograd form made the default forward slower (2^18: 279-283 ms without it,
/// 291-296 ms with it down to 32 samples, 270-274 ms from 512 samples).
const MIN_T_OUT_PHASED: usize = 512;

/// [`applies`] for the kernel-3 stride-1 form of a strided (`rows_in` = ci·s phase rows) or
/// transposed (`rows_out` = s·co phase rows) convolution.
pub(crate) fn applies_phased(rows_in: usize, rows_out: usize, t_out: usize) -> bool {
    t_out >= MIN_T_OUT_PHASED && applies(rows_in, rows_out, 3, 1, t_out)
}

fn enabled() -> bool {
    static ON: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ON.get_or_init(|| !super::env_is("ADIFF_WINOGRAD", &["0", "off"]))
}

/// Tiles per task along time, at most.
const TILE_RANGE: usize = 256;

/// Bytes of transformed inputs (all six points, all channels) one tile range may span, so that
/// the row blocks after the first read them from L2.
const V_BLOCK_BYTES: usize = 1 << 20;

thread_local! {
    /// The transformed inputs of the last call on this thread (warm pages for the next one).
    static SCRATCH: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
    /// One task's transformed weights (a pool thread's).
    static WEIGHTS: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
    /// One task's six products (a pool thread's).
    static PRODUCTS: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// `y[b, o, t] = bias[o] + Σ_c Σ_{k<3} w[o, c, k]·x_pad[b, c, t + k]` for `t < t + 2·pad - 2`, where
/// `x_pad` is `x [b, ci, t]` with `pad` zeros on each side: PyTorch's `conv1d(x, w, bias,
/// padding = pad)` for `w [co, ci, 3]`. Returns `[b][co][t_out]`.
pub(crate) fn conv3(
    x: &[f32],
    w: &[f32],
    bias: &[f32],
    (b, ci, t): (usize, usize, usize),
    co: usize,
    pad: usize,
    isa: Isa,
) -> Result<Vec<f32>> {
    let t_out = (t + 2 * pad).saturating_sub(2);
    if x.len() != b * ci * t || w.len() != co * ci * 3 || bias.len() != co || t_out == 0 {
        candle_core::bail!(
            "adiff winograd conv: input [{b}, {ci}, {t}], {} weights, {} biases, padding {pad} do not fit",
            w.len(),
            bias.len()
        );
    }
    let Spec { nr, w: wd, micro } = spec(isa);
    if !isa.is_supported() || nr > ZEROS.len() {
        candle_core::bail!("adiff ops: this CPU cannot run {isa:?} kernels");
    }
    let tiles = t_out.div_ceil(4);
    // Tiles per task: sized so that the task's transformed inputs (all six points, all
    // channels) stay in L2 for the row blocks after the first.
    let range = (V_BLOCK_BYTES / (24 * ci) / wd * wd)
        .clamp(wd, round_up(TILE_RANGE, wd))
        .min(round_up(tiles, wd));
    let mut v = SCRATCH.with(|s| std::mem::take(&mut *s.borrow_mut()));
    let plan = Plan {
        w,
        bias,
        b,
        ci,
        co,
        t_out,
        tiles,
        panels: tiles.div_ceil(wd),
        range,
        nr,
        wd,
        // A row stride of a multiple of 512 bytes would map every weight row to the same cache
        // sets.
        ldu: if (ci * 4) % 512 == 0 { ci + 16 } else { ci },
        offsets: (0..ci).map(|c| c * wd).collect(),
        micro,
        isa,
    };
    plan.pack_inputs(x, t, pad, &mut v);
    let y = plan.products_to_outputs(&v);
    SCRATCH.with(|s| *s.borrow_mut() = v);
    Ok(y)
}

/// Zero starting values for a micro-kernel's first tap chunk (at least `nr` of them).
const ZEROS: [f32; 16] = [0.0; 16];

/// One [`conv3`] call's geometry and read-only operands.
struct Plan<'a> {
    w: &'a [f32],
    bias: &'a [f32],
    b: usize,
    ci: usize,
    co: usize,
    t_out: usize,
    /// Output tiles of 4 samples per row.
    tiles: usize,
    /// Panels of `wd` tiles per row.
    panels: usize,
    /// Tiles per task (a multiple of `wd`).
    range: usize,
    /// The micro-kernel's output rows and tiles per call.
    nr: usize,
    wd: usize,
    /// Row stride of the transformed weights.
    ldu: usize,
    /// The micro-kernel's taps: channel c of a panel starts at c·wd.
    offsets: Vec<usize>,
    micro: Micro<f32>,
    isa: Isa,
}

impl Plan<'_> {
    /// Fills `v` (grown as needed) with `V[b, ξ, panel, c, i] = (Bᵀ d)_ξ`, `d = x_pad[b, c, 4j ..
    /// 4j + 6]`, `j = panel·wd + i`: one contiguous ci x wd panel per micro-kernel call.
    fn pack_inputs(&self, x: &[f32], t: usize, pad: usize, v: &mut Vec<f32>) {
        let (ci, wd, cols) = (self.ci, self.wd, self.panels * self.wd);
        let v_len = self.b * 6 * ci * cols;
        if v.len() < v_len {
            v.resize(v_len, 0.0);
        }
        let vp = SharedPtr(v.as_mut_ptr());
        let panels = Panels {
            count: self.panels,
            width: wd,
            stride: ci * wd,
            xi_stride: self.panels * ci * wd,
        };
        candle_core::utils::barrier_pool().execute_chunked(self.b * ci, |rows| {
            // The whole wrapper, not its raw-pointer field: the closure must capture the `Send` type.
            #[allow(clippy::redundant_locals)]
            let vp = vp;
            for row in rows {
                let (bi, c) = (row / ci, row % ci);
                // SAFETY: row (bi, c) of every panel of batch item bi lies inside V's b·6·ci·cols
                // values, and only this task writes it.
                unsafe {
                    let dst = vp.0.add(bi * 6 * ci * cols + c * wd);
                    transform_input(self.isa, &x[row * t..][..t], pad, panels, dst);
                }
            }
        });
    }

    /// Runs the (batch item, tile range, row block) tasks, row blocks fastest so that one
    /// thread's consecutive tasks read the same transformed inputs from L2, and returns `y`.
    fn products_to_outputs(&self, v: &[f32]) -> Vec<f32> {
        let n_cb = self.co.div_ceil(self.nr);
        let n_tr = self.tiles.div_ceil(self.range);
        let n_y = self.b * self.co * self.t_out;
        let mut y: Vec<f32> = Vec::with_capacity(n_y);
        let yp = SharedPtr(y.as_mut_ptr());
        candle_core::utils::barrier_pool().execute_chunked(self.b * n_tr * n_cb, |tasks| {
            // The whole wrapper, not its raw-pointer field: the closure must capture the `Send` type.
            #[allow(clippy::redundant_locals)]
            let yp = yp;
            PRODUCTS.with(|buf| {
                let mut buf = buf.borrow_mut();
                buf.resize(6 * self.nr * self.range, 0.0);
                let mut u = WEIGHTS.with(|u| std::mem::take(&mut *u.borrow_mut()));
                u.resize(6 * self.nr * self.ldu, 0.0);
                for task in tasks {
                    let (cb, tr, bi) = (task % n_cb, (task / n_cb) % n_tr, task / (n_cb * n_tr));
                    let (j0, j1) = (tr * self.range, ((tr + 1) * self.range).min(self.tiles));
                    self.task(v, (bi, cb, j0, j1), &mut u, &mut buf, yp);
                }
                WEIGHTS.with(|cell| *cell.borrow_mut() = u);
            });
        });
        // SAFETY: the tasks cover every (batch, row block, tile range), so all outputs were
        // written.
        unsafe { y.set_len(n_y) };
        y
    }

    /// One task: transforms the weights of row block `cb` into `u` ([ξ][nr][ldu]), computes the
    /// six products of its rows over tiles `j0..j1` into `buf` ([ξ][nr][range]), and writes
    /// `bias + Aᵀ m` for its outputs into `y`.
    fn task(
        &self,
        v: &[f32],
        (bi, cb, j0, j1): (usize, usize, usize, usize),
        u: &mut [f32],
        buf: &mut [f32],
        y: SharedPtr,
    ) {
        let (ci, nr, wd, ldu, range) = (self.ci, self.nr, self.wd, self.ldu, self.range);
        // Rows past co (a ragged last block) keep stale values: their products are never
        // transformed out.
        let rows = nr.min(self.co - cb * nr);
        transform_weights(
            self.isa,
            &self.w[cb * nr * ci * 3..][..rows * ci * 3],
            ci,
            nr,
            ldu,
            u,
        );
        let tap_chunk = (WEIGHT_CHUNK_BYTES / (nr * 4)).max(1);
        for xi in 0..6 {
            for c0 in (0..ci).step_by(tap_chunk) {
                let c1 = (c0 + tap_chunk).min(ci);
                let start = if c0 == 0 {
                    ZEROS.as_ptr()
                } else {
                    std::ptr::null()
                };
                let mut j = j0;
                while j < j1 {
                    let panel = ((bi * 6 + xi) * self.panels + j / wd) * ci * wd;
                    // SAFETY: panel j / wd < panels of (bi, ξ) holds ci x wd values at `panel`
                    // and the taps read c·wd .. c·wd + wd for c < ci; `u` holds 6 x nr rows of
                    // ldu >= ci values; `buf` holds 6 x nr x range values and j - j0 + wd <=
                    // range (range is a multiple of wd). The first tap chunk starts every
                    // product from zero (ZEROS holds >= nr values). `conv3` checked the ISA.
                    unsafe {
                        (self.micro)(
                            &self.offsets[c0..c1],
                            v.as_ptr().add(panel),
                            u.as_ptr().add(xi * nr * ldu + c0),
                            ldu,
                            buf.as_mut_ptr().add(xi * nr * range + j - j0),
                            range,
                            start,
                        );
                    }
                    j += wd;
                }
            }
        }
        let (t0, t1) = (4 * j0, (4 * j1).min(self.t_out));
        for r in 0..rows {
            let o = cb * nr + r;
            let ms: [&[f32]; 6] =
                std::array::from_fn(|xi| &buf[(xi * nr + r) * range..][..j1 - j0]);
            // SAFETY: row (bi, o) of y, samples t0..t1 < t_out: this task alone writes them.
            let dst = unsafe {
                std::slice::from_raw_parts_mut(
                    y.0.add((bi * self.co + o) * self.t_out + t0),
                    t1 - t0,
                )
            };
            transform_output(self.isa, ms, self.bias[o], dst);
        }
    }
}
