//! # zpool: a zsmalloc-class allocator for compressed objects
//!
//! zswap stores each compressed page as one *object* of 1 to `PAGE_SIZE`
//! bytes. Giving every object a page of its own would throw away most of
//! what compression saved, and a general-purpose heap fragments badly under
//! this workload, so, like Linux's `mm/zsmalloc.c`, [`ZsPool`] packs objects
//! of similar size back to back into short chains of pages and hands out
//! opaque [`Handle`]s instead of pointers, which lets it move objects later
//! (compaction) to give pages back.
//!
//! ## Size classes
//!
//! Sizes are rounded up to a multiple of 16 bytes (`ZS_SIZE_CLASS_DELTA`), so
//! there are 256 candidate classes, 16 to 4096 bytes. For each, the pool picks
//! the chain length of 1 to N pages ([`ZsConfig::max_pages_per_zspage`],
//! default 8 like `CONFIG_ZSMALLOC_CHAIN_SIZE`) that wastes the smallest
//! fraction of the chain, ties going to the shorter chain. Consecutive sizes
//! that end up with the same (pages, objects) geometry share one class, as in
//! Linux: the bigger slot costs no page, and fewer classes mean fewer
//! half-used zspages. Sizes near `PAGE_SIZE`, where no chain packs better
//! than one object per page, form *huge* classes: one object in a one-page
//! zspage, never spanning.
//!
//! ## Zspage layout
//!
//! A zspage is a chain of pages of one class; object `i` lives at byte
//! `i * size` of the chain, so an object may span two pages (reads then see
//! two segments, [`ZsPool::read_with`]). Nothing is stored in object memory
//! (no inline handle, no free-list link): the zspage descriptor keeps a
//! reverse map, object index to handle-table slot, which is also the free
//! map. Pages are attached lazily: a zspage starts with one page and takes
//! another only when the next object needs it, up to the class's chain
//! length; compaction trims trailing pages that hold no live object. Linux
//! allocates the whole chain at once, so each class can strand most of a
//! chain; here a class strands at most the tail of one page, which is what
//! keeps a pool dense when it holds only a few hundred objects per class.
//! See `zspage.rs`.
//!
//! ## Handles
//!
//! A [`Handle`] is a `u64`: pool id (12 bits) | class (8) | generation (16) |
//! slot (28). The class never changes for an object, so every data-path call
//! (`free`, `read`, `read_with`, `write`, `obj_size`) decodes the class from
//! the handle and takes only that class's lock: there is no pool-wide handle
//! table and no pool-wide lock. The slot indexes the class's handle table,
//! whose 12-byte entry holds the object's zspage, index and exact size;
//! compaction rewrites the entry, so handles stay valid while objects move.
//! Freeing bumps the slot's generation; a handle from another pool is
//! refused with EINVAL, a freed (double free, use after free) one with
//! ENOENT, so bad input never reaches another object's bytes. Generations
//! are 16 bits: a stale handle can alias only after its slot was reused 65536
//! times, and pool ids repeat after 4095 pools.
//!
//! ## Metadata per object
//!
//! 16 bytes ([`METADATA_BYTES_PER_OBJECT`]): the 12-byte handle-table entry and
//! the 4-byte reverse-map entry in the zspage. Per zspage there is also a
//! descriptor (pages vector, reverse map header, list links: see
//! [`PoolStats::metadata_bytes`] for the measured total), amortised over the
//! zspage's objects; in a huge class that descriptor is per object, as Linux's
//! `struct zspage` is.
//!
//! ## Fullness groups and allocation
//!
//! Each class keeps its zspages on 12 lists: ten by `inuse / objs_per_zspage`
//! in tenths (zspages with a free slot in their attached pages),
//! `GROWABLE` (attached pages full, chain not complete) and `FULL`.
//! `malloc` takes the lowest free slot of a zspage from the fullest list with
//! room; failing that it attaches a page to a growable zspage; failing that it
//! starts a new zspage. A zspage whose last object is freed goes back to the
//! page allocator at once.
//!
//! Allocation never holds a lock while allocating: under the class lock
//! `malloc` finds out what it lacks (a page, a new zspage, a bigger handle
//! table or zspage table), drops the lock, allocates it with the caller's
//! [`Gfp`] flags, and retries; whatever turned out not to be needed is given
//! back. Page-allocator failures are ENOMEM, never a panic.
//!
//! ## Compaction
//!
//! [`ZsPool::compact`] runs Linux's `__zs_compact` per class, one source
//! zspage per lock hold: the emptiest zspage's objects (from its highest index
//! down) move into the lowest free slots of the fullest zspages with room,
//! then the source is freed if empty or trimmed. Every move goes from a zspage
//! with fewer objects to one with at least as many, so the sum of squared
//! `inuse` rises with each move and compaction terminates. When no object can
//! move to another zspage, zspages are packed in place (top objects into low
//! holes) and their trailing pages trimmed, again one zspage per lock hold.
//! It returns the pages freed, also counted in
//! [`PoolStats::pages_compacted`]. Compaction allocates nothing.
//!
//! ## Loads without the class lock
//!
//! [`ZsPool::read_with`] (Linux's `zs_obj_read_begin` / `zs_obj_read_end`)
//! takes the class lock only to find the object and *pin* it: a reader count
//! in its handle entry (the two bytes that were padding) and one in its
//! zspage. It drops the lock, runs the caller's closure on the object's
//! bytes (zswap decompresses there), then takes the lock again for a moment
//! to unpin. While an object is pinned, `free` and `write` of it fail with
//! EBUSY (zswap never does either: an entry's owner loads it), and
//! compaction neither moves objects out of nor into the pinned zspage nor
//! trims it: it skips it, so a load never waits for compaction beyond one
//! step's lock hold, and compaction never waits for a load. Everything else
//! goes on in the pinned zspage: other objects are allocated, written and
//! freed. Object bytes are therefore only ever reached through raw pointers
//! confined to one object (`pages.rs`), never through a reference to a whole
//! page, so concurrent writes of neighbours claim no byte the reader holds
//! (Miri checks this in the tests).
//!
//! ## Lock order
//!
//! One lock per class. No two class locks are ever held together and the
//! pool takes no other lock of its own under one. The page allocator is
//! called with no lock held when it allocates; pages are given back (which
//! never blocks) under the class lock, like Linux's `free_zspage`.
//! [`ZsPool::read_with`] runs its closure with no pool lock held, so the
//! closure's own locks (zswap's per-CPU decompression lock) do not nest with
//! the class lock at all, and the closure may even call into the pool. The
//! only pool-wide shared state is two relaxed atomic counters (pages held,
//! pages compacted); object and byte counts live in each class, under its
//! lock.
//!
//! ## Module map
//!
//! - `lib.rs` (this file): [`ZsPool`], [`ZsConfig`], [`PoolStats`],
//!   [`ClassStats`]; the lock-drop-allocate-retry loop.
//! - `class.rs`: the size-class table (chain choice, merging, size lookup).
//! - `handle.rs`: [`Handle`] encoding and the per-class handle table.
//! - `zspage.rs`: the zspage descriptor: pages, reverse map, fullness.
//! - `state.rs`: everything under one class lock: allocation, free,
//!   fullness lists, compaction.
//! - `pages.rs`: page ownership and byte copies over page chains; the crate's
//!   only `unsafe` (giving a page back to the allocator).
#![no_std]
#![cfg_attr(not(loom), deny(clippy::undocumented_unsafe_blocks))]

