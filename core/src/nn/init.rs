//! PyTorch's default parameter initialisation (docs/reference.md §1.14), as candle [`Init`] hints.
//!
//! Conv1d, ConvTranspose1d and Linear weights use Kaiming-uniform with `a = sqrt(5)`, which is
//! `U(-1/sqrt(fan_in), 1/sqrt(fan_in))`; their biases use the same bound. Norm weights are 1 and
//! biases 0; `nn.Embedding` and `LearnedPositionalEmbedding.weights` are N(0, 1).

use candle_nn::Init;

/// `U(±1/sqrt(fan_in))`: PyTorch's default for conv/linear weights and biases.
pub fn uniform_fan_in(fan_in: usize) -> Init {
    let bound = 1.0 / (fan_in.max(1) as f64).sqrt();
    Init::Uniform {
        lo: -bound,
        up: bound,
    }
}

/// Norm weights (GroupNorm, LayerNorm): 1.
pub const ONES: Init = Init::Const(1.0);

/// Norm biases: 0.
pub const ZEROS: Init = Init::Const(0.0);

/// Embeddings and learned positional frequencies: N(0, 1).
pub const NORMAL: Init = Init::Randn {
    mean: 0.0,
    stdev: 1.0,
};
