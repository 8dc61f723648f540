//! CLAP extensions of the adapter: audio ports, params, state, render.

use super::{apply_param_event, AdiffAudio, AdiffMain};
use adiff_engine::params::Kind;
use adiff_engine::{Param, PARAMS};
use clack_extensions::audio_ports::{
    AudioPortFlags, AudioPortInfo, AudioPortInfoWriter, AudioPortType, PluginAudioPortsImpl,
};
use clack_extensions::params::{
    HostParams, ParamDisplayWriter, ParamInfo, ParamInfoFlags, ParamInfoWriter, ParamRescanFlags,
    PluginAudioProcessorParams, PluginMainThreadParams,
};
use clack_extensions::render::{PluginRenderImpl, RenderMode};
use clack_extensions::state::PluginStateImpl;
use clack_plugin::prelude::*;
use clack_plugin::stream::{InputStream, OutputStream};
use std::ffi::CStr;
use std::io::{Read, Write};

/// Largest state this plugin reads (10 min of stereo audio twice, plus headers).
const MAX_STATE_BYTES: u64 = 1 << 30;

impl PluginAudioPortsImpl for AdiffMain<'_> {
    fn count(&self, _is_input: bool) -> u32 {
        1
    }

    fn get(&self, index: u32, is_input: bool, writer: &mut AudioPortInfoWriter) {
        if index == 0 {
            writer.set(&AudioPortInfo {
                id: ClapId::new(0),
                name: if is_input { b"Input" } else { b"Output" },
                channel_count: 2,
                flags: AudioPortFlags::IS_MAIN,
                port_type: Some(AudioPortType::STEREO),
                in_place_pair: Some(ClapId::new(0)),
            });
        }
    }
}

fn flags(p: Param) -> ParamInfoFlags {
    let spec = p.spec();
    let mut f = ParamInfoFlags::empty();
    if spec.flags.automatable {
        f |= ParamInfoFlags::IS_AUTOMATABLE;
    }
    if spec.flags.read_only {
        f |= ParamInfoFlags::IS_READONLY;
    }
    if spec.is_stepped() {
        f |= ParamInfoFlags::IS_STEPPED;
    }
    if matches!(spec.kind, Kind::Choice(_)) {
        f |= ParamInfoFlags::IS_ENUM;
    }
    f
}

impl PluginMainThreadParams for AdiffMain<'_> {
    fn count(&self) -> u32 {
        PARAMS.len() as u32
    }

    fn get_info(&self, index: u32, info: &mut ParamInfoWriter) {
        let Some(spec) = PARAMS.get(index as usize) else {
            return;
        };
        info.set(&ParamInfo {
            id: ClapId::new(spec.param.id()),
            flags: flags(spec.param),
            cookie: Default::default(),
            name: spec.name.as_bytes(),
            module: b"",
            min_value: spec.min,
            max_value: spec.max,
            default_value: spec.default,
        });
    }

    fn get_value(&self, id: ClapId) -> Option<f64> {
        let p = Param::from_id(id.get())?;
        if p == Param::Progress {
            return Some(f64::from(self.shared.engine.shared().progress()) * 100.0);
        }
        Some(self.shared.engine.params().get(p))
    }

    fn value_to_text(
        &self,
        id: ClapId,
        value: f64,
        writer: &mut ParamDisplayWriter,
    ) -> std::fmt::Result {
        let p = Param::from_id(id.get()).ok_or(std::fmt::Error)?;
        p.spec().write_text(value, writer)
    }

    fn text_to_value(&self, id: ClapId, text: &CStr) -> Option<f64> {
        let p = Param::from_id(id.get())?;
        p.spec().parse(text.to_str().ok()?)
    }

    fn flush(&self, input: &InputEvents, _output: &mut OutputEvents) {
        for e in input {
            apply_param_event(&self.shared.engine, e);
        }
    }
}

impl PluginAudioProcessorParams for AdiffAudio<'_> {
    fn flush(&mut self, input: &InputEvents, _output: &mut OutputEvents) {
        for e in input {
            apply_param_event(&self.shared.engine, e);
        }
    }
}

impl PluginStateImpl for AdiffMain<'_> {
    fn save(&self, output: &mut OutputStream) -> Result<(), PluginError> {
        let bytes = self.shared.engine.save_state();
        output.write_all(&bytes)?;
        Ok(())
    }

    fn load(&self, input: &mut InputStream) -> Result<(), PluginError> {
        let mut bytes = Vec::new();
        let read = input.take(MAX_STATE_BYTES).read_to_end(&mut bytes);
        let outcome = match read {
            Ok(_) => self.shared.engine.load_state(&bytes),
            Err(_) => self.shared.engine.load_state(&[]),
        };
        // Values changed either way (restored, or reset to defaults after a refused state).
        if let Some(params) = self.host.get_extension::<HostParams>() {
            params.rescan(&self.host, ParamRescanFlags::VALUES);
        }
        for m in self.shared.engine.shared().take_messages() {
            eprintln!("adiff: {m}");
        }
        outcome.map_err(|_| {
            PluginError::Message("adiff state refused (see log); the plugin starts clean")
        })
    }
}

impl PluginRenderImpl for AdiffMain<'_> {
    fn has_hard_realtime_requirement(&self) -> bool {
        false
    }

    fn set(&self, mode: RenderMode) -> Result<(), PluginError> {
        self.shared.engine.set_offline(mode == RenderMode::Offline);
        Ok(())
    }
}
