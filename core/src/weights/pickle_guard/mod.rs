//! A pre-scan of PyTorch zip checkpoints, run before candle's pickle reader sees them.
//!
//! candle's reader materialises every pickle object and clones whole objects on each memo get,
//! so a few hundred bytes of BINGET inside nested LIST builds allocate gigabytes (a "memo bomb"),
//! and objects nested 100 000 deep overflow the stack when dropped (an abort that
//! `catch_unwind` cannot contain). This guard walks the opcodes of every `*data.pkl` entry
//! (the entries candle reads) without building objects: each stack item is an abstract
//! [`Item`] carrying the node count and payload bytes it would hold if fully materialised,
//! and its nesting depth. Memo entries keep those estimates, the way candle keeps clones. The
//! walk is iterative, bounded by [`GuardLimits`], and refuses with a typed [`Refusal`].
//!
//! Opcode values are the pickle protocol's (Python's `pickle` module; protocol 2 in PEP 307,
//! protocol 4 in PEP 3154, protocol 5 in PEP 574).
//!
//! [`Item`]: machine::Item

mod machine;
mod opcodes;

use std::io::{Read, Seek};

use machine::{Budget, Machine};

/// The bounds the guard enforces. [`GuardLimits::default`] is what checkpoint loading uses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GuardLimits {
    /// Most entries the zip archive may list (a checkpoint has one per storage, plus a few).
    pub max_entries: usize,
    /// Most uncompressed bytes read from all `data.pkl` entries together.
    pub max_pickle_bytes: u64,
    /// Deepest nesting of containers (and of open MARKs) allowed.
    pub max_depth: u32,
    /// Cap on the materialised node budget, across all pickle entries.
    pub max_nodes: u64,
    /// Node budget granted per pickle byte, before the cap.
    pub nodes_per_byte: u64,
    /// Node budget granted to any pickle, however small.
    pub min_nodes: u64,
    /// Cap on materialised string/bytes payload (cloned memo strings count again).
    pub max_payload_bytes: u64,
    /// Payload budget granted per pickle byte, before the cap.
    pub payload_per_byte: u64,
    /// Payload budget granted to any pickle, however small.
    pub min_payload_bytes: u64,
    /// Most distinct memo ids.
    pub max_memo: usize,
    /// Highest value stack allowed.
    pub max_stack: usize,
}

impl Default for GuardLimits {
    /// The limits used for real checkpoints; see the field docs for what each bounds.
    fn default() -> Self {
        Self {
            max_entries: 1 << 20,
            max_pickle_bytes: 256 << 20,
            max_depth: 64,
            max_nodes: 50_000_000,
            nodes_per_byte: 16,
            min_nodes: 1_000_000,
            max_payload_bytes: 1 << 30,
            payload_per_byte: 16,
            min_payload_bytes: 64 << 20,
            max_memo: 1 << 20,
            max_stack: 1 << 20,
        }
    }
}

