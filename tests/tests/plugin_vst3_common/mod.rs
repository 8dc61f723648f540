//! A minimal VST3 host on the `vst3` crate: loads a module with libloading, creates the effect
//! through its factory, and provides the host-side objects (memory `IBStream`, parameter change
//! queues, a component handler that counts restarts) and a block driver.
#![allow(unsafe_code)] // COM objects and a dynamic library
#![allow(dead_code)] // shared by several test files

use libloading::Library;
use std::cell::{Cell, RefCell};
use std::ffi::c_void;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use vst3::Steinberg::Vst::{
    AudioBusBuffers, AudioBusBuffers__type0, IAudioProcessor, IAudioProcessorTrait, IComponent,
    IComponentHandler, IComponentHandlerTrait, IEditController, IParamValueQueue,
    IParamValueQueueTrait, IParameterChanges, IParameterChangesTrait, ParamID, ParamValue,
    ProcessContext, ProcessData, ProcessSetup, SymbolicSampleSizes_,
};
use vst3::Steinberg::{
    kInvalidArgument, kResultFalse, kResultOk, tresult, IBStream, IBStreamTrait,
    IBStream_::IStreamSeekMode_, IPluginFactory, IPluginFactoryTrait, TUID,
};
use vst3::{Class, ComPtr, ComWrapper, Interface};

/// Largest block the tests process.
pub const MAX_BLOCK: usize = 4096;

/// A loaded VST3 module; its objects must be released before it drops.
pub struct Module {
    pub factory: ComPtr<IPluginFactory>,
    // Declared last: unloaded after the factory is released (`None`: linked in-process).
    lib: Option<Library>,
}

type EntryFn = unsafe extern "system" fn(*mut c_void) -> bool;
type FactoryFn = unsafe extern "system" fn() -> *mut IPluginFactory;

impl Module {
    /// Loads the module, calls `ModuleEntry` and `GetPluginFactory`.
    pub fn load(path: &Path) -> Module {
        // SAFETY: our own plugin library, built just now; its initialisers are sound.
        let lib = unsafe { Library::new(path) }.expect("loads the VST3 module");
        // SAFETY: the symbols have the VST3 module ABI declared above.
        unsafe {
            let entry = lib.get::<EntryFn>(b"ModuleEntry").expect("ModuleEntry");
            assert!(entry(std::ptr::null_mut()), "ModuleEntry failed");
            let get = lib
                .get::<FactoryFn>(b"GetPluginFactory")
                .expect("GetPluginFactory");
            let factory = ComPtr::from_raw(get()).expect("a factory");
            Module {
                factory,
                lib: Some(lib),
            }
        }
    }

    /// The factory of a plugin linked into this process (no library to load).
    pub fn in_process(factory: *mut IPluginFactory) -> Module {
        // SAFETY: a factory pointer from `GetPluginFactory`, with a reference we own.
        let factory = unsafe { ComPtr::from_raw(factory) }.expect("a factory");
        Module { factory, lib: None }
    }

    /// Creates an instance of class `cid` and queries `I` from it.
    pub fn create<I: Interface>(&self, cid: &TUID) -> Option<ComPtr<I>> {
        let mut obj = std::ptr::null_mut();
        // SAFETY: valid class and interface IDs and out-pointer.
        let r = unsafe {
            self.factory.createInstance(
                cid.as_ptr(),
                I::IID.as_ptr() as *const std::ffi::c_char,
                &mut obj,
            )
        };
        // SAFETY: on success `obj` is an `I` with a reference we own.
        (r == kResultOk)
            .then(|| unsafe { ComPtr::from_raw(obj as *mut I) })
            .flatten()
    }
}

impl Drop for Module {
    fn drop(&mut self) {
        let Some(lib) = &self.lib else {
            return;
        };
        // SAFETY: the module is still loaded here.
        unsafe {
            if let Ok(exit) = lib.get::<unsafe extern "system" fn() -> bool>(b"ModuleExit") {
                exit();
            }
        }
    }
}

/// A growable in-memory `IBStream`.
#[derive(Default)]
pub struct MemStream {
    pub data: RefCell<Vec<u8>>,
    pos: Cell<usize>,
}

