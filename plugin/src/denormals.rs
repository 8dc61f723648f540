//! Flush-to-zero / denormals-are-zero around audio processing (MXCSR on x86-64, FPCR on
//! AArch64), restored when the guard drops.
#![allow(unsafe_code)]

/// Sets FTZ and DAZ for the current thread until dropped.
pub struct DenormalGuard {
    #[cfg_attr(
        not(any(target_arch = "x86_64", target_arch = "aarch64")),
        allow(dead_code)
    )]
    saved: u64,
}

impl DenormalGuard {
    /// Turns FTZ/DAZ on, remembering the previous mode.
    #[inline]
    pub fn new() -> Self {
        let saved = read();
        write(saved | FLAGS);
        Self { saved }
    }
}

impl Default for DenormalGuard {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for DenormalGuard {
    #[inline]
    fn drop(&mut self) {
        write(self.saved);
    }
}

#[cfg(target_arch = "x86_64")]
const FLAGS: u64 = 0x8040; // FTZ (bit 15) | DAZ (bit 6)
#[cfg(target_arch = "aarch64")]
const FLAGS: u64 = 1 << 24; // FZ
#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
const FLAGS: u64 = 0;

#[cfg(target_arch = "x86_64")]
#[inline]
fn read() -> u64 {
    let mut csr: u32 = 0;
    // SAFETY: stmxcsr stores the 32-bit MXCSR register into the local `csr`; SSE is baseline on x86-64.
    unsafe { std::arch::asm!("stmxcsr [{}]", in(reg) &mut csr, options(nostack, preserves_flags)) };
    u64::from(csr)
}

#[cfg(target_arch = "x86_64")]
#[inline]
fn write(v: u64) {
    let csr = v as u32;
    // SAFETY: ldmxcsr loads MXCSR from a valid local; only rounding/exception-mask bits we read before
    // plus FTZ/DAZ are written, which changes float behaviour only as intended.
    unsafe { std::arch::asm!("ldmxcsr [{}]", in(reg) &csr, options(nostack, preserves_flags)) };
}

#[cfg(target_arch = "aarch64")]
#[inline]
fn read() -> u64 {
    let v: u64;
    // SAFETY: reading FPCR has no side effects.
    unsafe {
        std::arch::asm!("mrs {}, fpcr", out(reg) v, options(nomem, nostack, preserves_flags))
    };
    v
}

#[cfg(target_arch = "aarch64")]
#[inline]
fn write(v: u64) {
    // SAFETY: writes back FPCR with the FZ bit changed; affects only this thread's float mode.
    unsafe { std::arch::asm!("msr fpcr, {}", in(reg) v, options(nomem, nostack, preserves_flags)) };
}

#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
fn read() -> u64 {
    0
}

#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
fn write(_: u64) {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
    fn denormal_results_flush_to_zero_inside_the_guard_only() {
        // Not inlined and fed through black_box, so each call multiplies under the current mode.
        #[inline(never)]
        fn half_of_smallest_normal() -> f32 {
            std::hint::black_box(
                std::hint::black_box(f32::MIN_POSITIVE) * std::hint::black_box(0.5f32),
            )
        }
        {
            let _g = DenormalGuard::new();
            assert_eq!(half_of_smallest_normal(), 0.0);
        }
        assert!(half_of_smallest_normal() > 0.0);
    }
}
