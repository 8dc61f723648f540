//! Every plugin parameter, declared once (the nih-plug habit of stable string IDs, without nih-plug).
//!
//! Both adapters build their parameter tables from [`PARAMS`]: the string key is stable forever,
//! the numeric ID (CLAP `clap_id`, VST3 `ParamID`) is a hash of that key, so it is stable too.
//! Values are *plain* values in the parameter's own unit (CLAP's convention); VST3's normalised
//! `0..=1` values go through [`ParamSpec::normalize`] / [`ParamSpec::denormalize`].

use std::sync::atomic::{AtomicU64, Ordering};

/// Index of a parameter in [`PARAMS`] (and in [`ParamValues`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(usize)]
pub enum Param {
    /// Render mode: Generate, Upsample, Inpaint or Continue.
    Mode,
    /// Number of sampler steps.
    Steps,
    /// Which sampler runs the diffusion.
    Sampler,
    /// Seed of the render's noise.
    Seed,
    /// Classifier-free guidance scale (conditional models only).
    Guidance,
    /// Wet/dry mix of the played-back render, percent.
    Mix,
    /// Output gain, dB.
    Gain,
    /// Capture arm: while on, the input is recorded.
    Arm,
    /// Play trigger: a rising edge starts playback from the clip start.
    Trigger,
    /// Play in sync with the host transport, from the captured clip's start.
    Sync,
    /// A rising edge sends the render request for the current mode.
    Render,
    /// A rising edge cancels the render in progress.
    Cancel,
    /// Inpaint region start, seconds into the captured clip.
    RegionStart,
    /// Inpaint region end, seconds into the captured clip.
    RegionEnd,
    /// Length of a generated clip or of a continuation, seconds.
    Length,
    /// Capture buffer length, seconds (applies at the next activation).
    CaptureSeconds,
    /// Render progress, percent (read-only).
    Progress,
    /// Upsample factor (x2, x4, x8): how far below the host rate the captured clip's band ends.
    Factor,
    /// Upsample: measure where the captured clip's content ends instead of using `Factor`.
    UpsampleAuto,
}

/// Number of parameters.
pub const PARAM_COUNT: usize = 19;

/// How a parameter's values are shown and stepped.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Kind {
    /// Continuous value with a unit suffix and a number of decimals.
    Float { unit: &'static str, decimals: usize },
    /// Integer value with a unit suffix.
    Int { unit: &'static str },
    /// One of named choices; the value is the index.
    Choice(&'static [&'static str]),
    /// Off/On.
    Bool,
}

/// Parameter flags the adapters translate into their host's flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Flags {
    /// The host may automate it.
    pub automatable: bool,
    /// The plugin sets it; the host only reads it.
    pub read_only: bool,
}

const AUTO: Flags = Flags {
    automatable: true,
    read_only: false,
};
const FIXED: Flags = Flags {
    automatable: false,
    read_only: false,
};
const READ_ONLY: Flags = Flags {
    automatable: false,
    read_only: true,
};

/// One parameter's declaration.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ParamSpec {
    /// Which parameter.
    pub param: Param,
    /// Stable string ID: never changes once released.
    pub key: &'static str,
    /// Name shown by hosts.
    pub name: &'static str,
    /// Smallest plain value.
    pub min: f64,
    /// Largest plain value.
    pub max: f64,
    /// Default plain value.
    pub default: f64,
    /// Display and stepping.
    pub kind: Kind,
    /// Automation and read-only flags.
    pub flags: Flags,
}

/// Render modes, in the order of the `mode` parameter.
pub const MODES: &[&str] = &["Generate", "Upsample", "Inpaint", "Continue"];
/// Samplers, in the order of the `sampler` parameter: the first three of adiff-core's one list
/// (those of audio-diffusion-pytorch 0.0.61, in the order this parameter was released with; a
/// longer range would move hosts' normalised automation of it).
pub const SAMPLERS: &[&str] = adiff_core::sampler::SamplerKind::NAMES.split_at(3).0;
/// Upsample factors, in the order of the `factor` parameter (index `i` is factor `2^(i+1)`).
pub const FACTORS: &[&str] = &["x2", "x4", "x8"];

/// The upsample factor of the `factor` parameter's index (2, 4 or 8).
pub fn factor_from_index(i: usize) -> usize {
    2 << i.min(FACTORS.len() - 1)
}
const ON_OFF: Kind = Kind::Bool;

