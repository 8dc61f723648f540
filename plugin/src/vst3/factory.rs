//! `IPluginFactory3` (with 2 and 1): one audio-effect class, instantiated on demand.
#![allow(unsafe_code)] // COM class called by the host

use super::text::{copy_cstr, copy_wstr};
use super::{guard, AdiffVst3, CLASS_ID};
use std::ffi::c_void;
use vst3::Steinberg::{kInvalidArgument, kNoInterface, kOutOfMemory, kResultOk};
use vst3::Steinberg::{
    tresult, FIDString, FUnknown, IPluginFactory2Trait, IPluginFactory3, IPluginFactory3Trait,
    IPluginFactoryTrait, PClassInfo, PClassInfo2, PClassInfoW, PClassInfo_, PFactoryInfo,
    PFactoryInfo_, TUID,
};
use vst3::{Class, ComWrapper};

const VENDOR: &str = "adiff";
const URL: &str = "https://github.com/adiff";
const EMAIL: &str = "";
const NAME: &str = crate::clap::PLUGIN_NAME;
/// VST3 class category of audio processors.
const CATEGORY: &str = "Audio Module Class";
/// VST3 sub-categories (`PlugType::kFx`).
const SUB_CATEGORIES: &str = "Fx";
/// The SDK version these interfaces correspond to.
const SDK_VERSION: &str = "VST 3.7.9";

/// The class factory.
pub struct Factory;

impl Class for Factory {
    type Interfaces = (IPluginFactory3,);
}

fn valid_index(index: i32) -> bool {
    index == 0
}

impl IPluginFactoryTrait for Factory {
    unsafe fn getFactoryInfo(&self, info: *mut PFactoryInfo) -> tresult {
        guard(kInvalidArgument, || {
            // SAFETY: the host passes a valid, writable PFactoryInfo (or null, refused).
            let Some(info) = (unsafe { info.as_mut() }) else {
                return kInvalidArgument;
            };
            copy_cstr(VENDOR, &mut info.vendor);
            copy_cstr(URL, &mut info.url);
            copy_cstr(EMAIL, &mut info.email);
            info.flags = PFactoryInfo_::FactoryFlags_::kUnicode as i32;
            kResultOk
        })
    }

    unsafe fn countClasses(&self) -> i32 {
        1
    }

    unsafe fn getClassInfo(&self, index: i32, info: *mut PClassInfo) -> tresult {
        guard(kInvalidArgument, || {
            // SAFETY: the host passes a valid, writable PClassInfo (or null, refused).
            let Some(info) = (unsafe { info.as_mut() }) else {
                return kInvalidArgument;
            };
            if !valid_index(index) {
                return kInvalidArgument;
            }
            info.cid = CLASS_ID;
            info.cardinality = PClassInfo_::ClassCardinality_::kManyInstances as i32;
            copy_cstr(CATEGORY, &mut info.category);
            copy_cstr(NAME, &mut info.name);
            kResultOk
        })
    }

    unsafe fn createInstance(
        &self,
        cid: FIDString,
        iid: FIDString,
        obj: *mut *mut c_void,
    ) -> tresult {
        guard(kInvalidArgument, || {
            if cid.is_null() || iid.is_null() || obj.is_null() {
                return kInvalidArgument;
            }
            // SAFETY: `obj` is a valid out-pointer (checked non-null); cleared before any return.
            unsafe { *obj = std::ptr::null_mut() };
            // SAFETY: a class ID is 16 bytes (TUID); the host passes one by pointer.
            let cid = unsafe { &*(cid as *const TUID) };
            if *cid != CLASS_ID {
                return kNoInterface;
            }
            let Some(instance) = AdiffVst3::new() else {
                return kOutOfMemory;
            };
            let Some(unknown) = ComWrapper::new(instance).to_com_ptr::<FUnknown>() else {
                return kNoInterface;
            };
            let ptr = unknown.as_ptr();
            // SAFETY: `ptr` is a live FUnknown of our own class; queryInterface adds the reference
            // the host owns, and `unknown` releases ours when it drops.
            unsafe { ((*(*ptr).vtbl).queryInterface)(ptr, iid as *const TUID, obj) }
        })
    }
}

impl IPluginFactory2Trait for Factory {
    unsafe fn getClassInfo2(&self, index: i32, info: *mut PClassInfo2) -> tresult {
        guard(kInvalidArgument, || {
            // SAFETY: the host passes a valid, writable PClassInfo2 (or null, refused).
            let Some(info) = (unsafe { info.as_mut() }) else {
                return kInvalidArgument;
            };
            if !valid_index(index) {
                return kInvalidArgument;
            }
            info.cid = CLASS_ID;
            info.cardinality = PClassInfo_::ClassCardinality_::kManyInstances as i32;
            copy_cstr(CATEGORY, &mut info.category);
            copy_cstr(NAME, &mut info.name);
            info.classFlags = 0;
            copy_cstr(SUB_CATEGORIES, &mut info.subCategories);
            copy_cstr(VENDOR, &mut info.vendor);
            copy_cstr(env!("CARGO_PKG_VERSION"), &mut info.version);
            copy_cstr(SDK_VERSION, &mut info.sdkVersion);
            kResultOk
        })
    }
}

impl IPluginFactory3Trait for Factory {
    unsafe fn getClassInfoUnicode(&self, index: i32, info: *mut PClassInfoW) -> tresult {
        guard(kInvalidArgument, || {
            // SAFETY: the host passes a valid, writable PClassInfoW (or null, refused).
            let Some(info) = (unsafe { info.as_mut() }) else {
                return kInvalidArgument;
            };
            if !valid_index(index) {
                return kInvalidArgument;
            }
            info.cid = CLASS_ID;
            info.cardinality = PClassInfo_::ClassCardinality_::kManyInstances as i32;
            copy_cstr(CATEGORY, &mut info.category);
            copy_wstr(NAME, &mut info.name);
            // Not `kDistributable`: processor and controller are one object.
            info.classFlags = 0;
            copy_cstr(SUB_CATEGORIES, &mut info.subCategories);
            copy_wstr(VENDOR, &mut info.vendor);
            copy_wstr(env!("CARGO_PKG_VERSION"), &mut info.version);
            copy_wstr(SDK_VERSION, &mut info.sdkVersion);
            kResultOk
        })
    }

    unsafe fn setHostContext(&self, _context: *mut FUnknown) -> tresult {
        kResultOk
    }
}
