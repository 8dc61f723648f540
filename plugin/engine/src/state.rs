//! The plugin's saved state: versioned, checksummed, refused rather than half-loaded.
//!
//! Layout (little-endian):
//! `b"ADIFFST\0"` | version `u32` | payload length `u64` | FNV-1a-64 of the payload `u64` | payload.
//! The payload is a `u32` JSON header length, the serde JSON header ([`Header`]), then the clips'
//! samples as raw `f32` (captured clip then rendered result, each left then right channel).
//! Automatable parameters (by stable key) and the rest (model path, clips) are kept apart.

use crate::buffer::AudioBuf;
use crate::error::{EngineError, Result};
use crate::params::{Param, ParamValues};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::PathBuf;

/// Magic bytes that open every state.
pub const MAGIC: [u8; 8] = *b"ADIFFST\0";
/// The state version this build writes; it reads this one and every older one.
pub const VERSION: u32 = 1;
const FIXED_LEN: usize = 8 + 4 + 8 + 8;

/// Parameters that are not saved: the read-only progress. (Momentary controls such as trigger and
/// render are saved, so hosts read back the values they set; loading them never fires them, see
/// `Shared::state_epoch`.)
const UNSAVED: [Param; 1] = [Param::Progress];

/// A clip's place in the payload.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
struct ClipHeader {
    rate: f64,
    frames: u64,
    anchor: i64,
}

/// The JSON header of a state.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
struct Header {
    version: u32,
    /// Plain parameter values by stable key, as Rust's shortest round-trip decimal text (JSON
    /// number parsing is not bit-exact); unknown keys are ignored, missing keys keep defaults.
    params: BTreeMap<String, String>,
    model_path: Option<PathBuf>,
    captured: Option<ClipHeader>,
    result: Option<ClipHeader>,
}

/// A decoded state.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct PluginState {
    /// Plain values by parameter (only the saved ones).
    pub params: Vec<(Param, f64)>,
    /// Model folder; `None` is the embedded default model.
    pub model_path: Option<PathBuf>,
    /// The captured clip at the host rate it was captured at.
    pub captured: Option<AudioBuf>,
    /// The rendered result at the host rate it was rendered for.
    pub result: Option<AudioBuf>,
}

/// FNV-1a, 64 bits.
pub fn fnv1a64(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

fn clip_header(c: &AudioBuf) -> ClipHeader {
    ClipHeader {
        rate: c.rate,
        frames: c.len() as u64,
        anchor: c.anchor,
    }
}

/// Serialises parameters, model path and clips into state bytes.
pub fn encode(
    params: &ParamValues,
    model_path: Option<&std::path::Path>,
    captured: Option<&AudioBuf>,
    result: Option<&AudioBuf>,
) -> Vec<u8> {
    let header = Header {
        version: VERSION,
        params: Param::all()
            .filter(|p| !UNSAVED.contains(p))
            .map(|p| (p.spec().key.to_string(), params.get(p).to_string()))
            .collect(),
        model_path: model_path.map(PathBuf::from),
        captured: captured.map(clip_header),
        result: result.map(clip_header),
    };
    let json = serde_json::to_vec(&header).unwrap_or_default();
    let mut payload =
        Vec::with_capacity(4 + json.len() + clip_bytes(captured) + clip_bytes(result));
    payload.extend_from_slice(&(json.len() as u32).to_le_bytes());
    payload.extend_from_slice(&json);
    for clip in [captured, result].into_iter().flatten() {
        for c in 0..2 {
            for s in clip.channel(c) {
                payload.extend_from_slice(&s.to_le_bytes());
            }
        }
    }
    let mut out = Vec::with_capacity(FIXED_LEN + payload.len());
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&VERSION.to_le_bytes());
    out.extend_from_slice(&(payload.len() as u64).to_le_bytes());
    out.extend_from_slice(&fnv1a64(&payload).to_le_bytes());
    out.extend_from_slice(&payload);
    out
}

fn clip_bytes(c: Option<&AudioBuf>) -> usize {
    c.map_or(0, |c| c.len() * 8)
}

fn truncated(reason: impl Into<String>) -> EngineError {
    EngineError::StateTruncated {
        reason: reason.into(),
    }
}

