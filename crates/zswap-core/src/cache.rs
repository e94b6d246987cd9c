//! `zswap_entry_cache`: entries from slabs carved out of pages.
//!
//! Linux allocates each `struct zswap_entry` from a kmem_cache of its own,
//! so an entry costs its size, not the bucket of a general allocator (a
//! 32-byte entry takes a 48-byte chunk of glibc's malloc). [`EntryCache`] is the
//! same for this crate: slabs are whole pages from the platform's
//! [`PageAllocator`], each a small header followed by
//! [`OBJS_PER_SLAB`] entry slots; free slots of a slab form a list threaded
//! through the slots themselves. On 64-bit targets a slab holds 169 entries
//! of 24 bytes: 24.2 bytes of memory per entry, everything included.
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
//! # Entry ids
//!
//! Every slab has a number, and every entry a 32-bit id: slab number <<
//! [`SLOT_SHIFT`] | slot. The tree stores ids, not pointers (4 bytes a slot
//! instead of 8). Slabs are registered in a fixed two-level directory of
//! atomic pointers, so an id becomes a pointer with two loads and no lock
//! ([`EntryCache::entry`]): a top array of [`DIR_TOP`] chunk pointers
//! inside the cache itself, and chunks of slab pointers, each twice the
//! size of the one before ([`DIR_BASE`] slabs in the first), allocated
//! (fallibly, with no lock held) when the first slab number of their range
//! is handed out and kept until the cache goes: the directory is never more
//! than twice the slabs ever held at once (16 bytes a slab, 0.4 % of the
//! slabs' memory), and small caches pay little. Slab numbers run from 1 (so
//! no id is 0) to [`MAX_SLABS`]; a number whose slab went back
//! is kept on its (CPU, node)'s list of free numbers (under that list's
//! lock) and reused first.
//!
//! # Locking and allocation
//!
//! The CPU lock is a leaf: nothing else is taken under it, and no page is
//! allocated or freed under it. [`EntryCache::alloc`] drops it to allocate
//! a page (with the caller's GFP), and maybe a directory chunk, and takes it
//! again to install the slab. The directory needs no lock: a chunk is
//! installed with a compare-exchange, a slab pointer is written (release)
//! before the slab's first entry leaves `alloc` and cleared when the slab's
//! last entry is given back.
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
//! - A slab's number `no` is its own while it lives: the directory slot of
//!   `no` points to it from before its first slot is handed out until its
//!   last slot comes back; a number is on at most one free-number list, and
//!   then its directory slot is null.

use alloc::boxed::Box;
use alloc::vec::Vec;
use core::mem::{align_of, size_of};
use core::num::NonZeroU32;
use core::ptr::NonNull;

use kbase::sync::{AtomicPtr, AtomicU32, Mutex, Ordering, lock_class};
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
    /// The slab's number in the directory (never 0).
    no: u32,
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
/// Slot alignment: a power-of-two entry of at most a cache line is aligned
/// to its size, so no entry straddles two cache lines. The 24-byte entries
/// of 64-bit targets are not a power of two: they follow the 40-byte header
/// at their own alignment, and one in four straddles two lines (aligning
/// them to 32 would hold 126 a slab, 8 bytes more per entry).
const SLOT_ALIGN: usize = if OBJ_SIZE.is_power_of_two() && OBJ_SIZE <= 64 {
    OBJ_SIZE
} else {
    align_of::<ZswapEntry>()
};
const FIRST_SLOT: usize = size_of::<SlabHeader>().next_multiple_of(SLOT_ALIGN);
/// Entries per slab (169 on 64-bit targets).
pub const OBJS_PER_SLAB: usize = (PAGE_SIZE - FIRST_SLOT) / OBJ_SIZE;

const _: () = assert!(OBJ_SIZE >= size_of::<FreeSlot>());
const _: () = assert!(align_of::<ZswapEntry>() >= align_of::<FreeSlot>());
const _: () = assert!(align_of::<SlabHeader>() <= PAGE_SIZE);
const _: () = assert!(OBJS_PER_SLAB >= 1);

