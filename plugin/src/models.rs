//! Which renderer a plugin instance gets: a model folder (adiff-core's models), or the in-code
//! sketch model (model path `builtin:sketch`, used by the tests). With no model folder set, the
//! embedded default is that sketch model: no trained weights ship in `models/` yet. Called on the worker thread at
//! the first render, never while a host scans or instantiates the plugin.

use adiff_engine::core_renderer::CoreRenderer;
use adiff_engine::{Renderer, RendererFactory, SketchRenderer};
use std::path::Path;

/// The model path that selects the in-code sketch model.
pub const SKETCH_MODEL: &str = "builtin:sketch";

/// The sample rate of the sketch model, Hz.
pub const SKETCH_RATE: f64 = 48_000.0;

/// The factory both adapters give the engine.
pub fn factory() -> RendererFactory {
    Box::new(
        |path: Option<&Path>| -> adiff_engine::Result<Box<dyn Renderer>> {
            match path {
                Some(p) if p == Path::new(SKETCH_MODEL) => {
                    Ok(Box::new(SketchRenderer::new(SKETCH_RATE)))
                }
                None => Ok(Box::new(SketchRenderer::new(SKETCH_RATE))),
                Some(p) => Ok(Box::new(CoreRenderer::load(p)?)),
            }
        },
    )
}
