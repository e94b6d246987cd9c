//! # zpool: a compacting allocator for compressed objects
//!
//! zswap stores each compressed page as one *object* of 1 to `PAGE_SIZE`
//! bytes. Giving every object a page of its own would throw away most of
//! what compression saved, and a general-purpose heap fragments badly under
//! this workload, so, like Linux's `mm/zsmalloc.c`, [`ZsPool`] packs objects
//! into short chains of pages (*zspages*) and hands out opaque [`Handle`]s
//! instead of pointers, which lets it move objects later (compaction) to give
//! pages back. Unlike zsmalloc it does not round objects up to size classes:
//! objects are packed at byte granularity.
//!
//! ## Why not zsmalloc's size classes
//!
//! zsmalloc rounds every object up to a multiple of 16 bytes and keeps one
//! set of zspages per rounded size. On real anonymous memory (lz4, the
//! project's page corpus) that costs 0.7-1.4 % in rounding, and each of the
//! ~100 classes in use strands a partly filled zspage, which on a pool of a
//! few thousand pages is another 1-2 %: 1.029 pool bytes per payload byte
//! after a fill. Finer classes cut the rounding but strand more partial
//! zspages. Byte packing has neither cost: an object takes exactly its size.
//!
//! ## Classes are size bands
//!
//! A class here is a *band* of sizes (eight: up to 256, 768, 1152, 1536,
//! 1920, 2432, 3072 and 4096 bytes, narrow where lz4 and zstd pages of
//! anonymous memory are common). Bands exist for two reasons only: one lock
//! per band lets stores and loads of different sizes run in parallel, and
//! objects of similar size refill each other's holes after frees. Each band
//! strands at most the tail of one page, eight pages in all.
//!
//! ## Class shards per CPU
//!
//! With [`ZsConfig::shards`] = K > 1 (at most [`MAX_SHARDS`], 16), each
//! band is split into K *shards*: independent classes (lock, handle table,
//! zspage slab, gap buckets, fullness groups), band b's shard s at index
//! b x K + s of the pool's class array. [`ZsPool::malloc_on`] and
//! [`ZsPool::malloc_write_on`] take the calling CPU and allocate in shard
//! `cpu % K` of the object's band ([`ZsPool::malloc`] and
//! [`ZsPool::malloc_write`] use shard 0); the shard is part of the handle
//! (below), so `free`, `read`, `read_with`, `read_and_free`, `write` and
//! `obj_size` find it as they find the class, and a CPU loading another
//! CPU's object takes that object's shard lock. zswap creates its pools
//! with one shard per CPU: CPUs that store and load their own pages then
//! write no cache line of the pool in common (the class lock and the gap
//! lists and buckets a store and a load write are per shard).
//!
//! What a shard costs: objects refill holes only within their shard and
//! compaction moves objects only within a shard (an object never changes
//! shard, as it never changes class), so each shard strands its own
//! partly filled zspage per band, and after frees the shards' sparse
//! zspages do not fill each other. The class array grows by K
//! (`MetadataBytes::classes`: 8 x K cache-line-aligned classes of 512
//! bytes, 4 KiB per shard). Measured on the corpus (see the trade-offs
//! below). Compaction, the shrinker pair
//! (count exact per shard, scan round robin over every shard of every
//! band), the statistics and pool destruction cover every shard;
//! [`ZsPool::class_stats`] sums a band's shards (what a band-by-band
//! listing prints), [`ZsPool::shard_stats`] gives one shard.
//!
//! ## Zspage layout
//!
//! A zspage is a chain of up to [`ZsConfig::max_pages_per_zspage`] pages
//! (default 32, maximum 64: offsets are 18-bit in a handle-table entry). An
//! object is `len` bytes at any byte offset of the chain and may span two
//! pages (reads then see two segments, [`ZsPool::read_with`]). The zspage's
//! reverse map lists the handle slots of its live objects sorted by offset,
//! 4 bytes each (offset and length are read from the handle table, where a
//! load finds them: stored once); it
//! is also the free map (free space is what lies between entries, and the
//! tail). Nothing is stored in object memory. Pages are attached lazily: a
//! zspage starts with one page and takes another only when an object at its
//! tail needs it; compaction trims trailing pages that hold no live byte. A
//! zspage whose last object is freed goes back to the page allocator at once.
//! A zspage holds at most 256 objects, which bounds the linear gap search
//! and the reverse map's insert and remove (a move of at most 2 KiB).
//! See `zspage.rs`.
//!
//! Why 32 pages: a complete chain strands the tail its band's next object
//! did not fit, a few hundred bytes per chain whatever its length, so the
//! longer the chain the less it costs per stored byte. On the corpus (lz4)
//! after a fill: 16-page chains 1.0094 pool bytes per payload byte (12.2 B
//! of slack per object), 32 pages 1.0048 (6.2 B), 64 pages 1.0042 (5.4 B:
//! the 256-object cap stops most chains of small objects short of 64
//! pages). Pages are attached lazily, so a long chain costs nothing until
//! it fills; what grows with the chain is one compaction step's work (at
//! most one zspage per lock hold: up to 128 KiB of objects moved at 32
//! pages), which is why the default stops at 32.
//!
//! ## Allocation
//!
//! Each class keeps its zspages in 33 *gap buckets* by the longest free run
//! in their attached pages (128-byte steps; the last bucket, a page or more,
//! also holds every zspage that can still grow). `malloc` searches from the
//! smallest bucket that can hold the object upwards (best fit across
//! zspages) and takes the first fitting gap inside the zspage (first fit
//! within one), so holes left by frees are refilled before any page is
//! added; only when no attached gap fits does it grow a chain by one page,
//! and only when no chain can grow does it start a zspage. The longest inner
//! gap of a zspage is kept up to date in O(1) for appends and most frees,
//! with a rescan of the reverse map only when the longest gap itself was
//! split or joined the tail.
//!
//! Allocation never holds a lock while allocating: under the class lock
//! `malloc` finds out what it lacks (a page, a new zspage, a bigger handle
//! table, zspage slab or reverse map), drops the lock, allocates it with the
//! caller's [`Gfp`] flags, and retries; whatever turned out not to be needed
//! is given back. Page-allocator failures are ENOMEM, never a panic. Reverse
//! maps grow to what a full chain of objects like the present ones would
//! need (not by doubling), so a filled zspage's map has a few spare entries.
//!
//! ## Handles
//!
//! A [`Handle`] is a `u64`: pool id (12 bits) | class (8) | generation (16) |
//! slot (28). The class field is the index of the object's class in the
//! pool's class array, band x K + shard with K shards (at most 8 x 16 =
//! 128 of the 256 the field can name). The class never changes for an
//! object, so every data-path call (`free`, `read`, `read_with`,
//! `read_and_free`, `write`, `obj_size`) decodes the class from the handle
//! and takes only that class's lock: there is no pool-wide handle table and
//! no pool-wide lock. The slot indexes the class's handle table,
//! whose 8-byte entry packs the object's zspage (18 bits), byte offset in
//! the chain (18), exact size (12, as size - 1) and generation; compaction
//! rewrites the entry, so handles stay valid while objects move. A class
//! holds at most 2^18 - 1 zspages (ENOMEM beyond: 16 GiB of 16-page chains
//! per class, 32 GiB at the default 32). Freeing bumps the slot's generation; a
//! handle from another pool is refused with EINVAL, a freed (double free, use
//! after free) one with ENOENT, so bad input never reaches another object's
//! bytes. Generations are 16 bits: a stale handle can alias only after its
//! slot was reused 65536 times, and pool ids repeat after 4095 pools.
//!
//! ## Metadata per object
//!
//! 12 bytes ([`METADATA_BYTES_PER_OBJECT`]): the 8-byte handle-table entry
//! and the 4-byte reverse-map entry (a handle slot). Per zspage there is a descriptor in the
//! class's slab and a page vector (one pointer per page of a full chain),
//! amortised over its objects. [`PoolStats::metadata`] reports every
//! component as allocated (capacity, not length). Emptied zspages free their
//! descriptor slot, page vector and reverse map with their pages; compaction
//! shrinks a reverse map that is more than twice what its zspage needs. The
//! handle table is a directory of chunks of 256 entries (2 KiB; a chunk's
//! free list and counters live in its directory slot): it grows a chunk at
//! a time (no doubling, and no copy of the entries under the lock), and a
//! chunk whose entries are all free goes back to the heap; its directory
//! slot keeps a generation floor so the freed chunk's handles stay stale
//! when the slots are reused.
//!
//! ## Loads without the class lock
//!
//! [`ZsPool::read_with`] (Linux's `zs_obj_read_begin` / `zs_obj_read_end`)
//! takes the class lock only to find the object and *pin* it: it puts the
//! object's handle slot in the class's pin table (`pin.rs`: 9 slots under
//! the class lock, in the lock word's cache line). It drops the lock, runs
//! the caller's closure on the object's bytes (zswap decompresses there),
//! and takes the lock again to unpin. [`ZsPool::read_and_free`] is zswap's
//! load: the hold that unpins also frees the object (`zs_free`), so a load
//! takes the class lock twice, as a read and a free did before, and writes
//! no class-wide cache line but the lock's (the pins and the class's byte
//! counters share it); what else it writes belongs to its object's handle
//! chunk and zspage. Pins change only under the lock, so whoever holds it sees
//! exactly the loads in flight. While an object is pinned, `free` and
//! `write` of it fail with EBUSY (zswap never does either: an entry's owner
//! loads it), and compaction neither moves objects out of nor into the
//! zspage of a pinned object nor packs or trims it: it skips it, so a load
//! never waits for compaction beyond one step's lock hold, and compaction
//! never waits for a load. Only when all 9 places are taken does a load
//! wait (lock dropped) for one to come free. Everything else goes on in the
//! pinned zspage: other objects are allocated, written and freed. Object
//! bytes are therefore only ever reached through raw pointers confined to
//! one object (`pages.rs`), never through a reference to a whole page, so
//! concurrent writes of neighbours claim no byte the reader holds (Miri
//! checks this in the tests).
//!
//! Why the pins are under the lock: as atomic words on a cache line beside
//! the lock (an earlier layout, unpinned with one lock-free store), two
//! CPUs loading objects of one class moved that line between them on every
//! pin, unpin and free, on top of the lock's line. zsmalloc pins a zspage
//! (its zspage lock) rather than an object; a per-object pin here lets
//! `free` and `write` refuse exactly the object being read. A lookup with
//! no lock at all (an optimistic handle read, validated after pinning)
//! would need the handle table's directory and chunks and the zspage slab,
//! which grow and shrink under the lock, to stay readable by a CPU holding
//! no lock (RCU-like deferred frees); not done.
//!
//! ## Compaction and the shrinker
//!
//! Compaction runs in *passes* per class, one source zspage per lock hold.
//! Each zspage is on one of 16 fullness groups by live bytes / attached
//! bytes; a step takes, from the emptiest group, a zspage that is neither
//! pinned nor already a source in this pass, moves its objects (top down)
//! into gaps of zspages that are at least as full (best fit, no allocation),
//! then frees it if it emptied, or slides its remaining objects down over
//! their gaps and trims its trailing pages. Zspages denser than 15/16 are
//! never sources. A pass ends when no source is left; [`ZsPool::compact`]
//! (`zs_compact`) runs one pass over every class.
//!
//! [`ZsPool::shrinker_count`] and [`ZsPool::shrinker_scan`] are Linux's
//! `zs_shrinker_count` / `zs_shrinker_scan`: the count is the pages that
//! packing every zspage in place would free, kept exact per class on every
//! change (no scan); a scan compacts classes round robin until it freed the
//! pages asked for, continuing a class's pass where the last scan stopped.
//! Pages freed either way are counted in [`PoolStats::pages_compacted`].
//! zswap forwards the pair to the kernel's shrinker (see zswap-core).
//!
//! ## Lock order
//!
//! One lock per class (per shard of a band with several shards: each shard
//! is a class). No two class locks are ever held together and the
//! pool takes no other lock of its own under one. The page allocator is
//! called with no lock held when it allocates; pages and metadata are given
//! back (which never blocks) under the class lock, like Linux's
//! `free_zspage`. [`ZsPool::read_with`] runs its closure with no pool lock
//! held, so the closure's own locks (zswap's per-CPU decompression lock) do
//! not nest with the class lock at all, and the closure may even call into
//! the pool. Pins are taken and given back under the class lock, each in a
//! hold of its own (`read_and_free` gives its pin back in the hold that
//! frees). The only pool-wide shared state is three relaxed atomic
//! counters (pages held, pages compacted, the shrinker's round-robin
//! cursor); object and byte counts live in each class, under its lock.
//!
//! ## Measured trade-offs (benches/zpool.rs, lz4 sizes of ../shared/corpus)
//!
//! The bench runs this pool and its previous version (zsmalloc's geometry,
//! kept in `benches/zpool_v1`) in one process, on the 16,303 objects of the
//! corpus (pool bytes / payload bytes; lower is better; the same in each of
//! three runs):
//!
//! | | fill | half freed | + shrinker | churn, worst | + shrinker |
//! |---|---|---|---|---|---|
//! | 16-byte classes (compact()) | 1.0289 | 1.998 | 1.0383 | 1.1148 | 1.0375 |
//! | byte-packed, 16-page chains (shrinker scan) | 1.0094 | 2.028 | 1.0328 | 1.0932 | 1.0317 |
//! | byte-packed, 32-page chains (shrinker scan) | 1.0048 | 2.018 | 1.0359 | 1.0920 | 1.0298 |
//!
//! "Churn" is ten rounds of freeing a random 20 % and storing as many new
//! objects with no compaction: holes are refilled by later objects of the
//! band, so the worst case stays near 1.09 where the classes reached 1.11.
//! Right after a random half is freed both pools hold about twice the
//! payload: only compaction gives pages back, which is why it runs from the
//! shrinker.
//!
//! Metadata, heap bytes per live object (as allocated): 17.2 after the fill
//! (handles 8.7, reverse maps 4.2, descriptors 1.4, page vectors 2.6, class
//! array 0.3; the layout's minimum is 12), 28.1 after a random half is freed
//! and the shrinker ran: handle chunks are half empty then (a handle cannot
//! move, so a chunk is freed only when all its objects go; new objects take
//! the free slots of existing chunks before a chunk is added), which is most
//! of the rise. Before this layout (12-byte handle entries with a reader
//! count, 8-byte reverse-map entries holding offset and length again,
//! 16-page chains, page-sized handle chunks): 27.4 after the fill and 44.2
//! after the half; the pool before that, 38.6. Through zswap
//! (benches/zswap_mem.rs, lz4, all 16,363 pages of the corpus, runs alike)
//! the pool's metadata and the rest of the heap are 17.3 B per stored page
//! and its slack 6.4 (density 1.0049), from 27.7 and 12.4.
//!
//! Class shards (the same bench, objects allocated on K CPUs in turn):
//!
//! | | fill | half freed | + shrinker | churn, worst | + shrinker |
//! |---|---|---|---|---|---|
//! | 1 shard | 1.0048 | 2.018 | 1.0359 | 1.0920 | 1.0298 |
//! | 2 shards | 1.0061 | 2.021 | 1.0355 | 1.1074 | 1.0329 |
//! | 4 shards | 1.0071 | 2.023 | 1.0317 | 1.1360 | 1.0244 |
//!
//! A fill strands one partly filled zspage per band and shard (+0.13 % at
//! 2 shards); churn without compaction costs most (+1.5 % at 2, +4.4 % at
//! 4): a free leaves a hole only its own shard's later objects refill, so
//! the holes wait for the shrinker, which packs each shard as well as one
//! class (the "+ shrinker" columns stay within 0.6 % either way). Through
//! zswap (benches/zswap_mem.rs, lz4, all pages stored on 2 CPUs in turn):
//! pool density 1.0052 -> 1.0056, overhead per stored page 60.6 -> 61.9 B,
//! after a random half is freed and the shrinker ran 1.0321 -> 1.0353.
//!
//! What the 12-byte layout costs: a zspage's reverse map holds only handle
//! slots, so a gap search, a placement between objects and a removal read
//! offsets and lengths from the handle table (entries of one zspage's
//! objects are mostly neighbours there); a free finds its reverse-map entry
//! by a look at both ends of the map (the newest object, a store undone, and
//! the oldest, what loads and invalidations in store order free), then a
//! binary search by the offset its handle entry gives (at most 8 handle-table
//! reads). A scan of the slots from the top, as first written, read all 256
//! slots of a full map when the oldest object went, which made zswap's
//! loads and invalidations slower than with the old 8-byte map.
//!
//! Speed (now / before, in one process, three runs on a loaded two-core
//! machine): malloc + write + read + free of one object in a pool holding
//! the corpus is 0.99-1.42x for 64-byte objects and 1.07-1.18x for 1300
//! (bucket search, reverse-map insert and remove, handle-table lookups),
//! 0.40-0.46x for 2000 and 0.45-0.52x for 4096 (the old classes spanned and
//! rounded there); `read_with` alone was 1.25-1.46x (12.6-13.7 ns) with
//! one lock hold and a lock-free unpin (pin words beside the lock); with
//! the pins under the lock it takes the lock twice again: 21-28 ns
//! (2.5-3.5x, 1300- and 2000-byte objects), the price of a load that
//! writes no class-wide cache line but the lock's. zswap's load, a read
//! then a free of objects stored just before, oldest first, takes two holds
//! either way ([`ZsPool::read_and_free`]): 33-38 ns for 64-byte objects
//! (1.4-2.0x the old pool, whose slot index needed no search; 49-53 ns with
//! `read_with` then `free`, 109-120 ns before the free's binary search) and
//! 47-50 ns for 1300 (0.71-0.85x; 46-53 ns, and 76-81 ns before). In exchange no lock
//! is held while the caller decompresses. A pool-level cost of tens of
//! nanoseconds is about 1 % of a store or load of a page.
//!
//! ## Module map
//!
//! - `lib.rs` (this file): [`ZsPool`], [`ZsConfig`], [`PoolStats`],
//!   [`ClassStats`], [`MetadataBytes`]; the lock-drop-allocate-retry loop,
//!   pinned loads, the shrinker pair.
//! - `class.rs`: the size bands.
//! - `handle.rs`: [`Handle`] encoding and the per-class handle table.
//! - `zspage.rs`: the zspage descriptor: pages, reverse map, gaps.
//! - `state.rs`: everything under one class lock: allocation, free, pins,
//!   gap buckets and fullness groups, compaction steps.
//! - `pages.rs`: page ownership and byte copies over page chains; the
//!   crate's `unsafe` (object bytes through raw pointers, giving pages back).
#![no_std]
#![cfg_attr(not(loom), deny(clippy::undocumented_unsafe_blocks))]

