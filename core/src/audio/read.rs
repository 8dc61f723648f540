//! Decoding audio files (WAV, FLAC, MP3, OGG Vorbis and the rest of symphonia's formats) into an
//! [`AudioClip`]. Every failure is an [`Error::Audio`] naming the file.

use super::AudioClip;
use crate::{Error, Result};
use std::path::Path;
use symphonia::core::audio::SampleBuffer;
use symphonia::core::codecs::{DecoderOptions, CODEC_TYPE_NULL};
use symphonia::core::errors::Error as SymError;
use symphonia::core::formats::FormatOptions;
use symphonia::core::io::MediaSourceStream;
use symphonia::core::meta::MetadataOptions;
use symphonia::core::probe::Hint;

fn audio_err(path: &Path, reason: impl Into<String>) -> Error {
    Error::Audio {
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

fn is_end_of_stream(e: &SymError) -> bool {
    matches!(e, SymError::IoError(io) if io.kind() == std::io::ErrorKind::UnexpectedEof)
}

/// Reads a whole audio file into a clip at its own sample rate and channel count.
///
/// Errors: the file is missing or unreadable, its format or codec is not supported, its data is
/// corrupt, or (lossless codecs) it holds fewer frames than its header promises (truncated).
pub fn read_audio(path: impl AsRef<Path>) -> Result<AudioClip> {
    let path = path.as_ref();
    let file = std::fs::File::open(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => audio_err(path, "no such file"),
        _ => audio_err(path, format!("cannot open: {e}")),
    })?;
    match file.metadata() {
        Ok(m) if m.is_dir() => return Err(audio_err(path, "is a folder, not an audio file")),
        Ok(m) if m.len() == 0 => return Err(audio_err(path, "the file is empty")),
        _ => {}
    }
    let mss = MediaSourceStream::new(Box::new(file), Default::default());
    let mut hint = Hint::new();
    if let Some(ext) = path.extension().and_then(|e| e.to_str()) {
        hint.with_extension(ext);
    }
    let probed = symphonia::default::get_probe()
        .format(
            &hint,
            mss,
            &FormatOptions::default(),
            &MetadataOptions::default(),
        )
        .map_err(|e| {
            audio_err(
                path,
                format!("unsupported or unrecognised audio format ({e})"),
            )
        })?;
    let mut format = probed.format;
    let track = format
        .tracks()
        .iter()
        .find(|t| t.codec_params.codec != CODEC_TYPE_NULL)
        .ok_or_else(|| audio_err(path, "no audio track"))?;
    let params = track.codec_params.clone();
    let track_id = track.id;
    let codec_name = symphonia::default::get_codecs()
        .get_codec(params.codec)
        .map(|d| d.short_name)
        .unwrap_or("unknown");
    let lossless = codec_name == "flac" || codec_name.starts_with("pcm");
    let mut decoder = symphonia::default::get_codecs()
        .make(&params, &DecoderOptions::default())
        .map_err(|e| audio_err(path, format!("unsupported codec {codec_name} ({e})")))?;

    let mut rate = params.sample_rate;
    let mut num_channels = params.channels.map(|c| c.count());
    let mut data: Vec<f32> = Vec::new();
    let mut packets = 0usize;
    loop {
        let packet = match format.next_packet() {
            Ok(p) => p,
            Err(e) if is_end_of_stream(&e) => break,
            Err(SymError::ResetRequired) => break,
            Err(e) => {
                return Err(audio_err(
                    path,
                    format!("corrupt or truncated stream after {packets} packets ({e})"),
                ))
            }
        };
        if packet.track_id() != track_id {
            continue;
        }
        packets += 1;
        let decoded = match decoder.decode(&packet) {
            Ok(d) => d,
            Err(e) if is_end_of_stream(&e) => break,
            Err(e) => {
                return Err(audio_err(
                    path,
                    format!("corrupt audio data in packet {packets} ({e})"),
                ))
            }
        };
        let spec = *decoded.spec();
        rate.get_or_insert(spec.rate);
        let n = *num_channels.get_or_insert(spec.channels.count());
        if spec.channels.count() != n {
            return Err(audio_err(
                path,
                "the channel count changes inside the stream",
            ));
        }
        let mut buf = SampleBuffer::<f32>::new(decoded.capacity() as u64, spec);
        buf.copy_interleaved_ref(decoded);
        data.extend_from_slice(buf.samples());
    }
    let (Some(rate), Some(n)) = (rate, num_channels) else {
        return Err(audio_err(path, "no decodable audio in the file"));
    };
    if n == 0 || data.is_empty() {
        return Err(audio_err(path, "the file holds no audio samples"));
    }
    let frames = data.len() / n;
    if let Some(expected) = params.n_frames {
        if lossless && (frames as u64) < expected {
            return Err(audio_err(
                path,
                format!("truncated or corrupt: the header promises {expected} frames, {frames} could be decoded"),
            ));
        }
    }
    AudioClip::from_interleaved(rate, n, &data[..frames * n])
        .map_err(|e| audio_err(path, e.to_string()))
}
