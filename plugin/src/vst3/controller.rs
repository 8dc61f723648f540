//! `IEditController` of the single-component effect (parameters from the engine's table, IDs
//! hashed from the stable string keys) and the component state through `IBStream`.
#![allow(unsafe_code)] // COM class called by the host

use super::component::Handler;
use super::text::{copy_wstr, read_wstr, WideWriter};
use super::{guard, AdiffVst3};
use adiff_engine::params::Kind;
use adiff_engine::{Param, PARAMS};
use std::ffi::c_void;
use vst3::ComRef;
use vst3::Steinberg::Vst::{
    IComponentHandler, IComponentHandlerTrait, IEditControllerTrait, ParamID, ParamValue,
    ParameterInfo, ParameterInfo_::ParameterFlags_, RestartFlags_, String128, TChar,
};
use vst3::Steinberg::{kInvalidArgument, kResultFalse, kResultOk};
use vst3::Steinberg::{tresult, FIDString, IBStream, IBStreamTrait, IPlugView};

/// Largest state read (10 min of stereo audio twice, plus headers), as in the CLAP adapter.
const MAX_STATE_BYTES: usize = 1 << 30;
/// Read granularity of a state stream.
const CHUNK: usize = 1 << 16;

fn units(kind: Kind) -> &'static str {
    match kind {
        Kind::Float { unit, .. } | Kind::Int { unit } => unit,
        Kind::Choice(_) | Kind::Bool => "",
    }
}

fn flags(p: Param) -> i32 {
    let spec = p.spec();
    let mut f = ParameterFlags_::kNoFlags;
    if spec.flags.automatable && !spec.flags.read_only {
        f |= ParameterFlags_::kCanAutomate;
    }
    if spec.flags.read_only {
        f |= ParameterFlags_::kIsReadOnly;
    }
    if matches!(spec.kind, Kind::Choice(_)) {
        f |= ParameterFlags_::kIsList;
    }
    f
}

impl AdiffVst3 {
    /// Current normalised value of `p` (progress is read from the engine).
    fn normalized(&self, p: Param) -> f64 {
        let plain = if p == Param::Progress {
            f64::from(self.engine.shared().progress()) * 100.0
        } else {
            self.engine.params().get(p)
        };
        p.spec().normalize(plain)
    }
}

impl IEditControllerTrait for AdiffVst3 {
    unsafe fn setComponentState(&self, _state: *mut IBStream) -> tresult {
        // Single component: the values were restored by IComponent::setState already.
        kResultOk
    }

    unsafe fn setState(&self, _state: *mut IBStream) -> tresult {
        // No controller-only state: everything lives in the component state.
        kResultOk
    }

    unsafe fn getState(&self, _state: *mut IBStream) -> tresult {
        kResultOk
    }

    unsafe fn getParameterCount(&self) -> i32 {
        PARAMS.len() as i32
    }

    unsafe fn getParameterInfo(&self, index: i32, info: *mut ParameterInfo) -> tresult {
        guard(kInvalidArgument, || {
            // SAFETY: the host passes a valid, writable ParameterInfo (or null, refused).
            let Some(info) = (unsafe { info.as_mut() }) else {
                return kInvalidArgument;
            };
            let Some(spec) = usize::try_from(index).ok().and_then(|i| PARAMS.get(i)) else {
                return kInvalidArgument;
            };
            info.id = spec.param.id();
            copy_wstr(spec.name, &mut info.title);
            copy_wstr(spec.name, &mut info.shortTitle);
            copy_wstr(units(spec.kind), &mut info.units);
            info.stepCount = spec.step_count();
            info.defaultNormalizedValue = spec.normalize(spec.default);
            info.unitId = 0; // kRootUnitId
            info.flags = flags(spec.param);
            kResultOk
        })
    }

    unsafe fn getParamStringByValue(
        &self,
        id: ParamID,
        normalized: ParamValue,
        string: *mut String128,
    ) -> tresult {
        guard(kInvalidArgument, || {
            // SAFETY: the host passes a writable String128 (or null, refused).
            let (Some(p), Some(out)) = (Param::from_id(id), unsafe { string.as_mut() }) else {
                return kInvalidArgument;
            };
            let spec = p.spec();
            match spec.write_text(spec.denormalize(normalized), &mut WideWriter::new(out)) {
                Ok(()) => kResultOk,
                Err(_) => kResultFalse,
            }
        })
    }