extern crate alloc;

mod class;
mod handle;
mod pages;
mod pin;
mod state;
mod zspage;

use alloc::vec::Vec;

use kbase::sync::{AtomicUsize, Mutex, Ordering, cpu_relax, lock_class};
use kbase::{Error, Gfp, PAGE_SIZE, PageAllocator, Result};

pub use class::{DEFAULT_PAGES_PER_ZSPAGE, MAX_PAGES_PER_ZSPAGE};
pub use handle::{HANDLE_LOCAL_BITS, Handle};

use class::{ClassTable, SizeClass};
use handle::{DirVecs, HandleEntry, HandleParts};
use state::{ClassState, Need, Offer};
use zspage::ZsPage;

/// Metadata bytes per stored object that the layout needs: its handle-table
/// entry (8 bytes: zspage, offset, size, generation) and its reverse-map
/// entry in the zspage (4 bytes: its handle slot).
/// Slack in the tables and the per-zspage descriptors come on top; see
/// [`PoolStats::metadata`] for the measured total.
pub const METADATA_BYTES_PER_OBJECT: usize =
    core::mem::size_of::<HandleEntry>() + core::mem::size_of::<u32>();
const _: () = assert!(METADATA_BYTES_PER_OBJECT <= 12);

/// How many times `malloc` drops the class lock to allocate before it gives
/// up with ENOMEM (only reachable when other threads keep taking what it
/// allocated).
const MALLOC_RETRIES: usize = 16;

