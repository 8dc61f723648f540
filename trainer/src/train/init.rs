//! Seeded parameter initialisation: a VarBuilder backend over a `VarMap` that draws each new
//! variable's initial values (the `Init` hint the model asks for: PyTorch-default uniform,
//! constants, normals) from the portable [`SeededNoise`] instead of candle's unseedable CPU
//! generator, so the same seed gives the same initial weights on every machine.

use adiff_core::SeededNoise;
use candle_core::{DType, Device, Shape, Tensor, Var};
use candle_nn::{init::NormalOrUniform, Init, VarBuilder, VarMap};
use std::sync::Mutex;

/// A `VarMap` that creates missing variables with seeded draws.
pub struct SeededVarMap {
    map: VarMap,
    rng: Mutex<SeededNoise>,
}

impl SeededVarMap {
    /// A backend writing into `map`, drawing from `seed`.
    pub fn new(map: VarMap, seed: u64) -> Self {
        Self {
            map,
            rng: Mutex::new(SeededNoise::new(seed)),
        }
    }

    /// A VarBuilder over `map` whose new variables come from `seed`.
    pub fn var_builder(
        map: &VarMap,
        seed: u64,
        dtype: DType,
        device: &Device,
    ) -> VarBuilder<'static> {
        let backend: Box<dyn candle_nn::var_builder::SimpleBackend> =
            Box::new(Self::new(map.clone(), seed));
        VarBuilder::from_backend(backend, dtype, device.clone())
    }

    fn draw(&self, shape: &Shape, init: Init) -> Vec<f64> {
        let n = shape.elem_count();
        let mut rng = self.rng.lock().unwrap_or_else(|e| e.into_inner());
        let uniform = |rng: &mut SeededNoise, lo: f64, up: f64| {
            (0..n).map(|_| lo + (up - lo) * rng.next_f64()).collect()
        };
        let normal = |rng: &mut SeededNoise, mean: f64, std: f64| {
            (0..n).map(|_| mean + std * rng.next_normal()).collect()
        };
        match init {
            Init::Const(c) => vec![c; n],
            Init::Uniform { lo, up } => uniform(&mut rng, lo, up),
            Init::Randn { mean, stdev } => normal(&mut rng, mean, stdev),
            Init::Kaiming {
                dist,
                fan,
                non_linearity,
            } => {
                let std = non_linearity.gain() / (fan.for_shape(shape) as f64).sqrt();
                match dist {
                    NormalOrUniform::Uniform => {
                        uniform(&mut rng, -(3f64.sqrt()) * std, 3f64.sqrt() * std)
                    }
                    NormalOrUniform::Normal => normal(&mut rng, 0.0, std),
                }
            }
        }
    }
}

impl candle_nn::var_builder::SimpleBackend for SeededVarMap {
    fn get(
        &self,
        s: Shape,
        name: &str,
        h: Init,
        dtype: DType,
        dev: &Device,
    ) -> candle_core::Result<Tensor> {
        let mut data = self.map.data().lock().unwrap_or_else(|e| e.into_inner());
        if let Some(v) = data.get(name) {
            if v.shape() != &s {
                candle_core::bail!("shape mismatch on {name}: {s:?} <> {:?}", v.shape());
            }
            return Ok(v.as_tensor().clone());
        }
        let values = self.draw(&s, h);
        let t = Tensor::from_vec(values, s, dev)?.to_dtype(dtype)?;
        let var = Var::from_tensor(&t)?;
        let out = var.as_tensor().clone();
        data.insert(name.to_string(), var);
        Ok(out)
    }

    fn get_unchecked(
        &self,
        name: &str,
        _dtype: DType,
        _dev: &Device,
    ) -> candle_core::Result<Tensor> {
        let data = self.map.data().lock().unwrap_or_else(|e| e.into_inner());
        data.get(name)
            .map(|v| v.as_tensor().clone())
            .ok_or_else(|| candle_core::Error::CannotFindTensor {
                path: name.to_string(),
            })
    }

    fn contains_tensor(&self, name: &str) -> bool {
        self.map
            .data()
            .lock()
            .map(|d| d.contains_key(name))
            .unwrap_or(false)
    }
}

/// The variables of `map` sorted by name (the fixed order of optimizer state and checkpoints).
pub fn sorted_vars(map: &VarMap) -> Vec<(String, Var)> {
    let data = map.data().lock().unwrap_or_else(|e| e.into_inner());
    let mut v: Vec<(String, Var)> = data.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_weights_and_hints_are_honoured() {
        let d = Device::Cpu;
        let build = |seed| {
            let map = VarMap::new();
            let vb = SeededVarMap::var_builder(&map, seed, DType::F32, &d);
            let w = vb
                .get_with_hints(
                    (64, 16),
                    "w",
                    Init::Uniform {
                        lo: -0.25,
                        up: 0.25,
                    },
                )
                .unwrap();
            let g = vb.get_with_hints(8, "g", Init::Const(1.0)).unwrap();
            (
                w.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
                g.to_vec1::<f32>().unwrap(),
                map,
            )
        };
        let (a, g, map) = build(5);
        let (b, _, _) = build(5);
        let (c, _, _) = build(6);
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert!(a.iter().all(|x| x.abs() <= 0.25));
        assert!(a.iter().any(|x| *x > 0.2) && a.iter().any(|x| *x < -0.2));
        assert_eq!(g, vec![1.0; 8]);
        assert_eq!(
            sorted_vars(&map)
                .iter()
                .map(|(k, _)| k.as_str())
                .collect::<Vec<_>>(),
            vec!["g", "w"]
        );
    }
}
