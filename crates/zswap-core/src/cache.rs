//! `zswap_entry_cache`: entries from slabs carved out of pages.
//!
//! Linux allocates each `struct zswap_entry` from a kmem_cache of its own,
//! so an entry costs its size, not the bucket of a general allocator (a
//! 40-byte entry takes a 48-byte chunk of glibc's malloc). [`EntryCache`] is the
//! same for this crate: slabs are whole pages from the platform's
//! [`PageAllocator`], each a small header followed by
//! [`OBJS_PER_SLAB`] entry slots; free slots of a slab form a list threaded
//! through the slots themselves. On 64-bit targets a slab holds 101 entries
//! of 40 bytes: 40.6 bytes of memory per entry, everything included.
//!
//! # Per-CPU, per-node slabs
//!
//! Each CPU has its own list of slabs with free slots per NUMA node, behind
//! its own spinlock, so stores on different CPUs do not share a lock or a
//! cache line. A slab belongs to the (CPU, node) that allocated it; an entry
//! freed on another CPU goes back to its slab under the owner's lock (the
//! slab header records the owner). The node is the entry's: store takes the
//! entry from a slab of its page's node (Linux:
//! `zswap_entry_cache_alloc(gfp, page_to_nid(page))`), and the entry's LRU
//! list is that of its slab's node ([`EntryCache::nid_of`], Linux's
//! `entry_to_nid()`), so the entry need not record it. A slab whose last entry goes is given back to
//! the page allocator at once, so the cache holds only what live entries
//! need (at most one partly used slab per CPU beyond them, plus what churn
//! leaves partly used).
//!
//! # Locking and allocation
//!
//! The CPU lock is a leaf: nothing else is taken under it, and no page is
//! allocated or freed under it. [`EntryCache::alloc`] drops it to allocate
//! a page (with the caller's GFP) and takes it again to install the slab.
//!
//! # Invariants
//!
//! - Every slab is one page from `alloc`, page-aligned; its header is
//!   written before the slab is reachable and `cpu` never changes.
//! - A slot is either free (on its slab's free list, its first word the next
//!   free slot) or handed out (exactly one owner, which gives it back with
//!   [`EntryCache::free`]); `inuse` counts the handed-out slots.
//! - A slab is on its CPU's partial list exactly when it has a free slot;
//!   the list and the free lists are only touched under that CPU's lock.
//!   Full slabs are on no list: they are reached through their entries.
//! - No slab is empty once a call returns: the last free gives its page
//!   back.

use alloc::vec::Vec;
use core::mem::{align_of, size_of};
use core::ptr::NonNull;

use kbase::sync::{Mutex, lock_class};
use kbase::{Error, Gfp, PAGE_SIZE, PageAllocator, PageFrame, Result};

use crate::entry::ZswapEntry;

/// A slab's header, at the start of its page.
#[repr(C)]
struct SlabHeader {
    prev: Option<NonNull<SlabHeader>>,
    next: Option<NonNull<SlabHeader>>,
    /// First free slot.
    free: Option<NonNull<FreeSlot>>,
    inuse: u32,
    /// The (CPU, node) whose lists the slab is on (index into
    /// `EntryCache::cpus`: `cpu * nr_nodes + nid`).
    cpu: u32,
    /// The NUMA node of every entry in the slab.
    nid: u16,
    on_partial: bool,
}

/// A free slot: its first word links to the next free slot of its slab.
#[repr(C)]
struct FreeSlot {
    next: Option<NonNull<FreeSlot>>,
}

/// Slot size (one entry).
const OBJ_SIZE: usize = size_of::<ZswapEntry>();
/// Offset of the first slot in the slab.
const FIRST_SLOT: usize = size_of::<SlabHeader>().next_multiple_of(align_of::<ZswapEntry>());
/// Entries per slab (101 on 64-bit targets).
pub const OBJS_PER_SLAB: usize = (PAGE_SIZE - FIRST_SLOT) / OBJ_SIZE;

