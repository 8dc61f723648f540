//! `modules.py::PatchBlock`, `UnpatchBlock`, `Patcher`, `Unpatcher` (audio-diffusion-pytorch 0.0.61,
//! docs/reference.md §0 and §1.3): folding time steps into channels and back.

use crate::unet::ResnetBlock1d;
use crate::{Error, Result};
use candle_core::Tensor;
use candle_nn::VarBuilder;

/// `[B, C, T*p] -> [B, C*p, T]` with `out[b, c*p + j, t] = in[b, c, t*p + j]`.
pub fn patch(x: &Tensor, p: usize) -> Result<Tensor> {
    let (b, c, tp) = x.dims3()?;
    if tp % p != 0 {
        return Err(Error::input(
            "x",
            format!("length {tp} is not a multiple of the patch factor {p}"),
        ));
    }
    Ok(x.reshape((b, c, tp / p, p))?
        .transpose(2, 3)?
        .reshape((b, c * p, tp / p))?)
}

/// `[B, C*p, T] -> [B, C, T*p]`, the inverse of [`patch`].
pub fn unpatch(x: &Tensor, p: usize) -> Result<Tensor> {
    let (b, cp, t) = x.dims3()?;
    if cp % p != 0 {
        return Err(Error::input(
            "x",
            format!("{cp} channels are not a multiple of the patch factor {p}"),
        ));
    }
    Ok(x.reshape((b, cp / p, p, t))?
        .transpose(2, 3)?
        .reshape((b, cp / p, t * p))?)
}

/// ResnetBlock1d(in -> out/p, groups min(p, in)), then [`patch`] by p.
#[derive(Debug, Clone)]
pub struct PatchBlock {
    /// The resnet at the unpatched rate.
    pub block: ResnetBlock1d,
    factor: usize,
}

impl PatchBlock {
    /// `PatchBlock(in, out, patch_size, context_mapping_features)` under `vb`.
    pub fn new(
        in_channels: usize,
        out_channels: usize,
        factor: usize,
        mapping: Option<usize>,
        vb: VarBuilder,
    ) -> Result<Self> {
        if factor == 0 || !out_channels.is_multiple_of(factor) {
            return Err(Error::config(
                "patch_factor",
                format!("{out_channels} output channels are not divisible by {factor}"),
            ));
        }
        let groups = factor.min(in_channels);
        let block = ResnetBlock1d::new(
            in_channels,
            out_channels / factor,
            groups,
            mapping,
            vb.pp("block"),
        )?;
        Ok(Self { block, factor })
    }

    /// `(batch, in, T*p)` -> `(batch, out, T)`.
    pub fn forward(&self, x: &Tensor, mapping: Option<&Tensor>) -> Result<Tensor> {
        patch(&self.block.forward(x, mapping)?, self.factor)
    }
}

/// [`unpatch`] by p, then ResnetBlock1d(in/p -> out, groups min(p, out)).
#[derive(Debug, Clone)]
pub struct UnpatchBlock {
    /// The resnet at the unpatched rate.
    pub block: ResnetBlock1d,
    factor: usize,
}

impl UnpatchBlock {
    /// `UnpatchBlock(in, out, patch_size, context_mapping_features)` under `vb`.
    pub fn new(
        in_channels: usize,
        out_channels: usize,
        factor: usize,
        mapping: Option<usize>,
        vb: VarBuilder,
    ) -> Result<Self> {
        if factor == 0 || !in_channels.is_multiple_of(factor) {
            return Err(Error::config(
                "patch_factor",
                format!("{in_channels} input channels are not divisible by {factor}"),
            ));
        }
        let groups = factor.min(out_channels);
        let block = ResnetBlock1d::new(
            in_channels / factor,
            out_channels,
            groups,
            mapping,
            vb.pp("block"),
        )?;
        Ok(Self { block, factor })
    }