// One argument per column of the parameter table below.
#[allow(clippy::too_many_arguments)]
const fn spec(
    param: Param,
    key: &'static str,
    name: &'static str,
    min: f64,
    max: f64,
    default: f64,
    kind: Kind,
    flags: Flags,
) -> ParamSpec {
    ParamSpec {
        param,
        key,
        name,
        min,
        max,
        default,
        kind,
        flags,
    }
}

/// The parameter table, indexed by [`Param`].
pub static PARAMS: [ParamSpec; PARAM_COUNT] = [
    spec(
        Param::Mode,
        "mode",
        "Mode",
        0.0,
        3.0,
        1.0,
        Kind::Choice(MODES),
        AUTO,
    ),
    spec(
        Param::Steps,
        "steps",
        "Steps",
        1.0,
        200.0,
        20.0,
        Kind::Int { unit: "" },
        AUTO,
    ),
    spec(
        Param::Sampler,
        "sampler",
        "Sampler",
        0.0,
        2.0,
        0.0,
        Kind::Choice(SAMPLERS),
        AUTO,
    ),
    spec(
        Param::Seed,
        "seed",
        "Seed",
        0.0,
        16_777_215.0,
        0.0,
        Kind::Int { unit: "" },
        AUTO,
    ),
    spec(
        Param::Guidance,
        "guidance",
        "Guidance",
        1.0,
        10.0,
        1.0,
        Kind::Float {
            unit: "x",
            decimals: 2,
        },
        AUTO,
    ),
    spec(
        Param::Mix,
        "mix",
        "Mix",
        0.0,
        100.0,
        100.0,
        Kind::Float {
            unit: "%",
            decimals: 1,
        },
        AUTO,
    ),
    spec(
        Param::Gain,
        "gain",
        "Output Gain",
        -60.0,
        24.0,
        0.0,
        Kind::Float {
            unit: "dB",
            decimals: 1,
        },
        AUTO,
    ),
    spec(
        Param::Arm,
        "arm",
        "Capture Arm",
        0.0,
        1.0,
        0.0,
        ON_OFF,
        AUTO,
    ),
    spec(
        Param::Trigger,
        "trigger",
        "Play Trigger",
        0.0,
        1.0,
        0.0,
        ON_OFF,
        AUTO,
    ),
    spec(
        Param::Sync,
        "sync",
        "Transport Sync",
        0.0,
        1.0,
        0.0,
        ON_OFF,
        AUTO,
    ),
    spec(
        Param::Render,
        "render",
        "Render",
        0.0,
        1.0,
        0.0,
        ON_OFF,
        AUTO,
    ),
    spec(
        Param::Cancel,
        "cancel",
        "Cancel Render",
        0.0,
        1.0,
        0.0,
        ON_OFF,
        AUTO,
    ),
    spec(
        Param::RegionStart,
        "region_start",
        "Region Start",
        0.0,
        600.0,
        0.0,
        Kind::Float {
            unit: "s",
            decimals: 3,
        },
        AUTO,
    ),
    spec(
        Param::RegionEnd,
        "region_end",
        "Region End",
        0.0,
        600.0,
        1.0,
        Kind::Float {
            unit: "s",
            decimals: 3,
        },
        AUTO,
    ),
    spec(
        Param::Length,
        "length",
        "Length",
        0.5,
        60.0,
        4.0,
        Kind::Float {
            unit: "s",
            decimals: 2,
        },
        AUTO,
    ),
    spec(
        Param::CaptureSeconds,
        "capture_seconds",
        "Capture Length",
        60.0,
        600.0,
        60.0,
        Kind::Int { unit: "s" },
        FIXED,
    ),
    spec(
        Param::Progress,
        "progress",
        "Render Progress",
        0.0,
        100.0,
        0.0,
        Kind::Float {
            unit: "%",
            decimals: 0,
        },
        READ_ONLY,
    ),
    spec(
        Param::Factor,
        "factor",
        "Upsample Factor",
        0.0,
        2.0,
        1.0,
        Kind::Choice(FACTORS),
        AUTO,
    ),
    spec(
        Param::UpsampleAuto,
        "upsample_auto",
        "Upsample Auto",
        0.0,
        1.0,
        0.0,
        ON_OFF,
        AUTO,
    ),
];

