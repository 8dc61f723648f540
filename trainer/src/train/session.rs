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
    opts: SessionOptions,
) -> Result<(SessionSummary, Weights)> {
    anyhow::ensure!(
        s.batch_size >= 1 && s.grad_accum >= 1,
        "batch size and gradient accumulation must be at least 1"
    );
    let mut t = Trainer::start(run_dir, s, build, opts)?;
    t.baseline()?;
    let interrupted = t.train()?;
    t.finish(interrupted)
}

/// Where the data stream and the loss noise are, as a checkpoint records them.
struct Streams {
    noise: SeededNoise,
    data_rng: [u64; 4],
    windows: u64,
}

impl Streams {
    /// The streams of a run from step 0.
    fn fresh(seed: u64) -> Self {
        Self {
            noise: SeededNoise::new(seed ^ NOISE_SALT),
            data_rng: SeededNoise::new(seed ^ DATA_SALT).state(),
            windows: 0,
        }
    }
}

/// Removes the temporary files an interrupted checkpoint write left (lead rank).
fn remove_stale(run_dir: &Path) -> Result<()> {
    let stale = checkpoint::remove_stale_temporaries(run_dir)?;
    if stale > 0 {
        eprintln!("removed {stale} incomplete checkpoint file(s) left by an interrupted run");
    }
    Ok(())
}

/// A checkpoint written (or resumed from) at a step.
type Saved = Option<(u64, PathBuf)>;

/// Sets `m` from checkpoint `ck`; returns the streams, the step and the checkpoint it resumed.
fn resume(ck: Checkpoint, m: &mut Models) -> Result<(Streams, u64, Saved)> {
    restore_checkpoint(&ck, &m.vars, &m.ema_vars, &mut m.opt)
        .with_context(|| format!("restoring {}", ck.path.display()))?;
    let streams = Streams {
        noise: SeededNoise::from_state(ck.meta.noise_rng),
        data_rng: ck.meta.data_rng,
        windows: ck.meta.windows,
    };
    let step = ck.meta.step;
    eprintln!("resumed from {} (step {step})", ck.path.display());
    Ok((streams, step, Some((step, ck.path))))
}

/// The model, its EMA copy and the optimizer, with their variables in a fixed order.
struct Models {
    model: Box<dyn Trainable>,
    ema_model: Box<dyn Trainable>,
    ema_map: VarMap,
    vars: Vec<(String, Var)>,
    ema_vars: Vec<(String, Var)>,
    ema: Ema,
    opt: AdamW,
}

/// One training session in progress (see [`run`]).
struct Trainer<'a, 's> {
    run_dir: &'s Path,
    s: &'s TrainSettings,
    opts: SessionOptions<'a>,
    /// Only the lead rank writes checkpoints and previews.
    lead: bool,
    m: Models,
    streams: Streams,
    loader: Loader,
    val: Option<Tensor>,
    data: DataSummary,
    metrics: MetricsWriter,
    bar: indicatif::ProgressBar,
    step: u64,
    resumed_from: u64,
    first_val: Option<f64>,
    last_val: Option<f64>,
    timed: (u64, f64),
    last_checkpoint: Saved,
}

impl<'a, 's> Trainer<'a, 's> {
    /// Where to start, the metrics file, the data, the models, and the resumed state. A damaged
    /// metrics file fails before the data is decoded, and an empty or silent data folder before
    /// any model is built.
    fn start(
        run_dir: &'s Path,
        s: &'s TrainSettings,
        build: &BuildFn,
        opts: SessionOptions<'a>,
    ) -> Result<Self> {
        let lead = opts.sync.rank() == 0;
        if lead {
            remove_stale(run_dir)?;
        }
        let start = start_checkpoint(run_dir, opts.resume, &opts.device)?;
        let metrics_path = run_dir.join(metrics_file(opts.sync.rank()));
        // A resume checks (and trims) its metrics before the data is decoded; a run from step 0
        // starts the file once the data is known to be usable.
        let resumed_metrics = start
            .as_ref()
            .map(|ck| MetricsWriter::open(&metrics_path, Some(ck.meta.step)))
            .transpose()?;
        let data = Dataset::load(&s.data)?;
        let metrics = match resumed_metrics {
            Some(m) => m,
            None => MetricsWriter::open(&metrics_path, None)?,
        };
        let val = validation_tensor(&data, s, &opts.device)?;
        let mut m = Models::build(s, build, &opts.device)?;
        let (streams, step, last_checkpoint) = match start {
            Some(ck) => resume(ck, &mut m)?,
            None => (Streams::fresh(s.seed), 0, None),
        };
        let loader = Loader::start(
            Arc::new(data.train),
            s.data.window,
            s.batch_size,
            streams.data_rng,
            streams.windows,
            s.prefetch,
        )?;
        let bar = super::progress::bar(step, s.steps, opts.progress);
        Ok(Self {
            run_dir,
            s,
            opts,
            lead,
            m,
            streams,
            loader,
            val,
            data: data.summary,
            metrics,
            bar,
            step,
            resumed_from: step,
            first_val: None,
            last_val: None,
            timed: (0, 0.0),
            last_checkpoint,
        })
    }