const _: () = assert!(OBJ_SIZE >= size_of::<FreeSlot>());
const _: () = assert!(align_of::<ZswapEntry>() >= align_of::<FreeSlot>());
const _: () = assert!(align_of::<SlabHeader>() <= PAGE_SIZE);
const _: () = assert!(OBJS_PER_SLAB >= 1);

/// One (CPU, node)'s slabs.
struct CpuSlabs {
    /// Slabs with at least one free slot (doubly linked through headers).
    partial: Option<NonNull<SlabHeader>>,
    /// All slabs of this (CPU, node) (full and partial).
    nr_slabs: usize,
}

// SAFETY: the pointers lead into slab pages owned by the cache; they are
// only followed under the lock that owns this value (type invariants).
unsafe impl Send for CpuSlabs {}

/// An entry slot handed out by [`EntryCache::alloc`], not yet initialised.
///
/// # Invariants
///
/// Points to a slot of a slab of the cache it came from, handed out to this
/// value only.
pub(crate) struct EntrySlot(NonNull<ZswapEntry>);

impl EntrySlot {
    /// Writes the entry into the slot; the returned pointer owns it.
    pub(crate) fn write(self, e: ZswapEntry) -> NonNull<ZswapEntry> {
        // SAFETY: by the type invariant the slot is valid, aligned memory
        // for one entry, handed out only to us; writing does not read the
        // old (free-list) bytes.
        unsafe { self.0.as_ptr().write(e) };
        self.0
    }
}

/// The entry cache. See the module docs.
pub(crate) struct EntryCache {
    alloc: &'static dyn PageAllocator,
    /// Per CPU, one list per node: index `cpu * nr_nodes + nid`.
    cpus: Vec<Mutex<CpuSlabs>>,
    nr_nodes: usize,
}

// SAFETY: all state is behind the per-CPU Mutexes (CpuSlabs: Send); the
// page allocator is Send + Sync.
unsafe impl Send for EntryCache {}
// SAFETY: as above: shared use goes through the locks.
unsafe impl Sync for EntryCache {}

/// The slab header of the page `p` points into.
fn slab_of(p: NonNull<u8>) -> NonNull<SlabHeader> {
    // Slabs are page-aligned pages: masking the address keeps the pointer
    // inside the same allocation (provenance is kept by `map_addr`).
    p.map_addr(|a| {
        // A page-aligned, non-null slab: the masked address is the page's
        // start, never zero.
        let base = a.get() & !(PAGE_SIZE - 1);
        core::num::NonZeroUsize::new(base).unwrap_or(a)
    })
    .cast()
}

impl EntryCache {
    /// A cache with one slab list per CPU and node (`nr_cpus` and
    /// `nr_nodes` 0 are treated as 1). Holds no page until the first
    /// allocation. `EINVAL` for more than `u16::MAX + 1` nodes or more lists
    /// than a `u32` counts, `ENOMEM`.
    pub(crate) fn new(
        alloc: &'static dyn PageAllocator,
        nr_cpus: usize,
        nr_nodes: usize,
    ) -> Result<EntryCache> {
        let nr_nodes = nr_nodes.max(1);
        if nr_nodes > usize::from(u16::MAX) + 1 {
            return Err(Error::EINVAL);
        }
        let nr = nr_cpus
            .max(1)
            .checked_mul(nr_nodes)
            .filter(|&n| n <= u32::MAX as usize)
            .ok_or(Error::EINVAL)?;
        let mut cpus = Vec::new();
        cpus.try_reserve_exact(nr)?;
        for _ in 0..nr {
            cpus.push(Mutex::new_class(
                CpuSlabs {
                    partial: None,
                    nr_slabs: 0,
                },
                &lock_class::ZSWAP_ENTRY_CACHE,
            ));
        }
        Ok(EntryCache {
            alloc,
            cpus,
            nr_nodes,
        })
    }

    /// The node of the entry at `p`: its slab's.
    ///
    /// # Safety
    ///
    /// `p` must point to a slot handed out by this cache's `alloc` and not
    /// given back since.
    pub(crate) unsafe fn nid_of(&self, p: NonNull<ZswapEntry>) -> usize {
        let slab = slab_of(p.cast());
        // SAFETY: `p` is a handed-out slot of a live slab of ours (caller's
        // contract); `nid` is written before the slab is reachable and never
        // changes.
        usize::from(unsafe { (*slab.as_ptr()).nid })
    }

