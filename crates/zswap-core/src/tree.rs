//! The entry tree: one small radix tree per 64 MiB of swap.
//!
//! Linux keeps `zswap_trees[type]`, an array of xarrays, one per
//! [`TREE_PAGES`] (16384) slots of a swap device, so faults on unrelated
//! parts of swap do not share a lock. Here each tree is a two-level radix
//! tree under its own spinlock: a top array of [`TOP_SLOTS`] leaf pointers,
//! allocated when the device is switched on, and leaves of [`LEAF_SLOTS`]
//! entry ids, allocated on the first insert into their range and freed
//! when they become empty.
//!
//! A slot holds the entry's 32-bit id from the entry cache
//! ([`EntryId`]), not its address: a leaf is 516 bytes, 4 bytes a slot. The
//! tree is used through a [`TreeRef`], the tree with the cache that turns
//! ids into entries (two loads, no lock).
//!
//! Inserts are fallible without allocating under the lock: a missing leaf is
//! allocated with the lock dropped and installed on the next attempt
//! ([`TreeRef::store`] reports [`Error::EAGAIN`] with the entry handed back).
//!
//! # Invariants
//!
//! Every id held by a tree is that of an entry from [`EntryPtr::new_in`] in
//! the zswap's entry cache, owned by the tree; the entry stays live at least
//! as long as its id is in the tree, and is only removed under the tree
//! lock, by a caller that then owns it ([`OwnedEntry`]). `Leaf::nr` counts
//! the occupied slots of its leaf, and `TreeInner::nr` those of the whole
//! tree.

use alloc::boxed::Box;

use kbase::sync::{Mutex, lock_class};
use kbase::{Error, Gfp, Result, try_box};

use crate::cache::{EntryCache, EntryId};
use crate::entry::{EntryPtr, OwnedEntry, ZswapEntry};

/// log2 of the slots per tree (Linux's `ZSWAP_ADDRESS_SPACE_SHIFT`).
pub const TREE_SHIFT: u32 = 14;
/// Slots per tree: 64 MiB of 4 KiB pages.
pub const TREE_PAGES: u64 = 1 << TREE_SHIFT;
const LEAF_SHIFT: u32 = 7;
/// Entry ids per leaf.
pub const LEAF_SLOTS: usize = 1 << LEAF_SHIFT;
/// Leaves per tree.
pub const TOP_SLOTS: usize = (TREE_PAGES as usize) >> LEAF_SHIFT;

/// A leaf: 128 entry ids and a count (516 bytes).
pub(crate) struct Leaf {
    slots: [Option<EntryId>; LEAF_SLOTS],
    nr: u32,
}

impl Leaf {
    /// Allocates an empty leaf.
    pub(crate) fn try_new(gfp: Gfp) -> Result<Box<Leaf>> {
        try_box(
            Leaf {
                slots: [None; LEAF_SLOTS],
                nr: 0,
            },
            gfp,
        )
    }
}

struct TreeInner {
    leaves: Box<[Option<Box<Leaf>>; TOP_SLOTS]>,
    nr: usize,
}

impl TreeInner {
    /// The entry id at `offset`, if any.
    fn get(&self, offset: u64) -> Option<EntryId> {
        let (l, s) = split(offset);
        self.leaves
            .get(l)?
            .as_ref()?
            .slots
            .get(s)
            .copied()
            .flatten()
    }
}

/// One tree: the entries of [`TREE_PAGES`] consecutive swap slots.
pub(crate) struct ZswapTree {
    inner: Mutex<TreeInner>,
}

/// The position of a swap offset inside its tree.
fn split(offset: u64) -> (usize, usize) {
    let local = (offset & (TREE_PAGES - 1)) as usize;
    (local >> LEAF_SHIFT, local & (LEAF_SLOTS - 1))
}

/// What a failed [`TreeRef::store`] hands back.
pub(crate) struct StoreError {
    /// `EAGAIN`: a leaf is needed; allocate one and retry.
    pub(crate) error: Error,
    /// The entry, still owned by the caller.
    pub(crate) entry: EntryPtr,
}

impl ZswapTree {
    /// An empty tree (allocates the 1 KiB top array).
    pub(crate) fn try_new(gfp: Gfp) -> Result<ZswapTree> {
        let leaves = try_box(core::array::from_fn(|_| None), gfp)?;
        Ok(ZswapTree {
            inner: Mutex::new_class(TreeInner { leaves, nr: 0 }, &lock_class::ZSWAP_TREE),
        })
    }

    /// Number of entries.
    pub(crate) fn len(&self) -> usize {
        self.inner.lock().nr
    }

    /// The tree with the entry cache its ids are from.
    pub(crate) fn with_cache<'a>(&'a self, cache: &'a EntryCache) -> TreeRef<'a> {
        TreeRef { tree: self, cache }
    }
}

