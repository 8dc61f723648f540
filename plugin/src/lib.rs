//! adiff-plugin: thin CLAP and VST3 adapters over [`adiff_engine`]. All FFI and `unsafe` live here.

pub use adiff_engine;
