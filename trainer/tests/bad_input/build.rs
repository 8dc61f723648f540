//! Byte-level builders for the bad inputs: WAV files with any header values, raw safetensors
//! (read, mutate, write), stored zip archives and hand-written pickles; and the tiny model folders
//! with random weights every category copies.

use adiff_core::models::folder::{FolderConfig, ModelFolder, ModelKind};
use adiff_core::models::{
    AudioDiffusionAutoencoder, AudioDiffusionAutoencoderConfig, AudioDiffusionModel,
    AudioDiffusionModelConfig, AudioDiffusionUpsampler, AudioDiffusionUpsamplerConfig,
};
use adiff_core::Compat;
use candle_core::{DType, Device};
use candle_nn::{VarBuilder, VarMap};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

// ---------------------------------------------------------------- WAV

pub const FMT_PCM: u16 = 1;
pub const FMT_FLOAT: u16 = 3;
pub const FMT_EXTENSIBLE: u16 = 0xFFFE;
/// KSDATAFORMAT_SUBTYPE_PCM and _IEEE_FLOAT (the first two bytes are the format tag).
pub const GUID_TAIL: [u8; 14] = [
    0x00, 0x00, 0x00, 0x00, 0x10, 0x00, 0x80, 0x00, 0x00, 0xAA, 0x00, 0x38, 0x9B, 0x71,
];

/// A WAV file with every header field under the test's control.
#[derive(Clone)]
pub struct WavFile {
    pub tag: u16,
    pub channels: u16,
    pub rate: u32,
    pub bits: u16,
    /// `None`: computed from the other fields.
    pub byte_rate: Option<u32>,
    pub block_align: Option<u16>,
    /// (valid bits, channel mask, sub-format GUID) of WAVE_FORMAT_EXTENSIBLE.
    pub ext: Option<(u16, u32, [u8; 16])>,
    pub data: Vec<u8>,
    /// The data chunk's declared size (`None`: the true size).
    pub data_len: Option<u32>,
    /// Chunks written between `fmt ` and `data`.
    pub extra_chunks: Vec<([u8; 4], Vec<u8>)>,
    pub omit_fmt: bool,
    pub omit_data: bool,
}

impl WavFile {
    pub fn new(tag: u16, channels: u16, rate: u32, bits: u16, data: Vec<u8>) -> Self {
        Self {
            tag,
            channels,
            rate,
            bits,
            byte_rate: None,
            block_align: None,
            ext: None,
            data,
            data_len: None,
            extra_chunks: Vec::new(),
            omit_fmt: false,
            omit_data: false,
        }
    }

    pub fn bytes(&self) -> Vec<u8> {
        let align = self
            .block_align
            .unwrap_or(((u64::from(self.channels) * u64::from(self.bits)).div_ceil(8)) as u16);
        let byte_rate = self
            .byte_rate
            .unwrap_or((u64::from(self.rate) * u64::from(align)) as u32);
        let mut fmt = Vec::new();
        fmt.extend_from_slice(&self.tag.to_le_bytes());
        fmt.extend_from_slice(&self.channels.to_le_bytes());
        fmt.extend_from_slice(&self.rate.to_le_bytes());
        fmt.extend_from_slice(&byte_rate.to_le_bytes());
        fmt.extend_from_slice(&align.to_le_bytes());
        fmt.extend_from_slice(&self.bits.to_le_bytes());
        if let Some((valid, mask, guid)) = self.ext {
            fmt.extend_from_slice(&22u16.to_le_bytes());
            fmt.extend_from_slice(&valid.to_le_bytes());
            fmt.extend_from_slice(&mask.to_le_bytes());
            fmt.extend_from_slice(&guid);
        }
        let mut body = b"WAVE".to_vec();
        if !self.omit_fmt {
            chunk(&mut body, b"fmt ", &fmt, None);
        }
        for (id, c) in &self.extra_chunks {
            chunk(&mut body, id, c, None);
        }
        if !self.omit_data {
            chunk(&mut body, b"data", &self.data, self.data_len);
        }
        // The RIFF size a writer would have put there: with the declared data size (a file cut
        // short or sparse keeps the header of the whole file).
        let declared = match (self.omit_data, self.data_len) {
            (false, Some(d)) => body.len() as u64 - self.data.len() as u64 + u64::from(d),
            _ => body.len() as u64,
        };
        let mut out = b"RIFF".to_vec();
        out.extend_from_slice(&(declared.min(u64::from(u32::MAX)) as u32).to_le_bytes());
        out.extend_from_slice(&body);
        out
    }

