//! Ctrl-C (SIGINT) and SIGTERM during training.
//!
//! The first signal only sets atomics (signal-hook's flag API; no allocation, no locks, no I/O in
//! the handler). The loop checks them between optimizer updates: the update in progress finishes
//! (a data batch being cut and a validation in progress finish too), a checkpoint is written the
//! normal atomic way, the EMA weights are exported as at the normal end, and the command exits
//! with `128 + signal` after saying how to resume. A second signal exits at once with
//! [`SECOND_SIGNAL_EXIT`]: a checkpoint being written then is left as a temporary file, which the
//! next run removes, so no complete checkpoint is ever damaged.

use signal_hook::consts::{SIGINT, SIGTERM};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

/// Exit status of a second signal (the shell's status for a Ctrl-C'd command).
pub const SECOND_SIGNAL_EXIT: i32 = 130;

/// The signal that asked a run to stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopSignal {
    /// Ctrl-C.
    Interrupt,
    /// `kill`, a service manager or a batch scheduler.
    Terminate,
}

impl StopSignal {
    /// The conventional exit status of a command ended by this signal (`128 + number`).
    pub fn exit_code(self) -> i32 {
        128 + self.number()
    }

    /// The signal's name (`SIGINT`, `SIGTERM`).
    pub fn name(self) -> &'static str {
        match self {
            Self::Interrupt => "SIGINT",
            Self::Terminate => "SIGTERM",
        }
    }

    fn number(self) -> i32 {
        match self {
            Self::Interrupt => SIGINT,
            Self::Terminate => SIGTERM,
        }
    }

    fn from_number(n: usize) -> Option<Self> {
        [Self::Interrupt, Self::Terminate]
            .into_iter()
            .find(|s| s.number() as usize == n)
    }
}

/// Whether a stop was requested, and by which signal. Cheap to poll.
#[derive(Debug, Clone, Default)]
pub struct Interrupt {
    /// Set by the first signal; arms the immediate exit on the second.
    requested: Arc<AtomicBool>,
    /// The number of the last signal received (0: none).
    signal: Arc<AtomicUsize>,
}

impl Interrupt {
    /// A flag no signal sets (library use and tests).
    pub fn new() -> Self {
        Self::default()
    }

    /// Installs the SIGINT and SIGTERM handlers of this process and returns their flag.
    /// The handlers stay installed until the process exits.
    pub fn install() -> std::io::Result<Self> {
        let this = Self::new();
        for sig in [SIGINT, SIGTERM] {
            // Order matters: the exit action must see the flag as it was before this signal.
            signal_hook::flag::register_conditional_shutdown(
                sig,
                SECOND_SIGNAL_EXIT,
                Arc::clone(&this.requested),
            )?;
            signal_hook::flag::register_usize(sig, Arc::clone(&this.signal), sig as usize)?;
            signal_hook::flag::register(sig, Arc::clone(&this.requested))?;
        }
        Ok(this)
    }

    /// Requests a stop as if `signal` had arrived.
    #[cfg(test)]
    pub fn request(&self, signal: StopSignal) {
        self.signal
            .store(signal.number() as usize, Ordering::SeqCst);
        self.requested.store(true, Ordering::SeqCst);
    }

    /// The signal that requested a stop, if one did.
    pub fn requested(&self) -> Option<StopSignal> {
        if !self.requested.load(Ordering::SeqCst) {
            return None;
        }
        // The flag is set last by the handlers, so the number is already there; default to
        // SIGINT should another registration ever set the flag alone.
        Some(
            StopSignal::from_number(self.signal.load(Ordering::SeqCst))
                .unwrap_or(StopSignal::Interrupt),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_requested_stop_reports_its_signal_and_exit_code() {
        let i = Interrupt::new();
        assert_eq!(i.requested(), None);
        i.request(StopSignal::Terminate);
        assert_eq!(i.requested(), Some(StopSignal::Terminate));
        assert_eq!(StopSignal::Terminate.exit_code(), 143);
        assert_eq!(StopSignal::Interrupt.exit_code(), 130);
        assert_eq!(StopSignal::Interrupt.name(), "SIGINT");
    }
}
