//! All the memory zswap uses per stored page, against the ideal and against
//! a model of Linux computed from the same compressed lengths.
//!
//! Pages: `../shared/corpus/*.bin` (or `ZSWAP_CORPUS_DIR`), each file alone
//! and all of them together, in address order into consecutive slots, lz4
//! and zstd; synthetic pages when there is no corpus. Zero pages are not
//! handed to zswap (the swap core keeps them, as Linux's zeromap does since
//! 6.12); they count in the original bytes and cost nothing anywhere.
//!
//! What is counted, all in one run:
//!
//! - **payload**: the compressed length of each page (zswap's own
//!   compressor, run alone on the same page), `PAGE_SIZE` for a page that
//!   does not shrink, 0 for a same-filled page. **ideal** = original bytes /
//!   payload: a pool with no slack and no metadata. zswap (like Linux since
//!   6.12) compresses same-filled pages that are not zero like any page:
//!   **pool density** = pool bytes / the bytes of the objects it holds.
//! - **pool pages**: `Zswap::total_pages()` after the fill.
//! - **heap**: every allocation zswap makes while storing, by the size the
//!   allocator really hands out (`malloc_usable_size`), through a counting
//!   global allocator that counts only inside zswap's calls. Split by the
//!   requested size into entries, tree leaves and the rest; the rest is
//!   split again into the pool's metadata by component, as the pool reports
//!   it (`Zswap::pool_metadata`, requested sizes: handle tables, reverse
//!   maps, zspage descriptors, page vectors; the class arrays are made with
//!   the pool and counted in *fixed*), and what is left: LRU records and
//!   the allocator's rounding of every metadata allocation.
//! - **entry slabs**: the pages of the entry cache (`zswap_entry_cache`),
//!   counted with the entries; **other pages**: any further pages zswap
//!   takes from the page allocator beyond the pool's and the entry cache's.
//! - **fixed**: what `Zswap::new` and `swapon` allocate (compression
//!   contexts, tree tops), shown apart: it does not grow with the pages.
//!
//! all-in = pool pages + heap + other pages; the **all-in ratio / ideal** =
//! payload / all-in bytes, and the **overhead per stored page** = (all-in -
//! payload) / pages stored.
//!
//! The Linux model, from the same lengths: zsmalloc's size classes (32 to
//! 4096 bytes in steps of 16, chains of up to 8 pages chosen for least
//! waste, classes of equal geometry merged), each object `length + 8` bytes
//! (the handle zsmalloc keeps in the object), zspages full; plus per stored
//! page a 56-byte `zswap_entry`, 8 bytes of xarray and an 8-byte handle
//! (zero pages skipped, same-filled ones compressed, as since 6.12).
//!
//! After the fill of all files a random half is invalidated, the pool's
//! compaction shrinker runs as reclaim would run it (`pool_shrinker_count`,
//! then `pool_shrinker_scan` in batches of 128 until it stops; no direct
//! `compact()`), and the pool's density is printed again. A last row
//! stores all files on 2 CPUs in turn (page i on CPU i % 2), which puts
//! them in the pool's two class shards: what per-CPU shards cost (no
//! target).
//!
//! Run: `cargo bench --bench zswap_mem`.

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicI64, Ordering};

use common::{Page, Rng, load_corpus, new_platform, params, set_cpu, swapcache_folio};
use kbase::{Gfp, HeapPageAllocator, PAGE_SIZE, PageAllocator, PageFrame, Result};
use zswap_core::{Compressor, CompressorKind, LEAF_SIZE, ShrinkControl, ShrinkResult, Zswap};

// ---------------------------------------------------------------------------
// Counting
// ---------------------------------------------------------------------------

thread_local! {
    /// Count this thread's allocations (only inside zswap's calls).
    static COUNTING: Cell<bool> = const { Cell::new(false) };
}

/// Heap bytes counted, by component.
static HEAP: [AtomicI64; 3] = [AtomicI64::new(0), AtomicI64::new(0), AtomicI64::new(0)];
const ENTRIES: usize = 0;
const TREE: usize = 1;
const REST: usize = 2;
/// Pages zswap took from the page allocator while counted.
static PAGES: AtomicI64 = AtomicI64::new(0);

