//! Spectrogram images (PNG) for before/after comparisons: log power in dB over a fixed 80 dB range,
//! low frequencies at the bottom, one panel per signal stacked top to bottom.

use super::stft::power_spectrogram;
use crate::{Error, Result};
use std::path::Path;

/// STFT size of the images (frequency resolution: `rate / 1024` Hz per row).
pub const IMAGE_N_FFT: usize = 1024;
/// Dynamic range shown, in dB below the loudest bin of all panels.
pub const RANGE_DB: f64 = 80.0;
/// Widest image, in columns (longer signals average neighbouring frames).
pub const MAX_WIDTH: usize = 1600;

/// A colour map from black through purple and orange to pale yellow, `t` in [0, 1].
fn colour(t: f64) -> [u8; 3] {
    const STOPS: [[f64; 3]; 5] = [
        [0.0, 0.0, 4.0],
        [87.0, 16.0, 110.0],
        [188.0, 55.0, 84.0],
        [249.0, 142.0, 9.0],
        [252.0, 255.0, 164.0],
    ];
    let x = t.clamp(0.0, 1.0) * (STOPS.len() - 1) as f64;
    let i = (x.floor() as usize).min(STOPS.len() - 2);
    let f = x - i as f64;
    let mut c = [0u8; 3];
    for (k, v) in c.iter_mut().enumerate() {
        *v = (STOPS[i][k] * (1.0 - f) + STOPS[i + 1][k] * f).round() as u8;
    }
    c
}

/// dB spectrogram `(columns, bins)` of a signal, frames averaged down to at most `width` columns.
fn db_columns(x: &[f32], width: usize) -> Result<Vec<Vec<f64>>> {
    // A signal shorter than one frame is drawn as one frame, zero-padded.
    let padded;
    let x = if x.len() < IMAGE_N_FFT {
        padded = [x, &vec![0.0; IMAGE_N_FFT - x.len()]].concat();
        &padded[..]
    } else {
        x
    };
    let s = power_spectrogram(x, IMAGE_N_FFT, IMAGE_N_FFT / 4)?;
    let group = s.len().div_ceil(width).max(1);
    Ok(s.chunks(group)
        .map(|ch| {
            (0..ch[0].len())
                .map(|k| {
                    10.0 * (ch.iter().map(|f| f[k]).sum::<f64>() / ch.len() as f64)
                        .max(1e-20)
                        .log10()
                })
                .collect()
        })
        .collect())
}

/// Writes one PNG with a spectrogram panel per signal (e.g. before and after), separated by a grey
/// line. Panels share one dB scale; the image is as wide as the longest panel.
pub fn write_spectrogram_png(path: impl AsRef<Path>, panels: &[&[f32]]) -> Result<()> {
    let path = path.as_ref();
    if panels.is_empty() {
        return Err(Error::input("panels", "no signal to draw"));
    }
    let cols: Vec<Vec<Vec<f64>>> = panels
        .iter()
        .map(|p| db_columns(p, MAX_WIDTH))
        .collect::<Result<_>>()?;
    let top = cols
        .iter()
        .flatten()
        .flatten()
        .fold(f64::NEG_INFINITY, |m, v| m.max(*v));
    let bins = IMAGE_N_FFT / 2 + 1;
    let width = cols.iter().map(Vec::len).max().unwrap_or(1);
    let height = panels.len() * bins + (panels.len() - 1) * 2;
    let mut rgb = vec![0u8; width * height * 3];
    for (p, c) in cols.iter().enumerate() {
        let y0 = p * (bins + 2);
        for (x, col) in c.iter().enumerate() {
            for (k, db) in col.iter().enumerate() {
                let y = y0 + bins - 1 - k;
                let px = colour(1.0 - (top - db) / RANGE_DB);
                rgb[(y * width + x) * 3..][..3].copy_from_slice(&px);
            }
        }
        if p + 1 < panels.len() {
            for y in y0 + bins..y0 + bins + 2 {
                rgb[y * width * 3..(y + 1) * width * 3].fill(128);
            }
        }
    }
    let err = |reason: String| Error::Image {
        path: path.to_path_buf(),
        reason,
    };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        if !dir.is_dir() {
            return Err(err(format!("the folder {} does not exist", dir.display())));
        }
    }
    crate::files::write_atomic(path, |tmp| {
        let file = std::fs::File::create(tmp).map_err(|e| err(format!("cannot create: {e}")))?;
        let mut enc = png::Encoder::new(std::io::BufWriter::new(file), width as u32, height as u32);
        enc.set_color(png::ColorType::Rgb);
        enc.set_depth(png::BitDepth::Eight);
        let mut w = enc
            .write_header()
            .map_err(|e| err(format!("cannot write: {e}")))?;
        w.write_image_data(&rgb)
            .map_err(|e| err(format!("cannot write: {e}")))?;
        w.finish().map_err(|e| err(format!("cannot finish: {e}")))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_a_decodable_png_with_one_panel_per_signal() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.png");
        let a: Vec<f32> = (0..20_000).map(|i| (i as f32 * 0.3).sin()).collect();
        let b: Vec<f32> = (0..10_000).map(|i| (i as f32 * 0.05).sin() * 0.1).collect();
        write_spectrogram_png(&path, &[&a, &b]).unwrap();
        let dec = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(&path).unwrap()));
        let reader = dec.read_info().unwrap();
        let info = reader.info();
        assert_eq!(info.height as usize, 2 * 513 + 2);
        assert_eq!(info.width as usize, 1 + 20_000 / 256);
        assert!(write_spectrogram_png(&path, &[]).is_err());
        // Shorter than one frame: one zero-padded column.
        write_spectrogram_png(&path, &[&a[..400]]).unwrap();
        let dec = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(&path).unwrap()));
        assert_eq!(dec.read_info().unwrap().info().width, 1 + 1024 / 256);
    }

    #[test]
    fn colour_map_runs_dark_to_bright() {
        let lum = |c: [u8; 3]| c.iter().map(|v| *v as u32).sum::<u32>();
        assert!(lum(colour(0.0)) < lum(colour(0.5)) && lum(colour(0.5)) < lum(colour(1.0)));
    }
}
