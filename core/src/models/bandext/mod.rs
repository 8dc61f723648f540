//! Learned band extension ("bandext"), the project's own upsampler formulation for a CPU budget
//! (issue 11), not a reference component: the reference's sinc `upsample` keeps the known band
//! exactly, and above the input's Nyquist frequency a per-factor ridge regression predicts, frame
//! by frame, the high band's log-power envelope (16-bin bands) from the known band's log-power
//! envelope (this frame and its neighbours); seeded Gaussian noise shaped to that envelope fills
//! the band, and an exact high-pass keeps the fill out of the known band.

pub mod equalize;
pub mod fit;
pub mod stage;
pub mod stft;
pub mod stream;
pub mod synth;

use crate::audio::AudioClip;
use crate::noise::NoiseSource;
use crate::{Error, Result};
use candle_core::{Device, Tensor};
use fit::Normal;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;
use stft::{HOP, N_FFT};
use synth::{
    band_log, bins_from_bands, brickwall_highpass, hf_bands, phase_retrieved, shaped_noise,
    POWER_FLOOR,
};

/// The `kind` of a band-extension model folder's `config.json`.
pub const KIND: &str = "BandExtension";

/// Hyper-parameters of a band-extension model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BandExtConfig {
    /// Sample rate the model was fitted at (Hz); it works in STFT bins, so nearby rates work too.
    pub sample_rate: u32,
    /// Upsampling factors, one regression each.
    pub factors: Vec<usize>,
    /// Width of a predicted high band (STFT bins of 2048).
    pub band_width: usize,
    /// Number of log-spaced known-band features per frame.
    pub lo_bands: usize,
    /// Neighbouring frames on each side whose features are inputs too.
    pub context: usize,
    /// Ridge penalty per frame.
    pub lambda: f64,
    /// Phase-retrieval rounds of the fill (0: Gaussian noise shaped per band).
    #[serde(default)]
    pub phase_iters: usize,
    /// Undo the sinc chain's attenuation where its power response is above this (0: off).
    #[serde(default)]
    pub equalize_floor: f64,
    /// Also feed the squares of this frame's features (a quadratic regression).
    #[serde(default)]
    pub squares: bool,
}

impl BandExtConfig {
    /// Bounds every field before anything is sized from it; `file` names the config in errors.
    pub fn validate(&self, file: &str) -> Result<()> {
        let field = |f: &str| format!("{file} `config.{f}`");
        crate::audio::limits::check_rate(self.sample_rate)
            .map_err(|e| Error::config(field("sample_rate"), e.to_string()))?;
        if self.factors.is_empty() || self.factors.iter().any(|f| !(2..=64).contains(f)) {
            return Err(Error::config(
                field("factors"),
                format!(
                    "needs one or more factors from 2 to 64, found {:?}",
                    self.factors
                ),
            ));
        }
        let counts = [
            ("band_width", self.band_width, 1, N_FFT / 2),
            ("lo_bands", self.lo_bands, 1, 256),
            ("context", self.context, 0, 16),
            ("phase_iters", self.phase_iters, 0, MAX_PHASE_ITERS),
        ];
        for (name, v, lo, hi) in counts {
            if !(lo..=hi).contains(&v) {
                return Err(Error::config(
                    field(name),
                    format!("{v} is outside {lo} to {hi}"),
                ));
            }
        }
        if !(self.lambda.is_finite() && self.lambda >= 0.0) {
            return Err(Error::config(field("lambda"), "must be finite and >= 0"));
        }
        if !(0.0..=1.0).contains(&self.equalize_floor) {
            return Err(Error::config(field("equalize_floor"), "must be in [0, 1]"));
        }
        Ok(())
    }
}

/// Most phase-retrieval rounds a config may ask for (each is an STFT pair over the clip).
pub const MAX_PHASE_ITERS: usize = 1000;

impl Default for BandExtConfig {
    fn default() -> Self {
        Self {
            sample_rate: 48_000,
            factors: vec![2, 4, 8],
            band_width: 16,
            lo_bands: 16,
            context: 1,
            lambda: 1e-4,
            phase_iters: 32,
            squares: true,
            equalize_floor: 0.01,
        }
    }
}

/// First STFT bin at or above the input's Nyquist frequency for `factor` (the metrics' split).
pub fn cut_bin(factor: usize) -> usize {
    (N_FFT / 2).div_ceil(factor.max(1))
}

