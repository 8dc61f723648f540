//! UTF-8 <-> VST3 strings (`char8` and UTF-16 `TChar` arrays), with no allocation on the way out.
#![allow(unsafe_code)] // reads host-owned, NUL-terminated UTF-16 strings

use std::ffi::c_char;
use vst3::Steinberg::{char16, char8};

/// Copies `src` into a NUL-terminated `char8` array, truncating at a character boundary.
pub fn copy_cstr(src: &str, dst: &mut [char8]) {
    let Some(room) = dst.len().checked_sub(1) else {
        return;
    };
    let mut n = src.len().min(room);
    while !src.is_char_boundary(n) {
        n -= 1;
    }
    for (d, s) in dst.iter_mut().zip(&src.as_bytes()[..n]) {
        *d = *s as c_char;
    }
    dst[n] = 0;
}

/// A `fmt::Write` sink filling a NUL-terminated UTF-16 array (truncates, never allocates).
pub struct WideWriter<'a> {
    dst: &'a mut [char16],
    len: usize,
}

impl<'a> WideWriter<'a> {
    /// Starts an empty string in `dst`.
    pub fn new(dst: &'a mut [char16]) -> Self {
        if let Some(first) = dst.first_mut() {
            *first = 0;
        }
        Self { dst, len: 0 }
    }
}

impl std::fmt::Write for WideWriter<'_> {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        for unit in s.encode_utf16() {
            if self.len + 1 >= self.dst.len() {
                break;
            }
            self.dst[self.len] = unit as char16;
            self.len += 1;
        }
        if let Some(end) = self.dst.get_mut(self.len) {
            *end = 0;
        }
        Ok(())
    }
}

/// Copies `src` into a NUL-terminated UTF-16 array.
pub fn copy_wstr(src: &str, dst: &mut [char16]) {
    let _ = std::fmt::Write::write_str(&mut WideWriter::new(dst), src);
}

/// Longest host string read (a `String128` is 128 units; this bounds a missing terminator).
const MAX_WIDE: usize = 1024;

/// Reads a NUL-terminated UTF-16 string from the host (at most [`MAX_WIDE`] units).
///
/// # Safety
/// `ptr` must be null or point to a UTF-16 string terminated within [`MAX_WIDE`] units, or to at
/// least [`MAX_WIDE`] readable units.
pub unsafe fn read_wstr(ptr: *const char16) -> Option<String> {
    if ptr.is_null() {
        return None;
    }
    let mut len = 0;
    // SAFETY: per the contract, every unit up to the terminator (or MAX_WIDE) is readable.
    while len < MAX_WIDE && unsafe { *ptr.add(len) } != 0 {
        len += 1;
    }
    // SAFETY: the `len` units just read are valid and initialised.
    let units = unsafe { std::slice::from_raw_parts(ptr as *const u16, len) };
    String::from_utf16(units).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_round_trip_and_truncate() {
        let mut w = [0 as char16; 8];
        copy_wstr("Gain dB long", &mut w);
        // SAFETY: `w` is NUL-terminated within its 8 units.
        assert_eq!(unsafe { read_wstr(w.as_ptr()) }.as_deref(), Some("Gain dB"));
        let mut c = [0 as char8; 4];
        copy_cstr("héllo", &mut c);
        assert_eq!(c.map(|b| b as u8), [b'h', 0xc3, 0xa9, 0]);
        let mut c = [0 as char8; 3];
        copy_cstr("héllo", &mut c);
        assert_eq!(c.map(|b| b as u8), [b'h', 0, 0]);
    }
}