fn invalid(reason: impl Into<String>) -> EngineError {
    EngineError::StateInvalid {
        reason: reason.into(),
    }
}

fn le_u64(b: &[u8]) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[..8]);
    u64::from_le_bytes(a)
}

/// Parses state bytes; refuses (without touching anything) newer, corrupt or truncated states.
pub fn decode(bytes: &[u8]) -> Result<PluginState> {
    if bytes.len() < 8 || bytes[..8] != MAGIC {
        return Err(EngineError::StateMagic);
    }
    if bytes.len() < FIXED_LEN {
        return Err(truncated(format!(
            "{} bytes, the fixed header alone is {FIXED_LEN}",
            bytes.len()
        )));
    }
    let version = u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]);
    if version > VERSION {
        return Err(EngineError::StateNewer {
            found: version,
            supported: VERSION,
        });
    }
    let payload_len = le_u64(&bytes[12..20]);
    let payload = &bytes[FIXED_LEN..];
    if payload.len() as u64 != payload_len {
        return Err(truncated(format!(
            "payload is {} bytes, header says {payload_len}",
            payload.len()
        )));
    }
    let stored = le_u64(&bytes[20..28]);
    let computed = fnv1a64(payload);
    if stored != computed {
        return Err(EngineError::StateChecksum { stored, computed });
    }
    if payload.len() < 4 {
        return Err(truncated("no JSON header length"));
    }
    let json_len = u32::from_le_bytes([payload[0], payload[1], payload[2], payload[3]]) as usize;
    let json = payload
        .get(4..4 + json_len)
        .ok_or_else(|| truncated("JSON header cut short"))?;
    let value: serde_json::Value =
        serde_json::from_slice(json).map_err(|e| invalid(e.to_string()))?;
    let header = migrate(value, version)?;
    let mut blobs = &payload[4 + json_len..];
    let mut take_clip = |h: &Option<ClipHeader>, what: &str| -> Result<Option<AudioBuf>> {
        let Some(h) = h else { return Ok(None) };
        if !(h.rate.is_finite() && (1000.0..=1_536_000.0).contains(&h.rate)) {
            return Err(invalid(format!("{what} sample rate {}", h.rate)));
        }
        let n = usize::try_from(h.frames).map_err(|_| invalid(format!("{what} length")))?;
        let need = n
            .checked_mul(8)
            .ok_or_else(|| invalid(format!("{what} length {n}")))?;
        if blobs.len() < need {
            return Err(truncated(format!(
                "{what} needs {need} bytes, {} left",
                blobs.len()
            )));
        }
        let (mine, rest) = blobs.split_at(need);
        blobs = rest;
        let read = |b: &[u8]| {
            b.chunks_exact(4)
                .map(|c| {
                    let v = f32::from_le_bytes([c[0], c[1], c[2], c[3]]);
                    if v.is_finite() {
                        v
                    } else {
                        0.0
                    }
                })
                .collect::<Vec<f32>>()
        };
        let mut clip = AudioBuf::from_channels(read(&mine[..n * 4]), read(&mine[n * 4..]), h.rate);
        clip.anchor = h.anchor;
        Ok(Some(clip))
    };
    let captured = take_clip(&header.captured, "captured clip")?;
    let result = take_clip(&header.result, "rendered result")?;
    if !blobs.is_empty() {
        return Err(invalid(format!(
            "{} bytes after the last clip",
            blobs.len()
        )));
    }
    let params = header
        .params
        .iter()
        .filter_map(|(k, v)| {
            let v: f64 = v.parse().ok()?;
            Param::from_key(k)
                .filter(|p| !UNSAVED.contains(p))
                .map(|p| (p, p.spec().clamp(v)))
        })
        .collect();
    Ok(PluginState {
        params,
        model_path: header.model_path,
        captured,
        result,
    })
}