/// Bytes of one tree leaf: its entry ids and its count.
const LEAF_BYTES: usize = LEAF_SIZE;

/// Entries come from the entry cache's slab pages (counted as pages, with
/// the entries), never from the heap: a heap block of an entry's size is
/// something else and counts with the rest.
fn component(size: usize) -> usize {
    match size {
        LEAF_BYTES => TREE,
        _ => REST,
    }
}

#[cfg(target_os = "linux")]
fn usable_size(ptr: *mut u8, _layout: Layout) -> usize {
    unsafe extern "C" {
        fn malloc_usable_size(ptr: *mut std::ffi::c_void) -> usize;
    }
    // SAFETY: `ptr` is a live block of the system allocator (glibc's malloc
    // family, which System uses on Linux for every alignment).
    unsafe { malloc_usable_size(ptr.cast()) }
}

#[cfg(not(target_os = "linux"))]
fn usable_size(_ptr: *mut u8, layout: Layout) -> usize {
    layout.size()
}

struct Counting;

// SAFETY: forwards to System, which upholds GlobalAlloc's contract; the
// counting touches only atomics and a const-initialised thread-local Cell
// (no allocation, no destructor).
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's contract, forwarded.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() && COUNTING.with(|c| c.get()) {
            HEAP[component(layout.size())]
                .fetch_add(usable_size(p, layout) as i64, Ordering::Relaxed);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if COUNTING.with(|c| c.get()) {
            HEAP[component(layout.size())]
                .fetch_sub(usable_size(ptr, layout) as i64, Ordering::Relaxed);
        }
        // SAFETY: the caller's contract, forwarded.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Runs `f` with counting on.
fn counted<R>(f: impl FnOnce() -> R) -> R {
    COUNTING.with(|c| c.set(true));
    let r = f();
    COUNTING.with(|c| c.set(false));
    r
}

/// Runs `f` with counting off (restoring what it was).
fn uncounted<R>(f: impl FnOnce() -> R) -> R {
    let was = COUNTING.with(|c| c.replace(false));
    let r = f();
    COUNTING.with(|c| c.set(was));
    r
}

fn heap_snapshot() -> [i64; 3] {
    HEAP.each_ref().map(|a| a.load(Ordering::Relaxed))
}

/// Page allocator that counts the pages zswap takes while counted, and
/// never counts the heap blocks that back the pages themselves.
struct CountingPages {
    inner: HeapPageAllocator,
}

// SAFETY: forwards to HeapPageAllocator, which upholds the contract.
unsafe impl PageAllocator for CountingPages {
    fn alloc_page(&self, gfp: Gfp) -> Result<PageFrame> {
        let counting = COUNTING.with(|c| c.get());
        let r = uncounted(|| self.inner.alloc_page(gfp));
        if r.is_ok() && counting {
            PAGES.fetch_add(1, Ordering::Relaxed);
        }
        r
    }

    unsafe fn free_page(&self, page: PageFrame) {
        if COUNTING.with(|c| c.get()) {
            PAGES.fetch_sub(1, Ordering::Relaxed);
        }
        // SAFETY: the caller's contract: the page came from `inner`.
        uncounted(|| unsafe { self.inner.free_page(page) })
    }
}

fn counting_pages() -> &'static CountingPages {
    static P: std::sync::OnceLock<CountingPages> = std::sync::OnceLock::new();
    P.get_or_init(|| CountingPages {
        inner: HeapPageAllocator::new(),
    })
}

// ---------------------------------------------------------------------------
// The Linux model
// ---------------------------------------------------------------------------

/// zsmalloc's class geometry (Linux 6.8..6.18, 4 KiB pages, chains of up to
/// `CONFIG_ZSMALLOC_CHAIN_SIZE` = 8 pages).
struct ZsModel {
    /// For each class index: (pages per zspage, objects per zspage).
    geometry: Vec<(usize, usize)>,
}

