//! Gradients of every layer of the reference network against finite differences of its forward.
//!
//! For each layer (and a whole small UNet1d) on random inputs: `L = sum(forward(x) * R)` with a
//! fixed random `R`; the gradient from the backward pass must match the central difference
//! `(L(θ + h) − L(θ − h)) / 2h` at sampled coordinates of every parameter and of the input, and no
//! parameter may get an all-zero gradient (it would never train).
//!
//! - f64 layers are checked against themselves (h = 1e-5, relative 1e-6).
//! - f32 layers, the training dtype, against their f64 twin holding the same weights: the
//!   backward runs in f32, the differences in f64 (h = 1e-4, relative 1e-3).
//! - Layers whose statistics or softmax the port computes in f32 on purpose (group norm, layer
//!   norm, attention, and so the UNet): h = 1e-2, relative 1e-2, plus an allowance for the f32
//!   rounding of the loss, `4 eps sum|terms| / 2h`. A wrong gradient is off by O(1): candle
//!   0.11's own conv1d backward (wrong for batch > 1 and for 1x1 kernels) fails these by 1-2.
//!
//! `ADIFF_GRAD_VERBOSE=1` lists every coordinate over tolerance, not just the worst.

use adiff_core::nn::{Attention, Conv1d, ConvTranspose1d, GroupNorm, TimePositionalEmbedding};
use adiff_core::unet::{UNet1d, UNet1dConfig};
use adiff_core::{NetInputs, SeededNoise};
use candle_core::{DType, Device, Tensor, Var};
use candle_nn::{VarBuilder, VarMap};

type Forward<'a> = dyn Fn(&Tensor) -> adiff_core::Result<Tensor> + 'a;

struct Rng(SeededNoise);

impl Rng {
    fn tensor(&mut self, shape: &[usize]) -> Tensor {
        self.tensor_in(shape, DType::F64)
    }

    fn tensor_in(&mut self, shape: &[usize], dtype: DType) -> Tensor {
        let n: usize = shape.iter().product();
        let v: Vec<f64> = (0..n).map(|_| self.0.next_normal()).collect();
        Tensor::from_vec(v, shape, &Device::Cpu)
            .unwrap()
            .to_dtype(dtype)
            .unwrap()
    }
}

fn flat(t: &Tensor) -> Vec<f64> {
    t.flatten_all()
        .unwrap()
        .to_dtype(DType::F64)
        .unwrap()
        .to_vec1::<f64>()
        .unwrap()
}

fn set_elem(var: &Var, values: &[f64], idx: usize, value: f64) {
    let mut v = values.to_vec();
    v[idx] = value;
    let t = Tensor::from_vec(v, var.shape().clone(), var.device()).unwrap();
    var.set(&t.to_dtype(var.dtype()).unwrap()).unwrap();
}

/// One gradient check: analytic gradients from `grad` (a model in the dtype under test) against
/// central differences of `fd` (the same model in f64, whose weights are set to `grad`'s values)
/// of `L = sum(f(x) * R)`, at sampled coordinates of every parameter and of the input.
struct Check<'a> {
    name: String,
    grad: (&'a VarMap, &'a Forward<'a>),
    fd: (&'a VarMap, &'a Forward<'a>),
    x_shape: &'a [usize],
    /// Finite-difference step.
    h: f64,
    /// Relative tolerance (to the larger value, floored at a fraction of the tensor's largest
    /// gradient so tiny gradients are not held to a bound rounding alone breaks).
    rtol: f64,
    /// Unit rounding of the f64 forward's arithmetic (f32 where the layer computes statistics or a
    /// softmax in f32 on purpose): each loss evaluation is off by about `eps * sum |terms|`, and
    /// that much rounding in a difference quotient is allowed on top of `rtol`.
    eps: f64,
    per_tensor: usize,
    /// Parameters whose gradient is zero by construction (the finite differences below must then
    /// be zero within rounding too): a conv bias feeding a GroupNorm with one channel per group is
    /// subtracted out again by the group mean.
    zero_by_construction: &'a [&'a str],
}