/// Pool configuration.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ZsConfig {
    /// Longest zspage chain, in pages, `1..=MAX_PAGES_PER_ZSPAGE` (Linux's
    /// `CONFIG_ZSMALLOC_CHAIN_SIZE`; default [`DEFAULT_PAGES_PER_ZSPAGE`]).
    /// Longer chains waste less at the end of a chain; with lazily attached
    /// pages they cost nothing extra, but a compaction step (one zspage per
    /// lock hold) moves more.
    pub max_pages_per_zspage: usize,
    /// Class shards per size band, `1..=MAX_SHARDS` (default 1). Each shard
    /// is a class of its own (lock, zspages, handle table); an allocation
    /// through [`ZsPool::malloc_on`] or [`ZsPool::malloc_write_on`] goes to
    /// the shard of its CPU (`cpu % shards`), so CPUs storing and loading
    /// their own objects share no class lock. Every extra shard can strand
    /// its own partly filled zspage per band (see the crate docs).
    pub shards: usize,
}

/// Most class shards per size band ([`ZsConfig::shards`]): eight bands of
/// sixteen shards are 128 class slots, which a handle's 8 class bits name.
pub const MAX_SHARDS: usize = 16;
const _: () = assert!(class::NR_CLASSES * MAX_SHARDS <= handle::MAX_CLASS_SLOTS);

