//! Samplers by name, for configuration files, the command line and the plugin (not in the
//! reference, which passes sampler objects).

use super::{
    ADPM2Sampler, AEulerSampler, DpmPp2MSampler, EulerSampler, HeunSampler, KarrasSampler, Sampler,
    VSampler,
};
use crate::{Compat, Error};
use serde::{Deserialize, Serialize};

/// Every sampler, with its default parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SamplerKind {
    /// [`AEulerSampler`] (the reference models' default).
    #[default]
    AEuler,
    /// [`ADPM2Sampler`] with ρ = 1.
    Adpm2,
    /// [`KarrasSampler`] without churn.
    Karras,
    /// [`EulerSampler`].
    Euler,
    /// [`HeunSampler`] without churn.
    Heun,
    /// [`DpmPp2MSampler`].
    #[serde(rename = "dpmpp-2m")]
    DpmPp2M,
    /// [`VSampler`].
    V,
}

impl SamplerKind {
    /// All kinds with their names.
    pub const ALL: [(&'static str, SamplerKind); 7] = [
        ("a-euler", SamplerKind::AEuler),
        ("adpm2", SamplerKind::Adpm2),
        ("karras", SamplerKind::Karras),
        ("euler", SamplerKind::Euler),
        ("heun", SamplerKind::Heun),
        ("dpmpp-2m", SamplerKind::DpmPp2M),
        ("v", SamplerKind::V),
    ];

    /// The sampler, with the reference samplers in `compat` mode.
    pub fn build(self, compat: Compat) -> Box<dyn Sampler> {
        match self {
            SamplerKind::AEuler => Box::new(AEulerSampler { compat }),
            SamplerKind::Adpm2 => Box::new(ADPM2Sampler { rho: 1.0, compat }),
            SamplerKind::Karras => Box::new(KarrasSampler {
                params: HeunSampler::default(),
                compat,
            }),
            SamplerKind::Euler => Box::new(EulerSampler),
            SamplerKind::Heun => Box::new(HeunSampler::default()),
            SamplerKind::DpmPp2M => Box::new(DpmPp2MSampler),
            SamplerKind::V => Box::new(VSampler),
        }
    }

    /// The name (as in configuration files).
    pub fn name(self) -> &'static str {
        Self::ALL
            .iter()
            .find(|(_, k)| *k == self)
            .map(|(n, _)| *n)
            .unwrap_or("?")
    }
}

impl std::str::FromStr for SamplerKind {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        Self::ALL
            .iter()
            .find(|(n, _)| *n == s)
            .map(|(_, k)| *k)
            .ok_or_else(|| {
                let names: Vec<&str> = Self::ALL.iter().map(|(n, _)| *n).collect();
                Error::config(
                    "sampler",
                    format!(
                        "unknown sampler `{s}`, expected one of {}",
                        names.join(", ")
                    ),
                )
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_through_str_and_serde() {
        for (name, kind) in SamplerKind::ALL {
            assert_eq!(name.parse::<SamplerKind>().unwrap(), kind);
            assert_eq!(kind.name(), name);
            assert_eq!(serde_json::to_string(&kind).unwrap(), format!("\"{name}\""));
        }
        assert!(matches!(
            "ddpm".parse::<SamplerKind>(),
            Err(Error::Config { .. })
        ));
    }
}
