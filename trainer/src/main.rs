//! `adiff`: train diffusion models and run them offline on audio files.

mod cmd;
mod data;
mod train;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

/// mimalloc keeps freed pages for reuse: with glibc's allocator every large tensor is a fresh
/// mmap whose pages fault in zeroed and return to the kernel on free (the kernel's page zeroing was
/// 24-31% of a training step's profile).
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Waveform diffusion from the command line.
#[derive(Parser)]
#[command(name = "adiff", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Upsample an example clip with the embedded upsampler, then time a random-weight diffusion UNet.
    Demo(cmd::demo::DemoArgs),
    /// Print a model folder's config and speed, or an audio file's rate and measured bandwidth.
    Info(cmd::info::InfoArgs),
    /// Generate audio with a generator model.
    Generate(cmd::generate::GenerateArgs),
    /// Restore a clip's missing highs (at its own rate, or by a factor) with an upsampler model.
    Upsample(cmd::upsample::UpsampleArgs),
    /// Regenerate a time span of a clip.
    Inpaint(cmd::inpaint::InpaintArgs),
    /// Extend a clip span by span.
    Continue(cmd::r#continue::ContinueArgs),
    /// A variation of a clip (audio-to-audio) with a generator model.
    Vary(cmd::vary::VaryArgs),
    /// Encode audio to an autoencoder latent.
    Encode(cmd::encode::EncodeArgs),
    /// Decode an autoencoder latent to audio.
    Decode(cmd::decode::DecodeArgs),
    /// Convert a reference checkpoint plus a config into a model folder.
    Convert(cmd::convert::ConvertArgs),
    /// Evaluate upsamplers on a dataset's held-out split (writes docs/models.md).
    Eval(cmd::eval::EvalArgs),
    /// Train a model on a folder of audio, or resume a run.
    Train(train::TrainArgs),
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Demo(a) => cmd::demo::run(&a),
        Command::Info(a) => cmd::info::run(&a),
        Command::Generate(a) => cmd::generate::run(&a),
        Command::Upsample(a) => cmd::upsample::run(&a),
        Command::Inpaint(a) => cmd::inpaint::run(&a),
        Command::Continue(a) => cmd::r#continue::run(&a),
        Command::Vary(a) => cmd::vary::run(&a),
        Command::Encode(a) => cmd::encode::run(&a),
        Command::Decode(a) => cmd::decode::run(&a),
        Command::Convert(a) => cmd::convert::run(&a),
        Command::Eval(a) => cmd::eval::run(&a),
        Command::Train(a) => train::run(a),
    }
}

/// `mi_option_purge_delay` in mimalloc's `mi_option_t` (v2 and v3 headers alike).
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Keeps freed memory mapped instead of returning it 10 ms later: a training step or sampler step
/// reallocates the same tensor sizes every few milliseconds, and each return cost a round of page
/// faults and zeroing (about 12% of a small-config training step).
#[allow(unsafe_code)]
fn keep_freed_memory() {
    // SAFETY: sets a plain integer option; mimalloc reads it when deciding to purge, and the call
    // happens before any other thread exists.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, -1) };
}

/// A panic that adiff-core contains (a third-party decoder on untrusted bytes) becomes a typed
/// error there: print nothing for it. Any other panic is a bug, reported by the default hook.
fn quiet_contained_panics() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if !adiff_core::contain::panic_is_contained() {
            default(info);
        }
    }));
}

fn main() -> ExitCode {
    keep_freed_memory();
    quiet_contained_panics();
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // One line: the error and its causes, outermost first.
            eprintln!("error: {}", format!("{e:#}").replace('\n', " "));
            ExitCode::FAILURE
        }
    }
}