impl Class for MemStream {
    type Interfaces = (IBStream,);
}

impl MemStream {
    pub fn with(bytes: Vec<u8>) -> ComWrapper<MemStream> {
        ComWrapper::new(MemStream {
            data: RefCell::new(bytes),
            pos: Cell::new(0),
        })
    }
}

impl IBStreamTrait for MemStream {
    unsafe fn read(&self, buffer: *mut c_void, n: i32, read: *mut i32) -> tresult {
        let data = self.data.borrow();
        let pos = self.pos.get().min(data.len());
        let k = (n.max(0) as usize).min(data.len() - pos);
        std::ptr::copy_nonoverlapping(data[pos..].as_ptr(), buffer as *mut u8, k);
        self.pos.set(pos + k);
        if !read.is_null() {
            *read = k as i32;
        }
        kResultOk
    }

    unsafe fn write(&self, buffer: *mut c_void, n: i32, written: *mut i32) -> tresult {
        let src = std::slice::from_raw_parts(buffer as *const u8, n.max(0) as usize);
        let mut data = self.data.borrow_mut();
        let pos = self.pos.get();
        if data.len() < pos + src.len() {
            data.resize(pos + src.len(), 0);
        }
        data[pos..pos + src.len()].copy_from_slice(src);
        self.pos.set(pos + src.len());
        if !written.is_null() {
            *written = src.len() as i32;
        }
        kResultOk
    }

    unsafe fn seek(&self, pos: i64, mode: i32, result: *mut i64) -> tresult {
        let base = match mode as u32 {
            IStreamSeekMode_::kIBSeekSet => 0,
            IStreamSeekMode_::kIBSeekCur => self.pos.get() as i64,
            IStreamSeekMode_::kIBSeekEnd => self.data.borrow().len() as i64,
            _ => return kInvalidArgument,
        };
        let p = (base + pos).max(0);
        self.pos.set(p as usize);
        if !result.is_null() {
            *result = p;
        }
        kResultOk
    }

    unsafe fn tell(&self, pos: *mut i64) -> tresult {
        if !pos.is_null() {
            *pos = self.pos.get() as i64;
        }
        kResultOk
    }
}

/// One parameter's points for a block.
pub struct Queue {
    id: ParamID,
    points: RefCell<Vec<(i32, f64)>>,
}

impl Class for Queue {
    type Interfaces = (IParamValueQueue,);
}

impl IParamValueQueueTrait for Queue {
    unsafe fn getParameterId(&self) -> ParamID {
        self.id
    }

    unsafe fn getPointCount(&self) -> i32 {
        self.points.borrow().len() as i32
    }

    unsafe fn getPoint(&self, index: i32, offset: *mut i32, value: *mut ParamValue) -> tresult {
        match self.points.borrow().get(index as usize) {
            Some(&(o, v)) => {
                *offset = o;
                *value = v;
                kResultOk
            }
            None => kResultFalse,
        }
    }

    unsafe fn addPoint(&self, offset: i32, value: ParamValue, index: *mut i32) -> tresult {
        let mut points = self.points.borrow_mut();
        points.push((offset, value));
        if !index.is_null() {
            *index = points.len() as i32 - 1;
        }
        kResultOk
    }
}

/// The parameter changes of one block (normalised values at sample offsets), input or output.
pub struct Changes {
    queues: RefCell<Vec<ComWrapper<Queue>>>,
}

impl Class for Changes {
    type Interfaces = (IParameterChanges,);
}

impl Changes {
    /// Input changes: groups `(id, offset, normalized)` points by parameter, in order.
    pub fn new(points: &[(u32, i32, f64)]) -> ComWrapper<Changes> {
        let mut queues: Vec<Queue> = Vec::new();
        for &(id, offset, value) in points {
            match queues.iter_mut().find(|q| q.id == id) {
                Some(q) => q.points.borrow_mut().push((offset, value)),
                None => queues.push(Queue {
                    id,
                    points: RefCell::new(vec![(offset, value)]),
                }),
            }
        }
        let queues = queues.into_iter().map(ComWrapper::new).collect();
        ComWrapper::new(Changes {
            queues: RefCell::new(queues),
        })
    }