/// Bits of an entry id that name the slot in its slab.
pub(crate) const SLOT_SHIFT: u32 = 8;
const _: () = assert!(OBJS_PER_SLAB <= 1 << SLOT_SHIFT);
/// log2 of the slab numbers in the directory's first chunk.
#[cfg(not(loom))]
const DIR_BASE_SHIFT: u32 = 6;
/// log2 of the slab numbers a directory may hold.
#[cfg(not(loom))]
const MAX_SLABS_SHIFT: u32 = 22;
// Loom models hold a few entries, and every loom atomic is tracked.
#[cfg(loom)]
const DIR_BASE_SHIFT: u32 = 1;
#[cfg(loom)]
const MAX_SLABS_SHIFT: u32 = 4;
/// Slab numbers in the directory's first chunk; chunk `k` holds
/// `DIR_BASE << k`.
pub(crate) const DIR_BASE: usize = 1 << DIR_BASE_SHIFT;
/// Slab numbers run `1..MAX_SLABS` (4 Mi slabs on 64-bit targets: 16 GiB
/// of entries, over 400 million); past that `alloc` fails with `ENOMEM`.
pub(crate) const MAX_SLABS: usize = 1 << MAX_SLABS_SHIFT;
/// Directory chunks (the top array): enough for every number below
/// `MAX_SLABS`.
pub(crate) const DIR_TOP: usize = (MAX_SLABS_SHIFT - DIR_BASE_SHIFT + 1) as usize;
const _: () = assert!(((MAX_SLABS as u64) << SLOT_SHIFT) <= u32::MAX as u64 + 1);

/// Where slab number `no` is in the directory: (chunk, index, chunk size).
#[inline]
fn dir_pos(no: u32) -> (usize, usize, usize) {
    let m = no as usize + DIR_BASE - 1;
    let k = (usize::BITS - 1 - m.leading_zeros()).saturating_sub(DIR_BASE_SHIFT) as usize;
    let size = DIR_BASE << k;
    (k, m - size, size)
}

/// A 32-bit entry id: slab number << [`SLOT_SHIFT`] | slot. Never 0.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) struct EntryId(NonZeroU32);

impl EntryId {
    /// The id as a `u32` (never 0), as the LRU links store it.
    pub(crate) fn get(self) -> u32 {
        self.0.get()
    }

    /// The id of [`EntryId::get`]; `None` for 0.
    pub(crate) fn from_raw(raw: u32) -> Option<EntryId> {
        NonZeroU32::new(raw).map(EntryId)
    }

    fn new(no: u32, slot: usize) -> Option<EntryId> {
        NonZeroU32::new((no << SLOT_SHIFT) | slot as u32).map(EntryId)
    }

    fn slab_no(self) -> u32 {
        self.0.get() >> SLOT_SHIFT
    }

    fn slot(self) -> usize {
        (self.0.get() & ((1 << SLOT_SHIFT) - 1)) as usize
    }
}

/// One slot of the directory.
struct DirSlot {
    /// The slab with this number (its page), or null.
    slab: AtomicPtr<u8>,
    /// While the number is free: the next free number of its list (0: none).
    /// Only touched under that list's lock.
    next_free: AtomicU32,
}

/// One (CPU, node)'s slabs.
struct CpuSlabs {
    /// Slabs with at least one free slot (doubly linked through headers).
    partial: Option<NonNull<SlabHeader>>,
    /// All slabs of this (CPU, node) (full and partial).
    nr_slabs: usize,
    /// Slab numbers given back by this list's slabs, linked through the
    /// directory's `next_free` (0: none).
    free_nos: u32,
}

// SAFETY: the pointers lead into slab pages owned by the cache; they are
// only followed under the lock that owns this value (type invariants).
unsafe impl Send for CpuSlabs {}

/// One (CPU, node)'s lock and slab list, in a cache line of its own: the
/// lists of two CPUs never share one, so stores and loads on different CPUs
/// do not bounce it.
#[repr(align(64))]
struct CpuLists(Mutex<CpuSlabs>);