    /// The signal that asks the session to stop, if one has come.
    fn stop_requested(&self) -> Option<StopSignal> {
        self.opts.interrupt.and_then(Interrupt::requested)
    }

    /// The untrained model's validation loss at step 0, so the metrics show how far it falls
    /// (skipped when stopped already: a run stopped at step 0 starts its metrics over).
    fn baseline(&mut self) -> Result<()> {
        if let (Some(val), 0, None) = (&self.val, self.step, self.stop_requested()) {
            let vl = validation_loss(self.m.model.as_ref(), val, self.s.batch_size, self.s.seed)?;
            (self.first_val, self.last_val) = (Some(vl), Some(vl));
            self.metrics.write(&Record {
                val_loss: Some(vl),
                val_loss_ema: Some(vl),
                ..Record::at(0)
            })?;
        }
        Ok(())
    }

    /// Updates until the end step or a stop signal; returns the signal, if one stopped it.
    fn train(&mut self) -> Result<Option<StopSignal>> {
        let end = self
            .opts
            .stop_after
            .map_or(self.s.steps, |n| n.min(self.s.steps));
        while self.step < end {
            if let Some(signal) = self.stop_requested() {
                return Ok(Some(signal));
            }
            self.update()?;
            let last = self.step == end;
            self.validate_if_due(last)?;
            self.preview_if_due(last);
            let every = self.s.checkpoint_every;
            if self.lead && ((every > 0 && self.step.is_multiple_of(every)) || last) {
                self.last_checkpoint = Some((self.step, self.save()?));
            }
        }
        Ok(None)
    }

    /// One optimizer update: accumulated micro-batches, the all-reduce, clipping, AdamW, EMA,
    /// and its metrics record.
    fn update(&mut self) -> Result<()> {
        let (s, t0) = (self.s, Instant::now());
        let lr = s.schedule.lr(s.optimizer.lr, self.step, s.steps);
        let (mut grads, loss_sum) = self.accumulate()?;
        self.opts.sync.all_reduce(&mut grads)?;
        let grad_norm = clip_global_norm(&mut grads, s.clip_grad_norm)?;
        self.m.opt.step(&grads, lr)?;
        self.step += 1;
        self.m.ema.update(self.step)?;
        let secs = t0.elapsed().as_secs_f64();
        let n = (s.batch_size * s.grad_accum * self.opts.sync.world_size()) as u64;
        self.timed = (self.timed.0 + n, self.timed.1 + secs);
        let loss = loss_sum / s.grad_accum as f64;
        self.metrics.write(&Record {
            loss: Some(loss),
            lr: Some(lr),
            grad_norm: Some(grad_norm),
            samples_per_sec: Some(n as f64 / secs),
            ..Record::at(self.step)
        })?;
        self.bar.set_position(self.step);
        self.bar
            .set_message(format!("loss {loss:.4}  {:.1} windows/s", n as f64 / secs));
        Ok(())
    }

