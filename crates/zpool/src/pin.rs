//! Pins: the objects loads are reading with the class lock dropped.
//!
//! Each class has a small table of pin words next to its lock (not under
//! it). A word is `handle slot << 1 | busy`: while `busy`, one load of the
//! object in that handle slot is in flight. A load takes a free word under
//! the class lock, and gives it back with one release store of 0: no lock,
//! no read-modify-write (`zs_obj_read_end`). Two loads of one object take
//! two words.
//!
//! # Protocol
//!
//! - Words become busy only under the class lock, and idle anywhere (the
//!   unpin, by the load that made the word busy, and only by it). So, under
//!   the lock, an idle word stays idle for the rest of the hold, and an
//!   object found unpinned stays unpinned until the lock is dropped: free,
//!   write and compaction check the table under the lock and refuse (EBUSY)
//!   or skip pinned objects and their zspages.
//! - The unpin's store is a release and every check's load an acquire: a
//!   check that sees a word idle also sees every read of the object's bytes
//!   the load made, so what the lock holder does next (free the object,
//!   reuse its bytes, move it, give its pages back) comes after them.
//! - A pinned object is never freed, so its handle slot names it, and its
//!   zspage, for as long as the word is busy.
//! - With every word busy a load waits, lock dropped, for one to come free:
//!   loads in flight end without needing the lock, so the wait is bounded by
//!   the other loads' closures.

use kbase::sync::{AtomicU32, Ordering};

/// Pin words per class: more than the loads one class normally has in
/// flight at once (one per CPU at most, spread over eight classes).
pub(crate) const PIN_WORDS: usize = if cfg!(loom) { 2 } else { 16 };
const COUNT_BITS: u32 = 1;
const COUNT_MASK: u32 = (1 << COUNT_BITS) - 1;
const _: () = assert!(crate::handle::MAX_SLOTS <= (u32::MAX >> COUNT_BITS) as usize + 1);

/// One class's pin words.
///
/// # Invariants
///
/// Words at `hw` and above have count 0; `hw` is written and read only
/// under the class lock (an atomic only so that the table needs no `&mut`),
/// so checks scan just the words loads used lately: one, on a quiet class.
///
/// A cache line of its own: a load's unpin writes it with no lock held, and
/// the next class's lock must not share the line.
#[repr(align(64))]
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
    #[inline]
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

    /// Pins the object in handle slot `slot` (a free word); call with the
    /// class lock held.
    /// Returns the word to give to [`unpin`](Self::unpin), or `None` if
    /// every word is busy (the caller drops the lock and tries again).
    #[inline]
    pub(crate) fn pin(&self, slot: u32) -> Option<usize> {
        let used = self.used();
        let free = used
            .iter()
            .position(|w| w.load(Ordering::Relaxed) & COUNT_MASK == 0);
        let i = match free {
            Some(i) => i,
            None if used.len() < PIN_WORDS => {
                self.hw.store(used.len() as u32 + 1, Ordering::Relaxed);
                used.len()
            }
            None => return None,
        };
        // An idle word stays idle under the lock until this store: nobody
        // else writes it meanwhile.
        self.words
            .get(i)?
            .store((slot << COUNT_BITS) | 1, Ordering::Relaxed);
        Some(i)
    }

    /// Ends a load begun with [`pin`](Self::pin); needs no lock. Only the
    /// load that took `word` gives it back.
    #[inline]
    pub(crate) fn unpin(&self, word: usize) {
        if let Some(w) = self.words.get(word) {
            w.store(0, Ordering::Release);
        }
    }

    /// Whether a load has the object in `slot` pinned; call with the class
    /// lock held.
    #[inline]
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