fn sorted(map: &VarMap) -> Vec<(String, Var)> {
    let mut v: Vec<(String, Var)> = map
        .data()
        .lock()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
}

impl Check<'_> {
    fn run(&self) {
        let (name, h) = (&self.name, self.h);
        let floor = if self.rtol < 1e-4 { 1e-3 } else { 0.1 };
        // ADIFF_GRAD_VERBOSE=1 lists every coordinate over tolerance, not just the worst.
        let verbose = std::env::var_os("ADIFF_GRAD_VERBOSE").is_some();
        let mut rng = Rng(SeededNoise::new(0x6EAD));
        let dtype = self
            .grad
            .0
            .all_vars()
            .first()
            .map_or(DType::F64, |v| v.dtype());
        // The f64 model gets exactly the tested model's values; inputs are drawn in its dtype.
        let (gvars, fvars) = (sorted(self.grad.0), sorted(self.fd.0));
        assert_eq!(gvars.len(), fvars.len(), "{name}: the two models differ");
        let twin = !std::ptr::eq(self.grad.0, self.fd.0);
        for ((k, g), (k2, f)) in gvars.iter().zip(&fvars) {
            assert_eq!(k, k2);
            if twin {
                f.set(&g.as_tensor().to_dtype(DType::F64).unwrap()).unwrap();
            }
        }
        let x64 = rng
            .tensor_in(self.x_shape, dtype)
            .to_dtype(DType::F64)
            .unwrap();
        let xg = Var::from_tensor(&x64.to_dtype(dtype).unwrap()).unwrap();
        let xf = Var::from_tensor(&x64).unwrap();
        let y0 = (self.grad.1)(xg.as_tensor()).unwrap();
        let rg = rng.tensor_in(y0.dims(), dtype);
        let r64 = rg.to_dtype(DType::F64).unwrap();
        let loss = |x: &Tensor| -> f64 {
            let y = (self.fd.1)(x).unwrap();
            (y * &r64)
                .unwrap()
                .sum_all()
                .unwrap()
                .to_scalar::<f64>()
                .unwrap()
        };
        if twin {
            // The twins compute the same function: outputs agree to the tested dtype's rounding.
            let y64 = flat(&(self.fd.1)(xf.as_tensor()).unwrap());
            let y = flat(&y0);
            let big = y64.iter().fold(1e-30f64, |m, v| m.max(v.abs()));
            let diff = y
                .iter()
                .zip(&y64)
                .fold(0.0f64, |m, (a, b)| m.max((a - b).abs()));
            assert!(
                diff <= 1e-4 * big,
                "{name}: the {dtype:?} forward differs from the f64 one by {diff:e} (peak {big:e})"
            );
        }
        let terms: f64 = flat(&(&y0 * &rg).unwrap().abs().unwrap()).iter().sum();
        let noise = 4.0 * self.eps * terms / (2.0 * h);
        let grads = (y0 * &rg).unwrap().sum_all().unwrap().backward().unwrap();

        let mut pairs: Vec<(String, Var, Var)> = gvars
            .into_iter()
            .zip(fvars)
            .map(|((k, g), (_, f))| (k, g, f))
            .collect();
        pairs.push(("<input>".into(), xg.clone(), xf.clone()));
        let mut worst = (0.0f64, String::from("(all within the rounding allowance)"));
        for (key, gvar, fvar) in &pairs {
            let g = grads
                .get(gvar.as_tensor())
                .unwrap_or_else(|| panic!("{name}: no gradient reaches `{key}`"));
            let g = flat(g);
            let scale = g.iter().fold(0.0f64, |m, v| m.max(v.abs()));
            assert!(
                scale > 0.0 || self.zero_by_construction.contains(&key.as_str()),
                "{name}: the gradient of `{key}` is all zero"
            );
            let values = flat(fvar.as_tensor());
            let n = values.len();
            let picks: Vec<usize> = (0..self.per_tensor.min(n))
                .map(|i| (i * 7919 + (rng.0.next_u64() % n as u64) as usize) % n)
                .collect();
            for idx in picks {
                set_elem(fvar, &values, idx, values[idx] + h);
                let up = loss(xf.as_tensor());
                set_elem(fvar, &values, idx, values[idx] - h);
                let down = loss(xf.as_tensor());
                set_elem(fvar, &values, idx, values[idx]);
                let fd = (up - down) / (2.0 * h);
                let denom = fd.abs().max(g[idx].abs()).max(scale * floor);
                let err = ((fd - g[idx]).abs() - noise).max(0.0) / denom;
                if verbose && err > self.rtol {
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
            worst.0 <= self.rtol,
            "{name}: gradient mismatch {:.3e} > {:.0e} at {}",
            worst.0,
            self.rtol,
            worst.1
        );
    }
}

/// A check of a layer against itself in f64.
fn check(
    name: &str,
    map: &VarMap,
    x_shape: &[usize],
    f: &Forward,
    h: f64,
    rtol: f64,
    per_tensor: usize,
) {
    let eps = if rtol < 1e-4 {
        f64::EPSILON
    } else {
        f32::EPSILON as f64
    };
    Check {
        name: name.into(),
        grad: (map, f),
        fd: (map, f),
        x_shape,
        h,
        rtol,
        eps,
        per_tensor,
        zero_by_construction: &[],
    }
    .run();
}

fn vb(map: &VarMap) -> VarBuilder<'static> {
    vb_in(map, DType::F64)
}

