//! Writing an [`AudioClip`] as a WAV file (hound).

use super::AudioClip;
use crate::{Error, Result};
use std::path::Path;

/// Sample format of a written WAV file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WavEncoding {
    /// 32-bit IEEE float: lossless for the pipeline's f32 samples (values beyond ±1 survive).
    #[default]
    Float32,
    /// 16-bit integer PCM, clipped to [-1, 1] and rounded.
    Pcm16,
}

/// Writes `clip` to `path` as WAV; any failure is an [`Error::Audio`] naming the file.
pub fn write_wav(path: impl AsRef<Path>, clip: &AudioClip, encoding: WavEncoding) -> Result<()> {
    let path = path.as_ref();
    let err = |reason: String| Error::Audio {
        path: path.to_path_buf(),
        reason,
    };
    let channels =
        u16::try_from(clip.num_channels()).map_err(|_| err("too many channels for WAV".into()))?;
    let (bits, format) = match encoding {
        WavEncoding::Float32 => (32, hound::SampleFormat::Float),
        WavEncoding::Pcm16 => (16, hound::SampleFormat::Int),
    };
    let spec = hound::WavSpec {
        channels,
        sample_rate: clip.sample_rate(),
        bits_per_sample: bits,
        sample_format: format,
    };
    let mut w =
        hound::WavWriter::create(path, spec).map_err(|e| err(format!("cannot create: {e}")))?;
    for v in clip.interleaved() {
        let r = match encoding {
            WavEncoding::Float32 => w.write_sample(v),
            WavEncoding::Pcm16 => w.write_sample((v.clamp(-1.0, 1.0) * 32767.0).round() as i16),
        };
        r.map_err(|e| err(format!("cannot write: {e}")))?;
    }
    w.finalize().map_err(|e| err(format!("cannot finish: {e}")))
}
