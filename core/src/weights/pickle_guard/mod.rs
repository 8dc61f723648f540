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

use std::collections::HashMap;
use std::io::{Read, Seek};

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

/// The inline argument an opcode carries after its byte.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Arg {
    /// No argument.
    No,
    /// Exactly this many bytes.
    Fixed(usize),
    /// One newline-terminated text line.
    Line,
    /// Two newline-terminated text lines (module, name).
    Lines2,
    /// A length of 1, 4 or 8 little-endian bytes, then that many bytes.
    Counted(usize),
}

/// What an opcode does to the abstract stack.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Effect {
    /// No stack effect (PROTO, FRAME).
    Nothing,
    /// End of the pickle.
    Stop,
    /// Push a scalar, string or bytes.
    Leaf,
    /// Push a string leaf whose text STACK_GLOBAL may use.
    Text,
    /// Push a MARK.
    Mark,
    /// Drop the top item (or the top MARK when no item is above it).
    Pop,
    /// Drop everything down to and including the top MARK.
    PopMark,
    /// Push a clone of the top item.
    Dup,
    /// Pop this many items, push one object holding them (EMPTY_* is 0, REDUCE is 2).
    Pack(usize),
    /// Pop down to the top MARK, push one container holding the items.
    PackMark,
    /// Pop this many items into the container below them (APPEND 1, SETITEM 2).
    Extend(usize),
    /// Pop down to the top MARK into the container below it (APPENDS, SETITEMS, ADDITEMS).
    ExtendMark,
    /// Store a clone of the top item under the argument's id.
    Put,
    /// Store a clone of the top item under the next id.
    Memoize,
    /// Push a clone of the memo entry under the argument's id.
    Get,
    /// Push a class named by the two argument lines.
    Global,
    /// Pop module and name strings, push the class they name.
    StackGlobal,
    /// Refuse: never needed for checkpoints.
    Refuse,
}

/// One row of the opcode table.
#[derive(Clone, Copy, Debug)]
struct Op {
    /// The opcode byte.
    code: u8,
    /// Python's name for it.
    name: &'static str,
    /// Its inline argument.
    arg: Arg,
    /// Its stack effect.
    effect: Effect,
}

/// Shorthand for an [`Op`] row.
const fn op(code: u8, name: &'static str, arg: Arg, effect: Effect) -> Op {
    Op {
        code,
        name,
        arg,
        effect,
    }
}