/// FNV-1a of the key, folded to 31 bits (VST3 reserves the top bit of `ParamID`).
pub const fn hash_key(key: &str) -> u32 {
    let bytes = key.as_bytes();
    let mut h: u32 = 0x811c_9dc5;
    let mut i = 0;
    while i < bytes.len() {
        h ^= bytes[i] as u32;
        h = h.wrapping_mul(0x0100_0193);
        i += 1;
    }
    h & 0x7fff_ffff
}

impl Param {
    /// All parameters in table order.
    pub fn all() -> impl Iterator<Item = Param> {
        PARAMS.iter().map(|s| s.param)
    }

    /// This parameter's declaration.
    pub fn spec(self) -> &'static ParamSpec {
        &PARAMS[self as usize]
    }

    /// The numeric host ID (stable: a hash of the string key).
    pub fn id(self) -> u32 {
        hash_key(self.spec().key)
    }

    /// The parameter with this numeric host ID.
    pub fn from_id(id: u32) -> Option<Param> {
        PARAMS
            .iter()
            .find(|s| hash_key(s.key) == id)
            .map(|s| s.param)
    }

    /// The parameter with this stable string key.
    pub fn from_key(key: &str) -> Option<Param> {
        PARAMS.iter().find(|s| s.key == key).map(|s| s.param)
    }
}

impl ParamSpec {
    /// True when the value moves in whole steps.
    pub fn is_stepped(&self) -> bool {
        !matches!(self.kind, Kind::Float { .. })
    }

    /// Number of steps for VST3 (`stepCount`), 0 for continuous parameters.
    pub fn step_count(&self) -> i32 {
        if self.is_stepped() {
            (self.max - self.min) as i32
        } else {
            0
        }
    }

    /// Clamps (and rounds stepped parameters) a plain value into range; NaN gives the default.
    pub fn clamp(&self, value: f64) -> f64 {
        if value.is_nan() {
            return self.default;
        }
        let v = value.clamp(self.min, self.max);
        if self.is_stepped() {
            v.round()
        } else {
            v
        }
    }

    /// Plain value -> `0..=1`.
    pub fn normalize(&self, plain: f64) -> f64 {
        (self.clamp(plain) - self.min) / (self.max - self.min)
    }

    /// `0..=1` -> plain value.
    pub fn denormalize(&self, normalized: f64) -> f64 {
        let n = if normalized.is_nan() {
            0.0
        } else {
            normalized.clamp(0.0, 1.0)
        };
        self.clamp(self.min + n * (self.max - self.min))
    }

    /// Writes the value as text into `out` (no allocation beyond what `out` does).
    pub fn write_text(&self, plain: f64, out: &mut impl std::fmt::Write) -> std::fmt::Result {
        let v = self.clamp(plain);
        match self.kind {
            Kind::Float { unit: "", decimals } => write!(out, "{v:.decimals$}"),
            Kind::Float { unit, decimals } => write!(out, "{v:.decimals$} {unit}"),
            Kind::Int { unit: "" } => write!(out, "{}", v as i64),
            Kind::Int { unit } => write!(out, "{} {unit}", v as i64),
            Kind::Choice(names) => out.write_str(names.get(v as usize).copied().unwrap_or("?")),
            Kind::Bool => out.write_str(if v >= 0.5 { "On" } else { "Off" }),
        }
    }

    /// The value as text.
    pub fn text(&self, plain: f64) -> String {
        let mut s = String::new();
        let _ = self.write_text(plain, &mut s);
        s
    }

    /// Parses text typed by a user (with or without the unit); `None` if it is not a value.
    pub fn parse(&self, text: &str) -> Option<f64> {
        let t = text.trim();
        match self.kind {
            Kind::Choice(names) => names
                .iter()
                .position(|n| n.eq_ignore_ascii_case(t))
                .map(|i| i as f64)
                .or_else(|| {
                    t.parse::<f64>()
                        .ok()
                        .filter(|v| v.is_finite())
                        .map(|v| self.clamp(v))
                }),
            Kind::Bool => match t.to_ascii_lowercase().as_str() {
                "on" | "true" | "yes" | "1" => Some(1.0),
                "off" | "false" | "no" | "0" => Some(0.0),
                _ => None,
            },
            Kind::Float { unit, .. } | Kind::Int { unit } => {
                let number = t.strip_suffix(unit).unwrap_or(t).trim();
                let v: f64 = number.parse().ok()?;
                v.is_finite().then(|| self.clamp(v))
            }
        }
    }
}

