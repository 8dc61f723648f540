//! Random training windows and the fixed validation windows.
//!
//! A window is drawn by picking a file with probability proportional to its length (so every
//! sample of the training set is equally likely to be seen) and a uniform offset inside it.
//! Files shorter than the window (kept with `--short pad`) start at 0 and are padded with zeros.
//! The generator is the portable [`SeededNoise`], so the order is the same on every machine and
//! its state goes into checkpoints.

use super::decode::Decoded;
use adiff_core::SeededNoise;

/// Draws windows of `len` samples from `clips`.
#[derive(Debug, Clone)]
pub struct WindowSampler {
    rng: SeededNoise,
    /// Windows drawn so far.
    pub windows: u64,
    /// Cumulative weights (file lengths), for the file draw.
    cumulative: Vec<u64>,
    len: usize,
}

impl WindowSampler {
    /// A sampler over `clips` (non-empty) from a generator state.
    pub fn new(clips: &[Decoded], len: usize, rng: SeededNoise, windows: u64) -> Self {
        let mut total = 0u64;
        let cumulative = clips
            .iter()
            .map(|c| {
                total += c.len().max(1) as u64;
                total
            })
            .collect();
        Self {
            rng,
            windows,
            cumulative,
            len,
        }
    }

    /// The generator state (for checkpoints).
    pub fn rng_state(&self) -> [u64; 4] {
        self.rng.state()
    }

    /// `(file index, offset)` of the next window.
    pub fn next_window(&mut self, clips: &[Decoded]) -> (usize, usize) {
        let total = *self.cumulative.last().unwrap_or(&1);
        let r = self.rng.next_int(0, total as i64) as u64;
        let file = self
            .cumulative
            .partition_point(|&c| c <= r)
            .min(clips.len().saturating_sub(1));
        let room = clips[file].len().saturating_sub(self.len);
        let offset = if room == 0 {
            0
        } else {
            self.rng.next_int(0, room as i64 + 1) as usize
        };
        self.windows += 1;
        (file, offset)
    }

    /// A batch `(batch, channels, len)` flattened row-major.
    pub fn next_batch(&mut self, clips: &[Decoded], batch: usize) -> Vec<f32> {
        let ch = clips.first().map_or(1, |c| c.channels.len());
        let mut out = vec![0.0f32; batch * ch * self.len];
        for b in 0..batch {
            let (file, offset) = self.next_window(clips);
            cut(
                &clips[file],
                offset,
                self.len,
                &mut out[b * ch * self.len..(b + 1) * ch * self.len],
            );
        }
        out
    }
}

/// Copies `len` samples of every channel of `clip` from `offset` into `dst` (`channels * len`);
/// past the end of the clip `dst` is left as it is (callers pass zeros: the padding).
pub fn cut(clip: &Decoded, offset: usize, len: usize, dst: &mut [f32]) {
    for (c, ch) in clip.channels.iter().enumerate() {
        let src = &ch[offset.min(ch.len())..(offset + len).min(ch.len())];
        dst[c * len..c * len + src.len()].copy_from_slice(src);
    }
}

/// Up to `count` validation windows, spread evenly over the validation files and over each
/// file's length (no randomness: the same windows at every evaluation and after a resume).
/// Returns the flattened `(n, channels, len)` data and `n`.
pub fn validation_windows(clips: &[Decoded], len: usize, count: usize) -> (Vec<f32>, usize) {
    if clips.is_empty() || count == 0 {
        return (Vec::new(), 0);
    }
    let ch = clips[0].channels.len();
    let per_file: Vec<usize> = (0..clips.len())
        .map(|i| count / clips.len() + usize::from(i < count % clips.len()))
        .collect();
    let mut out = Vec::new();
    let mut n = 0;
    for (clip, &k) in clips.iter().zip(&per_file) {
        let fit = (clip.len() / len.max(1)).max(1);
        let k = k.min(fit);
        let room = clip.len().saturating_sub(len);
        for j in 0..k {
            let offset = if k > 1 { room * j / (k - 1) } else { room / 2 };
            let start = out.len();
            out.resize(start + ch * len, 0.0);
            cut(clip, offset, len, &mut out[start..]);
            n += 1;
        }
    }
    (out, n)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn clip(n: usize, value: f32) -> Decoded {
        Decoded {
            channels: vec![(0..n).map(|i| value + i as f32).collect()],
        }
    }

    #[test]
    fn windows_lie_inside_their_file_and_follow_the_length_weights() {
        let clips = vec![clip(100, 0.0), clip(900, 10_000.0)];
        let mut s = WindowSampler::new(&clips, 10, SeededNoise::new(1), 0);
        let mut counts = [0usize; 2];
        for _ in 0..4000 {
            let (f, o) = s.next_window(&clips);
            assert!(o + 10 <= clips[f].len());
            counts[f] += 1;
        }
        let frac = counts[0] as f64 / 4000.0;
        assert!((frac - 0.1).abs() < 0.02, "{frac}");
        assert_eq!(s.windows, 4000);
    }

    #[test]
    fn same_state_same_batches_and_short_files_are_zero_padded() {
        let clips = vec![clip(5, 1.0), clip(50, 100.0)];
        let mut a = WindowSampler::new(&clips, 8, SeededNoise::new(3), 0);
        a.next_batch(&clips, 3);
        let mut b =
            WindowSampler::new(&clips, 8, SeededNoise::from_state(a.rng_state()), a.windows);
        assert_eq!(a.next_batch(&clips, 4), b.next_batch(&clips, 4));
        let mut dst = vec![9.0f32; 8];
        cut(&clips[0], 0, 8, &mut dst[..]);
        assert_eq!(dst, vec![1.0, 2.0, 3.0, 4.0, 5.0, 9.0, 9.0, 9.0]);
        let (v, n) = validation_windows(&clips, 8, 4);
        assert_eq!(n, 1 + 2);
        assert_eq!(&v[..8], &[1.0, 2.0, 3.0, 4.0, 5.0, 0.0, 0.0, 0.0]);
        assert_eq!(v[8], 100.0);
        assert_eq!(v[23], 149.0);
    }
}
