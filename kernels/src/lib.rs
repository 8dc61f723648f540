//! Fast CPU kernels as candle custom ops, each a drop-in for the stock candle composite it replaces
//! (the `*_stock` functions) and tested against it.
//!
//! - [`conv1d()`] / [`conv_transpose1d()`]: direct convolutions without im2col (polyphase "tap
//!   list" form, register-blocked AVX-512 / AVX2 / portable micro-kernels), with backward. On bf16
//!   tensors they pair input channels for the AVX-512 BF16 dot product (`vdpbf16ps`, f32
//!   accumulation) where the CPU has it, and run the f32 kernels on the bf16 values otherwise.
//! - [`group_norm_scale_shift_silu()`]: GroupNorm → `x·(scale+1)+shift` → SiLU in two passes.
//! - [`attention()`]: attention in blocks of query rows (no full score matrix), its products on
//!   the convolution micro-kernels, with backward.
//! - [`linear()`], [`layer_norm()`], [`gelu_erf()`]: the transformer blocks' layers, parallel and
//!   fused with their own backward (the stock composites are several mostly serial candle ops
//!   each, and as many nodes in the backward pass).
//! - [`isa::Isa`]: runtime instruction-set choice; `ADIFF_KERNELS=portable|avx2|avx512` caps it.
//!
//! Every entry point falls back to the stock candle op for non-CPU devices and non-f32 dtypes,
//! and everywhere when `ADIFF_KERNELS=stock`.
//!
//! This crate holds all of the workspace library's `unsafe` (SIMD intrinsics, disjoint parallel
//! writes), each block with its SAFETY reasoning, behind safe functions; `adiff-core` re-exports
//! it as `adiff_core::ops` and forbids `unsafe`. Comments cite the reference's behaviour as
//! "reference §N", a section of `docs/reference.md` at the workspace root.

pub mod attention;
pub mod concat;
pub mod conv;
pub mod gelu;
pub mod group_norm;
pub mod isa;
pub mod layer_norm;
pub mod linear;
mod small_gemm;
mod vec_math;

#[cfg(test)]
mod group_norm_tests;

// The shared convolution kernels by their crate-root paths, for the other ops that run on them.
pub(crate) use conv::conv_kernel;
#[cfg(test)]
pub(crate) use conv::conv_tests;

pub use attention::{attention, attention_stock, attention_with};
pub use concat::{cat_scaled, cat_scaled_stock};
pub use conv::{
    conv1d, conv1d_stock, conv1d_with, conv_transpose1d, conv_transpose1d_cached,
    conv_transpose1d_stock, conv_transpose1d_with, PhaseKernelCache,
};
pub use gelu::{gelu_erf, gelu_erf_with};
pub use group_norm::{group_norm_scale_shift_silu, group_norm_stock, GroupNormArgs};
pub use isa::Isa;
pub use layer_norm::{layer_norm, layer_norm_stock};
pub use linear::{linear, linear_stock, linear_with};
pub use vec_math::par_chunks_mut;

use candle_core::{bail, CpuStorage, DType, Layout, Result, Tensor};
use std::borrow::Cow;

/// Whether the kernels are enabled: `ADIFF_KERNELS=stock` (read once) routes every entry point
/// to the stock candle composite, the baseline of the whole-model benchmarks.
pub fn kernels_enabled() -> bool {
    static ON: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ON.get_or_init(|| !env_is("ADIFF_KERNELS", &["stock", "off"]))
}

/// Whether the environment variable `name` holds one of `values` (surrounding space ignored):
/// the switches the kernels read once at first use.
pub(crate) fn env_is(name: &str, values: &[&str]) -> bool {
    std::env::var(name).is_ok_and(|v| values.contains(&v.trim()))
}

/// Whether the kernels are enabled and every present tensor is an f32 tensor on the CPU.
pub(crate) fn fast_path_ok(ts: &[Option<&Tensor>]) -> bool {
    kernels_enabled()
        && ts
            .iter()
            .flatten()
            .all(|t| t.device().is_cpu() && t.dtype() == DType::F32)
}

/// Whether the kernels are enabled and the present tensors are all f32 or all bf16 on the CPU
/// (the convolutions' domain: bf16 runs the bf16 dot-product kernel where the CPU has one).
pub(crate) fn conv_path_ok(ts: &[Option<&Tensor>]) -> bool {
    let mut it = ts.iter().flatten();
    let Some(first) = it.next() else { return false };
    let dt = first.dtype();
    kernels_enabled()
        && matches!(dt, DType::F32 | DType::BF16)
        && first.device().is_cpu()
        && it.all(|t| t.device().is_cpu() && t.dtype() == dt)
}

/// The values of a contiguous f32 or bf16 CPU storage as f32 (borrowed when already f32).
pub(crate) fn f32_values<'a>(s: &'a CpuStorage, layout: &Layout) -> Result<Cow<'a, [f32]>> {
    match s {
        CpuStorage::BF16(v) => match layout.contiguous_offsets() {
            Some((start, end)) => Ok(Cow::Owned(
                v[start..end].iter().map(|x| x.to_f32()).collect(),
            )),
            None => bail!("adiff ops: expected a contiguous input, got {:?}", layout),
        },
        _ => Ok(Cow::Borrowed(f32_slice(s, layout)?)),
    }
}

/// `y` as a storage of the same dtype as `like` (bf16 rounds to nearest even).
pub(crate) fn storage_like(like: &CpuStorage, y: Vec<f32>) -> CpuStorage {
    match like {
        CpuStorage::BF16(_) => CpuStorage::BF16(y.into_iter().map(half::bf16::from_f32).collect()),
        _ => CpuStorage::F32(y),
    }
}

/// The contiguous f32 values of a CPU storage under `layout`.
pub fn f32_slice<'a>(s: &'a CpuStorage, layout: &Layout) -> Result<&'a [f32]> {
    let data = s.as_slice::<f32>()?;
    match layout.contiguous_offsets() {
        Some((start, end)) => Ok(&data[start..end]),
        None => bail!("adiff ops: expected a contiguous input, got {:?}", layout),
    }
}
