//! `adiff eval`: the upsampling evaluation of issue 11 on a dataset's held-out split (per category
//! and factor: model, sinc, rubato, linear interpolation, noise fill; LSD, LSD-HF, LSD-LF, SNR,
//! real-time factor), printed and written into docs/models.md; `--fit DIR` first fits a
//! band-extension upsampler on the training split and saves it there.

use adiff_core::audio::{read_audio, resample_clip, AudioClip};
use adiff_core::eval::baselines::Baseline;
use adiff_core::eval::metrics::{clip_metrics, Metrics};
use adiff_core::models::bandext::{sinc_down, BandExtConfig, BandExtension, Fitter};
use adiff_core::noise::SeededNoise;
use anyhow::{bail, Context, Result};
use clap::Args;
use std::path::{Path, PathBuf};
use std::time::Instant;

mod frechet;

/// Options of `adiff eval`.
#[derive(Debug, Args)]
pub struct EvalArgs {
    /// Dataset folder made by data/make.sh (manifest.tsv, train/, test/).
    #[arg(long)]
    pub data: PathBuf,
    /// Band-extension model folder to evaluate (default: models/upsampler).
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// Fit a band-extension model on the training split (music and real) into this folder first.
    #[arg(long)]
    pub fit: Option<PathBuf>,
    /// Fitting: known-band features per frame.
    #[arg(long, default_value_t = 16)]
    pub lo_bands: usize,
    /// Fitting: neighbouring frames on each side fed too.
    #[arg(long, default_value_t = 1)]
    pub context: usize,
    /// Fitting: width of a predicted band (bins of 2048).
    #[arg(long, default_value_t = 16)]
    pub band_width: usize,
    /// Fitting: linear regression only (no squared features).
    #[arg(long)]
    pub linear: bool,
    /// Fitting: phase-retrieval rounds of the fill (0: shaped Gaussian noise).
    #[arg(long, default_value_t = 32)]
    pub phase_iters: usize,
    /// Factors.
    #[arg(long, value_delimiter = ',', default_value = "2,4,8")]
    pub factors: Vec<usize>,
    /// Categories (music, real, speech).
    #[arg(long, value_delimiter = ',', default_value = "music,real,speech")]
    pub categories: Vec<String>,
    /// At most this many clips per category (0: all).
    #[arg(long, default_value_t = 0)]
    pub max_clips: usize,
    /// Instead of the upsampling table: the Fréchet log-mel distance of the WAVs in this folder
    /// (generated clips) to the held-out music, beside pink noise's and the training split's.
    #[arg(long)]
    pub frechet: Option<PathBuf>,
    /// Also write a spectrogram PNG (truth, sinc, noise fill, model) of the first clip of the
    /// first category at the last factor.
    #[arg(long)]
    pub png: Option<PathBuf>,
    /// Split to evaluate on (`test`; `train` only for choosing settings that are not fitted).
    #[arg(long, default_value = "test")]
    pub split: String,
    /// Seed of the noise draws.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Markdown file whose block between `<!-- eval:begin -->` and `<!-- eval:end -->` is replaced
    /// by the table (appended when absent); `-` for none.
    #[arg(long, default_value = "docs/models.md")]
    pub out: String,
}

/// One row of the manifest.
struct Entry {
    path: PathBuf,
    split: String,
    category: String,
    native_sr: u32,
}

fn manifest(data: &Path) -> Result<Vec<Entry>> {
    let p = data.join("manifest.tsv");
    let text = std::fs::read_to_string(&p).with_context(|| format!("reading {}", p.display()))?;
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate().skip(1) {
        let f: Vec<&str> = line.split('\t').collect();
        if f.len() < 7 {
            bail!(
                "{} line {}: {} fields, expected at least 7",
                p.display(),
                i + 1,
                f.len()
            );
        }
        let native_sr = f[5]
            .parse()
            .with_context(|| format!("{} line {}: native_sr", p.display(), i + 1))?;
        out.push(Entry {
            path: data.join(f[0]),
            split: f[1].into(),
            category: f[2].into(),
            native_sr,
        });
    }
    Ok(out)
}

