//! Forward-pass FLOP count of `modules.py::UNet1d` (audio-diffusion-pytorch 0.0.61) from its config
//! and input shape, counted like PyTorch's `FlopCounterMode` (docs/reference.md §2.6): 2 FLOPs per
//! multiply-accumulate of convolutions, transposed convolutions, linears and attention matmuls;
//! norms, activations, softmax and additions are not counted.

use crate::unet::UNet1dConfig;

/// FLOPs of one UNet1d forward pass, split the way docs/reference.md §2.6 reports them.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct FlopCount {
    /// Convolutions and transposed convolutions.
    pub conv: f64,
    /// Linears with bias: feed-forward, attention output, time/feature mapping, scale-shift.
    pub linear: f64,
    /// Bias-free q / kv projections.
    pub qkv: f64,
    /// Attention score (q·kᵀ) and value products.
    pub attention: f64,
}

impl FlopCount {
    /// All counted FLOPs.
    pub fn total(&self) -> f64 {
        self.conv + self.linear + self.qkv + self.attention
    }
}

/// Accumulates the FLOPs of a forward pass over `batch` items.
struct Counter<'a> {
    cfg: &'a UNet1dConfig,
    b: f64,
    n: FlopCount,
}

impl Counter<'_> {
    fn conv(&mut self, ci: usize, co: usize, k: usize, t_out: usize) {
        self.n.conv += 2.0 * self.b * (ci * co * k * t_out) as f64;
    }

    fn linear(&mut self, fi: usize, fo: usize, rows: usize) {
        self.n.linear += 2.0 * self.b * (fi * fo * rows) as f64;
    }

    /// `ResnetBlock1d(ci -> co)` at `t` samples (reference §1.3); the scale-shift linear if mapped.
    fn resnet(&mut self, ci: usize, co: usize, t: usize, mapped: bool) {
        self.conv(ci, co, 3, t);
        self.conv(co, co, 3, t);
        if ci != co {
            self.conv(ci, co, 1, t);
        }
        if let (true, Some(m)) = (mapped, self.cfg.mapping_features()) {
            self.linear(m, 2 * co, 1);
        }
    }

    /// `Transformer1d(blocks, c)` over `t` positions (docs/reference.md §1.3).
    fn transformer(&mut self, blocks: usize, c: usize, t: usize) {
        if blocks == 0 {
            return;
        }
        let hd = self.cfg.attention_heads * self.cfg.attention_features;
        self.conv(c, c, 1, t);
        for _ in 0..blocks {
            self.n.qkv += 2.0 * self.b * (t * c * 3 * hd) as f64;
            self.n.attention += 2.0 * 2.0 * self.b * (t * t * hd) as f64;
            self.linear(hd, c, t);
            self.linear(c, c * self.cfg.attention_multiplier, t);
            self.linear(c * self.cfg.attention_multiplier, c, t);
        }
        self.conv(c, c, 1, t);
    }
}

/// FLOPs of `UNet1d.forward` on an input `(batch, in_channels, length)` (reference §1.6). `length`
/// must be a multiple of [`UNet1dConfig::total_factor`] for the count to match a real run.
pub fn unet1d_forward(cfg: &UNet1dConfig, batch: usize, length: usize) -> FlopCount {
    let mut k = Counter {
        cfg,
        b: batch as f64,
        n: FlopCount::default(),
    };
    let (c, p, layers) = (cfg.channels, cfg.patch_factor, cfg.num_layers());
    let ctx = cfg.context_channels_padded();
    let mapped = cfg.mapping_features().is_some();
    // Mapping (docs/reference.md §1.5).
    if let Some(m) = cfg.mapping_features() {
        if cfg.use_context_time {
            k.linear(c + 1, m, 1);
        }
        if let Some(f) = cfg.context_features {
            k.linear(f, m, 1);
        }
        k.linear(m, m, 1);
        k.linear(m, m, 1);
    }
    // Patcher: block j maps in·p^j -> out_j / p at the current length, then patches by p.
    let mut t = length;
    let cin = cfg.in_channels + ctx[0];
    for j in 0..cfg.patch_blocks {
        let ci = cin * p.pow(j as u32);
        let co = if j + 1 < cfg.patch_blocks {
            cin * p.pow(j as u32 + 1)
        } else {
            c
        };
        k.resnet(ci, co / p, t, mapped);
        t /= p;
    }
    // Down levels.
    for i in 0..layers {
        let (ci, w, f) = (
            c * cfg.multipliers[i],
            c * cfg.multipliers[i + 1],
            cfg.factors[i],
        );
        t /= f;
        k.conv(ci, w, f * cfg.kernel_multiplier_downsample + 1, t);
        for j in 0..cfg.num_blocks[i] {
            k.resnet(if j == 0 { w + ctx[i + 1] } else { w }, w, t, mapped);
        }
        k.transformer(cfg.attentions[i], w, t);
    }
    // Bottleneck.
    let wl = c * cfg.multipliers[layers];
    k.resnet(wl, wl, t, mapped);
    k.transformer(*cfg.attentions.last().unwrap_or(&0), wl, t);
    k.resnet(wl, wl, t, mapped);
    // Up levels, deepest first.
    for i in (0..layers).rev() {
        let (w, co, f) = (
            c * cfg.multipliers[i + 1],
            c * cfg.multipliers[i],
            cfg.factors[i],
        );
        let extra = usize::from(cfg.attentions[i] > 0);
        for _ in 0..cfg.num_blocks[i] + extra {
            k.resnet(2 * w, w, t, mapped);
        }
        k.transformer(cfg.attentions[i], w, t);
        if f == 1 || cfg.use_nearest_upsample {
            t *= f;
            k.conv(w, co, 3, t);
        } else {
            // Transposed conv: every input sample meets the whole kernel.
            k.conv(w, co, 2 * f, t);
            t *= f;
        }
    }
    // Unpatcher: unpatch by p, then a resnet in_j / p -> out_j.
    let out = cfg.out_channels() * if cfg.use_magnitude_channels { 2 } else { 1 };
    let n = cfg.patch_blocks;
    for j in 0..n {
        let ci = if j == 0 {
            c
        } else {
            out * p.pow((n - j) as u32)
        };
        let co = out * p.pow((n - 1 - j) as u32);
        t *= p;
        k.resnet(ci / p, co, t, mapped);
    }
    k.n
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gflop(x: f64) -> f64 {
        (x / 1e9 * 100.0).round() / 100.0
    }

    #[test]
    fn default_unet_at_2_pow_18_matches_spec() {
        // reference §2.6: 61.79 GFLOP; convs 59.66, biased linears 1.29, q/kv 0.75, attention 0.09.
        let n = unet1d_forward(&UNet1dConfig::default(), 1, 1 << 18);
        assert_eq!(gflop(n.total()), 61.79, "{n:?}");
        assert_eq!(gflop(n.conv), 59.66, "{n:?}");
        assert_eq!(gflop(n.linear), 1.29, "{n:?}");
        assert_eq!(gflop(n.qkv), 0.75, "{n:?}");
        assert_eq!(gflop(n.attention), 0.09, "{n:?}");
    }

    #[test]
    fn seed_readme_unet_on_3_by_2_pow_16_matches_spec() {
        // docs/reference.md §2.6: the README example [3, 1, 2^16] costs 46.36 GFLOP.
        let n = unet1d_forward(&UNet1dConfig::default(), 3, 1 << 16);
        assert_eq!(gflop(n.total()), 46.36, "{n:?}");
    }
}