/// Every pickle opcode of protocols 0-5, with Python's byte values.
#[rustfmt::skip]
const OPS: &[Op] = &[
    op(b'(', "MARK", Arg::No, Effect::Mark),
    op(b'.', "STOP", Arg::No, Effect::Stop),
    op(b'0', "POP", Arg::No, Effect::Pop),
    op(b'1', "POP_MARK", Arg::No, Effect::PopMark),
    op(b'2', "DUP", Arg::No, Effect::Dup),
    op(b'F', "FLOAT", Arg::Line, Effect::Leaf),
    op(b'I', "INT", Arg::Line, Effect::Leaf),
    op(b'J', "BININT", Arg::Fixed(4), Effect::Leaf),
    op(b'K', "BININT1", Arg::Fixed(1), Effect::Leaf),
    op(b'L', "LONG", Arg::Line, Effect::Leaf),
    op(b'M', "BININT2", Arg::Fixed(2), Effect::Leaf),
    op(b'N', "NONE", Arg::No, Effect::Leaf),
    op(b'P', "PERSID", Arg::Line, Effect::Leaf),
    op(b'Q', "BINPERSID", Arg::No, Effect::Pack(1)),
    op(b'R', "REDUCE", Arg::No, Effect::Pack(2)),
    op(b'S', "STRING", Arg::Line, Effect::Leaf),
    op(b'T', "BINSTRING", Arg::Counted(4), Effect::Leaf),
    op(b'U', "SHORT_BINSTRING", Arg::Counted(1), Effect::Leaf),
    op(b'V', "UNICODE", Arg::Line, Effect::Text),
    op(b'X', "BINUNICODE", Arg::Counted(4), Effect::Text),
    op(b'a', "APPEND", Arg::No, Effect::Extend(1)),
    op(b'b', "BUILD", Arg::No, Effect::Pack(2)),
    op(b'c', "GLOBAL", Arg::Lines2, Effect::Global),
    op(b'd', "DICT", Arg::No, Effect::PackMark),
    op(b'}', "EMPTY_DICT", Arg::No, Effect::Pack(0)),
    op(b'e', "APPENDS", Arg::No, Effect::ExtendMark),
    op(b'g', "GET", Arg::Line, Effect::Get),
    op(b'h', "BINGET", Arg::Fixed(1), Effect::Get),
    op(b'i', "INST", Arg::Lines2, Effect::Refuse),
    op(b'j', "LONG_BINGET", Arg::Fixed(4), Effect::Get),
    op(b'l', "LIST", Arg::No, Effect::PackMark),
    op(b']', "EMPTY_LIST", Arg::No, Effect::Pack(0)),
    op(b'o', "OBJ", Arg::No, Effect::Refuse),
    op(b'p', "PUT", Arg::Line, Effect::Put),
    op(b'q', "BINPUT", Arg::Fixed(1), Effect::Put),
    op(b'r', "LONG_BINPUT", Arg::Fixed(4), Effect::Put),
    op(b's', "SETITEM", Arg::No, Effect::Extend(2)),
    op(b't', "TUPLE", Arg::No, Effect::PackMark),
    op(b')', "EMPTY_TUPLE", Arg::No, Effect::Pack(0)),
    op(b'u', "SETITEMS", Arg::No, Effect::ExtendMark),
    op(b'G', "BINFLOAT", Arg::Fixed(8), Effect::Leaf),
    // Protocol 2 (PEP 307).
    op(0x80, "PROTO", Arg::Fixed(1), Effect::Nothing),
    op(0x81, "NEWOBJ", Arg::No, Effect::Pack(2)),
    op(0x82, "EXT1", Arg::Fixed(1), Effect::Refuse),
    op(0x83, "EXT2", Arg::Fixed(2), Effect::Refuse),
    op(0x84, "EXT4", Arg::Fixed(4), Effect::Refuse),
    op(0x85, "TUPLE1", Arg::No, Effect::Pack(1)),
    op(0x86, "TUPLE2", Arg::No, Effect::Pack(2)),
    op(0x87, "TUPLE3", Arg::No, Effect::Pack(3)),
    op(0x88, "NEWTRUE", Arg::No, Effect::Leaf),
    op(0x89, "NEWFALSE", Arg::No, Effect::Leaf),
    op(0x8a, "LONG1", Arg::Counted(1), Effect::Leaf),
    op(0x8b, "LONG4", Arg::Counted(4), Effect::Leaf),
    // Protocol 3.
    op(b'B', "BINBYTES", Arg::Counted(4), Effect::Leaf),
    op(b'C', "SHORT_BINBYTES", Arg::Counted(1), Effect::Leaf),
    // Protocol 4 (PEP 3154).
    op(0x8c, "SHORT_BINUNICODE", Arg::Counted(1), Effect::Text),
    op(0x8d, "BINUNICODE8", Arg::Counted(8), Effect::Text),
    op(0x8e, "BINBYTES8", Arg::Counted(8), Effect::Leaf),
    op(0x8f, "EMPTY_SET", Arg::No, Effect::Pack(0)),
    op(0x90, "ADDITEMS", Arg::No, Effect::ExtendMark),
    op(0x91, "FROZENSET", Arg::No, Effect::PackMark),
    op(0x92, "NEWOBJ_EX", Arg::No, Effect::Pack(3)),
    op(0x93, "STACK_GLOBAL", Arg::No, Effect::StackGlobal),
    op(0x94, "MEMOIZE", Arg::No, Effect::Memoize),
    op(0x95, "FRAME", Arg::Fixed(8), Effect::Nothing),
    // Protocol 5 (PEP 574).
    op(0x96, "BYTEARRAY8", Arg::Counted(8), Effect::Leaf),
    op(0x97, "NEXT_BUFFER", Arg::No, Effect::Refuse),
    op(0x98, "READONLY_BUFFER", Arg::No, Effect::Refuse),
];

/// `OPS` indexed by opcode byte (`u8::MAX` where the byte is no opcode).
const LOOKUP: [u8; 256] = {
    let mut table = [u8::MAX; 256];
    let mut i = 0;
    while i < OPS.len() {
        table[OPS[i].code as usize] = i as u8;
        i += 1;
    }
    table
};

/// Longest string kept as text on an item (enough for any module or class name).
const MAX_TEXT: usize = 256;