/// Log-spaced bands `[start, end)` over the known band (below the sinc's transition).
fn lo_bands(factor: usize, n: usize) -> Vec<(usize, usize)> {
    let top = ((cut_bin(factor) as f64) * 0.95) as usize;
    let mut edges: Vec<usize> = (0..=n)
        .map(|i| (1.0 * (top as f64).powf(i as f64 / n as f64)).round() as usize)
        .collect();
    edges.dedup();
    edges.windows(2).map(|w| (w[0], w[1])).collect()
}

fn log_power(x: &[f32]) -> Result<Vec<Vec<f64>>> {
    Ok(crate::audio::stft::power_spectrogram(x, N_FFT, HOP)?
        .into_iter()
        .map(|f| f.into_iter().map(|p| p.max(POWER_FLOOR).log10()).collect())
        .collect())
}

/// Bin ranges `[start, end)`.
type Bands = Vec<(usize, usize)>;

/// One factor's regression.
#[derive(Debug, Clone)]
struct Regression {
    lo: Vec<(usize, usize)>,
    hi: Vec<(usize, usize)>,
    /// `d x m` row-major, inputs: features then bias.
    w: Vec<f64>,
}

impl Regression {
    /// Known-band feature bands, predicted high bands, and the input count.
    fn dims(cfg: &BandExtConfig, factor: usize) -> (Bands, Bands, usize) {
        let lo = lo_bands(factor, cfg.lo_bands);
        let hi = hf_bands(cut_bin(factor), cfg.band_width);
        let per = lo.len() + 1;
        let d = per * (2 * cfg.context + 1) + if cfg.squares { per } else { 0 } + 1;
        (lo, hi, d)
    }

    /// Feature rows of a log spectrogram (one per frame).
    fn features(lo: &[(usize, usize)], cfg: &BandExtConfig, logp: &[Vec<f64>]) -> Vec<Vec<f64>> {
        let context = cfg.context;
        let per: Vec<Vec<f64>> = logp
            .iter()
            .map(|f| {
                let mut v: Vec<f64> = lo
                    .iter()
                    .map(|&(s, e)| f[s..e].iter().sum::<f64>() / (e - s) as f64)
                    .collect();
                let e = lo.last().map(|b| b.1).unwrap_or(1);
                let s = e.saturating_sub(8).max(1);
                v.push(f[s..e].iter().sum::<f64>() / (e - s).max(1) as f64);
                v
            })
            .collect();
        let n = per.len() as isize;
        (0..n)
            .map(|t| {
                let mut row = Vec::new();
                for o in -(context as isize)..=context as isize {
                    row.extend_from_slice(&per[(t + o).clamp(0, n - 1) as usize]);
                }
                if cfg.squares {
                    row.extend(per[t as usize].iter().map(|v| v * v / 8.0));
                }
                row.push(1.0);
                row
            })
            .collect()
    }

    fn predict(&self, row: &[f64]) -> Vec<f64> {
        let m = self.hi.len();
        (0..m)
            .map(|j| {
                row.iter()
                    .enumerate()
                    .map(|(i, x)| x * self.w[i * m + j])
                    .sum::<f64>()
                    .clamp(-8.0, 4.0)
            })
            .collect()
    }
}

/// A fitted band-extension model.
#[derive(Debug, Clone)]
pub struct BandExtension {
    cfg: BandExtConfig,
    regs: BTreeMap<usize, Regression>,
}

pub use crate::audio::sinc::{sinc_down, sinc_up};

fn to_vec(t: &Tensor) -> Result<Vec<f32>> {
    Ok(t.flatten_all()?.to_vec1::<f32>()?)
}

/// Training sums of every factor; feed clips at the model's rate, then [`Fitter::finish`].
#[derive(Debug, Clone)]
pub struct Fitter {
    cfg: BandExtConfig,
    sums: BTreeMap<usize, Normal>,
}

impl Fitter {
    /// Empty sums for `cfg`.
    pub fn new(cfg: BandExtConfig) -> Self {
        let sums = cfg
            .factors
            .iter()
            .map(|&k| {
                let (_, hi, d) = Regression::dims(&cfg, k);
                (k, Normal::new(d, hi.len()))
            })
            .collect();
        Self { cfg, sums }
    }