    pub fn write(&self, path: &Path) {
        std::fs::write(path, self.bytes()).unwrap();
    }
}

fn chunk(out: &mut Vec<u8>, id: &[u8; 4], data: &[u8], declared: Option<u32>) {
    out.extend_from_slice(id);
    out.extend_from_slice(&declared.unwrap_or(data.len() as u32).to_le_bytes());
    out.extend_from_slice(data);
    if data.len() % 2 == 1 {
        out.push(0);
    }
}

/// A sine, interleaved over `channels`, as f32 values in [-0.4, 0.4].
pub fn sine(frames: usize, channels: usize) -> Vec<f32> {
    (0..frames)
        .flat_map(|i| (0..channels).map(move |c| 0.4 * (i as f32 * 0.05 * (c + 1) as f32).sin()))
        .collect()
}

pub fn pcm16_bytes(samples: &[f32]) -> Vec<u8> {
    samples
        .iter()
        .flat_map(|&x| ((x.clamp(-1.0, 1.0) * 32767.0) as i16).to_le_bytes())
        .collect()
}

pub fn f32_bytes(samples: &[f32]) -> Vec<u8> {
    samples.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// A 16-bit PCM WAV of a sine.
pub fn pcm16(rate: u32, channels: u16, frames: usize) -> WavFile {
    WavFile::new(
        FMT_PCM,
        channels,
        rate,
        16,
        pcm16_bytes(&sine(frames, channels as usize)),
    )
}

/// A 32-bit float WAV of exactly these interleaved samples.
pub fn float32(rate: u32, channels: u16, samples: &[f32]) -> WavFile {
    WavFile::new(FMT_FLOAT, channels, rate, 32, f32_bytes(samples))
}

/// A mono float WAV of a sine with `bad` written at `count` spread-out positions.
pub fn float_with(rate: u32, frames: usize, bad: f32, count: usize) -> WavFile {
    let mut s = sine(frames, 1);
    for k in 0..count {
        s[(k * 37 + 11) % frames] = bad;
    }
    float32(rate, 1, &s)
}

// ---------------------------------------------------------------- safetensors

/// One tensor of a raw safetensors file.
#[derive(Clone)]
pub struct StTensor {
    pub dtype: String,
    pub shape: Vec<usize>,
    pub data: Vec<u8>,
}

/// Reads a safetensors file into its tensors (sorted by name).
pub fn st_read(path: &Path) -> BTreeMap<String, StTensor> {
    let b = std::fs::read(path).unwrap();
    let n = u64::from_le_bytes(b[..8].try_into().unwrap()) as usize;
    let header: serde_json::Value = serde_json::from_slice(&b[8..8 + n]).unwrap();
    let data = &b[8 + n..];
    header
        .as_object()
        .unwrap()
        .iter()
        .filter(|(k, _)| k.as_str() != "__metadata__")
        .map(|(k, v)| {
            let off = v["data_offsets"].as_array().unwrap();
            let (s, e) = (
                off[0].as_u64().unwrap() as usize,
                off[1].as_u64().unwrap() as usize,
            );
            (
                k.clone(),
                StTensor {
                    dtype: v["dtype"].as_str().unwrap().to_string(),
                    shape: v["shape"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|d| d.as_u64().unwrap() as usize)
                        .collect(),
                    data: data[s..e].to_vec(),
                },
            )
        })
        .collect()
}

/// Writes tensors as a safetensors file (header padded to 8 bytes).
pub fn st_bytes(tensors: &BTreeMap<String, StTensor>) -> Vec<u8> {
    let mut header = serde_json::Map::new();
    let mut data = Vec::new();
    for (k, t) in tensors {
        let start = data.len();
        data.extend_from_slice(&t.data);
        header.insert(
            k.clone(),
            serde_json::json!({"dtype": t.dtype, "shape": t.shape, "data_offsets": [start, data.len()]}),
        );
    }
    let mut h = serde_json::to_vec(&serde_json::Value::Object(header)).unwrap();
    while !h.len().is_multiple_of(8) {
        h.push(b' ');
    }
    let mut out = (h.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(&h);
    out.extend_from_slice(&data);
    out
}

pub fn st_write(path: &Path, tensors: &BTreeMap<String, StTensor>) {
    std::fs::write(path, st_bytes(tensors)).unwrap();
}

/// The first tensor (by name) with at least two dimensions whose first two differ: the one the
/// missing / transposed / NaN cases mutate.
pub fn pick_tensor(path: &Path) -> String {
    st_read(path)
        .into_iter()
        .find(|(_, t)| t.shape.len() >= 2 && t.shape[0] != t.shape[1] && t.dtype == "F32")
        .map(|(k, _)| k)
        .expect("a tensor with two distinct leading dims")
}

/// Rewrites `dir/model.safetensors` through `f`.
pub fn mutate_weights(dir: &Path, f: impl FnOnce(&mut BTreeMap<String, StTensor>)) {
    let p = dir.join("model.safetensors");
    let mut t = st_read(&p);
    f(&mut t);
    st_write(&p, &t);
}

/// Sets element `i` of an f32 tensor.
pub fn set_f32(t: &mut StTensor, i: usize, v: f32) {
    t.data[i * 4..i * 4 + 4].copy_from_slice(&v.to_le_bytes());
}

/// Rewrites `dir/config.json` through `f`.
pub fn mutate_config(dir: &Path, f: impl FnOnce(&mut serde_json::Value)) {
    let p = dir.join("config.json");
    let mut v: serde_json::Value = serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap();
    f(&mut v);
    std::fs::write(&p, serde_json::to_vec_pretty(&v).unwrap()).unwrap();
}

/// Replaces a JSON value's text in `dir/config.json` (for literals serde_json would normalise,
/// such as `1e12`).
pub fn config_text(dir: &Path, f: impl FnOnce(String) -> String) {
    let p = dir.join("config.json");
    let text = String::from_utf8(std::fs::read(&p).unwrap()).unwrap();
    std::fs::write(&p, f(text)).unwrap();
}

/// Truncates a file to `keep` of its length.
pub fn truncate_file(path: &Path, frac: f64) {
    let b = std::fs::read(path).unwrap();
    let keep = (b.len() as f64 * frac) as usize;
    std::fs::write(path, &b[..keep]).unwrap();
}

// ---------------------------------------------------------------- zip and pickle

fn crc32(bytes: &[u8]) -> u32 {
    let mut c = 0xFFFF_FFFFu32;
    for &b in bytes {
        c ^= u32::from(b);
        for _ in 0..8 {
            c = if c & 1 != 0 {
                (c >> 1) ^ 0xEDB8_8320
            } else {
                c >> 1
            };
        }
    }
    !c
}

/// A stored (uncompressed) zip archive of these entries.
pub fn zip(entries: &[(&str, &[u8])]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut central = Vec::new();
    for (name, data) in entries {
        let crc = crc32(data);
        let offset = out.len() as u32;
        let common = |v: &mut Vec<u8>| {
            v.extend_from_slice(&20u16.to_le_bytes()); // version needed
            v.extend_from_slice(&0u16.to_le_bytes()); // flags
            v.extend_from_slice(&0u16.to_le_bytes()); // stored
            v.extend_from_slice(&0u16.to_le_bytes()); // time
            v.extend_from_slice(&0x21u16.to_le_bytes()); // date 1980-01-01
            v.extend_from_slice(&crc.to_le_bytes());
            v.extend_from_slice(&(data.len() as u32).to_le_bytes());
            v.extend_from_slice(&(data.len() as u32).to_le_bytes());
            v.extend_from_slice(&(name.len() as u16).to_le_bytes());
            v.extend_from_slice(&0u16.to_le_bytes()); // extra
        };
        out.extend_from_slice(&0x0403_4b50u32.to_le_bytes());
        common(&mut out);
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(data);
        central.extend_from_slice(&0x0201_4b50u32.to_le_bytes());
        central.extend_from_slice(&20u16.to_le_bytes()); // made by
        common(&mut central);
        central.extend_from_slice(&0u16.to_le_bytes()); // comment
        central.extend_from_slice(&0u16.to_le_bytes()); // disk
        central.extend_from_slice(&0u16.to_le_bytes()); // internal attrs
        central.extend_from_slice(&0u32.to_le_bytes()); // external attrs
        central.extend_from_slice(&offset.to_le_bytes());
        central.extend_from_slice(name.as_bytes());
    }
    let cd_offset = out.len() as u32;
    out.extend_from_slice(&central);
    out.extend_from_slice(&0x0605_4b50u32.to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes());
    out.extend_from_slice(&(entries.len() as u16).to_le_bytes());
    out.extend_from_slice(&(entries.len() as u16).to_le_bytes());
    out.extend_from_slice(&(central.len() as u32).to_le_bytes());
    out.extend_from_slice(&cd_offset.to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes());
    out
}

/// A PyTorch-style checkpoint zip holding `pickle` as `archive/data.pkl`.
pub fn pt_with(pickle: &[u8]) -> Vec<u8> {
    zip(&[("archive/data.pkl", pickle), ("archive/version", b"3\n")])
}

/// A memo bomb: each level is a tuple/list of eight references to the previous level (memo 0),
/// 24 levels deep: 8^24 objects for a reader that copies memo entries, ~500 bytes on disk.
pub fn pickle_memo_bomb() -> Vec<u8> {
    let mut p = vec![0x80, 2, b']', b'q', 0];
    for level in 0..24 {
        p.push(b'(');
        for _ in 0..8 {
            p.extend_from_slice(&[b'h', 0]);
        }
        p.push(if level % 2 == 0 { b't' } else { b'l' });
        p.extend_from_slice(&[b'q', 0]);
    }
    p.push(b'.');
    p
}

/// `depth` nested one-element tuples: MARK x depth, EMPTY_TUPLE, TUPLE x depth.
pub fn pickle_deep_tuple(depth: usize) -> Vec<u8> {
    let mut p = vec![0x80, 2];
    p.extend(std::iter::repeat_n(b'(', depth));
    p.push(b')');
    p.extend(std::iter::repeat_n(b't', depth));
    p.push(b'.');
    p
}

/// `depth` nested lists: EMPTY_LIST x (depth + 1), APPEND x depth.
pub fn pickle_deep_list(depth: usize) -> Vec<u8> {
    let mut p = vec![0x80, 2];
    p.extend(std::iter::repeat_n(b']', depth + 1));
    p.extend(std::iter::repeat_n(b'a', depth));
    p.push(b'.');
    p
}

/// A BINUNICODE string that claims 4 GiB, then ends.
pub fn pickle_huge_string() -> Vec<u8> {
    let mut p = vec![0x80, 2, b'X'];
    p.extend_from_slice(&u32::MAX.to_le_bytes());
    p.extend_from_slice(b"short.");
    p
}

/// A BINGET of a memo slot that was never set.
pub fn pickle_missing_memo() -> Vec<u8> {
    vec![0x80, 2, b'h', 7, b'.']
}

/// An empty dict: a well-formed pickle with no tensors.
pub fn pickle_empty_dict() -> Vec<u8> {
    vec![0x80, 2, b'}', b'.']
}

/// A dict whose value is a torch tensor rebuilt from storage `archive/data/0`, which the zip
/// does not hold.
pub fn pickle_missing_storage() -> Vec<u8> {
    let mut p = vec![0x80, 2, b'}', b'q', 0];
    p.extend_from_slice(b"X\x06\x00\x00\x00weight");
    p.extend_from_slice(b"ctorch._utils\n_rebuild_tensor_v2\n");
    p.push(b'(');
    // persistent id ('storage', FloatStorage, '0', 'cpu', 4)
    p.push(b'(');
    p.extend_from_slice(b"X\x07\x00\x00\x00storage");
    p.extend_from_slice(b"ctorch\nFloatStorage\n");
    p.extend_from_slice(b"X\x01\x00\x00\x000");
    p.extend_from_slice(b"X\x03\x00\x00\x00cpu");
    p.extend_from_slice(&[b'K', 4]);
    p.push(b't');
    p.push(b'Q'); // BINPERSID
    p.extend_from_slice(&[b'K', 0]); // offset
    p.extend_from_slice(&[b'K', 4, 0x85]); // size (4,)
    p.extend_from_slice(&[b'K', 1, 0x85]); // stride (1,)
    p.push(0x89); // requires_grad False
    p.extend_from_slice(b"ccollections\nOrderedDict\n)R");
    p.push(b't');
    p.push(b'R');
    p.push(b's'); // SETITEM
    p.push(b'.');
    p
}

// ---------------------------------------------------------------- tiny model folders

/// The small UNet of the reference's fixtures (8 channels, two levels, attention at the bottom).
pub fn unet_kwargs() -> serde_json::Value {
    serde_json::json!({
        "in_channels": 1, "channels": 8, "patch_blocks": 1, "patch_factor": 2, "multipliers": [1, 2, 4],
        "factors": [2, 2], "num_blocks": [1, 1], "attentions": [0, 0, 1], "attention_heads": 2,
        "attention_features": 8, "attention_multiplier": 2, "resnet_groups": 4
    })
}

/// The tiny generator's rate and window.
pub const GEN_RATE: u32 = 8000;
pub const GEN_WINDOW: usize = 512;
/// The tiny diffusion upsampler's rate (factors 2 and 4).
pub const UP_RATE: u32 = 16_000;

fn save(dir: &Path, kind: ModelKind, kwargs: serde_json::Value, rate: u32, varmap: &VarMap) {
    let config = FolderConfig::new(kind, kwargs, rate, 1, GEN_WINDOW);
    ModelFolder::from_varmap(config, varmap)
        .unwrap()
        .save(dir)
        .unwrap();
}

fn vb(varmap: &VarMap) -> VarBuilder<'static> {
    VarBuilder::from_varmap(varmap, DType::F32, &Device::Cpu)
}

pub fn tiny_generator(dir: &Path) {
    let kwargs = unet_kwargs();
    let cfg = AudioDiffusionModelConfig::from_kwargs(&kwargs).unwrap();
    let varmap = VarMap::new();
    AudioDiffusionModel::new(&cfg, Compat::Fixed, vb(&varmap)).unwrap();
    save(
        dir,
        ModelKind::AudioDiffusionModel,
        kwargs,
        GEN_RATE,
        &varmap,
    );
}

pub fn tiny_upsampler(dir: &Path) {
    let mut kwargs = unet_kwargs();
    kwargs["factor"] = serde_json::json!([2, 4]);
    let cfg = AudioDiffusionUpsamplerConfig::from_kwargs(&kwargs).unwrap();
    let varmap = VarMap::new();
    AudioDiffusionUpsampler::new(&cfg, Compat::Fixed, vb(&varmap)).unwrap();
    save(
        dir,
        ModelKind::AudioDiffusionUpsampler,
        kwargs,
        UP_RATE,
        &varmap,
    );
}

pub fn tiny_autoencoder(dir: &Path) {
    let mut kwargs = unet_kwargs();
    kwargs["encoder_depth"] = 2.into();
    kwargs["encoder_channels"] = 4.into();
    kwargs["encoder_num_blocks"] = serde_json::json!([1, 1]);
    let cfg = AudioDiffusionAutoencoderConfig::from_kwargs(&kwargs).unwrap();
    let varmap = VarMap::new();
    AudioDiffusionAutoencoder::new(&cfg, Compat::Fixed, vb(&varmap)).unwrap();
    save(
        dir,
        ModelKind::AudioDiffusionAutoencoder,
        kwargs,
        GEN_RATE,
        &varmap,
    );
}

/// The shipped band-extension folder (models/upsampler) in the repository.
pub fn shipped_band_extension() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../models/upsampler")
}