const ZS_MIN_ALLOC: usize = 32;
const ZS_DELTA: usize = 16;
const ZS_CHAIN: usize = 8;
const ZS_HANDLE: usize = 8;
const LINUX_ENTRY: usize = 56;
const LINUX_XARRAY: usize = 8;

impl ZsModel {
    fn new() -> ZsModel {
        let nr = (PAGE_SIZE - ZS_MIN_ALLOC).div_ceil(ZS_DELTA) + 1;
        let mut geometry = vec![(0, 0); nr];
        let mut prev: Option<(usize, usize)> = None;
        for i in (0..nr).rev() {
            let size = (ZS_MIN_ALLOC + i * ZS_DELTA).min(PAGE_SIZE);
            let chain = if size.is_power_of_two() {
                1
            } else {
                (1..=ZS_CHAIN)
                    .min_by_key(|&k| ((k * PAGE_SIZE) % size, k))
                    .unwrap()
            };
            let objs = chain * PAGE_SIZE / size;
            // A class with the geometry of the next larger one is merged
            // into it (`can_merge`): its objects use the larger slots.
            let g = match prev {
                Some(p) if p == (chain, objs) => p,
                _ => (chain, objs),
            };
            geometry[i] = g;
            prev = Some(g);
        }
        ZsModel { geometry }
    }

    /// Pool bytes of an object of `len` bytes, zspages full.
    fn object_bytes(&self, len: usize) -> f64 {
        let size = len + ZS_HANDLE;
        let i = if size <= ZS_MIN_ALLOC {
            0
        } else {
            (size - ZS_MIN_ALLOC).div_ceil(ZS_DELTA)
        };
        let (chain, objs) = self.geometry[i.min(self.geometry.len() - 1)];
        (chain * PAGE_SIZE) as f64 / objs as f64
    }
}

// ---------------------------------------------------------------------------
// One measurement
// ---------------------------------------------------------------------------

struct Figures {
    pages: usize,
    stored: usize,
    payload: f64,
    /// Bytes of all objects zswap stores (same-filled pages included).
    stored_payload: f64,
    pool: f64,
    heap: [f64; 3],
    /// The pool's metadata after the fill, by component (requested sizes).
    pool_meta: zpool::MetadataBytes,
    entry_pages: f64,
    other_pages: f64,
    fixed: f64,
    linux_pool: f64,
    linux_meta: f64,
    /// Pool bytes / live payload after invalidating a random half and
    /// running the pool's shrinker, and the pages it compacted.
    after_free_density: Option<(f64, u64)>,
}

impl Figures {
    fn all_in(&self) -> f64 {
        self.pool + self.heap.iter().sum::<f64>() + self.entry_pages + self.other_pages
    }
}

fn is_zero(p: &[u8; PAGE_SIZE]) -> bool {
    p.iter().all(|&b| b == 0)
}