/// Why a checkpoint was refused: which limit or rule, with its value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// The file is not a readable zip archive.
    #[error("not a PyTorch zip checkpoint: {0}")]
    NotZip(String),
    /// The archive lists more entries than allowed.
    #[error("the zip archive lists {count} entries, over the limit of {limit}")]
    TooManyEntries { count: usize, limit: usize },
    /// A pickle entry is larger (uncompressed) than the bytes left to read.
    #[error(
        "pickle entry `{entry}` holds over {limit} bytes uncompressed (the pickle size limit)"
    )]
    EntryTooLarge { entry: String, limit: u64 },
    /// A pickle entry could not be read out of the archive.
    #[error("pickle entry `{entry}` could not be read: {reason}")]
    Unreadable { entry: String, reason: String },
    /// The opcode stream ended before STOP or inside an opcode's argument.
    #[error("pickle truncated at byte {offset}")]
    Truncated { offset: usize },
    /// A byte that is no pickle opcode.
    #[error("unknown pickle opcode 0x{code:02x} at byte {offset}")]
    UnknownOpcode { offset: usize, code: u8 },
    /// A real opcode that checkpoints never need (extension registry, INST/OBJ, buffers).
    #[error("unsupported pickle opcode {name} at byte {offset}")]
    UnsupportedOpcode { offset: usize, name: &'static str },
    /// A GLOBAL/STACK_GLOBAL naming a code-running module ([`CODE_MODULES`]).
    #[error("pickle refers to global `{module}.{name}`, which runs code: not a checkpoint")]
    UnknownGlobal { module: String, name: String },
    /// Containers (or open MARKs) nest deeper than allowed.
    #[error("pickle nesting depth exceeds the limit of {limit}")]
    Depth { limit: u32 },
    /// Materialising the objects (with memo clones) would exceed the node budget.
    #[error("pickle would materialise over {budget} objects (the node budget)")]
    NodeBudget { budget: u64 },
    /// Materialising the strings/bytes (with memo clones) would exceed the payload budget.
    #[error("pickle would materialise over {budget} bytes of strings (the payload budget)")]
    PayloadBudget { budget: u64 },
    /// More distinct memo ids than allowed.
    #[error("pickle memo holds over {limit} entries (the memo limit)")]
    MemoEntries { limit: usize },
    /// The value stack grew higher than allowed.
    #[error("pickle stack grows over {limit} items (the stack limit)")]
    StackHeight { limit: usize },
    /// A structurally invalid stream (stack underflow, missing MARK or memo id, bad text).
    #[error("malformed pickle at byte {offset}: {what}")]
    Malformed { offset: usize, what: &'static str },
}

/// The `module`/`name` globals candle's tensor loading understands (or harmlessly skips).
const ALLOWED_GLOBALS: &[(&str, &str)] = &[
    ("torch._utils", "_rebuild_tensor_v2"),
    ("torch._utils", "_rebuild_parameter"),
    ("torch._tensor", "_rebuild_from_type_v2"),
    ("torch", "FloatStorage"),
    ("torch", "DoubleStorage"),
    ("torch", "HalfStorage"),
    ("torch", "BFloat16Storage"),
    ("torch", "ByteStorage"),
    ("torch", "CharStorage"),
    ("torch", "ShortStorage"),
    ("torch", "IntStorage"),
    ("torch", "LongStorage"),
    ("torch", "BoolStorage"),
    ("collections", "OrderedDict"),
    ("collections", "defaultdict"),
    ("_codecs", "encode"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "scalar"),
    ("__torch__", "Module"),
];

/// What a successful scan measured.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Usage {
    /// Objects materialised, memo clones included.
    pub nodes: u64,
    /// String/bytes payload materialised, memo clones included.
    pub bytes: u64,
    /// Deepest nesting seen.
    pub depth: u32,
    /// Distinct memo ids.
    pub memo: usize,
}

/// Modules whose globals only a pickle that means to run code would name (refused, although
/// candle's reader executes no global: such a file is not a checkpoint).
const CODE_MODULES: &[&str] = &[
    "os",
    "posix",
    "nt",
    "subprocess",
    "sys",
    "builtins",
    "__builtin__",
    "importlib",
    "runpy",
    "socket",
    "shutil",
    "pickle",
    "_pickle",
    "ctypes",
    "webbrowser",
    "pty",
    "code",
    "commands",
];

/// The check for a global's module and name: the tensor-loading names candle understands pass,
/// names from [`CODE_MODULES`] are refused, and any other name (a Lightning checkpoint's
/// `argparse.Namespace`, OmegaConf containers, `torch.Size`, ...) passes as an inert leaf: the
/// reader never calls it, and the node, depth and payload budgets bound what it costs.
fn check_global(module: &str, name: &str) -> Result<(), Refusal> {
    let root = module.split('.').next().unwrap_or(module);
    if ALLOWED_GLOBALS.contains(&(module, name)) || !CODE_MODULES.contains(&root) {
        return Ok(());
    }
    let clip = |s: &str| s.chars().take(120).collect::<String>();
    Err(Refusal::UnknownGlobal {
        module: clip(module),
        name: clip(name),
    })
}

