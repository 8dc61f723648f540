//! The training loop: data -> loss -> accumulated gradients -> clipping -> AdamW -> EMA, with
//! periodic validation, preview renders, metrics and atomic checkpoints, resumable exactly.

use super::checkpoint::{self, Checkpoint, CheckpointMeta};
use super::dist::GradSync;
use super::ema::Ema;
use super::init::{sorted_vars, SeededVarMap};
use super::interrupt::{Interrupt, StopSignal};
use super::metrics::{MetricsWriter, Record};
use super::model::Trainable;
use super::optim::{clip_global_norm, AdamW};
use super::settings::TrainSettings;
use crate::data::loader::{Batch, Loader};
use crate::data::windows::validation_windows;
use crate::data::{DataSummary, Dataset};
use adiff_core::SeededNoise;
use anyhow::{bail, Context, Result};
use candle_core::{DType, Device, Tensor, Var};
use candle_nn::{VarBuilder, VarMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

/// Salts that separate the generators derived from the run seed.
const DATA_SALT: u64 = 0xD47A;
const NOISE_SALT: u64 = 0x0015E;
const VAL_SALT: u64 = 0x7A1;
const RENDER_SALT: u64 = 0x5A4B;

/// Builds a model on a VarBuilder (the same function builds the trained and the EMA copy).
pub type BuildFn<'a> = dyn Fn(VarBuilder) -> Result<Box<dyn Trainable>> + 'a;

/// Called with `(step, reference windows, rendered windows)` after each preview render.
pub type SampleFn<'a> = dyn FnMut(u64, &Tensor, &Tensor) -> Result<()> + 'a;

/// How this session runs (not part of the saved settings).
pub struct SessionOptions<'a> {
    /// Continue from the newest complete checkpoint of the run folder (see [`start_checkpoint`]
    /// for a folder that has none).
    pub resume: bool,
    /// Stop (after checkpointing) once this many updates are done, even if `steps` is larger.
    pub stop_after: Option<u64>,
    pub device: Device,
    /// Show a progress bar on stderr.
    pub progress: bool,
    pub on_samples: Option<&'a mut SampleFn<'a>>,
    /// Gradient all-reduce across data-parallel workers (a single process: no-op).
    pub sync: &'a dyn GradSync,
    /// Polled between updates: once it reports a signal the session checkpoints and returns
    /// early with [`SessionSummary::interrupted`] set. `None`: run to the end. With several
    /// data-parallel ranks every rank must get the same answer at the same step (agree on it
    /// through the sync, as the checkpoint step is), or the ranks' collectives would part ways.
    pub interrupt: Option<&'a Interrupt>,
}

/// What a finished session reports.
#[derive(Debug, Clone)]
pub struct SessionSummary {
    pub data: DataSummary,
    /// Updates done at the end of the session.
    pub step: u64,
    /// Step the session started from (0, or the resumed checkpoint's).
    pub resumed_from: u64,
    pub last_val_loss: Option<f64>,
    pub first_val_loss: Option<f64>,
    /// Mean training windows per second over the session's updates.
    pub windows_per_sec: f64,
    /// The signal that ended the session before `steps` (or `stop_after`), if one did.
    pub interrupted: Option<StopSignal>,
    /// The newest checkpoint of the run after the session (written or resumed from).
    pub checkpoint: Option<PathBuf>,
}

/// The trained weights and their EMA, for export.
pub struct Weights {
    pub ema: VarMap,
}

fn var_tensors(prefix: &str, vars: &[(String, Var)]) -> Vec<(String, Tensor)> {
    vars.iter()
        .map(|(k, v)| (format!("{prefix}{k}"), v.as_tensor().clone()))
        .collect()
}

fn restore(
    tensors: &std::collections::HashMap<String, Tensor>,
    prefix: &str,
    vars: &[(String, Var)],
) -> Result<Vec<Tensor>> {
    let mut out = Vec::with_capacity(vars.len());
    for (k, v) in vars {
        let key = format!("{prefix}{k}");
        let t = tensors
            .get(&key)
            .with_context(|| format!("the checkpoint lacks `{key}` (a different model?)"))?;
        if t.dims() != v.dims() {
            bail!(
                "checkpoint `{key}` has shape {:?}, the model {:?}",
                t.dims(),
                v.dims()
            );
        }
        out.push(t.to_dtype(v.dtype())?);
    }
    Ok(out)
}

/// `metrics.jsonl` for the lead rank, `metrics.rank<r>.jsonl` for the others (their own losses).
fn metrics_file(rank: usize) -> String {
    match rank {
        0 => "metrics.jsonl".into(),
        r => format!("metrics.rank{r}.jsonl"),
    }
}

