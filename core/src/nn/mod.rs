//! Reference-named building blocks of `modules.py` (audio-diffusion-pytorch 0.0.61): convolutions with
//! the reference's padding rules, group/layer norm, attention with an f32 softmax, time embeddings,
//! PyTorch's default initialisation, and an `nn.Sequential` index counter.

pub mod attention;
pub mod conv;
pub mod embedding;
pub mod init;
pub mod linear;
pub mod norm;
pub mod sequential;

pub use attention::{Attention, AttentionBase};
pub use conv::{conv_transpose1d, conv_transpose1d_via_2d, Conv1d, ConvTranspose1d};
pub use embedding::{LearnedPositionalEmbedding, SinusoidalEmbedding, TimePositionalEmbedding};
pub use linear::Linear;
pub use norm::{GroupNorm, LayerNorm};
pub use sequential::SeqIndex;