/// The budgets for a pickle of `len` bytes, given what earlier entries used.
fn budget_for(limits: &GuardLimits, len: usize, used: Usage) -> Budget {
    let len = len as u64;
    let scaled = |per: u64, min: u64, max: u64| len.saturating_mul(per).max(min).min(max);
    let nodes = scaled(limits.nodes_per_byte, limits.min_nodes, limits.max_nodes);
    let bytes = scaled(
        limits.payload_per_byte,
        limits.min_payload_bytes,
        limits.max_payload_bytes,
    );
    Budget {
        nodes: nodes.min(limits.max_nodes.saturating_sub(used.nodes)),
        bytes: bytes.min(limits.max_payload_bytes.saturating_sub(used.bytes)),
    }
}

/// Walks one pickle stream without building it; `Ok` when candle may safely read it.
pub fn scan_pickle(data: &[u8], limits: &GuardLimits) -> Result<Usage, Refusal> {
    scan_pickle_after(data, limits, Usage::default())
}

/// [`scan_pickle`] with the budgets reduced by what earlier entries of the archive used.
fn scan_pickle_after(data: &[u8], limits: &GuardLimits, used: Usage) -> Result<Usage, Refusal> {
    let mut machine = Machine::new(limits, budget_for(limits, data.len(), used));
    machine.run(data)?;
    Ok(machine.usage)
}

/// Reads entry `name` fully, refusing more than `limit` bytes whatever its header claims.
fn read_entry<R: Read + Seek>(
    zip: &mut zip::ZipArchive<R>,
    name: &str,
    limit: u64,
) -> Result<Vec<u8>, Refusal> {
    let unreadable = |e: &dyn std::fmt::Display| Refusal::Unreadable {
        entry: name.to_string(),
        reason: e.to_string(),
    };
    let too_large = || Refusal::EntryTooLarge {
        entry: name.to_string(),
        limit,
    };
    let entry = zip.by_name(name).map_err(|e| unreadable(&e))?;
    if entry.size() > limit {
        return Err(too_large());
    }
    let mut data = Vec::with_capacity(entry.size().min(1 << 20) as usize);
    entry
        .take(limit.saturating_add(1))
        .read_to_end(&mut data)
        .map_err(|e| unreadable(&e))?;
    if data.len() as u64 > limit {
        return Err(too_large());
    }
    Ok(data)
}

/// The entries candle's reader parses: every name ending in `data.pkl`, once each.
fn pickle_entries<R: Read + Seek>(zip: &zip::ZipArchive<R>) -> Result<Vec<String>, Refusal> {
    let mut names = Vec::new();
    for name in zip.file_names() {
        let name = name.map_err(|e| Refusal::NotZip(e.to_string()))?;
        if name.ends_with("data.pkl") && !names.iter().any(|n| n == &name) {
            names.push(name.into_owned());
        }
    }
    Ok(names)
}

/// Checks a whole zip checkpoint: entry count, pickle sizes, then every pickle's opcodes.
pub fn scan_archive<R: Read + Seek>(reader: R, limits: &GuardLimits) -> Result<Usage, Refusal> {
    let mut zip = zip::ZipArchive::new(reader).map_err(|e| Refusal::NotZip(e.to_string()))?;
    if zip.len() > limits.max_entries {
        return Err(Refusal::TooManyEntries {
            count: zip.len(),
            limit: limits.max_entries,
        });
    }
    let mut used = Usage::default();
    let mut bytes_left = limits.max_pickle_bytes;
    for name in pickle_entries(&zip)? {
        let data = read_entry(&mut zip, &name, bytes_left)?;
        bytes_left = bytes_left.saturating_sub(data.len() as u64);
        let usage = scan_pickle_after(&data, limits, used)?;
        used = Usage {
            nodes: used.nodes.saturating_add(usage.nodes),
            bytes: used.bytes.saturating_add(usage.bytes),
            depth: used.depth.max(usage.depth),
            memo: used.memo.max(usage.memo),
        };
    }
    Ok(used)
}

/// Checks the checkpoint at `path` under the default limits, as an [`crate::Error`].
pub fn check_checkpoint(path: &std::path::Path) -> crate::Result<Usage> {
    let file = std::fs::File::open(path).map_err(|e| crate::Error::io(path, e))?;
    scan_archive(std::io::BufReader::new(file), &GuardLimits::default()).map_err(|r| {
        crate::Error::WeightsFile {
            path: path.to_path_buf(),
            reason: format!("refused before parsing: {r}"),
        }
    })
}

#[cfg(test)]
mod tests;