/// Builds every fixture under `root`: `gen`, `up`, `ae` (tiny, random weights), `be` (a copy of
/// models/upsampler), `staged` (the tiny generator with a x2 band-extension stage), and the
/// variables the needles use (`tensor`: the generator tensor the weight cases mutate).
pub fn fixtures(
    root: &Path,
) -> (
    HashMap<&'static str, PathBuf>,
    HashMap<&'static str, String>,
) {
    let mut fx = HashMap::new();
    let gen = root.join("gen");
    tiny_generator(&gen);
    let up = root.join("up");
    tiny_upsampler(&up);
    let ae = root.join("ae");
    tiny_autoencoder(&ae);
    let be = root.join("be");
    super::harness::copy_dir(&shipped_band_extension(), &be);
    let staged = root.join("staged");
    super::harness::copy_dir(&gen, &staged);
    super::harness::copy_dir(&be, &staged.join("band_extension"));
    mutate_config(&staged, |v| {
        v["band_extension"] = serde_json::json!({"factor": 2})
    });
    let mut vars = HashMap::new();
    vars.insert("tensor", pick_tensor(&gen.join("model.safetensors")));
    vars.insert("up_tensor", pick_tensor(&up.join("model.safetensors")));
    for (k, p) in [
        ("gen", gen),
        ("up", up),
        ("ae", ae),
        ("be", be),
        ("staged", staged),
    ] {
        fx.insert(k, p);
    }
    (fx, vars)
}