    /// Pages held by the cache.
    pub(crate) fn pages(&self) -> usize {
        self.cpus.iter().map(|c| c.lock().nr_slabs).sum()
    }

    /// A free slot for an entry of node `nid`, from CPU `cpu`'s slabs of
    /// that node (`cpu` is taken modulo the CPUs); a new slab is allocated
    /// with `gfp` when there is none with room. `EINVAL` for a node past
    /// the cache's, `ENOMEM`.
    pub(crate) fn alloc(&self, cpu: usize, nid: usize, gfp: Gfp) -> Result<EntrySlot> {
        if nid >= self.nr_nodes {
            return Err(Error::EINVAL);
        }
        let nr_cpus = (self.cpus.len() / self.nr_nodes).max(1);
        let idx = (cpu % nr_cpus) * self.nr_nodes + nid;
        let Some(lock) = self.cpus.get(idx) else {
            return Err(Error::EINVAL);
        };
        if let Some(slot) = Self::pop(&mut lock.lock()) {
            return Ok(slot);
        }
        // No room: a new slab, allocated with the lock dropped.
        let page = self.alloc.alloc_page(gfp)?;
        let base = page.into_raw();
        // SAFETY: `base` is a fresh page, exclusively ours and page-aligned
        // (PageFrame invariant); `init_slab` writes only inside it.
        let (slab, first) = unsafe { Self::init_slab(base, idx as u32, nid as u16) };
        let mut cpu = lock.lock();
        cpu.nr_slabs += 1;
        // SAFETY: `slab` is a live slab of this CPU, on no list yet; we hold
        // the CPU's lock.
        unsafe { Self::link(&mut cpu, slab) };
        drop(cpu);
        Ok(EntrySlot(first))
    }

    /// Gives back a slot whose entry has been moved out or dropped (or that
    /// was never written).
    ///
    /// # Safety
    ///
    /// `p` must have been handed out by this cache's `alloc` and not given
    /// back since; nothing may use it afterwards.
    pub(crate) unsafe fn free(&self, p: NonNull<ZswapEntry>) {
        let slab = slab_of(p.cast());
        // SAFETY: `p` is a slot of a live slab of ours (caller's contract);
        // `cpu` is written before the slab is reachable and never changes.
        let idx = unsafe { (*slab.as_ptr()).cpu } as usize;
        let Some(lock) = self.cpus.get(idx) else {
            // Not a slab of ours: leaking is the only safe answer.
            return;
        };
        let mut cpu = lock.lock();
        // SAFETY: we hold the owner's lock, the slab is live, and `p` is one
        // of its handed-out slots (caller's contract).
        let release = unsafe { Self::push(&mut cpu, slab, p.cast()) };
        drop(cpu);
        if let Some(page) = release {
            // SAFETY: the slab was unlinked under the lock and holds no
            // entry: nothing refers to the page any more; it came from
            // `self.alloc`.
            unsafe { self.alloc.free_page(page) };
        }
    }

    /// Gives back a slot that was never written.
    ///
    /// # Safety
    ///
    /// `slot` must come from this cache.
    pub(crate) unsafe fn free_slot(&self, slot: EntrySlot) {
        // SAFETY: handed out by this cache (caller's contract) to `slot`
        // only, which is consumed here.
        unsafe { self.free(slot.0) }
    }

    /// Takes a free slot from the CPU's first partial slab.
    fn pop(cpu: &mut CpuSlabs) -> Option<EntrySlot> {
        let slab = cpu.partial?;
        // SAFETY: slabs on the partial list are live and ours; the caller
        // holds the CPU's lock, which guards the headers and free lists.
        unsafe {
            let h = &mut *slab.as_ptr();
            let slot = h.free?;
            h.free = (*slot.as_ptr()).next;
            h.inuse += 1;
            if h.free.is_none() {
                Self::unlink(cpu, slab);
            }
            Some(EntrySlot(slot.cast()))
        }
    }

