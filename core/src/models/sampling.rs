//! The sampling settings of the `AudioDiffusion*` classes (`get_default_sampling_kwargs`,
//! audio-diffusion-pytorch 0.0.61, reference §4.2): a sigma schedule, a sampler and a step count,
//! built from a model folder's settings or the reference defaults (Karras(1e-4, 3, 9) + AEuler).

use super::folder::{SamplerSetting, SamplingDefaults, ScheduleSetting};
use crate::sampler::{ADPM2Sampler, AEulerSampler, HeunSampler, KarrasSampler, Sampler};
use crate::schedule::{KarrasSchedule, Schedule};
use crate::{Compat, Error, Result};

/// What `sample` / `decode` run: `num_steps` sigmas of `schedule`, walked by `sampler`.
pub struct Sampling {
    /// The reference's `num_steps` (schedule length without the trailing 0).
    pub num_steps: usize,
    /// The sampler.
    pub sampler: Box<dyn Sampler>,
    /// The sigma schedule.
    pub schedule: Box<dyn Schedule>,
}

impl std::fmt::Debug for Sampling {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sampling")
            .field("num_steps", &self.num_steps)
            .finish_non_exhaustive()
    }
}

impl Sampling {
    /// The reference defaults: `KarrasSchedule(1e-4, 3.0, 9.0)` and `AEulerSampler()`.
    pub fn reference_defaults(num_steps: usize, compat: Compat) -> Self {
        Self {
            num_steps,
            sampler: Box::new(AEulerSampler { compat }),
            schedule: Box::new(KarrasSchedule {
                sigma_min: 1e-4,
                sigma_max: 3.0,
                rho: 9.0,
                compat,
            }),
        }
    }

    /// The settings stored in a model folder.
    pub fn from_settings(s: &SamplingDefaults, compat: Compat) -> Result<Self> {
        Ok(Self {
            num_steps: s.num_steps,
            sampler: sampler_from(&s.sampler, compat)?,
            schedule: schedule_from(&s.sigma_schedule, compat)?,
        })
    }
}

/// The sampler a setting names.
pub fn sampler_from(s: &SamplerSetting, compat: Compat) -> Result<Box<dyn Sampler>> {
    Ok(match *s {
        SamplerSetting::AEulerSampler {} => Box::new(AEulerSampler { compat }),
        SamplerSetting::ADPM2Sampler { rho } => {
            if rho.is_nan() || rho <= 0.0 {
                return Err(Error::config("sampler.rho", "must be positive"));
            }
            Box::new(ADPM2Sampler { rho, compat })
        }
        SamplerSetting::KarrasSampler {
            s_tmin,
            s_tmax,
            s_churn,
            s_noise,
        } => Box::new(KarrasSampler {
            params: HeunSampler {
                s_tmin,
                s_tmax,
                s_churn,
                s_noise,
            },
            compat,
        }),
    })
}

/// The schedule a setting names.
pub fn schedule_from(s: &ScheduleSetting, compat: Compat) -> Result<Box<dyn Schedule>> {
    Ok(match *s {
        ScheduleSetting::KarrasSchedule {
            sigma_min,
            sigma_max,
            rho,
        } => {
            if !(sigma_min > 0.0 && sigma_max >= sigma_min && rho > 0.0) {
                return Err(Error::config(
                    "sigma_schedule",
                    format!("need 0 < sigma_min <= sigma_max and rho > 0, got {sigma_min}, {sigma_max}, {rho}"),
                ));
            }
            Box::new(KarrasSchedule {
                sigma_min,
                sigma_max,
                rho,
                compat,
            })
        }
    })
}