impl core::ops::Deref for CpuLists {
    type Target = Mutex<CpuSlabs>;
    fn deref(&self) -> &Mutex<CpuSlabs> {
        &self.0
    }
}

/// An entry slot handed out by [`EntryCache::alloc`], not yet initialised.
///
/// # Invariants
///
/// `ptr` points to a slot of a slab of the cache it came from, handed out to
/// this value only; `id` is that slot's id.
pub(crate) struct EntrySlot {
    ptr: NonNull<ZswapEntry>,
    id: EntryId,
}

impl EntrySlot {
    /// Writes the entry into the slot; the returned pointer owns it.
    pub(crate) fn write(self, e: ZswapEntry) -> (NonNull<ZswapEntry>, EntryId) {
        // SAFETY: by the type invariant the slot is valid, aligned memory
        // for one entry, handed out only to us; writing does not read the
        // old (free-list) bytes.
        unsafe { self.ptr.as_ptr().write(e) };
        (self.ptr, self.id)
    }
}

/// The entry cache. See the module docs.
pub(crate) struct EntryCache {
    alloc: &'static dyn PageAllocator,
    /// Per CPU, one list per node: index `cpu * nr_nodes + nid`.
    cpus: Vec<CpuLists>,
    nr_nodes: usize,
    /// `cpus.len() / nr_nodes` (at least 1): the CPUs with lists.
    nr_cpus: usize,
    /// The directory's top: chunk `k` (`DIR_BASE << k` slab numbers, see
    /// `dir_pos`) or null; a chunk is [`DirSlot`]s from a `Box<[DirSlot]>`
    /// of its size.
    dir: [AtomicPtr<DirSlot>; DIR_TOP],
    /// The next slab number never handed out.
    next_no: AtomicU32,
}

// SAFETY: all state is behind the per-CPU Mutexes (CpuSlabs: Send); the
// page allocator is Send + Sync.
unsafe impl Send for EntryCache {}
// SAFETY: as above: shared use goes through the locks.
unsafe impl Sync for EntryCache {}

