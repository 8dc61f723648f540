//! `AudioClip`: decoded audio (rate, planar channels) and its tensor forms `(batch, channels, length)`.

use crate::{Error, Result};
use candle_core::{DType, Device, Tensor};

/// A clip of audio: a sample rate and one `Vec<f32>` per channel, all the same length.
#[derive(Debug, Clone, PartialEq)]
pub struct AudioClip {
    sample_rate: u32,
    channels: Vec<Vec<f32>>,
}

impl AudioClip {
    /// A clip from planar channels; fails on no channels, unequal lengths or a zero rate.
    pub fn new(sample_rate: u32, channels: Vec<Vec<f32>>) -> Result<Self> {
        if sample_rate == 0 {
            return Err(Error::input("sample_rate", "must be positive"));
        }
        let Some(first) = channels.first() else {
            return Err(Error::input(
                "channels",
                "a clip needs at least one channel",
            ));
        };
        if let Some((i, c)) = channels
            .iter()
            .enumerate()
            .find(|(_, c)| c.len() != first.len())
        {
            return Err(Error::input(
                "channels",
                format!(
                    "channel {i} has {} samples, channel 0 has {}",
                    c.len(),
                    first.len()
                ),
            ));
        }
        Ok(Self {
            sample_rate,
            channels,
        })
    }

    /// A one-channel clip.
    pub fn mono(sample_rate: u32, samples: Vec<f32>) -> Result<Self> {
        Self::new(sample_rate, vec![samples])
    }

    /// A clip from interleaved frames (`l r l r ...`).
    pub fn from_interleaved(sample_rate: u32, num_channels: usize, data: &[f32]) -> Result<Self> {
        if num_channels == 0 || !data.len().is_multiple_of(num_channels) {
            return Err(Error::input(
                "data",
                format!(
                    "{} samples do not split into {num_channels} channels",
                    data.len()
                ),
            ));
        }
        let channels = (0..num_channels)
            .map(|c| data.iter().skip(c).step_by(num_channels).copied().collect())
            .collect();
        Self::new(sample_rate, channels)
    }

    /// Sample rate in Hz.
    pub fn sample_rate(&self) -> u32 {
        self.sample_rate
    }

    /// Number of channels.
    pub fn num_channels(&self) -> usize {
        self.channels.len()
    }

    /// Length in samples (frames).
    pub fn len(&self) -> usize {
        self.channels[0].len()
    }

    /// True when the clip has no samples.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Duration in seconds.
    pub fn duration_secs(&self) -> f64 {
        self.len() as f64 / self.sample_rate as f64
    }

    /// The planar channels.
    pub fn channels(&self) -> &[Vec<f32>] {
        &self.channels
    }

    /// The samples, one `Vec` per channel, for editing in place (lengths stay as they are).
    pub fn channels_mut(&mut self) -> &mut [Vec<f32>] {
        &mut self.channels
    }

    /// How many samples are NaN or infinite.
    pub fn count_non_finite(&self) -> usize {
        self.channels
            .iter()
            .map(|c| c.iter().filter(|v| !v.is_finite()).count())
            .sum()
    }

    /// Consumes the clip into its planar channels.
    pub fn into_channels(self) -> Vec<Vec<f32>> {
        self.channels
    }

    /// The frames interleaved (`l r l r ...`).
    pub fn interleaved(&self) -> Vec<f32> {
        let (n, c) = (self.len(), self.num_channels());
        let mut out = Vec::with_capacity(n * c);
        for i in 0..n {
            out.extend(self.channels.iter().map(|ch| ch[i]));
        }
        out
    }

    /// The clip with `n` channels: the mean of all channels when `n == 1`, the one channel repeated
    /// when the clip is mono, itself when the counts agree; any other change is an error.
    pub fn with_channels(&self, n: usize) -> Result<Self> {
        let have = self.num_channels();
        if n == have {
            return Ok(self.clone());
        }
        if n == 1 {
            let inv = 1.0 / have as f32;
            let mixed = (0..self.len())
                .map(|i| self.channels.iter().map(|c| c[i]).sum::<f32>() * inv)
                .collect();
            return Self::mono(self.sample_rate, mixed);
        }
        if have == 1 && n > 1 {
            return Self::new(self.sample_rate, vec![self.channels[0].clone(); n]);
        }
        Err(Error::input(
            "channels",
            format!("cannot map {have} channels to {n}"),
        ))
    }