/// A tree and the entry cache of its entries: the tree's operations.
#[derive(Clone, Copy)]
pub(crate) struct TreeRef<'a> {
    tree: &'a ZswapTree,
    cache: &'a EntryCache,
}

impl<'a> TreeRef<'a> {
    /// The entry with id `id`, which is in the tree.
    ///
    /// # Safety
    ///
    /// `id` was read from the tree under its lock, which is still held (the
    /// entry cannot leave the tree and be freed meanwhile).
    unsafe fn resolve(&self, id: EntryId) -> Option<EntryPtr> {
        // SAFETY: by the tree invariant and the caller's contract, the id is
        // a live entry's of our cache.
        let ptr = unsafe { self.cache.entry(id) }?;
        Some(EntryPtr { ptr, id })
    }

    /// Number of entries.
    #[cfg(all(test, not(loom)))]
    pub(crate) fn len(&self) -> usize {
        self.tree.len()
    }

    /// The id of the entry at `offset`, if any. (Identity only.)
    pub(crate) fn load(&self, offset: u64) -> Option<EntryId> {
        self.tree.inner.lock().get(offset)
    }

    /// Would a store at `offset` need a new leaf?
    #[cfg(all(test, not(loom)))]
    pub(crate) fn needs_leaf(&self, offset: u64) -> bool {
        let (l, _) = split(offset);
        let inner = self.tree.inner.lock();
        !matches!(inner.leaves.get(l), Some(Some(_)))
    }

    /// Publishes `entry` at `offset`; returns the entry it replaced, now
    /// owned by the caller.
    ///
    /// If the leaf is missing, `spare` is installed (and taken); without a
    /// spare the entry is handed back with `EAGAIN`. Once the entry is
    /// published, `publish` runs on it with the tree lock still held (store
    /// adds it to the LRU there: one tree walk, order tree -> LRU).
    pub(crate) fn store(
        &self,
        offset: u64,
        entry: EntryPtr,
        spare: &mut Option<Box<Leaf>>,
        publish: &mut dyn FnMut(&ZswapEntry, EntryId),
    ) -> core::result::Result<Option<OwnedEntry>, StoreError> {
        let (l, s) = split(offset);
        let mut inner = self.tree.inner.lock();
        let inner = &mut *inner;
        let Some(top) = inner.leaves.get_mut(l) else {
            return Err(StoreError {
                error: Error::EINVAL,
                entry,
            });
        };
        if top.is_none() {
            match spare.take() {
                Some(leaf) => *top = Some(leaf),
                None => {
                    return Err(StoreError {
                        error: Error::EAGAIN,
                        entry,
                    });
                }
            }
        }
        let Some(leaf) = top.as_mut() else {
            return Err(StoreError {
                error: Error::EAGAIN,
                entry,
            });
        };
        let Some(slot) = leaf.slots.get_mut(s) else {
            return Err(StoreError {
                error: Error::EINVAL,
                entry,
            });
        };
        // The replaced entry, resolved before its slot changes (the lock is
        // held throughout).
        let old = match *slot {
            // SAFETY: read from the tree under the lock we hold.
            Some(id) => match unsafe { self.resolve(id) } {
                Some(p) => Some(p),
                None => {
                    return Err(StoreError {
                        error: Error::EINVAL,
                        entry,
                    });
                }
            },
            None => None,
        };
        *slot = Some(entry.id);
        if old.is_none() {
            leaf.nr += 1;
            inner.nr += 1;
        }
        // SAFETY: `entry` is live (tree invariant, now that it is in the
        // tree) and cannot leave the tree while we hold the lock.
        publish(unsafe { entry.ptr.as_ref() }, entry.id);
        // SAFETY: `old` was in the tree (tree invariant) and we removed it
        // under the tree lock: we are its only owner now.
        Ok(old.map(|p| unsafe { OwnedEntry::from_erased(p) }))
    }

    /// Erases the entry at `offset` if there is one and, when `expect` is
    /// given, if that entry's identity (`ZswapEntry::identity`) is `expect`.
    /// Empty leaves are handed back in `freed_leaf` so the caller frees them
    /// after the lock is dropped.
    fn erase_inner(
        &self,
        offset: u64,
        expect: Option<u64>,
        freed_leaf: &mut Option<Box<Leaf>>,
    ) -> Option<OwnedEntry> {
        let (l, s) = split(offset);
        let mut inner = self.tree.inner.lock();
        let inner = &mut *inner;
        let top = inner.leaves.get_mut(l)?;
        let leaf = top.as_mut()?;
        let slot = leaf.slots.get_mut(s)?;
        // SAFETY: read from the tree under the lock we hold.
        let cur = unsafe { self.resolve((*slot)?) }?;
        // SAFETY: `cur` is in the tree, hence live (tree invariant), and
        // cannot leave it while we hold the lock.
        if expect.is_some_and(|h| h != unsafe { cur.ptr.as_ref() }.identity()) {
            return None;
        }
        *slot = None;
        leaf.nr -= 1;
        inner.nr -= 1;
        if leaf.nr == 0 {
            *freed_leaf = top.take();
        }
        // SAFETY: `cur` was in the tree and we removed it under the lock.
        Some(unsafe { OwnedEntry::from_erased(cur) })
    }