extern crate alloc;

mod class;
mod handle;
mod pages;
mod state;
mod zspage;

use alloc::vec::Vec;

use kbase::sync::{AtomicUsize, Mutex, Ordering, lock_class};
use kbase::{Error, Gfp, PAGE_SIZE, PageAllocator, PageFrame, Result};

pub use class::MAX_PAGES_PER_ZSPAGE;
pub use handle::Handle;

use class::{ClassTable, SizeClass};
use handle::{HandleEntry, HandleParts};
use state::{ClassState, Need};
use zspage::ZsPage;

/// Metadata bytes per stored object: its handle-table entry (12 bytes) and
/// its reverse-map entry in the zspage (4 bytes).
pub const METADATA_BYTES_PER_OBJECT: usize =
    core::mem::size_of::<HandleEntry>() + core::mem::size_of::<u32>();
const _: () = assert!(METADATA_BYTES_PER_OBJECT <= 16);

/// How many times `malloc` drops the class lock to allocate before it gives
/// up with ENOMEM (only reachable when other threads keep taking what it
/// allocated).
const MALLOC_RETRIES: usize = 16;

/// Pool configuration.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ZsConfig {
    /// Longest zspage chain, in pages, `1..=MAX_PAGES_PER_ZSPAGE` (Linux's
    /// `CONFIG_ZSMALLOC_CHAIN_SIZE`). Longer chains waste less at the end of
    /// a chain; with lazily attached pages they cost nothing extra.
    pub max_pages_per_zspage: usize,
}

