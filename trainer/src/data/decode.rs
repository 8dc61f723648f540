//! Decoding a list of files on loader threads: each file is read with `adiff_core::audio`,
//! mapped to the model's channel count and resampled to the model's rate.

use adiff_core::audio::{read_audio, resample_clip};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

/// Peak below which a file counts as silent (-80 dBFS).
pub const SILENCE_PEAK: f32 = 1e-4;

/// One decoded file: planar channels at the model rate.
#[derive(Debug, Clone)]
pub struct Decoded {
    /// `channels` vectors of equal length.
    pub channels: Vec<Vec<f32>>,
}

impl Decoded {
    /// Length in samples (per channel).
    pub fn len(&self) -> usize {
        self.channels.first().map_or(0, Vec::len)
    }

    /// Peak absolute sample value.
    pub fn peak(&self) -> f32 {
        self.channels
            .iter()
            .flatten()
            .fold(0.0f32, |m, v| m.max(v.abs()))
    }
}

/// Decodes one file at `rate` Hz with `channels` channels (a mono mix, or mono repeated).
pub fn decode_one(path: &PathBuf, rate: u32, channels: usize) -> adiff_core::Result<Decoded> {
    let clip = read_audio(path)?.with_channels(channels)?;
    let clip = resample_clip(&clip, rate)?;
    Ok(Decoded {
        channels: clip.into_channels(),
    })
}

/// Decodes `paths` on `threads` threads; the results come back in input order.
pub fn decode_all(
    paths: &[PathBuf],
    rate: u32,
    channels: usize,
    threads: usize,
) -> Vec<adiff_core::Result<Decoded>> {
    let next = AtomicUsize::new(0);
    let slots: Vec<Mutex<Option<adiff_core::Result<Decoded>>>> =
        paths.iter().map(|_| Mutex::new(None)).collect();
    std::thread::scope(|s| {
        for t in 0..threads.clamp(1, paths.len().max(1)) {
            let (next, slots) = (&next, &slots);
            std::thread::Builder::new()
                .name(format!("adiff-decode-{t}"))
                .spawn_scoped(s, move || loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(path) = paths.get(i) else { break };
                    let r = decode_one(path, rate, channels);
                    *slots[i].lock().unwrap_or_else(|e| e.into_inner()) = Some(r);
                })
                .expect("spawning a decoder thread");
        }
    });
    slots
        .into_iter()
        .zip(paths)
        .map(|(m, p)| {
            m.into_inner()
                .unwrap_or_else(|e| e.into_inner())
                .unwrap_or_else(|| {
                    Err(adiff_core::Error::Audio {
                        path: p.clone(),
                        reason: "decoder thread stopped".into(),
                    })
                })
        })
        .collect()
}
