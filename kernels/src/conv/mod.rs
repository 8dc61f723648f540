//! The convolutions: forward ([`conv1d()`], [`conv_transpose1d()`]), their gradients, and the
//! kernels they share (the tap-list micro-kernels, the weight-gradient kernel, Winograd). Each
//! one's backward calls the other's forward (a strided input gradient is a transposed
//! convolution and the reverse), so the cycle between them is real; it stays inside this folder.

pub mod conv1d;
pub(crate) mod conv_kernel;
pub mod conv_transpose1d;
pub(crate) mod conv_wgrad;
pub(crate) mod winograd;

#[cfg(test)]
pub(crate) mod conv_tests;
#[cfg(test)]
mod winograd_tests;

// What the convolution files name through `super::` from the crate root.
#[allow(unused_imports)]
use crate::{conv_path_ok, env_is, f32_values, isa, small_gemm, storage_like, vec_math, Isa};

pub use conv1d::{conv1d, conv1d_stock, conv1d_with};
pub use conv_transpose1d::{
    conv_transpose1d, conv_transpose1d_cached, conv_transpose1d_stock, conv_transpose1d_with,
    PhaseKernelCache,
};
