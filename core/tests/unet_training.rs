//! A VarMap-backed UNet is trainable: PyTorch default initialisation (docs/reference.md §1.14) and
//! gradients reaching every parameter (including the transposed-conv upsamplers and the attention
//! blocks).

use adiff_core::unet::{UNet1d, UNet1dConfig};
use adiff_core::NetInputs;
use candle_core::{DType, Device, Tensor};
use candle_nn::{VarBuilder, VarMap};

fn config() -> UNet1dConfig {
    UNet1dConfig {
        channels: 32,
        patch_factor: 2,
        multipliers: vec![1, 1, 2],
        factors: vec![2, 3],
        num_blocks: vec![1, 1],
        attentions: vec![0, 1, 1],
        attention_heads: 2,
        attention_features: 4,
        resnet_groups: 4,
        context_features: Some(3),
        ..UNet1dConfig::default_model(1)
    }
}

#[test]
fn initialisation_follows_pytorch_defaults() {
    let varmap = VarMap::new();
    UNet1d::new(
        &config(),
        VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu),
    )
    .unwrap();
    let data = varmap.data().lock().unwrap();
    let values = |k: &str| {
        data[k]
            .as_tensor()
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap()
    };
    // Conv1d [out, in, k]: U(+-1/sqrt(in*k)); the bias uses the same bound.
    let w = values("downsamples.0.downsample.weight"); // [32, 32, 5]
    let bound = 1.0 / ((32 * 5) as f32).sqrt();
    assert!(w.iter().all(|v| v.abs() <= bound));
    assert!(
        w.iter().map(|v| v.abs()).fold(0f32, f32::max) > 0.9 * bound,
        "uniform over the whole range"
    );
    // ConvTranspose1d [in, out, k]: fan_in = out * k.
    let wt = values("upsamples.0.upsample.weight"); // [64, 32, 6]
    let bound_t = 1.0 / ((32 * 6) as f32).sqrt();
    assert!(wt.iter().all(|v| v.abs() <= bound_t) && wt.iter().any(|v| v.abs() > 0.9 * bound_t));
    assert!(values("downsamples.0.blocks.0.block1.groupnorm.weight")
        .iter()
        .all(|&v| v == 1.0));
    assert!(
        values("bottleneck.transformer.blocks.0.attention.norm.bias")
            .iter()
            .all(|&v| v == 0.0)
    );
    let freqs = values("to_time.0.0.weights");
    let var = freqs.iter().map(|v| v * v).sum::<f32>() / freqs.len() as f32;
    assert!(
        var > 0.3 && var < 3.0,
        "N(0,1) frequencies, got variance {var}"
    );
}

#[test]
fn gradients_reach_every_parameter() {
    let d = Device::Cpu;
    let varmap = VarMap::new();
    let net = UNet1d::new(&config(), VarBuilder::from_varmap(&varmap, DType::F32, &d)).unwrap();
    let x = Tensor::arange(0f32, 2.0 * 24.0, &d)
        .unwrap()
        .affine(0.3, 0.0)
        .unwrap()
        .sin()
        .unwrap()
        .reshape((2, 1, 24))
        .unwrap();
    let t = Tensor::new(&[0.1f32, 0.9], &d).unwrap();
    let inputs = NetInputs {
        features: Some(Tensor::ones((2, 3), DType::F32, &d).unwrap()),
        ..NetInputs::none()
    };
    let y = net.forward(&x, Some(&t), &inputs).unwrap();
    let loss = (y - &x).unwrap().sqr().unwrap().mean_all().unwrap();
    let grads = loss.backward().unwrap();
    let data = varmap.data().lock().unwrap();
    let mut missing = Vec::new();
    // The last resnet maps to one channel whose block2 GroupNorm has one channel per group, so
    // block1's bias is subtracted out again: its gradient is zero up to rounding (mathematically).
    let cancelled = "to_out.module_list.0.block.block1.project.bias";
    for (name, var) in data.iter() {
        match grads.get(var.as_tensor()) {
            Some(_) if name == cancelled => {}
            Some(g)
                if g.abs()
                    .unwrap()
                    .sum_all()
                    .unwrap()
                    .to_scalar::<f32>()
                    .unwrap()
                    > 0.0 => {}
            _ => missing.push(name.clone()),
        }
    }
    assert!(missing.is_empty(), "no gradient for {missing:?}");
}