    /// Erases whatever entry is at `offset` (invalidate, load).
    pub(crate) fn erase(&self, offset: u64) -> Option<OwnedEntry> {
        let mut leaf = None;
        let r = self.erase_inner(offset, None, &mut leaf);
        drop(leaf);
        r
    }

    /// Erases the entry at `offset` only if it is the entry whose identity
    /// (pool id and handle, `ZswapEntry::identity`) is `handle`
    /// (writeback's re-verification, Linux's `xa_cmpxchg`).
    pub(crate) fn erase_if(&self, offset: u64, handle: u64) -> Option<OwnedEntry> {
        let mut leaf = None;
        let r = self.erase_inner(offset, Some(handle), &mut leaf);
        drop(leaf);
        r
    }

    /// Erases some entry, if any (teardown).
    pub(crate) fn erase_any(&self) -> Option<OwnedEntry> {
        let mut freed_leaf = None;
        let r = {
            let mut inner = self.tree.inner.lock();
            let inner = &mut *inner;
            let mut found = None;
            for top in inner.leaves.iter_mut() {
                let Some(leaf) = top.as_mut() else { continue };
                if let Some(slot) = leaf.slots.iter_mut().find(|s| s.is_some()) {
                    found = slot.take();
                    leaf.nr -= 1;
                    inner.nr -= 1;
                    if leaf.nr == 0 {
                        freed_leaf = top.take();
                    }
                    break;
                }
            }
            // SAFETY: `found` was read from the tree under the lock, still
            // held.
            let found = found.and_then(|id| unsafe { self.resolve(id) });
            // SAFETY: `found` was in the tree and was removed under the lock.
            found.map(|p| unsafe { OwnedEntry::from_erased(p) })
        };
        drop(freed_leaf);
        r
    }

    /// Runs `f` on the entry at `offset` with the tree lock held (the entry
    /// cannot be freed meanwhile). For diagnostics and test hooks.
    pub(crate) fn with_entry<R>(&self, offset: u64, f: impl FnOnce(&ZswapEntry) -> R) -> Option<R> {
        let inner = self.tree.inner.lock();
        let id = inner.get(offset)?;
        // SAFETY: read from the tree under the lock we hold.
        let p = unsafe { self.resolve(id) }?;
        // SAFETY: by the tree invariant `p` is live while it is in the tree,
        // and it cannot leave the tree while we hold the lock.
        Some(f(unsafe { p.ptr.as_ref() }))
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use crate::cache::test_cache;
    use swapcache::SwpEntry;

    fn boxed(off: u64) -> EntryPtr {
        boxed_with(off, 1000 + off)
    }

    fn boxed_with(off: u64, handle: u64) -> EntryPtr {
        let slot = test_cache().alloc(0, 0, Gfp::KERNEL).unwrap();
        let mut e = ZswapEntry::new(SwpEntry::new(0, off).unwrap(), 0).unwrap();
        e.set_object(zpool::Handle::from_raw(handle), 100, 0)
            .unwrap();
        EntryPtr::new_in(slot, e)
    }

    fn free(e: OwnedEntry) {
        // SAFETY: never linked on an LRU in these tests; from test_cache().
        drop(unsafe { e.free_memory(test_cache()) });
    }

    fn nothing(_: &ZswapEntry, _: EntryId) {}

    #[test]
    fn store_needs_leaf_then_replaces_and_erases() {
        let tree = ZswapTree::try_new(Gfp::KERNEL).unwrap();
        let t = tree.with_cache(test_cache());
        let a = boxed(5);
        let mut spare = None;
        let err = t.store(5, a, &mut spare, &mut nothing).err().unwrap();
        assert_eq!(err.error, Error::EAGAIN);
        assert!(t.needs_leaf(5));
        spare = Some(Leaf::try_new(Gfp::KERNEL).unwrap());
        assert!(
            t.store(5, err.entry, &mut spare, &mut nothing)
                .ok()
                .unwrap()
                .is_none()
        );
        assert!(spare.is_none());
        assert_eq!(t.len(), 1);
        let b = boxed_with(5, 2005);
        let old = t
            .store(5, b, &mut spare, &mut nothing)
            .ok()
            .unwrap()
            .unwrap();
        assert_eq!(old.addr(), a.addr());
        free(old);
        assert_eq!(t.len(), 1);
        // identity mismatch: nothing erased
        assert!(t.erase_if(5, 1005).is_none());
        let e = t.erase_if(5, 2005).unwrap();
        free(e);
        assert_eq!(t.len(), 0);
        assert!(t.needs_leaf(5), "empty leaf freed");
        assert!(t.erase(5).is_none());
        assert!(t.load(TREE_PAGES + 5).is_none());
    }
}