/// A clip as evaluated: mono, at the rate its content is full-band at (music 48 kHz, real
/// recordings at their native 44.1 kHz, speech at its native rate), trimmed to a multiple of 8.
fn load(e: &Entry) -> Result<AudioClip> {
    let clip = read_audio(&e.path)
        .with_context(|| format!("reading {}", e.path.display()))?
        .with_channels(1)?;
    let clip = if e.native_sr < clip.sample_rate() {
        resample_clip(&clip, e.native_sr)?
    } else {
        clip
    };
    let n = clip.len() / 8 * 8;
    Ok(clip.slice(0, n))
}

fn fit(args: &EvalArgs, entries: &[Entry], dir: &Path) -> Result<()> {
    let mut fitter = Fitter::new(BandExtConfig {
        lo_bands: args.lo_bands,
        context: args.context,
        band_width: args.band_width,
        squares: !args.linear,
        phase_iters: args.phase_iters,
        ..BandExtConfig::default()
    });
    let train: Vec<&Entry> = entries
        .iter()
        .filter(|e| e.split == "train" && (e.category == "music" || e.category == "real"))
        .collect();
    let t0 = Instant::now();
    let mut frames = 0;
    for (i, e) in train.iter().enumerate() {
        let clip = load(e)?;
        frames += fitter.add(&clip.channels()[0])?;
        if (i + 1) % 50 == 0 {
            eprintln!(
                "fit: {}/{} clips, {frames} frames, {:.0} s",
                i + 1,
                train.len(),
                t0.elapsed().as_secs_f64()
            );
        }
    }
    fitter.finish()?.save(dir)?;
    println!(
        "fitted on {} training clips ({frames} frames) in {:.1} s -> {}",
        train.len(),
        t0.elapsed().as_secs_f64(),
        dir.display()
    );
    Ok(())
}

#[derive(Default, Clone, Copy)]
struct Sum {
    lsd: f64,
    hf: f64,
    lf: f64,
    snr: f64,
    secs: f64,
    audio: f64,
    n: usize,
}

impl Sum {
    fn add(&mut self, m: Metrics, secs: f64, audio: f64) {
        self.lsd += m.lsd;
        self.hf += m.lsd_hf;
        self.lf += m.lsd_lf;
        self.snr += m.snr_db;
        self.secs += secs;
        self.audio += audio;
        self.n += 1;
    }

    fn row(&self, name: &str) -> String {
        let n = self.n.max(1) as f64;
        format!(
            "| {name} | {:.3} | {:.3} | {:.3} | {:.2} | {:.4} |",
            self.lsd / n,
            self.hf / n,
            self.lf / n,
            self.snr / n,
            self.secs / self.audio.max(1e-9)
        )
    }
}

const ROWS: usize = 1 + Baseline::ALL.len();

fn row_name(r: usize) -> &'static str {
    if r == 0 {
        "model (bandext)"
    } else {
        Baseline::ALL[r - 1].name()
    }
}

/// Evaluates one category: sums per factor and row.
fn category(
    model: &BandExtension,
    clips: &[&Entry],
    factors: &[usize],
    seed: u64,
) -> Result<Vec<[Sum; ROWS]>> {
    let mut sums = vec![[Sum::default(); ROWS]; factors.len()];
    for (ci, e) in clips.iter().enumerate() {
        let truth = load(e)?;
        for (fi, &k) in factors.iter().enumerate() {
            let lo = AudioClip::mono(
                truth.sample_rate() / k as u32,
                sinc_down(&truth.channels()[0], k)?,
            )?;
            let audio = truth.duration_secs();
            for (r, sum) in sums[fi].iter_mut().enumerate() {
                let mut noise = SeededNoise::new(seed ^ ((ci as u64) << 8) ^ k as u64);
                let t0 = Instant::now();
                let out = if r == 0 {
                    model.upsample_clip(&lo, k, &mut noise)?
                } else {
                    Baseline::ALL[r - 1].upsample(&lo, k, &mut noise)?
                };
                let secs = t0.elapsed().as_secs_f64();
                let out = AudioClip::new(truth.sample_rate(), out.into_channels())?;
                sum.add(clip_metrics(&truth, &out, k)?, secs, audio);
            }
        }
    }
    Ok(sums)
}

fn write_block(path: &str, block: &str) -> Result<()> {
    write_named_block(path, "eval", block)
}

