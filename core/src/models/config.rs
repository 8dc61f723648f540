//! The diffusion keyword arguments shared by every model of `model.py` (audio-diffusion-pytorch
//! 0.0.61, reference §4.1-4.2): `diffusion_type`, `diffusion_sigma_distribution`,
//! `diffusion_sigma_data`, `diffusion_dynamic_threshold`, and the check that a JSON config holds no
//! unknown keyword.

use crate::diffusion::{
    Diffusion, Distribution, KDiffusion, LogNormalDistribution, UniformDistribution, VDiffusion,
    VDistribution,
};
use crate::{Compat, Error, Net, Result};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// `diffusion_type`: which objective wraps the network.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum DiffusionType {
    /// `VDiffusion` (the reference default).
    #[default]
    #[serde(rename = "v")]
    V,
    /// `KDiffusion` (needs `diffusion_sigma_data`).
    #[serde(rename = "k")]
    K,
}

/// A training sigma distribution, written like the reference constructor tree
/// (`{"class": "VDistribution", "kwargs": {...}}`; infinity may be written `"inf"`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "class", content = "kwargs")]
pub enum DistributionConfig {
    /// `VDistribution(min_value=0, max_value=inf, sigma_data=1)`.
    VDistribution {
        /// Smallest sigma.
        #[serde(default)]
        min_value: f64,
        /// Largest sigma (`"inf"` allowed).
        #[serde(default = "infinity", with = "float_or_inf")]
        max_value: f64,
        /// Scale of the arctangent law.
        #[serde(default = "one")]
        sigma_data: f64,
    },
    /// `LogNormalDistribution(mean, std)` of `ln σ`.
    LogNormalDistribution {
        /// Mean of `ln σ`.
        mean: f64,
        /// Standard deviation of `ln σ`.
        std: f64,
    },
    /// `UniformDistribution(vmin=0, vmax=1)` (0.0.70).
    UniformDistribution {
        /// Lower end.
        #[serde(default)]
        vmin: f64,
        /// Upper end.
        #[serde(default = "one")]
        vmax: f64,
    },
}

impl Default for DistributionConfig {
    fn default() -> Self {
        Self::VDistribution {
            min_value: 0.0,
            max_value: f64::INFINITY,
            sigma_data: 1.0,
        }
    }
}

impl DistributionConfig {
    /// Fails with [`Error::Config`] on parameters that would make every sigma NaN or out of order
    /// (a non-positive `sigma_data`, `min_value > max_value`, a negative `std`, `vmin > vmax`).
    pub fn validate(&self) -> Result<()> {
        let bad = |field: &str, reason: String| {
            Err(Error::config(
                format!("diffusion_sigma_distribution.{field}"),
                reason,
            ))
        };
        match *self {
            Self::VDistribution {
                min_value,
                max_value,
                sigma_data,
            } => {
                if !(sigma_data > 0.0 && sigma_data.is_finite()) {
                    return bad("sigma_data", format!("must be positive, got {sigma_data}"));
                }
                if !(min_value.is_finite() && min_value <= max_value) {
                    return bad(
                        "min_value",
                        format!(
                            "need a finite min_value <= max_value, got {min_value} and {max_value}"
                        ),
                    );
                }
            }
            Self::LogNormalDistribution { mean, std } => {
                if !(mean.is_finite() && std.is_finite() && std >= 0.0) {
                    return bad(
                        "std",
                        format!("need a finite mean and std >= 0, got {mean} and {std}"),
                    );
                }
            }
            Self::UniformDistribution { vmin, vmax } => {
                if !(vmin.is_finite() && vmax.is_finite() && vmin <= vmax) {
                    return bad(
                        "vmin",
                        format!("need finite vmin <= vmax, got {vmin} and {vmax}"),
                    );
                }
            }
        }
        Ok(())
    }

    /// The distribution; `compat` selects the VDistribution's normal (0.0.61) or uniform base draw.
    pub fn build(&self, compat: Compat) -> Box<dyn Distribution> {
        match *self {
            Self::VDistribution {
                min_value,
                max_value,
                sigma_data,
            } => Box::new(VDistribution {
                min_value,
                max_value,
                sigma_data,
                compat,
            }),
            Self::LogNormalDistribution { mean, std } => {
                Box::new(LogNormalDistribution { mean, std })
            }
            Self::UniformDistribution { vmin, vmax } => {
                Box::new(UniformDistribution { vmin, vmax })
            }
        }
    }
}

fn one() -> f64 {
    1.0
}
fn infinity() -> f64 {
    f64::INFINITY
}

/// Serde for a float that may be written `"inf"` / `"-inf"` (JSON has no infinity).
pub mod float_or_inf {
    use super::*;

    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Repr {
        Number(f64),
        Text(String),
    }

    /// Writes infinities as `"inf"` / `"-inf"`, other values as numbers.
    pub fn serialize<S: Serializer>(v: &f64, s: S) -> std::result::Result<S::Ok, S::Error> {
        match *v {
            f64::INFINITY => s.serialize_str("inf"),
            f64::NEG_INFINITY => s.serialize_str("-inf"),
            v => s.serialize_f64(v),
        }
    }

    /// Reads a number, `"inf"` or `"-inf"`.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<f64, D::Error> {
        match Repr::deserialize(d)? {
            Repr::Number(v) => Ok(v),
            Repr::Text(t) if t == "inf" || t == "infinity" => Ok(f64::INFINITY),
            Repr::Text(t) if t == "-inf" || t == "-infinity" => Ok(f64::NEG_INFINITY),
            Repr::Text(t) => Err(serde::de::Error::custom(format!(
                "expected a number or \"inf\", got {t:?}"
            ))),
        }
    }
}

