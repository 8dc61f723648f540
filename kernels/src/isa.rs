//! Runtime choice of the CPU instruction set a kernel runs with (AVX-512, AVX2+FMA or portable Rust).
//!
//! Every kernel in [`crate`] takes an explicit [`Isa`]; the public entry points use
//! [`Isa::detect`], which picks the best the CPU supports, capped by the environment variable
//! `ADIFF_KERNELS` (`portable`, `avx2` or `avx512`). Tests pass each runnable `Isa` explicitly, so
//! the portable fallback is exercised on every machine without a process-wide switch.

use std::sync::OnceLock;

/// An instruction-set level for the hand-written kernels, ordered from least to most capable.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Isa {
    /// Plain Rust, auto-vectorised for the build target. Runs everywhere.
    Portable,
    /// x86-64 AVX2 with FMA (8-lane f32 vectors).
    Avx2,
    /// x86-64 AVX-512F (16-lane f32 vectors).
    Avx512,
}

impl Isa {
    /// Whether this CPU can run kernels compiled for `self`.
    pub fn is_supported(self) -> bool {
        match self {
            Isa::Portable => true,
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma"),
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => is_x86_feature_detected!("avx512f"),
            #[cfg(not(target_arch = "x86_64"))]
            _ => false,
        }
    }

    /// Every level this CPU can run, portable first (what the tests iterate over).
    pub fn runnable() -> Vec<Isa> {
        [Isa::Portable, Isa::Avx2, Isa::Avx512]
            .into_iter()
            .filter(|isa| isa.is_supported())
            .collect()
    }

    /// The best supported level, capped by `ADIFF_KERNELS` (read once per process).
    pub fn detect() -> Isa {
        static CHOSEN: OnceLock<Isa> = OnceLock::new();
        *CHOSEN.get_or_init(|| {
            let best = Isa::runnable().into_iter().max().unwrap_or(Isa::Portable);
            let cap = std::env::var("ADIFF_KERNELS")
                .ok()
                .and_then(|v| Isa::parse(&v));
            match cap {
                Some(cap) => best.min(cap),
                None => best,
            }
        })
    }

    /// Parses `portable`, `avx2` or `avx512` (the values of `ADIFF_KERNELS`).
    pub fn parse(name: &str) -> Option<Isa> {
        match name.trim().to_ascii_lowercase().as_str() {
            "portable" | "scalar" | "fallback" => Some(Isa::Portable),
            "avx2" => Some(Isa::Avx2),
            "avx512" | "avx512f" => Some(Isa::Avx512),
            _ => None,
        }
    }

    /// Whether the CPU has the AVX-512 bf16 dot-product instruction (`vdpbf16ps`).
    pub fn has_avx512_bf16() -> bool {
        #[cfg(target_arch = "x86_64")]
        {
            is_x86_feature_detected!("avx512f") && is_x86_feature_detected!("avx512bf16")
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            false
        }
    }
}

/// Defines `fn $name(isa: Isa, args…) -> ret` that runs `$body(args…)` (an `#[inline(always)]`
/// plain-Rust body) compiled for the chosen instruction set: `#[target_feature]` copies for
/// AVX-512F and AVX2+FMA, which the compiler vectorises for those units, where the CPU has them;
/// the body as built otherwise. The calling module allows `unsafe_code`.
macro_rules! per_isa {
    ($(#[$meta:meta])* $vis:vis fn $name:ident($($arg:ident: $ty:ty),* $(,)?) $(-> $ret:ty)? => $body:ident) => {
        $(#[$meta])*
        $vis fn $name(isa: $crate::isa::Isa, $($arg: $ty),*) $(-> $ret)? {
            #[cfg(target_arch = "x86_64")]
            #[target_feature(enable = "avx512f")]
            unsafe fn avx512($($arg: $ty),*) $(-> $ret)? {
                $body($($arg),*)
            }
            #[cfg(target_arch = "x86_64")]
            #[target_feature(enable = "avx2,fma")]
            unsafe fn avx2($($arg: $ty),*) $(-> $ret)? {
                $body($($arg),*)
            }
            match isa {
                // SAFETY: each copy runs only where `is_supported` found its features.
                #[cfg(target_arch = "x86_64")]
                $crate::isa::Isa::Avx512 if isa.is_supported() => unsafe { avx512($($arg),*) },
                #[cfg(target_arch = "x86_64")]
                $crate::isa::Isa::Avx2 if isa.is_supported() => unsafe { avx2($($arg),*) },
                _ => $body($($arg),*),
            }
        }
    };
}
pub(crate) use per_isa;

#[cfg(test)]
mod tests {
    use super::Isa;

    #[test]
    fn portable_is_always_runnable_and_detect_is_runnable() {
        let all = Isa::runnable();
        assert_eq!(all.first(), Some(&Isa::Portable));
        assert!(all.contains(&Isa::detect()));
        assert_eq!(Isa::parse("AVX2"), Some(Isa::Avx2));
        assert_eq!(Isa::parse("sse"), None);
    }
}
