//! Writing audio as WAV (hound), safely: [`WavSink`] streams frames into a temporary file beside
//! the target and renames it into place only when finished ([`crate::files`]), so a failed or
//! interrupted write leaves no partial file and an existing file survives.

use super::limits;
use super::AudioClip;
use crate::files::{commit, temp_beside};
use crate::{Error, Result};
use std::io::BufWriter;
use std::path::{Path, PathBuf};

/// Sample format of a written WAV file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WavEncoding {
    /// 32-bit IEEE float: lossless for the pipeline's f32 samples (values beyond ±1 survive).
    #[default]
    Float32,
    /// 16-bit integer PCM, clipped to [-1, 1] and rounded.
    Pcm16,
}

type Writer = hound::WavWriter<BufWriter<std::fs::File>>;

/// A WAV file being written frame block by frame block; [`WavSink::finish`] puts it in place.
/// Dropped unfinished (an error, a panic), it removes its temporary file and the target is
/// untouched.
pub struct WavSink {
    path: PathBuf,
    tmp: PathBuf,
    writer: Option<Writer>,
    encoding: WavEncoding,
    channels: usize,
    frames: usize,
    max_frames: usize,
}

impl WavSink {
    /// Starts `path` at `rate` with `channels`; the target's folder must exist.
    pub fn create(path: &Path, rate: u32, channels: usize, encoding: WavEncoding) -> Result<Self> {
        let err = |reason: String| Error::Audio {
            path: path.to_path_buf(),
            reason,
        };
        limits::check_rate(rate)
            .and_then(|()| limits::check_channels(channels))
            .map_err(|e| err(e.to_string()))?;
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            if !dir.is_dir() {
                return Err(err(format!("the folder {} does not exist", dir.display())));
            }
        }
        let (bits, format) = match encoding {
            WavEncoding::Float32 => (32, hound::SampleFormat::Float),
            WavEncoding::Pcm16 => (16, hound::SampleFormat::Int),
        };
        let spec = hound::WavSpec {
            channels: channels as u16,
            sample_rate: rate,
            bits_per_sample: bits,
            sample_format: format,
        };
        let tmp = temp_beside(path);
        // A new file only: never truncate or follow whatever else is at the temporary path.
        let file = std::fs::File::options()
            .write(true)
            .create_new(true)
            .open(&tmp)
            .map_err(|e| err(format!("cannot create {}: {e}", tmp.display())))?;
        let writer = hound::WavWriter::new(BufWriter::new(file), spec).map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            err(format!("cannot create: {e}"))
        })?;
        Ok(Self {
            path: path.to_path_buf(),
            tmp,
            writer: Some(writer),
            encoding,
            channels,
            frames: 0,
            max_frames: limits::max_stream_frames(rate, channels, bits as usize / 8),
        })
    }

    fn err(&self, reason: String) -> Error {
        Error::Audio {
            path: self.path.clone(),
            reason,
        }
    }

    /// Appends the frames of planar `channels` (one slice per channel, equal lengths).
    pub fn write(&mut self, channels: &[&[f32]]) -> Result<()> {
        if channels.len() != self.channels {
            return Err(self.err(format!(
                "got {} channels for a {}-channel file",
                channels.len(),
                self.channels
            )));
        }
        let n = channels.first().map_or(0, |c| c.len());
        if channels.iter().any(|c| c.len() != n) {
            return Err(self.err("channels of unequal length".into()));
        }
        if self.frames + n > self.max_frames {
            return Err(self.err(format!(
                "too long: more than {} frames (the length limit)",
                self.max_frames
            )));
        }
        let encoding = self.encoding;
        let w = self
            .writer
            .as_mut()
            .ok_or_else(|| Error::input("WavSink", "written after finish"))?;
        let mut result = Ok(());
        'frames: for i in 0..n {
            for c in channels {
                result = match encoding {
                    WavEncoding::Float32 => w.write_sample(c[i]),
                    WavEncoding::Pcm16 => {
                        w.write_sample((c[i].clamp(-1.0, 1.0) * 32767.0).round() as i16)
                    }
                };
                if result.is_err() {
                    break 'frames;
                }
            }
        }
        result.map_err(|e| self.err(format!("cannot write: {e}")))?;
        self.frames += n;
        Ok(())
    }

    /// Appends a clip's frames (its channel count must be the sink's).
    pub fn write_clip(&mut self, clip: &AudioClip) -> Result<()> {
        let planar: Vec<&[f32]> = clip.channels().iter().map(|c| c.as_slice()).collect();
        self.write(&planar)
    }

    /// Frames written so far.
    pub fn frames(&self) -> usize {
        self.frames
    }

    /// Finishes the header, syncs, and renames the file into place.
    pub fn finish(mut self) -> Result<()> {
        let Some(w) = self.writer.take() else {
            return Err(self.err("finished twice".into()));
        };
        if let Err(e) = w.finalize() {
            let _ = std::fs::remove_file(&self.tmp);
            return Err(self.err(format!("cannot finish: {e}")));
        }
        commit(&self.tmp, &self.path)
    }
}

impl Drop for WavSink {
    fn drop(&mut self) {
        if self.writer.take().is_some() {
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

/// Writes `clip` to `path` as WAV, safely (see [`WavSink`]); any failure is an [`Error::Audio`]
/// naming the file.
pub fn write_wav(path: impl AsRef<Path>, clip: &AudioClip, encoding: WavEncoding) -> Result<()> {
    let mut sink = WavSink::create(
        path.as_ref(),
        clip.sample_rate(),
        clip.num_channels(),
        encoding,
    )?;
    sink.write_clip(clip)?;
    sink.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sink_streams_blocks_and_an_unfinished_one_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.wav");
        std::fs::write(&path, b"old").unwrap();
        {
            let mut sink = WavSink::create(&path, 8_000, 2, WavEncoding::Float32).unwrap();
            sink.write(&[&[0.1, 0.2], &[0.3, 0.4]]).unwrap();
            // Dropped without finish: the old file stays, no temporary is left.
        }
        assert_eq!(std::fs::read(&path).unwrap(), b"old");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
        let mut sink = WavSink::create(&path, 8_000, 2, WavEncoding::Float32).unwrap();
        sink.write(&[&[0.1, 0.2], &[0.3, 0.4]]).unwrap();
        sink.write(&[&[0.5], &[0.6]]).unwrap();
        assert!(sink.write(&[&[0.5]]).is_err(), "wrong channel count");
        sink.finish().unwrap();
        let clip = super::super::read_audio(&path).unwrap();
        assert_eq!(clip.channels()[0], vec![0.1, 0.2, 0.5]);
        assert_eq!(clip.channels()[1], vec![0.3, 0.4, 0.6]);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn a_missing_folder_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nope").join("out.wav");
        let clip = AudioClip::mono(8_000, vec![0.0; 4]).unwrap();
        let msg = write_wav(&path, &clip, WavEncoding::Pcm16)
            .unwrap_err()
            .to_string();
        assert!(
            msg.contains("nope") && msg.contains("does not exist"),
            "{msg}"
        );
    }
}
