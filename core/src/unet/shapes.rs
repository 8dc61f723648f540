//! Parameter shapes and counts of a UNet1d config without allocating its weights
//! (docs/reference.md §2.1, §2.5).

use crate::unet::{UNet1d, UNet1dConfig};
use crate::weights::record_shapes;
use crate::Result;

/// Every weight the config asks for, in the reference's `state_dict()` order, with its shape.
pub fn state_dict_shapes(cfg: &UNet1dConfig) -> Result<Vec<(String, Vec<usize>)>> {
    record_shapes(|vb| UNet1d::new(cfg, vb))
}

/// The number of parameters (106,196,500 for the default one-channel UNet).
pub fn parameter_count(cfg: &UNet1dConfig) -> Result<usize> {
    Ok(state_dict_shapes(cfg)?
        .iter()
        .map(|(_, s)| s.iter().product::<usize>())
        .sum())
}