fn vb_in(map: &VarMap, dtype: DType) -> VarBuilder<'static> {
    VarBuilder::from_varmap(map, dtype, &Device::Cpu)
}

/// f64 layers are checked against themselves (h = 1e-5, rtol 1e-6); f32 layers, the training
/// dtype, against their f64 twin with the same weights (h = 1e-4, rtol 1e-3: f32 backward
/// rounding). A wrong gradient is off by O(1) in either.
fn check_twin<M>(
    name: &str,
    dtype: DType,
    x_shape: &[usize],
    build: impl Fn(VarBuilder) -> M,
    f: impl Fn(&M, &Tensor) -> adiff_core::Result<Tensor>,
) {
    let map = VarMap::new();
    let m = build(vb_in(&map, dtype));
    let fwd = |x: &Tensor| f(&m, x);
    if dtype == DType::F64 {
        return check(name, &map, x_shape, &fwd, 1e-5, 1e-6, 8);
    }
    let map64 = VarMap::new();
    let m64 = build(vb_in(&map64, DType::F64));
    let fwd64 = |x: &Tensor| f(&m64, x);
    let (h, rtol, eps) = (1e-4, 1e-3, f64::EPSILON);
    Check {
        name: name.into(),
        grad: (&map, &fwd),
        fd: (&map64, &fwd64),
        x_shape,
        h,
        rtol,
        eps,
        per_tensor: 8,
        zero_by_construction: &[],
    }
    .run();
}

fn check_conv1d(dtype: DType) {
    // (in, out, length, kernel, stride, padding): the UNet's 3-tap, downsampling and 1x1 shapes,
    // on long and on very short sequences (the deep levels of a small UNet).
    let shapes = [
        (3usize, 4usize, 16usize, 3usize, 1usize, 1usize),
        (3, 4, 16, 8, 4, 2),
        (3, 4, 16, 1, 1, 0),
        (3, 4, 16, 5, 2, 2),
        (32, 32, 4, 3, 1, 1),
        (16, 32, 12, 7, 3, 3),
        (32, 32, 2, 1, 1, 0),
    ];
    for (cin, cout, len, k, stride, pad) in shapes {
        let name = format!("conv1d {dtype:?} {cin}->{cout} T{len} k{k} s{stride} p{pad}");
        let build = |vb: VarBuilder| Conv1d::new(cin, cout, k, stride, pad, vb).unwrap();
        check_twin(&name, dtype, &[2, cin, len], build, |c: &Conv1d, x| {
            c.forward(x)
        });
    }
}

#[test]
fn conv1d_padded_strided_and_1x1_f64() {
    check_conv1d(DType::F64);
}

#[test]
fn conv1d_padded_strided_and_1x1_f32() {
    check_conv1d(DType::F32);
}

