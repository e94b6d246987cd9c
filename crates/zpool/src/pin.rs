//! Pins: the objects loads are reading with the class lock dropped.
//!
//! Each class keeps a small table of pinned handle slots *under its lock*,
//! at the head of the class state, so it shares the lock's cache line. A
//! load pins its object under the class lock (`zs_obj_read_begin`), drops
//! the lock while it reads, and takes the lock again to unpin
//! (`zs_obj_read_end`); zswap's load unpins and frees its object in that
//! one hold ([`crate::ZsPool::read_and_free`]). Two loads of one object
//! take two places.
//!
//! # Protocol
//!
//! - Pins are added and removed only under the class lock, so whoever holds
//!   the lock sees exactly the loads in flight: free, write and compaction
//!   check the table and refuse (EBUSY) or skip pinned objects and their
//!   zspages.
//! - The lock orders a finished load's reads of the object's bytes before
//!   its unpin, and the unpin before whatever a later holder does with the
//!   bytes (free the object, reuse the range, move it, give its pages back).
//! - A pinned object is never freed, so its handle slot names it, and its
//!   zspage, for as long as it is pinned.
//! - With every place taken a load waits, lock dropped, for one to come
//!   free: loads in flight end with one lock hold each, so the wait is
//!   bounded by the other loads' closures.
//!
//! Why not atomics beside the lock (an earlier layout): a pin word on a
//! cache line of its own is written by every CPU's load, pin and unpin, and
//! read by every free: with two CPUs loading, that line and the lock's line
//! both move between them on every load. Under the lock the table rides on
//! the lock's line, which a load moves anyway.

/// Pins per class: more than the loads one class normally has in flight at
/// once (one per CPU at most, spread over eight classes). Nine, with the
/// count, take 40 of the 56 bytes after the lock word in the lock's line.
pub(crate) const PIN_SLOTS: usize = if cfg!(loom) { 2 } else { 9 };
// The table (40 bytes), the lock word and the class's two per-free counters
// fit one 64-byte line (see `ClassState`).
const _: () = assert!(core::mem::size_of::<PinTable>() <= 40);

/// One class's pins (under the class lock).
///
/// # Invariants
///
/// `slots[..n]` are the handle slots of the loads in flight, one per load
/// (repeats for loads of one object); `n <= PIN_SLOTS`.
pub(crate) struct PinTable {
    n: u32,
    slots: [u32; PIN_SLOTS],
}

impl PinTable {
    pub(crate) const fn new() -> PinTable {
        PinTable {
            n: 0,
            slots: [0; PIN_SLOTS],
        }
    }

    fn used(&self) -> &[u32] {
        self.slots.get(..self.n as usize).unwrap_or(&[])
    }

    /// Pins the object in handle slot `slot`; `false` if every place is
    /// taken (the caller drops the lock and tries again).
    #[inline]
    pub(crate) fn pin(&mut self, slot: u32) -> bool {
        match self.slots.get_mut(self.n as usize) {
            Some(s) => {
                *s = slot;
                self.n += 1;
                true
            }
            None => false,
        }
    }

    /// Ends one load of the object in `slot` begun with [`pin`](Self::pin).
    #[inline]
    pub(crate) fn unpin(&mut self, slot: u32) {
        let n = self.n as usize;
        if let Some(i) = self.used().iter().position(|&s| s == slot) {
            self.slots.swap(i, n - 1);
            self.n -= 1;
        }
    }

    /// [`unpin`](Self::unpin), also telling whether that was the object's
    /// last pin (no other load of it is in flight): one pass over the table.
    #[inline]
    pub(crate) fn unpin_last(&mut self, slot: u32) -> bool {
        let n = self.n as usize;
        let (mut found, mut others) = (None, false);
        for (i, &s) in self.used().iter().enumerate() {
            if s == slot {
                if found.is_none() {
                    found = Some(i);
                } else {
                    others = true;
                }
            }
        }
        if let Some(i) = found {
            self.slots.swap(i, n - 1);
            self.n -= 1;
        }
        !others
    }

    /// Whether a load has the object in `slot` pinned.
    #[inline]
    pub(crate) fn is_pinned(&self, slot: u32) -> bool {
        self.used().contains(&slot)
    }

    /// The handle slots pinned now (with repeats), for compaction to find
    /// the zspages it must leave alone.
    pub(crate) fn pinned(&self) -> impl Iterator<Item = u32> + '_ {
        self.used().iter().copied()
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn pins_count_each_load_and_fill_up() {
        let mut t = PinTable::new();
        assert!(!t.is_pinned(7));
        assert!(t.pin(7));
        assert!(t.pin(7));
        assert!(t.pin(3));
        t.unpin(7);
        assert!(t.is_pinned(7), "a second load of slot 7 is still in flight");
        t.unpin(7);
        assert!(!t.is_pinned(7));
        assert_eq!(t.pinned().collect::<alloc::vec::Vec<_>>(), [3]);
        t.unpin(3);
        assert!(t.pin(5));
        assert!(t.pin(5));
        assert!(!t.unpin_last(5), "another load of slot 5 is in flight");
        assert!(t.is_pinned(5));
        assert!(t.unpin_last(5));
        assert!(!t.is_pinned(5));
        assert!(t.unpin_last(5), "nothing pinned: no other load either");
        for i in 0..PIN_SLOTS as u32 {
            assert!(t.pin(i));
        }
        assert!(!t.pin(99), "a full table refuses");
        t.unpin(0);
        assert!(t.pin(99));
    }
}