/// Stores `pages` with `kind` on `cpus` CPUs in turn (page i on CPU
/// i % cpus; zswap's pool has a class shard per CPU) and counts what it
/// takes; with `churn`, also the density after a random half is freed and
/// the shrinker ran.
fn measure(kind: CompressorKind, pages: &[&Page], churn: bool, cpus: usize) -> Figures {
    // The compressed lengths, from zswap's compressor run alone.
    let comp = Compressor::new(kind, 1, Gfp::KERNEL).expect("compressor");
    let lens: Vec<Option<usize>> = pages
        .iter()
        .map(|p| (!is_zero(p)).then(|| comp.compress(0, p, |r| r.unwrap().len().min(PAGE_SIZE))))
        .collect();
    let model = ZsModel::new();
    let (mut linux_pool, mut linux_meta) = (0.0, 0.0);
    for &l in lens.iter().flatten() {
        linux_meta += (LINUX_ENTRY + LINUX_XARRAY + ZS_HANDLE) as f64;
        linux_pool += model.object_bytes(l);
    }
    // The ideal keeps same-filled pages for free; zswap (as Linux since
    // 6.12) compresses them like any page.
    let payload: usize = pages
        .iter()
        .zip(&lens)
        .filter(|(p, _)| kbase::is_same_filled(&p[..]).is_none())
        .filter_map(|(_, l)| *l)
        .sum();
    let stored_payload: usize = lens.iter().flatten().sum();

    let h0 = heap_snapshot();
    let p0 = PAGES.load(Ordering::Relaxed);
    let platform = new_platform(counting_pages(), cpus);
    let ty = platform
        .swap
        .swapon(pages.len() as u64 + 1, Gfp::KERNEL)
        .expect("swapon");
    let zswap = counted(|| {
        let z = Zswap::new(platform, params(kind), Gfp::KERNEL).expect("zswap");
        z.swapon(ty, pages.len() as u64 + 1).expect("zswap swapon");
        z
    });
    let h1 = heap_snapshot();
    let p1 = PAGES.load(Ordering::Relaxed);
    let mut slots = Vec::new();
    for (i, (p, l)) in pages.iter().zip(&lens).enumerate() {
        set_cpu(i % cpus);
        let folio = swapcache_folio(&zswap, p);
        let swp = folio.swap().unwrap();
        if l.is_some() {
            counted(|| zswap.store(&folio)).expect("store");
            slots.push(swp);
        }
        folio.unlock();
        zswap.platform().swap.delete_from_swap_cache(&folio);
    }
    set_cpu(0);
    let h2 = heap_snapshot();
    let p2 = PAGES.load(Ordering::Relaxed);
    let pool_pages = zswap.total_pages();
    let pool_meta = zswap.pool_metadata().expect("pool metadata");
    let heap: [f64; 3] = std::array::from_fn(|i| (h2[i] - h1[i]) as f64);
    let fixed = (h1.iter().sum::<i64>() - h0.iter().sum::<i64>()) as f64
        + ((p1 - p0) * PAGE_SIZE as i64) as f64;
    let entry_pages = (zswap.entry_cache_pages() * PAGE_SIZE) as f64;
    let other_pages = ((p2 - p1) as f64 - pool_pages as f64) * PAGE_SIZE as f64 - entry_pages;

    let after_free_density = churn.then(|| {
        let mut rng = Rng(0x2545_f491_4f6c_dd1d);
        let mut live = 0usize;
        for (&swp, l) in slots.iter().zip(lens.iter().flatten()) {
            if rng.next().is_multiple_of(2) {
                counted(|| zswap.invalidate(swp));
            } else {
                live += l;
            }
        }
        // Memory pressure: the pool's compaction shrinker, called as
        // shrink_slab calls a shrinker (count, then scans of up to 128
        // until it stops).
        let mut rounds = 0;
        loop {
            let sc = ShrinkControl::new(None, 0);
            let count = zswap.pool_shrinker_count(&sc) as usize;
            if count == 0 || rounds > 100_000 {
                break;
            }
            let mut sc = ShrinkControl::new(None, count.min(128));
            rounds += 1;
            if counted(|| zswap.pool_shrinker_scan(&mut sc)) == ShrinkResult::Stop {
                break;
            }
        }
        (
            (zswap.total_pages() * PAGE_SIZE) as f64 / live.max(1) as f64,
            zswap.stats().pages_compacted,
        )
    });
    counted(|| drop(zswap));
    Figures {
        pages: pages.len(),
        stored: slots.len(),
        payload: payload as f64,
        stored_payload: stored_payload as f64,
        pool: (pool_pages * PAGE_SIZE) as f64,
        heap,
        pool_meta,
        entry_pages,
        other_pages,
        fixed,
        linux_pool,
        linux_meta,
        after_free_density,
    }
}

fn print_header() {
    eprintln!(
        "| pages | stored | ideal | pool density | entries B/pg | tree B/pg | pool handles + rmaps + descriptors + page vectors B/pg | LRU, rounding B/pg | other pages B/pg | all-in overhead B/pg | all-in / ideal | Linux model / ideal | Linux overhead B/pg | fixed KiB |"
    );
    eprintln!("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|");
}