fn check_conv_transpose1d(dtype: DType) {
    // The UNet's upsampler: kernel 2f, stride f, padding f/2 + f%2, output_padding f%2.
    for f in [1usize, 2, 3, 4] {
        let (p, op) = (f / 2 + f % 2, f % 2);
        let name = format!("conv_transpose1d {dtype:?} factor {f} (output_padding {op})");
        let build = |vb: VarBuilder| ConvTranspose1d::new(3, 2, 2 * f, f, p, op, vb).unwrap();
        check_twin(&name, dtype, &[2, 3, 7], build, |c: &ConvTranspose1d, x| {
            c.forward(x)
        });
    }
}

#[test]
fn transposed_conv1d_even_and_odd_factors_with_output_padding_f64() {
    check_conv_transpose1d(DType::F64);
}

#[test]
fn transposed_conv1d_even_and_odd_factors_with_output_padding_f32() {
    check_conv_transpose1d(DType::F32);
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

/// The UNet in f64 against itself, or in f32 (the training dtype) against its f64 twin. Its group
/// norms and softmax compute in f32 on purpose, so both use h = 1e-2, rtol 1e-2 and an f32
/// rounding allowance.
fn check_unet(dtype: DType) {
    let cfg = small_unet_config();
    let mut rng = Rng(SeededNoise::new(5));
    let features = rng.tensor_in(&[2, 4], dtype).to_dtype(DType::F64).unwrap();
    let context = rng
        .tensor_in(&[2, 1, 96], dtype)
        .to_dtype(DType::F64)
        .unwrap();
    let time = Tensor::new(&[0.3f64, 0.8], &Device::Cpu).unwrap();
    let inputs_in = |dt: DType| NetInputs {
        features: Some(features.to_dtype(dt).unwrap()),
        channels_list: vec![context.to_dtype(dt).unwrap()],
        ..NetInputs::none()
    };
    let (map, map64) = (VarMap::new(), VarMap::new());
    let unet = UNet1d::new(&cfg, vb_in(&map, dtype)).unwrap();
    let unet64 = UNet1d::new(&cfg, vb_in(&map64, DType::F64)).unwrap();
    // candle's init draws are unseeded: redraw every weight from a seeded generator at the scale
    // its init gave it (constants such as norm gains stay), so the test is the same on every run.
    let mut wrng = Rng(SeededNoise::new(17));
    for (_, v) in sorted(&map) {
        let vals = flat(v.as_tensor());
        // The init's bound (PyTorch's 1/sqrt(fan_in)), read off the draw and rounded to 2 digits.
        let bound = vals.iter().fold(0.0f64, |m, x| m.max(x.abs()));
        let bound: f64 = format!("{bound:.1e}").parse().unwrap_or(bound);
        let spread = vals.iter().fold(0.0f64, |m, x| m.max((x - vals[0]).abs()));
        if spread > 0.0 {
            let u = wrng.tensor_in(v.dims(), DType::F64).tanh().unwrap() * bound;
            v.set(&u.unwrap().to_dtype(dtype).unwrap()).unwrap();
        }
    }
    let (inputs, inputs64) = (inputs_in(dtype), inputs_in(DType::F64));
    let (t, t64) = (time.to_dtype(dtype).unwrap(), time.clone());
    let fwd = |x: &Tensor| unet.forward(x, Some(&t), &inputs);
    let fwd64 = |x: &Tensor| unet64.forward(x, Some(&t64), &inputs64);
    let name = format!("UNet1d {dtype:?}");
    let (h, rtol, eps) = (1e-2, 1e-2, f32::EPSILON as f64);
    let h: f64 = std::env::var("ADIFF_GRAD_H")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(h);
    let x_shape = [2usize, 1, 96];
    Check {
        name,
        grad: (&map, &fwd),
        fd: (&map64, &fwd64),
        x_shape: &x_shape,
        h,
        rtol,
        eps,
        per_tensor: 2,
        zero_by_construction: &["to_out.module_list.0.block.block1.project.bias"],
    }
    .run();
}

#[test]
fn whole_small_unet_f64() {
    check_unet(DType::F64);
}

#[test]
fn whole_small_unet_f32_the_training_dtype() {
    check_unet(DType::F32);
}
