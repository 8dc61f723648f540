//! The property-style pass: a valid WAV, a valid config.json and a valid small safetensors, each
//! put through 64 seeded random mutations (bit flips, byte overwrites, truncations, insertions,
//! deletions, 0xff runs, copied blocks; a tiny xorshift generator with fixed seeds). Every mutated
//! input must give a clean error or success with finite output: never a panic, hang or blow-up.

use super::build::*;
use super::harness::{args, case, Case, Ctx, Expect};

/// Mutations per input.
pub const N: usize = 64;

/// xorshift64*.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    pub fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }
    fn byte(&mut self) -> u8 {
        (self.next() >> 56) as u8
    }
}

/// One mutation at a position below `focus` (the whole input when it is larger); says what it did.
pub fn mutate(b: &mut Vec<u8>, rng: &mut Rng, focus: usize) -> String {
    if b.is_empty() {
        b.push(0);
    }
    let n = b.len();
    let at = |rng: &mut Rng| rng.below(focus.min(n));
    match rng.below(7) {
        0 => {
            let i = at(rng);
            let bit = 1u8 << rng.below(8);
            b[i] ^= bit;
            format!("flip {bit:#04x} at {i}")
        }
        1 => {
            let i = at(rng);
            let v = rng.byte();
            b[i] = v;
            format!("byte {v:#04x} at {i}")
        }
        2 => {
            let keep = rng.below(n);
            b.truncate(keep);
            format!("truncate to {keep}")
        }
        3 => {
            let i = at(rng);
            let k = 1 + rng.below(16);
            let ins: Vec<u8> = (0..k).map(|_| rng.byte()).collect();
            b.splice(i..i, ins);
            format!("insert {k} at {i}")
        }
        4 => {
            let i = at(rng);
            let k = (1 + rng.below(16)).min(n - i);
            b.drain(i..i + k);
            format!("delete {k} at {i}")
        }
        5 => {
            let i = at(rng);
            let k = (1 + rng.below(8)).min(n - i);
            b[i..i + k].fill(0xff);
            format!("0xff x{k} at {i}")
        }
        _ => {
            let from = rng.below(n);
            let to = at(rng);
            let k = (1 + rng.below(32)).min(n - from).min(n - to);
            let block = b[from..from + k].to_vec();
            b[to..to + k].copy_from_slice(&block);
            format!("copy {k} {from}->{to}")
        }
    }
}

/// `base` after the mutations of seed `seed` (one to three stacked), with their description.
pub fn mutated(base: &[u8], seed: u64, focus: usize) -> (Vec<u8>, String) {
    let mut rng = Rng::new(seed);
    let mut b = base.to_vec();
    let k = 1 + rng.below(3);
    let what: Vec<String> = (0..k).map(|_| mutate(&mut b, &mut rng, focus)).collect();
    (b, what.join("; "))
}

fn safetensors_header_end(b: &[u8]) -> usize {
    8 + u64::from_le_bytes(b[..8].try_into().unwrap()) as usize
}

pub fn cases() -> Vec<Case> {
    let mut out = Vec::new();
    // A 16-bit stereo WAV, 0.05 s at 8 kHz, through the shipped upsampler. Half the mutations
    // aim at the 44-byte header.
    let wav = pcm16(8000, 2, 400).bytes();
    for i in 0..N {
        let focus = if i % 2 == 0 { 44 } else { usize::MAX };
        let (bytes, what) = mutated(&wav, 1000 + i as u64, focus);
        out.push(case(
            format!("wav #{i} [{what}]"),
            move |c: &Ctx| {
                std::fs::write(c.dir.join("in.wav"), &bytes).unwrap();
                args(&["upsample", &c.p("in.wav"), "-o", &c.out(), "--factor", "2"])
            },
            Expect::CleanOrWav,
        ));
    }
    // The tiny generator's config.json, through a timed `info` (which builds the network).
    for i in 0..N {
        out.push(case(
            format!("config.json #{i} (seed {})", 2000 + i),
            move |c: &Ctx| {
                let d = c.copy_fx("gen", "model");
                let p = d.join("config.json");
                let (bytes, what) =
                    mutated(&std::fs::read(&p).unwrap(), 2000 + i as u64, usize::MAX);
                std::fs::write(&p, bytes).unwrap();
                std::fs::write(c.dir.join("mutation.txt"), what).unwrap();
                args(&["info", &d.to_string_lossy()])
            },
            Expect::CleanOrOk,
        ));
    }
    // The tiny generator's model.safetensors, through a timed `info`; half the mutations aim at
    // the header.
    for i in 0..N {
        out.push(case(
            format!("model.safetensors #{i} (seed {})", 3000 + i),
            move |c: &Ctx| {
                let d = c.copy_fx("gen", "model");
                let p = d.join("model.safetensors");
                let base = std::fs::read(&p).unwrap();
                let focus = if i % 2 == 0 {
                    safetensors_header_end(&base)
                } else {
                    usize::MAX
                };
                let (bytes, what) = mutated(&base, 3000 + i as u64, focus);
                std::fs::write(&p, bytes).unwrap();
                std::fs::write(c.dir.join("mutation.txt"), what).unwrap();
                args(&["info", &d.to_string_lossy()])
            },
            Expect::CleanOrOk,
        ));
    }
    out
}
