//! The entry tree: one small radix tree per 64 MiB of swap, locked per
//! swap cluster.
//!
//! Linux keeps `zswap_trees[type]`, an array of xarrays, one per
//! [`TREE_PAGES`] (16384) slots of a swap device, so faults on unrelated
//! parts of swap do not share a lock. Here each tree is a two-level radix
//! tree: a top array of [`TREE_GROUPS`] lock groups, allocated when the
//! device is switched on, each holding the pointers to its
//! [`LEAVES_PER_GROUP`] leaves under its own spinlock, and leaves of
//! [`LEAF_SLOTS`] entry ids, allocated on the first insert into their range
//! and freed when they become empty.
//!
//! A lock group covers [`GROUP_SLOTS`] slots, one swap cluster
//! (`swapcache::SWAPFILE_CLUSTER`): the swap allocator hands out slots by
//! cluster, each CPU from a cluster of its own, so the faults of CPUs that
//! swapped out into different clusters take different locks. Each group
//! (lock, leaf pointers, count) fills one cache line of its own, so they do
//! not write a common line either: 64 bytes per 2 MiB of swap (32 KiB per
//! GiB, against 16 KiB for one lock and a 1 KiB top array per tree).
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
//! Every operation on a slot takes its group's lock alone; no two group
//! locks are ever held together. What looks at the whole tree
//! ([`ZswapTree::len`], [`TreeRef::erase_any`]) takes the groups' locks one
//! after the other: it is exact when nothing stores into the tree meanwhile
//! (swapoff holds the tree table's write side, which every store, load and
//! invalidate holds a read side of; teardown owns zswap).
//!
//! # Invariants
//!
//! Every id held by a tree is that of an entry from [`EntryPtr::new_in`] in
//! the zswap's entry cache, owned by the tree; the entry stays live at least
//! as long as its id is in the tree, and is only removed under the lock of
//! its slot's group, by a caller that then owns it ([`OwnedEntry`]).
//! `Leaf::nr` counts the occupied slots of its leaf, and `GroupInner::nr`
//! those of the group's leaves; a leaf is only reached, changed, installed
//! or removed under its group's lock.

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
const GROUP_SHIFT: u32 = 9;
/// Slots per lock group: one swap cluster.
pub const GROUP_SLOTS: usize = 1 << GROUP_SHIFT;
/// Leaves per lock group.
pub const LEAVES_PER_GROUP: usize = GROUP_SLOTS >> LEAF_SHIFT;
/// Lock groups per tree.
pub const TREE_GROUPS: usize = (TREE_PAGES as usize) >> GROUP_SHIFT;

// A group is one swap cluster, a whole number of leaves, and a tree a
// whole number of groups.
const _: () = assert!(GROUP_SLOTS == swapcache::SWAPFILE_CLUSTER);
const _: () = assert!(LEAF_SHIFT <= GROUP_SHIFT && GROUP_SHIFT <= TREE_SHIFT);

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

/// The leaves of one swap cluster's slots.
struct GroupInner {
    leaves: [Option<Box<Leaf>>; LEAVES_PER_GROUP],
    /// Occupied slots of the group's leaves.
    nr: u32,
}

