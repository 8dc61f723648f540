//! Which renderer a plugin instance gets: a model folder of any kind (adiff-core's use-case layer
//! opens it), the in-code sketch model (model path `builtin:sketch`, used by the tests), or, with
//! no model folder set, the embedded default: the shipped upsampler (adiff-core holds its bytes)
//! for Upsample, the sketch model for Generate, Inpaint and Continue (no generator ships).
//! Called on the worker thread at the first render, never while a host scans or instantiates the
//! plugin: the embedded bytes are parsed there.

use adiff_engine::{ModelRenderer, Renderer, RendererFactory, SketchRenderer};
use std::path::Path;

/// The model path that selects the in-code sketch model.
pub const SKETCH_MODEL: &str = "builtin:sketch";

/// The sample rate of the sketch model, Hz.
pub const SKETCH_RATE: f64 = 48_000.0;

/// The embedded default model: the shipped band-extension upsampler, with the sketch model
/// serving Generate, Inpaint and Continue.
pub fn default_renderer() -> adiff_engine::Result<ModelRenderer> {
    ModelRenderer::shipped(Some(Box::new(SketchRenderer::new(SKETCH_RATE))))
}

/// The factory both adapters give the engine.
pub fn factory() -> RendererFactory {
    Box::new(
        |path: Option<&Path>| -> adiff_engine::Result<Box<dyn Renderer>> {
            match path {
                Some(p) if p == Path::new(SKETCH_MODEL) => {
                    Ok(Box::new(SketchRenderer::new(SKETCH_RATE)))
                }
                None => Ok(Box::new(default_renderer()?)),
                Some(p) => Ok(Box::new(ModelRenderer::open(p)?)),
            }
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use adiff_engine::{AudioBuf, RenderSettings, SamplerKind};

    fn upsample(r: &mut dyn Renderer, factor: usize) -> AudioBuf {
        let x: Vec<f32> = (0..6_000).map(|i| (i as f32 * 0.03).sin() * 0.3).collect();
        let clip = AudioBuf::from_channels(x.clone(), x, 48_000.0);
        let s = RenderSettings {
            steps: 1,
            sampler: SamplerKind::Adpm2,
            seed: 11,
            guidance: 1.0,
            factor,
        };
        r.upsample(&clip, &s, &mut |_| true).expect("upsamples")
    }

    #[test]
    fn a_band_extension_folder_loads_as_the_embedded_default_does() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../models/upsampler");
        let f = factory();
        let mut folder = f(Some(&dir)).expect("the folder loads");
        let mut default = f(None).expect("the embedded default loads");
        for k in [2, 4, 8] {
            let a = upsample(folder.as_mut(), k);
            let b = upsample(default.as_mut(), k);
            assert_eq!(a.channel(0), b.channel(0), "x{k}");
            assert_eq!(a.len(), 6_000);
        }
        // The sketch model is still reachable by name, and the default's other modes use it.
        let mut sketch = f(Some(Path::new(SKETCH_MODEL))).expect("sketch");
        assert_eq!(sketch.sample_rate(), SKETCH_RATE);
        assert_eq!(default.sample_rate(), SKETCH_RATE);
        assert_ne!(
            upsample(sketch.as_mut(), 4).channel(0),
            upsample(default.as_mut(), 4).channel(0)
        );
    }
}
