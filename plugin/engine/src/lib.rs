//! adiff-engine: the framework-agnostic plugin engine under the CLAP and VST3 adapters.
//! It holds no clack or vst3 types and no `unsafe`.