/// Mean loss over the fixed validation windows with a fixed noise stream.
fn validation_loss(model: &dyn Trainable, val: &Tensor, batch: usize, seed: u64) -> Result<f64> {
    let n = val.dim(0)?;
    let mut noise = SeededNoise::new(seed ^ VAL_SALT);
    let mut total = 0.0;
    let mut start = 0;
    while start < n {
        let len = batch.min(n - start);
        let loss = model.loss(&val.narrow(0, start, len)?, &mut noise)?;
        total += loss.to_dtype(DType::F64)?.to_scalar::<f64>()? * len as f64;
        start += len;
    }
    Ok(total / n as f64)
}

/// The checkpoint a session starts from; `None`: step 0.
///
/// A new run starts at step 0. `--resume` continues from the newest complete checkpoint. A run
/// folder with no checkpoint at all (the run was stopped before its first one) also starts again
/// from step 0, with a note: `run.json` holds every setting and nothing was saved that could be
/// lost, so this is what a user who types `--resume` after an early Ctrl-C or crash expects,
/// rather than being told to retype the whole command without it. Checkpoint files of which none
/// loads are an error instead: starting over would soon delete them.
fn start_checkpoint(run_dir: &Path, resume: bool, device: &Device) -> Result<Option<Checkpoint>> {
    if !resume {
        return Ok(None);
    }
    let listed = checkpoint::list(run_dir)?;
    if listed.is_empty() {
        eprintln!(
            "note: {} has no checkpoint yet (the run stopped before its first one): \
             starting it from step 0",
            run_dir.display()
        );
        return Ok(None);
    }
    let ck = checkpoint::load_latest(run_dir, device)?.with_context(|| {
        format!(
            "--resume: none of the {} checkpoint file(s) in {} can be read (see the warnings \
             above); move them away to start the run over",
            listed.len(),
            run_dir.display()
        )
    })?;
    Ok(Some(ck))
}

/// Sets the weights, the EMA and the optimizer state from a checkpoint.
fn restore_checkpoint(
    ck: &Checkpoint,
    vars: &[(String, Var)],
    ema_vars: &[(String, Var)],
    opt: &mut AdamW,
) -> Result<()> {
    for ((_, v), t) in vars.iter().zip(restore(&ck.tensors, "model.", vars)?) {
        v.set(&t)?;
    }
    for ((_, v), t) in ema_vars.iter().zip(restore(&ck.tensors, "ema.", vars)?) {
        v.set(&t)?;
    }
    opt.restore(
        restore(&ck.tensors, "adam.m.", vars)?,
        restore(&ck.tensors, "adam.v.", vars)?,
        ck.meta.adam_t,
    )?;
    Ok(())
}

