//! Every sampling choice of a render, and how it resolves against a model's defaults.

use crate::models::folder::{SamplerSetting, SamplingDefaults, ScheduleSetting, MAX_STEPS};
use crate::models::sampling::{sampler_from, Sampling};
use crate::sampler::{ADPM2Sampler, HeunSampler, KarrasSampler, Sampler, SamplerKind};
use crate::schedule::KarrasSchedule;
use crate::{Compat, Error, Result};

/// Variation strength when none is given: half the schedule's noise.
pub const DEFAULT_STRENGTH: f64 = 0.5;

/// The sigma schedules a render may choose.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScheduleKind {
    /// Karras et al. (2022) over the model's sigma range (the reference's 1e-4 to 3, rho 9 for a
    /// model whose default schedule is of another family).
    Karras,
}

impl ScheduleKind {
    /// Every schedule.
    pub const ALL: [ScheduleKind; 1] = [ScheduleKind::Karras];

    /// The name (command line).
    pub fn name(self) -> &'static str {
        match self {
            ScheduleKind::Karras => "karras",
        }
    }
}

impl std::str::FromStr for ScheduleKind {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        Self::ALL
            .into_iter()
            .find(|k| k.name() == s)
            .ok_or_else(|| {
                Error::config(
                    "schedule",
                    format!("unknown schedule `{s}`, expected karras"),
                )
            })
    }
}

/// The options of one render; `None` takes the model's default.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RenderOptions {
    /// Sampling steps, 2 to [`MAX_STEPS`].
    pub steps: Option<usize>,
    /// Sampler. Inpainting and continuation need one that inpaints (`adpm2`, their default).
    pub sampler: Option<SamplerKind>,
    /// Sigma schedule.
    pub schedule: Option<ScheduleKind>,
    /// Seed of every random draw: the same seed gives the same audio.
    pub seed: u64,
    /// Classifier-free guidance scale (conditional models only).
    pub guidance: Option<f64>,
    /// How far a variation departs from its input, above 0 to 1 (default [`DEFAULT_STRENGTH`]).
    pub strength: Option<f64>,
    /// RePaint resamples per step when inpainting, 1 to 100 (default 2; continuation uses 1).
    pub resamples: Option<usize>,
}

impl RenderOptions {
    /// Options with the model's defaults and `seed`.
    pub fn seeded(seed: u64) -> Self {
        Self {
            seed,
            ..Self::default()
        }
    }

    /// Whether any diffusion-sampling option is set (a band-extension model has none).
    pub fn sets_sampling(&self) -> bool {
        self.steps.is_some() || self.sampler.is_some() || self.schedule.is_some()
    }

    /// Refuses a guidance scale for a model that takes none.
    pub(crate) fn refuse_guidance(&self) -> Result<()> {
        if self.guidance.is_some() {
            return Err(Error::input(
                "guidance",
                "classifier-free guidance applies to conditional models only; this model takes no guidance",
            ));
        }
        Ok(())
    }

    /// The sampling of a render: the model's `defaults`, overridden by the options given.
    pub(crate) fn sampling(&self, defaults: &SamplingDefaults, compat: Compat) -> Result<Sampling> {
        let mut s = Sampling::from_settings(defaults, compat)?;
        if let Some(n) = self.steps {
            if !(2..=MAX_STEPS).contains(&n) {
                return Err(Error::input(
                    "steps",
                    format!("must be 2 to {MAX_STEPS}, got {n}"),
                ));
            }
            s.num_steps = n;
        }
        if let Some(kind) = self.sampler {
            s.sampler = sampler_of(kind, &defaults.sampler, compat)?;
        }
        if let Some(ScheduleKind::Karras) = self.schedule {
            s.schedule = Box::new(karras_of(&defaults.sigma_schedule, compat));
        }
        Ok(s)
    }

    /// The sampler that inpaints: the chosen one when it can (`adpm2`), the default `adpm2`
    /// (with the model's rho when its default sampler is ADPM2) when none is chosen; any other
    /// choice is refused, naming `what` needs it.
    pub(crate) fn inpainting_sampler(
        &self,
        defaults: &SamplingDefaults,
        compat: Compat,
        what: &str,
    ) -> Result<Box<dyn Sampler>> {
        let kind = self.sampler.unwrap_or(SamplerKind::Adpm2);
        if !kind.inpaints() {
            return Err(Error::input(
                "sampler",
                format!(
                    "{what} regenerates audio with RePaint inpainting, which only adpm2 does (the reference's ADPM2Sampler.inpaint); `{kind}` cannot inpaint"
                ),
            ));
        }
        sampler_of(kind, &defaults.sampler, compat)
    }

    /// RePaint resamples per step (default 2), bounded.
    pub(crate) fn resamples(&self) -> Result<usize> {
        let n = self.resamples.unwrap_or(2);
        if !(1..=super::MAX_RESAMPLES).contains(&n) {
            return Err(Error::input(
                "resamples",
                format!("must be 1 to {}, got {n}", super::MAX_RESAMPLES),
            ));
        }
        Ok(n)
    }

    /// The variation strength (default [`DEFAULT_STRENGTH`]), checked.
    pub(crate) fn strength(&self) -> Result<f64> {
        let s = self.strength.unwrap_or(DEFAULT_STRENGTH);
        if !(s > 0.0 && s <= 1.0) {
            return Err(Error::input(
                "strength",
                format!("must be above 0 and at most 1, got {s}"),
            ));
        }
        Ok(s)
    }
}

/// The sampler `kind`, taking its parameters from the model's default setting when that is of
/// the same kind (ADPM2's rho, Karras' churn).
fn sampler_of(
    kind: SamplerKind,
    default: &SamplerSetting,
    compat: Compat,
) -> Result<Box<dyn Sampler>> {
    if default.kind() == kind {
        return sampler_from(default, compat);
    }
    Ok(match kind {
        SamplerKind::Adpm2 => Box::new(ADPM2Sampler { rho: 1.0, compat }),
        SamplerKind::Karras => Box::new(KarrasSampler {
            params: HeunSampler::default(),
            compat,
        }),
        other => other.build(compat),
    })
}

fn karras_of(default: &ScheduleSetting, compat: Compat) -> KarrasSchedule {
    #[allow(unreachable_patterns)]
    let (sigma_min, sigma_max, rho) = match *default {
        ScheduleSetting::KarrasSchedule {
            sigma_min,
            sigma_max,
            rho,
        } => (sigma_min, sigma_max, rho),
        _ => (1e-4, 3.0, 9.0),
    };
    KarrasSchedule {
        sigma_min,
        sigma_max,
        rho,
        compat,
    }
}