impl GroupInner {
    /// The entry id at `offset` (of this group), if any.
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

/// One lock group: a cache line of its own (the lock, the leaf pointers
/// and the count), so CPUs working in different swap clusters write no
/// common line.
#[repr(align(64))]
struct Group {
    inner: Mutex<GroupInner>,
}

// One line per group (the lock checker's class pointer included).
#[cfg(not(loom))]
const _: () = assert!(core::mem::size_of::<Group>() == 64);

/// One tree: the entries of [`TREE_PAGES`] consecutive swap slots.
pub(crate) struct ZswapTree {
    groups: Box<[Group; TREE_GROUPS]>,
}

/// The group of a swap offset inside its tree.
fn group_of(offset: u64) -> usize {
    ((offset & (TREE_PAGES - 1)) >> GROUP_SHIFT) as usize
}

/// The position of a swap offset inside its group: leaf and slot.
#[inline]
fn split(offset: u64) -> (usize, usize) {
    let local = (offset & (GROUP_SLOTS as u64 - 1)) as usize;
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
    /// An empty tree (allocates the 2 KiB top array of lock groups).
    pub(crate) fn try_new(gfp: Gfp) -> Result<ZswapTree> {
        let groups = try_box(
            core::array::from_fn(|_| Group {
                inner: Mutex::new_class(
                    GroupInner {
                        leaves: core::array::from_fn(|_| None),
                        nr: 0,
                    },
                    &lock_class::ZSWAP_TREE,
                ),
            }),
            gfp,
        )?;
        Ok(ZswapTree { groups })
    }

    /// The lock group of `offset`.
    #[inline]
    fn group(&self, offset: u64) -> &Mutex<GroupInner> {
        // `group_of` is below TREE_GROUPS: the index is always in bounds.
        &self.groups[group_of(offset)].inner
    }

    /// Number of entries (the groups' counts, one lock at a time: exact
    /// while nothing stores into the tree, see the module docs).
    pub(crate) fn len(&self) -> usize {
        self.groups.iter().map(|g| g.inner.lock().nr as usize).sum()
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
    #[inline]
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
        self.tree.group(offset).lock().get(offset)
    }

    /// Would a store at `offset` need a new leaf?
    #[cfg(all(test, not(loom)))]
    pub(crate) fn needs_leaf(&self, offset: u64) -> bool {
        let (l, _) = split(offset);
        let group = self.tree.group(offset).lock();
        !matches!(group.leaves.get(l), Some(Some(_)))
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
        let mut group = self.tree.group(offset).lock();
        let group = &mut *group;
        let Some(top) = group.leaves.get_mut(l) else {
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
            group.nr += 1;
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
    #[inline]
    fn erase_inner(
        &self,
        offset: u64,
        expect: Option<u64>,
        freed_leaf: &mut Option<Box<Leaf>>,
    ) -> Option<OwnedEntry> {
        let (l, s) = split(offset);
        let mut group = self.tree.group(offset).lock();
        let group = &mut *group;
        let top = group.leaves.get_mut(l)?;
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
        group.nr -= 1;
        if leaf.nr == 0 {
            *freed_leaf = top.take();
        }
        // SAFETY: `cur` was in the tree and we removed it under the lock.
        Some(unsafe { OwnedEntry::from_erased(cur) })
    }

    /// Erases whatever entry is at `offset` (invalidate, load).
    #[inline]
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

    /// Erases some entry, if any (teardown). Takes the groups' locks one
    /// after the other, skipping empty groups without looking at their
    /// leaves.
    pub(crate) fn erase_any(&self) -> Option<OwnedEntry> {
        for g in self.tree.groups.iter() {
            let mut freed_leaf = None;
            let r = {
                let mut group = g.inner.lock();
                let group = &mut *group;
                if group.nr == 0 {
                    continue;
                }
                let mut found = None;
                for top in group.leaves.iter_mut() {
                    let Some(leaf) = top.as_mut() else { continue };
                    if let Some(slot) = leaf.slots.iter_mut().find(|s| s.is_some()) {
                        found = slot.take();
                        leaf.nr -= 1;
                        group.nr -= 1;
                        if leaf.nr == 0 {
                            freed_leaf = top.take();
                        }
                        break;
                    }
                }
                // SAFETY: `found` was read from the tree under its group's
                // lock, still held.
                let found = found.and_then(|id| unsafe { self.resolve(id) });
                // SAFETY: `found` was in the tree and was removed under the
                // lock.
                found.map(|p| unsafe { OwnedEntry::from_erased(p) })
            };
            drop(freed_leaf);
            if r.is_some() {
                return r;
            }
        }
        None
    }

    /// Runs `f` on the entry at `offset` with the tree lock held (the entry
    /// cannot be freed meanwhile). For diagnostics and test hooks.
    pub(crate) fn with_entry<R>(&self, offset: u64, f: impl FnOnce(&ZswapEntry) -> R) -> Option<R> {
        let group = self.tree.group(offset).lock();
        let id = group.get(offset)?;
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
    use core::ptr;
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
        unsafe { e.free_memory(test_cache()) };
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

    fn spare() -> Option<Box<Leaf>> {
        Some(Leaf::try_new(Gfp::KERNEL).unwrap())
    }

    /// Offsets on both sides of every kind of boundary (leaf, group, tree)
    /// land in their own slots; the count covers every group, and erasing
    /// frees each group's leaves independently.
    #[test]
    fn slots_across_leaf_group_and_tree_boundaries() {
        let tree = ZswapTree::try_new(Gfp::KERNEL).unwrap();
        let t = tree.with_cache(test_cache());
        let g = GROUP_SLOTS as u64;
        let l = LEAF_SLOTS as u64;
        let offs = [
            0,
            l - 1,
            l,
            g - 1,
            g,
            g + l,
            3 * g - 1,
            TREE_PAGES - g,
            TREE_PAGES - 1,
        ];
        for &o in &offs {
            let mut sp = spare();
            let mut e = boxed(o);
            loop {
                match t.store(o, e, &mut sp, &mut nothing) {
                    Ok(old) => {
                        assert!(old.is_none());
                        break;
                    }
                    Err(err) => {
                        assert_eq!(err.error, Error::EAGAIN);
                        e = err.entry;
                        sp = spare();
                    }
                }
            }
        }
        assert_eq!(tree.len(), offs.len());
        for &o in &offs {
            assert!(t.load(o).is_some());
            assert_eq!(t.with_entry(o, |e| e.swpentry().offset()), Some(o));
            // A neighbouring slot holds only what was stored there.
            assert_eq!(t.load(o ^ 1).is_some(), offs.contains(&(o ^ 1)));
        }
        // Erase the group-boundary pair: group 0 keeps its first leaves,
        // group 1 its second leaf.
        free(t.erase(g - 1).unwrap());
        free(t.erase(g).unwrap());
        assert!(t.needs_leaf(g - 1) && t.needs_leaf(g));
        assert!(!t.needs_leaf(0) && !t.needs_leaf(g + l));
        assert_eq!(tree.len(), offs.len() - 2);
        // Teardown drains every group.
        let mut n = 0;
        while let Some(e) = t.erase_any() {
            free(e);
            n += 1;
        }
        assert_eq!(n, offs.len() - 2);
        assert_eq!(tree.len(), 0);
        for &o in &offs {
            assert!(t.needs_leaf(o), "every leaf freed");
        }
    }

    /// Slots of one swap cluster share a lock; slots of different clusters
    /// take locks on different cache lines.
    #[test]
    fn one_lock_line_per_swap_cluster() {
        let tree = ZswapTree::try_new(Gfp::KERNEL).unwrap();
        let at = |o: u64| ptr::from_ref(tree.group(o)).addr();
        let c = GROUP_SLOTS as u64;
        assert_eq!(at(0), at(c - 1));
        assert_eq!(at(5 * c), at(5 * c + 300));
        let lines: alloc::vec::Vec<usize> =
            (0..TREE_GROUPS as u64).map(|k| at(k * c) / 64).collect();
        let mut dedup = lines.clone();
        dedup.sort_unstable();
        dedup.dedup();
        assert_eq!(dedup.len(), TREE_GROUPS, "one cache line per group");
        assert_eq!(core::mem::align_of::<Group>(), 64);
        assert_eq!(TREE_GROUPS * GROUP_SLOTS, TREE_PAGES as usize);
    }
}