impl Default for ZsConfig {
    fn default() -> Self {
        ZsConfig {
            max_pages_per_zspage: DEFAULT_PAGES_PER_ZSPAGE,
            shards: 1,
        }
    }
}

/// Heap bytes of the pool's metadata, by component (capacity, not length:
/// what the allocator handed out, as requested sizes).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MetadataBytes {
    /// The class array (locks and class state headers).
    pub classes: usize,
    /// Handle tables (12 bytes per slot, live or free).
    pub handles: usize,
    /// Zspage descriptors (the classes' slabs, used or free slots).
    pub descriptors: usize,
    /// Page vectors of the zspages (one pointer per page of a full chain).
    pub page_vectors: usize,
    /// Reverse maps (8 bytes per object slot).
    pub reverse_maps: usize,
}

/// Component by component (pools summed, as zswap sums its pools).
impl core::ops::AddAssign for MetadataBytes {
    fn add_assign(&mut self, o: MetadataBytes) {
        self.classes += o.classes;
        self.handles += o.handles;
        self.descriptors += o.descriptors;
        self.page_vectors += o.page_vectors;
        self.reverse_maps += o.reverse_maps;
    }
}

impl MetadataBytes {
    /// Sum of the components.
    pub fn total(&self) -> usize {
        self.classes + self.handles + self.descriptors + self.page_vectors + self.reverse_maps
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
    /// Heap bytes of metadata (the sum of [`metadata`](Self::metadata)).
    /// Not part of `pages`.
    pub metadata_bytes: usize,
    /// Heap bytes of metadata by component.
    pub metadata: MetadataBytes,
}

/// Counters of one size class.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ClassStats {
    /// Smallest object size served.
    pub min_size: usize,
    /// Largest object size served (objects up to this size land here).
    pub size: usize,
    /// Chain length of a complete zspage.
    pub pages_per_zspage: usize,
    /// Live objects.
    pub objects: usize,
    /// Sum of the live objects' sizes.
    pub bytes: usize,
    /// Zspages.
    pub zspages: usize,
    /// Pages attached to this class's zspages.
    pub pages: usize,
    /// Pages that packing each zspage in place would free (this class's
    /// share of [`ZsPool::shrinker_count`]).
    pub freeable: usize,
}

