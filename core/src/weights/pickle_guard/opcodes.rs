//! The pickle opcode table, its argument and stack-effect types, and the argument reader.

use super::Refusal;

/// The inline argument an opcode carries after its byte.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Arg {
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
pub(super) enum Effect {
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
pub(super) struct Op {
    /// The opcode byte.
    pub(super) code: u8,
    /// Python's name for it.
    pub(super) name: &'static str,
    /// Its inline argument.
    pub(super) arg: Arg,
    /// Its stack effect.
    pub(super) effect: Effect,
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
pub(super) const OPS: &[Op] = &[
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
pub(super) const LOOKUP: [u8; 256] = {
    let mut table = [u8::MAX; 256];
    let mut i = 0;
    while i < OPS.len() {
        table[OPS[i].code as usize] = i as u8;
        i += 1;
    }
    table
};

/// A cursor over the pickle bytes that refuses reads past the end.
pub(super) struct Cursor<'a> {
    /// The whole pickle.
    pub(super) data: &'a [u8],
    /// Next byte to read.
    pub(super) pos: usize,
}

impl<'a> Cursor<'a> {
    /// The next `n` bytes.
    pub(super) fn take(&mut self, n: usize) -> Result<&'a [u8], Refusal> {
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
    pub(super) fn arg(&mut self, arg: Arg) -> Result<&'a [u8], Refusal> {
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
pub(super) fn le_uint(bytes: &[u8]) -> u64 {
    bytes
        .iter()
        .rev()
        .fold(0u64, |acc, &b| (acc << 8) | u64::from(b))
}
