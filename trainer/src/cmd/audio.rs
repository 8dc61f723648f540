//! Audio in and out of the commands: read any supported file, and write WAV at the result's rate
//! or `--out-rate`.

use adiff_core::audio::spectrogram::write_spectrogram_png;
use adiff_core::audio::{read_audio_checked, resample_clip, write_wav, AudioClip, WavEncoding};
use anyhow::{bail, Context, Result};
use std::path::Path;

/// Reads an audio file (one clear error naming the file when it cannot); with `repair`, bad
/// samples are replaced and counted in a note instead of refused.
pub fn read_input(path: &Path, repair: bool) -> Result<AudioClip> {
    let (clip, report) = read_audio_checked(path, repair)?;
    if !report.is_clean() {
        println!(
            "note: {}: replaced {} non-finite and clamped {} out-of-range samples (--repair-samples)",
            path.display(),
            report.non_finite,
            report.out_of_range
        );
    }
    Ok(clip)
}

/// Writes `clip` as a 32-bit float WAV, resampled to `out_rate` when given; a clip with a
/// non-finite sample is refused (nothing is written).
pub fn write_output(path: &Path, clip: &AudioClip, out_rate: Option<u32>) -> Result<AudioClip> {
    if clip.count_non_finite() > 0 {
        bail!(
            "the result holds non-finite samples (NaN or infinity); {} was not written",
            path.display()
        );
    }
    let clip = match out_rate {
        Some(r) if r != clip.sample_rate() => resample_clip(clip, r)?,
        _ => clip.clone(),
    };
    write_wav(path, &clip, WavEncoding::Float32)?;
    Ok(clip)
}

/// A before/after spectrogram PNG: `input` brought to `output`'s rate (top), `output` (bottom).
pub fn write_before_after(png: &Path, input: &AudioClip, output: &AudioClip) -> Result<()> {
    let before = resample_clip(input, output.sample_rate())?.with_channels(1)?;
    let after = output.with_channels(1)?;
    write_spectrogram_png(png, &[&before.channels()[0], &after.channels()[0]])
        .context("writing the spectrogram")?;
    Ok(())
}