/// An abstract stack item: what the real object would cost if candle materialised it.
#[derive(Clone, Debug, Default)]
struct Item {
    /// Objects in it, itself included.
    nodes: u64,
    /// String/bytes payload in it.
    bytes: u64,
    /// Nesting depth (a leaf is 1).
    depth: u32,
    /// Its text, for short strings only (STACK_GLOBAL reads it).
    text: Option<Box<str>>,
}

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

/// The budgets one pickle entry is scanned under.
#[derive(Clone, Copy, Debug)]
struct Budget {
    /// Node budget.
    nodes: u64,
    /// Payload budget.
    bytes: u64,
}

/// A cursor over the pickle bytes that refuses reads past the end.
struct Cursor<'a> {
    /// The whole pickle.
    data: &'a [u8],
    /// Next byte to read.
    pos: usize,
}

impl<'a> Cursor<'a> {
    /// The next `n` bytes.
    fn take(&mut self, n: usize) -> Result<&'a [u8], Refusal> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.data.len());
        let end = end.ok_or(Refusal::Truncated {
            offset: self.data.len(),
        })?;
        let out = &self.data[self.pos..end];
        self.pos = end;
        Ok(out)
    }

    /// The bytes up to the next newline (consumed, not returned).
    fn line(&mut self) -> Result<&'a [u8], Refusal> {
        let rest = &self.data[self.pos..];
        let n = rest.iter().position(|&b| b == b'\n');
        let n = n.ok_or(Refusal::Truncated {
            offset: self.data.len(),
        })?;
        self.pos += n + 1;
        Ok(&rest[..n])
    }

    /// An opcode's inline argument.
    fn arg(&mut self, arg: Arg) -> Result<&'a [u8], Refusal> {
        match arg {
            Arg::No => Ok(&[]),
            Arg::Fixed(n) => self.take(n),
            Arg::Line => self.line(),
            Arg::Lines2 => {
                let start = self.pos;
                self.line()?;
                self.line()?;
                Ok(&self.data[start..self.pos])
            }
            Arg::Counted(width) => {
                let len = le_uint(self.take(width)?);
                let len = usize::try_from(len).unwrap_or(usize::MAX);
                self.take(len)
            }
        }
    }
}

/// A little-endian unsigned integer of up to 8 bytes.
fn le_uint(bytes: &[u8]) -> u64 {
    bytes
        .iter()
        .rev()
        .fold(0u64, |acc, &b| (acc << 8) | u64::from(b))
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

/// The abstract pickle machine: stack, MARK positions, memo and running totals.
struct Machine<'l> {
    /// Limits in force.
    limits: &'l GuardLimits,
    /// Budgets for this entry.
    budget: Budget,
    /// The value stack.
    stack: Vec<Item>,
    /// Stack heights at each open MARK.
    marks: Vec<usize>,
    /// Memo estimates by id.
    memo: HashMap<u64, Item>,
    /// Totals so far.
    usage: Usage,
    /// Offset of the opcode being run (for messages).
    offset: usize,
}

impl<'l> Machine<'l> {
    /// A machine with an empty stack.
    fn new(limits: &'l GuardLimits, budget: Budget) -> Self {
        Self {
            limits,
            budget,
            stack: Vec::new(),
            marks: Vec::new(),
            memo: HashMap::new(),
            usage: Usage::default(),
            offset: 0,
        }
    }

    /// A malformed-stream refusal at the current opcode.
    fn malformed(&self, what: &'static str) -> Refusal {
        Refusal::Malformed {
            offset: self.offset,
            what,
        }
    }

    /// Counts `nodes` and `bytes` newly materialised against the budgets.
    fn charge(&mut self, nodes: u64, bytes: u64) -> Result<(), Refusal> {
        self.usage.nodes = self.usage.nodes.saturating_add(nodes);
        self.usage.bytes = self.usage.bytes.saturating_add(bytes);
        if self.usage.nodes > self.budget.nodes {
            return Err(Refusal::NodeBudget {
                budget: self.budget.nodes,
            });
        }
        if self.usage.bytes > self.budget.bytes {
            return Err(Refusal::PayloadBudget {
                budget: self.budget.bytes,
            });
        }
        Ok(())
    }

