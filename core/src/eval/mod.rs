//! Evaluation of upsamplers: the metrics of the project's evaluation (log-spectral distance, SNR)
//! and the baselines that cost nothing (sinc, rubato, linear, noise fill). Above the models in
//! the layering: a baseline may borrow a model's building blocks, never the other way round.

pub mod baselines;
pub mod metrics;