    /// `(1, channels, length)` f32 tensor on `device`.
    pub fn to_tensor(&self, device: &Device) -> Result<Tensor> {
        let flat: Vec<f32> = self.channels.concat();
        Ok(Tensor::from_vec(
            flat,
            (1, self.num_channels(), self.len()),
            device,
        )?)
    }

    /// `(channels, 1, length)`: each channel its own batch item, for mono models.
    pub fn to_batch_tensor(&self, device: &Device) -> Result<Tensor> {
        let flat: Vec<f32> = self.channels.concat();
        Ok(Tensor::from_vec(
            flat,
            (self.num_channels(), 1, self.len()),
            device,
        )?)
    }

    /// A clip from `(1, channels, length)` or `(batch, 1, length)` (batch items become channels).
    pub fn from_tensor(t: &Tensor, sample_rate: u32) -> Result<Self> {
        let (b, c, _) = t.dims3().map_err(|_| {
            Error::input(
                "audio",
                format!("expected (batch, channels, length), got {:?}", t.dims()),
            )
        })?;
        if b != 1 && c != 1 {
            return Err(Error::input(
                "audio",
                format!(
                    "a clip is (1, channels, length) or (channels, 1, length), got {:?}",
                    t.dims()
                ),
            ));
        }
        let rows = t.to_dtype(DType::F32)?.flatten_to(1)?.to_vec2::<f32>()?;
        Self::new(sample_rate, rows)
    }

    /// The samples `[start, start + len)` of every channel (clamped to the clip).
    pub fn slice(&self, start: usize, len: usize) -> Self {
        let s = start.min(self.len());
        let e = (s + len).min(self.len());
        Self {
            sample_rate: self.sample_rate,
            channels: self.channels.iter().map(|c| c[s..e].to_vec()).collect(),
        }
    }

    /// Peak absolute sample value.
    pub fn peak(&self) -> f32 {
        self.channels
            .iter()
            .flatten()
            .fold(0f32, |m, v| m.max(v.abs()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tensor_round_trips_keep_channels_and_samples() {
        let clip = AudioClip::new(8000, vec![vec![1.0, 2.0, 3.0], vec![4.0, 5.0, 6.0]]).unwrap();
        let t = clip.to_tensor(&Device::Cpu).unwrap();
        assert_eq!(t.dims(), &[1, 2, 3]);
        assert_eq!(AudioClip::from_tensor(&t, 8000).unwrap(), clip);
        let b = clip.to_batch_tensor(&Device::Cpu).unwrap();
        assert_eq!(b.dims(), &[2, 1, 3]);
        assert_eq!(b.to_vec3::<f32>().unwrap()[1][0], vec![4.0, 5.0, 6.0]);
        assert_eq!(AudioClip::from_tensor(&b, 8000).unwrap(), clip);
    }

    #[test]
    fn interleaving_and_channel_mapping() {
        let clip = AudioClip::from_interleaved(100, 2, &[1.0, -1.0, 2.0, -2.0]).unwrap();
        assert_eq!(clip.channels(), &[vec![1.0, 2.0], vec![-1.0, -2.0]]);
        assert_eq!(clip.interleaved(), vec![1.0, -1.0, 2.0, -2.0]);
        assert_eq!(clip.with_channels(1).unwrap().channels(), &[vec![0.0, 0.0]]);
        let mono = AudioClip::mono(100, vec![0.5]).unwrap();
        assert_eq!(mono.with_channels(2).unwrap().num_channels(), 2);
        assert!(clip.with_channels(3).is_err());
    }

    #[test]
    fn rejects_malformed_clips() {
        assert!(AudioClip::new(0, vec![vec![0.0]]).is_err());
        assert!(AudioClip::new(10, vec![]).is_err());
        assert!(AudioClip::new(10, vec![vec![0.0], vec![]]).is_err());
        assert!(AudioClip::from_interleaved(10, 2, &[0.0; 3]).is_err());
        let t = Tensor::zeros((2, 2, 4), DType::F32, &Device::Cpu).unwrap();
        assert!(AudioClip::from_tensor(&t, 10).is_err());
    }
}