/// Brings a header of an older `version` up to [`VERSION`]. Version 1 is the first; a future
/// version adds its step here (e.g. renaming a key) and keeps the older arms.
fn migrate(value: serde_json::Value, version: u32) -> Result<Header> {
    match version {
        1 => serde_json::from_value::<Header>(value).map_err(|e| invalid(e.to_string())),
        v => Err(invalid(format!("unknown state version {v}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample_state() -> (ParamValues, AudioBuf, AudioBuf) {
        let p = ParamValues::default();
        p.set(Param::Steps, 7.0);
        p.set(Param::Mix, 25.0);
        p.set(Param::Trigger, 1.0);
        let mut cap = AudioBuf::from_channels(vec![0.1, -0.2, 0.3], vec![0.4, 0.5, -0.6], 44_100.0);
        cap.anchor = 1234;
        let res = AudioBuf::from_channels(vec![1.0; 5], vec![-1.0; 5], 48_000.0);
        (p, cap, res)
    }

    #[test]
    fn round_trip_keeps_params_path_and_clips() {
        let (p, cap, res) = sample_state();
        let bytes = encode(&p, Some(std::path::Path::new("/m")), Some(&cap), Some(&res));
        let s = decode(&bytes).expect("decodes");
        assert!(s.params.contains(&(Param::Steps, 7.0)));
        assert!(s.params.contains(&(Param::Mix, 25.0)));
        assert!(s.params.contains(&(Param::Trigger, 1.0)));
        assert!(
            !s.params.iter().any(|(q, _)| *q == Param::Progress),
            "read-only progress is not saved"
        );
        assert_eq!(s.model_path.as_deref(), Some(std::path::Path::new("/m")));
        assert_eq!(s.captured.as_ref(), Some(&cap));
        assert_eq!(s.result.as_ref(), Some(&res));
    }

    #[test]
    fn parameter_values_round_trip_bit_exactly() {
        let p = ParamValues::default();
        p.set(Param::Gain, -16.86850719040511);
        p.set(Param::Length, 3.8068556319594666);
        let bytes = encode(&p, None, None, None);
        let s = decode(&bytes).expect("decodes");
        assert!(s.params.contains(&(Param::Gain, -16.86850719040511)));
        assert!(s.params.contains(&(Param::Length, 3.8068556319594666)));
        let q = ParamValues::default();
        for (k, v) in &s.params {
            q.set(*k, *v);
        }
        assert_eq!(encode(&q, None, None, None), bytes);
    }

    #[test]
    fn newer_corrupt_and_truncated_states_are_refused() {
        let (p, cap, res) = sample_state();
        let bytes = encode(&p, None, Some(&cap), Some(&res));
        let mut newer = bytes.clone();
        newer[8..12].copy_from_slice(&(VERSION + 1).to_le_bytes());
        assert!(
            matches!(decode(&newer), Err(EngineError::StateNewer { found, .. }) if found == VERSION + 1)
        );
        for cut in [0, 5, 20, 27, bytes.len() - 1] {
            assert!(
                decode(&bytes[..cut]).is_err(),
                "truncated to {cut} bytes was accepted"
            );
        }
        for i in (FIXED_LEN..bytes.len()).step_by(7) {
            let mut flipped = bytes.clone();
            flipped[i] ^= 0x40;
            assert!(
                matches!(decode(&flipped), Err(EngineError::StateChecksum { .. })),
                "flip at {i}"
            );
        }
        assert!(matches!(
            decode(b"garbage garbage garbage garbage"),
            Err(EngineError::StateMagic)
        ));
    }

    #[test]
    fn unknown_keys_are_ignored_and_out_of_range_values_clamped() {
        let header = br#"{"version":1,"params":{"steps":"9999","future_knob":"1","seed":"many"},"model_path":null,"captured":null,"result":null}"#;
        let mut payload = (header.len() as u32).to_le_bytes().to_vec();
        payload.extend_from_slice(header);
        let mut bytes = MAGIC.to_vec();
        bytes.extend_from_slice(&VERSION.to_le_bytes());
        bytes.extend_from_slice(&(payload.len() as u64).to_le_bytes());
        bytes.extend_from_slice(&fnv1a64(&payload).to_le_bytes());
        bytes.extend_from_slice(&payload);
        let s = decode(&bytes).expect("decodes");
        assert_eq!(s.params, vec![(Param::Steps, 200.0)]);
    }
}