/// The slab header of the page `p` points into.
#[inline]
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
            cpus.push(CpuLists(Mutex::new_class(
                CpuSlabs {
                    partial: None,
                    nr_slabs: 0,
                    free_nos: 0,
                },
                &lock_class::ZSWAP_ENTRY_CACHE,
            )));
        }
        Ok(EntryCache {
            alloc,
            nr_cpus: nr / nr_nodes,
            cpus,
            nr_nodes,
            dir: core::array::from_fn(|_| AtomicPtr::new(core::ptr::null_mut())),
            next_no: AtomicU32::new(1),
        })
    }

    /// The directory slot of slab number `no`, if its chunk exists.
    #[inline]
    fn dir_slot(&self, no: u32) -> Option<&DirSlot> {
        let (k, i, size) = dir_pos(no);
        let chunk = self.dir.get(k)?.load(Ordering::Acquire);
        if chunk.is_null() || i >= size {
            return None;
        }
        // SAFETY: a non-null top pointer `k` is a chunk of `size` slots,
        // installed with release ordering (the acquire load above sees it
        // initialised) and freed only when the cache goes (`&self` keeps
        // it); `i < size` is inside it.
        Some(unsafe { &*chunk.add(i) })
    }

    /// Makes sure the chunk holding slab number `no` exists; allocates it
    /// with no lock held. `ENOMEM`.
    fn ensure_chunk(&self, no: u32, gfp: Gfp) -> Result<()> {
        let (k, _, size) = dir_pos(no);
        let top = self.dir.get(k).ok_or(Error::ENOMEM)?;
        if !top.load(Ordering::Acquire).is_null() {
            return Ok(());
        }
        let _ = gfp;
        let mut v = Vec::new();
        v.try_reserve_exact(size)?;
        for _ in 0..size {
            v.push(DirSlot {
                slab: AtomicPtr::new(core::ptr::null_mut()),
                next_free: AtomicU32::new(0),
            });
        }
        let chunk = Box::into_raw(v.into_boxed_slice()).cast::<DirSlot>();
        if top
            .compare_exchange(
                core::ptr::null_mut(),
                chunk,
                Ordering::AcqRel,
                Ordering::Acquire,
            )
            .is_err()
        {
            // Another CPU installed the chunk first.
            // SAFETY: `chunk` came from `Box::into_raw` of a slice of
            // `size` slots just above and was never published.
            drop(unsafe { Box::from_raw(core::ptr::slice_from_raw_parts_mut(chunk, size)) });
        }
        Ok(())
    }

    /// A slab number for a new slab of list `cpu`: one the list gave back,
    /// else a fresh one; its directory chunk exists. `ENOMEM` when every
    /// number is in use or no chunk can be allocated.
    fn take_no(&self, lock: &Mutex<CpuSlabs>, gfp: Gfp) -> Result<u32> {
        {
            let mut cpu = lock.lock();
            if cpu.free_nos != 0 {
                let no = cpu.free_nos;
                cpu.free_nos = self
                    .dir_slot(no)
                    .map_or(0, |d| d.next_free.load(Ordering::Relaxed));
                return Ok(no);
            }
        }
        loop {
            let no = self.next_no.load(Ordering::Relaxed);
            if no as usize >= MAX_SLABS {
                return Err(Error::ENOMEM);
            }
            // The chunk first, so a number once taken always has one.
            self.ensure_chunk(no, gfp)?;
            if self
                .next_no
                .compare_exchange(no, no + 1, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
            {
                return Ok(no);
            }
        }
    }

    /// Puts slab number `no` (its directory slot null) on `cpu`'s free
    /// numbers. The caller holds that list's lock.
    fn put_no(&self, cpu: &mut CpuSlabs, no: u32) {
        if let Some(d) = self.dir_slot(no) {
            d.next_free.store(cpu.free_nos, Ordering::Relaxed);
            cpu.free_nos = no;
        }
    }

    /// The entry with id `id`.
    ///
    /// # Safety
    ///
    /// `id` must be the id of a slot handed out by this cache's `alloc` and
    /// not given back since (a live entry's).
    #[inline]
    pub(crate) unsafe fn entry(&self, id: EntryId) -> Option<NonNull<ZswapEntry>> {
        let base = self.dir_slot(id.slab_no())?.slab.load(Ordering::Acquire);
        let base = NonNull::new(base)?;
        if id.slot() >= OBJS_PER_SLAB {
            return None;
        }
        // SAFETY: the slab of a handed-out slot is live and registered
        // (caller's contract, module invariant); the slot's offset is inside
        // its page (checked above).
        Some(unsafe { base.add(FIRST_SLOT + id.slot() * OBJ_SIZE) }.cast())
    }

    /// The node of the entry at `p`: its slab's.
    ///
    /// # Safety
    ///
    /// `p` must point to a slot handed out by this cache's `alloc` and not
    /// given back since.
    #[inline]
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
        // A CPU in range (always, but for a bogus number) costs no division;
        // with one node, no multiplication either.
        let cpu = if cpu < self.nr_cpus {
            cpu
        } else {
            cpu % self.nr_cpus.max(1)
        };
        let idx = if self.nr_nodes == 1 {
            cpu
        } else {
            cpu * self.nr_nodes + nid
        };
        let Some(lock) = self.cpus.get(idx) else {
            return Err(Error::EINVAL);
        };
        if let Some(slot) = Self::pop(&mut lock.lock()) {
            return Ok(slot);
        }
        // No room: a new slab, allocated with the lock dropped.
        let no = self.take_no(lock, gfp)?;
        let page = match self.alloc.alloc_page(gfp) {
            Ok(p) => p,
            Err(e) => {
                self.put_no(&mut lock.lock(), no);
                return Err(e);
            }
        };
        let base = page.into_raw();
        // SAFETY: `base` is a fresh page, exclusively ours and page-aligned
        // (PageFrame invariant); `init_slab` writes only inside it.
        let (slab, first) = unsafe { Self::init_slab(base, idx as u32, nid as u16, no) };
        // Registered before its first entry leaves: the number's chunk
        // exists (`take_no`), and the number is ours alone.
        if let Some(d) = self.dir_slot(no) {
            d.slab.store(base.as_ptr(), Ordering::Release);
        }
        let mut cpu = lock.lock();
        cpu.nr_slabs += 1;
        // SAFETY: `slab` is a live slab of this CPU, on no list yet; we hold
        // the CPU's lock.
        unsafe { Self::link(&mut cpu, slab) };
        drop(cpu);
        let id = EntryId::new(no, 0).ok_or(Error::EINVAL)?;
        Ok(EntrySlot { ptr: first, id })
    }

    /// Gives back a slot whose entry has been moved out or dropped (or that
    /// was never written).
    ///
    /// # Safety
    ///
    /// `p` must have been handed out by this cache's `alloc` and not given
    /// back since; nothing may use it afterwards.
    #[inline]
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
        let release = unsafe { self.push(&mut cpu, slab, p.cast()) };
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
        unsafe { self.free(slot.ptr) }
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
            let no = h.no;
            if h.free.is_none() {
                Self::unlink(cpu, slab);
            }
            // The slot's index from its offset in the page.
            let off = slot.as_ptr().addr() - slab.as_ptr().addr();
            let id = EntryId::new(no, (off - FIRST_SLOT) / OBJ_SIZE)?;
            Some(EntrySlot {
                ptr: slot.cast(),
                id,
            })
        }
    }

    /// Puts slot `p` back on `slab`'s free list; returns the slab's page if
    /// the slab became empty and is to be given back.
    ///
    /// # Safety
    ///
    /// The caller holds the lock of `cpu`, which owns `slab`; `p` is a
    /// handed-out slot of `slab`.
    #[inline]
    unsafe fn push(
        &self,
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
                let no = h.no;
                Self::unlink(cpu, slab);
                cpu.nr_slabs -= 1;
                // Unregistered: no entry of the slab is live, so no id
                // resolves to it any more.
                if let Some(d) = self.dir_slot(no) {
                    d.slab.store(core::ptr::null_mut(), Ordering::Release);
                }
                self.put_no(cpu, no);
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
        no: u32,
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
                no,
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
        // The directory goes with the cache (`&mut self`: nobody resolves
        // an id any more).
        for (k, top) in self.dir.iter().enumerate() {
            let chunk = top.swap(core::ptr::null_mut(), Ordering::Acquire);
            if !chunk.is_null() {
                // SAFETY: a published chunk `k` came from `Box::into_raw` of
                // a slice of `DIR_BASE << k` slots (`ensure_chunk`) and is
                // freed once, here.
                drop(unsafe {
                    Box::from_raw(core::ptr::slice_from_raw_parts_mut(chunk, DIR_BASE << k))
                });
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
    fn a_slab_holds_169_entries_on_64_bit() {
        #[cfg(target_pointer_width = "64")]
        {
            assert_eq!(OBJS_PER_SLAB, 169);
            assert_eq!(FIRST_SLOT, 40, "the slots follow the header");
        }
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
                    .0
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
            .map(|i| c.alloc(0, 0, Gfp::KERNEL).unwrap().write(entry(i as u64)).0)
            .collect();
        assert_eq!(pa.allocated_pages(), 1);
        // SAFETY: ours, given back once.
        unsafe { c.free(a[7]) };
        let b = c.alloc(0, 0, Gfp::KERNEL).unwrap().write(entry(99)).0;
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
        let keep = c.alloc(1, 0, Gfp::KERNEL).unwrap().write(entry(1)).0;
        let p = c.alloc(1, 0, Gfp::KERNEL).unwrap().write(entry(2)).0;
        // Freed by another CPU: back to CPU 1's slab, whose slot comes back
        // to CPU 1, not to CPU 0.
        // SAFETY: ours, once.
        unsafe { c.free(p) };
        let other = c.alloc(0, 0, Gfp::KERNEL).unwrap().write(entry(3)).0;
        assert_ne!(other, p);
        let q = c.alloc(1, 0, Gfp::KERNEL).unwrap().write(entry(4)).0;
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

    /// Each (CPU, node)'s lock and list head sits in a cache line of its
    /// own: stores and loads on two CPUs never write a common line here.
    #[test]
    fn each_cpus_lists_have_a_cache_line_of_their_own() {
        let c = EntryCache::new(pages(), 3, 2).unwrap();
        let lines: alloc::vec::Vec<usize> = c
            .cpus
            .iter()
            .map(|l| core::ptr::from_ref(l).addr())
            .collect();
        assert_eq!(lines.len(), 6);
        for w in lines.windows(2) {
            assert!(w[0] % 64 == 0 && w[1] - w[0] >= 64);
        }
    }

    #[test]
    fn a_cpu_number_past_the_cpus_uses_its_modulo_cpus_lists() {
        let pa = pages();
        for nodes in [1, 2] {
            let c = EntryCache::new(pa, 2, nodes).unwrap();
            let a = c
                .alloc(1, nodes - 1, Gfp::KERNEL)
                .unwrap()
                .write(entry(1))
                .0;
            // CPU 5 is CPU 1 (a stale or bogus number): same slab, same node.
            let b = c
                .alloc(5, nodes - 1, Gfp::KERNEL)
                .unwrap()
                .write(entry(2))
                .0;
            assert_eq!(slab_of(a.cast()), slab_of(b.cast()));
            // SAFETY: handed out by `c`, not given back yet.
            assert_eq!(unsafe { c.nid_of(b) }, nodes - 1);
            assert_eq!(c.pages(), 1);
            for p in [a, b] {
                // SAFETY: ours, once.
                unsafe { c.free(p) };
            }
            assert_eq!(c.pages(), 0);
        }
        assert_eq!(pa.allocated_pages(), 0);
    }

    #[test]
    fn directory_positions_tile_the_slab_numbers() {
        let mut next = (0, 0);
        for no in 1..(8 * DIR_BASE as u32) {
            let (k, i, size) = dir_pos(no);
            assert_eq!((k, i), next, "slab number {no}");
            assert_eq!(size, DIR_BASE << k);
            next = if i + 1 == size {
                (k + 1, 0)
            } else {
                (k, i + 1)
            };
        }
        assert!(dir_pos(MAX_SLABS as u32 - 1).0 < DIR_TOP);
    }

    #[test]
    fn ids_resolve_to_their_entries_and_slab_numbers_are_reused() {
        let pa = pages();
        let c = EntryCache::new(pa, 2, 1).unwrap();
        let n = 3 * OBJS_PER_SLAB + 7;
        let mut got: Vec<_> = (0..n)
            .map(|i| {
                c.alloc(i % 2, 0, Gfp::KERNEL)
                    .unwrap()
                    .write(entry(i as u64))
            })
            .collect();
        let mut ids: Vec<u32> = got.iter().map(|(_, id)| id.0.get()).collect();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), n, "an id handed out twice");
        for (p, id) in &got {
            // SAFETY: live entries of `c`.
            assert_eq!(unsafe { c.entry(*id) }, Some(*p));
        }
        let max_no = got.iter().map(|(_, id)| id.slab_no()).max().unwrap();
        // Give everything back, then take as many again: the slabs get
        // the numbers that were freed, not new ones.
        for (p, _) in got.drain(..) {
            // SAFETY: ours, once.
            unsafe { c.free(p) };
        }
        assert_eq!(c.pages(), 0);
        let again: Vec<_> = (0..n)
            .map(|i| {
                c.alloc(i % 2, 0, Gfp::KERNEL)
                    .unwrap()
                    .write(entry(i as u64))
            })
            .collect();
        assert!(again.iter().all(|(_, id)| id.slab_no() <= max_no));
        for (p, id) in &again {
            // SAFETY: live entries of `c`.
            assert_eq!(unsafe { c.entry(*id) }, Some(*p));
        }
        for (p, _) in again {
            // SAFETY: ours, once.
            unsafe { c.free(p) };
        }
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
                    .0
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
            .map(|i| c.alloc(0, 0, Gfp::KERNEL).unwrap().write(entry(i as u64)).0)
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
