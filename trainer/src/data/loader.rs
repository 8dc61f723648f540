//! The batch loader: a named thread that cuts random windows ahead of the training loop and
//! hands them over through a bounded channel. Each batch carries the sampler state after it was
//! cut, so the loop can checkpoint the exact data order of what it has consumed.

use super::decode::Decoded;
use super::windows::WindowSampler;
use adiff_core::SeededNoise;
use crossbeam_channel::{bounded, Receiver};
use std::sync::Arc;
use std::thread::JoinHandle;

/// One batch `(batch, channels, len)` flattened, with the sampler state after it.
pub struct Batch {
    pub data: Vec<f32>,
    pub rng_after: [u64; 4],
    pub windows_after: u64,
}

/// A running loader thread; dropping it stops and joins the thread.
pub struct Loader {
    rx: Option<Receiver<Batch>>,
    handle: Option<JoinHandle<()>>,
}

impl Loader {
    /// Starts cutting batches of `batch` windows of `len` samples from `clips`, continuing from
    /// the sampler state (`rng`, `windows`), `prefetch` batches ahead.
    pub fn start(
        clips: Arc<Vec<Decoded>>,
        len: usize,
        batch: usize,
        rng: [u64; 4],
        windows: u64,
        prefetch: usize,
    ) -> std::io::Result<Self> {
        let (tx, rx) = bounded::<Batch>(prefetch.max(1));
        let handle = std::thread::Builder::new()
            .name("adiff-loader".into())
            .spawn(move || {
                let mut sampler =
                    WindowSampler::new(&clips, len, SeededNoise::from_state(rng), windows);
                loop {
                    let data = sampler.next_batch(&clips, batch);
                    let b = Batch {
                        data,
                        rng_after: sampler.rng_state(),
                        windows_after: sampler.windows,
                    };
                    if tx.send(b).is_err() {
                        break; // the loop hung up
                    }
                }
            })?;
        Ok(Self {
            rx: Some(rx),
            handle: Some(handle),
        })
    }

    /// The next batch (blocks until the loader has cut it).
    pub fn next(&self) -> Option<Batch> {
        self.rx.as_ref()?.recv().ok()
    }
}

impl Drop for Loader {
    fn drop(&mut self) {
        // Closing the receiver makes the thread's next send fail, and it exits.
        self.rx.take();
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_continue_exactly_from_a_saved_state() {
        let clips = Arc::new(vec![Decoded {
            channels: vec![(0..1000).map(|i| i as f32).collect()],
        }]);
        let seed = SeededNoise::new(9).state();
        let l = Loader::start(clips.clone(), 16, 2, seed, 0, 2).unwrap();
        let first = l.next().unwrap();
        let second = l.next().unwrap();
        drop(l);
        let resumed = Loader::start(clips, 16, 2, first.rng_after, first.windows_after, 2).unwrap();
        let again = resumed.next().unwrap();
        assert_eq!(again.data, second.data);
        assert_eq!(again.windows_after, 4);
    }
}
