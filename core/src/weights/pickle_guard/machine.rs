//! The abstract pickle stack machine: it runs each opcode's stack effect on cost estimates.

use std::collections::HashMap;

use super::opcodes::{le_uint, Arg, Cursor, Effect, Op, LOOKUP, OPS};
use super::{check_global, GuardLimits, Refusal, Usage};

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

/// The budgets one pickle entry is scanned under.
#[derive(Clone, Copy, Debug)]
pub(super) struct Budget {
    /// Node budget.
    pub(super) nodes: u64,
    /// Payload budget.
    pub(super) bytes: u64,
}

/// The abstract pickle machine: stack, MARK positions, memo and running totals.
pub(super) struct Machine<'l> {
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
    pub(super) usage: Usage,
    /// Offset of the opcode being run (for messages).
    offset: usize,
}

impl<'l> Machine<'l> {
    /// A machine with an empty stack.
    pub(super) fn new(limits: &'l GuardLimits, budget: Budget) -> Self {
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
    pub(super) fn run(&mut self, data: &[u8]) -> Result<(), Refusal> {
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