    /// Output changes with queues for `ids` made in advance (room for 16 points each), so the
    /// plugin's `addParameterData`/`addPoint` for them allocate nothing on the host side.
    pub fn output(ids: &[u32]) -> ComWrapper<Changes> {
        let queues = ids
            .iter()
            .map(|&id| {
                ComWrapper::new(Queue {
                    id,
                    points: RefCell::new(Vec::with_capacity(16)),
                })
            })
            .collect();
        ComWrapper::new(Changes {
            queues: RefCell::new(queues),
        })
    }

    /// The points written for `id`.
    pub fn points(&self, id: u32) -> Vec<(i32, f64)> {
        self.queues
            .borrow()
            .iter()
            .find(|q| q.id == id)
            .map_or_else(Vec::new, |q| q.points.borrow().clone())
    }
}

impl IParameterChangesTrait for Changes {
    unsafe fn getParameterCount(&self) -> i32 {
        self.queues.borrow().len() as i32
    }

    unsafe fn getParameterData(&self, index: i32) -> *mut IParamValueQueue {
        self.queues
            .borrow()
            .get(index as usize)
            .and_then(|q| q.as_com_ref::<IParamValueQueue>())
            .map_or(std::ptr::null_mut(), |r| r.as_ptr())
    }

    unsafe fn addParameterData(
        &self,
        id: *const ParamID,
        index: *mut i32,
    ) -> *mut IParamValueQueue {
        let id = *id;
        let mut queues = self.queues.borrow_mut();
        let i = match queues.iter().position(|q| q.id == id) {
            Some(i) => i,
            None => {
                queues.push(ComWrapper::new(Queue {
                    id,
                    points: RefCell::new(Vec::new()),
                }));
                queues.len() - 1
            }
        };
        if !index.is_null() {
            *index = i as i32;
        }
        queues[i]
            .as_com_ref::<IParamValueQueue>()
            .map_or(std::ptr::null_mut(), |r| r.as_ptr())
    }
}

/// A component handler counting `restartComponent` calls.
#[derive(Default)]
pub struct Handler {
    pub restarts: Arc<AtomicUsize>,
    pub last_flags: Arc<AtomicUsize>,
}

impl Class for Handler {
    type Interfaces = (IComponentHandler,);
}

impl IComponentHandlerTrait for Handler {
    unsafe fn beginEdit(&self, _id: ParamID) -> tresult {
        kResultOk
    }

    unsafe fn performEdit(&self, _id: ParamID, _value: ParamValue) -> tresult {
        kResultOk
    }

    unsafe fn endEdit(&self, _id: ParamID) -> tresult {
        kResultOk
    }

    unsafe fn restartComponent(&self, flags: i32) -> tresult {
        self.restarts.fetch_add(1, Ordering::SeqCst);
        self.last_flags.store(flags as usize, Ordering::SeqCst);
        kResultOk
    }
}

/// One effect instance seen through its three interfaces.
pub struct Effect {
    pub component: ComPtr<IComponent>,
    pub processor: ComPtr<IAudioProcessor>,
    pub controller: ComPtr<IEditController>,
}

impl Effect {
    pub fn new(module: &Module, cid: &TUID) -> Effect {
        let component = module
            .create::<IComponent>(cid)
            .expect("creates the component");
        let processor = component
            .cast::<IAudioProcessor>()
            .expect("IAudioProcessor");
        let controller = component
            .cast::<IEditController>()
            .expect("single component: IEditController");
        Effect {
            component,
            processor,
            controller,
        }
    }

    /// `setupProcessing` with 32-bit samples at `rate` in `mode`.
    pub fn setup(&self, rate: f64, mode: i32) -> tresult {
        let mut setup = ProcessSetup {
            processMode: mode,
            symbolicSampleSize: SymbolicSampleSizes_::kSample32 as i32,
            maxSamplesPerBlock: MAX_BLOCK as i32,
            sampleRate: rate,
        };
        // SAFETY: a valid setup for the call.
        unsafe { self.processor.setupProcessing(&mut setup) }
    }

