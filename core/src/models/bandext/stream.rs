//! Band extension of clips of any length in bounded memory: the clip is cut into overlapping
//! chunks, each upsampled on its own, and neighbours are crossfaded linearly over their overlap,
//! so that each finished block of output frames can be written out (or kept) as soon as it is
//! known. A clip no longer than one chunk is upsampled in one piece, exactly as
//! [`BandExtension::upsample_clip`] does.

use super::stft::N_FFT;
use super::BandExtension;
use crate::audio::AudioClip;
use crate::noise::NoiseSource;
use crate::Result;

/// Output samples per chunk: about 130 bytes of working memory per output sample makes a chunk
/// cost about 270 MB whatever the clip's length.
pub const CHUNK_OUTPUT: usize = 1 << 21;
/// Output samples two neighbouring chunks share: four STFT frames, beyond the reach of either
/// chunk's edge effects at the middle of the crossfade.
pub const OVERLAP_OUTPUT: usize = 4 * N_FFT;

/// The chunking at `factor`: chunk and overlap, in input samples.
pub fn chunking(factor: usize) -> (usize, usize) {
    let k = factor.max(1);
    (CHUNK_OUTPUT / k, (OVERLAP_OUTPUT / k).max(1))
}

/// Upsamples `clip` by `factor`, handing blocks of output frames (planar, one slice per channel,
/// `factor` x the input's length in all) to `emit` in order; `noise` supplies every fill.
pub fn upsample_streaming(
    model: &BandExtension,
    clip: &AudioClip,
    factor: usize,
    noise: &mut dyn NoiseSource,
    emit: &mut dyn FnMut(&[&[f32]]) -> Result<()>,
) -> Result<()> {
    let (chunk, overlap) = chunking(factor);
    let k = factor;
    process_chunks(
        clip,
        chunk,
        overlap,
        k,
        &mut |piece| {
            piece
                .iter()
                .map(|c| {
                    let mut y = model.upsample_signal(c, k, noise)?;
                    y.resize(c.len() * k, 0.0);
                    Ok(y)
                })
                .collect()
        },
        emit,
    )
}

/// Appends a block of planar frames (one slice per channel) to `channels`: how a caller keeps
/// what [`upsample_streaming`] or [`process_chunks`] hands out.
pub fn append_block(channels: &mut [Vec<f32>], block: &[&[f32]]) {
    for (c, b) in channels.iter_mut().zip(block) {
        c.extend_from_slice(b);
    }
}

/// What [`process_chunks`] runs on each chunk: one slice per channel in, one vector per channel
/// out.
pub type ChunkJob<'a> = dyn FnMut(&[&[f32]]) -> Result<Vec<Vec<f32>>> + 'a;

/// Runs `per_chunk` over `clip` cut into chunks of `chunk` input frames that overlap by
/// `overlap`; each call gets one slice per channel and returns `scale` output frames per input
/// frame per channel. Neighbours are crossfaded linearly over their overlap and the finished
/// frames handed to `emit` in order (`scale` x the input's length in all), so memory does not
/// grow with the clip.
pub fn process_chunks(
    clip: &AudioClip,
    chunk: usize,
    overlap: usize,
    scale: usize,
    per_chunk: &mut ChunkJob<'_>,
    emit: &mut dyn FnMut(&[&[f32]]) -> Result<()>,
) -> Result<()> {
    let n = clip.len();
    let chunk = chunk.max(overlap + 1);
    let mut tail: Option<Vec<Vec<f32>>> = None;
    let mut start = 0;
    loop {
        let end = (start + chunk).min(n);
        let piece: Vec<&[f32]> = clip.channels().iter().map(|c| &c[start..end]).collect();
        let mut ys = per_chunk(&piece)?;
        for y in &mut ys {
            y.resize((end - start) * scale, 0.0);
        }
        if let Some(prev) = tail.take() {
            crossfade(&prev, &mut ys);
        }
        let last = end == n;
        let keep_from = if last {
            ys[0].len()
        } else {
            ys[0].len() - overlap * scale
        };
        let block: Vec<&[f32]> = ys.iter().map(|y| &y[..keep_from]).collect();
        emit(&block)?;
        if last {
            return Ok(());
        }
        tail = Some(ys.iter().map(|y| y[keep_from..].to_vec()).collect());
        start = end - overlap;
    }
}

