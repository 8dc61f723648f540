//! Index counter for `nn.Sequential` children, so that weights come out named like PyTorch's
//! (`to_mapping.0.weight`, `to_mapping.2.weight`: the GELU at index 1 has no parameters but still
//! takes a number).

use candle_nn::VarBuilder;

/// Hands out the builder of each child of an `nn.Sequential` in order.
pub struct SeqIndex<'a> {
    vb: VarBuilder<'a>,
    next: usize,
}

impl<'a> SeqIndex<'a> {
    /// A counter over the children of the Sequential at `vb`.
    pub fn new(vb: VarBuilder<'a>) -> Self {
        Self { vb, next: 0 }
    }

    /// The builder for the next child (one with parameters).
    pub fn next_vb(&mut self) -> VarBuilder<'a> {
        let vb = self.vb.pp(self.next);
        self.next += 1;
        vb
    }

    /// Skips a child without parameters (activation, rearrange, upsample).
    pub fn skip(&mut self) {
        self.next += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device};

    #[test]
    fn skipped_children_still_take_a_number() {
        let vb = VarBuilder::zeros(DType::F32, &Device::Cpu).pp("to_mapping");
        let mut s = SeqIndex::new(vb);
        assert_eq!(s.next_vb().prefix(), "to_mapping.0");
        s.skip();
        assert_eq!(s.next_vb().prefix(), "to_mapping.2");
    }
}
