//! Audio in and out of the commands: read any supported file, map its channels onto the model's
//! (channels as batch for mono models), bring it to the model's rate, and write WAV at the model's
//! rate or `--out-rate`.

use adiff_core::audio::{read_audio_checked, resample_clip, write_wav, AudioClip, WavEncoding};
use anyhow::{bail, Result};
use candle_core::{Device, Tensor};
use std::path::Path;

/// How a clip's channels were laid out for the model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// `(1, channels, length)`: the model takes the clip's channels as they are.
    Native,
    /// `(channels, 1, length)`: a mono model runs each channel as a batch item.
    ChannelsAsBatch,
}

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

/// The clip as the model's input tensor: channels as batch for a mono model, the clip's channels
/// mixed or repeated to the model's count otherwise.
pub fn to_model(
    clip: &AudioClip,
    model_channels: usize,
    device: &Device,
) -> Result<(Tensor, Layout)> {
    if model_channels == 1 {
        return Ok((clip.to_batch_tensor(device)?, Layout::ChannelsAsBatch));
    }
    let mapped = match clip.with_channels(model_channels) {
        Ok(c) => c,
        Err(_) => bail!(
            "the input has {} channels and the model takes {model_channels}; give a mono or {model_channels}-channel file",
            clip.num_channels()
        ),
    };
    Ok((mapped.to_tensor(device)?, Layout::Native))
}

/// The model's output tensor back as a clip at `rate`.
pub fn from_model(y: &Tensor, layout: Layout, rate: u32) -> Result<AudioClip> {
    let y = y.to_device(&Device::Cpu)?;
    let (b, c, _) = y.dims3()?;
    match layout {
        Layout::ChannelsAsBatch if c == 1 => Ok(AudioClip::from_tensor(&y, rate)?),
        Layout::Native if b == 1 => Ok(AudioClip::from_tensor(&y, rate)?),
        _ => bail!("unexpected model output shape {:?}", y.dims()),
    }
}

/// Crossfade length where generated audio meets restored input: 10 ms at `rate`.
pub fn seam(rate: u32) -> usize {
    (rate / 100) as usize
}

/// The clip at `rate` (unchanged when it already is).
pub fn at_rate(clip: &AudioClip, rate: u32) -> Result<AudioClip> {
    Ok(resample_clip(clip, rate)?)
}

/// Refuses a model's output that holds NaN or infinite samples (weights that are finite but
/// blow up, for example), naming the model folder, before it is resampled or written.
pub fn check_finite_output(clip: &AudioClip, model: &Path) -> Result<()> {
    let bad = clip.count_non_finite();
    if bad > 0 {
        bail!(
            "the model {} produced {bad} non-finite samples (NaN or infinity); its weights are probably broken",
            model.display()
        );
    }
    Ok(())
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
        Some(r) if r != clip.sample_rate() => at_rate(clip, r)?,
        _ => clip.clone(),
    };
    write_wav(path, &clip, WavEncoding::Float32)?;
    Ok(clip)
}