    unsafe fn getParamValueByString(
        &self,
        id: ParamID,
        string: *mut TChar,
        normalized: *mut ParamValue,
    ) -> tresult {
        guard(kInvalidArgument, || {
            let Some(p) = Param::from_id(id) else {
                return kInvalidArgument;
            };
            if normalized.is_null() {
                return kInvalidArgument;
            }
            // SAFETY: the host passes a NUL-terminated UTF-16 string (or null).
            let Some(text) = (unsafe { read_wstr(string) }) else {
                return kInvalidArgument;
            };
            match p.spec().parse(&text) {
                Some(plain) => {
                    // SAFETY: writable out-pointer (non-null checked).
                    unsafe { *normalized = p.spec().normalize(plain) };
                    kResultOk
                }
                None => kResultFalse,
            }
        })
    }

    unsafe fn normalizedParamToPlain(&self, id: ParamID, normalized: ParamValue) -> ParamValue {
        Param::from_id(id).map_or(0.0, |p| p.spec().denormalize(normalized))
    }

    unsafe fn plainParamToNormalized(&self, id: ParamID, plain: ParamValue) -> ParamValue {
        Param::from_id(id).map_or(0.0, |p| p.spec().normalize(plain))
    }

    unsafe fn getParamNormalized(&self, id: ParamID) -> ParamValue {
        Param::from_id(id).map_or(0.0, |p| self.normalized(p))
    }

    unsafe fn setParamNormalized(&self, id: ParamID, value: ParamValue) -> tresult {
        match Param::from_id(id) {
            Some(p) if p.spec().flags.read_only => kResultOk,
            Some(p) => {
                self.engine.params().set(p, p.spec().denormalize(value));
                kResultOk
            }
            None => kInvalidArgument,
        }
    }

    unsafe fn setComponentHandler(&self, handler: *mut IComponentHandler) -> tresult {
        guard(kResultFalse, || {
            // SAFETY: the host's handler (or null); kept with our own reference.
            let h = unsafe { ComRef::from_raw(handler) }.map(|h| Handler(h.to_com_ptr()));
            *self.handler.lock().unwrap_or_else(|e| e.into_inner()) = h;
            kResultOk
        })
    }

    unsafe fn createView(&self, _name: FIDString) -> *mut IPlugView {
        std::ptr::null_mut()
    }
}

/// `IComponent::getState`: the engine's versioned state into the host stream.
///
/// # Safety
/// `stream` is null or a live `IBStream` for this call.
pub(crate) unsafe fn save_state(plugin: &AdiffVst3, stream: *mut IBStream) -> tresult {
    // SAFETY: per the contract.
    let Some(stream) = (unsafe { ComRef::from_raw(stream) }) else {
        return kInvalidArgument;
    };
    let bytes = plugin.engine.save_state();
    let mut done = 0;
    while done < bytes.len() {
        let chunk = &bytes[done..bytes.len().min(done + CHUNK)];
        let mut written = 0i32;
        // SAFETY: `chunk` is readable for its length; the stream only reads it.
        let r = unsafe {
            stream.write(
                chunk.as_ptr() as *mut c_void,
                chunk.len() as i32,
                &mut written,
            )
        };
        if r != kResultOk || written <= 0 {
            return kResultFalse;
        }
        done += written as usize;
    }
    kResultOk
}

/// `IComponent::setState`: reads the whole stream and restores it; a refused state leaves the
/// instance clean (logged), and the host is told that parameter values changed either way.
///
/// # Safety
/// `stream` is null or a live `IBStream` for this call.
pub(crate) unsafe fn load_state(plugin: &AdiffVst3, stream: *mut IBStream) -> tresult {
    // SAFETY: per the contract.
    let Some(stream) = (unsafe { ComRef::from_raw(stream) }) else {
        return kInvalidArgument;
    };
    let mut bytes = Vec::new();
    let mut chunk = vec![0u8; CHUNK];
    loop {
        let mut read = 0i32;
        // SAFETY: `chunk` is writable for its length.
        let r = unsafe {
            stream.read(
                chunk.as_mut_ptr() as *mut c_void,
                chunk.len() as i32,
                &mut read,
            )
        };
        if r != kResultOk || read <= 0 {
            break;
        }
        bytes.extend_from_slice(&chunk[..(read as usize).min(chunk.len())]);
        if bytes.len() > MAX_STATE_BYTES {
            bytes.clear();
            break;
        }
    }
    let outcome = plugin.engine.load_state(&bytes);
    plugin.flush_log();
    notify_values_changed(plugin);
    match outcome {
        Ok(()) => kResultOk,
        Err(_) => kResultFalse,
    }
}

/// Tells the host to re-read every parameter value (after a state load).
fn notify_values_changed(plugin: &AdiffVst3) {
    let guard = plugin.handler.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(Handler(h)) = guard.as_ref() {
        // SAFETY: a live handler we hold a reference to; called on the main thread.
        unsafe { h.restartComponent(RestartFlags_::kParamValuesChanged as i32) };
    }
}
