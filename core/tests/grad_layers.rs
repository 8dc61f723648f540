//! Gradients of every layer of the reference network against finite differences of its forward.
//!
//! For each layer (and a whole small UNet1d) on random inputs, in f64 weights and inputs:
//! `L = sum(forward(x) * R)` with a fixed random `R`; the gradient from candle's backward pass
//! must match the central difference `(L(θ + h) − L(θ − h)) / 2h` at sampled coordinates of every
//! parameter and of the input, and no parameter may get an all-zero gradient (it would never
//! train). Layers computed wholly in f64 are held to a relative 1e-6 (h = 1e-5); layers whose
//! statistics or softmax the port computes in f32 on purpose (group norm, layer norm, attention,
//! and so the UNet) to a relative 1e-2 with h = 1e-2, the f32 rounding of the loss (about 1e-7
//! relative) divided by 2h plus the O(h^2) truncation; a wrong gradient is off by O(1).

use adiff_core::nn::{Attention, Conv1d, ConvTranspose1d, GroupNorm, TimePositionalEmbedding};
use adiff_core::unet::{UNet1d, UNet1dConfig};
use adiff_core::{NetInputs, SeededNoise};
use candle_core::{DType, Device, Tensor, Var};
use candle_nn::{VarBuilder, VarMap};

type Forward<'a> = dyn Fn(&Tensor) -> adiff_core::Result<Tensor> + 'a;

struct Rng(SeededNoise);

impl Rng {
    fn tensor(&mut self, shape: &[usize]) -> Tensor {
        let n: usize = shape.iter().product();
        let v: Vec<f64> = (0..n).map(|_| self.0.next_normal()).collect();
        Tensor::from_vec(v, shape, &Device::Cpu).unwrap()
    }
}

fn flat(t: &Tensor) -> Vec<f64> {
    t.flatten_all().unwrap().to_vec1::<f64>().unwrap()
}

fn set_elem(var: &Var, values: &[f64], idx: usize, value: f64) {
    let mut v = values.to_vec();
    v[idx] = value;
    var.set(&Tensor::from_vec(v, var.shape().clone(), var.device()).unwrap())
        .unwrap();
}

/// Checks d sum(f(x) * R) / d(each parameter of `map`, and x) against central differences.
///
/// The error at a coordinate is relative to the larger of the two values, floored at `floor` times
/// the largest gradient of that tensor (so tiny gradients are not held to a relative bound that
/// rounding alone breaks).
fn check(
    name: &str,
    map: &VarMap,
    x_shape: &[usize],
    f: &Forward,
    h: f64,
    rtol: f64,
    per_tensor: usize,
) {
    let floor = if rtol < 1e-4 { 1e-3 } else { 0.1 };
    // ADIFF_GRAD_VERBOSE=1 lists every coordinate over tolerance, not just the worst.
    let verbose = std::env::var_os("ADIFF_GRAD_VERBOSE").is_some();
    let mut rng = Rng(SeededNoise::new(0x6EAD));
    let x = Var::from_tensor(&rng.tensor(x_shape)).unwrap();
    let y0 = f(x.as_tensor()).unwrap();
    let r = rng.tensor(y0.dims());
    let loss = |x: &Tensor| -> f64 {
        (f(x).unwrap() * &r)
            .unwrap()
            .sum_all()
            .unwrap()
            .to_scalar::<f64>()
            .unwrap()
    };
    let grads = (y0 * &r).unwrap().sum_all().unwrap().backward().unwrap();

    let mut vars: Vec<(String, Var)> = map
        .data()
        .lock()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    vars.sort_by(|a, b| a.0.cmp(&b.0));
    vars.push(("<input>".into(), x.clone()));
    let mut worst = (0.0f64, String::new());
    for (key, var) in &vars {
        let g = grads
            .get(var.as_tensor())
            .unwrap_or_else(|| panic!("{name}: no gradient reaches `{key}`"));
        let g = flat(g);
        let scale = g.iter().fold(0.0f64, |m, v| m.max(v.abs()));
        assert!(scale > 0.0, "{name}: the gradient of `{key}` is all zero");
        let values = flat(var.as_tensor());
        let n = values.len();
        let picks: Vec<usize> = (0..per_tensor.min(n))
            .map(|i| (i * 7919 + (rng.0.next_u64() % n as u64) as usize) % n)
            .collect();
        for idx in picks {
            set_elem(var, &values, idx, values[idx] + h);
            let up = loss(x.as_tensor());
            set_elem(var, &values, idx, values[idx] - h);
            let down = loss(x.as_tensor());
            set_elem(var, &values, idx, values[idx]);
            let fd = (up - down) / (2.0 * h);
            let err = (fd - g[idx]).abs() / (fd.abs().max(g[idx].abs()).max(scale * floor));
            if verbose && err > rtol {
                println!("  {name}: `{key}`[{idx}] backward {} vs finite difference {fd} (error {err:.2e})", g[idx]);
            }
            if err > worst.0 {
                worst = (
                    err,
                    format!(
                        "`{key}`[{idx}]: backward {} vs finite difference {fd}",
                        g[idx]
                    ),
                );
            }
        }
    }
    println!(
        "{name}: worst relative error {:.2e} at {}",
        worst.0, worst.1
    );
    assert!(
        worst.0 <= rtol,
        "{name}: gradient mismatch {:.3e} > {rtol:.0e} at {}",
        worst.0,
        worst.1
    );
}