fn write_named_block(path: &str, name: &str, block: &str) -> Result<()> {
    let (begin, end) = (
        format!("<!-- {name}:begin -->"),
        format!("<!-- {name}:end -->"),
    );
    let (begin, end) = (begin.as_str(), end.as_str());
    let old = std::fs::read_to_string(path).unwrap_or_default();
    let text = match (old.find(begin), old.find(end)) {
        (Some(b), Some(e)) if e > b => format!("{}{begin}\n{block}{}", &old[..b], &old[e..]),
        _ => format!("{old}\n{begin}\n{block}{end}\n"),
    };
    std::fs::write(path, text).with_context(|| format!("writing {path}"))
}

/// Pink noise (1/f power) of `n` samples: white Gaussian noise shaped bin by bin in the STFT.
fn pink(n: usize, seed: u64) -> Result<Vec<f32>> {
    use adiff_core::models::bandext::stft::{istft, stft};
    use adiff_core::noise::NoiseSource;
    let w = SeededNoise::new(seed)
        .randn(&[n], &candle_core::Device::Cpu)?
        .to_vec1::<f32>()?;
    let mut spec = stft(&w)?;
    for frame in spec.iter_mut() {
        frame[0] = Default::default();
        for (k, c) in frame.iter_mut().enumerate().skip(1) {
            *c /= (k as f64).sqrt();
        }
    }
    let out = istft(&spec, n)?;
    let peak = out.iter().fold(0f32, |m, v| m.max(v.abs())).max(1e-30);
    Ok(out.iter().map(|v| 0.5 * v / peak).collect())
}

/// `--frechet DIR`: distances of DIR's clips, pink noise and the training split to held-out music.
fn frechet_table(args: &EvalArgs, entries: &[Entry], dir: &Path) -> Result<()> {
    let mut test = frechet::Stats::new(48_000);
    let mut train = frechet::Stats::new(48_000);
    for e in entries.iter().filter(|e| e.category == "music") {
        let x = load(e)?;
        let s = if e.split == "test" {
            &mut test
        } else {
            &mut train
        };
        s.add(&x.channels()[0])?;
    }
    let mut generated = frechet::Stats::new(48_000);
    let mut lens = Vec::new();
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .filter_map(|d| d.ok().map(|d| d.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "wav"))
        .collect();
    files.sort();
    for p in &files {
        let c = read_audio(p)
            .with_context(|| format!("reading {}", p.display()))?
            .with_channels(1)?;
        let c = if c.sample_rate() != 48_000 {
            resample_clip(&c, 48_000)?
        } else {
            c
        };
        lens.push(c.len());
        generated.add(&c.channels()[0])?;
    }
    if files.is_empty() {
        bail!("no .wav files in {}", dir.display());
    }
    let mut noise = frechet::Stats::new(48_000);
    for (i, &n) in lens.iter().enumerate() {
        noise.add(&pink(n, args.seed + i as u64)?)?;
    }
    let block = format!(
        "Made by `{}`.\n\n| clips vs held-out music | Fréchet log-mel distance |\n|---|---|\n| {} generated clips ({}) | {:.2} |\n| {} clips of pink noise, same lengths | {:.2} |\n| training split music (the floor) | {:.2} |\n",
        std::env::args().collect::<Vec<_>>().join(" "),
        files.len(),
        dir.display(),
        frechet::distance(&generated, &test),
        lens.len(),
        frechet::distance(&noise, &test),
        frechet::distance(&train, &test)
    );
    print!("{block}");
    if args.out != "-" {
        write_named_block(&args.out, "frechet", &block)?;
    }
    Ok(())
}