    /// Puts slot `p` back on `slab`'s free list; returns the slab's page if
    /// the slab became empty and is to be given back.
    ///
    /// # Safety
    ///
    /// The caller holds the lock of `cpu`, which owns `slab`; `p` is a
    /// handed-out slot of `slab`.
    unsafe fn push(
        cpu: &mut CpuSlabs,
        slab: NonNull<SlabHeader>,
        p: NonNull<FreeSlot>,
    ) -> Option<PageFrame> {
        // SAFETY: the caller's contract: live slab, lock held, `p` ours.
        unsafe {
            let h = &mut *slab.as_ptr();
            p.as_ptr().write(FreeSlot { next: h.free });
            h.free = Some(p);
            h.inuse -= 1;
            if !h.on_partial {
                Self::link(cpu, slab);
            }
            // `link` made its own `&mut` to the header: take ours again
            // (the old one is invalidated under Stacked Borrows).
            let h = &mut *slab.as_ptr();
            if h.inuse == 0 {
                Self::unlink(cpu, slab);
                cpu.nr_slabs -= 1;
                // The header is the page's start.
                return Some(PageFrame::from_raw(slab.cast()));
            }
        }
        None
    }

    /// Writes a slab header and the free list into the page at `base`, with
    /// the first slot handed out. Returns the slab and that slot.
    ///
    /// # Safety
    ///
    /// `base` is a page-aligned page of `PAGE_SIZE` bytes, exclusively owned.
    unsafe fn init_slab(
        base: NonNull<u8>,
        cpu: u32,
        nid: u16,
    ) -> (NonNull<SlabHeader>, NonNull<ZswapEntry>) {
        let slot = |i: usize| {
            // SAFETY: FIRST_SLOT + i * OBJ_SIZE + OBJ_SIZE <= PAGE_SIZE for
            // i < OBJS_PER_SLAB: inside the page.
            unsafe { base.add(FIRST_SLOT + i * OBJ_SIZE) }.cast::<FreeSlot>()
        };
        // Slots 1.. are free, in address order.
        for i in 1..OBJS_PER_SLAB {
            let next = (i + 1 < OBJS_PER_SLAB).then(|| slot(i + 1));
            // SAFETY: slot `i` is inside the page, aligned for FreeSlot
            // (asserted above), and ours.
            unsafe { slot(i).as_ptr().write(FreeSlot { next }) };
        }
        let slab = base.cast::<SlabHeader>();
        // SAFETY: the header fits at the page start (FIRST_SLOT >= its size)
        // and the page is aligned enough (asserted above).
        unsafe {
            slab.as_ptr().write(SlabHeader {
                prev: None,
                next: None,
                free: (OBJS_PER_SLAB > 1).then(|| slot(1)),
                inuse: 1,
                cpu,
                nid,
                on_partial: false,
            })
        };
        (slab, slot(0).cast())
    }

    /// Puts a slab with a free slot at the head of the partial list.
    ///
    /// # Safety
    ///
    /// The caller holds the CPU's lock; `slab` is a live slab of this CPU,
    /// not on the list.
    unsafe fn link(cpu: &mut CpuSlabs, slab: NonNull<SlabHeader>) {
        // SAFETY: the caller's contract; the old head is a live slab of
        // this CPU.
        unsafe {
            let h = &mut *slab.as_ptr();
            if h.free.is_none() {
                return;
            }
            h.prev = None;
            h.next = cpu.partial;
            if let Some(old) = cpu.partial {
                (*old.as_ptr()).prev = Some(slab);
            }
            h.on_partial = true;
        }
        cpu.partial = Some(slab);
    }

    /// Takes a slab off the partial list.
    ///
    /// # Safety
    ///
    /// The caller holds the CPU's lock; `slab` is on this CPU's list.
    unsafe fn unlink(cpu: &mut CpuSlabs, slab: NonNull<SlabHeader>) {
        // SAFETY: the caller's contract; neighbours are live slabs on the
        // same list.
        unsafe {
            let h = &mut *slab.as_ptr();
            match h.prev {
                Some(p) => (*p.as_ptr()).next = h.next,
                None => cpu.partial = h.next,
            }
            if let Some(n) = h.next {
                (*n.as_ptr()).prev = h.prev;
            }
            h.prev = None;
            h.next = None;
            h.on_partial = false;
        }
    }
}

