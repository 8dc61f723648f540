//! The `adiff` commands, one file each; each is a thin layer over `adiff_core`.

pub mod audio;
pub mod common;
pub mod r#continue;
pub mod convert;
pub mod decode;
pub mod demo;
pub mod encode;
pub mod eval;
pub mod generate;
pub mod info;
pub mod inpaint;
pub mod speed;
pub mod upsample;
pub mod vary;