    /// Adds every frame of one full-band mono signal, for every factor: its sinc down/up round
    /// trip gives the inputs, its own high band the targets. Returns the frames added per factor.
    pub fn add(&mut self, x: &[f32]) -> Result<usize> {
        let mut frames = 0;
        for (&k, sum) in self.sums.iter_mut() {
            let n = x.len() / k * k;
            if n <= N_FFT {
                continue;
            }
            let truth = &x[..n];
            let up = sinc_up(&sinc_down(truth, k)?, k)?;
            let (lo, hi, _) = Regression::dims(&self.cfg, k);
            let rows = Regression::features(&lo, &self.cfg, &log_power(&up)?);
            let tp = crate::audio::stft::power_spectrogram(truth, N_FFT, HOP)?;
            for (row, p) in rows.iter().zip(&tp) {
                let y: Vec<f64> = hi
                    .iter()
                    .map(|&(s, e)| band_log(p[s..e].iter().copied(), e - s))
                    .collect();
                sum.add(row, &y)?;
            }
            frames = rows.len();
        }
        Ok(frames)
    }

    /// Solves every factor's regression.
    pub fn finish(&self) -> Result<BandExtension> {
        let mut regs = BTreeMap::new();
        for (&k, sum) in &self.sums {
            let (lo, hi, _) = Regression::dims(&self.cfg, k);
            regs.insert(
                k,
                Regression {
                    lo,
                    hi,
                    w: sum.solve(self.cfg.lambda)?,
                },
            );
        }
        Ok(BandExtension {
            cfg: self.cfg.clone(),
            regs,
        })
    }
}

impl BandExtension {
    /// The model's hyper-parameters.
    pub fn config(&self) -> &BandExtConfig {
        &self.cfg
    }

    /// The factors it serves.
    pub fn factors(&self) -> &[usize] {
        &self.cfg.factors
    }

    fn reg(&self, factor: usize) -> Result<&Regression> {
        self.regs.get(&factor).ok_or_else(|| {
            Error::input(
                "factor",
                format!(
                    "this model upsamples by {:?}, not by {factor}",
                    self.cfg.factors
                ),
            )
        })
    }

    /// Predicted high-band envelope (mean log10 power per band, per STFT frame) of a sinc-upsampled
    /// signal.
    pub fn envelope(&self, up: &[f32], factor: usize) -> Result<Vec<Vec<f64>>> {
        let r = self.reg(factor)?;
        let rows = Regression::features(&r.lo, &self.cfg, &log_power(up)?);
        Ok(rows.iter().map(|row| r.predict(row)).collect())
    }

    /// Upsamples one channel `lo` by `factor`: `lo.len() * factor` samples. `noise` supplies the
    /// fill's Gaussian draw (one of the output's length).
    pub fn upsample_signal(
        &self,
        lo: &[f32],
        factor: usize,
        noise: &mut dyn NoiseSource,
    ) -> Result<Vec<f32>> {
        let r = self.reg(factor)?;
        let up = sinc_up(lo, factor)?;
        if up.len() <= N_FFT / 2 {
            return Ok(up);
        }
        let env = self.envelope(&up, factor)?;
        let white = to_vec(&noise.randn(&[up.len()], &Device::Cpu)?)?;
        let iters = self.cfg.phase_iters;
        let fill = if iters == 0 {
            shaped_noise(&white, &r.hi, &env)?
        } else {
            let bins: Vec<Vec<f64>> = env.iter().map(|e| bins_from_bands(&r.hi, e)).collect();
            phase_retrieved(&white, r.hi[0].0, &bins, iters)?
        };
        let fill = brickwall_highpass(&fill, 1.0 / factor as f64)?;
        let eqf = self.cfg.equalize_floor;
        let up = if eqf > 0.0 {
            equalize::equalize(&up, factor, eqf, 10.0)?
        } else {
            up
        };
        Ok(up.iter().zip(&fill).map(|(a, b)| a + b).collect())
    }

    /// Upsamples every channel of `clip` by `factor` (the output rate is the input's times it).
    pub fn upsample_clip(
        &self,
        clip: &AudioClip,
        factor: usize,
        noise: &mut dyn NoiseSource,
    ) -> Result<AudioClip> {
        let rate = clip
            .sample_rate()
            .checked_mul(factor as u32)
            .ok_or_else(|| Error::input("factor", "rate overflow"))?;
        let chans = clip
            .channels()
            .iter()
            .map(|c| self.upsample_signal(c, factor, noise))
            .collect::<Result<Vec<_>>>()?;
        AudioClip::new(rate, chans)
    }

