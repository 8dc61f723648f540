//! The VST3 adapter over [`adiff_engine`], on the `vst3` crate's COM interfaces: the module entry
//! points (`GetPluginFactory`, `ModuleEntry`/`ModuleExit` and the other platforms' names), the
//! class factory and one single-component audio effect (`IComponent` + `IAudioProcessor` +
//! `IEditController`). Every callback catches panics; nothing unwinds into the host.
#![allow(unsafe_code)]
// FFI module: COM vtables called by the host
// The enum types of the bindings differ by platform (c_int on Windows, c_uint elsewhere): the
// casts that are no-ops here are needed there.
#![allow(clippy::unnecessary_cast)]

mod component;
mod controller;
mod factory;
mod process;
mod text;

use std::ffi::c_void;
use std::panic::{catch_unwind, AssertUnwindSafe};
use vst3::Steinberg::{IPluginFactory, TUID};
use vst3::{uid, ComWrapper};

pub use component::AdiffVst3;
pub use factory::Factory;

/// Class ID of the audio effect (stable forever: hosts store it in projects).
pub const CLASS_ID: TUID = uid(0x6164_6966, 0x665f_7673, 0x7433_5f66, 0x785f_0001);

/// Runs a host callback body, turning a panic into `fallback` (nothing unwinds into the host).
#[inline]
pub(crate) fn guard<T>(fallback: T, body: impl FnOnce() -> T) -> T {
    catch_unwind(AssertUnwindSafe(body)).unwrap_or(fallback)
}

/// The VST3 module's factory (all platforms). The host releases the returned reference.
#[no_mangle]
pub extern "system" fn GetPluginFactory() -> *mut IPluginFactory {
    guard(std::ptr::null_mut(), || {
        ComWrapper::new(Factory)
            .to_com_ptr::<IPluginFactory>()
            .map_or(std::ptr::null_mut(), |p| p.into_raw())
    })
}

/// Linux module entry: nothing to set up (no model is loaded while a host scans).
#[cfg(target_os = "linux")]
#[no_mangle]
pub extern "system" fn ModuleEntry(_library_handle: *mut c_void) -> bool {
    true
}

/// Linux module exit.
#[cfg(target_os = "linux")]
#[no_mangle]
pub extern "system" fn ModuleExit() -> bool {
    true
}

/// macOS bundle entry.
#[cfg(target_os = "macos")]
#[no_mangle]
pub extern "system" fn bundleEntry(_bundle_ref: *mut c_void) -> bool {
    true
}

/// macOS bundle exit.
#[cfg(target_os = "macos")]
#[no_mangle]
pub extern "system" fn bundleExit() -> bool {
    true
}

/// Windows DLL entry.
#[cfg(target_os = "windows")]
#[no_mangle]
pub extern "system" fn InitDll() -> bool {
    true
}

/// Windows DLL exit.
#[cfg(target_os = "windows")]
#[no_mangle]
pub extern "system" fn ExitDll() -> bool {
    true
}

#[cfg(not(any(target_os = "linux", target_os = "macos", target_os = "windows")))]
#[allow(dead_code)]
fn _unused(_: *mut c_void) {}