/// One size class: its lock and what it guards, then its geometry.
///
/// `repr(C)` and cache-line aligned: the lock word starts the line and the
/// class state's pin table fills the rest of it (see `pin.rs`); no two
/// classes share a line.
#[repr(C, align(64))]
struct Class {
    state: Mutex<ClassState>,
    info: SizeClass,
}

/// An object pinned by a load in flight; dropping it unpins (one hold of
/// the class lock). [`ZsPool::read_and_free`] unpins by hand instead, in
/// the hold that frees the object.
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
    /// Class shards per band ([`ZsConfig::shards`]).
    shards: usize,
    /// Band `b`'s shard `s` is `classes[b * shards + s]`; a handle's class
    /// field is that index.
    classes: Vec<Class>,
    pages: AtomicUsize,
    compacted: AtomicUsize,
    /// Where the next shrinker scan starts (round robin over the classes).
    scan_cursor: AtomicUsize,
}

/// Memory allocated for a `malloc` but maybe not used; whatever is left goes
/// back when this is dropped (with no lock held).
struct Spare<'a, A: PageAllocator> {
    alloc: &'a A,
    offer: Offer,
}

impl<A: PageAllocator> Drop for Spare<'_, A> {
    fn drop(&mut self) {
        if let Some(p) = self.offer.page.take() {
            pages::free_page(self.alloc, p);
        }
        if let Some(z) = self.offer.fresh.take() {
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

/// A handle-table chunk (a page of entries), built out of line so that the
/// data path's stack frame does not carry a page-sized temporary.
#[cold]
#[inline(never)]
fn new_chunk(gfp: Gfp) -> Result<alloc::boxed::Box<handle::Chunk>> {
    kbase::try_box(handle::Chunk::new(), gfp)
}

fn try_vec<T>(cap: usize) -> Result<Vec<T>> {
    let mut v = Vec::new();
    v.try_reserve_exact(cap)?;
    Ok(v)
}

impl<A: PageAllocator> ZsPool<A> {
    /// A pool with the default configuration (chains of up to 32 pages).
    pub fn new(alloc: A) -> Result<ZsPool<A>> {
        Self::with_config(alloc, ZsConfig::default())
    }

    /// A pool with `cfg`. EINVAL for a chain length outside
    /// `1..=MAX_PAGES_PER_ZSPAGE` or a shard count outside
    /// `1..=MAX_SHARDS`; ENOMEM if the class table cannot be allocated.
    /// Holds no page until the first `malloc`.
    pub fn with_config(alloc: A, cfg: ZsConfig) -> Result<ZsPool<A>> {
        let table = ClassTable::new(cfg.max_pages_per_zspage)?;
        let shards = cfg.shards;
        if !(1..=MAX_SHARDS).contains(&shards) {
            return Err(Error::EINVAL);
        }
        let mut classes = try_vec(table.classes.len() * shards)?;
        for info in &table.classes {
            for _ in 0..shards {
                classes.push(Class {
                    info: *info,
                    state: Mutex::new_class(ClassState::new(), &lock_class::ZPOOL_CLASS),
                });
            }
        }
        Ok(ZsPool {
            alloc,
            cfg,
            id: next_pool_id(),
            table,
            shards,
            classes,
            pages: AtomicUsize::new(0),
            compacted: AtomicUsize::new(0),
            scan_cursor: AtomicUsize::new(0),
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
    ///
    /// The object goes to shard 0 of its band; see
    /// [`malloc_on`](Self::malloc_on).
    pub fn malloc(&self, size: usize, gfp: Gfp) -> Result<Handle> {
        self.alloc_object(0, size, None, gfp)
    }

    /// [`malloc`](Self::malloc) on CPU `cpu`: the object goes to the class
    /// shard `cpu % shards` of its band. Any `cpu` is accepted (the caller
    /// need not be pinned to it: a shard is only a lock and a set of
    /// zspages, and every call on the object later takes the lock of the
    /// shard its handle names, whichever CPU it runs on).
    pub fn malloc_on(&self, cpu: usize, size: usize, gfp: Gfp) -> Result<Handle> {
        self.alloc_object(self.shard_of(cpu), size, None, gfp)
    }

    /// Allocates an object of `src.len()` bytes and copies `src` into it,
    /// in the class-lock hold that places it ([`malloc`](Self::malloc) then
    /// [`write`](Self::write) with one lock round trip and no handle
    /// lookup; what zswap's store does with a compressed page). The errors
    /// of `malloc` for `src.len()`; on any error no object is left behind.
    ///
    /// The object goes to shard 0 of its band; see
    /// [`malloc_write_on`](Self::malloc_write_on).
    pub fn malloc_write(&self, src: &[u8], gfp: Gfp) -> Result<Handle> {
        self.alloc_object(0, src.len(), Some(src), gfp)
    }

    /// [`malloc_write`](Self::malloc_write) on CPU `cpu`: the object goes to
    /// the class shard `cpu % shards` of its band (zswap's store, which
    /// knows its CPU). As [`malloc_on`](Self::malloc_on), any `cpu` is
    /// accepted.
    pub fn malloc_write_on(&self, cpu: usize, src: &[u8], gfp: Gfp) -> Result<Handle> {
        self.alloc_object(self.shard_of(cpu), src.len(), Some(src), gfp)
    }

    /// The class shard of CPU `cpu` (no division for the CPUs below the
    /// shard count, nor with one shard).
    #[inline]
    fn shard_of(&self, cpu: usize) -> usize {
        if cpu < self.shards {
            cpu
        } else if self.shards == 1 {
            0
        } else {
            cpu % self.shards
        }
    }

    /// [`malloc`](Self::malloc) of `size` bytes in shard `shard`
    /// (`< shards`) of its band, plus, with `src` (of `size` bytes), its
    /// copy into the new object under the same hold.
    fn alloc_object(
        &self,
        shard: usize,
        size: usize,
        src: Option<&[u8]>,
        gfp: Gfp,
    ) -> Result<Handle> {
        let ci = self.table.index_for(size)? * self.shards + shard;
        let class = self.classes.get(ci).ok_or(Error::EINVAL)?;
        let mut spare = Spare {
            alloc: &self.alloc,
            offer: Offer {
                page: None,
                fresh: None,
                objs: None,
                chunk: None,
                old_objs: None,
            },
        };
        let mut handles_vec = None;
        let mut slab_vec = None;
        for _ in 0..MALLOC_RETRIES {
            let mut st = class.state.lock();
            let old_handles = handles_vec.take().map(|v| st.handles.adopt_dir(v));
            let old_slab = slab_vec.take().map(|v| st.adopt_slab(v));
            let r = st.alloc(&class.info, size, &mut spare.offer);
            if let (Some(src), Ok(Ok(placed))) = (src, &r) {
                let (slot, generation) = (placed.slot, placed.generation);
                let written = st
                    .locate_for_write(slot, generation)
                    .and_then(|(z, off, cap)| {
                        if src.len() > cap {
                            return Err(Error::EINVAL);
                        }
                        pages::write_at(&z.pages, off, src)?;
                        pages::prefetch_after(&z.pages, off + src.len());
                        Ok(())
                    });
                if let Err(e) = written {
                    // Not expected (the object was placed for `size`
                    // bytes just now): given back in the same hold.
                    let added = placed.pages_added;
                    let freed = st.free(&class.info, &self.alloc, slot, generation);
                    drop(st);
                    let freed = freed.unwrap_or(0);
                    if added > freed {
                        self.pages.fetch_add(added - freed, Ordering::Relaxed);
                    } else if freed > added {
                        self.pages.fetch_sub(freed - added, Ordering::Relaxed);
                    }
                    drop(old_handles);
                    drop(old_slab);
                    drop(spare.offer.old_objs.take());
                    return Err(e);
                }
            }
            drop(st);
            drop(old_handles);
            drop(old_slab);
            drop(spare.offer.old_objs.take());
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
                Err(Need::Handles(cap)) => handles_vec = Some(DirVecs::try_with_capacity(cap)?),
                Err(Need::Slab(cap)) => slab_vec = Some(try_vec(cap)?),
                Err(Need::Objs(cap)) => spare.offer.objs = Some(try_vec(cap)?),
                Err(Need::HandleChunk) => spare.offer.chunk = Some(new_chunk(gfp)?),
                Err(Need::Page) => spare.offer.page = Some(pages::alloc_page(&self.alloc, gfp)?),
                Err(Need::ZsPage) => {
                    spare.offer.fresh = Some(ZsPage::new(&self.alloc, &class.info, gfp)?)
                }
            }
        }
        Err(Error::ENOMEM)
    }

    /// The handle of this pool whose low bits are `local` (from
    /// [`Handle::local`] of a handle of this pool): what a user that records
    /// the pool beside the object keeps instead of the whole handle. Like any
    /// handle, it is validated on use.
    pub fn handle_from_local(&self, local: u64) -> Handle {
        Handle::from_raw(
            (u64::from(self.id) << HANDLE_LOCAL_BITS) | (local & ((1 << HANDLE_LOCAL_BITS) - 1)),
        )
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
        let (z, off, size) = st.locate_for_write(p.slot, p.generation)?;
        if src.len() > size {
            return Err(Error::EINVAL);
        }
        pages::write_at(&z.pages, off, src)
    }

    /// Copies the object into the start of `dst` and returns its size.
    /// EINVAL if `dst` is shorter than the object, plus the handle errors of
    /// [`free`](Self::free).
    ///
    /// The copy (at most a page) is made under the class lock: one lock
    /// round trip instead of the pin and unpin of
    /// [`read_with`](Self::read_with).
    pub fn read(&self, h: Handle, dst: &mut [u8]) -> Result<usize> {
        let (p, class) = self.class_of(h)?;
        let st = class.state.lock();
        let segs = st.segments(p.slot, p.generation)?;
        // SAFETY: the class lock is held until the copy is done: nothing
        // writes, moves or frees the object or its pages meanwhile (all of
        // that happens under this lock), and the slices do not outlive it.
        let (a, b) = unsafe { segs.slices() };
        let n = a.len() + b.len();
        let out = dst.get_mut(..n).ok_or(Error::EINVAL)?;
        let (x, y) = out.split_at_mut(a.len());
        x.copy_from_slice(a);
        y.copy_from_slice(b);
        drop(st);
        Ok(n)
    }

    /// Zero-copy read (`zs_obj_read_begin` .. `zs_obj_read_end`): calls `f`
    /// with the object's bytes as one segment, or two when it spans a page
    /// boundary (the second is empty otherwise).
    ///
    /// `f` runs with no pool lock held: the class lock is taken to find the
    /// object and *pin* it (see the crate docs), dropped while `f` runs, and
    /// taken again to unpin it. Loads of one class therefore decompress in
    /// parallel. While pinned, the object cannot be freed or written (both
    /// EBUSY) and compaction skips its zspage, so the bytes `f` sees stay
    /// put; other objects of the same zspage are allocated, written and
    /// freed meanwhile. `f` may call into the pool (it holds none of its
    /// locks).
    pub fn read_with<R>(&self, h: Handle, f: impl FnOnce(&[u8], &[u8]) -> R) -> Result<R> {
        let (p, class) = self.class_of(h)?;
        let (segs, _, pin) = self.pin(p, class)?;
        // SAFETY: `pin` succeeded, so until `pin` is dropped (after `f`
        // returns, or while unwinding out of it) the object is neither freed
        // nor written nor moved and its zspage is not packed, trimmed or
        // freed: `segs` points into held pages whose bytes nobody writes.
        // The slices cannot outlive `f` (its signature is for any lifetime).
        let (a, b) = unsafe { segs.slices() };
        debug_assert_eq!(a.len() + b.len(), segs.len());
        let r = f(a, b);
        drop(pin);
        Ok(r)
    }

    /// A read that consumes the object: [`read_with`](Self::read_with), then,
    /// if `f` returned `Ok`, [`free`](Self::free), in the one hold of the
    /// class lock that unpins it (zswap's load: `zs_obj_read_end` then
    /// `zs_free`). Two lock holds in all, as a read alone.
    ///
    /// `Ok(Ok(t))`: read and freed. `Ok(Err(e))`: `f` failed; the object is
    /// unpinned and kept. `Err`: the handle errors of `read_with`, or the
    /// object was read but not freed (EBUSY: another load of it is in
    /// flight); it is kept then and `f`'s result is dropped.
    #[inline]
    pub fn read_and_free<T, E>(
        &self,
        h: Handle,
        f: impl FnOnce(&[u8], &[u8]) -> core::result::Result<T, E>,
    ) -> Result<core::result::Result<T, E>> {
        let (p, class) = self.class_of(h)?;
        let (segs, entry, pin) = self.pin(p, class)?;
        // SAFETY: as in `read_with`: the object stays pinned until the hold
        // below, after `f` returned (or until `pin` drops while unwinding).
        let (a, b) = unsafe { segs.slices() };
        let r = f(a, b);
        // The unpin is done by hand, under the lock taken here.
        core::mem::forget(pin);
        let mut st = class.state.lock();
        if r.is_err() {
            st.unpin(p.slot);
            return Ok(r);
        }
        // The handle entry the pin found is still the object's: a pinned
        // object is neither freed nor moved.
        let freed = st.unpin_and_free(&class.info, &self.alloc, p.slot, entry)?;
        drop(st);
        if freed != 0 {
            self.pages.fetch_sub(freed, Ordering::Relaxed);
        }
        Ok(r)
    }

    /// Finds and pins the object behind `p` (one hold of `class`'s lock),
    /// waiting with the lock dropped while every pin is taken.
    /// Also returns the object's handle entry (unchanged while pinned).
    #[inline]
    fn pin<'a>(
        &self,
        p: HandleParts,
        class: &'a Class,
    ) -> Result<(pages::RawSegs, HandleEntry, Pinned<'a>)> {
        loop {
            let r = class.state.lock().pin(p.slot, p.generation)?;
            match r {
                Some((segs, entry)) => {
                    let pin = Pinned {
                        class,
                        slot: p.slot,
                    };
                    return Ok((segs, entry, pin));
                }
                // Every pin is taken by loads in flight, which end with one
                // lock hold each: wait for one with the lock dropped.
                None => cpu_relax(),
            }
        }
    }

    /// The object's size as given to `malloc`.
    pub fn obj_size(&self, h: Handle) -> Result<usize> {
        let (p, class) = self.class_of(h)?;
        let st = class.state.lock();
        Ok(st.handles.get(p.slot, p.generation)?.size())
    }

    /// Pages held from the page allocator (`zs_get_total_pages`).
    pub fn total_pages(&self) -> usize {
        self.pages.load(Ordering::Relaxed)
    }

    /// Runs compaction steps on `class` (one zspage per lock hold) until the
    /// pass has no source left or `budget` pages were freed; returns the
    /// pages freed.
    fn compact_class(&self, class: &Class, budget: usize, new_pass: bool) -> usize {
        if new_pass {
            class.state.lock().new_pass();
        }
        let mut freed = 0;
        while freed < budget {
            let r = class.state.lock().compact_step(&class.info, &self.alloc);
            let Ok(step) = r else { break };
            freed += step.freed;
            if step.freed != 0 {
                self.pages.fetch_sub(step.freed, Ordering::Relaxed);
            }
            if let Some((id, cap)) = step.shrink {
                // A smaller reverse map, allocated with no lock held; if the
                // heap cannot give one, the zspage keeps its map.
                if let Ok(v) = try_vec::<u32>(cap) {
                    let old = class.state.lock().shrink_objs(id, v);
                    drop(old);
                }
            }
            if !step.more {
                break;
            }
        }
        freed
    }

    /// Compacts every class, every shard of each (`zs_compact`); returns
    /// the pages freed, also counted in `pages_compacted`.
    pub fn compact(&self) -> usize {
        let total = self
            .classes
            .iter()
            .map(|c| self.compact_class(c, usize::MAX, true))
            .sum();
        self.compacted.fetch_add(total, Ordering::Relaxed);
        total
    }

    /// The pool's shrinker count (`zs_shrinker_count`): pages compaction
    /// could give back, reckoned as what packing every zspage in place would
    /// free. Exact per class at the time each class is read; takes each
    /// class lock (every shard's) for a moment.
    pub fn shrinker_count(&self) -> usize {
        self.classes.iter().map(|c| c.state.lock().freeable).sum()
    }

    /// The pool's shrinker scan (`zs_shrinker_scan`): compacts classes
    /// (every shard of every band, each a class of its own), round robin
    /// from where the last scan stopped, until `nr_to_scan` pages were freed
    /// or every class was tried. Returns the pages freed,
    /// also counted in `pages_compacted`. Each lock hold covers one zspage.
    pub fn shrinker_scan(&self, nr_to_scan: usize) -> usize {
        let n = self.classes.len();
        let start = self.scan_cursor.fetch_add(1, Ordering::Relaxed) % n.max(1);
        let mut freed = 0;
        for i in 0..n {
            if freed >= nr_to_scan {
                break;
            }
            let Some(class) = self.classes.get((start + i) % n) else {
                break;
            };
            if class.state.lock().freeable == 0 {
                continue;
            }
            let mut got = self.compact_class(class, nr_to_scan - freed, false);
            if got == 0 {
                // This pass of the class is used up: start another.
                got = self.compact_class(class, nr_to_scan - freed, true);
            }
            freed += got;
        }
        self.compacted.fetch_add(freed, Ordering::Relaxed);
        freed
    }

    /// Pool-wide counters. Takes each class lock in turn (objects and bytes
    /// are kept per class, under the class lock, to keep the data path free
    /// of shared atomics); `pages` alone is a pool-wide atomic, read by
    /// [`total_pages`](Self::total_pages) without any lock.
    pub fn stats(&self) -> PoolStats {
        let mut md = MetadataBytes {
            classes: self.classes.capacity() * core::mem::size_of::<Class>(),
            ..MetadataBytes::default()
        };
        let (mut objects, mut bytes_stored) = (0, 0);
        for class in &self.classes {
            let st = class.state.lock();
            let [h, d, pv, rm] = st.heap_bytes();
            md.handles += h;
            md.descriptors += d;
            md.page_vectors += pv;
            md.reverse_maps += rm;
            objects += st.handles.live();
            bytes_stored += st.bytes;
        }
        PoolStats {
            pages: self.pages.load(Ordering::Relaxed),
            objects,
            bytes_stored,
            pages_compacted: self.compacted.load(Ordering::Relaxed),
            metadata_bytes: md.total(),
            metadata: md,
        }
    }

    /// Number of size classes (bands; each has [`nr_shards`](Self::nr_shards)
    /// shards).
    pub fn nr_classes(&self) -> usize {
        self.table.classes.len()
    }

    /// Class shards per band ([`ZsConfig::shards`]).
    pub fn nr_shards(&self) -> usize {
        self.shards
    }

    /// Counters of class `index` (`0..nr_classes()`, by increasing size),
    /// summed over its shards (each shard read under its lock in turn).
    pub fn class_stats(&self, index: usize) -> Option<ClassStats> {
        let mut sum = self.shard_stats(index, 0)?;
        for s in 1..self.shards {
            let c = self.shard_stats(index, s)?;
            sum.objects += c.objects;
            sum.bytes += c.bytes;
            sum.zspages += c.zspages;
            sum.pages += c.pages;
            sum.freeable += c.freeable;
        }
        Some(sum)
    }

    /// Counters of shard `shard` (`0..nr_shards()`) of class `index`.
    pub fn shard_stats(&self, index: usize, shard: usize) -> Option<ClassStats> {
        let class = self.shard(index, shard)?;
        let st = class.state.lock();
        Some(ClassStats {
            min_size: class.info.min,
            size: class.info.max,
            pages_per_zspage: class.info.pages_per_zspage,
            objects: st.handles.live(),
            bytes: st.bytes,
            zspages: st.nr_zspages,
            pages: st.pages,
            freeable: st.freeable,
        })
    }

    /// Class `index`'s counters recounted from its zspages, for checking
    /// [`class_stats`](Self::class_stats): (objects, bytes, pages, zspages),
    /// summed over its shards; zspages is `usize::MAX` if any shard's lists
    /// are inconsistent.
    #[doc(hidden)]
    pub fn class_recount(&self, index: usize) -> Option<(usize, usize, usize, usize)> {
        let mut sum = (0, 0, 0, 0);
        for s in 0..self.shards {
            let r = self.shard_recount(index, s)?;
            sum.0 += r.0;
            sum.1 += r.1;
            sum.2 += r.2;
            sum.3 = if r.3 == usize::MAX || sum.3 == usize::MAX {
                usize::MAX
            } else {
                sum.3 + r.3
            };
        }
        Some(sum)
    }

    /// [`class_recount`](Self::class_recount) of one shard, for checking
    /// [`shard_stats`](Self::shard_stats).
    #[doc(hidden)]
    pub fn shard_recount(
        &self,
        index: usize,
        shard: usize,
    ) -> Option<(usize, usize, usize, usize)> {
        let class = self.shard(index, shard)?;
        Some(class.state.lock().recount(&class.info))
    }

    /// The class index serving `size`-byte objects.
    pub fn class_index(&self, size: usize) -> Result<usize> {
        self.table.index_for(size)
    }

    /// The class (band) and shard of a handle of this pool, as decoded from
    /// it (EINVAL for another pool's or an impossible one). The object need
    /// not be live.
    pub fn shard_of_handle(&self, h: Handle) -> Result<(usize, usize)> {
        let (p, _) = self.class_of(h)?;
        Ok((p.class / self.shards, p.class % self.shards))
    }

    fn shard(&self, index: usize, shard: usize) -> Option<&Class> {
        if index >= self.nr_classes() || shard >= self.shards {
            return None;
        }
        self.classes.get(index * self.shards + shard)
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
