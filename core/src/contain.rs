//! Containing panics of third-party parsers (symphonia, rubato, candle's pickle reader) that read
//! untrusted bytes: [`contained`] turns such a panic into an `Err` the caller maps to a typed
//! error, and tells a binary's panic hook (through [`panic_is_contained`]) that the panic is
//! handled, so the hook can stay silent instead of printing a backtrace banner for it.

use std::cell::Cell;
use std::panic::{catch_unwind, UnwindSafe};

thread_local! {
    static DEPTH: Cell<usize> = const { Cell::new(0) };
}

/// Runs `f`, catching a panic inside it; `Err` carries the panic's message.
pub fn contained<R>(f: impl FnOnce() -> R + UnwindSafe) -> Result<R, String> {
    DEPTH.with(|d| d.set(d.get() + 1));
    let out = catch_unwind(f);
    DEPTH.with(|d| d.set(d.get() - 1));
    out.map_err(|payload| {
        payload
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown panic".into())
    })
}

/// Whether the current thread is inside [`contained`] (a panic hook may then stay quiet).
pub fn panic_is_contained() -> bool {
    DEPTH.with(|d| d.get() > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_becomes_its_message_and_the_depth_unwinds() {
        assert!(!panic_is_contained());
        let r = contained(|| {
            assert!(panic_is_contained());
            if panic_is_contained() {
                panic!("bad header {}", 7);
            }
            1
        });
        assert_eq!(r, Err("bad header 7".to_string()));
        assert!(!panic_is_contained());
        assert_eq!(contained(|| 5), Ok(5));
    }
}
