//! The samplers by name: the one list of sampler names that configuration files, the command line
//! and the plugin use (the reference passes sampler objects; `config.json` keeps its constructor
//! tree, [`crate::models::folder::SamplerSetting`], whose class maps onto a kind here).

use super::{
    ADPM2Sampler, AEulerSampler, DpmPp2MSampler, EulerSampler, HeunSampler, KarrasSampler, Sampler,
    VSampler,
};
use crate::{Compat, Error};
use serde::{Deserialize, Serialize};

/// Every sampler. The order is the plugin's `sampler` parameter order (saved projects store the
/// index), so new samplers go at the end.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SamplerKind {
    /// [`ADPM2Sampler`]: ancestral DPM2, two network calls a step; the only sampler with RePaint
    /// inpainting (`inpaint`, `continue`), as in the reference.
    Adpm2,
    /// [`AEulerSampler`]: ancestral Euler (the reference default).
    Aeuler,
    /// [`KarrasSampler`]: Karras' stochastic Heun sampler (deterministic without churn).
    Karras,
    /// [`HeunSampler`]: Heun's second-order method (deterministic).
    Heun,
    /// [`EulerSampler`]: Euler's first-order method (deterministic).
    Euler,
    /// [`DpmPp2MSampler`]: DPM-Solver++(2M) (deterministic, one call a step).
    Dpmpp2m,
    /// [`VSampler`]: the v-objective DDIM sampler.
    V,
}

impl SamplerKind {
    /// Every kind, in parameter order.
    pub const ALL: [SamplerKind; 7] = [
        SamplerKind::Adpm2,
        SamplerKind::Aeuler,
        SamplerKind::Karras,
        SamplerKind::Heun,
        SamplerKind::Euler,
        SamplerKind::Dpmpp2m,
        SamplerKind::V,
    ];

    /// The names, in the order of [`SamplerKind::ALL`]: the one list of sampler names (command
    /// line, plugin, messages).
    pub const NAMES: [&'static str; 7] =
        ["adpm2", "aeuler", "karras", "heun", "euler", "dpmpp2m", "v"];

    /// The name (command line, plugin).
    pub fn name(self) -> &'static str {
        Self::NAMES[self as usize]
    }

    /// The kind at `index` of [`SamplerKind::ALL`] (the plugin's parameter value), if any.
    pub fn from_index(index: usize) -> Option<Self> {
        Self::ALL.get(index).copied()
    }

    /// One line on what it is (help texts).
    pub fn about(self) -> &'static str {
        match self {
            SamplerKind::Adpm2 => "ancestral DPM2, two network calls a step; inpaints",
            SamplerKind::Aeuler => "ancestral Euler, the reference default",
            SamplerKind::Karras => "Karras' stochastic Heun (deterministic without churn)",
            SamplerKind::Heun => "Heun's second-order method (deterministic)",
            SamplerKind::Euler => "Euler's first-order method (deterministic)",
            SamplerKind::Dpmpp2m => "DPM-Solver++(2M), deterministic, one call a step",
            SamplerKind::V => "v-objective DDIM",
        }
    }

    /// Whether it can inpaint (RePaint), which `inpaint` and `continue` need.
    pub fn inpaints(self) -> bool {
        self == SamplerKind::Adpm2
    }

    /// Every name, comma-separated (for messages).
    pub fn names() -> String {
        Self::ALL.map(Self::name).join(", ")
    }

    /// The sampler with its default parameters, the reference samplers in `compat` mode.
    pub fn build(self, compat: Compat) -> Box<dyn Sampler> {
        match self {
            SamplerKind::Aeuler => Box::new(AEulerSampler { compat }),
            SamplerKind::Adpm2 => Box::new(ADPM2Sampler { rho: 1.0, compat }),
            SamplerKind::Karras => Box::new(KarrasSampler {
                params: HeunSampler::default(),
                compat,
            }),
            SamplerKind::Euler => Box::new(EulerSampler),
            SamplerKind::Heun => Box::new(HeunSampler::default()),
            SamplerKind::Dpmpp2m => Box::new(DpmPp2MSampler),
            SamplerKind::V => Box::new(VSampler),
        }
    }
}

impl std::fmt::Display for SamplerKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for SamplerKind {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        Self::ALL
            .into_iter()
            .find(|k| k.name() == s)
            .ok_or_else(|| {
                Error::config(
                    "sampler",
                    format!("unknown sampler `{s}`, expected one of {}", Self::names()),
                )
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_through_str_and_serde() {
        for (i, kind) in SamplerKind::ALL.into_iter().enumerate() {
            assert_eq!(kind as usize, i);
            assert_eq!(SamplerKind::from_index(i), Some(kind));
            let name = kind.name();
            assert_eq!(name.parse::<SamplerKind>().unwrap(), kind);
            assert_eq!(serde_json::to_string(&kind).unwrap(), format!("\"{name}\""));
        }
        assert!(matches!(
            "ddpm".parse::<SamplerKind>(),
            Err(Error::Config { .. })
        ));
        // The plugin's saved projects index this order: the first three stay put.
        assert_eq!(
            SamplerKind::ALL[..3],
            [SamplerKind::Adpm2, SamplerKind::Aeuler, SamplerKind::Karras]
        );
    }
}
