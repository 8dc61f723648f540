//! Audio in and out of the library: [`AudioClip`] and its tensor forms, file decoding (symphonia)
//! and WAV writing (hound), I/O resampling (rubato), the reference's windowed-sinc `resample`
//! (`utils.py`, audio-diffusion-pytorch 0.0.61), windowed processing of long clips, the
//! evaluation metrics and spectrogram images.

pub mod bandwidth;
pub mod clip;
pub mod limits;
pub mod rate;
pub mod read;
pub mod sinc;
pub mod spectrogram;
pub mod splice;
pub mod stft;
pub mod windows;
pub mod write;

pub use clip::AudioClip;
pub use rate::resample_clip;
pub use read::{read_audio, read_audio_checked};
pub use sinc::{downsample, resample, upsample};
pub use windows::{process_in_windows, WindowInfo};
pub use write::{write_wav, WavEncoding, WavSink};