impl Default for ZsConfig {
    fn default() -> Self {
        ZsConfig {
            max_pages_per_zspage: 8,
        }
    }
}

/// Pool-wide counters (Linux: `zs_get_total_pages`, `zs_pool_stats`). Each
/// class contributes a consistent snapshot; classes are read one after the
/// other.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PoolStats {
    /// Pages held from the page allocator (exact).
    pub pages: usize,
    /// Live objects (exact).
    pub objects: usize,
    /// Sum of the sizes of the live objects as asked of `malloc` (exact).
    pub bytes_stored: usize,
    /// Pages given back by compaction since the pool was created
    /// (`pages_compacted`).
    pub pages_compacted: usize,
    /// Heap bytes of metadata: handle tables, zspage tables and descriptors,
    /// reverse maps (capacity, not length). Not part of `pages`.
    pub metadata_bytes: usize,
}

/// Counters of one size class.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ClassStats {
    /// Slot size in bytes (objects up to this size land here).
    pub size: usize,
    /// Chain length of a complete zspage.
    pub pages_per_zspage: usize,
    /// Objects in a complete zspage.
    pub objs_per_zspage: usize,
    /// One object per single-page zspage.
    pub huge: bool,
    /// Live objects.
    pub objects: usize,
    /// Zspages.
    pub zspages: usize,
    /// Pages attached to this class's zspages.
    pub pages: usize,
}

struct Class {
    info: SizeClass,
    state: Mutex<ClassState>,
}

/// An object pinned by a load in flight; dropping it unpins.
struct Pinned<'a> {
    class: &'a Class,
    slot: u32,
}

impl Drop for Pinned<'_> {
    fn drop(&mut self) {
        self.class.state.lock().unpin(self.slot);
    }
}

/// A pool of compressed objects over the platform page allocator `A`.
///
/// # Invariants
///
/// Every page held by the pool came from `alloc`. `pages` equals the sum of
/// the classes' page counts once no call is in flight.
pub struct ZsPool<A: PageAllocator> {
    alloc: A,
    cfg: ZsConfig,
    id: u16,
    table: ClassTable,
    classes: Vec<Class>,
    pages: AtomicUsize,
    compacted: AtomicUsize,
}

/// Pages and a zspage allocated for a `malloc` but maybe not used; whatever
/// is left goes back to the allocator when this is dropped.
struct Spare<'a, A: PageAllocator> {
    alloc: &'a A,
    page: Option<PageFrame>,
    fresh: Option<ZsPage>,
}

impl<A: PageAllocator> Drop for Spare<'_, A> {
    fn drop(&mut self) {
        if let Some(p) = self.page.take() {
            pages::free_page(self.alloc, p);
        }
        if let Some(z) = self.fresh.take() {
            z.release_pages(self.alloc);
        }
    }
}

/// A new pool id, `1..=MAX_POOL_ID`, wrapping.
#[cfg(not(loom))]
fn next_pool_id() -> u16 {
    use handle::MAX_POOL_ID;
    static NEXT: kbase::sync::AtomicU32 = kbase::sync::AtomicU32::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    (n % MAX_POOL_ID as u32) as u16 + 1
}

/// Loom atomics cannot live in a static; models use one pool at a time.
#[cfg(loom)]
fn next_pool_id() -> u16 {
    1
}

fn try_vec<T>(cap: usize) -> Result<Vec<T>> {
    let mut v = Vec::new();
    v.try_reserve_exact(cap)?;
    Ok(v)
}

impl<A: PageAllocator> ZsPool<A> {
    /// A pool with the default configuration (chains of up to 8 pages).
    pub fn new(alloc: A) -> Result<ZsPool<A>> {
        Self::with_config(alloc, ZsConfig::default())
    }

    /// A pool with `cfg`. EINVAL for a chain length outside
    /// `1..=MAX_PAGES_PER_ZSPAGE`; ENOMEM if the class table cannot be
    /// allocated. Holds no page until the first `malloc`.
    pub fn with_config(alloc: A, cfg: ZsConfig) -> Result<ZsPool<A>> {
        let table = ClassTable::new(cfg.max_pages_per_zspage)?;
        let mut classes = try_vec(table.classes.len())?;
        for info in &table.classes {
            classes.push(Class {
                info: *info,
                state: Mutex::new_class(ClassState::new(), &lock_class::ZPOOL_CLASS),
            });
        }
        Ok(ZsPool {
            alloc,
            cfg,
            id: next_pool_id(),
            table,
            classes,
            pages: AtomicUsize::new(0),
            compacted: AtomicUsize::new(0),
        })
    }

