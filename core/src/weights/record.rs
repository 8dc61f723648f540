//! A VarBuilder backend that only records the names and shapes a model asks for, handing out
//! zero-stride tensors so nothing of the model's size is allocated.

use crate::Result;
use candle_core::{DType, Device, Shape, Tensor};
use candle_nn::var_builder::SimpleBackend;
use candle_nn::{Init, VarBuilder};
use std::sync::{Arc, Mutex};

#[derive(Default)]
struct Recorder {
    seen: Mutex<Vec<(String, Vec<usize>)>>,
}

struct RecordBackend(Arc<Recorder>);

impl SimpleBackend for RecordBackend {
    fn get(
        &self,
        s: Shape,
        name: &str,
        _: Init,
        dtype: DType,
        dev: &Device,
    ) -> candle_core::Result<Tensor> {
        if let Ok(mut seen) = self.0.seen.lock() {
            seen.push((name.to_string(), s.dims().to_vec()));
        }
        Tensor::zeros((), dtype, dev)?.broadcast_as(s)
    }

    fn get_unchecked(&self, name: &str, _: DType, _: &Device) -> candle_core::Result<Tensor> {
        candle_core::bail!("shape recorder: `{name}` was asked for without a shape")
    }

    fn contains_tensor(&self, _: &str) -> bool {
        true
    }
}

/// Runs `build` on a recording VarBuilder (f32, CPU) and returns every `(name, shape)` it asked
/// for, in order. Models must not compute on their weights while being built.
pub fn record_shapes<T>(
    build: impl FnOnce(VarBuilder) -> Result<T>,
) -> Result<Vec<(String, Vec<usize>)>> {
    let recorder = Arc::new(Recorder::default());
    let vb = VarBuilder::from_backend(
        Box::new(RecordBackend(recorder.clone())),
        DType::F32,
        Device::Cpu,
    );
    build(vb)?;
    let seen = recorder.seen.lock().map(|s| s.clone()).unwrap_or_default();
    Ok(seen)
}