    /// Processes `input` (both channels) in blocks of `block` frames, with `points` (parameter
    /// id, offset, normalized) in the first block; returns the left output. Inputs and outputs
    /// are separate buffers (not in place).
    pub fn run(&self, input: &[f32], block: usize, points: &[(u32, i32, f64)]) -> Vec<f32> {
        let mut out = Vec::with_capacity(input.len());
        let mut first = true;
        for chunk in input.chunks(block.max(1)) {
            let changes = Changes::new(if first { points } else { &[] });
            first = false;
            let (mut l, mut r) = (vec![0f32; chunk.len()], vec![0f32; chunk.len()]);
            self.process(chunk, &mut l, &mut r, &changes);
            out.extend_from_slice(&l);
        }
        out
    }

    /// One `process` call.
    pub fn process(
        &self,
        input: &[f32],
        left: &mut [f32],
        right: &mut [f32],
        changes: &ComWrapper<Changes>,
    ) -> tresult {
        self.process_out(input, left, right, changes, None)
    }

    /// One `process` call with output parameter changes.
    pub fn process_out(
        &self,
        input: &[f32],
        left: &mut [f32],
        right: &mut [f32],
        changes: &ComWrapper<Changes>,
        output: Option<&ComWrapper<Changes>>,
    ) -> tresult {
        let n = input.len();
        let (mut in_l, mut in_r) = (input.to_vec(), input.to_vec());
        let mut in_ptrs = [in_l.as_mut_ptr(), in_r.as_mut_ptr()];
        let mut out_ptrs = [left.as_mut_ptr(), right.as_mut_ptr()];
        let mut inputs = AudioBusBuffers {
            numChannels: 2,
            silenceFlags: 0,
            __field0: AudioBusBuffers__type0 {
                channelBuffers32: in_ptrs.as_mut_ptr(),
            },
        };
        let mut outputs = AudioBusBuffers {
            numChannels: 2,
            silenceFlags: 0,
            __field0: AudioBusBuffers__type0 {
                channelBuffers32: out_ptrs.as_mut_ptr(),
            },
        };
        // SAFETY: all-zero is a valid ProcessContext (plain data), meaning "not playing".
        let mut context: ProcessContext = unsafe { std::mem::zeroed() };
        context.sampleRate = 48_000.0;
        let changes = changes.as_com_ref::<IParameterChanges>().expect("changes");
        let mut data = ProcessData {
            processMode: 0,
            symbolicSampleSize: SymbolicSampleSizes_::kSample32 as i32,
            numSamples: n as i32,
            numInputs: 1,
            numOutputs: 1,
            inputs: &mut inputs,
            outputs: &mut outputs,
            inputParameterChanges: changes.as_ptr(),
            outputParameterChanges: output
                .and_then(|o| o.as_com_ref::<IParameterChanges>())
                .map_or(std::ptr::null_mut(), |o| o.as_ptr()),
            inputEvents: std::ptr::null_mut(),
            outputEvents: std::ptr::null_mut(),
            processContext: &mut context,
        };
        // SAFETY: every pointer in `data` is valid for `n` frames during the call.
        unsafe { self.processor.process(&mut data) }
    }

    /// `getState` into bytes.
    pub fn save(&self) -> Vec<u8> {
        let stream = MemStream::with(Vec::new());
        let s = stream.as_com_ref::<IBStream>().expect("stream");
        // SAFETY: a live stream for the call.
        assert_eq!(
            unsafe { vst3::Steinberg::Vst::IComponentTrait::getState(&self.component, s.as_ptr()) },
            kResultOk
        );
        let bytes = stream.data.borrow().clone();
        bytes
    }

    /// `setState` from bytes.
    pub fn load(&self, bytes: &[u8]) -> tresult {
        let stream = MemStream::with(bytes.to_vec());
        let s = stream.as_com_ref::<IBStream>().expect("stream");
        // SAFETY: a live stream for the call.
        unsafe { vst3::Steinberg::Vst::IComponentTrait::setState(&self.component, s.as_ptr()) }
    }
}

/// The test signal the CLAP host test uses too.
pub fn test_signal(n: usize) -> Vec<f32> {
    (0..n)
        .map(|i| 0.3 * (i as f32 * 0.013).sin() + 0.2 * (i as f32 * 0.071).sin())
        .collect()
}