impl Drop for EntryCache {
    fn drop(&mut self) {
        // Empty slabs go back. A slab that still has entries (only if an
        // owner leaked one) is leaked with them: freeing it could leave a
        // dangling entry.
        for lock in &self.cpus {
            let mut cpu = lock.lock();
            let mut cur = cpu.partial;
            let mut pages = Vec::new();
            while let Some(slab) = cur {
                // SAFETY: a live slab on the list; we hold the lock (and
                // `&mut self`: no other user).
                let (next, inuse) = unsafe { ((*slab.as_ptr()).next, (*slab.as_ptr()).inuse) };
                if inuse == 0 {
                    // SAFETY: on the list, lock held.
                    unsafe { Self::unlink(&mut cpu, slab) };
                    cpu.nr_slabs -= 1;
                    pages.push(slab);
                }
                cur = next;
            }
            drop(cpu);
            for slab in pages {
                // SAFETY: an empty slab, unlinked: nothing refers to its
                // page; it came from `self.alloc`.
                unsafe { self.alloc.free_page(PageFrame::from_raw(slab.cast())) };
            }
        }
    }
}

/// One cache for the unit tests of other modules (entries of any test may
/// come from it and go back to it).
#[cfg(all(test, not(loom)))]
pub(crate) fn test_cache() -> &'static EntryCache {
    test_support::cache()
}

#[cfg(all(test, not(loom)))]
mod test_support {
    extern crate std;
    use super::EntryCache;

    pub(super) fn cache() -> &'static EntryCache {
        static C: std::sync::OnceLock<EntryCache> = std::sync::OnceLock::new();
        C.get_or_init(|| {
            let pages =
                alloc::boxed::Box::leak(alloc::boxed::Box::new(kbase::HeapPageAllocator::new()));
            EntryCache::new(pages, 1, 1).unwrap()
        })
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use kbase::HeapPageAllocator;
    use swapcache::SwpEntry;

