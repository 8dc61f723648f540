//! `diffusion.py::SpanBySpanComposer` and `sequential_mask` (audio-diffusion-pytorch 0.0.61):
//! infinite generation by repeatedly inpainting the second half of a window whose first half is the
//! previous span's second half.

use super::DiffusionInpainter;
use crate::sampler::{OnStep, StepInfo};
use crate::{Error, NetInputs, NoiseSource, Result};
use candle_core::{DType, Tensor};

/// `sequential_mask(like, start)`: a u8 mask shaped like `like (batch, channels, length)`, 1 for
/// time `< start` and 0 after.
pub fn sequential_mask(like: &Tensor, start: usize) -> Result<Tensor> {
    let (b, c, t) = like.dims3()?;
    let row: Vec<u8> = (0..t).map(|i| u8::from(i < start)).collect();
    Ok(Tensor::from_vec(row, (1, 1, t), like.device())?
        .broadcast_as((b, c, t))?
        .contiguous()?)
}

/// `SpanBySpanComposer(inpainter, num_spans)`.
pub struct SpanBySpanComposer<'a> {
    /// The inpainter that generates each new half window.
    pub inpainter: DiffusionInpainter<'a>,
    /// Number of new half windows to generate.
    pub num_spans: usize,
}

impl SpanBySpanComposer<'_> {
    /// `forward(start, keep_start)`: `start (batch, channels, T)` with `T` even; returns
    /// `(batch, channels, num_spans·T/2)`, plus `T` in front with `keep_start`. Progress (and a
    /// cancellation's step) counts over all spans: `num_spans × num_steps` steps.
    pub fn compose(
        &self,
        start: &Tensor,
        keep_start: bool,
        inputs: &NetInputs,
        noise: &mut dyn NoiseSource,
        on_step: &mut OnStep<'_>,
    ) -> Result<Tensor> {
        let (_, _, t) = start.dims3()?;
        if t % 2 != 0 || t == 0 {
            return Err(Error::input(
                "start",
                format!("length must be even and positive, got {t}"),
            ));
        }
        let h = t / 2;
        let mut spans = Vec::with_capacity(self.num_spans + 2);
        if keep_start {
            spans.push(start.narrow(2, 0, h)?);
            spans.push(start.narrow(2, h, h)?);
        }
        // The window: first half known (the previous second half), second half to generate.
        let mut window = Tensor::cat(
            &[start.narrow(2, h, h)?, start.narrow(2, h, h)?.zeros_like()?],
            2,
        )?;
        let mask = sequential_mask(start, h)?.to_dtype(DType::U8)?;
        let spans_total = self.num_spans;
        for k in 0..spans_total {
            // Progress and cancellation count over all spans.
            let mut overall = |i: &StepInfo| {
                on_step(&StepInfo {
                    step: k * i.total + i.step,
                    total: spans_total * i.total,
                    sigma: i.sigma,
                })
            };
            let span = match self
                .inpainter
                .inpaint(&window, &mask, inputs, noise, &mut overall)
            {
                Err(Error::Cancelled { step, total }) => {
                    return Err(Error::Cancelled {
                        step: k * total + step,
                        total: spans_total * total,
                    });
                }
                other => other?,
            };
            let second = span.narrow(2, h, h)?;
            window = Tensor::cat(&[second.clone(), window.narrow(2, h, h)?], 2)?;
            spans.push(second);
        }
        if spans.is_empty() {
            return Ok(start.narrow(2, 0, 0)?);
        }
        Ok(Tensor::cat(&spans, 2)?)
    }
}