    /// `(batch, in, T)` -> `(batch, out, T*p)`.
    pub fn forward(&self, x: &Tensor, mapping: Option<&Tensor>) -> Result<Tensor> {
        self.block.forward(&unpatch(x, self.factor)?, mapping)
    }
}

/// A chain of `blocks` PatchBlocks (keys `module_list.{j}.block.*`).
#[derive(Debug, Clone)]
pub struct Patcher {
    /// The blocks, in order.
    pub module_list: Vec<PatchBlock>,
}

impl Patcher {
    /// `Patcher(in, out, blocks, factor, context_mapping_features)` under `vb`.
    pub fn new(
        in_channels: usize,
        out_channels: usize,
        blocks: usize,
        factor: usize,
        mapping: Option<usize>,
        vb: VarBuilder,
    ) -> Result<Self> {
        let vb = vb.pp("module_list");
        let module_list = (0..blocks)
            .map(|j| {
                let cin = in_channels * factor.pow(j as u32);
                let cout = if j + 1 == blocks {
                    out_channels
                } else {
                    in_channels * factor.pow(j as u32 + 1)
                };
                PatchBlock::new(cin, cout, factor, mapping, vb.pp(j))
            })
            .collect::<Result<_>>()?;
        Ok(Self { module_list })
    }

    /// `(batch, in, T)` -> `(batch, out, T / factor^blocks)`.
    pub fn forward(&self, x: &Tensor, mapping: Option<&Tensor>) -> Result<Tensor> {
        let mut x = x.clone();
        for block in &self.module_list {
            x = block.forward(&x, mapping)?;
        }
        Ok(x)
    }
}

/// A chain of `blocks` UnpatchBlocks (keys `module_list.{j}.block.*`).
#[derive(Debug, Clone)]
pub struct Unpatcher {
    /// The blocks, in order.
    pub module_list: Vec<UnpatchBlock>,
}

impl Unpatcher {
    /// `Unpatcher(in, out, blocks, factor, context_mapping_features)` under `vb`.
    pub fn new(
        in_channels: usize,
        out_channels: usize,
        blocks: usize,
        factor: usize,
        mapping: Option<usize>,
        vb: VarBuilder,
    ) -> Result<Self> {
        let vb = vb.pp("module_list");
        let module_list = (0..blocks)
            .map(|j| {
                // pre = [in] + [out*p^(i+1) for i = n-2..0]; post = [out*p^i for i = n-1..0].
                let cin = if j == 0 {
                    in_channels
                } else {
                    out_channels * factor.pow((blocks - j) as u32)
                };
                let cout = out_channels * factor.pow((blocks - 1 - j) as u32);
                UnpatchBlock::new(cin, cout, factor, mapping, vb.pp(j))
            })
            .collect::<Result<_>>()?;
        Ok(Self { module_list })
    }

    /// `(batch, in, T)` -> `(batch, out, T * factor^blocks)`.
    pub fn forward(&self, x: &Tensor, mapping: Option<&Tensor>) -> Result<Tensor> {
        let mut x = x.clone();
        for block in &self.module_list {
            x = block.forward(&x, mapping)?;
        }
        Ok(x)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    #[allow(clippy::needless_range_loop)]
    fn patch_follows_the_index_map_and_unpatch_inverts_it() {
        let d = Device::Cpu;
        let x = Tensor::arange(0f32, 12.0, &d)
            .unwrap()
            .reshape((1, 2, 6))
            .unwrap();
        let y = patch(&x, 3).unwrap();
        assert_eq!(y.dims(), &[1, 6, 2]);
        let yv = y.to_vec3::<f32>().unwrap();
        // out[c*p + j, t] = in[c, t*p + j]
        for c in 0..2 {
            for j in 0..3 {
                for t in 0..2 {
                    assert_eq!(yv[0][c * 3 + j][t], (c * 6 + t * 3 + j) as f32);
                }
            }
        }
        let back = unpatch(&y, 3).unwrap();
        assert_eq!(back.to_vec3::<f32>().unwrap(), x.to_vec3::<f32>().unwrap());
    }
}
