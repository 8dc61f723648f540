//! Decoding audio files (WAV, FLAC, MP3, OGG Vorbis and the rest of symphonia's formats) into an
//! [`AudioClip`]. Every failure is an [`Error::Audio`] naming the file; the file's rate, channel
//! count, length and sample values are held to [`super::limits`] before and while decoding, and a
//! panic inside the decoder is contained.

use super::limits::{self, SampleReport};
use super::AudioClip;
use crate::contain::contained;
use crate::{Error, Result};
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;
use symphonia::core::audio::SampleBuffer;
use symphonia::core::codecs::{CodecParameters, Decoder, DecoderOptions, CODEC_TYPE_NULL};
use symphonia::core::errors::Error as SymError;
use symphonia::core::formats::{FormatOptions, FormatReader};
use symphonia::core::io::MediaSourceStream;
use symphonia::core::meta::MetadataOptions;
use symphonia::core::probe::Hint;

fn audio_err(path: &Path, reason: impl Into<String>) -> Error {
    Error::Audio {
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

/// Refuses a rate or channel count outside [`super::limits`], naming `path`.
fn check_format(path: &Path, rate: u32, channels: usize) -> Result<()> {
    limits::check_rate(rate)
        .and_then(|()| limits::check_channels(channels))
        .map_err(|e| audio_err(path, e.to_string()))
}

fn is_end_of_stream(e: &SymError) -> bool {
    matches!(e, SymError::IoError(io) if io.kind() == std::io::ErrorKind::UnexpectedEof)
}

/// Reads a whole audio file into a clip at its own sample rate and channel count; a non-finite
/// or out-of-range sample is an error (see [`read_audio_checked`] to repair them instead).
///
/// Errors: the file is missing or unreadable, its format or codec is not supported, its data is
/// corrupt, (lossless codecs) it holds fewer frames than its header promises (truncated), or it is
/// outside [`super::limits`] (rate, channels, length, sample values).
pub fn read_audio(path: impl AsRef<Path>) -> Result<AudioClip> {
    Ok(read_audio_checked(path, false)?.0)
}

/// [`read_audio`], with `repair` choosing what happens to non-finite and out-of-range samples:
/// replaced (NaN by 0, the rest clamped to ±1) and counted in the report, or refused.
pub fn read_audio_checked(
    path: impl AsRef<Path>,
    repair: bool,
) -> Result<(AudioClip, SampleReport)> {
    let path = path.as_ref();
    let file = open(path)?;
    let mut clip = contained(std::panic::AssertUnwindSafe(|| decode_file(path, file)))
        .map_err(|msg| audio_err(path, format!("the decoder failed on this file ({msg})")))??;
    let report =
        limits::check_samples(&mut clip, repair).map_err(|e| audio_err(path, e.to_string()))?;
    Ok((clip, report))
}

/// Opens `path`, refusing folders and empty files, and checks a WAV header's rate and channels
/// before any decoder sees it.
fn open(path: &Path) -> Result<std::fs::File> {
    let mut file = std::fs::File::open(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => audio_err(path, "no such file"),
        _ => audio_err(path, format!("cannot open: {e}")),
    })?;
    match file.metadata() {
        Ok(m) if m.is_dir() => return Err(audio_err(path, "is a folder, not an audio file")),
        Ok(m) if m.len() == 0 => return Err(audio_err(path, "the file is empty")),
        _ => {}
    }
    if let Some((channels, rate)) = wav_format(&mut file) {
        check_format(path, rate, channels as usize)?;
    }
    file.seek(SeekFrom::Start(0))
        .map_err(|e| audio_err(path, format!("cannot read: {e}")))?;
    Ok(file)
}

/// `(channels, sample rate)` of a RIFF/WAVE file's `fmt ` chunk, when the file is one and the
/// chunk is among its first 64 chunks; `None` for anything else (the decoder then decides).
fn wav_format(file: &mut std::fs::File) -> Option<(u16, u32)> {
    let mut head = [0u8; 12];
    file.read_exact(&mut head).ok()?;
    if &head[0..4] != b"RIFF" || &head[8..12] != b"WAVE" {
        return None;
    }
    for _ in 0..64 {
        let mut chunk = [0u8; 8];
        file.read_exact(&mut chunk).ok()?;
        let size = u32::from_le_bytes([chunk[4], chunk[5], chunk[6], chunk[7]]);
        if &chunk[0..4] == b"fmt " {
            let mut fmt = [0u8; 8];
            file.read_exact(&mut fmt).ok()?;
            let channels = u16::from_le_bytes([fmt[2], fmt[3]]);
            let rate = u32::from_le_bytes([fmt[4], fmt[5], fmt[6], fmt[7]]);
            return Some((channels, rate));
        }
        // Chunks are padded to an even size.
        let skip = size as i64 + (size & 1) as i64;
        file.seek(SeekFrom::Current(skip)).ok()?;
    }
    None
}

/// The decoder's view of a file: its format reader, the audio track's decoder and parameters.
struct Stream {
    format: Box<dyn FormatReader>,
    decoder: Box<dyn Decoder>,
    params: CodecParameters,
    track_id: u32,
    lossless: bool,
}

fn probe(path: &Path, file: std::fs::File) -> Result<Stream> {
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
    let format = probed.format;
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
    if let Some(rate) = params.sample_rate {
        limits::check_rate(rate).map_err(|e| audio_err(path, e.to_string()))?;
    }
    if let Some(ch) = params.channels {
        limits::check_channels(ch.count()).map_err(|e| audio_err(path, e.to_string()))?;
    }
    let decoder = symphonia::default::get_codecs()
        .make(&params, &DecoderOptions::default())
        .map_err(|e| audio_err(path, format!("unsupported codec {codec_name} ({e})")))?;
    Ok(Stream {
        format,
        decoder,
        params,
        track_id,
        lossless,
    })
}

/// Decodes every packet of the audio track into one clip, stopping at the length limit.
fn decode_file(path: &Path, file: std::fs::File) -> Result<AudioClip> {
    let mut s = probe(path, file)?;
    let mut rate = s.params.sample_rate;
    let mut num_channels = s.params.channels.map(|c| c.count());
    let mut data: Vec<f32> = Vec::new();
    let mut packets = 0usize;
    loop {
        let packet = match s.format.next_packet() {
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
        if packet.track_id() != s.track_id {
            continue;
        }
        packets += 1;
        let decoded = match s.decoder.decode(&packet) {
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
        let r = *rate.get_or_insert(spec.rate);
        let n = *num_channels.get_or_insert(spec.channels.count());
        if spec.channels.count() != n {
            return Err(audio_err(
                path,
                "the channel count changes inside the stream",
            ));
        }
        if packets == 1 {
            // The first packet fixes the rate and channels (checked once, not per packet).
            check_format(path, r, n)?;
        }
        let frames = data.len() / n + decoded.frames();
        limits::check_length(frames, r, n).map_err(|e| audio_err(path, e.to_string()))?;
        let mut buf = SampleBuffer::<f32>::new(decoded.capacity() as u64, spec);
        buf.copy_interleaved_ref(decoded);
        grow(&mut data, buf.samples().len(), limits::MAX_SAMPLES)
            .map_err(|e| audio_err(path, e))?;
        data.extend_from_slice(buf.samples());
    }
    finish(path, &s, rate, num_channels, data)
}

/// Makes room for `more` samples in `data`, doubling up to `max` and failing with a message (not
/// aborting) when the memory is not there.
fn grow(data: &mut Vec<f32>, more: usize, max: usize) -> std::result::Result<(), String> {
    let need = data.len() + more;
    if need <= data.capacity() {
        return Ok(());
    }
    let target = need.max(data.capacity() * 2).min(max.max(need));
    data.try_reserve_exact(target - data.len()).map_err(|_| {
        format!(
            "not enough memory to decode it ({} MB needed)",
            target * 4 / 1_000_000
        )
    })
}

/// The decoded samples as a clip, refusing an empty or (lossless) truncated stream.
fn finish(
    path: &Path,
    s: &Stream,
    rate: Option<u32>,
    num_channels: Option<usize>,
    data: Vec<f32>,
) -> Result<AudioClip> {
    let (Some(rate), Some(n)) = (rate, num_channels) else {
        return Err(audio_err(path, "no decodable audio in the file"));
    };
    if n == 0 || data.is_empty() {
        return Err(audio_err(path, "the file holds no audio samples"));
    }
    let frames = data.len() / n;
    if let Some(expected) = s.params.n_frames {
        if s.lossless && (frames as u64) < expected {
            return Err(audio_err(
                path,
                format!("truncated or corrupt: the header promises {expected} frames, {frames} could be decoded"),
            ));
        }
    }
    AudioClip::from_interleaved(rate, n, &data[..frames * n])
        .map_err(|e| audio_err(path, e.to_string()))
}