    /// Writes a model folder: `config.json` (`{"kind": "BandExtension", "config": ...}`) and
    /// `model.safetensors` (one f32 tensor `factor_K`, `d x m`, per factor).
    pub fn save(&self, dir: impl AsRef<Path>) -> Result<()> {
        let dir = dir.as_ref();
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        let cfg = serde_json::json!({ "kind": KIND, "config": self.cfg });
        let text = serde_json::to_string_pretty(&cfg)
            .map_err(|e| Error::input("config", e.to_string()))?;
        let p = dir.join("config.json");
        crate::files::write_atomic(&p, |tmp| {
            std::fs::write(tmp, text + "\n").map_err(|e| Error::io(&p, e))
        })?;
        let mut tensors = std::collections::HashMap::new();
        for (&k, r) in &self.regs {
            let m = r.hi.len();
            let v: Vec<f32> = r.w.iter().map(|&x| x as f32).collect();
            tensors.insert(
                format!("factor_{k}"),
                Tensor::from_vec(v, (r.w.len() / m, m), &Device::Cpu)?,
            );
        }
        crate::weights::save_safetensors(&tensors, &dir.join("model.safetensors"))
    }

    /// Reads a folder written by [`BandExtension::save`].
    pub fn load(dir: impl AsRef<Path>) -> Result<Self> {
        let dir = dir.as_ref();
        let p = dir.join("config.json");
        let text = std::fs::read_to_string(&p).map_err(|e| Error::io(&p, e))?;
        let wp = dir.join("model.safetensors");
        let bytes = std::fs::read(&wp).map_err(|e| Error::io(&wp, e))?;
        Self::from_bytes(&text, &bytes, &dir.display().to_string())
    }

    /// Builds the model from the text of `config.json` and the bytes of `model.safetensors` (for an
    /// embedded model); `name` names the source in errors.
    pub fn from_bytes(config: &str, weights: &[u8], name: &str) -> Result<Self> {
        let v: serde_json::Value = serde_json::from_str(config)
            .map_err(|e| Error::config(format!("{name}/config.json"), e.to_string()))?;
        if v.get("kind").and_then(|k| k.as_str()) != Some(KIND) {
            return Err(Error::config(
                format!("{name}/config.json `kind`"),
                format!("expected \"{KIND}\""),
            ));
        }
        let cfg: BandExtConfig =
            serde_path_to_error::deserialize(v["config"].clone()).map_err(|e| {
                Error::config(
                    format!("{name}/config.json `config.{}`", e.path()),
                    e.inner().to_string(),
                )
            })?;
        cfg.validate(&format!("{name}/config.json"))?;
        let tensors =
            candle_core::safetensors::load_buffer(weights, &Device::Cpu).map_err(|e| {
                Error::WeightsFile {
                    path: format!("{name}/model.safetensors").into(),
                    reason: e.to_string(),
                }
            })?;
        let mut regs = BTreeMap::new();
        for &k in &cfg.factors {
            let (lo, hi, d) = Regression::dims(&cfg, k);
            let key = format!("factor_{k}");
            let t = tensors.get(&key).ok_or_else(|| {
                Error::input(
                    "weights",
                    format!("{name}/model.safetensors has no tensor {key}"),
                )
            })?;
            if t.dims() != [d, hi.len()] {
                return Err(Error::input(
                    "weights",
                    format!("{key} is {:?}, expected [{d}, {}]", t.dims(), hi.len()),
                ));
            }
            let w = t
                .to_dtype(candle_core::DType::F64)?
                .flatten_all()?
                .to_vec1::<f64>()?;
            if let Some(i) = w.iter().position(|v| !v.is_finite()) {
                return Err(Error::WeightsFile {
                    path: format!("{name}/model.safetensors").into(),
                    reason: format!(
                        "tensor `{key}` holds a non-finite value ({}) at index {i}",
                        w[i]
                    ),
                });
            }
            regs.insert(k, Regression { lo, hi, w });
        }
        Ok(Self { cfg, regs })
    }
}

#[cfg(test)]
mod tests;