    /// Refuses a depth over the limit, and records the deepest seen.
    fn check_depth(&mut self, depth: u32) -> Result<(), Refusal> {
        if depth > self.limits.max_depth {
            return Err(Refusal::Depth {
                limit: self.limits.max_depth,
            });
        }
        self.usage.depth = self.usage.depth.max(depth);
        Ok(())
    }

    /// Pushes an item already charged for.
    fn push(&mut self, item: Item) -> Result<(), Refusal> {
        self.check_depth(item.depth)?;
        if self.stack.len() >= self.limits.max_stack {
            return Err(Refusal::StackHeight {
                limit: self.limits.max_stack,
            });
        }
        self.stack.push(item);
        Ok(())
    }

    /// The lowest stack index usable by a plain pop (just above the top MARK).
    fn floor(&self) -> usize {
        self.marks.last().copied().unwrap_or(0)
    }

    /// The stack height at the top MARK, which is removed.
    fn pop_mark(&mut self) -> Result<usize, Refusal> {
        self.marks.pop().ok_or(self.malformed("no MARK to pop to"))
    }

    /// The one object holding `stack[from..]`, which are removed.
    fn fold_from(&mut self, from: usize) -> Item {
        let folded = self.stack[from..]
            .iter()
            .fold(Item::default(), |acc, it| Item {
                nodes: acc.nodes.saturating_add(it.nodes),
                bytes: acc.bytes.saturating_add(it.bytes),
                depth: acc.depth.max(it.depth),
                text: None,
            });
        self.stack.truncate(from);
        folded
    }

    /// The start index of the top `n` items, refusing an underflow past the top MARK.
    fn top_n(&self, n: usize) -> Result<usize, Refusal> {
        match self.stack.len().checked_sub(n) {
            Some(from) if from >= self.floor() => Ok(from),
            _ => Err(self.malformed("stack underflow")),
        }
    }

    /// Replaces `stack[from..]` by one container holding them.
    fn pack(&mut self, from: usize) -> Result<(), Refusal> {
        let inner = self.fold_from(from);
        self.charge(1, 0)?;
        self.push(Item {
            nodes: inner.nodes.saturating_add(1),
            bytes: inner.bytes,
            depth: inner.depth.saturating_add(1),
            text: None,
        })
    }

    /// Moves `stack[from..]` into the container just below them.
    fn extend(&mut self, from: usize) -> Result<(), Refusal> {
        let inner = self.fold_from(from);
        if self.stack.len() <= self.floor() {
            return Err(self.malformed("no container to add items to"));
        }
        let depth = inner.depth.saturating_add(1);
        self.check_depth(depth)?;
        if let Some(target) = self.stack.last_mut() {
            target.nodes = target.nodes.saturating_add(inner.nodes);
            target.bytes = target.bytes.saturating_add(inner.bytes);
            target.depth = target.depth.max(depth);
        }
        Ok(())
    }

    /// Stores a clone of the top item under `id` (candle clones it, so it is charged).
    fn put(&mut self, id: u64) -> Result<(), Refusal> {
        let top = match self.stack.last() {
            Some(top) if self.stack.len() > self.floor() => top.clone(),
            _ => return Err(self.malformed("nothing to memoize")),
        };
        self.charge(top.nodes, top.bytes)?;
        self.memo.insert(id, top);
        self.usage.memo = self.memo.len();
        if self.memo.len() > self.limits.max_memo {
            return Err(Refusal::MemoEntries {
                limit: self.limits.max_memo,
            });
        }
        Ok(())
    }

    /// Pushes a clone of the memo entry `id` (charged: candle deep-clones it).
    fn get(&mut self, id: u64) -> Result<(), Refusal> {
        let item = self.memo.get(&id).cloned();
        let item = item.ok_or(self.malformed("memo id never stored"))?;
        self.charge(item.nodes, item.bytes)?;
        self.push(item)
    }

    /// Pushes a charged leaf of `bytes` payload, keeping short text when `text`.
    fn leaf(&mut self, payload: &[u8], text: bool) -> Result<(), Refusal> {
        let bytes = payload.len() as u64;
        self.charge(1, bytes)?;
        let text = if text && payload.len() <= MAX_TEXT {
            std::str::from_utf8(payload).ok().map(Box::from)
        } else {
            None
        };
        self.push(Item {
            nodes: 1,
            bytes,
            depth: 1,
            text,
        })
    }