    fn pages() -> &'static HeapPageAllocator {
        alloc::boxed::Box::leak(alloc::boxed::Box::new(HeapPageAllocator::new()))
    }

    fn entry(off: u64) -> ZswapEntry {
        ZswapEntry::new(SwpEntry::new(0, off).unwrap(), 0).unwrap()
    }

    #[test]
    fn a_slab_holds_101_entries_on_64_bit() {
        #[cfg(target_pointer_width = "64")]
        assert_eq!(OBJS_PER_SLAB, 101);
        const { assert!(FIRST_SLOT + OBJS_PER_SLAB * OBJ_SIZE <= PAGE_SIZE) };
    }

    #[test]
    fn entries_are_distinct_and_keep_their_values() {
        let pa = pages();
        let c = EntryCache::new(pa, 2, 1).unwrap();
        let n = 3 * OBJS_PER_SLAB + 5;
        let ptrs: Vec<_> = (0..n)
            .map(|i| {
                c.alloc(i % 2, 0, Gfp::KERNEL)
                    .unwrap()
                    .write(entry(i as u64 + 1))
            })
            .collect();
        let mut addrs: Vec<usize> = ptrs.iter().map(|p| p.as_ptr() as usize).collect();
        addrs.sort_unstable();
        addrs.dedup();
        assert_eq!(addrs.len(), n, "a slot handed out twice");
        for (i, p) in ptrs.iter().enumerate() {
            // SAFETY: written above, still ours.
            assert_eq!(unsafe { p.as_ref() }.swpentry().offset(), i as u64 + 1);
        }
        // Two CPUs, each with ceil(..) slabs.
        assert_eq!(c.pages(), pa.allocated_pages());
        assert!(c.pages() <= n.div_ceil(OBJS_PER_SLAB) + 2);
        for p in ptrs {
            // SAFETY: handed out by `c`, given back once.
            unsafe { c.free(p) };
        }
        assert_eq!(c.pages(), 0, "empty slabs go back");
        drop(c);
        assert_eq!(pa.allocated_pages(), 0, "pages leaked");
    }

    #[test]
    fn freed_slots_are_reused_before_a_new_page() {
        let pa = pages();
        let c = EntryCache::new(pa, 1, 1).unwrap();
        let a: Vec<_> = (0..OBJS_PER_SLAB)
            .map(|i| c.alloc(0, 0, Gfp::KERNEL).unwrap().write(entry(i as u64)))
            .collect();
        assert_eq!(pa.allocated_pages(), 1);
        // SAFETY: ours, given back once.
        unsafe { c.free(a[7]) };
        let b = c.alloc(0, 0, Gfp::KERNEL).unwrap().write(entry(99));
        assert_eq!(b, a[7]);
        assert_eq!(pa.allocated_pages(), 1);
        for p in a {
            // SAFETY: ours (a[7] is now `b`, the same slot), given back once.
            unsafe { c.free(p) };
        }
        assert_eq!(c.pages(), 0, "the empty slab went back");
        drop(c);
        assert_eq!(pa.allocated_pages(), 0);
    }

    #[test]
    fn a_cross_cpu_free_returns_to_the_owner() {
        let pa = pages();
        let c = EntryCache::new(pa, 2, 1).unwrap();
        let keep = c.alloc(1, 0, Gfp::KERNEL).unwrap().write(entry(1));
        let p = c.alloc(1, 0, Gfp::KERNEL).unwrap().write(entry(2));
        // Freed by another CPU: back to CPU 1's slab, whose slot comes back
        // to CPU 1, not to CPU 0.
        // SAFETY: ours, once.
        unsafe { c.free(p) };
        let other = c.alloc(0, 0, Gfp::KERNEL).unwrap().write(entry(3));
        assert_ne!(other, p);
        let q = c.alloc(1, 0, Gfp::KERNEL).unwrap().write(entry(4));
        assert_eq!(p, q);
        assert_eq!(c.pages(), 2);
        for x in [keep, q, other] {
            // SAFETY: ours, once.
            unsafe { c.free(x) };
        }
        assert_eq!(c.pages(), 0);
        drop(c);
        assert_eq!(pa.allocated_pages(), 0);
    }

    #[test]
    fn an_entry_lives_on_a_slab_of_its_node() {
        let pa = pages();
        let c = EntryCache::new(pa, 2, 3).unwrap();
        let ptrs: Vec<_> = (0..6)
            .map(|i| {
                c.alloc(i % 2, i % 3, Gfp::KERNEL)
                    .unwrap()
                    .write(entry(i as u64))
            })
            .collect();
        for (i, p) in ptrs.iter().enumerate() {
            // SAFETY: handed out by `c`, not given back yet.
            assert_eq!(unsafe { c.nid_of(*p) }, i % 3);
        }
        assert_eq!(c.pages(), 6, "one slab per (CPU, node) in use");
        assert_eq!(c.alloc(0, 3, Gfp::KERNEL).err(), Some(Error::EINVAL));
        for p in ptrs {
            // SAFETY: ours, once.
            unsafe { c.free(p) };
        }
        assert_eq!(c.pages(), 0);
        drop(c);
        assert_eq!(pa.allocated_pages(), 0);
        assert!(EntryCache::new(pa, 1, usize::from(u16::MAX) + 2).is_err());
    }

    #[test]
    fn no_page_gives_enomem() {
        let pa: &'static HeapPageAllocator =
            alloc::boxed::Box::leak(alloc::boxed::Box::new(HeapPageAllocator::with_limit(1)));
        let c = EntryCache::new(pa, 1, 1).unwrap();
        let a: Vec<_> = (0..OBJS_PER_SLAB)
            .map(|i| c.alloc(0, 0, Gfp::KERNEL).unwrap().write(entry(i as u64)))
            .collect();
        assert_eq!(c.alloc(0, 0, Gfp::KERNEL).err(), Some(Error::ENOMEM));
        for p in a {
            // SAFETY: ours, once.
            unsafe { c.free(p) };
        }
        drop(c);
        assert_eq!(pa.allocated_pages(), 0);
    }
}
