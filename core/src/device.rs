//! One place picks the compute device: the CPU, or a CUDA GPU when built with the `cuda` feature.

use crate::{Error, Result};
use candle_core::Device;

/// Parses `cpu`, `cuda` or `cuda:N` into a device. `cuda` without the `cuda` feature is an error.
pub fn parse_device(name: &str) -> Result<Device> {
    match name {
        "cpu" => Ok(Device::Cpu),
        other => {
            let ordinal = match other.strip_prefix("cuda") {
                Some("") => 0,
                Some(rest) => rest
                    .strip_prefix(':')
                    .and_then(|n| n.parse::<usize>().ok())
                    .ok_or_else(|| {
                        Error::input("device", format!("`{other}` is not cpu, cuda or cuda:N"))
                    })?,
                None => {
                    return Err(Error::input(
                        "device",
                        format!("`{other}` is not cpu, cuda or cuda:N"),
                    ))
                }
            };
            if !candle_core::utils::cuda_is_available() {
                return Err(Error::Unsupported(format!(
                    "device `{other}`: this build has no CUDA support (rebuild with `--features cuda`)"
                )));
            }
            Ok(Device::new_cuda(ordinal)?)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_parses_and_garbage_is_refused() {
        assert!(parse_device("cpu").unwrap().is_cpu());
        assert!(matches!(
            parse_device("tpu"),
            Err(Error::InvalidInput { .. })
        ));
        assert!(matches!(
            parse_device("cuda:x"),
            Err(Error::InvalidInput { .. })
        ));
    }

    #[cfg(not(feature = "cuda"))]
    #[test]
    fn cuda_without_feature_is_unsupported() {
        assert!(matches!(parse_device("cuda"), Err(Error::Unsupported(_))));
    }
}