    /// GLOBAL: checks the `module\nname\n` argument, pushes a class leaf.
    fn global(&mut self, arg: &[u8]) -> Result<(), Refusal> {
        let text = std::str::from_utf8(arg).map_err(|_| self.malformed("global not UTF-8"))?;
        let mut lines = text.split('\n');
        let module = lines.next().unwrap_or("");
        let name = lines.next().unwrap_or("");
        check_global(module, name)?;
        self.leaf(&[], false)
    }

    /// STACK_GLOBAL: pops module and name strings, checks them, pushes a class leaf.
    fn stack_global(&mut self) -> Result<(), Refusal> {
        let from = self.top_n(2)?;
        let name_of = |it: &Item| it.text.clone();
        let (module, name) = match (name_of(&self.stack[from]), name_of(&self.stack[from + 1])) {
            (Some(m), Some(n)) => (m, n),
            _ => return Err(self.malformed("STACK_GLOBAL without string operands")),
        };
        check_global(&module, &name)?;
        self.stack.truncate(from);
        self.leaf(&[], false)
    }
}

/// A memo id from a PUT/GET argument: decimal text or little-endian binary.
fn memo_id(arg: Arg, bytes: &[u8]) -> Option<u64> {
    match arg {
        Arg::Line => std::str::from_utf8(bytes).ok()?.trim().parse().ok(),
        _ => Some(le_uint(bytes)),
    }
}

impl Machine<'_> {
    /// Runs one opcode's stack effect; true at STOP.
    fn step(&mut self, op: &Op, arg: &[u8]) -> Result<bool, Refusal> {
        match op.effect {
            Effect::Nothing => {}
            Effect::Stop => return Ok(true),
            Effect::Leaf => self.leaf(arg, false)?,
            Effect::Text => self.leaf(arg, true)?,
            Effect::Mark => {
                self.check_depth(self.marks.len() as u32 + 1)?;
                self.marks.push(self.stack.len());
            }
            Effect::Pop if self.stack.len() > self.floor() => {
                self.stack.pop();
            }
            Effect::Pop | Effect::PopMark => {
                let from = self.pop_mark()?;
                self.stack.truncate(from);
            }
            Effect::Dup => {
                let from = self.top_n(1)?;
                let top = self.stack[from].clone();
                self.charge(top.nodes, top.bytes)?;
                self.push(top)?;
            }
            Effect::Pack(n) => self.pack(self.top_n(n)?)?,
            Effect::PackMark => {
                let from = self.pop_mark()?;
                self.pack(from)?;
            }
            Effect::Extend(n) => self.extend(self.top_n(n)?)?,
            Effect::ExtendMark => {
                let from = self.pop_mark()?;
                self.extend(from)?;
            }
            Effect::Put => {
                let id = memo_id(op.arg, arg).ok_or(self.malformed("bad memo id"))?;
                self.put(id)?;
            }
            Effect::Memoize => self.put(self.memo.len() as u64)?,
            Effect::Get => {
                let id = memo_id(op.arg, arg).ok_or(self.malformed("bad memo id"))?;
                self.get(id)?;
            }
            Effect::Global => self.global(arg)?,
            Effect::StackGlobal => self.stack_global()?,
            Effect::Refuse => {
                return Err(Refusal::UnsupportedOpcode {
                    offset: self.offset,
                    name: op.name,
                })
            }
        }
        Ok(false)
    }

    /// Runs the whole stream to STOP.
    fn run(&mut self, data: &[u8]) -> Result<(), Refusal> {
        let mut cur = Cursor { data, pos: 0 };
        loop {
            self.offset = cur.pos;
            let code = *cur.take(1)?.first().unwrap_or(&0);
            let index = usize::from(LOOKUP[usize::from(code)]);
            let op = OPS.get(index).ok_or(Refusal::UnknownOpcode {
                offset: self.offset,
                code,
            })?;
            let arg = cur.arg(op.arg)?;
            if self.step(op, arg)? {
                return match self.stack.is_empty() {
                    true => Err(self.malformed("STOP with an empty stack")),
                    false => Ok(()),
                };
            }
        }
    }
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
mod tests {
    use super::*;
    use std::io::{Cursor as IoCursor, Write};
    use std::time::{Duration, Instant};