fn vb(map: &VarMap) -> VarBuilder<'static> {
    VarBuilder::from_varmap(map, DType::F64, &Device::Cpu)
}

#[test]
fn conv1d_padded_and_strided() {
    for (k, stride, pad) in [(3usize, 1usize, 1usize), (8, 4, 2), (1, 1, 0)] {
        let map = VarMap::new();
        let conv = Conv1d::new(3, 4, k, stride, pad, vb(&map)).unwrap();
        check(
            &format!("conv1d k{k} s{stride} p{pad}"),
            &map,
            &[2, 3, 16],
            &|x| conv.forward(x),
            1e-5,
            1e-6,
            8,
        );
    }
}

#[test]
fn transposed_conv1d_even_and_odd_factors_with_output_padding() {
    // The UNet's upsampler: kernel 2f, stride f, padding f/2 + f%2, output_padding f%2.
    for f in [1usize, 2, 3, 4] {
        let map = VarMap::new();
        let conv = ConvTranspose1d::new(3, 2, 2 * f, f, f / 2 + f % 2, f % 2, vb(&map)).unwrap();
        let name = format!("conv_transpose1d factor {f} (output_padding {})", f % 2);
        check(&name, &map, &[2, 3, 7], &|x| conv.forward(x), 1e-5, 1e-6, 8);
    }
}

#[test]
fn group_norm() {
    let map = VarMap::new();
    let norm = GroupNorm::new(2, 6, 1e-5, vb(&map)).unwrap();
    // Non-trivial affine parameters, so their gradients are tested away from the (1, 0) init.
    let mut rng = Rng(SeededNoise::new(3));
    for (k, v) in map.data().lock().unwrap().iter() {
        let shift = if k.ends_with("weight") { 1.0 } else { 0.0 };
        v.set(
            &(rng.tensor(v.dims()) * 0.3)
                .unwrap()
                .affine(1.0, shift)
                .unwrap(),
        )
        .unwrap();
    }
    check(
        "group norm",
        &map,
        &[2, 6, 10],
        &|x| norm.forward(x),
        1e-2,
        1e-2,
        8,
    );
}

#[test]
fn self_attention() {
    let map = VarMap::new();
    let attn = Attention::new(8, 4, 2, None, vb(&map)).unwrap();
    check(
        "attention",
        &map,
        &[2, 5, 8],
        &|x| attn.forward(x, None),
        1e-2,
        1e-2,
        6,
    );
}

#[test]
fn time_embedding() {
    let map = VarMap::new();
    let emb = TimePositionalEmbedding::new(8, 6, vb(&map)).unwrap();
    // Input `(batch, 1)` flattened to the time vector `(batch,)`.
    check(
        "time embedding",
        &map,
        &[3, 1],
        &|t| emb.forward(&t.flatten_all()?),
        1e-6,
        1e-6,
        6,
    );
}

/// A small UNet1d with every kind of layer: patching, resnets with time mapping, attention,
/// downsampling convolutions, transposed-convolution upsampling with an odd factor (output
/// padding), skips, context channels and context features.
fn small_unet_config() -> UNet1dConfig {
    UNet1dConfig {
        in_channels: 1,
        channels: 16,
        patch_blocks: 1,
        patch_factor: 2,
        multipliers: vec![1, 2, 2],
        factors: vec![3, 2],
        num_blocks: vec![1, 1],
        attentions: vec![0, 1, 1],
        attention_heads: 2,
        attention_features: 4,
        attention_multiplier: 2,
        resnet_groups: 4, // the transformer's GroupNorm(32) needs 32 channels at attention levels
        kernel_multiplier_downsample: 2,
        use_nearest_upsample: false,
        use_skip_scale: true,
        use_context_time: true,
        use_magnitude_channels: false,
        norm_quantile: 0.0,
        out_channels: None,
        context_features: Some(4),
        context_channels: Some(vec![1]),
        context_embedding_features: None,
        use_cross_attention: false,
    }
}

#[test]
fn whole_small_unet() {
    let map = VarMap::new();
    let cfg = small_unet_config();
    let unet = UNet1d::new(&cfg, vb(&map)).unwrap();
    let mut rng = Rng(SeededNoise::new(5));
    let time = Tensor::new(&[0.3f64, 0.8], &Device::Cpu).unwrap();
    let inputs = NetInputs {
        features: Some(rng.tensor(&[2, 4])),
        channels_list: vec![rng.tensor(&[2, 1, 24])],
        ..NetInputs::none()
    };
    check(
        "UNet1d",
        &map,
        &[2, 1, 24],
        &|x| unet.forward(x, Some(&time), &inputs),
        1e-2,
        1e-2,
        2,
    );
}