/// The `diffusion_*` keyword arguments of `Model1d` (prefix kept, as in the reference kwargs).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct DiffusionConfig {
    /// `"v"` or `"k"`.
    pub diffusion_type: DiffusionType,
    /// Training sigma distribution (default `VDistribution()`).
    pub diffusion_sigma_distribution: DistributionConfig,
    /// KDiffusion's σ_data (required for `"k"`; the README uses 0.1).
    pub diffusion_sigma_data: Option<f64>,
    /// KDiffusion's dynamic thresholding quantile (0 = clamp to [-1, 1]).
    pub diffusion_dynamic_threshold: f64,
}

impl Default for DiffusionConfig {
    /// The reference model defaults: `diffusion_type="v"`, `VDistribution()`.
    fn default() -> Self {
        Self {
            diffusion_type: DiffusionType::V,
            diffusion_sigma_distribution: DistributionConfig::default(),
            diffusion_sigma_data: None,
            diffusion_dynamic_threshold: 0.0,
        }
    }
}

/// The objective of a model, owning its network (`diffusion.net`, the same module as `unet`).
#[derive(Debug)]
pub enum Objective<N> {
    /// `VDiffusion(net, sigma_distribution)`.
    V(VDiffusion<N>),
    /// `KDiffusion(net, sigma_distribution, sigma_data, dynamic_threshold)`.
    K(KDiffusion<N>),
}

impl<N: Net> Objective<N> {
    /// Wraps `net` as `cfg` says.
    pub fn new(net: N, cfg: &DiffusionConfig, compat: Compat) -> Result<Self> {
        cfg.diffusion_sigma_distribution.validate()?;
        let dist = cfg.diffusion_sigma_distribution.build(compat);
        Ok(match cfg.diffusion_type {
            DiffusionType::V => Self::V(VDiffusion::new(net, dist, compat)),
            DiffusionType::K => {
                let sigma_data =
                    cfg.diffusion_sigma_data
                        .filter(|s| *s > 0.0)
                        .ok_or_else(|| {
                            Error::config(
                                "diffusion_sigma_data",
                                "KDiffusion needs a positive sigma_data",
                            )
                        })?;
                // A quantile, like `clip`'s: q = 1 is the largest |x̂| (torch.quantile accepts it).
                if !(0.0..=1.0).contains(&cfg.diffusion_dynamic_threshold) {
                    return Err(Error::config(
                        "diffusion_dynamic_threshold",
                        format!(
                            "must be a quantile in [0, 1], got {}",
                            cfg.diffusion_dynamic_threshold
                        ),
                    ));
                }
                Self::K(KDiffusion::new(
                    net,
                    dist,
                    sigma_data,
                    cfg.diffusion_dynamic_threshold,
                ))
            }
        })
    }

    /// The objective as the samplers and losses see it.
    pub fn as_diffusion(&self) -> &dyn Diffusion {
        match self {
            Self::V(d) => d,
            Self::K(d) => d,
        }
    }

    /// The network.
    pub fn net(&self) -> &N {
        match self {
            Self::V(d) => &d.net,
            Self::K(d) => &d.net,
        }
    }
}

/// Fails with [`Error::Config`] naming the first key of `kwargs` that is not a field of `known`
/// (the serialised full config), so that a typo in a config is not silently ignored.
pub fn check_known_keys(
    kwargs: &serde_json::Value,
    known: &serde_json::Value,
    what: &str,
) -> Result<()> {
    let (Some(given), Some(known)) = (kwargs.as_object(), known.as_object()) else {
        return Err(Error::config(
            what,
            "must be an object of keyword arguments",
        ));
    };
    match given.keys().find(|k| !known.contains_key(*k)) {
        Some(k) => Err(Error::config(
            format!("{what}.{k}"),
            "unknown keyword argument",
        )),
        None => Ok(()),
    }
}

/// Parses a model config from reference keyword arguments, rejecting unknown keys.
pub fn from_kwargs<T: Serialize + serde::de::DeserializeOwned>(
    kwargs: &serde_json::Value,
    what: &str,
) -> Result<T> {
    let cfg: T = serde_path_to_error::deserialize(kwargs.clone()).map_err(|e| {
        let path = e.path().to_string();
        let path = if path == "." {
            flattened_field(kwargs)
        } else {
            path
        };
        Error::Json {
            what: named_field(what, &path),
            reason: e.into_inner(),
        }
    })?;
    let known = serde_json::to_value(&cfg).map_err(|source| Error::Json {
        what: what.to_string(),
        reason: source,
    })?;
    check_known_keys(kwargs, &known, what)?;
    Ok(cfg)
}

/// `what` with the JSON path of the failing field appended (`what`, then `` `a.b` ``), unless
/// the failure is at the top level.
pub fn named_field(what: &str, path: &str) -> String {
    if path == "." || path.is_empty() {
        what.to_string()
    } else {
        format!("{what} field `{path}`")
    }
}

/// The field a flattened config failed on (serde loses the path through `#[serde(flatten)]`): the
/// first failing field of the UNet or diffusion part, or `.` when neither fails alone.
fn flattened_field(kwargs: &serde_json::Value) -> String {
    let unet = serde_path_to_error::deserialize::<_, crate::unet::UNet1dConfig>(kwargs.clone());
    let diffusion = serde_path_to_error::deserialize::<_, DiffusionConfig>(kwargs.clone());
    match (unet, diffusion) {
        (Err(e), _) => e.path().to_string(),
        (_, Err(e)) => e.path().to_string(),
        _ => ".".into(),
    }
}