    /// The configuration the pool was built with.
    pub fn config(&self) -> ZsConfig {
        self.cfg
    }

    /// The page allocator.
    pub fn allocator(&self) -> &A {
        &self.alloc
    }

    /// Allocates an object of `size` bytes (`zs_malloc`); its contents are
    /// undefined until written. Errors: EINVAL for `size == 0`, ENOSPC for
    /// `size > PAGE_SIZE`, ENOMEM when a page or metadata cannot be
    /// allocated with `gfp`.
    pub fn malloc(&self, size: usize, gfp: Gfp) -> Result<Handle> {
        let ci = self.table.index_for(size)?;
        let class = self.classes.get(ci).ok_or(Error::EINVAL)?;
        let mut spare = Spare {
            alloc: &self.alloc,
            page: None,
            fresh: None,
        };
        let mut handles_vec = None;
        let mut slab_vec = None;
        for _ in 0..MALLOC_RETRIES {
            let mut st = class.state.lock();
            let old_handles = handles_vec.take().map(|v| st.handles.adopt(v));
            let old_slab = slab_vec.take().map(|v| st.adopt_slab(v));
            let r = st.alloc(&class.info, size, &mut spare.page, &mut spare.fresh);
            drop(st);
            drop(old_handles);
            drop(old_slab);
            match r? {
                Ok(placed) => {
                    if placed.pages_added != 0 {
                        self.pages.fetch_add(placed.pages_added, Ordering::Relaxed);
                    }
                    return Ok(HandleParts {
                        pool: self.id,
                        class: ci,
                        generation: placed.generation,
                        slot: placed.slot,
                    }
                    .encode());
                }
                Err(Need::Handles(cap)) => handles_vec = Some(try_vec(cap)?),
                Err(Need::Slab(cap)) => slab_vec = Some(try_vec(cap)?),
                Err(Need::Page) => spare.page = Some(pages::alloc_page(&self.alloc, gfp)?),
                Err(Need::ZsPage) => {
                    spare.fresh = Some(ZsPage::new(&self.alloc, &class.info, gfp)?)
                }
            }
        }
        Err(Error::ENOMEM)
    }

    /// Frees an object (`zs_free`). EINVAL for a handle of another pool or
    /// one never handed out, ENOENT for one already freed, EBUSY while a
    /// load of this very object is in flight ([`read_with`](Self::read_with)
    /// running on another CPU); nothing changes then.
    pub fn free(&self, h: Handle) -> Result<()> {
        let (p, class) = self.class_of(h)?;
        let freed = class
            .state
            .lock()
            .free(&class.info, &self.alloc, p.slot, p.generation)?;
        if freed != 0 {
            self.pages.fetch_sub(freed, Ordering::Relaxed);
        }
        Ok(())
    }

    /// Copies `src` to the start of the object (`zs_obj_write`). EINVAL if
    /// `src` is longer than the object, EBUSY while a load of this object is
    /// in flight, plus the handle errors of [`free`](Self::free).
    pub fn write(&self, h: Handle, src: &[u8]) -> Result<()> {
        let (p, class) = self.class_of(h)?;
        let st = class.state.lock();
        let (z, off, size) = st.locate_for_write(&class.info, p.slot, p.generation)?;
        if src.len() > size {
            return Err(Error::EINVAL);
        }
        pages::write_at(&z.pages, off, src)
    }

    /// Copies the object into the start of `dst` and returns its size.
    /// EINVAL if `dst` is shorter than the object, plus the handle errors of
    /// [`free`](Self::free).
    pub fn read(&self, h: Handle, dst: &mut [u8]) -> Result<usize> {
        self.read_with(h, |a, b| {
            let n = a.len() + b.len();
            let out = dst.get_mut(..n).ok_or(Error::EINVAL)?;
            let (x, y) = out.split_at_mut(a.len());
            x.copy_from_slice(a);
            y.copy_from_slice(b);
            Ok(n)
        })?
    }