/// Blends `prev` (the previous chunk's last frames) into the start of `next` in place, linearly
/// from `prev` to `next`.
fn crossfade(prev: &[Vec<f32>], next: &mut [Vec<f32>]) {
    let len = prev[0].len();
    for (p, y) in prev.iter().zip(next.iter_mut()) {
        for i in 0..len {
            let w = (i as f32 + 0.5) / len as f32;
            y[i] = p[i] * (1.0 - w) + y[i] * w;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::noise::SeededNoise;

    /// The shipped upsampler; `phase_iters: 0` (shaped noise) keeps the long test quick.
    fn shipped(phase_iters: usize) -> BandExtension {
        let text = crate::render::shipped::UPSAMPLER_CONFIG.replace(
            "\"phase_iters\": 32",
            &format!("\"phase_iters\": {phase_iters}"),
        );
        let weights = crate::render::shipped::UPSAMPLER_WEIGHTS;
        BandExtension::from_bytes(&text, weights, "models/upsampler").unwrap()
    }

    fn collect(model: &BandExtension, clip: &AudioClip, k: usize, seed: u64) -> Vec<Vec<f32>> {
        let mut out = vec![Vec::new(); clip.num_channels()];
        let mut noise = SeededNoise::new(seed);
        upsample_streaming(model, clip, k, &mut noise, &mut |block| {
            append_block(&mut out, block);
            Ok(())
        })
        .unwrap();
        out
    }

    fn tone(rate: u32, n: usize) -> Vec<f32> {
        (0..n)
            .map(|i| {
                (0.3 * (i as f64 * 440.0 * 2.0 * std::f64::consts::PI / rate as f64).sin()) as f32
            })
            .collect()
    }

    #[test]
    fn a_short_clip_is_the_whole_clip_upsampled_once() {
        let model = shipped(32);
        let clip =
            AudioClip::new(12_000, vec![tone(12_000, 30_000), tone(12_000, 30_000)]).unwrap();
        let whole = model
            .upsample_clip(&clip, 4, &mut SeededNoise::new(3))
            .unwrap();
        let streamed = collect(&model, &clip, 4, 3);
        for (w, s) in whole.channels().iter().zip(&streamed) {
            assert_eq!(s.len(), 120_000);
            assert_eq!(&w[..], &s[..]);
        }
    }

    #[test]
    fn a_long_clip_has_the_exact_length_and_the_whole_clip_s_known_band_across_joins() {
        let model = shipped(0);
        let k = 8;
        let (chunk, overlap) = chunking(k);
        let n = chunk * 2 + chunk / 3;
        // A chirp, so a misaligned or missing chunk shows in the known band.
        let x: Vec<f32> = (0..n)
            .map(|i| {
                let t = i as f64 / 6_000.0;
                (0.3 * (2.0 * std::f64::consts::PI * (100.0 * t + 2.0 * t * t)).sin()) as f32
            })
            .collect();
        let clip = AudioClip::mono(6_000, x).unwrap();
        let out = collect(&model, &clip, k, 1);
        assert_eq!(out[0].len(), n * k);
        assert!(out[0].iter().all(|v| v.is_finite()));
        // The fill lies above the input's band, so bringing both outputs back down by k leaves the
        // known band: streamed and whole-clip must agree there, around each join too.
        let whole = model
            .upsample_clip(&clip, k, &mut SeededNoise::new(9))
            .unwrap();
        let down = |y: &[f32]| super::super::sinc_down(y, k).unwrap();
        let (a, b) = (down(&out[0]), down(&whole.channels()[0]));
        for join in [chunk - overlap, 2 * (chunk - overlap)] {
            let range = join - 4 * overlap..join + 4 * overlap;
            let worst = range.map(|i| (a[i] - b[i]).abs()).fold(0f32, f32::max);
            assert!(
                worst < 2e-3,
                "known band differs by {worst} around input sample {join}"
            );
        }
    }
}