/// Current plain values of every parameter, as atomics shared by all threads.
#[derive(Debug)]
pub struct ParamValues {
    values: [AtomicU64; PARAM_COUNT],
}

impl Default for ParamValues {
    fn default() -> Self {
        Self {
            values: std::array::from_fn(|i| AtomicU64::new(PARAMS[i].default.to_bits())),
        }
    }
}

impl ParamValues {
    /// Current plain value.
    pub fn get(&self, p: Param) -> f64 {
        f64::from_bits(self.values[p as usize].load(Ordering::Relaxed))
    }

    /// Sets a plain value (clamped into range).
    pub fn set(&self, p: Param, plain: f64) {
        let v = p.spec().clamp(plain);
        self.values[p as usize].store(v.to_bits(), Ordering::Relaxed);
    }

    /// Sets the parameter with host ID `id`; false if no such parameter (or it is read-only).
    pub fn set_by_id(&self, id: u32, plain: f64) -> bool {
        match Param::from_id(id) {
            Some(p) if !p.spec().flags.read_only => {
                self.set(p, plain);
                true
            }
            _ => false,
        }
    }

    /// True when a switch parameter is on.
    pub fn on(&self, p: Param) -> bool {
        self.get(p) >= 0.5
    }

    /// Resets every parameter to its default.
    pub fn reset(&self) {
        for s in PARAMS.iter() {
            self.set(s.param, s.default);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_is_indexed_by_param_and_ids_are_unique() {
        for (i, s) in PARAMS.iter().enumerate() {
            assert_eq!(s.param as usize, i, "{} is out of place", s.key);
            assert!(
                s.min < s.max && s.min <= s.default && s.default <= s.max,
                "{}",
                s.key
            );
            assert_eq!(Param::from_id(s.param.id()), Some(s.param));
            assert_eq!(Param::from_key(s.key), Some(s.param));
        }
        let mut ids: Vec<u32> = Param::all().map(Param::id).collect();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), PARAM_COUNT);
        // The ID is FNV-1a("mode") & 0x7fffffff, fixed forever.
        assert_eq!(Param::Mode.id(), 0xec6e_e012 & 0x7fff_ffff);
    }

    #[test]
    fn text_round_trips_for_every_parameter() {
        for s in PARAMS.iter() {
            for v in [s.min, s.default, s.max, 0.5 * (s.min + s.max)] {
                let text = s.text(v);
                let back = s
                    .parse(&text)
                    .unwrap_or_else(|| panic!("{}: cannot parse {text:?}", s.key));
                let tol = match s.kind {
                    Kind::Float { decimals, .. } => 0.5 * 10f64.powi(-(decimals as i32)) + 1e-9,
                    _ => 0.0,
                };
                assert!(
                    (back - s.clamp(v)).abs() <= tol,
                    "{}: {v} -> {text:?} -> {back}",
                    s.key
                );
            }
        }
        assert_eq!(Param::Mode.spec().parse("inpaint"), Some(2.0));
        assert_eq!(Param::Gain.spec().parse("-6 dB"), Some(-6.0));
        assert_eq!(Param::Gain.spec().parse("loud"), None);
        assert_eq!(Param::Gain.spec().parse("NaN"), None);
    }

    #[test]
    fn normalisation_is_inverse_and_clamps() {
        for s in PARAMS.iter() {
            for v in [s.min, s.default, s.max] {
                assert!(
                    (s.denormalize(s.normalize(v)) - v).abs() < 1e-9,
                    "{}",
                    s.key
                );
            }
            assert_eq!(s.denormalize(-1.0), s.min);
            assert_eq!(s.denormalize(f64::NAN), s.min);
            assert_eq!(s.clamp(f64::INFINITY), s.max);
        }
        let values = ParamValues::default();
        values.set(Param::Steps, 12.6);
        assert_eq!(values.get(Param::Steps), 13.0);
        assert!(!values.set_by_id(Param::Progress.id(), 50.0));
        assert!(!values.set_by_id(12345, 1.0));
    }
}
