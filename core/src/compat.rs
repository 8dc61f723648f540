//! The compatibility switch: corrected behaviour by default, or the reference's `0.0.61` behaviour.
//!
//! reference Appendix A lists bugs of audio-diffusion-pytorch 0.0.61. Every place that differs
//! reads this switch; the parity fixtures run everything with [`Compat::V0_0_61`].

use serde::{Deserialize, Serialize};

/// Which behaviour to follow where the reference has a known bug.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum Compat {
    /// Corrected behaviour (the default): V distribution draws uniform values, samplers reach sigma 0,
    /// the Karras sampler's Heun step uses the next sigma, the upsampler embeds the factor value in
    /// training and sampling, the autoencoder calls its bottleneck with info.
    #[default]
    #[serde(rename = "fixed")]
    Fixed,
    /// Reproduce audio-diffusion-pytorch 0.0.61 exactly, bugs included.
    #[serde(rename = "0.0.61")]
    V0_0_61,
}

impl Compat {
    /// True when the reference's 0.0.61 behaviour is reproduced.
    pub fn is_reference(self) -> bool {
        self == Compat::V0_0_61
    }
}
