//! Clips in and out of a network: channel layout, rates and lengths.

use crate::audio::AudioClip;
use crate::{Error, Result};
use candle_core::{Device, Tensor};

/// How a clip's channels were laid out for the network.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// `(1, channels, length)`: the network takes the clip's channels as they are.
    Native,
    /// `(channels, 1, length)`: a mono network runs each channel as a batch item.
    ChannelsAsBatch,
}

/// The clip as the network's input: channels as batch for a mono network, the clip's channels
/// mixed or repeated to the network's count otherwise.
pub(crate) fn to_model(
    clip: &AudioClip,
    model_channels: usize,
    device: &Device,
) -> Result<(Tensor, Layout)> {
    if model_channels == 1 {
        return Ok((clip.to_batch_tensor(device)?, Layout::ChannelsAsBatch));
    }
    let mapped = clip.with_channels(model_channels).map_err(|_| {
        Error::input(
            "audio channels",
            format!(
                "the clip has {} channels and the model takes {model_channels}; give a mono or {model_channels}-channel clip",
                clip.num_channels()
            ),
        )
    })?;
    Ok((mapped.to_tensor(device)?, Layout::Native))
}

/// The network's output back as a clip at `rate`.
pub(crate) fn from_model(y: &Tensor, layout: Layout, rate: u32) -> Result<AudioClip> {
    let y = y
        .to_device(&Device::Cpu)?
        .to_dtype(candle_core::DType::F32)?;
    let (b, c, _) = y.dims3()?;
    match layout {
        Layout::ChannelsAsBatch if c == 1 => AudioClip::from_tensor(&y, rate),
        Layout::Native if b == 1 => AudioClip::from_tensor(&y, rate),
        _ => Err(Error::input(
            "model output",
            format!("unexpected shape {:?}", y.dims()),
        )),
    }
}

/// Crossfade length where generated audio meets restored input: 10 ms at `rate`.
pub fn seam(rate: u32) -> usize {
    (rate / 100) as usize
}

/// The clip cut or zero-padded to exactly `len` samples (resampling chains can differ by one).
pub fn exact_length(clip: &AudioClip, len: usize) -> Result<AudioClip> {
    let channels = clip
        .channels()
        .iter()
        .map(|c| {
            let mut c = c.clone();
            c.resize(len, 0.0);
            c
        })
        .collect();
    AudioClip::new(clip.sample_rate(), channels)
}

/// Refuses a model's output with NaN or infinite samples (weights that are finite but blow up),
/// naming the model, before it is resampled or handed out.
pub(crate) fn check_finite(clip: &AudioClip, model: &str) -> Result<()> {
    let bad = clip.count_non_finite();
    if bad > 0 {
        return Err(Error::input(
            format!("model {model}"),
            format!("it produced {bad} non-finite samples (NaN or infinity); its weights are probably broken"),
        ));
    }
    Ok(())
}

/// `clip` with `region`'s samples written over it from frame `at` on.
pub(crate) fn splice(clip: &AudioClip, region: &AudioClip, at: usize) -> Result<AudioClip> {
    let channels = clip
        .channels()
        .iter()
        .zip(region.channels())
        .map(|(c, r)| {
            let mut c = c.clone();
            let end = (at + r.len()).min(c.len());
            c[at..end].copy_from_slice(&r[..end - at]);
            c
        })
        .collect();
    AudioClip::new(clip.sample_rate(), channels)
}