fn print_row(name: &str, f: &Figures) {
    let per = |b: f64| b / f.stored.max(1) as f64;
    let original = (f.pages * PAGE_SIZE) as f64;
    let linux_all = f.linux_pool + f.linux_meta;
    let m = &f.pool_meta;
    // The class arrays are the pool's fixed part (made in `Zswap::new`).
    let pool_meta = (m.handles + m.reverse_maps + m.descriptors + m.page_vectors) as f64;
    eprintln!(
        "| {name} | {} | {:.3} | {:.4} | {:.1} | {:.1} | {:.1} + {:.1} + {:.1} + {:.1} = {:.1} | {:.1} | {:.1} | {:.1} | {:.3} | {:.3} | {:.1} | {:.0} |",
        f.stored,
        original / f.payload.max(1.0),
        f.pool / f.stored_payload.max(1.0),
        per(f.heap[ENTRIES] + f.entry_pages),
        per(f.heap[TREE]),
        per(m.handles as f64),
        per(m.reverse_maps as f64),
        per(m.descriptors as f64),
        per(m.page_vectors as f64),
        per(pool_meta),
        per(f.heap[REST] - pool_meta),
        per(f.other_pages),
        per(f.all_in() - f.payload),
        f.payload / f.all_in(),
        f.payload / linux_all,
        per(linux_all - f.payload),
        f.fixed / 1024.0,
    );
}

fn main() {
    // `cargo bench` passes `--bench`; nothing else is understood.
    set_cpu(0);
    let corpus = load_corpus();
    eprintln!();
    eprintln!("zswap memory bench: {}", corpus.source());
    // lz4's all-in / ideal on all pages: zstd's target is to be within
    // 0.01 of it (the 0.95 floor is lz4's target).
    let mut lz4_all_in = None;
    for kind in [CompressorKind::Lz4, CompressorKind::Zstd] {
        eprintln!();
        eprintln!(
            "{kind}: all-in = pool pages + heap (usable size) + other pages; B/pg per stored page"
        );
        print_header();
        for f in &corpus.files {
            let refs: Vec<&Page> = f.pages.iter().collect();
            print_row(&f.name, &measure(kind, &refs, false, 1));
        }
        let all = corpus.all();
        let fig = measure(kind, &all, true, 1);
        if corpus.files.len() > 1 {
            print_row("all", &fig);
        }
        let all_in = fig.payload / fig.all_in();
        let ratio_target = match (kind, lz4_all_in) {
            (CompressorKind::Zstd, Some(l)) => {
                let gap: f64 = l - all_in;
                let ok = if gap <= 0.01 { "yes" } else { "NO" };
                format!("{gap:.3} below lz4's {l:.3} (within 0.01: {ok})")
            }
            _ => format!("(>= 0.95: {})", if all_in >= 0.95 { "yes" } else { "NO" }),
        };
        if kind == CompressorKind::Lz4 {
            lz4_all_in = Some(all_in);
        }
        eprintln!(
            "targets ({kind}, all pages): all-in / ideal {all_in:.3} {ratio_target}, overhead {:.1} B/pg (<= 64: {}), pool density {:.4} (<= 1.012: {})",
            (fig.all_in() - fig.payload) / fig.stored.max(1) as f64,
            if (fig.all_in() - fig.payload) / (fig.stored.max(1) as f64) <= 64.0 {
                "yes"
            } else {
                "NO"
            },
            fig.pool / fig.stored_payload,
            if fig.pool / fig.stored_payload <= 1.012 {
                "yes"
            } else {
                "NO"
            },
        );
        if let Some((d, compacted)) = fig.after_free_density {
            eprintln!(
                "after invalidating a random half and running the pool's compaction shrinker ({compacted} pages compacted): pool density (pool bytes / live payload) {d:.4} (<= 1.04: {})",
                if d <= 1.04 { "yes" } else { "NO" }
            );
        }
        // What per-CPU class shards cost: all pages stored on 2 CPUs in
        // turn (not a target row).
        let two = measure(kind, &all, true, 2);
        print_row("all, 2 CPUs in turn", &two);
        if let Some((d, compacted)) = two.after_free_density {
            eprintln!(
                "2 CPUs in turn: all-in / ideal {:.3}, after invalidating a random half and the shrinker ({compacted} pages compacted): pool density {d:.4}",
                two.payload / two.all_in()
            );
        }
    }
    eprintln!();
}