    /// Zero-copy read (`zs_obj_read_begin` .. `zs_obj_read_end`): calls `f`
    /// with the object's bytes as one segment, or two when it spans a page
    /// boundary (the second is empty otherwise).
    ///
    /// `f` runs with no pool lock held: the class lock is taken only to find
    /// the object and *pin* it (a reader count on the object and on its
    /// zspage), and again, briefly, to unpin it after `f` returns. Loads of
    /// one class therefore decompress in parallel. While pinned, the object
    /// cannot be freed or written (both EBUSY) and compaction skips its
    /// zspage, so the bytes `f` sees stay put; other objects of the same
    /// zspage are allocated, written and freed meanwhile. `f` may call into
    /// the pool (it holds none of its locks).
    pub fn read_with<R>(&self, h: Handle, f: impl FnOnce(&[u8], &[u8]) -> R) -> Result<R> {
        let (p, class) = self.class_of(h)?;
        let segs = class.state.lock().pin(&class.info, p.slot, p.generation)?;
        let _pin = Pinned {
            class,
            slot: p.slot,
        };
        // SAFETY: `pin` succeeded, so until `_pin` is dropped (after `f`
        // returns, or while unwinding out of it) the object is neither freed
        // nor written nor moved and its zspage is not trimmed or freed:
        // `segs` points into held pages whose bytes nobody writes. The
        // slices cannot outlive `f` (its signature is for any lifetime).
        let (a, b) = unsafe { segs.slices() };
        debug_assert_eq!(a.len() + b.len(), segs.len());
        Ok(f(a, b))
    }

    /// The object's size as given to `malloc`.
    pub fn obj_size(&self, h: Handle) -> Result<usize> {
        let (p, class) = self.class_of(h)?;
        let st = class.state.lock();
        Ok(st.handles.get(p.slot, p.generation)?.size as usize)
    }

    /// Pages held from the page allocator (`zs_get_total_pages`).
    pub fn total_pages(&self) -> usize {
        self.pages.load(Ordering::Relaxed)
    }

    /// Compacts every class (`zs_compact`); returns the pages freed.
    pub fn compact(&self) -> usize {
        let mut total = 0;
        for class in &self.classes {
            loop {
                let r = class.state.lock().compact_step(&class.info, &self.alloc);
                let Ok((freed, more)) = r else { break };
                total += freed;
                self.pages.fetch_sub(freed, Ordering::Relaxed);
                if !more {
                    break;
                }
            }
        }
        self.compacted.fetch_add(total, Ordering::Relaxed);
        total
    }

    /// Pool-wide counters. Takes each class lock in turn (objects and bytes
    /// are kept per class, under the class lock, to keep the data path free
    /// of shared atomics); `pages` alone is a pool-wide atomic, read by
    /// [`total_pages`](Self::total_pages) without any lock.
    pub fn stats(&self) -> PoolStats {
        let mut metadata_bytes = self.classes.capacity() * core::mem::size_of::<Class>();
        let (mut objects, mut bytes_stored) = (0, 0);
        for class in &self.classes {
            let st = class.state.lock();
            metadata_bytes += st.heap_bytes();
            objects += st.handles.live();
            bytes_stored += st.bytes;
        }
        PoolStats {
            pages: self.pages.load(Ordering::Relaxed),
            objects,
            bytes_stored,
            pages_compacted: self.compacted.load(Ordering::Relaxed),
            metadata_bytes,
        }
    }

    /// Number of size classes (after merging).
    pub fn nr_classes(&self) -> usize {
        self.classes.len()
    }

    /// Counters of class `index` (`0..nr_classes()`, by increasing size).
    pub fn class_stats(&self, index: usize) -> Option<ClassStats> {
        let class = self.classes.get(index)?;
        let st = class.state.lock();
        Some(ClassStats {
            size: class.info.size,
            pages_per_zspage: class.info.pages_per_zspage,
            objs_per_zspage: class.info.objs_per_zspage,
            huge: class.info.is_huge(),
            objects: st.handles.live(),
            zspages: st.nr_zspages,
            pages: st.pages,
        })
    }

    /// The class index serving `size`-byte objects.
    pub fn class_index(&self, size: usize) -> Result<usize> {
        self.table.index_for(size)
    }

    fn class_of(&self, h: Handle) -> Result<(HandleParts, &Class)> {
        let p = HandleParts::decode(h);
        if p.pool != self.id {
            return Err(Error::EINVAL);
        }
        let class = self.classes.get(p.class).ok_or(Error::EINVAL)?;
        Ok((p, class))
    }
}

impl<A: PageAllocator> Drop for ZsPool<A> {
    /// Gives every page back, including those of objects never freed.
    fn drop(&mut self) {
        for class in &mut self.classes {
            class.state.get_mut().release_all(&self.alloc);
        }
    }
}

const _: () = assert!(PAGE_SIZE <= u16::MAX as usize);
