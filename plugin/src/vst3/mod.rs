//! VST3 adapter over [`adiff_engine`] on the `vst3` crate's COM interfaces (work in progress: VST3 engineer).
