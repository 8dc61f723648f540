//! adiff-plugin: thin CLAP and VST3 adapters over [`adiff_engine`]. All FFI and `unsafe` live here
//! (`denormals`, and the VST3 COM adapter; the CLAP adapter is safe code on clack).

pub mod clap;
pub mod denormals;
pub mod models;
pub mod vst3;

pub use adiff_engine;

clack_plugin::clack_export_entry!(clack_plugin::entry::SinglePluginEntry<clap::AdiffClap>);