    /// An in-memory zip of `(name, bytes)` entries, stored uncompressed as torch.save does.
    fn zip_of(entries: &[(&str, &[u8])]) -> Vec<u8> {
        let mut w = zip::ZipWriter::new(IoCursor::new(Vec::new()));
        let opts = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Stored);
        for (name, bytes) in entries {
            w.start_file(*name, opts).expect("start entry");
            w.write_all(bytes).expect("write entry");
        }
        w.finish().expect("finish zip").into_inner()
    }

    /// `scan_archive` under the default limits of a zip holding `pkl` as `archive/data.pkl`.
    fn scan_pkl(pkl: &[u8]) -> Result<Usage, Refusal> {
        let zip = zip_of(&[("archive/data.pkl", pkl), ("archive/version", b"3\n")]);
        scan_archive(IoCursor::new(zip), &GuardLimits::default())
    }

    /// A BINUNICODE opcode with its text.
    fn unicode(s: &str) -> Vec<u8> {
        let mut v = vec![b'X'];
        v.extend_from_slice(&(s.len() as u32).to_le_bytes());
        v.extend_from_slice(s.as_bytes());
        v
    }

    /// A protocol-2 pickle of `OrderedDict({"a": 1, "b": [2.5, True], "c": ("x", None)})` with
    /// memo puts and gets, as torch.save writes dicts.
    fn valid_dict() -> Vec<u8> {
        let mut p = vec![0x80, 2];
        p.extend_from_slice(b"ccollections\nOrderedDict\nq\x00)Rq\x01(");
        p.extend(unicode("a"));
        p.extend_from_slice(b"q\x02K\x01");
        p.extend(unicode("b"));
        p.extend_from_slice(b"](G\x40\x04\x00\x00\x00\x00\x00\x00\x88eq\x03");
        p.extend(unicode("c"));
        p.extend(unicode("x"));
        p.extend_from_slice(b"N\x86q\x04uh\x04\x30.");
        p
    }

    #[test]
    fn a_small_valid_dict_passes() {
        let usage = scan_pkl(&valid_dict()).expect("valid pickle");
        assert_eq!(usage.memo, 5);
        assert!(usage.depth <= 3, "{usage:?}");
        assert!(usage.nodes < 100, "{usage:?}");
    }

    #[test]
    fn protocol_4_opcodes_pass() {
        // FRAME, SHORT_BINUNICODE, STACK_GLOBAL, MEMOIZE, EMPTY_DICT, SETITEM, BINBYTES.
        let mut p = vec![0x80, 4, 0x95];
        p.extend_from_slice(&40u64.to_le_bytes());
        p.extend_from_slice(b"\x8c\x0bcollections\x94\x8c\x0bOrderedDict\x94\x93\x94)R\x94");
        p.extend_from_slice(b"\x8c\x01kC\x02hi\x8a\x02\x01\x01\x86s.");
        let usage = scan_pkl(&p).expect("protocol 4 pickle");
        assert_eq!(usage.memo, 4);
    }

    #[test]
    fn the_repository_checkpoint_passes() {
        let path =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/unet_small.ckpt");
        let usage = check_checkpoint(&path).expect("real checkpoint");
        // 25 600 pickle bytes: about 0.5 nodes and 1.5 payload bytes per byte, depth 7, far
        // inside the 16-per-byte budgets.
        assert!(usage.depth < 10, "{usage:?}");
        assert!(
            usage.nodes < 2 * 25_600 && usage.bytes < 4 * 25_600,
            "{usage:?}"
        );
    }

    /// The memo bomb: a list put in the memo, then 40 levels of a list of 8 gets of the
    /// previous level: 8^40 nodes if materialised, in about 800 bytes.
    fn memo_bomb() -> Vec<u8> {
        let mut p = vec![0x80, 2, b']', b'q', 0];
        for _ in 0..40 {
            p.push(b'(');
            for _ in 0..8 {
                p.extend_from_slice(b"h\x00");
            }
            p.extend_from_slice(b"lq\x00");
        }
        p.push(b'.');
        p
    }

    #[test]
    fn the_memo_bomb_is_refused_quickly_by_the_node_budget() {
        let start = Instant::now();
        let err = scan_pkl(&memo_bomb()).expect_err("bomb");
        assert!(start.elapsed() < Duration::from_secs(1));
        assert_eq!(err, Refusal::NodeBudget { budget: 1_000_000 });
        assert!(err.to_string().contains("budget"), "{err}");
    }

    #[test]
    fn a_cloned_large_string_is_refused_by_the_payload_budget() {
        // One 1 MiB string memoised, then fetched 100 times into a list.
        let mut p = vec![0x80, 2, b']', b'(', b'X'];
        p.extend_from_slice(&(1u32 << 20).to_le_bytes());
        p.extend(std::iter::repeat_n(b'a', 1 << 20));
        p.extend_from_slice(b"q\x00");
        p.extend((0..100).flat_map(|_| *b"h\x00"));
        p.extend_from_slice(b"e.");
        let err = scan_pkl(&p).expect_err("payload bomb");
        assert_eq!(err, Refusal::PayloadBudget { budget: 64 << 20 });
    }

    #[test]
    fn deep_tuple1_nesting_is_refused_by_depth_without_recursion() {
        let mut p = vec![0x80, 2, b')'];
        p.extend(std::iter::repeat_n(0x85u8, 100_000));
        p.push(b'.');
        let err = scan_pkl(&p).expect_err("deep");
        assert_eq!(err, Refusal::Depth { limit: 64 });
        assert!(err.to_string().contains("depth"), "{err}");
    }

    #[test]
    fn deep_mark_tuple_nesting_is_refused_by_depth() {
        let mut p = vec![0x80, 2];
        p.extend(std::iter::repeat_n(b'(', 100_000));
        p.extend(std::iter::repeat_n(b't', 100_000));
        p.push(b'.');
        assert_eq!(scan_pkl(&p), Err(Refusal::Depth { limit: 64 }));
        // Nesting built by APPEND of each list into the one below it is caught the same way.
        let mut p = vec![0x80, 2];
        p.extend(std::iter::repeat_n(b']', 100_000));
        p.extend(std::iter::repeat_n(b'a', 99_999));
        p.push(b'.');
        assert_eq!(scan_pkl(&p), Err(Refusal::Depth { limit: 64 }));
    }

    #[test]
    fn a_truncated_stream_is_refused() {
        let full = valid_dict();
        for cut in [full.len() - 1, full.len() / 2, 3, 1, 0] {
            let err = scan_pkl(&full[..cut]).expect_err("truncated");
            assert!(matches!(err, Refusal::Truncated { .. }), "cut {cut}: {err}");
        }
        // A length prefix pointing past the end.
        let mut p = vec![0x80, 2, b'X'];
        p.extend_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(scan_pkl(&p), Err(Refusal::Truncated { offset: 7 }));
    }

    #[test]
    fn an_unknown_opcode_is_refused() {
        let err = scan_pkl(&[0x80, 2, b'N', 0xff, b'.']).expect_err("unknown");
        assert_eq!(
            err,
            Refusal::UnknownOpcode {
                offset: 3,
                code: 0xff
            }
        );
        let err = scan_pkl(&[0x80, 2, 0x82, 1, b'.']).expect_err("EXT1");
        assert_eq!(
            err,
            Refusal::UnsupportedOpcode {
                offset: 2,
                name: "EXT1"
            }
        );
    }

    #[test]
    fn an_inert_unknown_global_passes() {
        // A Lightning checkpoint's hyper-parameters: argparse.Namespace() with no arguments.
        let namespace = b"\x80\x02cargparse\nNamespace\n)\x81}b.";
        assert!(scan_pkl(namespace).is_ok());
    }

    #[test]
    fn an_unknown_global_is_refused_by_name() {
        let err = scan_pkl(b"\x80\x02cos\nsystem\nX\x02\x00\x00\x00ls\x85R.").expect_err("global");
        assert_eq!(
            err,
            Refusal::UnknownGlobal {
                module: "os".into(),
                name: "system".into()
            }
        );
        assert!(err.to_string().contains("os.system"), "{err}");
        let stack = b"\x80\x04\x8c\x08builtins\x8c\x04eval\x93.";
        let err = scan_pkl(stack).expect_err("stack global");
        assert!(err.to_string().contains("builtins.eval"), "{err}");
    }

    #[test]
    fn a_memo_flood_is_refused_by_the_memo_limit() {
        let limits = GuardLimits {
            max_memo: 1000,
            ..GuardLimits::default()
        };
        let mut p = vec![0x80, 2, b'N'];
        for id in 0u32..2000 {
            p.push(b'r');
            p.extend_from_slice(&id.to_le_bytes());
        }
        p.push(b'.');
        assert_eq!(
            scan_pickle(&p, &limits),
            Err(Refusal::MemoEntries { limit: 1000 })
        );
    }

    #[test]
    fn an_oversized_pickle_entry_is_refused() {
        let limits = GuardLimits {
            max_pickle_bytes: 1024,
            ..GuardLimits::default()
        };
        let mut big = vec![0x80, 2];
        big.extend(std::iter::repeat_n(b'N', 4096));
        big.push(b'.');
        let zip = zip_of(&[("archive/data.pkl", &big)]);
        let err = scan_archive(IoCursor::new(zip), &limits).expect_err("oversized");
        assert_eq!(
            err,
            Refusal::EntryTooLarge {
                entry: "archive/data.pkl".into(),
                limit: 1024
            }
        );
    }

    #[test]
    fn too_many_entries_are_refused() {
        let limits = GuardLimits {
            max_entries: 4,
            ..GuardLimits::default()
        };
        let names: Vec<String> = (0..5).map(|i| format!("archive/data/{i}")).collect();
        let entries: Vec<(&str, &[u8])> = names.iter().map(|n| (n.as_str(), &b"x"[..])).collect();
        let err = scan_archive(IoCursor::new(zip_of(&entries)), &limits).expect_err("entries");
        assert_eq!(err, Refusal::TooManyEntries { count: 5, limit: 4 });
    }

    #[test]
    fn not_a_zip_is_refused() {
        let err = scan_archive(
            IoCursor::new(b"not a zip archive".to_vec()),
            &GuardLimits::default(),
        )
        .expect_err("not zip");
        assert!(matches!(err, Refusal::NotZip(_)), "{err}");
    }

    #[test]
    fn a_bomb_checkpoint_fails_through_read_tensors() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("bomb.pt");
        let zip = zip_of(&[
            ("archive/data.pkl", &memo_bomb()),
            ("archive/version", b"3\n"),
        ]);
        std::fs::write(&path, zip).expect("write bomb");
        let start = Instant::now();
        let err = crate::weights::file::read_tensors(&path, &candle_core::Device::Cpu)
            .expect_err("bomb refused");
        assert!(start.elapsed() < Duration::from_secs(1));
        match err {
            crate::Error::WeightsFile { path: p, reason } => {
                assert_eq!(p, path);
                assert!(reason.contains("node budget"), "{reason}");
            }
            other => panic!("wrong error: {other}"),
        }
    }

    /// A torch.save-style checkpoint of `{"w": tensor}` whose float storage holds 4 values and
    /// whose pickle claims the shape `(numel,)`.
    fn tensor_checkpoint(numel: u32) -> Vec<u8> {
        let mut p = b"\x80\x02}q\x00(".to_vec();
        p.extend(unicode("w"));
        p.extend_from_slice(b"ctorch._utils\n_rebuild_tensor_v2\n((");
        p.extend(unicode("storage"));
        p.extend_from_slice(b"ctorch\nFloatStorage\n");
        p.extend(unicode("0"));
        p.extend(unicode("cpu"));
        p.extend_from_slice(b"K\x04tQK\x00J");
        p.extend_from_slice(&numel.to_le_bytes());
        p.extend_from_slice(b"\x85K\x01\x85\x89ccollections\nOrderedDict\n)RtRu.");
        let data: Vec<u8> = [1.0f32, 2.0, 3.0, 4.0]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        zip_of(&[("archive/data.pkl", &p), ("archive/data/0", &data)])
    }

    #[test]
    fn a_tensor_larger_than_its_storage_is_refused_before_allocation() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("w.pt");
        std::fs::write(&path, tensor_checkpoint(4)).expect("write");
        let tensors = crate::weights::file::read_tensors(&path, &candle_core::Device::Cpu)
            .expect("valid hand-built checkpoint");
        let w = tensors["w"].to_vec1::<f32>().expect("f32 vector");
        assert_eq!(w, [1.0, 2.0, 3.0, 4.0]);
        std::fs::write(&path, tensor_checkpoint(1 << 30)).expect("write");
        let err = crate::weights::file::read_tensors(&path, &candle_core::Device::Cpu)
            .expect_err("oversized tensor");
        match err {
            crate::Error::WeightsFile { reason, .. } => {
                assert!(reason.contains("needs 4294967296 bytes"), "{reason}");
            }
            other => panic!("wrong error: {other}"),
        }
    }
}
