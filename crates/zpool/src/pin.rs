//! Pins: the objects loads are reading with the class lock dropped.
//!
//! Each class has a small table of pin words next to its lock (not under
//! it). A word is `handle slot << COUNT_BITS | count`: `count` loads of the
//! object in that handle slot are in flight. A load takes a word (one
//! already naming its slot, or a free one) under the class lock, and gives
//! it back with one atomic decrement and no lock at all (`zs_obj_read_end`).
//!
//! # Protocol
//!
//! - Counts go up only under the class lock, and down anywhere (the unpin).
//!   So, under the lock, a word seen with count 0 stays 0 for the rest of the
//!   hold, and an object found unpinned stays unpinned until the lock is
//!   dropped: free, write and compaction check the table under the lock and
//!   refuse (EBUSY) or skip pinned objects and their zspages.
//! - The unpin's decrement is a release and every check's load an acquire:
//!   a check that sees the count at 0 also sees every read of the object's
//!   bytes the load made, so what the lock holder does next (free the object,
//!   reuse its bytes, move it, give its pages back) comes after them.
//! - A pinned object is never freed, so its handle slot names it, and its
//!   zspage, for as long as the word counts it.
//! - With every word busy a load waits, lock dropped, for one to come free:
//!   loads in flight end without needing the lock, so the wait is bounded by
//!   the other loads' closures.

use kbase::sync::{AtomicU32, Ordering};

/// Pin words per class: more than the loads one class normally has in
/// flight at once (one per CPU at most, spread over eight classes).
pub(crate) const PIN_WORDS: usize = if cfg!(loom) { 2 } else { 16 };
const COUNT_BITS: u32 = 4;
const COUNT_MASK: u32 = (1 << COUNT_BITS) - 1;
const _: () = assert!(crate::handle::MAX_SLOTS <= (u32::MAX >> COUNT_BITS) as usize + 1);

/// One class's pin words.
///
/// # Invariants
///
/// Words at `hw` and above have count 0; `hw` is written and read only
/// under the class lock (an atomic only so that the table needs no `&mut`),
/// so checks scan just the words loads used lately: one, on a quiet class.
pub(crate) struct PinTable {
    words: [AtomicU32; PIN_WORDS],
    hw: AtomicU32,
}

fn slot_of(w: u32) -> u32 {
    w >> COUNT_BITS
}

impl PinTable {
    pub(crate) fn new() -> PinTable {
        PinTable {
            words: core::array::from_fn(|_| AtomicU32::new(0)),
            hw: AtomicU32::new(0),
        }
    }

    /// The words in use, after dropping idle ones from the top; call with
    /// the class lock held.
    fn used(&self) -> &[AtomicU32] {
        let mut hw = (self.hw.load(Ordering::Relaxed) as usize).min(PIN_WORDS);
        let top = hw;
        while hw > 0
            && self
                .words
                .get(hw - 1)
                // Acquire: a word found idle here is not looked at again,
                // and its last unpin must come before what the caller does.
                .is_some_and(|w| w.load(Ordering::Acquire) & COUNT_MASK == 0)
        {
            hw -= 1;
        }
        if hw != top {
            self.hw.store(hw as u32, Ordering::Relaxed);
        }
        self.words.get(..hw).unwrap_or(&[])
    }

    /// Pins the object in handle slot `slot`; call with the class lock held.
    /// Returns the word to give to [`unpin`](Self::unpin), or `None` if
    /// every word is busy (the caller drops the lock and tries again).
    pub(crate) fn pin(&self, slot: u32) -> Option<usize> {
        let mut free = None;
        let used = self.used();
        for (i, w) in used.iter().enumerate() {
            let v = w.load(Ordering::Relaxed);
            let n = v & COUNT_MASK;
            if n == 0 {
                free = free.or(Some(i));
            } else if slot_of(v) == slot && n < COUNT_MASK {
                // Only unpins race with this add, and they cannot take the
                // count below what this load adds to.
                w.fetch_add(1, Ordering::Relaxed);
                return Some(i);
            }
        }
        let i = match free {
            Some(i) => i,
            None if used.len() < PIN_WORDS => {
                self.hw.store(used.len() as u32 + 1, Ordering::Relaxed);
                used.len()
            }
            None => return None,
        };
        // Count 0 under the lock stays 0 until this store: nobody else
        // writes the word meanwhile.
        self.words
            .get(i)?
            .store((slot << COUNT_BITS) | 1, Ordering::Relaxed);
        Some(i)
    }

    /// Ends a load begun with [`pin`](Self::pin); needs no lock.
    pub(crate) fn unpin(&self, word: usize) {
        if let Some(w) = self.words.get(word) {
            w.fetch_sub(1, Ordering::Release);
        }
    }

    /// Whether a load has the object in `slot` pinned; call with the class
    /// lock held.
    pub(crate) fn is_pinned(&self, slot: u32) -> bool {
        self.used().iter().any(|w| {
            let v = w.load(Ordering::Acquire);
            v & COUNT_MASK != 0 && slot_of(v) == slot
        })
    }

    /// The handle slots pinned now (with repeats), for compaction to find
    /// the zspages it must leave alone; call with the class lock held.
    pub(crate) fn pinned(&self) -> impl Iterator<Item = u32> + '_ {
        self.used().iter().filter_map(|w| {
            let v = w.load(Ordering::Acquire);
            (v & COUNT_MASK != 0).then_some(slot_of(v))
        })
    }
}
