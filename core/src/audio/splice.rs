//! Known audio put back around generated audio: when a model works at a lower rate than the clip
//! (a low-rate generator with a band-extension stage), inpainting and continuation hand back the
//! whole clip through the model's band; the samples outside the regenerated span are restored
//! from the original, full band, with a raised-cosine crossfade at each seam.

use super::AudioClip;
use crate::{Error, Result};

/// `generated` with `original`'s samples over `[0, head)` and `[tail, original.len())`: the
/// crossfades lie inside the known parts, over the `fade` samples next to each seam (`head - fade
/// .. head` and `tail .. tail + fade`), weight `w = (1 - cos(pi (k + 0.5) / fade)) / 2` on the
/// generated side at the k-th sample towards the span. `generated` may be longer than `original`
/// (a continuation); both must share rate and channel count, and `head <= tail`.
pub fn restore_known(
    original: &AudioClip,
    generated: &AudioClip,
    head: usize,
    tail: usize,
    fade: usize,
) -> Result<AudioClip> {
    if original.sample_rate() != generated.sample_rate()
        || original.num_channels() != generated.num_channels()
    {
        return Err(Error::input(
            "clip",
            format!(
                "cannot splice {} Hz x {} channels into {} Hz x {} channels",
                original.sample_rate(),
                original.num_channels(),
                generated.sample_rate(),
                generated.num_channels()
            ),
        ));
    }
    let n = original.len();
    if head > tail || generated.len() < n {
        return Err(Error::input(
            "span",
            format!(
                "span {head}..{tail} of a {n}-sample clip, generated {} samples",
                generated.len()
            ),
        ));
    }
    let tail = tail.min(n);
    let head = head.min(tail);
    let weight = |k: usize, len: usize| {
        0.5 - 0.5 * (std::f64::consts::PI * (k as f64 + 0.5) / len as f64).cos()
    };
    let chans = original
        .channels()
        .iter()
        .zip(generated.channels())
        .map(|(o, g)| {
            let mut out = g.clone();
            let f = fade.min(head);
            out[..head - f].copy_from_slice(&o[..head - f]);
            for k in 0..f {
                let (i, w) = (head - f + k, weight(k, f));
                out[i] = ((1.0 - w) * f64::from(o[i]) + w * f64::from(g[i])) as f32;
            }
            let f = fade.min(n - tail);
            for k in 0..f {
                let (i, w) = (tail + k, weight(f - 1 - k, f));
                out[i] = ((1.0 - w) * f64::from(o[i]) + w * f64::from(g[i])) as f32;
            }
            out[tail + f..n].copy_from_slice(&o[tail + f..n]);
            out
        })
        .collect();
    AudioClip::new(generated.sample_rate(), chans)
}