/// Trains in `run_dir` (which holds `run.json`) until `settings.steps` (or `stop_after`), or until
/// `opts.interrupt` reports a signal: then the update in progress finishes (and its validation,
/// if one is due, so the metrics match an uninterrupted run; its preview render is skipped), a
/// checkpoint is written and the session returns with [`SessionSummary::interrupted`] set.
pub fn run(
    run_dir: &Path,
    s: &TrainSettings,
    build: &BuildFn,
    mut opts: SessionOptions,
) -> Result<(SessionSummary, Weights)> {
    anyhow::ensure!(
        s.batch_size >= 1 && s.grad_accum >= 1,
        "batch size and gradient accumulation must be at least 1"
    );
    // 1. Where to start, and the metrics file: a damaged one fails before the data is decoded.
    // Only the lead rank (the only one in a single-process run) writes checkpoints and previews.
    let lead = opts.sync.rank() == 0;
    if lead {
        let stale = checkpoint::remove_stale_temporaries(run_dir)?;
        if stale > 0 {
            eprintln!("removed {stale} incomplete checkpoint file(s) left by an interrupted run");
        }
    }
    let start = start_checkpoint(run_dir, opts.resume, &opts.device)?;
    let metrics_path = run_dir.join(metrics_file(opts.sync.rank()));
    // A resume checks (and trims) its metrics before the data is decoded; a run from step 0
    // starts the file once the data is known to be usable.
    let resumed_metrics = start
        .as_ref()
        .map(|ck| MetricsWriter::open(&metrics_path, Some(ck.meta.step)))
        .transpose()?;

    // 2. Data: an empty or silent folder fails before any model is built.
    let data = Dataset::load(&s.data)?;
    let mut metrics = match resumed_metrics {
        Some(m) => m,
        None => MetricsWriter::open(&metrics_path, None)?,
    };
    let (ch, len) = (s.data.channels, s.data.window);
    let (val_data, n_val) = validation_windows(&data.val, len, s.val_windows);
    let val = (n_val > 0)
        .then(|| Tensor::from_vec(val_data, (n_val, ch, len), &opts.device))
        .transpose()?;
    if val.is_none() {
        eprintln!("warning: no validation files; validation loss is not computed");
    }

    // 3. Model, EMA copy, optimizer.
    let dev = opts.device.clone();
    let model_map = VarMap::new();
    let model = build(SeededVarMap::var_builder(
        &model_map,
        s.seed,
        DType::F32,
        &dev,
    ))?;
    let ema_map = VarMap::new();
    let ema_model = build(SeededVarMap::var_builder(
        &ema_map,
        s.seed,
        DType::F32,
        &dev,
    ))?;
    let vars = sorted_vars(&model_map);
    let ema_vars = sorted_vars(&ema_map);
    anyhow::ensure!(!vars.is_empty(), "the model has no trainable weights");
    let ema = Ema::new(
        vars.iter().map(|v| v.1.clone()).collect(),
        ema_vars.iter().map(|v| v.1.clone()).collect(),
        s.ema_decay,
        s.ema_warmup,
    )?;
    let mut opt = AdamW::new(
        vars.iter().map(|v| v.1.clone()).collect(),
        s.optimizer.clone(),
    )?;
    let mut noise = SeededNoise::new(s.seed ^ NOISE_SALT);
    let (mut data_rng, mut windows) = (SeededNoise::new(s.seed ^ DATA_SALT).state(), 0u64);
    let mut step = 0u64;

    // 4. Resume from the checkpoint, if there is one.
    let mut last_checkpoint = None;
    if let Some(ck) = start {
        restore_checkpoint(&ck, &vars, &ema_vars, &mut opt)
            .with_context(|| format!("restoring {}", ck.path.display()))?;
        noise = SeededNoise::from_state(ck.meta.noise_rng);
        (data_rng, windows, step) = (ck.meta.data_rng, ck.meta.windows, ck.meta.step);
        eprintln!("resumed from {} (step {step})", ck.path.display());
        last_checkpoint = Some((step, ck.path));
    }
    let resumed_from = step;
    let train_clips = Arc::new(data.train);
    let loader = Loader::start(
        train_clips,
        len,
        s.batch_size,
        data_rng,
        windows,
        s.prefetch,
    )?;
    let save = |step: u64,
                noise: &SeededNoise,
                opt: &AdamW,
                data_rng: [u64; 4],
                windows: u64|
     -> Result<PathBuf> {
        let (m, v) = opt.moments();
        let mut t = var_tensors("model.", &vars);
        t.extend(var_tensors("ema.", &ema_vars));
        t.extend(
            vars.iter()
                .zip(m)
                .map(|((k, _), m)| (format!("adam.m.{k}"), m.clone())),
        );
        t.extend(
            vars.iter()
                .zip(v)
                .map(|((k, _), v)| (format!("adam.v.{k}"), v.clone())),
        );
        let meta = CheckpointMeta {
            format: 0,
            step,
            adam_t: opt.t,
            noise_rng: noise.state(),
            data_rng,
            windows,
            checksum: 0,
        };
        checkpoint::save(run_dir, &t, meta, s.keep_checkpoints)
    };

    // 5. The loop.
    let end = opts.stop_after.map_or(s.steps, |n| n.min(s.steps));
    let stop_requested = || opts.interrupt.and_then(Interrupt::requested);
    let bar = super::progress::bar(step, s.steps, opts.progress);
    let (mut first_val, mut last_val) = (None, None);
    if let (Some(val), 0, None) = (&val, step, stop_requested()) {
        // The untrained baseline, so the metrics show how far validation loss has fallen
        // (skipped when stopped already: a run stopped at step 0 starts its metrics over).
        let vl = validation_loss(model.as_ref(), val, s.batch_size, s.seed)?;
        (first_val, last_val) = (Some(vl), Some(vl));
        metrics.write(&Record {
            val_loss: Some(vl),
            val_loss_ema: Some(vl),
            ..Record::at(0)
        })?;
    }
    let (mut timed_windows, mut timed_secs) = (0u64, 0.0f64);
    let mut interrupted = None;
    while step < end {
        if let Some(signal) = stop_requested() {
            interrupted = Some(signal);
            break;
        }
        let t0 = Instant::now();
        let lr = s.schedule.lr(s.optimizer.lr, step, s.steps);
        let mut grads: Vec<Tensor> = Vec::new();
        let mut loss_sum = 0.0;
        for _ in 0..s.grad_accum {
            let Batch {
                data,
                rng_after,
                windows_after,
            } = loader.next().context("the data loader stopped")?;
            (data_rng, windows) = (rng_after, windows_after);
            let x = Tensor::from_vec(data, (s.batch_size, ch, len), &dev)?;
            let loss = model.loss(&x, &mut noise)?;
            loss_sum += loss.to_dtype(DType::F64)?.to_scalar::<f64>()?;
            let store = (loss / s.grad_accum as f64)?.backward()?;
            for (i, (_, v)) in vars.iter().enumerate() {
                let g = match store.get(v.as_tensor()) {
                    // Detached so that accumulating micro-batches does not keep each one's graph
                    // alive until the update.
                    Some(g) => g.detach(),
                    None => v.zeros_like()?, // a weight the loss does not reach
                };
                if grads.len() <= i {
                    grads.push(g);
                } else {
                    grads[i] = (&grads[i] + g)?;
                }
            }
        }
        opts.sync.all_reduce(&mut grads)?;
        let grad_norm = clip_global_norm(&mut grads, s.clip_grad_norm)?;
        opt.step(&grads, lr)?;
        step += 1;
        ema.update(step)?;
        let secs = t0.elapsed().as_secs_f64();
        let n = (s.batch_size * s.grad_accum * opts.sync.world_size()) as u64;
        (timed_windows, timed_secs) = (timed_windows + n, timed_secs + secs);
        let loss = loss_sum / s.grad_accum as f64;
        metrics.write(&Record {
            loss: Some(loss),
            lr: Some(lr),
            grad_norm: Some(grad_norm),
            samples_per_sec: Some(n as f64 / secs),
            ..Record::at(step)
        })?;
        bar.set_position(step);
        bar.set_message(format!("loss {loss:.4}  {:.1} windows/s", n as f64 / secs));

        let last = step == end;
        if let Some(val) = &val {
            if (s.val_every > 0 && step.is_multiple_of(s.val_every)) || last {
                let vl = validation_loss(model.as_ref(), val, s.batch_size, s.seed)?;
                let vle = validation_loss(ema_model.as_ref(), val, s.batch_size, s.seed)?;
                first_val.get_or_insert(vl);
                last_val = Some(vl);
                metrics.write(&Record {
                    val_loss: Some(vl),
                    val_loss_ema: Some(vle),
                    ..Record::at(step)
                })?;
                bar.println(format!(
                    "step {step}: validation loss {vl:.4} (EMA {vle:.4})"
                ));
            }
        }
        if let (Some(cb), true, None) = (opts.on_samples.as_mut(), lead, stop_requested()) {
            if s.sample_every > 0 && (step.is_multiple_of(s.sample_every) || last) {
                let reference = match &val {
                    Some(v) => v.narrow(0, 0, s.num_samples.min(v.dim(0)?))?,
                    None => Tensor::zeros((s.num_samples, ch, len), DType::F32, &dev)?,
                };
                let mut render_noise = SeededNoise::new(s.seed ^ RENDER_SALT);
                // A failed preview is reported, never fatal: the run goes on.
                let rendered = ema_model.render(&reference, s.sample_steps, &mut render_noise);
                if let Err(e) = rendered.and_then(|out| cb(step, &reference, &out)) {
                    bar.println(format!(
                        "warning: preview render at step {step} failed: {e:#}"
                    ));
                }
            }
        }
        if lead && ((s.checkpoint_every > 0 && step.is_multiple_of(s.checkpoint_every)) || last) {
            last_checkpoint = Some((step, save(step, &noise, &opt, data_rng, windows)?));
        }
    }
    // A stop between checkpoints: save the updates done since the last one.
    let unsaved = step > resumed_from && last_checkpoint.as_ref().is_none_or(|c| c.0 != step);
    if lead && interrupted.is_some() && unsaved {
        last_checkpoint = Some((step, save(step, &noise, &opt, data_rng, windows)?));
    }
    bar.finish_and_clear();
    let summary = SessionSummary {
        data: data.summary,
        step,
        resumed_from,
        last_val_loss: last_val,
        first_val_loss: first_val,
        windows_per_sec: if timed_secs > 0.0 {
            timed_windows as f64 / timed_secs
        } else {
            0.0
        },
        interrupted,
        checkpoint: last_checkpoint.map(|c| c.1),
    };
    Ok((summary, Weights { ema: ema_map }))
}
