//! A planar stereo audio buffer with a fixed capacity: the unit of memory that moves between the
//! audio thread and the worker (the dasp habit: the caller owns buffer memory).

/// Stereo audio, planar, at `rate` Hz. `len` frames are valid out of a fixed capacity.
#[derive(Debug, Clone, PartialEq)]
pub struct AudioBuf {
    /// Sample rate, Hz.
    pub rate: f64,
    /// Host-transport position of the first frame, samples at `rate` (for transport sync).
    pub anchor: i64,
    len: usize,
    chans: [Vec<f32>; 2],
}

impl AudioBuf {
    /// An empty buffer holding up to `capacity` frames (allocates both channels now, zeroed).
    pub fn with_capacity(capacity: usize, rate: f64) -> Self {
        Self {
            rate,
            anchor: 0,
            len: 0,
            chans: [vec![0.0; capacity], vec![0.0; capacity]],
        }
    }

    /// A full buffer from two equal-length channels (the shorter one decides the length).
    pub fn from_channels(left: Vec<f32>, right: Vec<f32>, rate: f64) -> Self {
        let len = left.len().min(right.len());
        let mut b = Self {
            rate,
            anchor: 0,
            len,
            chans: [left, right],
        };
        b.chans[0].truncate(len);
        b.chans[1].truncate(len);
        b
    }

    /// Valid frames.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when no frame is valid.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Frames it can hold.
    pub fn capacity(&self) -> usize {
        self.chans[0].len()
    }

    /// True when `len == capacity`.
    pub fn is_full(&self) -> bool {
        self.len >= self.capacity()
    }

    /// Forgets the content (keeps the memory).
    pub fn clear(&mut self) {
        self.len = 0;
    }

    /// Appends one frame; false (and nothing written) when full. Never allocates.
    #[inline]
    pub fn push(&mut self, left: f32, right: f32) -> bool {
        if self.len >= self.capacity() {
            return false;
        }
        self.chans[0][self.len] = left;
        self.chans[1][self.len] = right;
        self.len += 1;
        true
    }

    /// The frame at `i`, if valid.
    #[inline]
    pub fn frame(&self, i: usize) -> Option<(f32, f32)> {
        (i < self.len).then(|| (self.chans[0][i], self.chans[1][i]))
    }

    /// Valid samples of channel `c` (0 = left, 1 = right).
    pub fn channel(&self, c: usize) -> &[f32] {
        &self.chans[c.min(1)][..self.len]
    }

    /// Valid samples of channel `c`, mutable.
    pub fn channel_mut(&mut self, c: usize) -> &mut [f32] {
        &mut self.chans[c.min(1)][..self.len]
    }

    /// Duration in seconds.
    pub fn seconds(&self) -> f64 {
        self.len as f64 / self.rate
    }
}