    /// The gradients summed over `grad_accum` micro-batches (each loss scaled by its share), and
    /// the sum of their losses.
    fn accumulate(&mut self) -> Result<(Vec<Tensor>, f64)> {
        let s = self.s;
        let (mut grads, mut loss_sum): (Vec<Tensor>, f64) = (Vec::new(), 0.0);
        for _ in 0..s.grad_accum {
            let Batch {
                data,
                rng_after,
                windows_after,
            } = self.loader.next().context("the data loader stopped")?;
            (self.streams.data_rng, self.streams.windows) = (rng_after, windows_after);
            let shape = (s.batch_size, s.data.channels, s.data.window);
            let x = Tensor::from_vec(data, shape, &self.opts.device)?;
            let loss = self.m.model.loss(&x, &mut self.streams.noise)?;
            loss_sum += loss.to_dtype(DType::F64)?.to_scalar::<f64>()?;
            let store = (loss / s.grad_accum as f64)?.backward()?;
            for (i, (_, v)) in self.m.vars.iter().enumerate() {
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
        Ok((grads, loss_sum))
    }

    /// Validation (model and EMA) every `val_every` updates and at the last.
    fn validate_if_due(&mut self, last: bool) -> Result<()> {
        let (s, step) = (self.s, self.step);
        let Some(val) = &self.val else { return Ok(()) };
        if !((s.val_every > 0 && step.is_multiple_of(s.val_every)) || last) {
            return Ok(());
        }
        let vl = validation_loss(self.m.model.as_ref(), val, s.batch_size, s.seed)?;
        let vle = validation_loss(self.m.ema_model.as_ref(), val, s.batch_size, s.seed)?;
        self.first_val.get_or_insert(vl);
        self.last_val = Some(vl);
        self.metrics.write(&Record {
            val_loss: Some(vl),
            val_loss_ema: Some(vle),
            ..Record::at(step)
        })?;
        self.bar.println(format!(
            "step {step}: validation loss {vl:.4} (EMA {vle:.4})"
        ));
        Ok(())
    }

    /// A preview render of the EMA model every `sample_every` updates and at the last (lead rank
    /// only, skipped once a stop is requested). A failed preview is reported, never fatal.
    fn preview_if_due(&mut self, last: bool) {
        let (s, step) = (self.s, self.step);
        let due = s.sample_every > 0 && (step.is_multiple_of(s.sample_every) || last);
        if !due || !self.lead || self.stop_requested().is_some() {
            return;
        }
        let Some(cb) = self.opts.on_samples.as_mut() else {
            return;
        };
        let dev = &self.opts.device;
        let reference = match &self.val {
            Some(v) => v.dim(0).and_then(|n| v.narrow(0, 0, s.num_samples.min(n))),
            None => Tensor::zeros(
                (s.num_samples, s.data.channels, s.data.window),
                DType::F32,
                dev,
            ),
        };
        let mut render_noise = SeededNoise::new(s.seed ^ RENDER_SALT);
        let outcome = reference
            .map_err(anyhow::Error::from)
            .and_then(|reference| {
                let out = self
                    .m
                    .ema_model
                    .render(&reference, s.sample_steps, &mut render_noise)?;
                cb(step, &reference, &out)
            });
        if let Err(e) = outcome {
            self.bar.println(format!(
                "warning: preview render at step {step} failed: {e:#}"
            ));
        }
    }

    /// Writes a checkpoint of the weights, the EMA, the optimizer and the streams at this step.
    fn save(&self) -> Result<PathBuf> {
        let (vars, opt) = (&self.m.vars, &self.m.opt);
        let (m, v) = opt.moments();
        let mut t = var_tensors("model.", vars);
        t.extend(var_tensors("ema.", &self.m.ema_vars));
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
            step: self.step,
            adam_t: opt.t,
            noise_rng: self.streams.noise.state(),
            data_rng: self.streams.data_rng,
            windows: self.streams.windows,
            checksum: 0,
        };
        checkpoint::save(self.run_dir, &t, meta, self.s.keep_checkpoints)
    }

    /// After a stop between checkpoints, saves the updates done since the last one; then the
    /// summary and the EMA weights.
    fn finish(mut self, interrupted: Option<StopSignal>) -> Result<(SessionSummary, Weights)> {
        let unsaved = self.step > self.resumed_from
            && self
                .last_checkpoint
                .as_ref()
                .is_none_or(|c| c.0 != self.step);
        if self.lead && interrupted.is_some() && unsaved {
            self.last_checkpoint = Some((self.step, self.save()?));
        }
        self.bar.finish_and_clear();
        let (windows, secs) = self.timed;
        let summary = SessionSummary {
            data: self.data,
            step: self.step,
            resumed_from: self.resumed_from,
            last_val_loss: self.last_val,
            first_val_loss: self.first_val,
            windows_per_sec: if secs > 0.0 {
                windows as f64 / secs
            } else {
                0.0
            },
            interrupted,
            checkpoint: self.last_checkpoint.map(|c| c.1),
        };
        Ok((
            summary,
            Weights {
                ema: self.m.ema_map,
            },
        ))
    }
}

impl Models {
    /// The model and its EMA copy from the same seeded initialisation, the EMA and AdamW.
    fn build(s: &TrainSettings, build: &BuildFn, dev: &Device) -> Result<Self> {
        let model_map = VarMap::new();
        let model = build(SeededVarMap::var_builder(
            &model_map,
            s.seed,
            DType::F32,
            dev,
        ))?;
        let ema_map = VarMap::new();
        let ema_model = build(SeededVarMap::var_builder(&ema_map, s.seed, DType::F32, dev))?;
        let vars = sorted_vars(&model_map);
        let ema_vars = sorted_vars(&ema_map);
        anyhow::ensure!(!vars.is_empty(), "the model has no trainable weights");
        let ema = Ema::new(
            vars.iter().map(|v| v.1.clone()).collect(),
            ema_vars.iter().map(|v| v.1.clone()).collect(),
            s.ema_decay,
            s.ema_warmup,
        )?;
        let opt = AdamW::new(
            vars.iter().map(|v| v.1.clone()).collect(),
            s.optimizer.clone(),
        )?;
        Ok(Self {
            model,
            ema_model,
            ema_map,
            vars,
            ema_vars,
            ema,
            opt,
        })
    }
}

/// The fixed validation windows as one tensor (`None`, with a warning, when there are none).
fn validation_tensor(data: &Dataset, s: &TrainSettings, dev: &Device) -> Result<Option<Tensor>> {
    let (ch, len) = (s.data.channels, s.data.window);
    let (val_data, n_val) = validation_windows(&data.val, len, s.val_windows);
    let val = (n_val > 0)
        .then(|| Tensor::from_vec(val_data, (n_val, ch, len), dev))
        .transpose()?;
    if val.is_none() {
        eprintln!("warning: no validation files; validation loss is not computed");
    }
    Ok(val)
}