/// Runs the command.
pub fn run(args: &EvalArgs) -> Result<()> {
    let entries = manifest(&args.data)?;
    if let Some(dir) = &args.frechet {
        return frechet_table(args, &entries, dir);
    }
    let model_dir = args
        .fit
        .clone()
        .or_else(|| args.model.clone())
        .unwrap_or_else(|| PathBuf::from("models/upsampler"));
    if let Some(dir) = &args.fit {
        fit(args, &entries, dir)?;
    }
    let model = BandExtension::load(&model_dir)
        .with_context(|| format!("loading {}", model_dir.display()))?;
    let mut block = String::new();
    for cat in &args.categories {
        let mut clips: Vec<&Entry> = entries
            .iter()
            .filter(|e| e.split == args.split && &e.category == cat)
            .collect();
        if args.max_clips > 0 {
            clips.truncate(args.max_clips);
        }
        if clips.is_empty() {
            continue;
        }
        let rates: std::collections::BTreeSet<u32> = clips.iter().map(|e| e.native_sr).collect();
        if let (Some(png), true) = (&args.png, block.is_empty()) {
            let k = *args.factors.last().unwrap_or(&4);
            let truth = load(clips[0])?;
            let x = &truth.channels()[0];
            let lo = AudioClip::mono(truth.sample_rate() / k as u32, sinc_down(x, k)?)?;
            let mut noise = SeededNoise::new(args.seed);
            let sinc = Baseline::Sinc.upsample(&lo, k, &mut noise)?;
            let fill = Baseline::NoiseFill.upsample(&lo, k, &mut noise)?;
            let ours = model.upsample_clip(&lo, k, &mut noise)?;
            // The first 3 s, so the image stays small.
            let n = x.len().min(3 * truth.sample_rate() as usize);
            let panels = [
                &x[..n],
                &sinc.channels()[0][..n],
                &fill.channels()[0][..n],
                &ours.channels()[0][..n],
            ];
            adiff_core::audio::spectrogram::write_spectrogram_png(png, &panels)
                .with_context(|| format!("writing {}", png.display()))?;
            println!(
                "wrote {} ({}, x{k}: truth, sinc, noise fill, model)",
                png.display(),
                clips[0].path.display()
            );
        }
        let sums = category(&model, &clips, &args.factors, args.seed)?;
        let mut part = String::new();
        for (fi, k) in args.factors.iter().enumerate() {
            part += &format!(
                "\n**{cat}, x{k}** ({} clips of the {} split at {rates:?} Hz, mono)\n\n| method | LSD | LSD-HF | LSD-LF | SNR dB | RTF |\n|---|---|---|---|---|---|\n",
                clips.len(),
                args.split
            );
            for (r, s) in sums[fi].iter().enumerate() {
                part += &s.row(row_name(r));
                part.push('\n');
            }
        }
        print!("{part}");
        block += &part;
    }
    let cmd: Vec<String> = std::env::args().collect();
    block = format!(
        "Made by `{}` (model {}).\n{block}\n",
        cmd.join(" "),
        model_dir.display()
    );
    if args.out != "-" {
        write_block(&args.out, &block)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_replaces_only_the_marked_block() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("m.md");
        let ps = p.to_str().unwrap();
        std::fs::write(
            &p,
            "intro\n<!-- eval:begin -->\nold\n<!-- eval:end -->\noutro\n",
        )
        .unwrap();
        write_block(ps, "new\n").unwrap();
        assert_eq!(
            std::fs::read_to_string(&p).unwrap(),
            "intro\n<!-- eval:begin -->\nnew\n<!-- eval:end -->\noutro\n"
        );
        std::fs::write(&p, "only prose\n").unwrap();
        write_block(ps, "t\n").unwrap();
        assert_eq!(
            std::fs::read_to_string(&p).unwrap(),
            "only prose\n\n<!-- eval:begin -->\nt\n<!-- eval:end -->\n"
        );
    }

    #[test]
    fn the_manifest_is_read_by_column_and_short_rows_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let head = "path\tsplit\tcategory\tgenerator\tsource_id\tnative_sr\tsr\tseconds\n";
        std::fs::write(
            dir.path().join("manifest.tsv"),
            format!("{head}test/real/a.wav\ttest\treal\treal\ta\t44100\t48000\t1.0\n"),
        )
        .unwrap();
        let m = manifest(dir.path()).unwrap();
        assert_eq!(m.len(), 1);
        assert_eq!(
            (m[0].split.as_str(), m[0].category.as_str(), m[0].native_sr),
            ("test", "real", 44100)
        );
        assert_eq!(m[0].path, dir.path().join("test/real/a.wav"));
        std::fs::write(dir.path().join("manifest.tsv"), format!("{head}x\ttest\n")).unwrap();
        let e = manifest(dir.path()).err().unwrap().to_string();
        assert!(e.contains("line 2"), "{e}");
    }
}