/// `generated` with `original`'s samples wherever `keep` is true (one entry per sample of
/// `original`; `generated` may be longer, its extra samples are kept as generated). Within `fade`
/// samples of a regenerated sample the two are crossfaded with the same raised-cosine weight as
/// [`restore_known`], on the generated side `w = (1 - cos(pi (fade - d - 0.5) / fade)) / 2` at
/// distance `d` (0 = adjacent) from the nearest regenerated sample.
pub fn restore_mask(
    original: &AudioClip,
    generated: &AudioClip,
    keep: &[bool],
    fade: usize,
) -> Result<AudioClip> {
    let n = original.len();
    if original.sample_rate() != generated.sample_rate()
        || original.num_channels() != generated.num_channels()
        || keep.len() != n
        || generated.len() < n
    {
        return Err(Error::input(
            "clip",
            format!(
                "cannot restore {} Hz x {} channels x {n} samples ({} mask entries) into {} Hz x {} channels x {} samples",
                original.sample_rate(),
                original.num_channels(),
                keep.len(),
                generated.sample_rate(),
                generated.num_channels(),
                generated.len()
            ),
        ));
    }
    // Distance of each sample to the nearest regenerated one (usize::MAX: none).
    let mut dist = vec![usize::MAX; n];
    let mut last = None;
    for i in 0..n {
        if !keep[i] {
            last = Some(i);
        }
        if let Some(j) = last {
            dist[i] = i - j;
        }
    }
    last = None;
    for i in (0..n).rev() {
        if !keep[i] {
            last = Some(i);
        }
        if let Some(j) = last {
            dist[i] = dist[i].min(j - i);
        }
    }
    let weight = |d: usize| -> f64 {
        if d == 0 {
            1.0
        } else if d - 1 < fade {
            let k = fade - d;
            0.5 - 0.5 * (std::f64::consts::PI * (k as f64 + 0.5) / fade as f64).cos()
        } else {
            0.0
        }
    };
    let chans = original
        .channels()
        .iter()
        .zip(generated.channels())
        .map(|(o, g)| {
            let mut out = g.clone();
            for i in 0..n {
                let w = weight(dist[i]);
                out[i] = if w == 0.0 {
                    o[i]
                } else if w == 1.0 {
                    g[i]
                } else {
                    ((1.0 - w) * f64::from(o[i]) + w * f64::from(g[i])) as f32
                };
            }
            out
        })
        .collect();
    AudioClip::new(generated.sample_rate(), chans)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn clip(v: Vec<f32>) -> AudioClip {
        AudioClip::new(8_000, vec![v]).unwrap()
    }

    #[test]
    fn known_parts_come_back_exactly_and_the_fades_sum_to_one() {
        let o: Vec<f32> = (0..100).map(|i| i as f32).collect();
        let g: Vec<f32> = (0..120).map(|i| -(i as f32)).collect();
        // No fade: original outside 30..60, generated inside and after the original's end.
        let out = restore_known(&clip(o.clone()), &clip(g.clone()), 30, 60, 0).unwrap();
        let v = &out.channels()[0];
        assert_eq!(v.len(), 120);
        assert_eq!(&v[..30], &o[..30]);
        assert_eq!(&v[30..60], &g[30..60]);
        assert_eq!(&v[60..100], &o[60..100]);
        assert_eq!(&v[100..], &g[100..]);
        // With a fade: the weights of the two sides sum to one (equal inputs pass unchanged)...
        let same = restore_known(&clip(o.clone()), &clip(o.clone()), 30, 60, 8).unwrap();
        for (a, b) in same.channels()[0].iter().zip(&o) {
            assert!((a - b).abs() < 1e-4);
        }
        // ...rise monotonically towards the span, and stay strictly between 0 and 1.
        let ones = restore_known(&clip(vec![0.0; 100]), &clip(vec![1.0; 100]), 30, 60, 8)
            .unwrap()
            .channels()[0]
            .clone();
        assert_eq!(&ones[..22], &[0.0; 22]);
        assert!(ones[22..30].windows(2).all(|w| w[0] < w[1]));
        assert!(ones[22] > 0.0 && ones[29] < 1.0);
        assert_eq!(&ones[30..60], &[1.0; 30]);
        assert!(ones[60..68].windows(2).all(|w| w[0] > w[1]));
        assert_eq!(&ones[68..], &[0.0; 32]);
        // The continuation case: everything before the original's end is original.
        let cont = restore_known(&clip(o.clone()), &clip(g.clone()), 100, 100, 8).unwrap();
        assert_eq!(&cont.channels()[0][..92], &o[..92]);
        assert_eq!(&cont.channels()[0][100..], &g[100..]);
    }

    #[test]
    fn mismatched_clips_and_spans_are_refused() {
        let a = clip(vec![0.0; 10]);
        let b = AudioClip::new(16_000, vec![vec![0.0; 10]]).unwrap();
        assert!(restore_known(&a, &b, 0, 5, 2).is_err());
        assert!(restore_known(&a, &clip(vec![0.0; 9]), 0, 5, 2).is_err());
        assert!(restore_known(&a, &a, 6, 5, 2).is_err());
    }

    #[test]
    fn a_mask_of_one_span_restores_as_restore_known_does() {
        let o: Vec<f32> = (0..100).map(|i| (i as f32 * 0.1).sin()).collect();
        let g: Vec<f32> = (0..100).map(|i| (i as f32 * 0.37).cos()).collect();
        let keep: Vec<bool> = (0..100).map(|i| !(30..60).contains(&i)).collect();
        let a = restore_known(&clip(o.clone()), &clip(g.clone()), 30, 60, 8).unwrap();
        let b = restore_mask(&clip(o.clone()), &clip(g.clone()), &keep, 8).unwrap();
        for (x, y) in a.channels()[0].iter().zip(&b.channels()[0]) {
            assert!((x - y).abs() < 1e-6, "{x} vs {y}");
        }
        // Two spans: samples far from both are the original exactly, inside both generated.
        let keep: Vec<bool> = (0..100)
            .map(|i| !(10..20).contains(&i) && !(70..75).contains(&i))
            .collect();
        let c = restore_mask(&clip(o.clone()), &clip(g.clone()), &keep, 4).unwrap();
        let v = &c.channels()[0];
        assert_eq!(&v[30..60], &o[30..60]);
        assert_eq!(&v[10..20], &g[10..20]);
        assert_eq!(&v[70..75], &g[70..75]);
        assert!(restore_mask(&clip(o.clone()), &clip(g), &keep[..99], 4).is_err());
    }
}
